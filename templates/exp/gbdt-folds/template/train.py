"""Data and the fold loop: one model per fold, out-of-fold predictions, test predictions averaged over folds."""

import pickle

import numpy as np
import pandas as pd
from model import build_model
from sklearn import metrics
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

# The metric -> (function of (truth, prediction), what it is computed on). Classification is of a
# binary target: "proba" metrics take the probability of class 1, "label" ones the class at 0.5.
METRICS = {
    "auc": (metrics.roc_auc_score, "proba"),
    "logloss": (metrics.log_loss, "proba"),
    "accuracy": (metrics.accuracy_score, "label"),
    "f1": (metrics.f1_score, "label"),
    "rmse": (lambda y, p: float(np.sqrt(metrics.mean_squared_error(y, p))), "value"),
    "mae": (metrics.mean_absolute_error, "value"),
    "r2": (metrics.r2_score, "value"),
}


def task_of(metric):
    if metric not in METRICS:
        raise ValueError(f"train.py computes {', '.join(METRICS)}, not {metric!r}: add it to METRICS")
    return "regression" if METRICS[metric][1] == "value" else "classification"


def load_data(cfg, metric, input_dir):
    """The train and test tables and the feature columns: CSV files from `input_dir`, or toy data."""
    if cfg.data.train is None:
        train, test = _toy_data(cfg, task_of(metric))
    else:
        train = pd.read_csv(input_dir / cfg.data.train)
        test = pd.read_csv(input_dir / cfg.data.test) if cfg.data.test else train.iloc[:0]
    features = [c for c in train.columns if c not in (cfg.data.id, cfg.data.target)]
    return _encode(train, test, features)


def _toy_data(cfg, task):
    """scikit-learn's bundled breast cancer (binary) or diabetes (regression) data, split Kaggle style."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    loader = load_breast_cancer if task == "classification" else load_diabetes
    frame = loader(as_frame=True).frame.rename(columns={"target": cfg.data.target})
    frame.insert(0, cfg.data.id, np.arange(len(frame)))
    stratify = frame[cfg.data.target] if task == "classification" else None
    return train_test_split(frame, test_size=0.3, stratify=stratify, random_state=cfg.seed)


def _encode(train, test, features):
    """Text columns as integer codes, the same in train and test: the trees need numbers."""
    train, test = train.copy(), test.copy()
    for column in features:
        if not pd.api.types.is_numeric_dtype(train[column]):
            categories = pd.Categorical(pd.concat([train[column], test[column]])).categories
            train[column] = pd.Categorical(train[column], categories=categories).codes
            test[column] = pd.Categorical(test[column], categories=categories).codes
    return train, test, features


def train_folds(cfg, ctx, metric, train, test, features):
    """Train one model per fold; returns the out-of-fold table, the submission and the out-of-fold score."""
    score_fn, kind = METRICS[metric]
    task = task_of(metric)
    x, y = train[features], train[cfg.data.target]
    splitter = StratifiedKFold if task == "classification" else KFold
    folds = splitter(n_splits=cfg.cv.n_splits, shuffle=True, random_state=cfg.seed)
    oof = np.zeros(len(train))
    fold_of = np.zeros(len(train), dtype=int)
    test_pred = np.zeros(len(test))
    for fold, (fit_idx, val_idx) in enumerate(folds.split(x, y)):
        model = build_model(cfg.model, task, cfg.seed)
        model.fit(x.iloc[fit_idx], y.iloc[fit_idx])
        with open(ctx.path(f"models/fold{fold}.pkl"), "wb") as f:
            pickle.dump(model, f)
        oof[val_idx], fold_of[val_idx] = _predict(model, x.iloc[val_idx], task), fold
        ctx.log({metric: score_fn(y.iloc[val_idx], _as(kind, oof[val_idx]))}, fold=fold)  # and `{metric}_std`
        if len(test):
            test_pred += _predict(model, test[features], task) / cfg.cv.n_splits
    ids = cfg.data.id
    oof_table = pd.DataFrame({ids: train[ids].to_numpy(), "fold": fold_of, "target": y.to_numpy(), "pred": oof})
    submission = pd.DataFrame({ids: test[ids].to_numpy(), cfg.data.target: _as(kind, test_pred)})
    return oof_table, submission, float(score_fn(y, _as(kind, oof)))


def infer_folds(cfg, metric, model_paths, test, features):
    """The submission from the saved fold models: their test predictions averaged in fold order, as in training."""
    task = task_of(metric)
    test_pred = np.zeros(len(test))
    for path in model_paths:
        with open(path, "rb") as f:
            test_pred += _predict(pickle.load(f), test[features], task) / len(model_paths)
    target = _as(METRICS[metric][1], test_pred)
    return pd.DataFrame({cfg.data.id: test[cfg.data.id].to_numpy(), cfg.data.target: target})


def _predict(model, x, task):
    """The probability of class 1 for classification (averaged over folds, then thresholded), else the value."""
    return model.predict_proba(x)[:, 1] if task == "classification" else model.predict(x)


def _as(kind, pred):
    return (pred >= 0.5).astype(int) if kind == "label" else pred
