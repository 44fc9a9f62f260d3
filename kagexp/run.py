"""Executing one run: the context it sees, its captured output, and the record of how it ended.

Where and how that record is kept (file names, the claim, attempts) is `kagexp.runfolder`'s.
"""

from __future__ import annotations

import csv
import io
import math
import os
import select
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp import files, predictions
from kagexp.config import Config, did_you_mean
from kagexp.errors import InvalidNameError, KagexpError, MetricError, NotFoundError, RunStateError
from kagexp.provenance import Provenance, seed_everything
from kagexp.runfolder import Claim, RunFolder, append_line, code_root, holder_of, now_iso, store_git_diff

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
    """Copies everything written to one file descriptor to the terminal and to the log.

    The copying thread owns its descriptors and closes them when the pipe ends, so a child process
    the run left behind (a data-loader worker, a server) may keep writing after the run ended:
    its output still reaches the log and the terminal, and the run does not wait for it.
    The terminal gets whole lines where it can, so runs in parallel do not cut into each
    other's lines; a partial line (a prompt, a progress bar) is shown once output pauses.
    """

    POLL_SECONDS = 0.05

    def __init__(self, fd: int, log_fd: int) -> None:
        self.fd = fd
        self.saved = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.asked = 0  # stop requests so far
        self.drained = 0  # the last request after which the pipe was seen empty
        pump = (read_end, os.dup(log_fd), os.dup(self.saved))
        self.thread = threading.Thread(target=self._pump, args=pump, daemon=True)
        self.thread.start()

    def _pump(self, read_end: int, log_fd: int, terminal: int) -> None:
        pending = b""
        try:
            while True:
                asked = self.asked
                ready, _, _ = select.select([read_end], [], [], self.POLL_SECONDS)
                if not ready:
                    _write_all(terminal, pending)
                    pending = b""
                    self.drained = asked  # a whole wait begun after that request saw nothing
                    continue
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                _write_all(log_fd, chunk)
                lines, pending = _whole_lines(pending + chunk)
                _write_all(terminal, lines)
        finally:
            _write_all(terminal, pending)
            for fd in (read_end, log_fd, terminal):
                os.close(fd)

    def stop(self, patience: float = 2.0) -> None:
        """Give the terminal back, then wait until everything written so far is copied."""
        os.dup2(self.saved, self.fd)
        os.close(self.saved)
        self.asked += 1
        deadline = time.monotonic() + patience
        while self.thread.is_alive() and self.drained < self.asked and time.monotonic() < deadline:
            time.sleep(0.005)


_LONGEST_HELD = 65536  # a line longer than this goes out in pieces


def _whole_lines(data: bytes) -> tuple[bytes, bytes]:
    """Split after the last line end (a newline, or the carriage return of a progress bar)."""
    end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    if len(data) - end > _LONGEST_HELD:
        end = len(data)
    return data[:end], data[end:]


