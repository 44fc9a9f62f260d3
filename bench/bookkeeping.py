"""kagexp's bookkeeping cost per run, against a bare loop that writes the same files.

For each N (200 and 2000 by default) a fresh project in a temporary folder gets N runs whose
override only changes `model.params.max_depth`, and a run function that only calls
`ctx.log({"cv": 0.5})`. Each run's wall time is the time between consecutive `finished()`
calls of a reporter, so it holds everything kagexp does for a run (claim, attempt archive,
config and meta files, provenance snapshot check, output capture to log.txt, metrics).
The bare loop does, in the same process, what a hand-written runner would: make the folder,
write config_update.yml, config.yml, meta.json, metrics.json and metrics.jsonl with plain
`open()`, `json.dump` and `yaml.safe_dump`, and call the same run function.

Prints a markdown table: median and p90 per run of both, their difference (kagexp's overhead),
the time of `Experiment.plan()`, and how much longer the first run took than the median (the
one-time cost of provenance: installed packages, git, code snapshot; in the first row also
what a process pays once, such as importing numpy to seed it). The targets are an overhead of
at most 2 ms per run and a flatness (median at the largest N over median at the smallest N)
of at most 1.3.

The run folders go to the system temp folder (`TMPDIR`) or `--dir`; on a real disk the figures
also hold the filesystem's cost (and its noise), on a tmpfs such as /dev/shm only kagexp's own.

Run: `python bench/bookkeeping.py [--runs 200,2000] [--dir /dev/shm]`
(`make bench` runs it, then bench/startup.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kagexp.experiment import Experiment
from kagexp.run import RunResult, RunSpec

BASE_CONFIG = "seed: 42\nmodel:\n  params:\n    max_depth: 1\n"
TARGET_OVERHEAD_MS = 2.0
TARGET_FLATNESS = 1.3


def override(i: int) -> str:
    return f"model:\n  params:\n    max_depth: {i}\n"


def trivial(cfg: Any, ctx: Any) -> None:
    ctx.log({"cv": 0.5})


def make_project(root: Path) -> Path:
    """A minimal project under `root`; returns its experiment folder."""
    exp_dir = root / "exp" / "exp001"
    exp_dir.mkdir(parents=True)
    (root / "kagexp.yml").write_text("name: bench\n")
    (exp_dir / "config.yml").write_text(BASE_CONFIG)
    (exp_dir / "exp.py").write_text("RUNS = []  # the benchmark passes its runs to Experiment directly\n")
    return exp_dir


class Stopwatch:
    """A reporter whose samples are the wall times between consecutive `finished()` calls."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.samples: list[float] = []

    def planned(self, plans: list, parallel: bool) -> None:
        """The first run's sample starts once the runs are planned."""
        self.last = time.perf_counter()

    def started(self, spec: RunSpec) -> None:
        """Part of the reporter protocol; a run's sample already starts at the previous `finished()`."""

    def finished(self, spec: RunSpec, result: RunResult) -> None:
        now = time.perf_counter()
        self.samples.append(now - self.last)
        self.last = now


@dataclass
class KagexpTiming:
    samples: list[float]
    plan_seconds: float


def time_kagexp(root: Path, n: int) -> KagexpTiming:
    exp = Experiment(make_project(root), [override(i) for i in range(n)])
    start = time.perf_counter()
    exp.plan()
    plan_seconds = time.perf_counter() - start
    watch = Stopwatch()
    results = exp.run(trivial, reporter=watch, capture=True)
    not_done = [r for r in results if r.status != "done"]
    if len(results) != n or not_done:
        raise RuntimeError(f"expected {n} done runs, got {len(results)}; not done: {not_done[:3]}")
    return KagexpTiming(watch.samples, plan_seconds)


class BareContext:
    """The least a runner needs to give the run function: a `log` that appends to metrics.jsonl."""

    def __init__(self, history: Any) -> None:
        self.history = history
        self.metrics: dict[str, Any] = {}

    def log(self, metrics: dict[str, Any]) -> None:
        self.metrics.update(metrics)
        self.history.write(json.dumps(metrics) + "\n")


