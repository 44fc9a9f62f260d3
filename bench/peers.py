"""kagexp against its peers (Hydra, MLflow, Sacred, a bare loop), side by side, in one run on this machine.

Three sections, each one markdown table (tool, N, median, spread, ratio to kagexp):

1. Bookkeeping per run, at 200 and 2,000 trivial runs. Each run trains nothing, logs one metric `cv`
   and has a config of six keys, of which `model.params.max_depth` changes from run to run.
   - kagexp: in-process, `Experiment(...).run(fn, reporter=...)`; the reporter
     times each run (the time between consecutive `finished()` calls).
   - Hydra: one `python app.py -m model.params.max_depth=range(0,N)` process with the basic
     launcher; the app stamps the time in each job, and total = the whole process.
     Hydra costs a tenth of a second or more a job, so its "2,000" row runs 300 jobs (HYDRA_RUNS).
   - MLflow, file store: `start_run(); log_params(); log_metric("cv", 0.5); end_run()` per run.
   - Sacred, FileStorageObserver: `ex.run(config_updates=...)` per run, logging silenced.
   - bare loop: the files kagexp writes (config_update.yml, config.yml, meta.json, metrics.json,
     metrics.jsonl) with plain open(), json and yaml's CSafeDumper.
   kagexp and the bare loop also run on /dev/shm (tmpfs), to show what the disk costs.
   Each tool first does an unmeasured sweep of 3 runs. Median and p10–p90 are over the per-run
   samples; total/N is the whole sweep (kagexp: plan() included; Hydra: the whole process) over N,
   and the ratio is total/N over kagexp's total/N.
2. Listing 2,000 and 10,000 runs (100 runs per experiment): `kagexp runs --format json` as a whole
   process and in-process (`kagexp.cli.cli.main`), `mlflow.search_runs` in-process over a file store
   holding the same runs, and `json.load` of each run's metrics.json and meta.json as the floor.
   The runs are made (untimed) in WORKERS processes; the MLflow store is left out at a size whose
   making would pass MLFLOW_CREATE_BUDGET. Warmed once, then median and min–max of LIST_REPS calls.
3. Start-up: whole-process wall time of `kagexp --help`, `import kagexp`, `mlflow --help`,
   `import hydra`, a Hydra app's `--help`, `import sacred` and `python -c pass`; warmed once,
   then STARTUP_REPS rounds taken in turns.

Subprocesses keep their bytecode in a temporary PYTHONPYCACHEPREFIX (as bench/startup.py does).
Everything is written in one temporary folder on a disk (`--dir` to choose), deleted at the end.
The peers are not in kagexp's dependencies: run this with the benchmark virtualenv that
`make bench` creates (.venv-bench: kagexp, hydra-core, mlflow-skinny, sacred). It writes
bench/RESULTS.md and prints it; progress goes to stderr.

    .venv-bench/bin/python bench/peers.py [--dir PATH] [--out bench/RESULTS.md] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import datetime
import functools
import importlib.metadata
import io
import json
import logging
import multiprocessing
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # before mlflow is imported anywhere

import yaml  # noqa: E402
from bookkeeping import Stopwatch, filesystem, table  # noqa: E402
from startup import cached_bytecode_env  # noqa: E402

from kagexp.experiment import Experiment  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent

BASE_CONFIG: dict[str, Any] = {
    "seed": 42,
    "lr": 0.1,
    "n_folds": 5,
    "model": {"name": "gbdt", "params": {"max_depth": 1, "n_estimators": 100}},
}
BOOK_RUNS = (200, 2000)
HYDRA_RUNS = {200: 200, 2000: 300}  # the 2,000 row of Hydra runs 300 jobs: 2,000 would take minutes
LIST_RUNS = (2000, 10000)
RUNS_PER_EXP = 100
LIST_REPS = 5
STARTUP_REPS = 8
SHORT_SWEEP = 3.0  # seconds; bookkeeping sweeps are repeated while they have taken less than this in all
SHORT_SWEEPS = 3  # at most this many sweeps of a tool at one N
SLOW_CALL = 2.0  # seconds; a listing call slower than this is timed 3 times, not LIST_REPS
WORKERS = max(1, min(4, os.cpu_count() or 1))  # processes that make the runs to list
MLFLOW_CREATE_BUDGET = 90.0  # seconds; past it the 10,000-run MLflow store is not built

TARGET_BOOK_MS = 2.0
TARGET_FLATNESS = 1.3
TARGET_LIST_S = 0.3
TARGET_HELP_MS = 100.0

REFERENCE = {
    "book": "Hydra ≈ 100 ms per job; MLflow file store 7 ms per run, growing to 25 ms at 2,000 runs; Sacred 6.5 ms.",
    "list": "MLflow `search_runs` over 2,000 runs 1.0–1.4 s.",
}


def progress(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- figures and tables ----------------------------------------------------------------------


@dataclass
class Row:
    """One table row: `median` and `low`/`high` in seconds (None when not measured), `per_run` = total/N."""

    tool: str
    n: str
    median: float | None = None
    low: float | None = None
    high: float | None = None
    per_run: float | None = None
    reference: bool = False
    skipped: str = ""


def p10_p90(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    deciles = statistics.quantiles(samples, n=10)
    return deciles[0], deciles[-1]


def number(value: float) -> str:
    """Three significant figures or so, never scientific notation."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:.2f}×"


