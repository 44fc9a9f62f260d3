"""The core loop through real `python exp/exp001/exp.py` processes."""

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml
from helpers import (
    depth_runs,
    executions,
    make_project,
    meta,
    out_dir,
    run_exp,
    set_runs,
    snapshot_tree,
    subprocess_env,
)


def test_runs_make_one_complete_folder_each(tmp_path):
    root = make_project(tmp_path)
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert executions(root) == ["run001", "run002", "run003"]
    run2 = out_dir(root) / "run002"
    assert sorted(p.name for p in run2.iterdir()) == [
        ".lock",
        "config.yml",
        "config_update.yml",
        "log.txt",
        "meta.json",
        "metrics.json",
        "metrics.jsonl",
        "summary.json",
    ]
    summary = json.loads((run2 / "summary.json").read_text())
    assert summary["status"] == "done" and summary["metrics"] == {"cv": 0.2}
    assert summary["config"]["model.params.max_depth"] == 2 and summary["config"]["lr"] == 0.001
    assert (run2 / "config_update.yml").read_text() == "model:\n  params:\n    max_depth: 2\n"
    merged = yaml.safe_load((run2 / "config.yml").read_text())
    assert merged["model"] == {"name": "tree", "params": {"max_depth": 2, "min_samples_leaf": 1}}
    assert merged["lr"] == 0.001
    assert json.loads((run2 / "metrics.json").read_text()) == {"cv": 0.2}
    (line,) = (run2 / "metrics.jsonl").read_text().splitlines()
    assert json.loads(line)["cv"] == 0.2 and json.loads(line)["_step"] is None
    assert (run2 / "log.txt").read_text() == "hello from run002\n"
    assert "hello from run002" in done.stdout
    info = meta(root, "run002")
    assert info["status"] == "done" and info["seed"] == 7 and info["attempt"] == 1
    assert info["duration"] >= 0 and info["ended"] >= info["started"]
    assert info["pid"] > 0 and info["host"] and info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["packages"]["pyyaml"] and info["git"] is None
    assert "exp001/run002 done in" in done.stderr and "cv=0.2" in done.stderr
    assert done.stderr.strip().endswith("s)") and "exp001: 3 done" in done.stderr


