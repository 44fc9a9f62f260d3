"""The run folder has one owner, reads validate shape, and an experiment runs in one library call."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import depth_runs, make_project, out_dir, run_exp, run_kagexp

import kagexp
from kagexp import runfolder
from kagexp.runfolder import FORMAT, RunFolder

PACKAGE = Path(kagexp.__file__).parent


def test_only_runfolder_spells_the_run_folder_file_names():
    names = ("meta.json", "summary.json", "metrics.json", "metrics.jsonl", "config_update.yml", "lb.jsonl")
    names += ("error.txt", "log.txt", ".diffs", ".index.json", ".code", "attempts", ".lock")
    names += ("refs.jsonl", "submissions.jsonl", "oof.npz", "test.npz")
    spelled: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in names:
            if re.search(rf"[\"']{re.escape(name)}[\"']", text):
                spelled.setdefault(name, []).append(path.relative_to(PACKAGE).as_posix())
    assert spelled == {name: ["runfolder.py"] for name in names}


def test_a_notebook_runs_an_experiment_in_one_call(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2, 3))
    runs = depth_runs(1, 2, 3)

    def fn(cfg, ctx):
        if cfg.model.params.max_depth == 2:
            raise ValueError("depth two is broken")
        ctx.log({"cv": cfg.model.params.max_depth / 10})

    exp = kagexp.Experiment(root / "exp" / "exp001", runs)
    results = exp.run(fn, capture=False)
    assert [(r.name, r.status) for r in results] == [("run001", "done"), ("run002", "failed"), ("run003", "done")]
    assert results[0].metrics == {"cv": 0.1} and results[2].metrics == {"cv": 0.3}
    assert results[1].message == "ValueError: depth two is broken"
    assert "ValueError: depth two is broken" in (out_dir(root) / "run002" / "error.txt").read_text()

    again = kagexp.Experiment(root / "exp" / "exp001", runs).run(fn, only=["run001", "3"], capture=False)
    assert [(r.name, r.status, r.message) for r in again] == [
        ("run001", "skipped", "done"),
        ("run003", "skipped", "done"),
    ]


def test_one_call_with_fail_fast_and_processes_reports_what_did_not_run(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2, 3))

    def fn(cfg, ctx):
        raise RuntimeError(f"no {cfg.model.params.max_depth}")

    results = kagexp.Experiment(root / "exp" / "exp001", depth_runs(1, 2, 3)).run(fn, fail_fast=True, capture=False)
    assert [r.status for r in results] == ["failed", "not run", "not run"]

    forked = kagexp.Experiment(root / "exp" / "exp001", depth_runs(1, 2, 3)).run(
        lambda cfg, ctx: ctx.log({"depth": cfg.model.params.max_depth}), jobs=2, force=True, capture=False
    )
    assert [(r.name, r.status, r.metrics) for r in forked] == [
        ("run001", "done", {"depth": 1}),
        ("run002", "done", {"depth": 2}),
        ("run003", "done", {"depth": 3}),
    ]
    assert (out_dir(root) / "run001" / "attempts" / "1" / "error.txt").is_file()


def test_meta_and_summary_carry_the_format_version(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1))
    assert run_exp(root).returncode == 0
    folder = out_dir(root) / "run001"
    meta = json.loads((folder / "meta.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    assert meta["format"] == summary["format"] == FORMAT == 1
    assert summary["status"] == meta["status"] == "done" and summary["metrics"] == {"cv": 0.1}


WRONG_SHAPES = {
    "meta-list": ("meta.json", "[1, 2]"),
    "meta-string": ("meta.json", '"done"'),
    "meta-status-number": ("meta.json", '{"status": 3}'),
    "meta-status-unknown": ("meta.json", '{"status": "finished"}'),
    "summary-list": ("summary.json", "[]"),
    "summary-config-string": ("summary.json", None),
    "metrics-list": ("metrics.json", "[0.5]"),
    "history-not-objects": ("metrics.jsonl", '[1]\n"x"\n{"cv": 0.7, "_step": null}\n'),
    "lb-not-numbers": ("lb.jsonl", '{"score": "high"}\n[0.9]\n{"score": true}\n'),
    "index-wrong-rows": (".index.json", '{"version": 1, "runs": {"run001": [1, "x"]}}'),
    "index-wrong-columns": (
        ".index.json",
        '{"version": 2, "runs": ["run001"], "mtimes": [1]}\n["metrics", "cv", [5]]\t[1]\n',
    ),
    "index-no-tab": (
        ".index.json",
        '{"version": 2, "runs": ["run001"], "mtimes": [1]}\n["run", "status", []] ["done"]\n',
    ),
}


@pytest.mark.parametrize("case", list(WRONG_SHAPES), ids=list(WRONG_SHAPES))
def test_files_of_the_wrong_shape_never_crash_a_listing(tmp_path, case):
    root = make_project(tmp_path, runs=depth_runs(1, 2))
    assert run_exp(root).returncode == 0
    name, text = WRONG_SHAPES[case]
    run_dir = out_dir(root) / "run001"
    target = runfolder.index_path(out_dir(root)) if name == ".index.json" else run_dir / name
    if text is None:  # a summary that parses, with a string where the config mapping belongs
        summary = json.loads(target.read_text())
        text = json.dumps({**summary, "config": "model.params.max_depth=1"})
    target.parent.mkdir(exist_ok=True)  # `.listing/`: made by the first listing
    target.write_text(text)
    if name == "meta.json":  # else listings read the intact summary, and rightly so
        (run_dir / "summary.json").unlink()

    for args in (["runs", "--format", "json"], ["ls"], ["show", "exp001/run001"], ["diff", "1/1", "1/2"]):
        done = run_kagexp(root, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr
    rows = {row["run"]: row for row in json.loads(run_kagexp(root, "runs", "--format", "json").stdout)}
    assert rows["exp001/run002"]["status"] == "done"
    expected = "corrupt" if name == "meta.json" else "done"
    assert rows["exp001/run001"]["status"] == expected
    assert run_kagexp(root, "show", "1/1").stdout.startswith(f"exp001/run001  {expected}")
    if name in ("summary.json", "metrics.json", ".index.json"):
        assert rows["exp001/run001"]["cv"] == 0.1, "rebuilt from the other files"
    if name == "metrics.jsonl":
        assert RunFolder(run_dir).history() == [{"cv": 0.7, "_step": None}]
    if name == "lb.jsonl":
        assert RunFolder(run_dir).lb_history() == [] and "lb" not in rows["exp001/run001"]


def test_concurrent_leaderboard_scores_all_land(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1))
    assert run_exp(root).returncode == 0
    calls = [
        subprocess.Popen(
            [sys.executable, "-m", "kagexp", "lb", "exp001/run001", f"0.{i}", "--force"],  # no submission.csv
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(1, 9)
    ]
    assert all(call.wait(timeout=60) == 0 for call in calls)
    history = RunFolder(out_dir(root) / "run001").lb_history()
    assert sorted(entry["score"] for entry in history) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    summary = json.loads((out_dir(root) / "run001" / "summary.json").read_text())
    assert summary["lb"] == history[-1]["score"]


BLOCK_FCNTL = "import sys; sys.modules['fcntl'] = None; "


def test_listing_works_without_fcntl_and_running_says_why_not(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2))
    assert run_exp(root).returncode == 0
    for args in (["runs"], ["ls"], ["show", "1/1"], ["diff", "1/1", "1/2"]):
        code = BLOCK_FCNTL + f"sys.argv = ['kagexp', *{args!r}]; from kagexp.cli import main; main()"
        done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
        assert "exp001/run001" in done.stdout or "exp001" in done.stdout
    (root / "exp" / "exp001" / "exp.py").write_text(
        (root / "exp" / "exp001" / "exp.py").read_text().replace("import kagexp\n", BLOCK_FCNTL + "\nimport kagexp\n")
    )
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    done = run_exp(root, "--force")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "kagexp: error: running experiments needs a POSIX system (Linux, macOS; on Windows, WSL): "
        "run folders are claimed with flock; listing and comparing work everywhere"
    ]
    assert sorted(p.relative_to(root) for p in root.rglob("*") if "__pycache__" not in p.parts) == [
        p for p in before if "__pycache__" not in p.parts
    ]


def test_archived_running_attempt_reads_stale(tmp_path):
    folder = RunFolder(tmp_path / "run001")
    folder.path.mkdir()
    folder.write_meta({"status": "running", "pid": 1})
    assert folder.status() == "stale", "nobody holds its claim"
    assert folder.archive_attempt() == 2
    assert RunFolder(folder.path / "attempts" / "1").meta()["status"] == "stale"
    assert folder.meta() is None and folder.status() == "pending"


def test_code_dir_refuses_hashes_that_leave_the_folder(tmp_path):
    (tmp_path / ".code" / "0123abcd89ef0123").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    assert runfolder.code_dir(tmp_path, "0123abcd89ef0123") == tmp_path / ".code" / "0123abcd89ef0123"
    for bad in ("../secret", "../../../../secret", "..", "a/b", None, 3, ["x"], "0123ABCD89EF0123", "fffffffff"):
        assert runfolder.code_dir(tmp_path, bad) is None, bad


@pytest.mark.parametrize(
    "lines, kept",
    [
        (['{"a": 1}', "", '{"b": 2.5}', "  "], [{"a": 1}, {"b": 2.5}]),  # blank lines: nothing
        (['{"a": 1}', '{"b": [1, 2', '{"c": 3}'], [{"a": 1}, {"c": 3}]),  # cut short by a crash
        (['{"a": 1}', "[1, 2]", "7", '{"c": 3}'], [{"a": 1}, {"c": 3}]),  # not objects
        (['{"a": 1}, {"b": 2}', '{"c": 3}'], [{"c": 3}]),  # two objects on a line: not a line of ours
        (['{"a": [1', "2]}", '{"c": 3}'], [{"c": 3}]),  # two halves that would join into one
    ],
)
def test_history_lines_are_read_one_object_per_line_whatever_their_neighbours(tmp_path, lines, kept):
    """The file is parsed whole when it can be (the dashboard reads every run's); that must keep
    exactly the lines the line-by-line reading keeps."""
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert runfolder.read_jsonl(path) == kept
