"""Launchers run a list of runs somewhere: in this process, in worker processes, on a Slurm cluster.

A launcher implements `launch` (keyword-only), which decides where and when each run runs and
reports progress, and `describe`, which says what `launch` would do (for `--dry-run`); its
`parallel` attribute says whether runs overlap (then progress lines count them). A launcher
never records a run's status itself while the run lives: every run calls `kagexp.run.execute`
in the process that runs it, which claims the run folder (flock), records every change of
status and captures the run's own output. The only status a launcher records is for a run whose
process died without recording its end (`RunFolder.settle`).

| name        | runs                                                       | chosen by                   |
|-------------|------------------------------------------------------------|-----------------------------|
| `inline`    | one after another in this process (the default)            | nothing, `--jobs 1`         |
| `processes` | in forked processes, N at a time, one GPU each with --gpus | `--jobs N`, `--gpus 0,1`    |
| `slurm`     | as one Slurm job array through submitit                    | `--launcher slurm`          |
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kagexp.errors import UsageError
from kagexp.provenance import Provenance
from kagexp.run import RunFunction, RunResult, RunSpec, on_interrupt

LAUNCHERS = ("inline", "processes", "slurm")


class Reporter(Protocol):
    """Told of progress: `planned` once by `Experiment.run`, the others by the launcher."""

    def planned(self, plans: list, parallel: bool) -> None: ...

    def started(self, spec: RunSpec) -> None: ...

    def finished(self, spec: RunSpec, result: RunResult) -> None: ...

    def say(self, text: str) -> None: ...


class Launcher(Protocol):
    parallel: bool

    def describe(self, specs: list[RunSpec]) -> str:
        """What launching `specs` would do, for `--dry-run`; empty when there is nothing to add."""
        ...

    def launch(
        self,
        *,
        fn: RunFunction,
        specs: list[RunSpec],
        provenance: Provenance,
        reporter: Reporter | None,
        fail_fast: bool = False,
        capture: bool = True,
    ) -> list[RunResult]: ...


@dataclass(frozen=True)
class LaunchOptions:
    """Where to run, as the flags say it: `--launcher`, `--jobs`, `--gpus`, `--slurm KEY=VALUE`."""

    launcher: str | None = None
    jobs: int | None = None
    gpus: tuple[str, ...] = ()
    slurm: dict[str, Any] = field(default_factory=dict)

    def name(self) -> str:
        """The launcher: as asked, else `processes` when more than one job or any GPU is asked for."""
        if self.launcher:
            return self.launcher
        return "processes" if (self.jobs or 1) > 1 or self.gpus else "inline"


def make_launcher(options: LaunchOptions | None, settings: dict, folder: Path, dry_run: bool = False) -> Launcher:
    """The launcher the options ask for, checked now: a mistake is an error before anything runs.

    `settings` are the project's (`kagexp.yml`); `folder` is the experiment's output folder;
    `dry_run`: the launcher will only be described, so a cluster need not be reachable.
    """
    options = options or LaunchOptions()
    name = options.name()
    if name not in LAUNCHERS:
        raise UsageError(f"unknown launcher {name!r}; available: {', '.join(LAUNCHERS)}")
    if options.jobs is not None and options.jobs < 1:
        raise UsageError(f"--jobs must be 1 or more, not {options.jobs}")
    if options.slurm and name != "slurm":
        raise UsageError("--slurm settings go with --launcher slurm")
    if name == "inline":
        if (options.jobs or 1) > 1 or options.gpus:
            raise UsageError("--launcher inline runs one run at a time in this process; drop --jobs and --gpus")
        from kagexp.launchers.inline import InlineLauncher

        return InlineLauncher()
    if name == "processes":
        from kagexp.launchers.processes import ProcessesLauncher

        return ProcessesLauncher.from_options(options.jobs, options.gpus)
    if options.gpus:
        raise UsageError("--gpus is for --jobs on this machine; on Slurm ask for GPUs with --slurm gpus_per_node=1")
    from kagexp.launchers.slurm import SlurmLauncher

    return SlurmLauncher.from_settings(settings["slurm"], options.slurm, folder, jobs=options.jobs, submit=not dry_run)


# --- what every launcher that runs runs elsewhere shares -----------------------------------


def interrupt_once() -> None:
    """In a worker: the first SIGINT or SIGTERM ends the run as `interrupted`; later ones are ignored.

    Ctrl-C reaches a worker twice (from the terminal, and forwarded by the parent); a second
    KeyboardInterrupt while the run records its end would leave it `running`.
    """

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        on_interrupt(signum, frame)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def execute_in_worker(
    fn: RunFunction, spec: RunSpec, provenance: Provenance, capture: bool, on_start=None
) -> RunResult:
    """`run.execute`, with whatever escapes it (an interruption before the run started, a run that
    changed on disk meanwhile) turned into a result instead of a traceback in a worker's log."""
    from kagexp import run

    try:
        return run.execute(fn, spec, provenance, capture, on_start=on_start)
    except KeyboardInterrupt:
        return RunResult(spec.name, "interrupted", message="interrupted before it started")
    except Exception as exc:
        return RunResult(spec.name, "failed", message=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])


def with_environment(provenance: Provenance, **changes: Any) -> Provenance:
    """A copy of `provenance` whose `meta.json` environment says `changes` (this worker's pid, its GPU).

    Everything else (git, packages, the code hash) was computed once by the parent and is shared.
    """
    import copy

    environment = {**provenance.environment, "pid": os.getpid(), **changes}
    worker = copy.copy(provenance)
    worker.__dict__["environment"] = environment  # functools.cached_property keeps its value there
    return worker


def lost(spec: RunSpec, status: str, message: str, started: bool) -> RunResult:
    """The result of a run whose worker ended without reporting one; its folder says so too."""
    if started:
        spec.folder.settle(status, message)
    return RunResult(spec.name, status, message=message)


def from_folder(spec: RunSpec, since: float, status: str, reason: str) -> RunResult | None:
    """What a run's folder says of an attempt made since `since` (a time.time()), for a worker that
    ended without a result; a run it left `running` is settled as `status`. None: it never started."""
    from datetime import datetime

    meta = spec.folder.meta()
    try:
        started = datetime.fromisoformat(meta["started"]).timestamp() if meta else 0.0
    except (KeyError, TypeError, ValueError):
        started = 0.0
    if started < since - 1.0:
        return None
    if meta.get("status") == "running" and spec.folder.settle(status, reason):
        return RunResult(spec.name, status, message=reason)
    meta = spec.folder.meta() or {}
    return RunResult(spec.name, meta.get("status", status), meta.get("duration") or 0.0, message=meta.get("error", ""))