def test_second_call_skips_done_runs_and_runs_appended_ones(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    set_runs(root, depth_runs(1, 2, 3, 4))
    again = run_exp(root)
    assert again.returncode == 0, again.stderr
    assert executions(root) == ["run001", "run002", "run003", "run004"]
    assert "skip exp001/run001: done" in again.stderr
    assert "exp001: 3 skipped, 1 done" in again.stderr


def test_reformatted_override_still_counts_as_unchanged(tmp_path):
    root = make_project(tmp_path, runs=["model:\n  params:\n    max_depth: 2\n"])
    assert run_exp(root).returncode == 0
    set_runs(root, ["\n    # same meaning\n    model: {params: {max_depth: 2}}\n    "])
    again = run_exp(root)
    assert again.returncode == 0 and "skip exp001/run001: done" in again.stderr


def named_depths(*depths: int) -> dict[str, str]:
    """RUNS as a dict: its names are the runs' identity (a list's entries are their overrides)."""
    return dict(zip(("run001", "run002", "run003"), depth_runs(*depths)))


def test_changed_override_of_done_named_run_is_an_error(tmp_path):
    root = make_project(tmp_path, runs=named_depths(1, 2, 3))
    assert run_exp(root).returncode == 0
    set_runs(root, named_depths(1, 5, 3))
    before = snapshot_tree(root)
    changed = run_exp(root)
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines() == [
        "kagexp: error: exp001: run002 done, but the override changed since; "
        "re-run with --force --only run002 (the old attempt is kept) or give the changed run a new name"
    ]
    assert snapshot_tree(root) == before


def test_force_keeps_the_old_attempt(tmp_path):
    root = make_project(tmp_path, runs=named_depths(1, 2, 3))
    assert run_exp(root).returncode == 0
    set_runs(root, named_depths(1, 5, 3))
    forced = run_exp(root, "--force", "--only", "2")
    assert forced.returncode == 0, forced.stderr
    assert executions(root) == ["run001", "run002", "run003", "run002"]
    run2 = out_dir(root) / "run002"
    assert (run2 / "attempts" / "1" / "config_update.yml").read_text() == "model:\n  params:\n    max_depth: 2\n"
    assert json.loads((run2 / "attempts" / "1" / "metrics.json").read_text()) == {"cv": 0.2}
    assert (run2 / "config_update.yml").read_text() == "model:\n  params:\n    max_depth: 5\n"
    assert meta(root, "run002")["attempt"] == 2


def test_failing_run_is_recorded_and_the_next_still_runs(tmp_path):
    body = 'if cfg.model.params.max_depth == 2:\n    raise ValueError("depth two is cursed")\nctx.log({"cv": 1.0})\n'
    root = make_project(tmp_path, body=body)
    done = run_exp(root)
    assert done.returncode == 1
    assert meta(root, "run002")["status"] == "failed"
    assert meta(root, "run002")["error"] == "ValueError: depth two is cursed"
    error = (out_dir(root) / "run002" / "error.txt").read_text()
    assert "Traceback" in error and 'raise ValueError("depth two is cursed")' in error
    assert meta(root, "run003")["status"] == "done"
    assert "exp001/run002 FAILED" in done.stderr and "1 failed" in done.stderr
    # the failed run runs again next time; its failed attempt is kept
    (root / "exp/exp001/exp.py").write_text((root / "exp/exp001/exp.py").read_text().replace("cursed", "fine"))
    again = run_exp(root)
    assert again.returncode == 1
    assert (out_dir(root) / "run002" / "attempts" / "1" / "error.txt").exists()
    assert meta(root, "run002")["attempt"] == 2


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    root = make_project(tmp_path, body='raise RuntimeError("boom")\n')
    done = run_exp(root, "--fail-fast")
    assert done.returncode == 1
    assert (out_dir(root) / "run001" / "error.txt").exists()
    assert not (out_dir(root) / "run002").exists()
    assert "1 failed, 2 not run" in done.stderr


def test_dry_run_writes_nothing(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(1, 4) + ["", "+extra: [1, 2]\nlr: 0.5\n"])
    before = snapshot_tree(root)
    dry = run_exp(root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert snapshot_tree(root) == before
    assert not (root / "data").exists()
    assert dry.stdout.splitlines() == [
        "exp001/run001: would run",
        "    (base config)",
        "exp001/run002: would run",
        "    ~ model.params.max_depth: 1 -> 4",
        "exp001/run003: would run",
        "    (base config)",
        "exp001/run004: would run",
        "    ~ lr: 0.001 -> 0.5",
        "    + extra: [1, 2]",
    ]
    full = run_exp(root, "--dry-run", "--full", "--only", "run002")
    assert "exp001/run002: would run\n    seed: 7\n    lr: 0.001\n" in full.stdout
    assert "max_depth: 4" in full.stdout and "run001" not in full.stdout


def test_invalid_overrides_are_all_reported_and_nothing_runs(tmp_path):
    runs = [
        "model:\n  params:\n    max_depth: 2\n",
        "model:\n  params:\n    max_dpeth: 3\n",
        "dataset:\n  batch_size: big\n  +shuffle: true\n",
        "lr: [oops\n",
    ]
    root = make_project(tmp_path, runs=runs)
    before = snapshot_tree(root)
    bad = run_exp(root)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert lines[0].startswith("kagexp: error: exp/exp001/exp.py (override line 3): exp001/run002: unknown key")
    assert "exp001/run002: unknown key `model.params.max_dpeth`; did you mean `model.params.max_depth`?" in lines[0]
    assert "exp001/run003: `dataset.batch_size` is a string (big) here but an int (10)" in lines[1]
    assert "exp001/run004: invalid YAML" in lines[2]
    assert len(lines) == 3
    assert snapshot_tree(root) == before and executions(root) == []


def test_error_lines_point_into_exp_py(tmp_path):
    runs_src = '[\n    """\n    model:\n      params:\n        max_dpeth: 3\n    """,\n]'
    root = make_project(tmp_path, runs=runs_src)
    bad = run_exp(root)
    source = (root / "exp/exp001/exp.py").read_text().splitlines()
    line = int(bad.stderr.split("exp.py:")[1].split(":")[0])
    assert source[line - 1].strip() == "max_dpeth: 3"


def test_malformed_yaml_names_run_and_line(tmp_path):
    runs_src = '{\n    "deep": """\n    model:\n      params:\n\tmax_depth: 3\n    """,\n}'
    root = make_project(tmp_path, runs=runs_src)
    bad = run_exp(root)
    assert bad.returncode == 2
    source = (root / "exp/exp001/exp.py").read_text().splitlines()
    message = bad.stderr.strip()
    assert "exp001/deep: invalid YAML" in message and "tab" in message
    line = int(message.split("exp.py:")[1].split(":")[0])
    assert "\tmax_depth" in source[line - 1]


def test_missing_config_and_bad_runs_type(tmp_path):
    root = make_project(tmp_path)
    (root / "exp/exp001/config.yml").unlink()
    bad = run_exp(root)
    assert bad.returncode == 2
    assert (
        bad.stderr.strip() == "kagexp: error: exp/exp001/config.yml: missing; every experiment needs a base config.yml"
    )
    root2 = make_project(tmp_path / "p2", runs="[{'model': 1}]")
    bad2 = run_exp(root2)
    assert bad2.returncode == 2 and "RUNS entry 1 of the list must be a YAML string, not dict" in bad2.stderr


def test_only_with_unknown_run_suggests(tmp_path):
    root = make_project(tmp_path, runs={"small": "", "large": "model:\n  params:\n    max_depth: 9\n"})
    bad = run_exp(root, "--only", "lage")
    assert bad.returncode == 2
    assert "no run named 'lage' in RUNS; did you mean `large`?" in bad.stderr
    good = run_exp(root, "--only", "large")
    assert good.returncode == 0 and executions(root) == ["large"]


def test_list_shows_status(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root, "--only", "1").returncode == 0
    listing = run_exp(root, "--list").stdout.splitlines()
    assert listing[0].split() == ["run", "status", "attempt", "duration", "metrics"]
    assert listing[1].split()[:3] == ["run001", "done", "1"] and listing[1].endswith("cv=0.1")
    assert listing[2].split() == ["run002", "pending"]


def test_sigint_marks_the_run_interrupted(tmp_path):
    body = 'ctx.log({"cv": 0.5})\nprint("sleeping", flush=True)\ntime.sleep(30)\n'  # logged before the signal
    root = make_project(tmp_path, body=body)
    proc = subprocess.Popen(
        [sys.executable, "exp/exp001/exp.py"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert proc.stdout.readline() == "sleeping\n"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    info = meta(root, "run001")
    assert info["status"] == "interrupted" and info["ended"]
    assert json.loads((out_dir(root) / "run001" / "metrics.json").read_text()) == {"cv": 0.5}
    assert (out_dir(root) / "run001" / "log.txt").read_text() == "sleeping\n"
    assert not (out_dir(root) / "run002").exists()
    assert "exp001/run001 interrupted after" in stderr
    assert "exp001: 1 interrupted, 2 not run" in stderr and stderr.strip().endswith("kagexp: interrupted")


def test_sigterm_is_an_interruption_too(tmp_path):
    root = make_project(tmp_path, body='print("sleeping", flush=True)\ntime.sleep(30)\n')
    proc = subprocess.Popen(
        [sys.executable, "exp/exp001/exp.py"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "sleeping\n"
    proc.terminate()
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and meta(root, "run001")["status"] == "interrupted"


def test_killed_runner_leaves_a_stale_run_that_runs_again(tmp_path):
    body = 'if os.environ.get("HANG") and ctx.name == "run002":\n    print("hanging", flush=True)\n    time.sleep(60)\n'
    body += 'with open(ROOT / "executions.txt", "a") as f:\n    f.write(ctx.name + "\\n")\n'
    root = make_project(tmp_path, body=body)
    proc = subprocess.Popen(
        [sys.executable, "exp/exp001/exp.py"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**subprocess_env(), "HANG": "1"},
    )
    while proc.stdout.readline() != "hanging\n":
        pass
    proc.kill()
    proc.wait(timeout=10)
    assert meta(root, "run002")["status"] == "running"
    listing = run_exp(root, "--list").stdout
    assert "run002  stale" in listing
    again = run_exp(root)
    assert again.returncode == 0, again.stderr
    assert executions(root) == ["run001", "run002", "run003"]
    assert meta(root, "run002")["status"] == "done" and meta(root, "run002")["attempt"] == 2
    archived = json.loads((out_dir(root) / "run002" / "attempts" / "1" / "meta.json").read_text())
    assert archived["status"] == "stale"


def test_concurrent_runners_run_each_run_exactly_once(tmp_path):
    body = 'time.sleep(0.05)\nwith open(ROOT / "executions.txt", "a") as f:\n    f.write(ctx.name + "\\n")\n'
    root = make_project(tmp_path, runs=depth_runs(*range(1, 21)), body=body)
    procs = [
        subprocess.Popen(
            [sys.executable, "exp/exp001/exp.py"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ran = executions(root)
    assert sorted(ran) == [f"run{i:03d}" for i in range(1, 21)]
    assert all(meta(root, f"run{i:03d}")["status"] == "done" for i in range(1, 21))


def test_runs_with_same_code_share_one_snapshot(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root, "--only", "1,2").returncode == 0
    hashes = {meta(root, r)["code_hash"] for r in ("run001", "run002")}
    assert len(hashes) == 1
    (code_hash,) = hashes
    snapshots = [p.name for p in (out_dir(root) / ".code").iterdir()]
    assert snapshots == [code_hash]
    snap = out_dir(root) / ".code" / code_hash
    assert sorted(p.name for p in snap.iterdir()) == ["config.yml", "exp.py", "model.py"]
    (root / "exp/exp001/model.py").write_text("DEPTH = 2\n")
    assert run_exp(root, "--only", "3").returncode == 0
    assert meta(root, "run003")["code_hash"] != code_hash
    assert len(list((out_dir(root) / ".code").iterdir())) == 2
    assert (out_dir(root) / ".code" / code_hash / "model.py").read_text() == "DEPTH = 1\n"
    again = run_exp(root)
    assert "skip exp001/run001: done (code changed since; --force to re-run)" in again.stderr


def test_dirty_git_repo_saves_the_diff(tmp_path):
    root = make_project(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=root, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert run_exp(root, "--only", "1").returncode == 0
    clean = meta(root, "run001")["git"]
    assert clean["commit"] == commit and clean["branch"] == "main" and clean["dirty"] is False
    assert "diff" not in clean and not (out_dir(root) / ".diffs").exists()
    (root / "exp/exp001/model.py").write_text("DEPTH = 42\n")
    (root / "exp/exp001/notes.py").write_text("new = 1\n")
    assert run_exp(root, "--only", "2").returncode == 0
    dirty = meta(root, "run002")["git"]
    assert dirty["dirty"] is True and dirty["untracked"] == ["exp/exp001/notes.py"]
    assert dirty["diff"].startswith(".diffs/") and dirty["diff"].endswith(".diff")
    diff = (out_dir(root) / dirty["diff"]).read_text()
    assert "-DEPTH = 1" in diff and "+DEPTH = 42" in diff
    assert run_exp(root, "--only", "3").returncode == 0
    assert meta(root, "run003")["git"]["diff"] == dirty["diff"], "the same changes are stored once"
    assert len(list((out_dir(root) / ".diffs").iterdir())) == 1


def test_seed_is_applied_before_the_run(tmp_path):
    body = 'import random\nctx.log({"draw": random.random(), "seed": ctx.seed})\n'
    root = make_project(tmp_path, runs=["", "seed: 8\n"], body=body)
    assert run_exp(root).returncode == 0
    import random

    first = json.loads((out_dir(root) / "run001" / "metrics.json").read_text())
    second = json.loads((out_dir(root) / "run002" / "metrics.json").read_text())
    random.seed(7)
    assert first == {"draw": random.random(), "seed": 7}
    random.seed(8)
    assert second == {"draw": random.random(), "seed": 8}


def test_context_api(tmp_path):
    body = """\
import pandas as pd
assert ctx.exp == "exp001" and ctx.name == "run001"
assert ctx.out_dir == ROOT / "data/output/exp/exp001/run001"
assert ctx.input_dir == ROOT / "data/input"
for epoch in range(3):
    ctx.log({"loss": 1.0 / (epoch + 1)}, step=epoch)
ctx.log({"cv": 0.9})
ctx.save_submission(pd.DataFrame({"id": [1, 2], "target": [0, 1]}))
ctx.save_submission([{"id": 1, "target": 5}], name="rows.csv")
ctx.path("models/fold0.txt").write_text("weights")
try:
    ctx.path("../escape.txt")
except kagexp.KagexpError as exc:
    print("refused:", exc)
"""
    root = make_project(tmp_path, runs=[""], body=body)
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    run1 = out_dir(root) / "run001"
    assert (run1 / "submission.csv").read_text() == "id,target\n1,0\n2,1\n"
    assert (run1 / "rows.csv").read_text() == "id,target\n1,5\n"
    assert (run1 / "models/fold0.txt").read_text() == "weights"
    assert json.loads((run1 / "metrics.json").read_text()) == {"loss": 1 / 3, "cv": 0.9}
    history = [json.loads(line) for line in (run1 / "metrics.jsonl").read_text().splitlines()]
    assert [h["_step"] for h in history] == [0, 1, 2, None]
    assert "refused: exp001/run001: artifact path '../escape.txt' must stay inside the run folder" in done.stdout
    assert not (out_dir(root) / "escape.txt").exists()


def test_c_level_output_is_captured(tmp_path):
    # one write per line: stderr is unbuffered, so print() would write the text and its newline apart,
    # and another pipe's line may land between them in log.txt
    body = 'os.write(1, b"raw stdout\\n")\nos.system("echo from a child")\nsys.stderr.write("to stderr\\n")\n'
    root = make_project(tmp_path, runs=[""], body=body)
    done = run_exp(root)
    log = (out_dir(root) / "run001" / "log.txt").read_text()
    assert "raw stdout\n" in log and "from a child\n" in log and "to stderr\n" in log
    assert "raw stdout" in done.stdout and "to stderr" in done.stderr


def test_runs_in_parallel_do_not_cut_into_each_others_lines(tmp_path):
    # print() writes its pieces apart; the terminal copy must still get whole lines from each worker
    body = (
        "for i in range(40):\n"
        "    sys.stdout.write('line'); sys.stdout.flush(); time.sleep(0.002)\n"
        "    print('', i, 'of', ctx.name, flush=True)\n"
        "sys.stdout.write('no newline at the end'); sys.stdout.flush()\n"
    )
    root = make_project(tmp_path, runs=["+a: 1", "+a: 2"], body=body)
    done = run_exp(root, "--jobs", "2")
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.replace("no newline at the end", "").splitlines() if "line" in line]
    for run in ("run001", "run002"):
        mine = [line for line in printed if line.endswith(f"of {run}")]
        assert mine == [f"line {i} of {run}" for i in range(40)], printed
    assert len(printed) == 80, printed
    assert done.stdout.count("no newline at the end") == 2


def test_project_root_without_settings_file(tmp_path):
    root = make_project(tmp_path)
    (root / "kagexp.yml").unlink()
    done = run_exp(root, "--only", "1")
    assert done.returncode == 0 and meta(root, "run001")["status"] == "done"


def test_bad_settings_file(tmp_path):
    root = make_project(tmp_path, settings="name: x\nmetirc:\n  name: cv\n")
    bad = run_exp(root)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        f"kagexp: error: {root / 'kagexp.yml'}:2: unknown key `metirc`; did you mean `metric`?"
    )


def test_kagexp_run_command_is_the_same_as_the_script(tmp_path):
    root = make_project(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "kagexp", "run", "1", "--only", "run002"],
        cwd=root / "exp",
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    assert executions(root) == ["run002"]
    missing = subprocess.run(
        [sys.executable, "-m", "kagexp", "run", "exp009"],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "kagexp: error: exp/exp009/exp.py: no such experiment script (experiments: exp001)"
    )
    assert os.path.isdir(root / "exp")


def test_sys_exit_in_a_run_is_a_failure_and_its_traceback_is_logged(tmp_path):
    body = 'if ctx.name == "run001":\n    print("about to quit")\n    sys.exit(3)\nctx.log({"cv": 1.0})\n'
    root = make_project(tmp_path, body=body)
    done = run_exp(root)
    assert done.returncode == 1
    assert meta(root, "run001")["status"] == "failed" and meta(root, "run001")["error"] == "SystemExit: 3"
    assert meta(root, "run002")["status"] == "done" and meta(root, "run003")["status"] == "done"
    log = (out_dir(root) / "run001" / "log.txt").read_text()
    # stdout and stderr reach log.txt through two pipes: lines written at the same moment may swap
    assert "about to quit" in log and "Traceback (most recent call last):" in log and "SystemExit: 3" in log
    assert "SystemExit: 3" in done.stderr


def test_nan_metrics_are_written_as_null(tmp_path):
    body = 'ctx.log({"cv": float("nan"), "loss": float("inf"), "ok": 1.5})\n'
    root = make_project(tmp_path, runs=[""], body=body)
    assert run_exp(root).returncode == 0
    text = (out_dir(root) / "run001" / "metrics.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == {
        "cv": None,
        "loss": None,
        "ok": 1.5,
    }


def test_appending_a_run_is_not_a_code_change(tmp_path):
    root = make_project(tmp_path)
    assert run_exp(root).returncode == 0
    set_runs(root, depth_runs(1, 2, 3, 4))
    again = run_exp(root)
    assert "skip exp001/run001: done\n" in again.stderr
    assert meta(root, "run004")["code_hash"] == meta(root, "run001")["code_hash"]


def test_flag_mistakes_are_errors(tmp_path):
    root = make_project(tmp_path)
    empty_only = run_exp(root, "--only", "", "--force")
    assert empty_only.returncode == 2 and "--only names no run" in empty_only.stderr
    full = run_exp(root, "--full")
    assert full.returncode == 2 and "--full goes with --dry-run" in full.stderr
    assert executions(root) == []


def test_every_bad_run_name_is_reported(tmp_path):
    root = make_project(tmp_path, runs={"long sleep": "", "../escape": "", "fine": ""})
    bad = run_exp(root)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "kagexp: error: exp/exp001/exp.py: exp001: RUNS: invalid run name 'long sleep': use letters, digits, "
        "`_`, `-` and `.`, starting with a letter or digit",
        "kagexp: error: exp/exp001/exp.py: exp001: RUNS: invalid run name '../escape': `..` is not allowed in names",
    ]
    assert not (root / "data").exists()


def test_a_closed_pipe_is_not_an_error(tmp_path):
    root = make_project(tmp_path, runs=depth_runs(*range(1, 3001)))
    done = subprocess.run(
        f"{sys.executable} exp/exp001/exp.py --dry-run | head -1", shell=True, cwd=root, capture_output=True, text=True
    )
    assert done.stdout == "exp001/run001: would run\n"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
