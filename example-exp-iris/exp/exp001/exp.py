"""exp001: a decision tree on iris; the runs vary its depth."""

import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # this experiment's own model.py and train.py

from train import cross_validate, fit, load_data, predict  # noqa: E402

import kagexp  # noqa: E402

RUNS = [
    """
    model:
      params:
        max_depth: 1
    """,
    """
    model:
      params:
        max_depth: 2
    """,
    """
    model:
      params:
        max_depth: 3
    """,
]


def run(cfg, ctx):
    train, test, features = load_data(cfg)
    cv, cv_std = cross_validate(cfg, ctx, train, features)
    print(f"CV accuracy {cv:.4f} ± {cv_std:.4f} over {cfg.cv.n_splits} folds")
    model = fit(cfg, train, features)
    with open(ctx.path("model.pkl"), "wb") as f:
        pickle.dump(model, f)
    ctx.save_submission(predict(model, test, features))


def infer(cfg, ctx):
    """The offline Kaggle kernel (kagexp pack): predict the test set with the model the run saved."""
    _, test, features = load_data(cfg)
    with open(ctx.artifact("model.pkl"), "rb") as f:
        model = pickle.load(f)
    ctx.save_submission(predict(model, test, features))


if __name__ == "__main__":
    kagexp.main(run, RUNS)
