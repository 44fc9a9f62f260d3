"""`kagexp new` against `cp -r` on the same experiment folder: the copy must stay within 1.2× of cp.

Builds an experiment of 300 small files in a few folders plus 4 files of 8 MB, then times, over
9 repetitions taken in turns, `new_experiment` in this process and `cp -r` as a subprocess (its process
start-up included, as a user pays it; `python -c pass` is shown for scale). Prints a markdown table.

    .venv/bin/python bench/new_vs_cp.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kagexp.project import Project
from kagexp.scaffold import new_experiment

REPEATS = 9
SMALL_FILES = 300
BIG_FILES = 4
BIG_SIZE = 8 * 2**20
TARGET = 1.2


def build_experiment(exp_dir: Path) -> int:
    """Small code and config files in a few sub-folders, and a few multi-MB files (e.g. weights)."""
    for i in range(SMALL_FILES):
        path = exp_dir / f"pkg{i % 6}" / f"module_{i:03d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\n" + "x = 1\n" * (20 + i % 200))
    for i in range(BIG_FILES):
        (exp_dir / f"weights_{i}.bin").write_bytes(os.urandom(BIG_SIZE))
    return sum(f.stat().st_size for f in exp_dir.rglob("*") if f.is_file())


def median_times(actions: dict[str, Callable[[int], None]], cleanups: dict[str, Callable[[int], None]]) -> dict:
    """Median seconds of each action; the actions take turns, so drift in the machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for i in range(REPEATS):
        for name, action in actions.items():
            started = time.perf_counter()
            action(i)
            times[name].append(time.perf_counter() - started)
            cleanups[name](i)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kagexp-bench-") as tmp:
        root = Path(tmp)
        source = root / "exp" / "exp001"
        source.mkdir(parents=True)
        total = build_experiment(source)
        project = Project(root)
        cp_target = root / "cp-copy"

        def run_new(i: int) -> None:
            new_experiment(project, name=f"exp{i + 100}", source="exp001")

        def run_cp(i: int) -> None:
            subprocess.run(["cp", "-r", str(source), str(cp_target)], check=True)

        def run_python(i: int) -> None:
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        # warm the page cache and the imports once, so that neither side pays for it
        run_cp(0)
        shutil.rmtree(cp_target)
        medians = median_times(
            {"new": run_new, "cp": run_cp, "python": run_python},
            {
                "new": lambda i: shutil.rmtree(project.exp_dir(f"exp{i + 100}")),
                "cp": lambda i: shutil.rmtree(cp_target),
                "python": lambda i: None,
            },
        )
        new, cp, python = medians["new"], medians["cp"], medians["python"]

    files = SMALL_FILES + BIG_FILES
    print(f"{files} files, {total / 2**20:.1f} MB; median of {REPEATS}\n")
    print("| what | median ms | vs cp -r |")
    print("|---|---:|---:|")
    print(f"| `new_experiment` (in-process) | {new * 1000:.1f} | {new / cp:.2f}× |")
    print(f"| `cp -r` (subprocess) | {cp * 1000:.1f} | 1.00× |")
    print(f"| `python -c pass` (for scale) | {python * 1000:.1f} | {python / cp:.2f}× |")
    verdict = "ok" if new / cp <= TARGET else "TOO SLOW"
    print(f"\ntarget: new ≤ {TARGET}× cp -r → {new / cp:.2f}× {verdict}")


if __name__ == "__main__":
    main()
