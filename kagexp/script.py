"""`kagexp.main(run, RUNS)`: the entry point at the bottom of every exp.py.

It parses the flags, prints one line per run and a summary, and turns errors into exit codes:
0 all ran, 1 a run failed, 2 a user error (one line, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from kagexp import config
from kagexp.errors import ConfigError, KagexpError
from kagexp.experiment import Experiment, Planned
from kagexp.launchers import LAUNCHERS, LaunchOptions
from kagexp.run import RunFunction, RunResult, RunSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run this experiment's RUNS: each override merged into config.yml, one folder per run.",
        epilog="Example: python exp/exp001/exp.py --only run002,run003 --force; "
        "python exp/exp001/exp.py --gpus 0,1 (two runs at a time, one GPU each)",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and show what each run changes; write nothing")
    p.add_argument("--full", action="store_true", help="with --dry-run: print each run's whole merged config")
    p.add_argument("--only", metavar="RUNS", help="comma-separated runs to consider (run002,run003 or 2,3)")
    p.add_argument("--force", action="store_true", help="re-run done runs too (their old attempt is kept)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    p.add_argument("--list", action="store_true", help="list the runs and their status, run nothing")
    p.add_argument("--no-capture", action="store_true", help="do not copy output to log.txt (e.g. for pdb)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of kagexp errors")
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="run N runs at a time, each in its own process")
    p.add_argument("--gpus", metavar="IDS", help="GPU ids (0,1): one per run as CUDA_VISIBLE_DEVICES, one run per GPU")
    p.add_argument("--launcher", choices=LAUNCHERS, help="where runs run (default: inline, or processes with --jobs)")
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --launcher slurm: a kagexp.yml `slurm:` setting (partition=gpu, time_min=120, cluster=local)",
    )
    return p


def launch_options(args: argparse.Namespace) -> LaunchOptions:
    """The launcher flags as one value; `--slurm` values are YAML scalars (`120`, `gpu`, `null`)."""
    overrides = {}
    for item in args.slurm:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--slurm takes KEY=VALUE, such as partition=gpu; got {item!r}")
        overrides[key.strip()] = config.parse_yaml(value, f"--slurm {key.strip()}") if value.strip() else None
    gpus = tuple(args.gpus.split(",")) if args.gpus is not None else ()
    return LaunchOptions(launcher=args.launcher, jobs=args.jobs, gpus=gpus, slurm=overrides)


class LineReporter:
    """One line per run on stderr: started, then finished with its time and metrics.

    With `total` (runs that run in parallel), a finished line ends with the progress so far:
    `[3/40 finished, 2 running, 1 failed, 14 s]`.
    """

    def __init__(self, stream=None, total: int | None = None) -> None:
        self.stream = stream or sys.stderr
        self.results: list[RunResult] = []
        self.total = total
        self.running = 0
        self.clock = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def started(self, spec: RunSpec) -> None:
        self.running += 1
        self.say(f"{spec.exp}/{spec.name} started")

    def finished(self, spec: RunSpec, result: RunResult) -> None:
        self.results.append(result)
        self.running = max(0, self.running - 1)
        self.say(self.describe(spec, result) + self.progress())

    @staticmethod
    def describe(spec: RunSpec, result: RunResult) -> str:
        label = f"{spec.exp}/{spec.name}"
        if result.status == "done":
            return f"{label} done in {result.duration:.2f} s{format_metrics(result.metrics)}"
        if result.status == "failed" and result.duration:
            return f"{label} FAILED in {result.duration:.2f} s: {result.message} (see {spec.out_dir / 'error.txt'})"
        if result.status == "failed":
            return f"{label} FAILED: {result.message}"
        if result.status == "interrupted":
            return f"{label} interrupted after {result.duration:.2f} s"
        if result.status == "skipped":
            return f"skip {label}: {result.message}"
        return f"{label} {result.status}: {result.message}"

    def progress(self) -> str:
        if self.total is None:
            return ""
        failed = sum(r.status == "failed" for r in self.results)
        parts = [f"{len(self.results)}/{self.total} finished", f"{self.running} running"]
        parts += [f"{failed} failed"] if failed else []
        return f"  [{', '.join(parts)}, {time.monotonic() - self.clock:.0f} s]"


def format_metrics(metrics: dict) -> str:
    shown = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(metrics.items())[:6]]
    return "  " + " ".join(shown) if shown else ""


_MISSING = object()


def main(fn: RunFunction, runs: Any = _MISSING, argv: list[str] | None = None, script: str | None = None) -> NoReturn:
    """Run the experiment that `script` (by default the calling file) belongs to, then exit."""
    if script is None:
        caller = sys._getframe(1).f_globals.get("__file__")
        script = caller or fn.__code__.co_filename
    sys.exit(run_script(fn, runs, Path(script), argv))


def run_script(fn: RunFunction, runs: Any, script: Path, argv: list[str] | None = None) -> int:
    args = parser(f"python {script.name}").parse_args(argv)
    try:
        return _run(fn, runs, script, args)
    except KagexpError as exc:
        if args.debug:
            traceback.print_exc()
        print(exc.lines(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kagexp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return quiet_broken_pipe()


def quiet_broken_pipe() -> int:
    """`python exp.py --list | head`: the reader left; stop quietly, as `cat` does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