def _write_all(fd: int, data: bytes) -> None:
    """Best effort: a full disk or a closed terminal must not stop the copying."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass


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
        self.book = predictions.FoldBook(self.folder, spec.config.get(predictions.FOLDS_KEY))
        for fold, record in self.book.finished().items():  # carried from an earlier attempt
            self._log_fold(record.get("metrics") or {}, fold, {"_attempt": record.get("attempt")})

    def __repr__(self) -> str:
        return f"RunContext({self.exp}/{self.name}, out_dir={str(self.out_dir)!r})"

    def log(self, metrics: dict[str, Any], step: int | None = None, fold: int | None = None) -> None:
        """Record metrics: every call goes to `metrics.jsonl`, the last values to `metrics.json`;
        a fold's values (`fold=`) are shown as their mean and `_std` over the folds."""
        values = metric_values(metrics)
        if fold is None:
            self.metrics.update(values)
            append_line(self._history_fd, {"_step": step, "_time": round(time.time(), 3), **values})
        else:
            self._log_fold(values, fold, {"_step": step})
        if self.tracker is not None:
            self.tracker.log(metrics=values, step=step)
        if time.monotonic() - self._metrics_written > METRICS_FLUSH_SECONDS:
            self.write_metrics()

    def _log_fold(self, values: dict[str, Any], fold: int, extra: dict) -> None:
        self.metrics.update(self.book.aggregate(values, fold))
        append_line(self._history_fd, {**extra, "_fold": int(fold), "_time": round(time.time(), 3), **values})

    # -- folds and predictions (kagexp.predictions)

    def folds(self, n: int | list[int] | None = None, *, total: int | None = None):
        """The folds still to compute: `ctx.folds(5)` (those the config's `folds:` picks, if it
        does), `ctx.folds([0, 1], total=5)`, or `ctx.folds()` for the config's `folds:`."""
        return self.book.pending(n, total)

    def save_fold(
        self,
        fold: int,
        oof: Any = None,
        ids: Any = None,
        test: Any = None,
        test_ids: Any = None,
        target: Any = None,
        metrics: dict[str, Any] | None = None,
        columns: list[str] | None = None,
    ) -> None:
        """Finish a fold: its OOF predictions for the rows `ids`, its test predictions and metrics,
        written atomically; a run that runs again does not compute it again."""
        values = metric_values(metrics or {})
        if oof is not None and ids is None:
            raise MetricError(f"ctx.save_fold({fold}): give ids=, the ids of the rows oof= predicts")
        where = f"ctx.save_fold({fold})"
        rows = None if oof is None else predictions.make(oof, ids, target=target, columns=columns, what=where)
        tested = None if test is None else predictions.make(test, test_ids, columns=columns, what=where)
        self.book.save_fold(fold, values, rows, tested, self.attempt)
        if values:
            self.log(values, fold=fold)

    def save_oof(self, pred: Any, ids: Any = None, folds: Any = None, target: Any = None, columns=None) -> None:
        """Save the whole out-of-fold prediction at once (instead of fold by fold)."""
        made = predictions.make(pred, ids, folds, target, columns, what="ctx.save_oof")
        self.folder.write_predictions("oof", made.to_bytes())
        self.book.saved_oof = True

    def save_test(self, pred: Any, ids: Any = None, columns: list[str] | None = None) -> None:
        """Save the test prediction (instead of the mean of the folds' test predictions)."""
        made = predictions.make(pred, ids, columns=columns, what="ctx.save_test")
        self.folder.write_predictions("test", made.to_bytes())
        self.book.saved_test = True

    def fold_predictions(self, kind: str = "test"):
        """The `oof` or `test` predictions of the folds finished so far, earlier attempts' included,
        as a pandas DataFrame indexed by id (test: the mean over the folds), e.g. for a submission."""
        oof, test = self.book.assemble()
        found = oof if kind == "oof" else test
        if found is None:
            raise MetricError(f"ctx.fold_predictions: no fold has saved {kind} predictions yet")
        return found.frame()

    def write_metrics(self) -> None:
        self.folder.write_metrics(self.metrics)
        self._metrics_written = time.monotonic()

    def path(self, name: str) -> Path:
        """A path for any other artifact inside the run folder (its parent folders are created)."""
        try:
            return self.folder.artifact(name)
        except InvalidNameError as exc:
            raise InvalidNameError(f"{self.exp}/{self.name}: {exc}") from None

    def artifact(self, name: str) -> Path:
        """A file this run saved earlier (e.g. a model before predicting); an error naming close matches."""
        return saved_artifact(self.folder, f"{self.exp}/{self.name}", name)

    def save_submission(self, obj: Any, name: str = "submission.csv") -> Path:
        """Save a pandas DataFrame, a file (path) or rows (dicts or sequences) as CSV, atomically."""
        return write_submission(self.path(name), obj)

    def close(self) -> None:
        os.close(self._history_fd)
        self.write_metrics()


def write_submission(path: Path, obj: Any) -> Path:
    """A DataFrame, a file (path) or rows as CSV, atomically: training and inference write alike."""
    if hasattr(obj, "to_csv"):
        files.write_text(path, obj.to_csv(index=False))
    elif isinstance(obj, (str, os.PathLike)):
        files.copy_file(Path(obj), path)
    else:
        files.write_text(path, _rows_to_csv(list(obj)))
    return path


def saved_artifact(folder: RunFolder, label: str, name: str) -> Path:
    """The file `name` that a run saved in `folder`; a NotFoundError naming the run and close matches."""
    saved = folder.saved_files()
    if name in saved:
        return folder.path / name
    hint = did_you_mean(name, saved)
    listed = ", ".join(saved[:10]) + (" …" if len(saved) > 10 else "") if saved else "none"
    raise NotFoundError(f"{label} saved no file {name!r}{hint} (its files: {listed}); save it with ctx.path(...)")


def metric_values(metrics: Any) -> dict[str, Any]:
    """`ctx.log`'s argument as plain JSON values, checked before anything is recorded: a value that
    cannot be written is an error naming its key, raised in the run (which then fails like any)."""
    if not isinstance(metrics, dict):
        raise MetricError(f"ctx.log takes a dict of metrics, not {type(metrics).__name__}")
    values = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise MetricError(f"ctx.log: metric names are strings, not {type(key).__name__} {key!r:.60}")
        values[key] = _plain(value, key, set())
    return values


