"""The shipped example runs end to end, as `make demo` runs it."""

import csv
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "example-exp-iris"


def test_iris_example_end_to_end(tmp_path):
    root = tmp_path / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("output", "__pycache__"))
    done = subprocess.run([sys.executable, "exp/exp001/exp.py"], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = root / "data/output/exp/exp001"
    cvs = []
    for run, depth in (("run001", 1), ("run002", 2), ("run003", 3)):
        assert yaml.safe_load((out / run / "config.yml").read_text())["model"]["params"]["max_depth"] == depth
        metrics = json.loads((out / run / "metrics.json").read_text())
        assert 0.3 < metrics["cv"] <= 1.0
        cvs.append(metrics["cv"])
        history = [json.loads(line) for line in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert [h["_fold"] for h in history] == [0, 1, 2, 3, 4]  # one score per fold, logged with fold=
        scores = [h["cv"] for h in history]
        assert metrics["cv"] == pytest.approx(statistics.fmean(scores))
        assert metrics["cv_std"] == pytest.approx(statistics.pstdev(scores))
        with open(out / run / "submission.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["id", "target"] and len(rows) == 45
        assert {row["target"] for row in rows} <= {"0", "1", "2"}
    assert cvs[0] < cvs[1], "a depth-1 tree cannot separate three classes as well as a depth-2 one"
    again = subprocess.run([sys.executable, "exp/exp001/exp.py"], cwd=root, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stderr.count("skip exp001/run") == 3
    show = [sys.executable, "-m", "kagexp", "show", "exp001/run002"]
    lines = subprocess.run(show, cwd=root, capture_output=True, text=True, timeout=60).stdout.splitlines()
    at = lines.index("per fold:")  # the scores behind the mean, as logged with fold=
    history = [json.loads(line) for line in (out / "run002" / "metrics.jsonl").read_text().splitlines()]
    assert lines[at + 1].split() == ["fold", "cv"]
    assert [line.split() for line in lines[at + 2 : at + 7]] == [[str(h["_fold"]), f"{h['cv']:.6g}"] for h in history]


def test_iris_exp002_is_a_child_of_exp001(tmp_path):
    root = tmp_path / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("output", "__pycache__"))
    done = subprocess.run([sys.executable, "exp/exp002/exp.py"], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((root / "exp/exp002/lineage.yml").read_text())["parent"] == "exp001"
    out = root / "data/output/exp/exp002"
    assert yaml.safe_load((out / "run003" / "config.yml").read_text())["features"] == {"petal_area": False}
    assert all(json.loads((out / r / "metrics.json").read_text())["cv"] > 0.8 for r in ("run001", "run002", "run003"))
