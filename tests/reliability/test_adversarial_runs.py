"""Adversarial runs: metrics that cannot be written, runs that catch Ctrl-C, full and read-only
disks, odd things where kagexp keeps its own files, children that outlive their run.

The promise in each case: the run's failure is recorded as that run's failure (error.txt, status
`failed`) and the other runs go on; Ctrl-C always ends the loop with 130; a mistake in the output
folder is one line and exit 2 before anything runs; nothing is left `running`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import depth_runs, make_project, meta, out_dir, run_exp, run_kagexp, snapshot_tree, subprocess_env

from kagexp.runfolder import RunFolder, store_git_diff

# --- metrics that cannot be written --------------------------------------------------------

BAD_METRICS = {
    "tuple-key": ('{"conf": {(0, 1): 5}}', "metric `conf` has a key that is not a string: (0, 1)"),
    "int-key": ('{"conf": {1: 5}}', "metric `conf` has a key that is not a string: 1"),
    "nested-tuple-key": ('{"a": [{"b": {(1,): 2}}]}', "metric `a[0].b` has a key that is not a string"),
    "self-dict": ("(lambda d: (d.update(me=d), {'m': d})[1])({})", "metric `m.me` contains itself"),
    "self-list": ("(lambda l: (l.append(l), {'m': l})[1])([])", "metric `m[0]` contains itself"),
    "huge-int": ('{"big": 10**5000}', "metric `big` is an integer too large to record"),
    "str-raises": (
        '{"odd": type("Odd", (), {"__str__": lambda self: 1 / 0})()}',
        "metric `odd` cannot be written (ZeroDivisionError",
    ),
    "not-a-dict": ('[("cv", 1)]', "ctx.log takes a dict of metrics, not list"),
    "non-str-name": ("{3: 0.5}", "metric names are strings, not int 3"),
}


@pytest.mark.parametrize("case", list(BAD_METRICS), ids=list(BAD_METRICS))
def test_a_metric_that_cannot_be_written_fails_its_run_only(tmp_path, case):
    expression, message = BAD_METRICS[case]
    body = (
        'ctx.log({"before": 1})\n'
        f"if cfg.model.params.max_depth == 1:\n    ctx.log({expression})\n"
        'ctx.log({"cv": 0.5})\n'
    )
    root = make_project(tmp_path, runs=depth_runs(1, 2), body=body)
    done = run_exp(root)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr.split("exp001/run001 FAILED")[-1]
    failed = meta(root, "run001")
    assert failed["status"] == "failed" and message in failed["error"]
    assert message in (out_dir(root) / "run001" / "error.txt").read_text()
    assert json.loads((out_dir(root) / "run001" / "metrics.json").read_text()) == {"before": 1}
    assert meta(root, "run002")["status"] == "done", "the next run still ran"
    assert "exp001: 1 failed, 1 done" in done.stderr


NON_FINITE = {
    "nested-nan": ("{'m': {'x': float('nan')}}", {"m": {"x": None}}),
    "list-inf": ("{'m': [1.0, float('inf'), -float('inf')]}", {"m": [1.0, None, None]}),
    "deep": ("{'m': {'a': [{'b': float('nan')}]}}", {"m": {"a": [{"b": None}]}}),
    "top-nan": ("{'m': float('nan')}", {"m": None}),
}


@pytest.mark.parametrize("case", list(NON_FINITE), ids=list(NON_FINITE))
def test_nan_and_inf_anywhere_are_written_as_null(tmp_path, case):
    expression, expected = NON_FINITE[case]
    root = make_project(tmp_path, runs=depth_runs(1), body=f"ctx.log({expression})\n")
    assert run_exp(root).returncode == 0
    folder = out_dir(root) / "run001"
    for name in ("metrics.json", "metrics.jsonl", "summary.json"):
        text = (folder / name).read_text()
        assert "NaN" not in text and "Infinity" not in text, name
    assert json.loads((folder / "metrics.json").read_text()) == expected
    assert json.loads((folder / "summary.json").read_text())["metrics"] == expected


# --- Ctrl-C that the run catches -----------------------------------------------------------

CATCHING = {
    "exit-1": "    sys.exit(1)\n",
    "return": "    return\n",
    "raise-other": "    raise RuntimeError('stopped by the user')\n",
}


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("case", list(CATCHING), ids=list(CATCHING))
def test_ctrl_c_caught_by_the_run_still_stops_the_loop(tmp_path, case, jobs):
    body = (
        "import signal\n"
        "try:\n"
        "    print('waiting', ctx.name, flush=True)\n"
        "    time.sleep(20)\n"
        "except KeyboardInterrupt:\n"
        "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n" + CATCHING[case] + "ctx.log({'cv': 1})\n"
    )
    root = make_project(tmp_path, runs=depth_runs(1, 2, 3, 4), body=body)
    proc = subprocess.Popen(
        [sys.executable, "exp/exp001/exp.py", "--jobs", jobs],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        start_new_session=True,
    )
    waiting = [proc.stdout.readline() for _ in range(int(jobs))]
    assert all(line.startswith("waiting run00") for line in waiting), waiting
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    statuses = {run: RunFolder(out_dir(root) / run).status() for run in ("run001", "run002", "run003", "run004")}
    assert [statuses[f"run00{i}"] for i in range(1, int(jobs) + 1)] == ["interrupted"] * int(jobs)
    assert all(status == "pending" for run, status in statuses.items() if int(run[-1]) > int(jobs)), statuses
    lines = stderr.strip().splitlines()  # the run's own traceback (sys.exit, its error) may come first
    assert lines[-1] == "kagexp: interrupted", stderr
    assert lines[-2].startswith(f"exp001: {jobs} interrupted, {4 - int(jobs)} not run"), stderr


# --- disks that are full or read-only ---------------------------------------------------------


def _mount_tmpfs(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")


@pytest.fixture
def small_disk(tmp_path):
    """The project's output folder on a 256 KiB tmpfs."""
    target = tmp_path / "proj" / "data" / "output"
    _mount_tmpfs(target, "size=256k")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


