"""`kagexp.main(run, RUNS)`: the entry point at the bottom of every exp.py.

It only parses the flags and prints: `Experiment.run` does the work, `errors.run_command` turns
what escapes into an exit code (0 all ran, 1 a run failed, 2 a user error, 130 interrupted).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

from kagexp import config
from kagexp.errors import EXIT_FAILED, EXIT_OK, UsageError, run_command
from kagexp.experiment import Experiment, Planned
from kagexp.launchers import LAUNCHERS, LaunchOptions
from kagexp.run import RunFunction, RunResult, RunSpec
from kagexp.runfolder import RunFolder


class _Parser(argparse.ArgumentParser):
    """A mistake in the flags is one line, like every kagexp error (argparse prints its usage first)."""

    def error(self, message: str):
        self.exit(2, f"kagexp: error: {message}; see {self.prog} --help\n")


def parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(
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
            raise UsageError(f"--slurm takes KEY=VALUE, such as partition=gpu; got {item!r}")
        overrides[key.strip()] = config.parse_yaml(value, f"--slurm {key.strip()}") if value.strip() else None
    gpus = tuple(args.gpus.split(",")) if args.gpus is not None else ()
    return LaunchOptions(launcher=args.launcher, jobs=args.jobs, gpus=gpus, slurm=overrides)


class LineReporter:
    """One line per run on stderr: skipped, started, then finished with its time and metrics, and a
    summary line at the end. When runs overlap (`--jobs`, Slurm), a finished line ends with the
    progress so far: `[3/40 finished, 2 running, 1 failed, 14 s]`."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.plans: list[Planned] | None = None
        self.parallel = False
        self.results: list[RunResult] = []
        self.running = 0
        self.clock = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def planned(self, plans: list[Planned], parallel: bool) -> None:
        self.plans, self.parallel = plans, parallel
        self.clock = time.monotonic()
        for plan in plans:
            if plan.action == "skip":
                self.say(f"skip {plan.spec.label}: {plan.reason}")

    def started(self, spec: RunSpec) -> None:
        self.running += 1
        self.say(f"{spec.label} started")

    def finished(self, spec: RunSpec, result: RunResult) -> None:
        self.results.append(result)
        self.running = max(0, self.running - 1)
        self.say(self.describe(spec, result) + self.progress())

    @staticmethod
    def describe(spec: RunSpec, result: RunResult) -> str:
        label = spec.label
        if result.status == "done":
            return f"{label} done in {result.duration:.2f} s{format_metrics(result.metrics)}"
        if result.status == "failed" and result.duration:
            return f"{label} FAILED in {result.duration:.2f} s: {result.message} (see {spec.folder.error_path})"
        if result.status == "failed":
            return f"{label} FAILED: {result.message}"
        if result.status == "interrupted":
            return f"{label} interrupted after {result.duration:.2f} s"
        if result.status == "skipped":
            return f"skip {label}: {result.message}"
        return f"{label} {result.status}: {result.message}"

    def progress(self) -> str:
        if not self.parallel or self.plans is None:
            return ""
        total = sum(plan.action == "run" for plan in self.plans)
        failed = sum(r.status == "failed" for r in self.results)
        parts = [f"{len(self.results)}/{total} finished", f"{self.running} running"]
        parts += [f"{failed} failed"] if failed else []
        return f"  [{', '.join(parts)}, {time.monotonic() - self.clock:.0f} s]"

    def summary(self, exp: str) -> str:
        """`exp001: 3 done, 1 failed, 2 skipped (4.2 s)`, counting runs that never started as `not run`."""
        counts = Counter("skipped" for plan in self.plans or [] if plan.action == "skip")
        counts.update(result.status for result in self.results)
        not_run = sum(plan.action == "run" for plan in self.plans or []) - len(self.results)
        if not_run > 0:
            counts["not run"] = not_run
        parts = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
        return f"{exp}: {parts} ({time.monotonic() - self.clock:.1f} s)"


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
    return run_command(lambda: _run(fn, runs, script, args), debug=args.debug)


def _run(fn: RunFunction, runs: Any, script: Path, args: argparse.Namespace) -> int:
    if runs is _MISSING:
        where = os.path.relpath(script)
        raise UsageError(f"{where}: kagexp.main(run, RUNS) needs RUNS, the list of override strings")
    if args.full and not args.dry_run:
        raise UsageError("--full goes with --dry-run (it prints each run's whole merged config)")
    exp = Experiment(script.parent, runs, script=script)
    only = [part for part in args.only.split(",") if part.strip()] if args.only is not None else None
    if args.list:
        print(format_status_table(exp, only))
        return EXIT_OK
    options = launch_options(args)
    if args.dry_run:
        plans = exp.plan(only=only, force=args.force)
        launcher = exp.launcher(options, dry_run=True)  # a wrong flag is an error before anything is printed
        print(format_dry_run(exp, plans, args.full))
        described = launcher.describe([p.spec for p in plans if p.action == "run"])
        if described:
            print(f"\n{described}")
        return EXIT_OK
    reporter = LineReporter()
    try:
        exp.run(
            fn,
            only=only,
            force=args.force,
            launcher=options,
            fail_fast=args.fail_fast,
            reporter=reporter,
            capture=not args.no_capture,
        )
    finally:
        if reporter.plans is not None:
            reporter.say(reporter.summary(exp.name))
    return EXIT_FAILED if any(r.status == "failed" for r in reporter.results) else EXIT_OK


def format_dry_run(exp: Experiment, plans: list[Planned], full: bool) -> str:
    lines = []
    for plan in plans:
        verb = "would run" if plan.action == "run" else f"would skip: {plan.reason}"
        lines.append(f"{exp.name}/{plan.name}: {verb}")
        if full:
            lines.extend("    " + line for line in config.dump_yaml(plan.spec.config).splitlines())
            continue
        changes = config.diff(exp.base, plan.spec.config)
        lines.extend(f"    {change}" for change in changes)
        if not changes:
            lines.append("    (base config)")
    return "\n".join(lines)


def format_status_table(exp: Experiment, only: list[str] | None = None) -> str:
    """`--list`: every run with its status, or only the `--only` ones (checked like a run's `--only`)."""
    from kagexp.tables import render

    statuses = exp.statuses()
    if only is not None:
        chosen = exp.select(only, [run.name for run in statuses])
        statuses = [run for run in statuses if run.name in chosen]
    rows = []
    for run in statuses:
        duration = run.meta.get("duration")
        metrics = format_metrics(RunFolder(exp.out_dir / run.name).metrics()).strip()
        shown = f"{duration:.2f}s" if isinstance(duration, (int, float)) else ""
        status = run.status if run.in_runs else f"{run.status} (not in RUNS)"
        rows.append([run.name, status, run.meta.get("attempt"), shown, metrics])
    return render(["run", "status", "attempt", "duration", "metrics"], rows, "table")