def book_table(rows: list[Row]) -> str:
    header = ["tool", "N", "median ms/run", "p10–p90 ms", "total/N ms", "ratio to kagexp (total/N)"]
    refs = {row.n: row.per_run for row in rows if row.reference}
    body = []
    for row in rows:
        if row.skipped:
            body.append([row.tool, row.n, row.skipped, "—", "—", "—"])
            continue
        key = row.n if row.n in refs else row.n.split("for ")[-1].rstrip(")")
        body.append(
            [
                row.tool,
                row.n,
                number(row.median * 1000),
                f"{number(row.low * 1000)}–{number(row.high * 1000)}",
                number(row.per_run * 1000),
                "1.00× (ref)" if row.reference else ratio(row.per_run, refs.get(key)),
            ]
        )
    return table(header, body)


def spread_table(rows: list[Row], unit: str, scale: float, spread: str) -> str:
    """Rows whose ratio is to the reference row of the same N (listing) or of the same group (start-up)."""
    header = ["tool", "N" if unit == "s" else "pairs with", f"median {unit}", f"{spread} {unit}", "ratio to kagexp"]
    refs = {row.n: row.median for row in rows if row.reference}
    body = []
    for row in rows:
        if row.skipped:
            body.append([row.tool, row.n, row.skipped, "—", "—"])
            continue
        body.append(
            [
                row.tool,
                row.n,
                number(row.median * scale),
                f"{number(row.low * scale)}–{number(row.high * scale)}",
                "1.00× (ref)" if row.reference else ratio(row.median, refs.get(row.n)),
            ]
        )
    return table(header, body)


# --- a kagexp project ---------------------------------------------------------------------------


def override(i: int) -> str:
    return f"model:\n  params:\n    max_depth: {i}\n"


def trivial(cfg: Any, ctx: Any) -> None:
    ctx.log({"cv": 0.5})


def make_project(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "kagexp.yml").write_text("name: bench\n")


def add_experiment(root: Path, name: str) -> Path:
    exp_dir = root / "exp" / name
    exp_dir.mkdir(parents=True)
    (exp_dir / "config.yml").write_text(yaml.safe_dump(BASE_CONFIG, sort_keys=False))
    (exp_dir / "exp.py").write_text("RUNS = []  # bench/peers.py passes its runs to Experiment directly\n")
    return exp_dir


def run_kagexp(exp_dir: Path, n: int, reporter: Any = None) -> None:
    exp = Experiment(exp_dir, [override(i) for i in range(n)])
    if reporter is not None:
        reporter.last = time.perf_counter()
    results = exp.run(trivial, reporter=reporter)
    not_done = [r for r in results if r.status != "done"]
    if len(results) != n or not_done:
        raise RuntimeError(f"kagexp: expected {n} done runs, got {len(results)}; not done: {not_done[:3]}")


# --- 1. bookkeeping -----------------------------------------------------------------------------

Timing = tuple[list[float], float]  # per-run samples and the total, in seconds


def book_kagexp(root: Path, n: int) -> Timing:
    make_project(root)
    exp_dir = add_experiment(root, "exp001")
    watch = Stopwatch()
    start = time.perf_counter()
    run_kagexp(exp_dir, n, watch)
    return watch.samples, time.perf_counter() - start


