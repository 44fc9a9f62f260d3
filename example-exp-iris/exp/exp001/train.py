"""Data, cross-validation and prediction for the iris experiment."""

import numpy as np
import pandas as pd
from model import build_model
from sklearn.datasets import load_iris
from sklearn.model_selection import StratifiedKFold, train_test_split


def load_data(cfg):
    """Iris split into a labeled train set and an unlabeled test set, Kaggle style."""
    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame.insert(0, "id", np.arange(len(frame)))
    train, test = train_test_split(
        frame, test_size=cfg.dataset.test_size, stratify=frame["target"], random_state=cfg.seed
    )
    features = [c for c in frame.columns if c not in ("id", "target")]
    return train, test, features


def cross_validate(cfg, ctx, train, features):
    """Stratified K-fold accuracy; logs each fold (kagexp keeps their mean and std), returns both."""
    folds = StratifiedKFold(n_splits=cfg.cv.n_splits, shuffle=True, random_state=cfg.seed)
    scores = []
    for fold, (fit_idx, val_idx) in enumerate(folds.split(train[features], train["target"])):
        model = build_model(cfg.model, cfg.seed)
        model.fit(train[features].iloc[fit_idx], train["target"].iloc[fit_idx])
        score = model.score(train[features].iloc[val_idx], train["target"].iloc[val_idx])
        ctx.log({"cv": score}, fold=fold)  # cv and cv_std in metrics.json: the mean and std over the folds
        scores.append(score)
    return float(np.mean(scores)), float(np.std(scores))


def fit(cfg, train, features):
    """The model fitted on the whole train set: what the submission is predicted with."""
    model = build_model(cfg.model, cfg.seed)
    model.fit(train[features], train["target"])
    return model


def predict(model, test, features):
    return pd.DataFrame({"id": test["id"].to_numpy(), "target": model.predict(test[features])})
