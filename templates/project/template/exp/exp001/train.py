"""Data, cross-validation and prediction for the starter, scored with the project's metric.

The data is one of scikit-learn's bundled toy sets (no download): breast cancer (a binary target)
for classification metrics, diabetes for regression ones. Replace `load_data` with your
competition's files in data/input/ (`ctx.input_dir`).
"""

import numpy as np
import pandas as pd
from model import build_model
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

# The project's metric -> (its scikit-learn scorer, the task). Scorers named `neg_*` return minus
# the error, so that higher is better for all of them; `cross_validate` gives the error back.
METRICS = {
    "auc": ("roc_auc", "classification"),
    "accuracy": ("accuracy", "classification"),
    "logloss": ("neg_log_loss", "classification"),
    "f1": ("f1", "classification"),
    "rmse": ("neg_root_mean_squared_error", "regression"),
    "mae": ("neg_mean_absolute_error", "regression"),
    "r2": ("r2", "regression"),
}
DATASETS = {"classification": load_breast_cancer, "regression": load_diabetes}
PROBABILITIES = {"auc", "logloss"}  # metrics of predicted probabilities, not labels


def task_of(metric):
    if metric not in METRICS:
        raise ValueError(f"train.py computes {', '.join(METRICS)}, not {metric!r}: add it to METRICS")
    return METRICS[metric][1]


def load_data(cfg, metric):
    """The toy data split into a labeled train set and an unlabeled test set, Kaggle style."""
    task = task_of(metric)
    frame = DATASETS[task](as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame.insert(0, "id", np.arange(len(frame)))
    stratify = frame["target"] if task == "classification" else None
    train, test = train_test_split(frame, test_size=cfg.dataset.test_size, stratify=stratify, random_state=cfg.seed)
    features = [c for c in frame.columns if c not in ("id", "target")]
    return train, test, features


def cross_validate(cfg, ctx, metric, train, features):
    """K-fold CV (stratified for classification) scored with `metric`; logs each fold, returns mean and std."""
    scorer_name, task = METRICS[metric]
    scorer, sign = get_scorer(scorer_name), -1 if scorer_name.startswith("neg_") else 1
    splitter = StratifiedKFold if task == "classification" else KFold
    folds = splitter(n_splits=cfg.cv.n_splits, shuffle=True, random_state=cfg.seed)
    x, y = train[features], train["target"]
    scores = []
    for fold, (fit_idx, val_idx) in enumerate(folds.split(x, y)):
        model = build_model(cfg.model, task, cfg.seed)
        model.fit(x.iloc[fit_idx], y.iloc[fit_idx])
        score = sign * scorer(model, x.iloc[val_idx], y.iloc[val_idx])
        ctx.log({metric: score}, fold=fold)  # one score per fold: the dashboard's per-fold table
        scores.append(score)
    return float(np.mean(scores)), float(np.std(scores))


def fit(cfg, metric, train, features):
    """The model fitted on the whole train set: what the submission is predicted with."""
    model = build_model(cfg.model, task_of(metric), cfg.seed)
    model.fit(train[features], train["target"])
    return model


def predict(model, metric, test, features):
    """The submission: probabilities for auc and logloss, else predictions."""
    if metric in PROBABILITIES:
        target = model.predict_proba(test[features])[:, 1]
    else:
        target = model.predict(test[features])
    return pd.DataFrame({"id": test["id"].to_numpy(), "target": target})