FILLERS = {
    "before-start": None,  # the disk is full before the run starts
    "in-log": "ctx.log({'big': 'x' * 400_000})\n",  # full inside ctx.log (metrics.jsonl)
    "in-artifact": "ctx.path('weights.bin').write_bytes(b'0' * 400_000)\n",  # the run's own write fails
    "in-metrics": "ctx.log({'m%d' % i: 'y' * 200 for i in range(1500)})\n",  # at the end: metrics.json
}


@pytest.mark.parametrize("case", list(FILLERS), ids=list(FILLERS))
def test_a_full_disk_fails_runs_with_the_reason_and_no_traceback(tmp_path, small_disk, case):
    root = tmp_path / "proj"
    make_project(root, runs=depth_runs(1, 2), body=(FILLERS[case] or "") + "ctx.log({'cv': 0.5})\n")
    if FILLERS[case] is None:
        (small_disk / "ballast").write_bytes(b"0" * (256 * 1024 - 4096))
        with open(small_disk / "ballast", "ab") as f:
            try:
                f.write(b"0" * 65536)
            except OSError:
                pass
    done = run_exp(root, timeout=120)
    lines = done.stderr.strip().splitlines()
    if done.returncode == 2:  # found before any run started
        assert len(lines) == 1 and lines[0].startswith("kagexp: error: ") and "No space left" in lines[0]
    else:  # each run failed with the reason; the run's own traceback is its own (error.txt, log)
        assert done.returncode == 1, done.stderr
        assert lines[-1].startswith("exp001: ") and "failed" in lines[-1], lines[-1]
        assert "No space left on device" in done.stderr
    for run in ("run001", "run002"):
        folder = RunFolder(out_dir(root) / run)
        assert folder.status() in ("failed", "pending", "stale"), (run, folder.meta())


def test_a_read_only_output_folder_is_one_line(tmp_path):
    root = make_project(tmp_path / "proj", runs=depth_runs(1))
    assert run_exp(root).returncode == 0
    assert (
        subprocess.run(
            [sys.executable, "-m", "kagexp", "lb", "1/1", "0.5", "--force"], cwd=root, capture_output=True
        ).returncode
        == 0
    )
    target = root / "data" / "output"
    saved = tmp_path / "saved"
    shutil.copytree(target, saved, symlinks=True)
    _mount_tmpfs(target, "ro")
    try:
        for command in (
            [sys.executable, "exp/exp001/exp.py", "--force"],
            [sys.executable, "-m", "kagexp", "lb", "1/1", "0.7", "--force"],
        ):
            done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=subprocess_env())
            assert done.returncode == 2, (command, done.stderr)
            assert "Traceback" not in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("kagexp: error: ")
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


# --- kagexp's own names taken by something else ----------------------------------------------

LAYOUT = {
    "attempts-file": ("run001/attempts", "file", "must be a folder (kagexp keeps its attempts there)"),
    "attempts-link": ("run001/attempts", "link", "must be a folder (kagexp keeps its attempts there)"),
    "lock-folder": ("run001/.lock", "folder", "must be a file (kagexp keeps its .lock there)"),
    "code-root-file": (".code", "file", "must be a folder (kagexp keeps code snapshots there)"),
}


