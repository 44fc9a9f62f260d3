"""Thread limits under `--jobs`: three HistGradientBoosting runs, inline and with `-j 2`.

scikit-learn's HistGradientBoosting uses every core through OpenMP in each process; two runs at
once on two cores, each with every core, took 4–10x longer than one at a time before kagexp gave
each run its share (`kagexp.threads`). This times, as the wall time of the whole `python exp.py`
process in a new project each time:

- inline: the three runs one after the other, each with every core;
- inline with `OMP_NUM_THREADS=1`: the same on one thread each (what `-j 2` should halve);
- `-j 2`: two at a time, each limited to max(1, cores // 2) threads by kagexp;
- `-j 2` with `OMP_NUM_THREADS=<cores>` set by the user: kagexp leaves it alone, so each run
  uses every core, as before the limits (for comparison).

Target: `-j 2` is no slower than inline. exp.py imports scikit-learn at its top, as most do, so
its OpenMP runtime is loaded before the runs are forked. Run it with the project's virtualenv:
`python bench/threads.py [--samples 40000] [--trees 100,200,300] [--reps 1]`.
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

from kagexp.threads import VARIABLES, cores

EXP_PY = """\
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier

import kagexp

RUNS = [f"max_iter: {{trees}}" for trees in {trees!r}]
X, y = make_classification(n_samples={samples}, n_features=40, n_informative=20, random_state=0)


def run(cfg, ctx):
    model = HistGradientBoostingClassifier(max_iter=cfg.max_iter, early_stopping=False, random_state=0)
    ctx.log({{"train_accuracy": model.fit(X, y).score(X, y)}})


if __name__ == "__main__":
    kagexp.main(run, RUNS)
"""


def wall_time(samples: int, trees: list[int], flags: list[str], environ: dict[str, str]) -> float:
    """Seconds for `python exp.py FLAGS` to run the three runs of a new project."""
    with tempfile.TemporaryDirectory(prefix="kagexp-bench-") as tmp:
        root = Path(tmp)
        (root / "exp" / "exp001").mkdir(parents=True)
        (root / "kagexp.yml").write_text("name: bench\n")
        (root / "exp" / "exp001" / "config.yml").write_text("max_iter: 100\n")
        (root / "exp" / "exp001" / "exp.py").write_text(EXP_PY.format(samples=samples, trees=trees))
        env = {**{k: v for k, v in os.environ.items() if k not in VARIABLES}, **environ}
        start = time.perf_counter()
        command = [sys.executable, "exp/exp001/exp.py", *flags]
        subprocess.run(command, cwd=root, check=True, capture_output=True, env=env)
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=40000, help="rows of the training data (default: 40000)")
    p.add_argument("--trees", default="100,200,300", help="trees of each run (default: 100,200,300)")
    p.add_argument("--reps", type=int, default=1, help="rounds; the median is shown (default: 1)")
    args = p.parse_args()
    every = cores()
    cases = {
        "inline": ([], {}),
        "-j 2 (kagexp's limits)": (["-j", "2"], {}),
        "inline, OMP_NUM_THREADS=1": ([], {"OMP_NUM_THREADS": "1"}),
        f"-j 2, OMP_NUM_THREADS={every} (no limit)": (["-j", "2"], {"OMP_NUM_THREADS": str(every)}),
    }
    trees = [int(t) for t in args.trees.split(",")]
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.reps):
        for name, (flags, environ) in cases.items():
            times[name].append(wall_time(args.samples, trees, flags, environ))
    print(f"HistGradientBoosting runs of {args.trees} trees, {args.samples} rows, {every} cores")
    print("| how | seconds |\n|---|---|")
    for name, samples in times.items():
        print(f"| {name} | {statistics.median(samples):.1f} |")
    inline, limited = (statistics.median(times[name]) for name in list(cases)[:2])
    met = "yes" if limited <= inline else "NO"
    print(f"\ntarget: -j 2 no slower than inline: {limited:.1f} s vs {inline:.1f} s ({limited / inline:.2f}x, {met})")


if __name__ == "__main__":
    main()
