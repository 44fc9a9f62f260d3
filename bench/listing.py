"""Listing speed: `kagexp runs` and `kagexp ls` as whole processes over many real run folders.

The runs are made by kagexp itself (E experiments of R trivial runs each), then each command is
timed as a subprocess: once with no index (the first listing, which reads every summary.json and
writes the per-experiment indexes), then warm (median of the following ones).
Targets: 10,000 runs in ≤ 0.3 s, 100,000 runs in < 3 s.

    python bench/listing.py                      # 10,000 runs (100 × 100)
    python bench/listing.py --runs 100000        # 100,000 runs (1,000 × 100); takes a few minutes
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

from kagexp.experiment import Experiment

CONFIG = "seed: 42\nlr: 1e-3\nmodel:\n  name: tree\n  params:\n    max_depth: 1\n    min_samples_leaf: 1\n"
RUNS_PER_EXP = 100
SETTLE_SECONDS = 2.5  # run folders younger than 2 s are never cached; wait so the index can be used


def make_runs(root: Path, total: int) -> None:
    (root / "kagexp.yml").write_text("name: bench\nmetric:\n  name: cv\n  direction: max\n")
    for e in range(1, total // RUNS_PER_EXP + 1):
        exp_dir = root / "exp" / f"exp{e:04d}"
        exp_dir.mkdir(parents=True)
        (exp_dir / "config.yml").write_text(CONFIG)
        (exp_dir / "exp.py").write_text("# bench\n")
        runs = [f"model:\n  params:\n    max_depth: {i}\n" for i in range(RUNS_PER_EXP)]
        exp = Experiment(exp_dir, runs)
        exp.run(lambda cfg, ctx: ctx.log({"cv": cfg.model.params.max_depth / 100}), capture=False)


def timed(command: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start


def measure(cwd: Path, command: list[str], repeats: int) -> tuple[float, list[float]]:
    cold = timed(command, cwd)
    return cold, [timed(command, cwd) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    kagexp = str(Path(sys.executable).with_name("kagexp"))
    with tempfile.TemporaryDirectory(prefix="kagexp-listing-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        make_runs(root, args.runs)
        made = time.perf_counter() - start
        time.sleep(SETTLE_SECONDS)
        print(f"{args.runs:,} runs in {args.runs // RUNS_PER_EXP} experiments, made in {made:.0f} s\n")
        print("| command | first (builds the index) s | warm median s | warm min–max s |")
        print("|---|---|---|---|")
        for label, command in [
            ("kagexp runs --format json", [kagexp, "runs", "--format", "json"]),
            ("kagexp runs", [kagexp, "runs"]),
            ("kagexp ls", [kagexp, "ls"]),
        ]:
            cold, warm = measure(root, command, args.repeats)
            print(f"| `{label}` | {cold:.2f} | {statistics.median(warm):.3f} | {min(warm):.3f}–{max(warm):.3f} |")


if __name__ == "__main__":
    main()
