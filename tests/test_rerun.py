"""`kagexp rerun`: runs again from the code snapshot, recorded config and seed, checked, as real processes."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import (
    commit_all,
    git,
    make_project,
    meta,
    out_dir,
    run_exp,
    run_kagexp,
    set_runs,
    snapshot_tree,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "example-exp-iris"


def kagexp(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_kagexp(root, *args, timeout=120)


def test_iris_reruns_identically_after_the_code_was_edited_and_head_moved(tmp_path):
    root = tmp_path / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("output", "__pycache__"))
    git(root, "init", "-q")
    commit_all(root, "start")
    assert run_exp(root, timeout=120).returncode == 0
    first = meta(root, "run002")
    train = root / "exp/exp001/train.py"
    train.write_text(train.read_text().replace("float(np.mean(scores))", "float(np.mean(scores)) + 0.5"))
    exp_py = root / "exp/exp001/exp.py"
    exp_py.write_text(exp_py.read_text().replace("ctx.log({", "ctx.log({'edited': 1, "))
    commit_all(root, "edit exp001 after its runs")

    done = kagexp(root, "rerun", "exp001", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("metrics: 2 identical to attempt 1") == 3, done.stdout
    assert "exp001/run002 rerun done" in done.stdout and "environment: same as attempt 1" in done.stdout
    again = meta(root, "run002")
    assert again["code_hash"] == first["code_hash"] and again["attempt"] == 2
    assert again["git"]["commit"] != first["git"]["commit"]
    assert again["rerun_of"] == {"attempt": 1, "changed": {}}
    run002 = out_dir(root) / "run002"
    assert json.loads((run002 / "metrics.json").read_text()) == json.loads(
        (run002 / "attempts/1/metrics.json").read_text()
    )
    assert (run002 / "attempts/1/submission.csv").read_bytes() == (run002 / "submission.csv").read_bytes()


def test_the_rerun_is_a_new_attempt_and_the_original_is_kept(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    original = meta(root, "run002")
    assert original["function"] == "run"

    done = kagexp(root, "rerun", "exp001/run002")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "hello from run002"  # the run's own output, as in python exp.py
    assert done.stdout.splitlines()[1].startswith("exp001/run002 rerun done in ")
    assert "(attempt 1 kept in data/output/exp/exp001/run002/attempts/1)" in done.stdout
    assert "metrics:" not in done.stdout  # only with --check
    assert "exp001/run002 rerun started" in done.stderr
    kept = json.loads((out_dir(root) / "run002/attempts/1/meta.json").read_text())
    assert kept == original
    new = meta(root, "run002")
    assert new["status"] == "done" and new["attempt"] == 2 and new["rerun_of"]["attempt"] == 1
    assert "hello from run002" in (out_dir(root) / "run002/log.txt").read_text()

    twice = kagexp(root, "rerun", "exp001/run002", "--check")
    assert twice.returncode == 0 and "metrics: 1 identical to attempt 2" in twice.stdout
    assert (out_dir(root) / "run002/attempts/2").is_dir() and meta(root, "run002")["attempt"] == 3


def test_the_recorded_config_and_seed_are_used_not_todays(tmp_path):
    body = "import random\nctx.log({'cv': cfg.model.params.max_depth / 10, 'draw': random.random()})\n"
    root = make_project(tmp_path, body=body)
    assert run_exp(root).returncode == 0
    config = root / "exp/exp001/config.yml"
    config.write_text(config.read_text().replace("seed: 7", "seed: 8").replace("min_samples_leaf: 1", "x: 1"))
    set_runs(root, ["model:\n  params:\n    max_depth: 9\n"], body="ctx.log({'cv': 0.0})\n")

    done = kagexp(root, "rerun", "exp001/run003", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "metrics: 2 identical to attempt 1" in done.stdout


def test_a_run_that_logs_the_time_is_a_mismatch(tmp_path):
    body = "ctx.log({'cv': 0.5, 'now': time.time()})\n"
    root = make_project(tmp_path, runs=["", "model:\n  params:\n    max_depth: 2\n"], body=body)
    assert run_exp(root).returncode == 0

    done = kagexp(root, "rerun", "exp001/run001", "--check")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert "  metrics: 1 of 2 differ from attempt 1 (exact):" in lines
    header = next(line for line in lines if "metric" in line and "rel. diff" in line)
    assert header.split() == ["metric", "attempt", "1", "rerun", "rel.", "diff"]
    row = next(line for line in lines if line.strip().startswith("now"))
    assert row.split()[-1] == "MISMATCH"
    assert not any(line.strip().startswith("cv ") for line in lines)  # identical metrics are not listed

    within = kagexp(root, "rerun", "exp001/run001", "--check", "--tol", "1e-3")
    assert within.returncode == 0, within.stdout
    assert "  metrics: all 2 match attempt 2 (relative tolerance 0.001):" in within.stdout
    assert next(line for line in within.stdout.splitlines() if line.strip().startswith("now")).split()[-1] == "ok"


def test_a_run_missing_its_snapshot_is_one_clear_error(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    code_hash = meta(root, "run001")["code_hash"]
    shutil.rmtree(out_dir(root) / ".code" / code_hash)
    before = snapshot_tree(root)

    done = kagexp(root, "rerun", "exp001/run001", "--check")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"kagexp: error: exp001/run001: its code snapshot is missing (data/output/exp/exp001/.code/{code_hash}), "
        "so it cannot run again as it ran; `kagexp run exp001 --force --only run001` runs today's code instead"
    ]
    assert snapshot_tree(root) == before


def test_a_snapshot_changed_after_it_was_taken_is_refused(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    snapshot = out_dir(root) / ".code" / meta(root, "run001")["code_hash"]
    (snapshot / "model.py").write_text("DEPTH = 99\n")
    done = kagexp(root, "rerun", "exp001")
    assert done.returncode == 2
    assert "exp001/run001: its code snapshot data/output/exp/exp001/.code/" in done.stderr
    assert "was changed after it was taken" in done.stderr and len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name the runs to run again"),
        (("exp001/run001", "--tol", "0.1"), "--tol goes with --check"),
        (("exp001/run009",), "no run exp001/run009"),
        (("exp009",), "no runs to run again"),
        (("exp002",), "exp002 has no done runs to run again"),
    ],
)
def test_rerun_mistakes_are_one_line(tmp_path, args, message):
    root = make_project(tmp_path, runs=["", "model:\n  params:\n    max_depth: 2\n"], body="raise ValueError('no')\n")
    make_project(tmp_path, exp="exp002", body="raise ValueError('no')\n")
    assert run_exp(root, exp="exp002").returncode == 1
    done = kagexp(root, "rerun", *args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_each_snapshot_imports_its_own_modules(tmp_path):
    body = "import model\nctx.log({'cv': model.DEPTH})\n"
    root = make_project(tmp_path, runs=[""], body=body)
    make_project(tmp_path, runs=[""], body=body, exp="exp002")
    (root / "exp/exp002/model.py").write_text("DEPTH = 2\n")
    assert run_exp(root).returncode == 0 and run_exp(root, exp="exp002").returncode == 0
    (root / "exp/exp001/model.py").write_text("DEPTH = 5\n")

    done = kagexp(root, "rerun", "exp002/run001", "exp001/run001", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("metrics: 1 identical to attempt 1") == 2
    assert json.loads((out_dir(root) / "run001/metrics.json").read_text()) == {"cv": 1}


def test_a_rerun_that_fails_exits_1_and_keeps_the_original(tmp_path):
    body = "if Path('break').exists():  # in the project root, where reruns run\n    raise RuntimeError('no')\n"
    root = make_project(tmp_path, runs=[""], body=body)
    assert run_exp(root).returncode == 0
    (root / "break").write_text("")
    done = kagexp(root, "rerun", "exp001/run001", "--check")
    assert done.returncode == 1
    assert "exp001/run001 rerun FAILED in" in done.stdout and "RuntimeError: no" in done.stdout
    assert meta(root, "run001")["status"] == "failed"
    assert json.loads((out_dir(root) / "run001/attempts/1/meta.json").read_text())["status"] == "done"


def test_a_changed_input_is_shown_by_diff_and_rerun(tmp_path):
    settings = "name: test\ninputs: ['*.csv', 'images/**/*.png']\n"
    root = make_project(tmp_path, runs=[""], settings=settings)
    (root / "data/input/images/a").mkdir(parents=True)
    (root / "data/input/train.csv").write_text("id,target\n1,0\n")
    (root / "data/input/images/a/x.png").write_bytes(b"\x89PNG")
    (root / "data/input/notes.txt").write_text("not matched\n")
    assert run_exp(root).returncode == 0
    inputs = meta(root, "run001")["inputs"]
    assert sorted(inputs) == ["images/a/x.png", "train.csv"]
    assert inputs["train.csv"]["size"] == 14 and len(inputs["train.csv"]["sha256"]) == 64
    assert inputs["train.csv"]["mtime"].startswith("20")
    cache = json.loads((root / "data/output/.fingerprints.json").read_text())
    assert cache["files"]["train.csv"]["sha256"] == inputs["train.csv"]["sha256"]

    (root / "data/input/train.csv").write_text("id,target\n1,1\n2,0\n")
    set_runs(root, ["", "seed: 3\n"])
    assert run_exp(root).returncode == 0
    diff = kagexp(root, "diff", "exp001/run001", "exp001/run002", "--config")
    assert diff.returncode == 0, diff.stderr
    changed = [line for line in diff.stdout.splitlines() if "inputs." in line]
    old, new = inputs["train.csv"]["sha256"][:12], meta(root, "run002")["inputs"]["train.csv"]["sha256"][:12]
    assert changed == [f"  inputs.train.csv: 14 B sha256:{old} -> 18 B sha256:{new}"]

    done = kagexp(root, "rerun", "exp001/run001")
    assert done.returncode == 0, done.stderr
    assert "  environment changed since attempt 1:" in done.stdout
    assert f"    inputs.train.csv: 14 B sha256:{old} -> 18 B sha256:{new}" in done.stdout
    assert meta(root, "run001")["rerun_of"]["changed"] == {
        "inputs.train.csv": [f"14 B sha256:{old}", f"18 B sha256:{new}"]
    }
    shown = kagexp(root, "show", "exp001/run001").stdout.splitlines()
    assert "  inputs: 2 file(s) fingerprinted in meta.json" in shown
    assert "  rerun of attempt 1; changed since: inputs.train.csv" in shown


def test_the_run_function_is_found_by_its_recorded_name(tmp_path):
    root = make_project(tmp_path, runs=[""])
    (root / "exp/exp001/exp.py").write_text(
        "import kagexp\n\nRUNS = ['']\n\n\n"
        "def fit(cfg, ctx):\n    ctx.log({'cv': 1})\n\n\n"
        "def run(cfg, ctx):\n    raise RuntimeError('not the function that ran')\n\n\n"
        "if __name__ == '__main__':\n    kagexp.main(fit, RUNS)\n"
    )
    assert run_exp(root).returncode == 0 and meta(root, "run001")["function"] == "fit"
    done = kagexp(root, "rerun", "exp001/run001", "--check")
    assert done.returncode == 0 and "metrics: 1 identical to attempt 1" in done.stdout, done.stdout + done.stderr

    path = out_dir(root) / "run001/meta.json"  # as recorded before kagexp kept the name: `run` is taken
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "function"}))
    done = kagexp(root, "rerun", "exp001/run001")
    assert done.returncode == 1 and "RuntimeError: not the function that ran" in done.stdout