def bare_run(run_dir: Path, i: int) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "config_update.yml").write_text(override(i))
    cfg = {"seed": 42, "model": {"params": {"max_depth": i}}}
    with open(run_dir / "config.yml", "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    with open(run_dir / "metrics.jsonl", "w") as history:
        ctx = BareContext(history)
        trivial(cfg, ctx)
    with open(run_dir / "meta.json", "w") as f:
        json.dump({"run": run_dir.name, "status": "done", "seed": 42}, f)
    with open(run_dir / "metrics.json", "w") as f:
        json.dump(ctx.metrics, f)


def time_bare(root: Path, n: int) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        bare_run(root / f"run{i + 1:03d}", i)
        samples.append(time.perf_counter() - start)
    return samples


def ms(seconds: float) -> float:
    return seconds * 1000


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


@dataclass
class Row:
    n: int
    kagexp: KagexpTiming
    bare: list[float]

    @property
    def overhead_ms(self) -> float:
        return ms(statistics.median(self.kagexp.samples) - statistics.median(self.bare))

    @property
    def first_run_extra_ms(self) -> float:
        return ms(self.kagexp.samples[0] - statistics.median(self.kagexp.samples))


def measure(n: int, parent: Path) -> Row:
    root = Path(tempfile.mkdtemp(prefix=f"kagexp-bench-{n}-", dir=parent))
    try:
        kagexp = time_kagexp(root / "project", n)
        bare = time_bare(root / "bare", n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return Row(n, kagexp, bare)


def filesystem(path: Path) -> str:
    """The type of the filesystem holding `path`, from /proc/mounts (Linux), else `unknown`."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    holding = [(point, kind) for point, kind in mounts if path.resolve().is_relative_to(point)]
    return max(holding, key=lambda mount: len(mount[0]))[1] if holding else "unknown"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def figures_table(rows: list[Row]) -> str:
    header = [
        "N",
        "kagexp median ms",
        "kagexp p90 ms",
        "bare median ms",
        "bare p90 ms",
        "overhead ms/run",
        "plan() ms",
        "first run extra ms",
        "all runs s",
    ]
    body = [
        [
            str(row.n),
            f"{ms(statistics.median(row.kagexp.samples)):.3f}",
            f"{ms(p90(row.kagexp.samples)):.3f}",
            f"{ms(statistics.median(row.bare)):.3f}",
            f"{ms(p90(row.bare)):.3f}",
            f"{row.overhead_ms:.3f}",
            f"{ms(row.kagexp.plan_seconds):.1f}",
            f"{row.first_run_extra_ms:.1f}",
            f"{sum(row.kagexp.samples):.2f}",
        ]
        for row in rows
    ]
    return table(header, body)


def targets_table(rows: list[Row]) -> str:
    worst = max(rows, key=lambda row: row.overhead_ms)
    body = [
        [
            f"overhead per run (worst, N={worst.n})",
            f"{worst.overhead_ms:.3f} ms",
            f"≤ {TARGET_OVERHEAD_MS:g} ms",
            "yes" if worst.overhead_ms <= TARGET_OVERHEAD_MS else "NO",
        ]
    ]
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        flatness = statistics.median(large.kagexp.samples) / statistics.median(small.kagexp.samples)
        body.append(
            [
                f"flatness (median N={large.n} / N={small.n})",
                f"{flatness:.2f}",
                f"≤ {TARGET_FLATNESS:g}",
                "yes" if flatness <= TARGET_FLATNESS else "NO",
            ]
        )
    return table(["check", "value", "target", "met"], body)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="200,2000", help="comma-separated numbers of runs (default: 200,2000)")
    p.add_argument("--dir", help="where to make the temporary projects (default: the system temp folder)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    counts = sorted(int(part) for part in args.runs.split(",") if part.strip())
    parent = Path(args.dir or tempfile.gettempdir())
    print(f"Runs written under {parent} ({filesystem(parent)}).\n")
    rows = [measure(n, parent) for n in counts]
    print(figures_table(rows))
    print()
    print(targets_table(rows))


if __name__ == "__main__":
    main()
