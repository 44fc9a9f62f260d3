"""Faults, with real processes: kill -9 at random moments, Ctrl-C, concurrent runners and `kagexp new`,
stale claims, and writes that fail half-way.

Every run of these experiments appends `start NAME PID` and, as the very last thing it does, `end NAME PID`
to `executions.txt` (opened with O_APPEND, one `write` per line), so the test can count how many times
each run started and completed, whatever happened to the processes.

What "nothing lost, nothing run twice" means under kill -9, as these tests check it:

- every JSON and YAML file under the output folder parses; temporary files of a killed writer
  (`.NAME.PID.N.tmp`, `.HASH.PID.tmp/`) may be left behind, are never read, and are not checked;
- `metrics.jsonl` gets one `write` per line, so every line that ends with a newline parses; only a
  last line without its newline could be cut (a kill while the kernel copies a line that straddles
  two pages), and is allowed;
- a run that reads `done` has its metrics;
- running again completes every run, and a run that read `done` never runs again: each completion
  that kagexp recorded happens exactly once. A run killed after its function returned but before
  `done` was recorded did complete, unrecorded, and runs once more (at-least-once: no tool can do
  better without a transaction spanning the user's code); the count allows exactly that.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import depth_runs, make_project, out_dir, run_exp, snapshot_tree, subprocess_env

BODY = """\
import random
fd = os.open(ROOT / "executions.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
try:
    os.write(fd, f"start {ctx.name} {os.getpid()}\\n".encode())
    ctx.log({"progress": 0.5}, step=0)
    if os.environ.get("KAGEXP_TEST_BARRIER"):  # wait until that many runners are running runs
        with open(ROOT / "ready.txt", "a") as ready:
            ready.write(f"{os.getpid()}\\n")
        deadline = time.monotonic() + 30
        while len(set((ROOT / "ready.txt").read_text().split())) < int(os.environ["KAGEXP_TEST_BARRIER"]):
            assert time.monotonic() < deadline, "the other runners never came"
            time.sleep(0.01)
    if ctx.name == os.environ.get("KAGEXP_TEST_BLOCK"):
        time.sleep(60)
    if ctx.name == os.environ.get("KAGEXP_TEST_KILL_RUN"):
        import kagexp.files
        write_json, kill_at = kagexp.files.write_json, os.environ["KAGEXP_TEST_KILL_AT"]

        def dying_write_json(path, obj):
            if path.name == kill_at:
                os.kill(os.getpid(), 9)
            write_json(path, obj)

        kagexp.files.write_json = dying_write_json
    rng = random.Random(f"{os.environ.get('KAGEXP_TEST_SEED')}-{ctx.name}-{ctx.attempt}")
    time.sleep(rng.random() * float(os.environ.get("KAGEXP_TEST_SLEEP", "0.03")))
    ctx.log({"cv": cfg.model.params.max_depth / 100}, step=1)
    os.write(fd, f"end {ctx.name} {os.getpid()}\\n".encode())
finally:
    os.close(fd)
"""

# Flip to True once a run writes summary.json before meta.json reads `done`
# (see test_kill_between_done_and_summary_json): the random kills then check it too.
CHECK_SUMMARY_OF_DONE_RUNS = True


def names(count: int) -> list[str]:
    return [f"run{i:03d}" for i in range(1, count + 1)]


def project(root: Path, runs: int) -> Path:
    return make_project(root, runs=depth_runs(*range(1, runs + 1)), body=BODY)


def env(**values: str) -> dict:
    return {**subprocess_env(), **{f"KAGEXP_TEST_{k.upper()}": v for k, v in values.items()}}


def start(root: Path, *args: str, **values: str) -> subprocess.Popen:
    """exp.py in the background; SIGINT is reset to its default so Python turns it into
    KeyboardInterrupt even when the test runner was started with SIGINT ignored."""
    return subprocess.Popen(
        [sys.executable, "exp/exp001/exp.py", *args],
        cwd=root,
        env=env(**values),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def events(root: Path) -> tuple[Counter, Counter]:
    """How many times each run started and completed, from executions.txt."""
    path = root / "executions.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    starts = Counter(line.split()[1] for line in lines if line.startswith("start "))
    ends = Counter(line.split()[1] for line in lines if line.startswith("end "))
    return starts, ends


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def started(root: Path, run: str) -> bool:
    return events(root)[0][run] > 0


def is_temporary(path: Path, root: Path) -> bool:
    return any(part.startswith(".") and part.endswith(".tmp") for part in path.relative_to(root).parts)


def check_files_parse(output: Path) -> None:
    """Every JSON and YAML file kagexp wrote under `output` parses; complete jsonl lines parse."""
    for path in sorted(output.rglob("*")):
        if not path.is_file() or is_temporary(path, output):
            continue
        text = path.read_text(encoding="utf-8", errors="strict") if path.suffix in (".json", ".yml", ".jsonl") else ""
        if path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".yml":
            yaml.safe_load(text)
        elif path.suffix == ".jsonl":
            complete = text.split("\n")[:-1]  # the part after the last newline may be cut
            for line in complete:
                assert isinstance(json.loads(line), dict), f"{path}: {line!r}"


def metas(root: Path, runs: list[str]) -> dict[str, dict | None]:
    found = {}
    for run in runs:
        path = out_dir(root) / run / "meta.json"
        found[run] = json.loads(path.read_text()) if path.exists() else None
    return found


def check_done_runs_complete(root: Path, runs: list[str]) -> set[str]:
    """Every `done` run has its metrics (and summary, see CHECK_SUMMARY_OF_DONE_RUNS); returns them."""
    done = set()
    for run, meta in metas(root, runs).items():
        if meta is None:
            continue
        assert meta["status"] in ("running", "done"), f"{run}: {meta['status']}"
        if meta["status"] != "done":
            continue
        done.add(run)
        folder = out_dir(root) / run
        assert json.loads((folder / "metrics.json").read_text())["cv"] == int(run[3:]) / 100, run
        if CHECK_SUMMARY_OF_DONE_RUNS:
            assert json.loads((folder / "summary.json").read_text())["status"] == "done", run
    return done


# --- kill -9 at random moments ----------------------------------------------------------------


def kill_at_a_random_moment(root: Path, rng: random.Random, seed: int, left: int) -> None:
    """Start a runner and SIGKILL it: while it starts (validation, provenance) one time in ten, else
    0-30 ms after a randomly chosen run among the `left` ones not done has started."""
    already = sum(events(root)[0].values())
    runner = start(root, seed=str(seed))
    try:
        if rng.random() < 0.1 or not left:
            time.sleep(rng.uniform(0, 0.4))
        else:
            target = already + rng.randint(1, left)
            wait_for(lambda: sum(events(root)[0].values()) >= target or runner.poll() is not None)
            time.sleep(rng.uniform(0, 0.03))
    finally:
        runner.kill()
        runner.wait(timeout=10)


@pytest.mark.parametrize("seed", range(20))
def test_kill_9_at_a_random_moment_loses_nothing_and_runs_nothing_twice(tmp_path, seed):
    """30 short runs; the runner is killed with SIGKILL at a random moment, half of the time twice
    (the second runner archives and re-runs the killed run), then run to completion. After each
    runner: a run that read done before it did not start again, and no run started twice in it. At the
    end each run completed once, plus once per kill that hit it after its last line but before `done`."""
    rng = random.Random(seed)
    runs = names(30)
    root = project(tmp_path / "proj", len(runs))
    killed_running: set[str] = set()
    done = set()
    starts, ends, unrecorded = Counter(), Counter(), Counter()
    for _ in range(2 if rng.random() < 0.5 else 1):
        kill_at_a_random_moment(root, rng, seed, left=len(runs) - len(done))
        check_files_parse(root / "data/output")
        now_done, now_starts = check_done_runs_complete(root, runs), events(root)[0]
        check_runner(runs, done, starts, now_starts)
        running = {run for run, meta in metas(root, runs).items() if meta and meta["status"] == "running"}
        now_ends = events(root)[1]
        # killed after the run's last line, before `done`: it completed, unrecorded, and will run again
        unrecorded.update(run for run in running if now_starts[run] > starts[run] and now_ends[run] > ends[run])
        killed_running |= running
        done, starts, ends = now_done, now_starts, now_ends

    final = subprocess.run(
        [sys.executable, "exp/exp001/exp.py"],
        cwd=root,
        env=env(seed=str(seed)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr
    check_files_parse(root / "data/output")
    assert check_done_runs_complete(root, runs) == set(runs)
    final_starts, final_ends = events(root)
    check_runner(runs, done, starts, final_starts)
    for run in set(runs) - done:
        assert final_starts[run] == starts[run] + 1, f"{run} should have started once more"
        assert final_ends[run] == ends[run] + 1, f"{run} should have completed once more"
    for run in runs:
        assert final_ends[run] == 1 + unrecorded[run], f"{run} completed {final_ends[run]} times"
    final_metas = metas(root, runs)
    for run in killed_running:
        attempts = out_dir(root) / run / "attempts"
        archived = [json.loads(p.read_text()) for p in attempts.glob("*/meta.json")]
        assert "stale" in [m["status"] for m in archived], f"{run}: the killed attempt is not archived as stale"
        assert final_metas[run]["attempt"] >= 2


def check_runner(runs: list[str], done_before: set[str], starts_before: Counter, starts_after: Counter) -> None:
    for run in runs:
        if run in done_before:
            assert starts_after[run] == starts_before[run], f"{run} read done, and started again"
        assert starts_after[run] - starts_before[run] <= 1, f"{run} started twice in one runner"


def test_kill_between_the_end_of_a_run_and_done_runs_it_once_more(tmp_path):
    """Killed after run002's function returned, while kagexp writes its last metrics.json: the
    completion was never recorded, so the next runner runs run002 again (at-least-once), with the
    killed attempt kept as stale."""
    root = project(tmp_path / "proj", 3)
    runner = start(root, kill_run="run002", kill_at="metrics.json")
    assert runner.wait(timeout=30) == -signal.SIGKILL
    assert events(root)[1]["run002"] == 1
    assert metas(root, ["run002"])["run002"]["status"] == "running"
    final = run_exp(root)
    assert final.returncode == 0, final.stderr
    starts, ends = events(root)
    assert (starts["run002"], ends["run002"]) == (2, 2) and ends["run001"] == 1 and ends["run003"] == 1
    folder = out_dir(root) / "run002"
    assert json.loads((folder / "attempts/1/meta.json").read_text())["status"] == "stale"
    assert json.loads((folder / "meta.json").read_text())["attempt"] == 2


def test_kill_between_done_and_summary_json(tmp_path):
    root = project(tmp_path / "proj", 3)
    runner = start(root, kill_run="run002", kill_at="summary.json")
    assert runner.wait(timeout=30) == -signal.SIGKILL
    folder = out_dir(root) / "run002"
    if json.loads((folder / "meta.json").read_text())["status"] == "done":
        assert (folder / "summary.json").is_file(), "run002 reads done but has no summary.json"
    final = run_exp(root)
    assert final.returncode == 0, final.stderr
    assert json.loads((folder / "summary.json").read_text())["status"] == "done"


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_ends_the_run_as_interrupted_with_its_files_intact(tmp_path, signum):
    root = project(tmp_path / "proj", 3)
    runner = start(root, block="run002")
    try:
        wait_for(lambda: started(root, "run002"))
        runner.send_signal(signum)
        stderr = runner.communicate(timeout=20)[1]
    finally:
        runner.kill()
    assert runner.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "exp001/run002 interrupted" in stderr
    folder = out_dir(root) / "run002"
    check_files_parse(root / "data/output")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["ended"] and meta["duration"] >= 0
    assert json.loads((folder / "summary.json").read_text())["status"] == "interrupted"
    assert json.loads((folder / "metrics.json").read_text()) == {"progress": 0.5}
    assert yaml.safe_load((folder / "config.yml").read_text())["model"]["params"]["max_depth"] == 2
    assert (folder / "log.txt").is_file()
    starts, ends = events(root)
    assert starts == {"run001": 1, "run002": 1} and ends == {"run001": 1}, "run003 must not start"

    again = run_exp(root)
    assert again.returncode == 0, again.stderr
    assert json.loads((folder / "attempts/1/meta.json").read_text())["status"] == "interrupted"
    assert json.loads((folder / "meta.json").read_text())["status"] == "done"
    assert events(root)[1] == {"run001": 1, "run002": 1, "run003": 1}


# --- concurrent runners ---------------------------------------------------------------------


def test_four_concurrent_runners_run_each_run_exactly_once(tmp_path):
    runs = names(40)
    root = project(tmp_path / "proj", len(runs))
    runners = [start(root, seed=str(i), sleep="0.04", barrier="4") for i in range(4)]
    try:
        errors = [runner.communicate(timeout=60)[1] for runner in runners]
    finally:
        for runner in runners:
            runner.kill()
    shown = "\n".join(errors)
    for runner, stderr in zip(runners, errors):
        assert runner.returncode == 0, stderr
        assert "Traceback" not in stderr
    starts, ends = events(root)
    assert starts == dict.fromkeys(runs, 1), f"a run started twice, or never: {starts}\n{shown}"
    assert ends == dict.fromkeys(runs, 1), f"{ends}\n{shown}"
    check_files_parse(root / "data/output")
    assert check_done_runs_complete(root, runs) == set(runs)
    found = metas(root, runs)
    assert all(m["attempt"] == 1 for m in found.values())
    assert not list(out_dir(root).glob("run*/attempts")), "a run was claimed twice"
    assert len({m["pid"] for m in found.values()}) == 4, "the runners did not share the work"


def test_two_kagexp_new_at_once_one_wins_the_other_says_so(tmp_path):
    root = make_project(tmp_path / "proj")
    features = root / "exp/exp001/features"
    features.mkdir()
    for i in range(800):  # a copy that takes a while, so that the two copies overlap
        (features / f"f{i:04d}.py").write_text(f"VALUE = {i}\n" * 40)
    source = snapshot_tree(root / "exp/exp001")
    for attempt in range(3):
        racers = [
            subprocess.Popen(
                [sys.executable, "-m", "kagexp", "new", "exp002", "--from", "exp001", "-m", note],
                cwd=root,
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for note in ("note A", "note B")
        ]
        outputs = [racer.communicate(timeout=60) for racer in racers]
        codes = [racer.returncode for racer in racers]
        assert sorted(codes) == [0, 2], outputs
        winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
        assert outputs[winner][0].startswith("created exp/exp002 from exp001"), outputs[winner]
        error = outputs[loser][1]
        assert error.startswith("kagexp: error: ") and len(error.splitlines()) == 1, error
        assert "exp/exp002" in error and "already exists" in error
        assert sorted(os.listdir(root / "exp")) == ["exp001", "exp002"], "half copy or temporary folder left"
        copy = snapshot_tree(root / "exp/exp002")
        lineage = yaml.safe_load(copy.pop("lineage.yml"))
        assert copy == source, f"round {attempt}: the copy differs from its source"
        assert lineage["parent"] == "exp001" and lineage["note"] == ("note A", "note B")[winner]
        shutil.rmtree(root / "exp/exp002")


def test_six_kagexp_new_without_a_name_each_get_their_own_number(tmp_path):
    root = make_project(tmp_path / "proj")
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "kagexp", "new", "-m", f"racer {i}"],
            cwd=root,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 6, outputs
    made = sorted(out.split()[1] for out, _ in outputs)
    assert made == [f"exp/exp00{i}" for i in range(2, 8)], made
    assert sorted(os.listdir(root / "exp")) == [f"exp00{i}" for i in range(1, 8)], "a temporary folder was left"
    notes = {yaml.safe_load((root / "exp" / f"exp00{i}" / "lineage.yml").read_text())["note"] for i in range(2, 8)}
    assert notes == {f"racer {i}" for i in range(6)}


# --- stale claims -----------------------------------------------------------------------------


def kill_9_during(root: Path, run: str) -> None:
    runner = start(root, block=run)
    try:
        wait_for(lambda: started(root, run))
    finally:
        runner.kill()
        runner.wait(timeout=10)


def hand_made_stale(root: Path, run: str) -> None:
    """A `running` meta.json of a process that no longer exists, and no lock file at all."""
    folder = out_dir(root) / run
    folder.mkdir(parents=True)
    (folder / "config_update.yml").write_text("model:\n  params:\n    max_depth: 1\n")
    meta = {"exp": "exp001", "run": run, "status": "running", "attempt": 1, "pid": 2**22 + 7, "host": "gone"}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("make_stale", [kill_9_during, hand_made_stale], ids=["kill-9", "dead-pid-no-lock"])
def test_a_stale_claim_is_recovered_by_the_next_runner(tmp_path, make_stale):
    root = project(tmp_path / "proj", 2)
    make_stale(root, "run001")
    listed = run_exp(root, "--list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [["run001", "stale"], ["run002", "pending"]]

    again = run_exp(root)
    assert again.returncode == 0, again.stderr
    folder = out_dir(root) / "run001"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "done" and meta["attempt"] == 2
    assert json.loads((folder / "attempts/1/meta.json").read_text())["status"] == "stale"
    assert events(root)[1] == {"run001": 1, "run002": 1}
    check_files_parse(root / "data/output")


# --- writes that fail half-way (a full disk) ----------------------------------------------------


class _Proxy:
    """A module whose attributes are those of `module`, except the ones given."""

    def __init__(self, module, **overrides) -> None:
        self._module, self._overrides = module, overrides

    def __getattr__(self, name: str):
        return self._overrides[name] if name in self._overrides else getattr(self._module, name)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


class _HalfWriter:
    """A file object that writes half of what it is given, then fails as a full disk does."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> int:
        os.write(self.fd, data[: len(data) // 2])
        _disk_full()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def _half_copy(src, dst, *args, **kwargs):
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: len(data) // 2])
    _disk_full()


WRITERS = {
    "write_bytes": lambda files, path, new: files.write_bytes(path, new.encode()),
    "write_text": lambda files, path, new: files.write_text(path, new),
    "write_json": lambda files, path, new: files.write_json(path, json.loads(new)),
    "copy_file": lambda files, path, new: files.copy_file(path.with_name("source.json"), path),
}


@pytest.mark.parametrize("fail_at", ["write", "rename"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch, writer, fail_at):
    from kagexp import files

    old, new = '{"cv": 0.5, "note": "old"}\n', json.dumps({"cv": 0.9, "note": "new" * 1000})
    target = tmp_path / "metrics.json"
    target.write_text(old)
    (tmp_path / "source.json").write_text(new)
    if fail_at == "rename":
        monkeypatch.setattr(files, "os", _Proxy(os, replace=_disk_full))
    else:
        monkeypatch.setattr(files, "os", _Proxy(os, fdopen=lambda fd, mode="wb": _HalfWriter(fd)))
        monkeypatch.setattr(shutil, "copyfile", _half_copy)  # files imports shutil where it copies
    with pytest.raises(OSError) as raised:
        WRITERS[writer](files, target, new)
    assert raised.value.errno == errno.ENOSPC
    assert target.read_text() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "source.json"], "temporary file left"