def _plain(value: Any, where: str, seen: set[int]) -> Any:
    """numpy and torch scalars become Python numbers; NaN and infinities become null (JSON has
    none), nested too; mappings need string keys; anything else is written as its text."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (dict, list, tuple)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        if value.bit_length() > 1000:
            raise MetricError(f"ctx.log: metric `{where}` is an integer too large to record (over 300 digits)")
        return value
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            raise MetricError(f"ctx.log: metric `{where}` contains itself")
        seen = seen | {id(value)}
        if isinstance(value, dict):
            bad = next((k for k in value if not isinstance(k, str)), None)
            if bad is not None:
                raise MetricError(f"ctx.log: metric `{where}` has a key that is not a string: {bad!r:.60}")
            return {k: _plain(v, f"{where}.{k}", seen) for k, v in value.items()}
        return [_plain(v, f"{where}[{i}]", seen) for i, v in enumerate(value)]
    try:
        return str(value)
    except Exception as exc:
        raise MetricError(f"ctx.log: metric `{where}` cannot be written ({type(exc).__name__}: {exc})") from None


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

_interrupts = 0


def interrupts() -> int:
    """How many times SIGINT or SIGTERM arrived while `on_interrupt` was their handler."""
    return _interrupts


def on_interrupt(signum: int, frame: object) -> None:
    """The SIGINT/SIGTERM handler while runs run: counted before it raises KeyboardInterrupt, so a
    run that catches the KeyboardInterrupt still ends `interrupted` and no further run starts."""
    global _interrupts
    _interrupts += 1
    raise KeyboardInterrupt


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
    try:
        attempt = folder.archive_attempt()
        resumed = predictions.resume_folds(folder, attempt, spec.config, spec.force)
        meta = _start(spec, provenance, attempt, function_name(fn), resumed)
        ctx = RunContext(spec, attempt)
    except OSError as exc:  # a full or read-only disk: the run cannot even start
        return _could_not_start(spec, exc)
    seen = interrupts()
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
        _best_effort(folder.write_error, traceback.format_exc())
    finally:
        if interrupts() != seen:  # Ctrl-C arrived, even if the run caught it (PyTorch Lightning does)
            status = "interrupted"
        duration = time.monotonic() - started
        status, message = _record_end(spec, ctx, meta, status, message, duration)
    return RunResult(spec.name, status, duration, dict(ctx.metrics), message)


def _record_end(
    spec: RunSpec, ctx: RunContext, meta: dict, status: str, message: str, duration: float
) -> tuple[str, str]:
    """Close the context and record how the run ended. A file that cannot be written (a full disk)
    turns a done run failed, with the reason recorded wherever something can still be written."""
    try:
        ctx.close()
    except OSError as exc:
        status, message = _worse(status, message, exc)
    if status == "done":
        status, message = _settle_folds(ctx, meta)
    _finish_tracker(ctx, meta, status)
    _finish(meta, status, duration, message)
    try:  # the summary first: a run reads `done` in its meta only when its summary is there too
        spec.folder.write_summary(meta, spec.config, ctx.metrics)
    except OSError as exc:
        status, message = _worse(status, message, exc)
        _finish(meta, status, duration, message)
    _best_effort(spec.folder.write_meta, meta)
    return status, message


def _settle_folds(ctx: RunContext, meta: dict) -> tuple[str, str]:
    """A run that returned is `done`, or `partial` while folds are missing; its predictions are
    assembled from its folds. When that fails (a full disk, folds that disagree), it failed."""
    try:
        return predictions.finish(ctx.book, meta)
    except OSError as exc:
        return "failed", f"cannot record its predictions: {_os_reason(exc)}"
    except KagexpError as exc:
        return "failed", f"its predictions: {exc}"


def _worse(status: str, message: str, exc: OSError) -> tuple[str, str]:
    if status == "done":
        return "failed", f"cannot record its results: {_os_reason(exc)}"
    return status, message


def _os_reason(exc: OSError) -> str:
    return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc.strerror or exc)


def _best_effort(write: Callable[[Any], None], value: Any) -> bool:
    try:
        write(value)
        return True
    except OSError:
        return False


def _could_not_start(spec: RunSpec, exc: OSError) -> RunResult:
    message = f"cannot write its run folder: {_os_reason(exc)}"
    _best_effort(spec.folder.write_meta, {"exp": spec.exp, "run": spec.name, "status": "failed", "error": message})
    return RunResult(spec.name, "failed", message=message)


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


def function_name(fn: RunFunction) -> str | None:
    """The run function's name, recorded so that `kagexp rerun` finds it in the code snapshot's
    exp.py; None for a lambda, a nested function or a method, which have no plain name there."""
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) and name.isidentifier() else None


def _start(spec: RunSpec, provenance: Provenance, attempt: int, function: str | None, resumed: list[int]) -> dict:
    """Record the run as `running` first (a listing never sees it half-made), then what it runs."""
    folder = spec.folder
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
        "function": function,
        **provenance.environment,
        **({"folds_resumed": resumed} if resumed else {}),
    }
    folder.write_meta(meta)
    folder.write_override(spec.override_text)
    folder.write_config(spec.config)
    git = provenance.git
    if git and git.dirty:
        meta["git"] = {**meta["git"], **store_git_diff(spec.out_dir.parent, git.diff)}
        if meta["git"]["diff"] is None:
            meta["git"]["changed"] = git.changed
    provenance.snapshot(code_root(spec.out_dir.parent))
    folder.write_meta(meta)
    return meta


def _finish(meta: dict, status: str, duration: float, message: str) -> None:
    meta.update(status=status, ended=now_iso(), duration=round(duration, 3))
    if message and status != "done":
        meta["error"] = message
