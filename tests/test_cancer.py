"""The breast-cancer example: two experiments on the same folds, and the blend `make demo` makes."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from helpers import run_exp, run_kagexp
from sklearn.metrics import roc_auc_score

import kagexp

EXAMPLE = Path(__file__).resolve().parents[1] / "example-exp-cancer"


def test_cancer_example_blends_its_best_runs_above_each_of_them(tmp_path):
    root = tmp_path / "cancer"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("output", "__pycache__", "results"))
    for exp in ("exp001", "exp002"):
        done = run_exp(root, exp=exp, timeout=300)
        assert done.returncode == 0, done.stderr
    rows = json.loads(run_kagexp(root, "runs", "--sort", "-auc", "--format", "json").stdout)
    assert len(rows) == 4 and all(0.98 < r["auc"] < 1 and 0 < r["auc_std"] < 0.02 for r in rows)
    best = [next(r["run"] for r in rows if r["run"].startswith(exp)) for exp in ("exp001", "exp002")]

    blended = run_kagexp(root, "blend", *best, "--method", "hill")
    assert blended.returncode == 0, blended.stderr
    assert "the blend's CV is better than the best member" in blended.stdout
    recorded = json.loads((root / "data/output/blend/blend001/meta.json").read_text())["blend"]
    oofs = [kagexp.load_oof(run, root=root) for run in best]
    mixed = np.tensordot(recorded["weights"], np.stack([o["pred"].to_numpy() for o in oofs]), axes=1)
    assert abs(recorded["cv"] - roc_auc_score(oofs[0]["target"], mixed)) < 1e-12
    assert recorded["cv"] > max(recorded["member_cv"].values())
    with open(root / "data/output/blend/blend001/submission.csv", newline="") as f:
        submission = list(csv.DictReader(f))
    assert list(submission[0]) == ["id", "target"] and len(submission) == 143
    assert all(0 <= float(row["target"]) <= 1 for row in submission)