def _run(fn: RunFunction, runs: Any, script: Path, args: argparse.Namespace) -> int:
    if runs is _MISSING:
        where = os.path.relpath(script)
        raise ConfigError(f"{where}: kagexp.main(run, RUNS) needs RUNS, the list of override strings")
    exp = Experiment(script.parent, runs, script=script.resolve())
    if args.list:
        print(format_status_table(exp))
        return EXIT_OK
    if args.full and not args.dry_run:
        raise ConfigError("--full goes with --dry-run (it prints each run's whole merged config)")
    only = [part for part in args.only.split(",") if part.strip()] if args.only is not None else None
    plans = exp.plan(only=only, force=args.force)
    options = launch_options(args)
    launcher = exp.launcher(options, dry_run=args.dry_run)
    todo = [plan for plan in plans if plan.action == "run"]
    if args.dry_run:
        print(format_dry_run(exp, plans, args.full))
        if options.name() == "slurm" and todo:
            script = launcher.script(f"kagexp-{exp.name}", len(todo))
            print(f"\n# the sbatch script of the job array of {len(todo)} runs:\n{script}")
        return EXIT_OK
    if todo:
        exp.prepare_output([plan.spec for plan in todo])
    reporter = LineReporter(total=len(todo) if options.name() != "inline" else None)
    for plan in plans:
        if plan.action == "skip":
            reporter.say(f"skip {exp.name}/{plan.name}: {plan.reason}")
    started = time.monotonic()
    with _sigterm_as_interrupt():
        try:
            exp.execute(fn, plans, reporter, launcher=launcher, fail_fast=args.fail_fast, capture=not args.no_capture)
        finally:
            reporter.say(summary(exp.name, plans, reporter.results, time.monotonic() - started))
    return EXIT_FAILED if any(r.status == "failed" for r in reporter.results) else EXIT_OK


def summary(exp: str, plans: list[Planned], results: list[RunResult], seconds: float) -> str:
    counts: dict[str, int] = {}
    for plan in plans:
        if plan.action == "skip":
            counts["skipped"] = counts.get("skipped", 0) + 1
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    ran = len([p for p in plans if p.action == "run"])
    not_run = ran - len(results)
    if not_run > 0:
        counts["not run"] = not_run
    parts = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
    return f"{exp}: {parts} ({seconds:.1f} s)"


def format_dry_run(exp: Experiment, plans: list[Planned], full: bool) -> str:
    lines = []
    for plan in plans:
        verb = "would run" if plan.action == "run" else f"would skip ({plan.reason})"
        lines.append(f"{exp.name}/{plan.name}: {verb}")
        if full:
            lines.extend("    " + line for line in config.dump_yaml(plan.spec.config).splitlines())
            continue
        changes = config.diff(exp.base, plan.spec.config)
        lines.extend(f"    {change}" for change in changes)
        if not changes:
            lines.append("    (base config)")
    return "\n".join(lines)


def format_status_table(exp: Experiment) -> str:
    from kagexp.results import render

    rows = []
    for name, status, meta in exp.statuses():
        duration = meta.get("duration")
        metrics = format_metrics(_read_metrics(exp.out_dir / name)).strip()
        shown = f"{duration:.2f}s" if isinstance(duration, (int, float)) else ""
        rows.append([name, status, meta.get("attempt"), shown, metrics])
    return render(["run", "status", "attempt", "duration", "metrics"], rows, "table")


def _read_metrics(run_dir: Path) -> dict:
    from kagexp.files import read_json

    try:
        metrics = read_json(run_dir / "metrics.json")
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


class _sigterm_as_interrupt:
    """SIGTERM (a scheduler's preemption, `kill`) ends the run as `interrupted`, like Ctrl-C."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
