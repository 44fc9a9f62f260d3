"""One run: claim its folder, keep earlier attempts, capture its output, record its status and metrics.

A run folder is claimed with an exclusive `flock` on `runNNN/.lock`: the kernel drops the lock
when the process dies, however it dies, so a crashed runner never blocks the next one, and the
lock file itself is never deleted (deleting it would let two processes lock two different files).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kagexp import files
from kagexp.config import Config, dump_yaml, flatten
from kagexp.errors import InvalidNameError, RunStateError
from kagexp.provenance import Provenance, seed_everything

LOCK = ".lock"
ATTEMPTS = "attempts"
META = "meta.json"
METRICS = "metrics.json"
HISTORY = "metrics.jsonl"
SUMMARY = "summary.json"
SUMMARY_META = ("attempt", "started", "ended", "duration", "code_hash", "seed", "error")
FINISHED = ("done", "failed", "interrupted")
METRICS_FLUSH_SECONDS = 2.0


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, picklable so that another process can execute it."""

    exp: str
    name: str
    override_text: str
    override_hash: str
    config: dict
    out_dir: Path
    code_root: Path
    input_dir: Path
    seed: int
    force: bool = False
    tracking: dict | None = None  # what the run tells wandb (kagexp.integrations), None when off


@dataclass
class RunResult:
    """How a run ended: `done`, `failed`, `interrupted`, `skipped` or `busy` (claimed elsewhere)."""

    name: str
    status: str
    duration: float = 0.0
    metrics: dict = field(default_factory=dict)
    message: str = ""


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


# --- status on disk ------------------------------------------------------------------


def read_meta(run_dir: Path) -> dict | None:
    """The run's `meta.json`; None when absent, `{"status": "corrupt"}` when unreadable."""
    try:
        meta = files.read_json(run_dir / META)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"status": "corrupt"}
    return meta if isinstance(meta, dict) else {"status": "corrupt"}


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's claim."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def status_of(run_dir: Path, meta: dict | None) -> str:
    """`pending`, `corrupt`, the recorded status, or `stale` for a `running` run nobody holds."""
    if meta is None:
        return "pending"
    status = meta.get("status")
    if status not in ("running", "stale", *FINISHED):
        return "corrupt"
    if status == "running" and not is_locked(run_dir):
        return "stale"
    return status


