"""The built-in metrics agree with scikit-learn's; dotted paths name any function."""

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn import metrics as sk

from kagexp.errors import ConfigError
from kagexp.metrics import average_ranks, resolve

rng = np.random.default_rng(3)
BINARY = rng.integers(0, 2, 200)
SCORES = np.round(rng.random(200), 2)  # rounded: many ties, which AUC counts a half
CLASSES = rng.integers(0, 4, 150)
PROBS = rng.dirichlet([1, 1, 1, 1], size=150)
VALUES = rng.normal(size=120)
ESTIMATES = VALUES + rng.normal(scale=0.5, size=120)


@pytest.mark.parametrize(
    ("name", "truth", "pred", "expected"),
    [
        ("auc", BINARY, SCORES, sk.roc_auc_score(BINARY, SCORES)),
        ("auc", BINARY, np.column_stack([1 - SCORES, SCORES]), sk.roc_auc_score(BINARY, SCORES)),
        ("logloss", BINARY, np.clip(SCORES, 0.01, 0.99), sk.log_loss(BINARY, np.clip(SCORES, 0.01, 0.99))),
        ("logloss", CLASSES, PROBS, sk.log_loss(CLASSES, PROBS)),
        ("accuracy", BINARY, SCORES, sk.accuracy_score(BINARY, SCORES > 0.5)),
        ("accuracy", CLASSES, PROBS, sk.accuracy_score(CLASSES, PROBS.argmax(1))),
        ("f1", BINARY, SCORES, sk.f1_score(BINARY, SCORES > 0.5)),
        ("f1", CLASSES, PROBS, sk.f1_score(CLASSES, PROBS.argmax(1), average="macro")),
        ("rmse", VALUES, ESTIMATES, np.sqrt(sk.mean_squared_error(VALUES, ESTIMATES))),
        ("mae", VALUES, ESTIMATES, sk.mean_absolute_error(VALUES, ESTIMATES)),
    ],
)
def test_built_in_metrics_equal_scikit_learn(name, truth, pred, expected):
    assert resolve(name)(truth, pred) == pytest.approx(expected, abs=1e-12)


def test_directions_are_the_metrics_own():
    assert [resolve(n).direction for n in ("auc", "logloss", "rmse", "mae", "accuracy", "f1")] == [
        "max",
        "min",
        "min",
        "min",
        "max",
        "max",
    ]
    assert resolve("rmse").better(0.1, 0.2) and resolve("auc").better(0.9, 0.8)


def test_average_ranks_equal_scipy():
    assert np.array_equal(average_ranks(SCORES), rankdata(SCORES))


def test_a_dotted_path_names_any_function_with_the_projects_direction():
    for path in ("sklearn.metrics:r2_score", "sklearn.metrics.r2_score"):
        metric = resolve(path, "max")
        assert metric(VALUES, ESTIMATES) == pytest.approx(sk.r2_score(VALUES, ESTIMATES))
        assert metric.direction == "max"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cv", "unknown metric `cv`: use one of auc, logloss"),
        (None, "no metric named: set `metric: {name: auc}` in kagexp.yml or pass --metric"),
        ("nowhere.module:f", "metric `nowhere.module:f` cannot be imported (ModuleNotFoundError"),
        ("sklearn.metrics:nothing", "metric `sklearn.metrics:nothing` cannot be imported (AttributeError"),
    ],
)
def test_a_metric_that_is_not_one_says_what_to_write(name, message):
    with pytest.raises(ConfigError, match=message.replace("{", "\\{").replace("(", "\\(")):
        resolve(name)