class BareContext:
    def __init__(self, history: Any) -> None:
        self.history = history
        self.metrics: dict[str, Any] = {}

    def log(self, metrics: dict[str, Any]) -> None:
        self.metrics.update(metrics)
        self.history.write(json.dumps(metrics) + "\n")


def bare_run(run_dir: Path, i: int) -> None:
    run_dir.mkdir(parents=True)
    update = {"model": {"params": {"max_depth": i}}}
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["model"]["params"]["max_depth"] = i
    with open(run_dir / "config_update.yml", "w") as f:
        yaml.dump(update, f, Dumper=yaml.CSafeDumper, sort_keys=False)
    with open(run_dir / "config.yml", "w") as f:
        yaml.dump(cfg, f, Dumper=yaml.CSafeDumper, sort_keys=False)
    started = time.time()
    with open(run_dir / "metrics.jsonl", "w") as history:
        ctx = BareContext(history)
        trivial(cfg, ctx)
    with open(run_dir / "meta.json", "w") as f:
        json.dump({"run": run_dir.name, "status": "done", "started": started, "ended": time.time(), "seed": 42}, f)
    with open(run_dir / "metrics.json", "w") as f:
        json.dump(ctx.metrics, f)


def book_bare(root: Path, n: int) -> Timing:
    samples = []
    start = time.perf_counter()
    for i in range(n):
        begin = time.perf_counter()
        bare_run(root / f"run{i + 1:04d}", i)
        samples.append(time.perf_counter() - begin)
    return samples, time.perf_counter() - start


def flat_params(i: int) -> dict[str, Any]:
    return {
        "seed": 42,
        "lr": 0.1,
        "n_folds": 5,
        "model.name": "gbdt",
        "model.params.max_depth": i,
        "model.params.n_estimators": 100,
    }


def quiet_mlflow() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)


def book_mlflow(root: Path, n: int) -> Timing:
    import mlflow

    quiet_mlflow()
    mlflow.set_tracking_uri(f"file:{root / 'mlruns'}")
    samples = []
    start = time.perf_counter()
    mlflow.set_experiment(f"bench-{n}")
    for i in range(n):
        begin = time.perf_counter()
        mlflow.start_run()
        mlflow.log_params(flat_params(i))
        mlflow.log_metric("cv", 0.5)
        mlflow.end_run()
        samples.append(time.perf_counter() - begin)
    total = time.perf_counter() - start
    found = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    if found != n:
        raise RuntimeError(f"mlflow: expected {n} runs, found {found}")
    return samples, total


def sacred_capture_mode() -> str:
    from sacred import SETTINGS

    return str(SETTINGS.CAPTURE_MODE)


def book_sacred(root: Path, n: int) -> Timing:
    from sacred import Experiment as SacredExperiment
    from sacred.observers import FileStorageObserver

    logger = logging.getLogger("peers-sacred")
    logger.handlers[:] = [logging.NullHandler()]
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    ex = SacredExperiment(f"bench-{n}", save_git_info=False)
    ex.logger = logger
    ex.add_config(copy.deepcopy(BASE_CONFIG))
    ex.observers.append(FileStorageObserver(str(root / "sacred")))

    def main(_run: Any) -> None:
        _run.log_scalar("cv", 0.5)

    ex.main(main)
    samples = []
    start = time.perf_counter()
    for i in range(n):
        begin = time.perf_counter()
        run = ex.run(config_updates={"model": {"params": {"max_depth": i}}})
        samples.append(time.perf_counter() - begin)
        if run.status != "COMPLETED":
            raise RuntimeError(f"sacred: run {i} ended {run.status}")
    return samples, time.perf_counter() - start


HYDRA_APP = """\
import json
import os
import time

import hydra
from hydra.core.hydra_config import HydraConfig

STAMPS = os.environ.get("PEERS_STAMPS")


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    out = HydraConfig.get().runtime.output_dir
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"cv": 0.5}, f)
    if STAMPS:
        with open(STAMPS, "a") as f:
            f.write(f"{time.perf_counter()}\\n")


if __name__ == "__main__":
    main()
"""


def write_hydra_app(folder: Path) -> Path:
    (folder / "conf").mkdir(parents=True)
    (folder / "conf" / "config.yaml").write_text(yaml.safe_dump(BASE_CONFIG, sort_keys=False))
    app = folder / "app.py"
    app.write_text(HYDRA_APP)
    return app