class Claim:
    """An exclusive claim on a run folder, held as long as this object is open."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.fd: int | None = None

    def acquire(self, patience: float = 0.2) -> bool:
        """Try for a moment (a reader's probe holds the lock for microseconds), then give up."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return True
            except OSError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return False
                time.sleep(0.01)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def archive_attempt(run_dir: Path) -> int:
    """Move an earlier attempt's files into `attempts/N/`; return the number of this attempt."""
    previous = [p for p in run_dir.iterdir() if p.name not in (LOCK, ATTEMPTS)]
    attempts_dir = run_dir / ATTEMPTS
    numbers = [int(p.name) for p in attempts_dir.iterdir() if p.name.isdigit()] if attempts_dir.is_dir() else []
    if not previous:
        return max(numbers, default=0) + 1
    number = max(numbers, default=0) + 1
    target = attempts_dir / str(number)
    target.mkdir(parents=True)
    for path in previous:
        os.rename(path, target / path.name)
    _mark_stale(target)
    return number + 1


def _mark_stale(attempt_dir: Path) -> None:
    """An archived attempt that still reads `running` died: we hold its claim, so say so."""
    meta = read_meta(attempt_dir)
    if meta and meta.get("status") == "running":
        meta["status"] = "stale"
        files.write_json(attempt_dir / META, meta)


# --- output capture ------------------------------------------------------------------


class _Tee:
    """Copies everything written to one file descriptor to the terminal and to the log."""

    def __init__(self, fd: int, log_fd: int) -> None:
        self.fd, self.log_fd = fd, log_fd
        self.saved = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self.thread.start()

    def _pump(self, read_end: int) -> None:
        while chunk := os.read(read_end, 65536):
            os.write(self.log_fd, chunk)
            try:
                os.write(self.saved, chunk)
            except OSError:
                pass
        os.close(read_end)

    def stop(self) -> None:
        os.dup2(self.saved, self.fd)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():  # else a child process still holds the pipe: leave it the terminal
            os.close(self.saved)


class OutputCapture:
    """The run's stdout and stderr go to `log.txt` too, including output of C extensions."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path

    def __enter__(self) -> OutputCapture:
        flush_std()
        self.log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        self.tees = [_Tee(fd, self.log_fd) for fd in (1, 2)]
        return self

    def __exit__(self, *exc: object) -> None:
        flush_std()
        for tee in self.tees:
            tee.stop()
        os.close(self.log_fd)


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


# --- the context a run sees ------------------------------------------------------------


class RunContext:
    """What `run(cfg, ctx)` gets: where to write, and how to log metrics and save a submission."""

    def __init__(self, spec: RunSpec, attempt: int = 1) -> None:
        self.exp = spec.exp
        self.name = spec.name
        self.cfg = Config(spec.config)
        self.seed = spec.seed
        self.out_dir = spec.out_dir
        self.input_dir = spec.input_dir
        self.attempt = attempt
        self.metrics: dict[str, Any] = {}
        self.tracker = None  # a started kagexp.integrations tracker, when the run has one
        self._history_fd = os.open(self.out_dir / HISTORY, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        self._metrics_written = time.monotonic()

    def __repr__(self) -> str:
        return f"RunContext({self.exp}/{self.name}, out_dir={str(self.out_dir)!r})"

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Record metrics: every call goes to `metrics.jsonl`, the last values to `metrics.json`."""
        if not isinstance(metrics, dict):
            raise TypeError(f"ctx.log takes a dict of metrics, not {type(metrics).__name__}")
        values = {str(key): _plain(value) for key, value in metrics.items()}
        self.metrics.update(values)
        line = json.dumps({"_step": step, "_time": round(time.time(), 3), **values}, default=str)
        os.write(self._history_fd, (line + "\n").encode())
        if self.tracker is not None:
            self.tracker.log(metrics=values, step=step)
        if time.monotonic() - self._metrics_written > METRICS_FLUSH_SECONDS:
            self.write_metrics()

    def write_metrics(self) -> None:
        files.write_json(self.out_dir / METRICS, self.metrics)
        self._metrics_written = time.monotonic()

    def path(self, name: str) -> Path:
        """A path for any other artifact inside the run folder (its parent folders are created)."""
        path = (self.out_dir / name).resolve()
        if not path.is_relative_to(self.out_dir.resolve()) or path == self.out_dir.resolve():
            raise InvalidNameError(f"{self.exp}/{self.name}: artifact path {name!r} must stay inside the run folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def save_submission(self, obj: Any, name: str = "submission.csv") -> Path:
        """Save a pandas DataFrame, a file (path) or rows (dicts or sequences) as CSV, atomically."""
        path = self.path(name)
        if hasattr(obj, "to_csv"):
            files.write_text(path, obj.to_csv(index=False))
        elif isinstance(obj, (str, os.PathLike)):
            files.copy_file(Path(obj), path)
        else:
            files.write_text(path, _rows_to_csv(list(obj)))
        return path

    def close(self) -> None:
        os.close(self._history_fd)
        self.write_metrics()


def _plain(value: Any) -> Any:
    """numpy and torch scalars become Python numbers; NaN and infinities become null (JSON has none)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows_to_csv(rows: list) -> str:
    buffer = io.StringIO()
    if rows and isinstance(rows[0], dict):
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


# --- executing one run ------------------------------------------------------------------

RunFunction = Callable[[Config, RunContext], Any]


def execute(
    fn: RunFunction,
    spec: RunSpec,
    provenance: Provenance,
    capture: bool = True,
    on_start: Callable[[RunSpec], None] | None = None,
) -> RunResult:
    """Claim, run and record one run; Ctrl-C inside the run ends it as `interrupted`."""
    claim = Claim(spec.out_dir)
    if not claim.acquire():
        return RunResult(spec.name, "busy", message=holder_of(read_meta(spec.out_dir)))
    try:
        reason = _skip_reason(spec)
        if reason:
            return RunResult(spec.name, "skipped", message=reason)
        if on_start:
            on_start(spec)
        return _attempt(fn, spec, provenance, capture)
    finally:
        claim.release()


def holder_of(meta: dict | None) -> str:
    meta = meta or {}
    return f"running in pid {meta.get('pid', '?')} on {meta.get('host', '?')}"


def _skip_reason(spec: RunSpec) -> str:
    """Checked again under the claim, since another process may have finished the run meanwhile."""
    meta = read_meta(spec.out_dir)
    if spec.force or not meta or meta.get("status") != "done":
        return ""
    if meta.get("override_hash") != spec.override_hash:
        raise RunStateError(
            f"{spec.exp}/{spec.name} is done but its override has changed; "
            "re-run it with --force or append a new entry to RUNS"
        )
    return "done"


def _attempt(fn: RunFunction, spec: RunSpec, provenance: Provenance, capture: bool) -> RunResult:
    out = spec.out_dir
    attempt = archive_attempt(out)
    meta = _start(spec, provenance, attempt)
    ctx = RunContext(spec, attempt)
    started = time.monotonic()
    status, message = "done", ""
    try:
        _start_tracker(ctx, spec, meta)  # before the capture: a service it starts must not hold log.txt's pipe
        with OutputCapture(out / "log.txt") if capture else nullcontext():
            _call(fn, ctx, spec.seed)
    except KeyboardInterrupt:
        status = "interrupted"
    except BaseException as exc:  # a failing run (even sys.exit) is recorded; the next run still runs
        status, message = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        files.write_text(out / "error.txt", traceback.format_exc())
    finally:
        duration = time.monotonic() - started
        ctx.close()
        _finish_tracker(ctx, meta, status)
        _finish(meta, status, duration, message)
        # the summary first: a run reads `done` in meta.json only when its summary is there too
        files.write_json(out / SUMMARY, summary(meta, spec.config, ctx.metrics))
        files.write_json(out / META, meta)
    return RunResult(spec.name, status, duration, dict(ctx.metrics), message)


def _start_tracker(ctx: RunContext, spec: RunSpec, meta: dict) -> None:
    """wandb, when enabled: its run id, URL and folder go into meta.json at once."""
    if not spec.tracking:
        return
    from kagexp.integrations import open_tracker

    ctx.tracker = open_tracker(spec, ctx.attempt)
    meta["wandb"] = ctx.tracker.info
    files.write_json(spec.out_dir / META, meta)


def _finish_tracker(ctx: RunContext, meta: dict, status: str) -> None:
    """The tracker's run ends with the run's status; a tracker that broke was switched off."""
    if ctx.tracker is not None:
        ctx.tracker.finish(status=status)
        meta["wandb"] = ctx.tracker.info


def _call(fn: RunFunction, ctx: RunContext, seed: int) -> None:
    """Seed, then run; a traceback is printed while the output is still captured, so that
    it is on the terminal and in log.txt as well as in error.txt."""
    seed_everything(seed)
    try:
        fn(ctx.cfg, ctx)
    except KeyboardInterrupt:
        raise
    except BaseException:
        flush_std()
        traceback.print_exc()
        raise


def _start(spec: RunSpec, provenance: Provenance, attempt: int) -> dict:
    out = spec.out_dir
    files.write_text(out / "config_update.yml", spec.override_text)
    files.write_text(out / "config.yml", dump_yaml(spec.config))
    git = provenance.git
    if git and git.dirty:
        files.write_text(out / "git.diff", git.diff)
    provenance.snapshot(spec.code_root)
    meta = {
        "exp": spec.exp,
        "run": spec.name,
        "status": "running",
        "attempt": attempt,
        "started": now_iso(),
        "ended": None,
        "duration": None,
        "seed": spec.seed,
        "override_hash": spec.override_hash,
        **provenance.environment,
    }
    files.write_json(out / META, meta)
    return meta


def summary(meta: dict, merged: dict, metrics: dict) -> dict:
    """What listing needs in one small file, written last: `kagexp runs` reads only this."""
    return {
        "status": meta["status"],
        **{key: meta.get(key) for key in SUMMARY_META},
        "config": flatten(merged),
        "metrics": metrics,
    }


def _finish(meta: dict, status: str, duration: float, message: str) -> None:
    meta.update(status=status, ended=now_iso(), duration=round(duration, 3))
    if message and status != "done":
        meta["error"] = message
