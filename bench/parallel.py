"""Parallel runs: the processes launcher against the inline loop, on CPU-bound and on trivial runs.

1. Speed-up: `--runs` runs (40 by default) of `--work` seconds of CPU work each (0.5 s, a busy
   loop on the process's CPU clock), run by `python exp.py` (inline) and by `python exp.py
   --jobs 2`. Target: `--jobs 2` takes at most 0.6x the inline time (on 2 cores or more).
2. Overhead: `--trivial` runs (200) that do nothing, inline and with `--launcher processes
   --jobs 1` (one forked process per run, one at a time); the difference per run is what the
   processes launcher costs a run: fork, the result's trip through a pipe, the process's exit.
   Target: at most 50 ms.

Every figure is the wall time of the whole `python exp.py` process, in a new project made in a
temporary folder each time; the table shows the median of `--reps` rounds (1 by default).
Run it with the project's virtualenv: `python bench/parallel.py [--runs 40] [--work 0.5]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 0.6
TARGET_OVERHEAD_MS = 50.0

EXP_PY = """\
import time

import kagexp

RUNS = [f"x: {{i}}" for i in range({runs})]


def run(cfg, ctx):
    start = time.process_time()
    while time.process_time() - start < {work}:
        pass
    ctx.log({{"x": cfg.x}})


if __name__ == "__main__":
    kagexp.main(run, RUNS)
"""


def make_project(root: Path, runs: int, work: float) -> Path:
    (root / "exp" / "exp001").mkdir(parents=True)
    (root / "kagexp.yml").write_text("name: bench\n")
    (root / "exp" / "exp001" / "config.yml").write_text("x: 0\n")
    (root / "exp" / "exp001" / "exp.py").write_text(EXP_PY.format(runs=runs, work=work))
    return root


def wall_time(runs: int, work: float, *flags: str) -> float:
    """Seconds for `python exp.py FLAGS` to run every run of a new project."""
    with tempfile.TemporaryDirectory(prefix="kagexp-bench-") as tmp:
        root = make_project(Path(tmp), runs, work)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "exp/exp001/exp.py", *flags], cwd=root, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"python exp.py {' '.join(flags)} failed:\n{done.stderr}")
    return seconds


def median_time(reps: int, runs: int, work: float, *flags: str) -> float:
    return statistics.median(wall_time(runs, work, *flags) for _ in range(reps))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=40, help="CPU-bound runs (default: 40)")
    p.add_argument("--work", type=float, default=0.5, help="CPU seconds per run (default: 0.5)")
    p.add_argument("--trivial", type=int, default=200, help="trivial runs for the overhead (default: 200)")
    p.add_argument("--reps", type=int, default=1, help="rounds; the median is shown (default: 1)")
    args = p.parse_args()

    inline = median_time(args.reps, args.runs, args.work)
    jobs2 = median_time(args.reps, args.runs, args.work, "--jobs", "2")
    ratio = jobs2 / inline
    bare = median_time(args.reps, args.trivial, 0.0)
    forked = median_time(args.reps, args.trivial, 0.0, "--launcher", "processes", "--jobs", "1")
    overhead_ms = (forked - bare) / args.trivial * 1000

    print(f"{os.cpu_count()} cores; {args.runs} runs of {args.work:g} s CPU; {args.trivial} trivial runs\n")
    print(
        table(
            ["run", "wall time s", "per run ms"],
            [
                [f"{args.runs} CPU runs, inline", f"{inline:.2f}", f"{inline / args.runs * 1000:.0f}"],
                [f"{args.runs} CPU runs, `--jobs 2`", f"{jobs2:.2f}", f"{jobs2 / args.runs * 1000:.0f}"],
                [f"{args.trivial} trivial runs, inline", f"{bare:.2f}", f"{bare / args.trivial * 1000:.1f}"],
                [
                    f"{args.trivial} trivial runs, `--launcher processes --jobs 1`",
                    f"{forked:.2f}",
                    f"{forked / args.trivial * 1000:.1f}",
                ],
            ],
        )
    )
    print()
    print(
        table(
            ["check", "value", "target", "met"],
            [
                [
                    "`--jobs 2` / inline",
                    f"{ratio:.2f}x",
                    f"≤ {TARGET_RATIO}x",
                    "yes" if ratio <= TARGET_RATIO else "NO",
                ],
                [
                    "processes launcher overhead per run",
                    f"{overhead_ms:.1f} ms",
                    f"≤ {TARGET_OVERHEAD_MS:g} ms",
                    "yes" if overhead_ms <= TARGET_OVERHEAD_MS else "NO",
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
