"""Data, folds and one fold's training for the breast-cancer experiments."""

import numpy as np
import pandas as pd
from model import build_model
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split


def load_data(cfg):
    """The data split into a labeled train set and an unlabeled test set, Kaggle style."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame.insert(0, "id", np.arange(len(frame)))
    train, test = train_test_split(
        frame, test_size=cfg.dataset.test_size, stratify=frame["target"], random_state=cfg.dataset.split_seed
    )
    features = [c for c in frame.columns if c not in ("id", "target")]
    return train.reset_index(drop=True), test.reset_index(drop=True), features


def fold_of(cfg, train):
    """Each train row's fold: stratified, and the same in every experiment."""
    folds = np.empty(len(train), dtype=int)
    splitter = StratifiedKFold(n_splits=cfg.cv.n_splits, shuffle=True, random_state=cfg.cv.seed)
    for fold, (_, val_idx) in enumerate(splitter.split(train, train["target"])):
        folds[val_idx] = fold
    return folds


def train_fold(cfg, ctx, fold, train, test, features, folds):
    """Fit on the other folds, predict this fold and the test set, and save the fold."""
    fit, val = train[folds != fold], train[folds == fold]
    model = build_model(cfg.model, cfg.seed).fit(fit[features], fit["target"])
    oof = model.predict_proba(val[features])[:, 1]
    auc = roc_auc_score(val["target"], oof)
    ctx.save_fold(
        fold,
        oof=oof,
        ids=val["id"],
        target=val["target"],
        test=model.predict_proba(test[features])[:, 1],
        test_ids=test["id"],
        metrics={"auc": auc},
    )
    print(f"fold {fold}: auc {auc:.4f}")


def submission(ctx):
    """The mean of the folds' test probabilities, as the competition's `id,target`."""
    test = ctx.fold_predictions("test")
    return pd.DataFrame({"id": test.index, "target": test["pred"].to_numpy()})
