"""`kagexp rerun`: run a finished run again from what it recorded, and say what changed.

A rerun takes the run's code snapshot (`.code/<hash>/`), its recorded merged config and its seed,
never the experiment folder as it is today: it works after exp.py was edited, after git HEAD moved
on, and after the experiment folder was deleted. It is a new attempt in the run's folder, executed
by `kagexp.run.execute` like any run (the claim, the earlier attempt moved to `attempts/N/`, the
captured output, the record); its `meta.json` adds `rerun_of`: the attempt it ran again and what
changed in the environment since (python, platform, host, GPUs, kagexp and package versions,
input files). Its metrics are then compared with the original attempt's, exactly or within a
relative tolerance.

The run function is found in the snapshot's exp.py by the name the run recorded (`function` in
`meta.json`), else by the name `run` (runs recorded before kagexp kept the name). exp.py is
imported by its path under another name than `__main__`, so that its `kagexp.main(...)` line does
not run, with the snapshot folder first on `sys.path` so that its own modules (`from train import
fit`) come from the snapshot; they are forgotten afterwards, so the next rerun, of an experiment
with a `train.py` of its own, imports its own. The rerun runs in the project's root folder, as
`kagexp run` does, and is not sent to W&B.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp import config
from kagexp.diff import compare_environment
from kagexp.errors import NotFoundError, RunStateError, UsageError
from kagexp.experiment import interruptible
from kagexp.fingerprints import Inputs
from kagexp.launchers import with_environment
from kagexp.project import Project, load_project, unknown
from kagexp.provenance import Provenance
from kagexp.records import RunRecord, find_run, scan_experiment
from kagexp.run import RunFunction, RunResult, RunSpec, execute
from kagexp.runfolder import RunFolder, code_dir, code_root, run_function
from kagexp.scripts import import_script, snapshot_imports

RERUNNABLE = ("done", "failed", "interrupted", "stale")
# What a rerun does not report as changed: its code is the snapshot's, whatever git says now.
NOT_ENVIRONMENT = ("git", "code_hash")
ABSENT = object()  # a metric one of the two attempts did not log


@dataclass(frozen=True)
class Target:
    """One run to run again, read whole from its folder before anything is written."""

    exp: str
    run: str
    folder: RunFolder
    meta: dict  # the original attempt's meta.json
    metrics: dict  # the original attempt's metrics
    config: dict  # the merged config it saw
    seed: int
    provenance: Provenance  # of its code snapshot; its code hash was checked against the recorded one

    @property
    def label(self) -> str:
        return f"{self.exp}/{self.run}"

    @property
    def attempt(self) -> int:
        """The original attempt's number: the folder `attempts/N/` it moves to."""
        number = self.meta.get("attempt")
        return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else 1

    @property
    def snapshot(self) -> Path:
        return self.provenance.exp_dir


@dataclass(frozen=True)
class MetricCheck:
    """One metric of the original attempt against the rerun's; `ABSENT` where one did not log it."""

    key: str
    original: Any
    rerun: Any
    difference: float | None  # relative, when both are numbers
    ok: bool


@dataclass
class Outcome:
    """How one rerun went: its result, what changed in the environment, and its metrics checked."""

    target: Target
    result: RunResult
    changed: dict[str, list] = field(default_factory=dict)
    checks: list[MetricCheck] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def original(self) -> RunFolder:
        """Where the original attempt is kept now."""
        return self.target.folder.attempt(self.target.attempt)

    @property
    def mismatches(self) -> list[MetricCheck]:
        return [check for check in self.checks if not check.ok]


# --- which runs ---------------------------------------------------------------------------


def plan(project: Project, names: list[str]) -> list[Target]:
    """The runs named (`exp003/run002`, or `exp003` for every done run of it), each checked before
    any runs: a problem with any of them is an error, and nothing is written."""
    if not names:
        raise UsageError("name the runs to run again, such as exp003/run002, or an experiment (exp003)")
    records: dict[str, RunRecord] = {}
    for text in names:
        for record in _records(project, text):
            records.setdefault(record.id, record)
    provenances: dict[Path, Provenance] = {}
    return [_target(project, record, provenances) for record in records.values()]


def _records(project: Project, text: str) -> list[RunRecord]:
    """`exp003/run002` as its record; `exp003` as the records of its done runs."""
    if "/" in text.strip().rstrip("/"):
        return [find_run(project, text)]
    exp = project.find_exp(text)
    out = project.output_dir(exp)
    if not out.is_dir():
        raise NotFoundError(f"{exp} has no runs to run again{unknown(exp, project.experiments())}")
    done = [record.run for record in scan_experiment(exp, out) if record.status == "done"]
    if not done:
        raise NotFoundError(f"{exp} has no done runs to run again; name a run, such as {exp}/run001")
    return [find_run(project, f"{exp}/{run}") for run in done]


def _target(project: Project, record: RunRecord, provenances: dict[Path, Provenance]) -> Target:
    """What a rerun of `record` needs, checked: finished, its snapshot there and intact, its config."""
    if record.status not in RERUNNABLE:
        raise RunStateError(f"{record.id} is {record.status}; only a finished run can run again")
    snapshot = _snapshot(project, record)
    if snapshot not in provenances:
        provenances[snapshot] = Provenance(project.root, snapshot, inputs=Inputs.of(project))
    provenance = provenances[snapshot]
    if provenance.code_hash != record.meta["code_hash"]:
        raise RunStateError(
            f"{record.id}: its code snapshot {_shown(project, snapshot)} was changed after it was taken "
            f"(its files hash to {provenance.code_hash}); it no longer holds the code the run ran"
        )
    folder = record.run_folder
    seed = record.meta.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RunStateError(f"{record.id}: its meta.json records no seed (it has {seed!r}); it cannot run the same")
    merged = folder.merged_config()
    return Target(record.exp, record.run, folder, record.meta, folder.metrics(), merged, seed, provenance)


