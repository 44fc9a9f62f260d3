"""exp001: logistic regression on standardised features; the runs vary the regularisation."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # this experiment's own model.py and train.py

from train import fold_of, load_data, submission, train_fold  # noqa: E402

import kagexp  # noqa: E402

RUNS = [
    """
    model:
      params:
        C: 0.1
    """,
    "",  # the base config: C = 1.0
]


def run(cfg, ctx):
    train, test, features = load_data(cfg)
    folds = fold_of(cfg, train)
    for fold in ctx.folds(cfg.cv.n_splits):  # only the folds not finished yet
        train_fold(cfg, ctx, fold, train, test, features, folds)
    ctx.save_submission(submission(ctx))


if __name__ == "__main__":
    kagexp.main(run, RUNS)
