"""Metrics by name: the built-ins (auc, logloss, rmse, mae, accuracy, f1) in numpy, or any
function named by a dotted path (`pkg.mod:func` or `pkg.mod.func`) taking `(y_true, y_pred)`.

Predictions are a vector (binary: the positive class's probability; regression: the value) or a
matrix with one column per class. The built-ins agree with scikit-learn's metrics (the tests
compare them), without making scikit-learn a dependency of kagexp.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kagexp.errors import ConfigError

MetricFunction = Callable[[Any, Any], float]


@dataclass(frozen=True)
class Metric:
    """A named metric and whether higher is better (`max`) or lower (`min`)."""

    name: str
    function: MetricFunction
    direction: str

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        return float(self.function(y_true, y_pred))

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than `b`."""
        return a > b if self.direction == "max" else a < b


def _np():
    import numpy

    return numpy


def _positive_scores(y_pred: Any):
    """A binary prediction as one score per row: a 2-column matrix gives its second column."""
    pred = _np().asarray(y_pred, dtype=float)
    if pred.ndim == 2 and pred.shape[1] == 2:
        return pred[:, 1]
    if pred.ndim == 2 and pred.shape[1] == 1:
        return pred[:, 0]
    if pred.ndim != 1:
        raise ConfigError(f"auc takes one score per row (binary), not a matrix of {pred.shape[1]} columns")
    return pred


def average_ranks(values: Any):
    """Ranks from 1 to n, ties sharing their average rank (as scipy's `rankdata`)."""
    np = _np()
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.append(first[1:], len(values)) - 1
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def auc(y_true: Any, y_pred: Any) -> float:
    """ROC AUC of a binary target: the Mann-Whitney statistic, ties counting a half."""
    np = _np()
    truth = np.asarray(y_true).astype(bool)
    scores = _positive_scores(y_pred)
    positives = int(truth.sum())
    negatives = len(truth) - positives
    if positives == 0 or negatives == 0:
        raise ConfigError("auc needs both classes among the rows; this target has one")
    ranks = average_ranks(scores)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _probabilities(y_true: Any, y_pred: Any):
    """The true labels as column indices and the predictions as a row-normalised matrix."""
    np = _np()
    pred = np.asarray(y_pred, dtype=float)
    if pred.ndim == 1:
        pred = np.column_stack([1 - pred, pred])
    eps = np.finfo(pred.dtype).eps
    pred = np.clip(pred, eps, 1 - eps)
    pred = pred / pred.sum(axis=1, keepdims=True)
    return np.asarray(y_true).astype(int), pred


def logloss(y_true: Any, y_pred: Any) -> float:
    """Mean negative log-likelihood of the true class (labels 0…C-1)."""
    np = _np()
    labels, pred = _probabilities(y_true, y_pred)
    return float(-np.mean(np.log(pred[np.arange(len(labels)), labels])))


def rmse(y_true: Any, y_pred: Any) -> float:
    np = _np()
    diff = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float).reshape(len(y_true))
    return float(np.sqrt(np.mean(diff**2)))


def mae(y_true: Any, y_pred: Any) -> float:
    np = _np()
    diff = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float).reshape(len(y_true))
    return float(np.mean(np.abs(diff)))


def labels(y_pred: Any):
    """Predicted labels: the argmax of a matrix, or a binary probability above 0.5."""
    np = _np()
    pred = np.asarray(y_pred)
    if pred.ndim == 2:
        return pred.argmax(axis=1)
    if pred.dtype.kind == "f":
        return (pred > 0.5).astype(int)
    return pred


def accuracy(y_true: Any, y_pred: Any) -> float:
    np = _np()
    return float(np.mean(np.asarray(y_true) == labels(y_pred)))


def f1(y_true: Any, y_pred: Any) -> float:
    """F1 of the positive class for two classes, the unweighted mean over classes for more."""
    np = _np()
    pred = np.asarray(y_pred)
    truth, predicted = np.asarray(y_true).astype(int), labels(pred)
    classes = np.union1d(truth, predicted)
    binary = pred.shape[1] == 2 if pred.ndim == 2 else set(classes.tolist()) <= {0, 1}
    scores = [_f1_of(truth, predicted, c) for c in ([1] if binary else classes)]
    return float(np.mean(scores))


def _f1_of(truth: Any, predicted: Any, cls: int) -> float:
    true_pos = float(((truth == cls) & (predicted == cls)).sum())
    total = float((truth == cls).sum() + (predicted == cls).sum())
    return 2 * true_pos / total if total else 0.0


BUILT_IN = {
    "auc": (auc, "max"),
    "logloss": (logloss, "min"),
    "rmse": (rmse, "min"),
    "mae": (mae, "min"),
    "accuracy": (accuracy, "max"),
    "f1": (f1, "max"),
}


def resolve(name: str | None, direction: str = "max") -> Metric:
    """A built-in metric by name, or a function by dotted path (its direction is `direction`,
    the project's `metric.direction`); a name that is neither is an error saying what to write."""
    if not name:
        raise ConfigError(
            f"no metric named: set `metric: {{name: auc}}` in kagexp.yml or pass --metric "
            f"({', '.join(BUILT_IN)}, or a function as pkg.module:function)"
        )
    if name in BUILT_IN:
        function, own = BUILT_IN[name]
        return Metric(name, function, own)
    if "." not in name and ":" not in name:
        raise ConfigError(
            f"unknown metric `{name}`: use one of {', '.join(BUILT_IN)} or a function as pkg.module:function "
            f"(in kagexp.yml's `metric: name:` or with --metric)"
        )
    return Metric(name, _import(name), direction)


def _import(path: str) -> MetricFunction:
    module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        function = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"metric `{path}` cannot be imported ({type(exc).__name__}: {exc})") from None
    if not callable(function):
        raise ConfigError(f"metric `{path}` is not a function")
    return function