def _snapshot(project: Project, record: RunRecord) -> Path:
    """The run's code snapshot; a clear error when it has none or it is gone."""
    exp_out = project.output_dir(record.exp)
    code_hash = record.meta.get("code_hash")
    snapshot = code_dir(exp_out, code_hash)
    if snapshot is None or not (snapshot / "exp.py").is_file():
        where = _shown(project, code_root(exp_out) / str(code_hash)) if code_hash else "no code snapshot recorded"
        raise NotFoundError(
            f"{record.id}: its code snapshot is missing ({where}), so it cannot run again as it ran; "
            f"`kagexp run {record.exp} --force --only {record.run}` runs today's code instead"
        )
    return snapshot


def _shown(project: Project, path: Path) -> str:
    try:
        return path.relative_to(project.root).as_posix()
    except ValueError:
        return str(path)


# --- running them again -------------------------------------------------------------------


def rerun_each(
    project: Project,
    targets: list[Target],
    tol: float | None = None,
    capture: bool = True,
    on_start: Callable[[RunSpec], None] | None = None,
) -> Iterator[Outcome]:
    """Run each target again, one after another; an interrupted rerun stops the rest (after its
    outcome is given) with KeyboardInterrupt, as Ctrl-C does in `python exp.py`."""
    for target in targets:
        outcome = rerun_one(project, target, tol, capture, on_start)
        yield outcome
        if outcome.status == "interrupted":
            raise KeyboardInterrupt


def rerun_one(
    project: Project,
    target: Target,
    tol: float | None = None,
    capture: bool = True,
    on_start: Callable[[RunSpec], None] | None = None,
) -> Outcome:
    """One rerun: a new attempt in the run's folder, from the snapshot, the recorded config and seed."""
    with _working_in(project.root), snapshot_imports(target.snapshot):
        changed = environment_changes(target.meta, target.provenance.environment)
        provenance = with_environment(target.provenance, rerun_of={"attempt": target.attempt, "changed": changed})
        fn = _function(target)
        with interruptible():
            result = execute(fn, _spec(project, target), provenance, capture, on_start)
    checks = check_metrics(target.metrics, target.folder.metrics(), tol) if result.status != "busy" else []
    return Outcome(target, result, changed, checks)


def _spec(project: Project, target: Target) -> RunSpec:
    return RunSpec(
        exp=target.exp,
        name=target.run,
        override_text=target.folder.override_text(),
        override_hash=str(target.meta.get("override_hash") or ""),
        config=target.config,
        out_dir=target.folder.path,
        input_dir=project.input_dir,
        seed=target.seed,
        force=True,
    )


def _function(target: Target) -> RunFunction:
    """The run function from the snapshot's exp.py. When exp.py does not import here (a package
    missing now), the rerun runs and fails with that traceback in its error.txt, like any run."""
    try:
        module = import_script(target.snapshot / "exp.py")
    except Exception as exc:
        return _failing(exc)
    name = run_function(target.meta) or "run"
    fn = getattr(module, name, None)
    if not callable(fn):
        raise RunStateError(
            f"{target.label}: the snapshot's exp.py has no function `{name}` to run "
            "(a run function without a name in exp.py, such as a lambda, cannot run again)"
        )
    return fn


def _failing(exc: Exception) -> RunFunction:
    def import_failed(cfg, ctx):
        raise exc  # with the traceback of the import, down to the line of exp.py

    return import_failed


@contextmanager
def _working_in(folder: Path) -> Iterator[None]:
    """Run where `kagexp run` runs exp.py: in the project's root folder."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _top(name: str) -> str:
    return name.partition(".")[0]


# --- what changed --------------------------------------------------------------------------


def environment_changes(original: dict, now: dict) -> dict[str, list]:
    """What differs from the original attempt's environment, key → [then, now]: python, platform,
    host, GPUs, kagexp and package versions, input files (`kagexp.diff.compare_environment`)."""
    rows = compare_environment(original, now)
    return {key: [a, b] for key, a, b in rows if _top(key) not in NOT_ENVIRONMENT}


def check_metrics(original: dict, rerun: dict, tol: float | None = None) -> list[MetricCheck]:
    """Every metric of either attempt (nested ones by dotted key): equal, or with `tol` numbers
    within that relative difference; a metric only one of them logged never matches."""
    a, b = config.flatten(original), config.flatten(rerun)
    checks = []
    for key in dict.fromkeys([*a, *b]):
        left, right = a.get(key, ABSENT), b.get(key, ABSENT)
        difference = relative_difference(left, right)
        if left is ABSENT or right is ABSENT:
            ok = False
        elif tol is not None and difference is not None:
            ok = difference <= tol
        else:
            ok = left == right
        checks.append(MetricCheck(key, left, right, difference, ok))
    return checks


def relative_difference(a: Any, b: Any) -> float | None:
    """|a − b| / max(|a|, |b|) for two finite numbers (0 when both are 0), else None."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (a, b)):
        return None
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def rerun(names: list[str] | str, root: Path | str | None = None, tol: float | None = None) -> list[Outcome]:
    """From a notebook: `rerun("exp003/run002", root="my-comp")`, the outcomes of `kagexp rerun`."""
    project = load_project(Path(root) if root is not None else None)
    targets = plan(project, [names] if isinstance(names, str) else list(names))
    return list(rerun_each(project, targets, tol))