def hydra_sweep(app: Path, n: int, sweep_dir: Path, env: dict[str, str]) -> Timing:
    stamps = sweep_dir.with_name(sweep_dir.name + ".stamps")
    log = sweep_dir.with_name(sweep_dir.name + ".log")
    command = [
        sys.executable,
        str(app),
        "-m",
        f"model.params.max_depth=range(0,{n})",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(
            command, cwd=app.parent, stdout=out, stderr=subprocess.STDOUT, env=env | {"PEERS_STAMPS": str(stamps)}
        )
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"hydra exited {done.returncode}:\n{log.read_text()[-2000:]}")
    jobs = sum(1 for job in sweep_dir.iterdir() if (job / "metrics.json").is_file())
    if jobs != n:
        raise RuntimeError(f"hydra: expected {n} jobs, found {jobs}")
    times = [float(line) for line in stamps.read_text().split()]
    return [b - a for a, b in zip(times, times[1:])], total


def tmpfs_folder() -> Path | None:
    """/dev/shm when it is a tmpfs: there the figures hold no disk cost, only the tools' own."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and filesystem(shm) == "tmpfs" else None


def bookkeeping(
    session: Path, counts: tuple[int, ...], hydra_counts: dict[int, int], env: dict[str, str]
) -> tuple[list[Row], str]:
    on_disk: list[tuple[str, Callable[[Path, int], Timing]]] = [
        ("kagexp", book_kagexp),
        ("bare loop (open/json/yaml)", book_bare),
        ("MLflow (file store)", book_mlflow),
        ("Sacred (FileStorageObserver)", book_sacred),
    ]
    on_tmpfs: list[tuple[str, Callable[[Path, int], Timing]]] = [
        ("kagexp, on tmpfs", book_kagexp),
        ("bare loop, on tmpfs", book_bare),
    ]
    hydra = "Hydra (multirun, basic launcher)"
    order = ["kagexp", "kagexp, on tmpfs", "bare loop (open/json/yaml)", "bare loop, on tmpfs"]
    order += ["MLflow (file store)", "Sacred (FileStorageObserver)", hydra]
    rows: dict[str, list[Row]] = {name: [] for name in order}
    shm = tmpfs_folder()

    def add(name: str, runs: int, timing: Timing, shown: str) -> None:
        samples, total = timing
        low, high = p10_p90(samples)
        row = Row(name, shown, statistics.median(samples), low, high, total / runs, name == "kagexp")
        rows[name].append(row)
        progress(f"bookkeeping {name} N={runs}: {total:.1f} s a sweep, median {row.median * 1000:.2f} ms/run")

    def sweeps(measure: Callable[[Path, int], Timing], folder: Callable[[int], Path], n: int) -> Timing:
        """Short sweeps are repeated (SHORT_SWEEPS): the per-run samples pooled, the median sweep's total."""
        samples: list[float] = []
        totals: list[float] = []
        while not totals or (len(totals) < SHORT_SWEEPS and sum(totals) < SHORT_SWEEP):
            os.sync()  # the previous sweep's writes are not flushed on this one's time
            more, total = measure(folder(len(totals)), n)
            samples += more
            totals.append(total)
        return samples, statistics.median(totals)

    # a few runs of each first, so that no measured sweep pays what a process pays once (imports, bytecode)
    for i, (_, measure) in enumerate(on_disk):
        measure(session / f"warm-{i}", 3)
    app = write_hydra_app(session / "hydra-app")
    hydra_sweep(app, 3, session / "hydra-warm", env)
    for n in counts:
        for i, (name, measure) in enumerate(on_disk):
            add(name, n, sweeps(measure, lambda k, i=i, n=n: session / f"book-{n}-{i}-{k}", n), f"{n:,}")
        jobs = hydra_counts[n]
        os.sync()
        timing = hydra_sweep(app, jobs, session / f"hydra-{n}", env)
        add(hydra, jobs, timing, f"{n:,}" if jobs == n else f"{jobs:,} (for {n:,})")
        for name, measure in on_tmpfs:
            if shm is None:
                rows[name].append(Row(name, f"{n:,}", skipped="no tmpfs at /dev/shm"))
                continue
            folder = Path(tempfile.mkdtemp(prefix="kagexp-peers-", dir=shm))
            try:
                add(name, n, sweeps(measure, lambda k, folder=folder: folder / f"w{k}", n), f"{n:,}")
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    ordered = [row for name in order for row in rows[name]]
    notes = [
        "Each tool first does a sweep of 3 runs, unmeasured, to pay its one-time costs (imports, bytecode). "
        f"A sweep that takes under {SHORT_SWEEP:g} s is done again, up to {SHORT_SWEEPS} times in all, and "
        "the samples pooled (one disturbed sweep then moves the figures less); total/N is the median sweep's. "
        "Median and p10–p90 are over the per-run samples; total/N is a whole sweep over N: for kagexp "
        "`plan()` and the one-time provenance (packages, code snapshot) included, for Hydra the whole process. "
        "The ratio is total/N over kagexp's total/N (on disk) at the same N.",
        f"Hydra's per-job samples (the time between the stamps its jobs write) miss its start-up and the pass in "
        f"which the basic sweeper composes every job's config up front to validate the batch; total/N holds both. "
        f"Its {counts[-1]:,} row runs {hydra_counts[counts[-1]]} jobs and stands for {counts[-1]:,}: "
        f"at a tenth of a second or more a job, {counts[-1]:,} jobs would take minutes.",
        "MLflow: the fluent API (`start_run`, `log_params` of 6 params, `log_metric`, `end_run`) on a "
        "`file:` tracking URI, one experiment per N.",
        f"Sacred: `save_git_info=False` (the temp project of kagexp is not in git either), "
        f"capture mode `{sacred_capture_mode()}` (its default), logging silenced.",
        "bare loop: the five files kagexp writes, no run folder claim, no provenance, no output capture.",
        "The tmpfs rows (/dev/shm) show the cost without the disk's: the gap to the disk rows is the filesystem's.",
        f"Earlier on this kind of machine: {REFERENCE['book']}",
    ]
    return ordered, book_table(ordered) + "\n\n" + "\n".join(f"- {note}" for note in notes)


