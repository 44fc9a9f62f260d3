"""A list entry is the run whose override it is, wherever it stands; numbers are never reused."""

from __future__ import annotations

import json

import yaml
from helpers import depth_runs, executions, make_project, out_dir, run_exp, run_kagexp, set_runs


def depths(root, *runs: str) -> dict[str, int]:
    """Each run folder's max_depth, as its merged config says."""
    found = {}
    for run in runs:
        merged = yaml.safe_load((out_dir(root) / run / "config.yml").read_text())
        found[run] = merged["model"]["params"]["max_depth"]
    return found


def test_inserting_at_the_front_runs_only_the_new_entry(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2))
    assert run_exp(root).returncode == 0
    set_runs(root, depth_runs(5, 1, 2))
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert executions(root) == ["run001", "run002", "run003"]
    assert depths(root, "run001", "run002", "run003") == {"run001": 1, "run002": 2, "run003": 5}
    assert "skip exp001/run001: done" in done.stderr and "skip exp001/run002: done" in done.stderr


def test_reordering_runs_nothing_and_comments_do_not_count(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2, 3))
    assert run_exp(root).returncode == 0
    set_runs(root, ["# the deepest first\nmodel: {params: {max_depth: 3}}", *depth_runs(2, 1)])
    done = run_exp(root)
    assert done.returncode == 0 and executions(root) == ["run001", "run002", "run003"]
    assert "exp001: 3 skipped" in done.stderr


def test_extending_a_grid_runs_only_the_new_combinations(tmp_path):
    grid = 'kagexp.grid({"model.params.max_depth": [1, 2], "lr": [1e-3]})'
    root = make_project(tmp_path, runs=grid)
    assert run_exp(root).returncode == 0
    exp_py = root / "exp/exp001/exp.py"
    exp_py.write_text(exp_py.read_text().replace('[1, 2], "lr": [1e-3]', '[0, 1, 2], "lr": [1e-3, 1e-2]'))
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert sorted(executions(root)) == ["run001", "run002", "run003", "run004", "run005", "run006"]
    assert executions(root)[:2] == ["run001", "run002"], "the first two ran once, first"
    assert done.stderr.count("skip exp001/") == 2


def test_a_deleted_entry_stays_on_disk_listed_not_in_runs_and_its_number_is_not_reused(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2, 3))
    assert run_exp(root).returncode == 0
    set_runs(root, depth_runs(1, 3))
    listed = run_exp(root, "--list")
    assert listed.returncode == 0
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert list(lines) == ["run001", "run003", "run002"]
    assert "done (not in RUNS)" in lines["run002"] and "not in RUNS" not in lines["run001"]
    assert run_exp(root).returncode == 0  # records what RUNS holds now
    rows = {row["run"]: row for row in json.loads(run_kagexp(root, "runs", "--format", "json").stdout)}
    assert rows["exp001/run002"]["in RUNS"] == "no" and rows["exp001/run001"]["in RUNS"] == ""
    ls = json.loads(run_kagexp(root, "ls", "--format", "json").stdout)
    assert ls[0]["not in RUNS"] == 1 and ls[0]["done"] == 3
    set_runs(root, depth_runs(1, 3, 7))
    assert run_exp(root).returncode == 0
    assert executions(root)[-1] == "run004" and depths(root, "run004") == {"run004": 7}


def test_editing_a_done_entry_makes_a_new_run_and_keeps_the_old(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2))
    assert run_exp(root).returncode == 0
    set_runs(root, depth_runs(1, 4))
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert executions(root) == ["run001", "run002", "run003"]
    assert depths(root, "run002", "run003") == {"run002": 2, "run003": 4}
    assert json.loads((out_dir(root) / "run002" / "meta.json").read_text())["status"] == "done"


def test_the_same_override_twice_is_an_error_naming_both(tmp_path):
    root = make_project(tmp_path, runs=["model:\n  params:\n    max_depth: 2\n", "model: {params: {max_depth: 2}}"])
    done = run_exp(root)
    assert done.returncode == 2
    assert "this override is already in RUNS as run001" in done.stderr
    assert not out_dir(root).exists()


def test_runs_made_before_the_record_keep_their_numbers(tmp_path):
    """Projects whose runs were numbered by position: each run's meta holds its override hash."""
    root = make_project(tmp_path, runs=depth_runs(1, 2, 3))
    assert run_exp(root).returncode == 0
    (out_dir(root) / ".runs.json").unlink()
    set_runs(root, depth_runs(3, 9, 1, 2))
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert executions(root) == ["run001", "run002", "run003", "run004"]
    assert depths(root, "run004") == {"run004": 9}


def test_a_dry_run_names_new_entries_as_the_real_run_will_and_writes_nothing(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1))
    assert run_exp(root).returncode == 0
    record = (out_dir(root) / ".runs.json").read_bytes()
    set_runs(root, depth_runs(6, 1))
    dry = run_exp(root, "--dry-run")
    assert "exp001/run002: would run" in dry.stdout and "exp001/run001: would skip: done" in dry.stdout
    assert (out_dir(root) / ".runs.json").read_bytes() == record
    assert run_exp(root, "--only", "run002").returncode == 0 and depths(root, "run002") == {"run002": 6}


def test_a_named_run_whose_override_changed_is_still_an_error(tmp_path):
    root = make_project(tmp_path, runs={"deep": "model:\n  params:\n    max_depth: 5\n"})
    assert run_exp(root).returncode == 0
    set_runs(root, {"deep": "model:\n  params:\n    max_depth: 6\n"})
    done = run_exp(root)
    assert done.returncode == 2 and "deep done, but the override changed since" in done.stderr
