"""Listing speed at 100,000 runs: `kagexp runs` as a whole process over a generated project.

The project is written directly with `kagexp.runfolder`'s writers (override, meta, summary per
run; E experiments of R runs), not by running anything, so 100,000 runs take a minute or two
to make instead of an hour. Each command is then timed as a subprocess: once cold (no index: it
reads every summary and writes the indexes), then warm (the median of the following runs). At
100,000 runs a warm listing checks each experiment as a whole (its folder's time and
generation), not each run folder; `--refresh` shows what reading every folder again costs.

Targets (issue 14): `kagexp runs --sort -cv --limit 20` ≤ 0.5 s and `kagexp runs --format json`
≤ 1.5 s over 100,000 runs, whole process, warm index.

    python bench/listing.py                       # 100,000 runs (1,000 × 100)
    python bench/listing.py --runs 10000          # 10,000 runs
    python bench/listing.py --keep /tmp/big       # keep the project for profiling
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kagexp import config
from kagexp.runfolder import RunFolder, now_iso

RUNS_PER_EXP = 100
SETTLE_SECONDS = 2.5  # run folders younger than 2 s are never cached; wait so the index can be used
BASE = {
    "seed": 42,
    "lr": 0.001,
    "dataset": {"batch_size": 32, "folds": [0, 1, 2, 3, 4]},
    "model": {"name": "lgbm", "params": {"max_depth": 6, "num_leaves": 31, "min_child_samples": 20}},
}
COMMANDS = [
    ("kagexp runs --sort -cv --limit 20", ["runs", "--sort", "-cv", "--limit", "20"], 0.5),
    ("kagexp runs --format json", ["runs", "--format", "json"], 1.5),
    ("kagexp runs --where 'cv>0.99' --format csv", ["runs", "--where", "cv>0.99", "--format", "csv"], None),
    ("kagexp ls", ["ls"], None),
    ("kagexp runs --sort -cv --limit 20 --refresh", ["runs", "--sort", "-cv", "--limit", "20", "--refresh"], None),
]


def make_run(folder: RunFolder, rng: random.Random, number: int) -> None:
    """One finished run, as `kagexp.run` leaves it (its override, meta and summary)."""
    depth, leaves = rng.randint(2, 12), rng.choice([15, 31, 63, 127])
    override = f"model:\n  params:\n    max_depth: {depth}\n    num_leaves: {leaves}\n"
    merged = config.merge(BASE, {"model": {"params": {"max_depth": depth, "num_leaves": leaves}}})
    started = now_iso()
    meta = {"status": "done", "attempt": 1, "started": started, "ended": started, "duration": rng.uniform(1, 600)}
    meta.update(code_hash="0123456789abcdef", seed=42, error=None, override_hash=f"{number:016x}")
    metrics = {"cv": rng.uniform(0.9, 0.999), "loss": rng.uniform(0.01, 0.3), "cv_std": rng.uniform(0, 0.01)}
    folder.path.mkdir()
    folder.write_override(override)
    folder.write_meta(meta)
    folder.write_summary(meta, merged, metrics)


def make_project(root: Path, total: int) -> None:
    (root / "kagexp.yml").write_text("name: bench\nmetric:\n  name: cv\n  direction: max\n")
    rng = random.Random(0)
    for e in range(1, max(1, total // RUNS_PER_EXP) + 1):
        out = root / "data" / "output" / "exp" / f"exp{e:03d}"
        out.mkdir(parents=True)
        for r in range(1, min(RUNS_PER_EXP, total) + 1):
            make_run(RunFolder(out / f"run{r:03d}"), rng, e * 1000 + r)


def timed(command: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="make the project here and keep it (an empty or new folder)")
    args = parser.parse_args()
    kagexp = [sys.executable, "-m", "kagexp"]
    root = args.keep or Path(tempfile.mkdtemp(prefix="kagexp-listing-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        kept = (root / "kagexp.yml").exists()
        if not kept:
            make_project(root, args.runs)
            time.sleep(SETTLE_SECONDS)
            made = f"made in {time.perf_counter() - start:.0f} s"
        else:
            made = "kept from an earlier run: its indexes exist, so the first column is warm too"
        print(f"{args.runs:,} runs in {max(1, args.runs // RUNS_PER_EXP):,} experiments, {made}\n")
        print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
        print("| command | first (builds the index) s | warm median s | warm min–max s | target s |")
        print("|---|---|---|---|---|")
        for label, command, target in COMMANDS:
            cold = timed(kagexp + command, root)
            if label == COMMANDS[0][0]:  # the first listing made each `.listing/`: vouch once settled
                time.sleep(SETTLE_SECONDS)
                timed(kagexp + command, root)
            warm = [timed(kagexp + command, root) for _ in range(args.repeats)]
            goal = f"≤ {target}" if target else ""
            print(
                f"| `{label}` | {cold:.2f} | {statistics.median(warm):.3f} | {min(warm):.3f}–{max(warm):.3f} | {goal} |"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