# --- 2. listing -----------------------------------------------------------------------------------


def timed(action: Callable[[], Any], reps: int, warmed: bool = False) -> list[float]:
    """Seconds of `reps` calls after one to warm the caches (unless `warmed`); 3 calls when one takes > 2 s."""
    if not warmed:
        action()
    samples: list[float] = []
    while len(samples) < (reps if not samples or samples[0] <= SLOW_CALL else min(reps, 3)):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def kagexp_runs_count(root: Path, env: dict[str, str]) -> int:
    command = [str(BIN / "kagexp"), "runs", "--format", "json"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env, check=True)
    return len(json.loads(done.stdout))


def kagexp_runs_process(root: Path, env: dict[str, str]) -> Callable[[], None]:
    command = [str(BIN / "kagexp"), "runs", "--format", "json"]
    return lambda: subprocess.run(command, cwd=root, stdout=subprocess.DEVNULL, env=env, check=True)


def kagexp_runs_inprocess(root: Path) -> Callable[[], None]:
    from kagexp.cli import cli

    def action() -> None:
        here = Path.cwd()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                cli.main(args=["runs", "--format", "json"], standalone_mode=False)
        finally:
            os.chdir(here)

    return action


def read_json_floor(project: Path, n: int) -> Callable[[], None]:
    output_root = project / "data" / "output" / "exp"

    def action() -> None:
        count = 0
        for exp in sorted(os.scandir(output_root), key=lambda entry: entry.name):
            for run in os.scandir(exp.path):
                if not run.name.startswith("run"):
                    continue
                with open(os.path.join(run.path, "metrics.json")) as f:
                    json.load(f)
                with open(os.path.join(run.path, "meta.json")) as f:
                    json.load(f)
                count += 1
        if count != n:
            raise RuntimeError(f"json floor: expected {n} runs, read {count}")

    return action


def make_kagexp_experiment(project: Path, name: str) -> None:
    run_kagexp(add_experiment(project, name), RUNS_PER_EXP)


def make_mlflow_runs(root: Path, experiment_id: str) -> None:
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.store.tracking.file_store import FileStore

    quiet_mlflow()
    store = FileStore(str(root))
    for i in range(RUNS_PER_EXP):
        now = int(time.time() * 1000)
        run = store.create_run(experiment_id, user_id="bench", start_time=now, tags=[], run_name=f"run{i + 1:03d}")
        params = [Param(key, str(value)) for key, value in flat_params(i).items()]
        store.log_batch(run.info.run_id, metrics=[Metric("cv", 0.5, now, 0)], params=params, tags=[])
        store.update_run_info(run.info.run_id, RunStatus.FINISHED, now, None)


