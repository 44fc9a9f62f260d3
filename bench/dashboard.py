"""`kagexp dashboard` at scale: build time, file size, and load-to-usable time in headless Chromium.

A synthetic project of E experiments × 100 runs is written straight through `kagexp.runfolder`'s
writers (what a real run writes: override, merged config, meta.json with this machine's real
provenance and package list, metrics.jsonl with 5 per-fold scores and a 20-step loss history,
metrics.json, summary.json; an LB score for 1 run in 100), with a lineage chain between the
experiments. Then:

- `kagexp dashboard` is timed as a whole process: first (no listing index yet), then warm (median);
- the file's size;
- in headless Chromium (Debian's `chromium`, driven by Playwright), the time from asking for the
  `file://` page to the runs table drawn and the page marked ready (and the same as the page's
  own clock counts it from navigation start), then a sort by the metric and a text filter (each
  until the table is redrawn, Playwright's round trips included). Medians over fresh pages.

Targets (issue 14): 10,000 runs → build ≤ 3 s, file ≤ 5 MB, usable ≤ 2 s.

    python bench/dashboard.py                  # 10,000 runs (100 × 100)
    python bench/dashboard.py --runs 1000
    python bench/dashboard.py --keep /tmp/dash     # keep the project for profiling
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kagexp import config, files
from kagexp.project import LINEAGE_FILE
from kagexp.provenance import Provenance
from kagexp.runfolder import RunFolder, append_line, now_iso

RUNS_PER_EXP = 100
SETTLE_SECONDS = 2.5  # run folders younger than 2 s are never cached by the listing index
BASE = {
    "seed": 42,
    "dataset": {"folds": 5, "target": "label", "features": ["f1", "f2", "f3"]},
    "model": {
        "name": "lgbm",
        "params": {"learning_rate": 0.05, "num_leaves": 31, "max_depth": -1, "feature_fraction": 0.8, "lambda_l2": 0.0},
    },
    "train": {"num_boost_round": 1000, "early_stopping": 50},
}


def make_project(root: Path, total: int) -> None:
    (root / "kagexp.yml").write_text("name: bench\nmetric:\n  name: auc\n  direction: max\n")
    rng = random.Random(0)
    environment = Provenance(root, root).environment  # this machine's real provenance, packages included
    for e in range(1, math.ceil(total / RUNS_PER_EXP) + 1):
        name = f"exp{e:03d}"
        exp_dir = root / "exp" / name
        exp_dir.mkdir(parents=True)
        files.write_text(exp_dir / "config.yml", config.dump_yaml(BASE))
        lineage = {"parent": f"exp{e - 1:03d}" if e > 1 else None, "note": f"hypothesis {e}: tune the trees"}
        files.write_text(exp_dir / LINEAGE_FILE, config.dump_yaml(lineage))
        out = root / "data" / "output" / "exp" / name
        for r in range(1, min(RUNS_PER_EXP, total - (e - 1) * RUNS_PER_EXP) + 1):
            write_run(out / f"run{r:03d}", name, rng, environment)


def write_run(path: Path, exp: str, rng: random.Random, environment: dict) -> None:
    """One finished run, written as kagexp writes it."""
    params = {
        "learning_rate": round(10 ** rng.uniform(-4, -1), 6),
        "num_leaves": rng.choice([15, 31, 63, 127, 255]),
        "feature_fraction": round(rng.uniform(0.5, 1.0), 3),
    }
    override = {"model": {"params": params}}
    merged = config.merge(BASE, override)
    path.mkdir(parents=True)
    folder = RunFolder(path)
    folder.write_override(config.dump_yaml(override))
    folder.write_config(merged)
    score = 0.9 + 0.02 * math.log10(params["learning_rate"] * 1e4) / 3 + rng.gauss(0, 0.004)
    folds = [score + rng.gauss(0, 0.003) for _ in range(5)]
    fd = folder.open_history()
    try:
        for step in range(20):
            append_line(
                fd, {"_step": step, "_time": time.time(), "loss": 0.7 * math.exp(-step / 6) + rng.random() / 50}
            )
        for fold, value in enumerate(folds):
            append_line(fd, {"_step": None, "_fold": fold, "_time": time.time(), "auc": value})  # ctx.log(…, fold=)
    finally:
        os.close(fd)
    metrics = {"auc": statistics.mean(folds), "auc_std": statistics.pstdev(folds), "loss": 0.05}
    folder.write_metrics(metrics)
    meta = {"exp": exp, "run": path.name, "status": "done", "attempt": 1, "started": now_iso(), "ended": now_iso()}
    meta.update(duration=round(rng.uniform(10, 600), 3), seed=42, **environment)
    folder.write_summary(meta, merged, metrics)
    folder.write_meta(meta)
    if rng.random() < 0.01:
        folder.append_lb(metrics["auc"] - 0.01 + rng.gauss(0, 0.003), None)


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def browser_times(page_path: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds from asking for the page to its table drawn; then to sort by the metric; to filter."""
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {"usable": [], "ready, as the page measures it": [], "sort": [], "filter": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for _ in range(repeats):
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="commit")
            page.wait_for_selector("html[data-ready]")
            times["usable"].append(time.perf_counter() - start)
            times["ready, as the page measures it"].append(int(page.get_attribute("html", "data-ready")) / 1000)
            start = time.perf_counter()
            page.click("#runs th[data-col=m0]")
            page.wait_for_selector("#runs th.sorted:not(.desc)")
            times["sort"].append(time.perf_counter() - start)
            start = time.perf_counter()
            page.fill("#filter", "exp001/run007")
            page.wait_for_selector('#runs tbody tr[data-run="exp001/run007"]:only-child')
            times["filter"].append(time.perf_counter() - start)
            page.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="make the project here and keep it (an empty or new folder)")
    args = parser.parse_args()
    kagexp = [sys.executable, "-m", "kagexp", "dashboard"]
    with tempfile.TemporaryDirectory(prefix="kagexp-dashboard-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        make_project(root, args.runs)
        print(
            f"{args.runs:,} runs in {math.ceil(args.runs / RUNS_PER_EXP)} experiments, made in "
            f"{time.perf_counter() - start:.0f} s\n"
        )
        time.sleep(SETTLE_SECONDS)
        first = timed(kagexp, root)
        warm = [timed(kagexp, root) for _ in range(args.repeats)]
        page = root / "data" / "output" / "dashboard.html"
        print("| measure | value |\n|---|---|")
        print(f"| `kagexp dashboard`, first (builds the listing index) | {first:.2f} s |")
        print(
            f"| `kagexp dashboard`, warm median (min–max) | {statistics.median(warm):.2f} s "
            f"({min(warm):.2f}–{max(warm):.2f}) |"
        )
        print(f"| file size | {page.stat().st_size / 1e6:.2f} MB |")
        if not shutil.which("chromium") or importlib.util.find_spec("playwright") is None:
            print("| browser | skipped: needs Debian's chromium and the playwright package (the dev extra) |")
            return
        for label, values in browser_times(page, args.repeats).items():
            print(
                f"| chromium: {label} median (min–max) | {statistics.median(values):.2f} s "
                f"({min(values):.2f}–{max(values):.2f}) |"
            )


if __name__ == "__main__":
    main()