@pytest.mark.parametrize("case", list(LAYOUT), ids=list(LAYOUT))
def test_odd_things_where_kagexp_keeps_its_files_are_one_line(tmp_path, case):
    relative, kind, message = LAYOUT[case]
    root = make_project(tmp_path, runs=depth_runs(1, 2))
    assert run_exp(root, "--only", "2").returncode == 0
    path = out_dir(root) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    if kind == "file":
        path.write_text("x")
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(tmp_path)
    before = snapshot_tree(tmp_path)
    done = run_exp(root, "--force")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kagexp: error: ") and message in lines[0], lines
    assert snapshot_tree(tmp_path) == before


def test_a_code_snapshot_that_is_a_file_is_one_line(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 2))
    assert run_exp(root, "--only", "1").returncode == 0
    code_hash = meta(root, "run001")["code_hash"]
    snapshot = out_dir(root) / ".code" / code_hash
    shutil.rmtree(snapshot)
    snapshot.write_text("not a folder")
    before = snapshot_tree(tmp_path)
    done = run_exp(root)
    assert done.returncode == 2 and "must be a folder (kagexp keeps code snapshots there)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert snapshot_tree(tmp_path) == before


# --- runs that leave things behind, runs seen while starting -----------------------------------


def test_a_child_that_keeps_stdout_open_does_not_delay_the_run(tmp_path):
    child = "import time; time.sleep(2); print('late child', flush=True)"
    body = (
        "import subprocess\n"
        "if ctx.name == 'run001':\n"
        f"    subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "else:\n"
        "    time.sleep(4)\n"
        "ctx.log({'cv': 1})\n"
    )
    root = make_project(tmp_path, runs=depth_runs(1, 2), body=body)
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert meta(root, "run001")["duration"] < 1.5, "the run waited for the child"
    assert "late child\n" in done.stdout, "the child's output still reached the terminal"
    log = (out_dir(root) / "run001" / "log.txt").read_text()
    assert log == "late child\n", "and its run's log.txt, while the runner lived"
    assert (out_dir(root) / "run002" / "log.txt").read_text() == ""


def test_a_claimed_folder_reads_running_from_its_first_moment(tmp_path):
    from kagexp.runfolder import Claim

    folder = RunFolder(tmp_path / "run001")
    claim = Claim(folder)
    assert claim.acquire()
    try:
        assert folder.is_run() and folder.meta() is None and folder.status() == "running"
    finally:
        claim.release()
    assert not folder.is_run() and folder.status() == "pending"


def test_git_diff_is_stored_once_per_content_and_capped(tmp_path):
    first = store_git_diff(tmp_path, "diff --git a/x b/x\n+1\n")
    assert first == store_git_diff(tmp_path, "diff --git a/x b/x\n+1\n")
    assert (tmp_path / first["diff"]).read_text() == "diff --git a/x b/x\n+1\n"
    other = store_git_diff(tmp_path, "diff --git a/y b/y\n+2\n")
    assert other["diff"] != first["diff"] and len(list((tmp_path / ".diffs").iterdir())) == 2
    big = store_git_diff(tmp_path, "z" * 3 * 2**20, cap=2**20)
    assert big == {"diff": None, "diff_note": "not stored: 3.0 MB, over the 1 MB cap"}
    assert len(list((tmp_path / ".diffs").iterdir())) == 2


@pytest.mark.parametrize("name", ["meta.json", "summary.json", "metrics.json", "metrics.jsonl", "lb.jsonl"])
def test_a_fifo_in_a_run_folder_never_hangs_a_listing(tmp_path, name):
    root = make_project(tmp_path, runs=depth_runs(1, 2))
    assert run_exp(root).returncode == 0
    target = out_dir(root) / "run001" / name
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    for args in (["runs", "--format", "json"], ["ls"], ["show", "1/1"]):
        done = run_kagexp(root, *args, timeout=30)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
    rows = json.loads(
        subprocess.run(
            [sys.executable, "-m", "kagexp", "runs", "--format", "json"], cwd=root, capture_output=True, text=True
        ).stdout
    )
    assert [r["status"] for r in rows] == ["done", "done"], "listings read the intact summary"
    if name == "meta.json":
        show = subprocess.run([sys.executable, "-m", "kagexp", "show", "1/1"], cwd=root, capture_output=True, text=True)
        assert show.stdout.startswith("exp001/run001  corrupt")