class Maker:
    """Adds experiments of RUNS_PER_EXP runs, WORKERS processes at a time (setup, not measured)."""

    def __init__(self, pool: concurrent.futures.Executor) -> None:
        self.pool = pool
        self.runs = 0
        self.seconds = 0.0

    def grow(self, n: int, make: Callable[[int], Callable[[], None]]) -> None:
        start = time.perf_counter()
        jobs = [self.pool.submit(make(i)) for i in range(self.runs // RUNS_PER_EXP + 1, n // RUNS_PER_EXP + 1)]
        for job in jobs:
            job.result()
        self.runs = n
        self.seconds += time.perf_counter() - start

    def rate(self) -> str:
        return f"{self.runs / self.seconds:.0f} runs/s" if self.seconds else "—"


def search_mlflow(root: Path) -> int:
    import mlflow

    mlflow.set_tracking_uri(f"file:{root}")
    return len(mlflow.search_runs(search_all_experiments=True, output_format="list"))


def listing(
    session: Path, counts: tuple[int, ...], reps: int, env: dict[str, str], mlflow_budget: float
) -> tuple[list[Row], str]:
    from mlflow.store.tracking.file_store import FileStore

    quiet_mlflow()
    rows: list[Row] = []
    project = session / "list-project"
    make_project(project)
    mlruns = session / "list-mlruns"
    mlflow_store = FileStore(str(mlruns))
    mlflow_skipped = ""
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        kagexp_maker, mlflow_maker = Maker(pool), Maker(pool)
        for n in counts:
            kagexp_maker.grow(n, lambda i: functools.partial(make_kagexp_experiment, project, f"exp{i:03d}"))
            progress(f"listing: {n} kagexp runs made ({kagexp_maker.seconds:.1f} s so far)")
            if not mlflow_skipped and mlflow_maker.runs:
                projected = mlflow_maker.seconds / mlflow_maker.runs * n
                if projected > mlflow_budget:
                    mlflow_skipped = (
                        f"not measured: making {n:,} runs would take ≈{projected:.0f} s, "
                        f"over the {mlflow_budget:g} s budget (`--mlflow-budget`)"
                    )
            if not mlflow_skipped:

                def make_mlflow(i: int) -> Callable[[], None]:
                    experiment_id = mlflow_store.create_experiment(f"exp{i:03d}")
                    return functools.partial(make_mlflow_runs, mlruns, experiment_id)

                mlflow_maker.grow(n, make_mlflow)
                progress(f"listing: {n} MLflow runs made ({mlflow_maker.seconds:.1f} s so far)")

            label = f"{n:,}"
            os.sync()
            found = kagexp_runs_count(project, env)  # also warms the caches
            if found != n:
                raise RuntimeError(f"kagexp runs: expected {n} runs, listed {found}")
            measured = [
                ("`kagexp runs --format json` (whole process)", kagexp_runs_process(project, env), True),
                ("`kagexp runs --format json` (in-process, `cli.main`)", kagexp_runs_inprocess(project), False),
                ("plain `json.load` of each run's metrics.json + meta.json", read_json_floor(project, n), False),
            ]
            for name, action, reference in measured:
                samples = timed(action, reps, warmed=reference)
                rows.append(
                    Row(name, label, statistics.median(samples), min(samples), max(samples), reference=reference)
                )
                progress(f"listing {name} N={n}: median {statistics.median(samples):.3f} s")
            mlflow_name = "`mlflow.search_runs` (in-process, file store)"
            if mlflow_skipped:
                rows.append(Row(mlflow_name, label, skipped=mlflow_skipped))
            else:
                found = search_mlflow(mlruns)  # also warms the caches
                if found != n:
                    raise RuntimeError(f"mlflow search_runs: expected {n} runs, found {found}")
                samples = timed(functools.partial(search_mlflow, mlruns), reps, warmed=True)
                rows.append(Row(mlflow_name, label, statistics.median(samples), min(samples), max(samples)))
                progress(f"listing MLflow N={n}: median {statistics.median(samples):.3f} s")
    notes = [
        f"Runs in experiments of {RUNS_PER_EXP}, made in {WORKERS} processes (setup, not timed): kagexp's with "
        f"kagexp itself (`Experiment.run`, {kagexp_maker.rate()}), MLflow's with its `FileStore` directly "
        f"(`create_run`, `log_batch` of 6 params and `cv`, `update_run_info`; {mlflow_maker.rate()}).",
        f"Each call warmed once, then the median and min–max of {reps} (of 3 when a call takes over "
        f"{SLOW_CALL:g} s). The ratio is to kagexp's whole process at the same N.",
        "`mlflow.search_runs(search_all_experiments=True, output_format='list')`: mlflow-skinny has no pandas, "
        "and a list of `Run` objects is the nearer match to a JSON listing than a DataFrame.",
        "The in-process kagexp row and the plain json row run in this process, so they pay no start-up. "
        "The plain json row is the floor of a listing that reads what a run folder must hold; kagexp can go "
        "under it when it reads smaller per-run or per-experiment summaries instead (meta.json holds the "
        "installed packages, a few kB).",
        f"Earlier on this kind of machine: {REFERENCE['list']}",
    ]
    return rows, spread_table(rows, "s", 1, "min–max") + "\n\n" + "\n".join(f"- {note}" for note in notes)


# --- 3. start-up ----------------------------------------------------------------------------------


def startup(session: Path, reps: int, env: dict[str, str]) -> tuple[list[Row], str]:
    python = sys.executable
    folder = session / "startup"
    app = write_hydra_app(folder / "app")
    commands = [
        ("`kagexp --help`", "--help", [str(BIN / "kagexp"), "--help"], True),
        ("`mlflow --help`", "--help", [str(BIN / "mlflow"), "--help"], False),
        ("`python app.py --help` (a Hydra app)", "--help", [python, str(app), "--help"], False),
        ('`python -c "import kagexp"`', "import", [python, "-c", "import kagexp"], True),
        ('`python -c "import hydra"`', "import", [python, "-c", "import hydra"], False),
        ('`python -c "import sacred"`', "import", [python, "-c", "import sacred"], False),
        ("`python -c pass`", "—", [python, "-c", "pass"], False),
    ]

    def once(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, env=env, check=True)
        return time.perf_counter() - start

    progress(f"start-up: {len(commands)} commands, {reps} rounds")
    for _, _, command, _ in commands:
        once(command)
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(reps):
        for i, (_, _, command, _) in enumerate(commands):
            samples[i].append(once(command))
    rows = [
        Row(name, group, statistics.median(s), min(s), max(s), reference=reference)
        for (name, group, _, reference), s in zip(commands, samples)
    ]
    notes = [
        f"Whole-process wall time; each command warmed once, then {reps} rounds taken in turns; median and min–max.",
        "Ratios pair like with like: `--help` rows to `kagexp --help`, import rows to `import kagexp`.",
    ]
    return rows, spread_table(rows, "ms", 1000, "min–max") + "\n\n" + "\n".join(f"- {note}" for note in notes)


# --- targets, header, main ------------------------------------------------------------------------


def targets(book: list[Row], listed: list[Row], started: list[Row]) -> str:
    """The checks on kagexp's figures."""

    def met(ok: bool) -> str:
        return "yes" if ok else "NO"

    body = []
    for tool, where in (("kagexp", "on disk"), ("kagexp, on tmpfs", "on tmpfs")):
        mine = [row for row in book if row.tool == tool]
        if any(row.skipped for row in mine):
            body.append([f"bookkeeping per run {where}", mine[0].skipped, f"≤ {TARGET_BOOK_MS:g} ms", "—"])
            continue
        worst = max(mine, key=lambda row: row.median)
        body.append(
            [
                f"bookkeeping per run {where}, kagexp median (worst, N={worst.n})",
                f"{number(worst.median * 1000)} ms (total/N {number(worst.per_run * 1000)} ms)",
                f"≤ {TARGET_BOOK_MS:g} ms",
                met(worst.median * 1000 <= TARGET_BOOK_MS),
            ]
        )
        if len(mine) > 1:
            flat = mine[-1].median / mine[0].median
            body.append(
                [
                    f"flatness {where}, median N={mine[-1].n} / N={mine[0].n}",
                    f"{flat:.2f}",
                    f"≤ {TARGET_FLATNESS:g}",
                    met(flat <= TARGET_FLATNESS),
                ]
            )
    whole = [row for row in listed if row.reference][-1]
    body.append(
        [
            f"`kagexp runs --format json`, {whole.n} runs, whole process",
            f"{number(whole.median)} s",
            f"≤ {TARGET_LIST_S:g} s",
            met(whole.median <= TARGET_LIST_S),
        ]
    )
    help_row = next(row for row in started if row.tool == "`kagexp --help`")
    body.append(
        [
            "`kagexp --help`, whole process",
            f"{number(help_row.median * 1000)} ms",
            f"≤ {TARGET_HELP_MS:g} ms",
            met(help_row.median * 1000 <= TARGET_HELP_MS),
        ]
    )
    return table(["check", "value", "target", "met"], body)


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def versions() -> str:
    names = ("kagexp", "hydra-core", "omegaconf", "mlflow-skinny", "sacred", "PyYAML")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def command_line() -> str:
    def short(path: str) -> str:
        try:
            return str(Path(path).absolute().relative_to(REPO))
        except ValueError:
            return path

    return shlex.join([short(sys.executable), short(sys.argv[0]), *sys.argv[1:]])


def pick_parent(requested: str | None) -> Path:
    """`--dir`, else the temp folder when it is on a disk, else /var/tmp (a disk on most systems)."""
    if requested:
        return Path(requested)
    candidates = [Path(tempfile.gettempdir()), Path("/var/tmp")]
    for candidate in candidates:
        if candidate.is_dir() and filesystem(candidate) not in ("tmpfs", "ramfs"):
            return candidate
    return candidates[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", help="where to make the temporary folders (default: the temp folder if on a disk)")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="the markdown file to write (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small sizes, to check the harness (under a minute)")
    p.add_argument(
        "--mlflow-budget",
        type=float,
        default=MLFLOW_CREATE_BUDGET,
        help="seconds the making of an MLflow store to list may take, projected (default: %(default)s)",
    )
    args = p.parse_args()
    if args.quick:
        book_counts, hydra_counts, list_counts, reps, startup_reps = (20, 100), {20: 20, 100: 50}, (200, 500), 2, 2
    else:
        book_counts, hydra_counts, list_counts = BOOK_RUNS, HYDRA_RUNS, LIST_RUNS
        reps, startup_reps = LIST_REPS, STARTUP_REPS
    parent = pick_parent(args.dir)
    began = time.perf_counter()
    load_before = load_average()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    progress(f"runs under {parent} ({filesystem(parent)})")
    # one folder for everything, deleted at the end: deleting on a disk mounted with `discard` between two
    # measurements would bill the second for the first one's clean-up
    session = Path(tempfile.mkdtemp(prefix="kagexp-peers-", dir=parent))
    seconds: dict[str, float] = {}
    try:
        env = cached_bytecode_env(str(session / "pycache"))
        start = time.perf_counter()
        book_rows, book = bookkeeping(session, book_counts, hydra_counts, env)
        seconds["bookkeeping"] = time.perf_counter() - start
        start = time.perf_counter()
        list_rows, listed = listing(session, list_counts, reps, env, args.mlflow_budget)
        seconds["listing"] = time.perf_counter() - start
        start = time.perf_counter()
        startup_rows, started = startup(session, startup_reps, env)
        seconds["start-up"] = time.perf_counter() - start
    finally:
        start = time.perf_counter()
        progress(f"deleting {session}")
        shutil.rmtree(session, ignore_errors=True)
        seconds["deleting the temporary folder"] = time.perf_counter() - start
    elapsed = time.perf_counter() - began
    parts = ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
    header = textwrap.dedent(
        f"""\
        # kagexp and its peers

        Made by `bench/peers.py` (run by `make bench`) on {stamp}{" — QUICK MODE, small sizes" if args.quick else ""}.

        - Command: `{command_line()}`
        - Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, \
Python {platform.python_version()}
        - Packages: {versions()}
        - Run folders under `{parent}` ({filesystem(parent)})
        - Wall time: {elapsed:.0f} s ({parts})
        - Load average (1 min): {load_before} before, {load_average()} after; other work on the machine \
moves the figures, the disk ones most
        """
    )
    sections = [
        header,
        "## Targets\n\n" + targets(book_rows, list_rows, startup_rows),
        "## Bookkeeping per run\n\n" + book,
        "## Listing runs\n\n" + listed,
        "## Start-up\n\n" + started,
    ]
    text = "\n\n".join(section.strip() for section in sections) + "\n"
    Path(args.out).write_text(text)
    print(text)
    progress(f"wrote {args.out} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
