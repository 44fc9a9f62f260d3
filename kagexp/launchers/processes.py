"""Runs in worker processes, N at a time, each run in a fresh process forked for it.

Why a fresh process per run, not a pool of long-lived workers: a run leaves nothing behind for
the next (GPU memory, CUDA state pinned to one device, module globals, a crash), and the
process's exit is the moment its GPU is free again. A fork costs a few milliseconds.

Why `fork`, not `spawn`: exp.py runs as `__main__`, and with `spawn` a worker would import it
again under another name (re-running its top level: data loading, imports) before it could find
`run`; a forked worker already has `run`, the specs and the provenance the parent computed, so
nothing is pickled on the way in (only the small result on the way out). The price: the parent
must not have initialised CUDA before the runs start (CUDA does not survive a fork), so keep
`torch.cuda` calls inside `run`, not at the top of exp.py. kagexp runs on Linux and macOS
(it locks run folders with `flock`), where `fork` is available.

GPUs: with `--gpus 0,1` every run gets one id as `CUDA_VISIBLE_DEVICES`, set before the run
starts; an id is handed to the next run only after the process that had it has exited, so two
runs never share a GPU (list an id twice, `--gpus 0,0,1,1`, to share on purpose).

Threads: every run gets its share of the cores for OpenMP and BLAS (`kagexp.threads`), recorded
in its meta.json as `threads`.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from kagexp.errors import UsageError
from kagexp.launchers import Reporter, execute_in_worker, interrupt_once, lost, with_environment
from kagexp.provenance import Provenance, seed_everything
from kagexp.run import RunFunction, RunResult, RunSpec, flush_std, interrupts
from kagexp.threads import ThreadLimits, seen

# what CUDA_VISIBLE_DEVICES takes: an index, or a GPU or MIG UUID (`GPU-8f3c2a1e-…`, `MIG-GPU-…/1/0`)
GPU_ID = re.compile(r"[0-9]+|(?:GPU-|MIG-(?:GPU-)?)[0-9A-Fa-f][0-9A-Fa-f-]*(?:/[0-9]+/[0-9]+)?")
GRACE_SECONDS = 10.0  # after Ctrl-C, how long runs get to record their end before they are killed
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass
class _Worker:
    spec: RunSpec
    process: multiprocessing.process.BaseProcess
    conn: Connection | None
    gpu: str | None
    started: bool = False
    result: RunResult | None = None


@dataclass
class ProcessesLauncher:
    """`--jobs N` and `--gpus 0,1`: N runs at a time, each in its own forked process."""

    jobs: int
    gpus: tuple[str, ...] = ()
    grace: float = GRACE_SECONDS
    parallel = True

    @classmethod
    def from_options(cls, jobs: int | None, gpus: tuple[str, ...]) -> ProcessesLauncher:
        odd = [gpu for gpu in gpus if not GPU_ID.fullmatch(gpu.strip())]
        if odd:
            raise UsageError(
                f"--gpus takes GPU ids separated by commas: indexes such as 0,1 or UUIDs such as GPU-8f3c…"
                f" (as nvidia-smi -L shows them); got {','.join(gpus)!r}, where {odd[0]!r} is not one"
            )
        if jobs is None:
            jobs = len(gpus) or 1
        if gpus and jobs > len(gpus):
            raise UsageError(
                f"--jobs {jobs} with {len(gpus)} GPU(s) would put two runs on one GPU; "
                f"use --jobs {len(gpus)}, or list a GPU twice (--gpus 0,0,1,1) to share it on purpose"
            )
        return cls(jobs, tuple(gpu.strip() for gpu in gpus))

    def describe(self, specs: list[RunSpec]) -> str:
        gpus = f", one GPU each of {','.join(self.gpus)}" if self.gpus else ""
        return f"# {len(specs)} run(s) in their own processes, {self.jobs} at a time{gpus}" if specs else ""

    def launch(
        self,
        *,
        fn: RunFunction,
        specs: list[RunSpec],
        provenance: Provenance,
        reporter: Reporter | None,
        fail_fast: bool = False,
        capture: bool = True,
    ) -> list[RunResult]:
        _ = provenance.environment  # computed once here, not once per forked run
        limits = ThreadLimits.for_jobs(max(1, min(self.jobs, len(specs))))  # -j 8 for 2 runs: 2 at once
        with limits.exported():  # before numpy loads: its thread pool is sized when it does
            seed_everything(0)  # imports numpy and torch (when installed) here, not in every forked run
            _preload_trackers(specs)
            limits.find_loaded()
            pool = _Pool(self, fn, provenance, reporter, capture, limits)
            try:
                pool.run(list(specs), fail_fast)
            except KeyboardInterrupt:
                pool.stop("interrupted", "interrupted (Ctrl-C)")
                raise
        return pool.results


def _preload_trackers(specs: list[RunSpec]) -> None:
    """Import wandb once in the parent when a run uses it, rather than once per forked run."""
    if any(getattr(spec, "tracking", None) for spec in specs):
        try:
            import wandb  # noqa: F401
        except ImportError:
            pass  # the run reports it


@dataclass
class _Pool:
    """The parent's side: start runs while slots are free, wait for messages and exits, report."""

    launcher: ProcessesLauncher
    fn: RunFunction
    provenance: Provenance
    reporter: Reporter | None
    capture: bool
    limits: ThreadLimits
    running: list[_Worker] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    stopping: tuple[str, str] | None = None  # (status, reason) for runs that end without a result

    def __post_init__(self) -> None:
        self.context = multiprocessing.get_context("fork")
        self.free_gpus = list(self.launcher.gpus)  # a GPU comes back when its run's process has exited

    def run(self, queue: list[RunSpec], fail_fast: bool) -> None:
        seen = interrupts()
        while queue or self.running:
            if queue and (interrupts() != seen or any(r.status == "interrupted" for r in self.results)):
                raise KeyboardInterrupt  # Ctrl-C reached a run, even one that caught it: start no more
            while queue and len(self.running) < self.launcher.jobs:
                with _deferred_interrupts():  # a started process is always in `running`
                    self.running.append(self.start(queue.pop(0)))
            self.wait_for_any()
            if fail_fast and any(r.status == "failed" for r in self.results):
                self.stop("interrupted", "stopped by --fail-fast: another run failed")
                return

    def start(self, spec: RunSpec) -> _Worker:
        gpu = self.free_gpus.pop(0) if self.free_gpus else None
        reader, writer = self.context.Pipe(duplex=False)
        args = (writer, self.fn, spec, self.provenance, self.capture, gpu, self.limits)
        process = self.context.Process(target=_child, args=args, name=f"kagexp {spec.exp}/{spec.name}", daemon=False)
        flush_std()  # a forked child must not inherit (and print again) the parent's buffered output
        process.start()
        writer.close()  # the child holds the only writing end: its death reads as end of file
        return _Worker(spec, process, reader, gpu)

    def wait_for_any(self, timeout: float | None = None) -> None:
        handles = [w.conn for w in self.running if w.conn] + [w.process.sentinel for w in self.running]
        ready = set(wait(handles, timeout))
        with _deferred_interrupts():  # a finished run is always reported
            for worker in list(self.running):
                if worker.conn in ready:
                    self.receive(worker)
                if worker.process.sentinel in ready:
                    self.receive(worker)
                    self.reap(worker)

    def receive(self, worker: _Worker) -> None:
        while worker.conn is not None and worker.conn.poll():
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                worker.conn.close()
                worker.conn = None
                return
            if kind == "started":
                worker.started = True
                if self.reporter:
                    self.reporter.started(worker.spec)
            else:
                worker.result = payload

    def reap(self, worker: _Worker) -> None:
        worker.process.join()
        self.running.remove(worker)
        if worker.gpu is not None:
            self.free_gpus.append(worker.gpu)
        if worker.conn is not None:
            worker.conn.close()
        result = worker.result
        if result is None:
            status, message = self.stopping or ("failed", "")
            message = message or f"its worker process died ({_exit_reason(worker.process.exitcode)})"
            result = lost(worker.spec, status, message, worker.started)
        self.results.append(result)
        if self.reporter:
            self.reporter.finished(worker.spec, result)

    def stop(self, status: str, reason: str) -> None:
        """Interrupt every running run, give them `grace` seconds to record it, then kill the rest."""
        self.stopping = (status, reason)
        for worker in self.running:
            _signal(worker.process, signal.SIGINT)
        deadline = time.monotonic() + self.launcher.grace
        while self.running and time.monotonic() < deadline:
            try:
                self.wait_for_any(timeout=max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                break  # a second Ctrl-C: do not wait any longer
        for worker in list(self.running):
            _signal(worker.process, signal.SIGKILL)
            self.receive(worker)
            self.reap(worker)


@contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the bookkeeping inside is done (a forked child unblocks them)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _child(
    conn: Connection,
    fn: RunFunction,
    spec: RunSpec,
    provenance: Provenance,
    capture: bool,
    gpu: str | None,
    limits: ThreadLimits,
) -> None:
    """A forked worker: one run, then exit."""
    interrupt_once()
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the parent while it forked
        limits.apply()
        changes: dict = {"threads": seen()}
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            changes["gpu"] = gpu
        worker_provenance = with_environment(provenance, **changes)
        started = lambda s: conn.send(("started", None))  # noqa: E731
        result = execute_in_worker(fn, spec, worker_provenance, capture, on_start=started)
    except KeyboardInterrupt:
        result = RunResult(spec.name, "interrupted", message="interrupted before it started")
    for signum in STOP_SIGNALS:  # the run has ended: a late Ctrl-C has nothing left to interrupt
        signal.signal(signum, signal.SIG_IGN)
    try:
        conn.send(("finished", result))
    except (OSError, ValueError):
        pass  # the parent is gone; the run folder has the result
    _close_trackers()
    flush_std()


def _close_trackers() -> None:
    """A forked process ends with `os._exit`, without atexit handlers: stop wandb's service here."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and hasattr(wandb, "teardown"):
        try:
            wandb.teardown()
        except Exception:
            pass


def _signal(process: multiprocessing.process.BaseProcess, signum: int) -> None:
    try:
        if process.pid and process.exitcode is None:
            os.kill(process.pid, signum)
    except ProcessLookupError:
        pass


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
