"""Executing one run: the context it sees, its captured output, and the record of how it ended.

Where and how that record is kept (file names, the claim, attempts) is `kagexp.runfolder`'s.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp import files
from kagexp.config import Config
from kagexp.errors import InvalidNameError, RunStateError
from kagexp.provenance import Provenance, seed_everything
from kagexp.runfolder import Claim, RunFolder, append_line, code_root, holder_of, now_iso

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
    input_dir: Path
    seed: int
    force: bool = False
    tracking: dict | None = None  # what the run tells wandb (kagexp.integrations), None when off

    @property
    def label(self) -> str:
        return f"{self.exp}/{self.name}"

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.out_dir)


@dataclass
class RunResult:
    """How a run ended: `done`, `failed`, `interrupted`, `skipped` or `busy` (claimed elsewhere)."""

    name: str
    status: str
    duration: float = 0.0
    metrics: dict = field(default_factory=dict)
    message: str = ""


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
        self.folder = spec.folder
        self.input_dir = spec.input_dir
        self.attempt = attempt
        self.metrics: dict[str, Any] = {}
        self.tracker = None  # a started kagexp.integrations tracker, when the run has one
        self._history_fd = self.folder.open_history()
        self._metrics_written = time.monotonic()

    def __repr__(self) -> str:
        return f"RunContext({self.exp}/{self.name}, out_dir={str(self.out_dir)!r})"

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Record metrics: every call goes to `metrics.jsonl`, the last values to `metrics.json`."""
        if not isinstance(metrics, dict):
            raise TypeError(f"ctx.log takes a dict of metrics, not {type(metrics).__name__}")
        values = {str(key): _plain(value) for key, value in metrics.items()}
        self.metrics.update(values)
        append_line(self._history_fd, {"_step": step, "_time": round(time.time(), 3), **values})
        if self.tracker is not None:
            self.tracker.log(metrics=values, step=step)
        if time.monotonic() - self._metrics_written > METRICS_FLUSH_SECONDS:
            self.write_metrics()

    def write_metrics(self) -> None:
        self.folder.write_metrics(self.metrics)
        self._metrics_written = time.monotonic()

    def path(self, name: str) -> Path:
        """A path for any other artifact inside the run folder (its parent folders are created)."""
        try:
            return self.folder.artifact(name)
        except InvalidNameError as exc:
            raise InvalidNameError(f"{self.exp}/{self.name}: {exc}") from None

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
    claim = Claim(spec.folder)
    if not claim.acquire():
        return RunResult(spec.name, "busy", message=holder_of(spec.folder.meta()))
    try:
        reason = _skip_reason(spec)
        if reason:
            return RunResult(spec.name, "skipped", message=reason)
        if on_start:
            on_start(spec)
        return _attempt(fn, spec, provenance, capture)
    finally:
        claim.release()


def _skip_reason(spec: RunSpec) -> str:
    """Checked again under the claim, since another process may have finished the run meanwhile."""
    meta = spec.folder.meta()
    if spec.force or not meta or meta.get("status") != "done":
        return ""
    if meta.get("override_hash") != spec.override_hash:
        raise RunStateError(
            f"{spec.label} is done but its override has changed; re-run it with --force or append a new entry to RUNS"
        )
    return "done"


def _attempt(fn: RunFunction, spec: RunSpec, provenance: Provenance, capture: bool) -> RunResult:
    folder = spec.folder
    attempt = folder.archive_attempt()
    meta = _start(spec, provenance, attempt)
    ctx = RunContext(spec, attempt)
    started = time.monotonic()
    status, message = "done", ""
    try:
        _start_tracker(ctx, spec, meta)  # before the capture: a service it starts must not hold log.txt's pipe
        with OutputCapture(folder.log_path) if capture else nullcontext():
            _call(fn, ctx, spec.seed)
    except KeyboardInterrupt:
        status = "interrupted"
    except BaseException as exc:  # a failing run (even sys.exit) is recorded; the next run still runs
        status, message = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        folder.write_error(traceback.format_exc())
    finally:
        duration = time.monotonic() - started
        ctx.close()
        _finish_tracker(ctx, meta, status)
        _finish(meta, status, duration, message)
        # the summary first: a run reads `done` in meta.json only when its summary is there too
        folder.write_summary(meta, spec.config, ctx.metrics)
        folder.write_meta(meta)
    return RunResult(spec.name, status, duration, dict(ctx.metrics), message)


def _start_tracker(ctx: RunContext, spec: RunSpec, meta: dict) -> None:
    """wandb, when enabled: its run id, URL and folder go into meta.json at once."""
    if not spec.tracking:
        return
    from kagexp.integrations import open_tracker

    ctx.tracker = open_tracker(spec)
    meta["wandb"] = ctx.tracker.info
    spec.folder.write_meta(meta)


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
    folder = spec.folder
    folder.write_override(spec.override_text)
    folder.write_config(spec.config)
    git = provenance.git
    if git and git.dirty:
        folder.write_git_diff(git.diff)
    provenance.snapshot(code_root(spec.out_dir.parent))
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
    folder.write_meta(meta)
    return meta


def _finish(meta: dict, status: str, duration: float, message: str) -> None:
    meta.update(status=status, ended=now_iso(), duration=round(duration, 3))
    if message and status != "done":
        meta["error"] = message
