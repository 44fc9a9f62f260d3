"""One experiment folder: its base config, its runs' overrides, validated together, then planned and run.

`Experiment(exp_dir, RUNS).run(fn)` is the whole of `python exp.py` in one call (plan, prepare the
output folder, execute through a launcher, report), for exp.py's front end and notebooks alike.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagexp import config, guards
from kagexp.config import override_hash
from kagexp.errors import MAX_PROBLEMS, ConfigError, InvalidNameError, NotFoundError, RunStateError, UsageError
from kagexp.fingerprints import Inputs
from kagexp.project import Project, check_name, load_project, run_name, unknown
from kagexp.provenance import Provenance
from kagexp.run import RunFunction, RunResult, RunSpec, on_interrupt
from kagexp.runfolder import (
    RunFolder,
    RunsRecord,
    check_code_dir,
    holder_of,
    read_runs_record,
    require_locks,
    run_folders,
    write_runs_record,
)

if TYPE_CHECKING:
    from kagexp.launchers import Launcher, LaunchOptions, Reporter


@dataclass
class Planned:
    """A run as it stands before executing: its spec, its status on disk, and what will happen."""

    spec: RunSpec
    status: str
    action: str
    reason: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Entry:
    """One RUNS entry: its YAML text, and its name when RUNS is a dict. A list's entries have no
    name of their own: each is the run whose override it is (`Experiment.names`)."""

    text: str
    name: str | None = None


def normalize_runs(runs: Any) -> list[Entry]:
    """`RUNS` as a list of YAML strings, or a dict of run names to YAML strings."""
    if isinstance(runs, (list, tuple)):
        pairs, problems = [(None, text) for text in runs], []
    elif isinstance(runs, dict):
        named, problems = _named_runs(runs)
        pairs = list(named.items())
    else:
        raise ConfigError(f"RUNS must be a list or a dict of YAML strings, not {type(runs).__name__}")
    entries = []
    for position, (name, text) in enumerate(pairs, start=1):
        if text is not None and not isinstance(text, str):
            which = name or f"{position} of the list"
            problems.append(f"RUNS entry {which} must be a YAML string, not {type(text).__name__}: {text!r:.60}")
        entries.append(Entry(text or "", name))
    if problems:
        raise ConfigError.of(problems)
    return entries


def _named_runs(runs: dict) -> tuple[dict[str, str], list[str]]:
    """A RUNS dict's valid names, and what is wrong with the others: a name is a folder name, so it
    must be a string (`1` and `'1'` would share one folder) and differ from the others by more than
    case (they would share one folder on macOS)."""
    named, problems, folded = {}, [], {}
    for name, text in runs.items():
        if not isinstance(name, str):
            problems.append(_not_a_string(name, runs))
            continue
        try:
            check_name(name, "run")
        except InvalidNameError as exc:
            problems.append(f"RUNS: {exc}")
            continue
        other = folded.setdefault(name.casefold(), name)
        if other != name:
            problems.append(
                f"RUNS: run names {other!r} and {name!r} differ only in case; on macOS they "
                "would share one folder: rename one"
            )
        named[name] = text
    return named, problems


def _not_a_string(name: Any, runs: dict) -> str:
    if name is None:
        return "RUNS: a run named None; a run name is a string such as 'baseline'"
    if str(name) in runs:
        return f"RUNS: run names {name!r} and {str(name)!r} would share one folder; rename one (names are strings)"
    return f"RUNS: run name {name!r} is {config.kind(name)}; write it as a string: {str(name)!r}"


@dataclass(frozen=True)
class RunStatus:
    """A run as `--list` shows it: `in_runs` is False for a run whose RUNS entry is gone."""

    name: str
    status: str
    meta: dict
    in_runs: bool = True


@dataclass(frozen=True)
class _Parsed:
    """A RUNS entry read: where it is written, and its override (None: it does not parse)."""

    entry: Entry
    yaml_text: str
    source: str
    first_line: int | None
    override: dict | None
    duplicate: bool = False


@dataclass
class Experiment:
    """An experiment folder and its runs; `script` (exp.py) is only used to point at lines in errors."""

    exp_dir: Path
    runs: Any  # RUNS as given; a list of Entry once checked
    project: Project | None = None
    script: Path | None = None

    def __post_init__(self) -> None:
        # absolute, not resolved: a linked experiment folder (exp/exp002 -> another project's
        # exp001) is exp002 of this project, and its runs are written here, not into the other one
        self.exp_dir = Path(os.path.abspath(self.exp_dir))
        self.script = Path(os.path.abspath(self.script)) if self.script else None
        if self.project is None:
            self.project = load_project(self.exp_dir)
        try:
            self.runs = normalize_runs(self.runs)
        except ConfigError as exc:
            where = f"{self._script_name}: {self.exp_dir.name}"
            raise ConfigError("\n".join(f"{where}: {line}" for line in str(exc).splitlines())) from None

    @property
    def _script_name(self) -> str:
        return self.relative(self.script) if self.script else f"exp/{self.exp_dir.name}/exp.py"

    @cached_property
    def name(self) -> str:
        return check_name(self.exp_dir.name, "experiment")

    @cached_property
    def out_dir(self) -> Path:
        return self.project.output_dir(self.name)

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.project.root).as_posix()
        except ValueError:
            return str(path)

    @cached_property
    def base(self) -> dict:
        path = self.exp_dir / "config.yml"
        if not path.is_file():
            raise NotFoundError(f"{self.relative(path)}: missing; every experiment needs a base config.yml")
        base = config.read_mapping(path, self.relative(path))
        seed = base.get("seed", self.project.settings["seed"])
        if not isinstance(seed, int) or isinstance(seed, bool):
            line = config.key_line(path.read_text(encoding="utf-8"), ("seed",))
            where = config.position(self.relative(path), line, 1)
            raise ConfigError(f"{where}: `seed` must be an int, not {seed!r}")
        return base

    def prepare_output(self, specs: list[RunSpec]) -> None:
        """Make the experiment's output folder before any run starts: a path that cannot be a
        folder, or cannot be written, is one clear error instead of a failure in every run."""
        for spec in specs:
            if os.path.lexists(spec.out_dir) and not spec.out_dir.is_dir():
                raise RunStateError(
                    f"{self.relative(spec.out_dir)}: not a folder; move it away so that {spec.name} can run"
                )
            spec.folder.check_layout()
        check_code_dir(self.out_dir, self.provenance.code_hash)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / f".write-test-{os.getpid()}"
            probe.mkdir()
            probe.rmdir()
        except OSError as exc:
            raise RunStateError(
                f"{self.relative(self.out_dir)}: cannot write run folders here ({exc.strerror or exc}); "
                "check `output_dir` in kagexp.yml and the folder's permissions"
            ) from None

    @cached_property
    def provenance(self) -> Provenance:
        exclude = self.project.settings["new"]["exclude"]
        return Provenance(self.project.root, self.exp_dir, exclude, Inputs.of(self.project))

    @cached_property
    def _script_text(self) -> str:
        try:
            return self.script.read_text(encoding="utf-8") if self.script else ""
        except OSError:
            return ""

    def _source_of(self, text: str, after: int) -> tuple[str, int | None, int]:
        """Where an override is written: exp.py, the line its string starts on (when found), and the
        offset to search from for the next one (identical overrides each point at their own line)."""
        position = self._script_text.find(text, after) if text.strip() else -1
        if position < 0:
            return self._script_name, None, after
        return self._script_name, self._script_text.count("\n", 0, position) + 1, position + 1

    @cached_property
    def keyed(self) -> bool:
        """A dict RUNS names its runs; a list's entries are named by their override."""
        return any(entry.name is not None for entry in self.runs)

    @cached_property
    def record(self) -> RunsRecord:
        """The runs' names by override; the numbers of runs moved to the trash stay taken."""
        from kagexp.trash import run_names

        record = read_runs_record(self.out_dir)
        record.reserve(run_names(self.project, self.name))
        return record

    def specs(self, force: bool = False) -> list[RunSpec]:
        """Parse, check and merge every override; all problems of all runs raise one ConfigError."""
        strict = self.project.settings["config"]
        parsed = self._parse()
        names, problems = self._names(parsed)
        specs = []
        for item, name in zip(parsed, names):
            if item.duplicate:
                continue  # reported once, as a duplicate
            label = f"{self.name}/{name}"
            if item.override is None:  # parsed again for the message, which names the run
                try:
                    config.parse_mapping(item.yaml_text, item.source, item.first_line, label)
                except ConfigError as exc:
                    problems.append(str(exc))
                continue
            hints = max(0, MAX_PROBLEMS - len(problems))
            found = config.check_override(
                self.base, item.override, strict["strict_keys"], strict["strict_types"], hints=hints
            )
            if found:
                problems.extend(config.locate(found, item.yaml_text, item.source, item.first_line, label))
                continue
            merged = config.merge(self.base, item.override)
            seed = merged.get("seed", self.project.settings["seed"])
            if not isinstance(seed, int) or isinstance(seed, bool):
                where = config.position(item.source, config.key_line(item.yaml_text, ("seed",)), item.first_line)
                problems.append(f"{where}: {label}: `seed` must be an int, not {seed!r}")
                continue
            specs.append(self._spec(name, item.entry.text, item.override, merged, seed, force))
        if problems:
            raise ConfigError.of(problems)
        return specs

    def _parse(self) -> list[_Parsed]:
        parsed, searched = [], 0
        for entry in self.runs:
            source, first_line, searched = self._source_of(entry.text, searched)
            yaml_text = config.dedent(entry.text)
            try:
                override = config.parse_mapping(yaml_text, source, first_line)
            except ConfigError:
                override = None
            parsed.append(_Parsed(entry, yaml_text, source, first_line, override))
        return parsed

    def _names(self, parsed: list[_Parsed]) -> tuple[list[str], list[str]]:
        """Each entry's run: a dict's by name; a list entry is the run recorded with its override,
        wherever it stands now, else the next number never used. The same override twice is an error."""
        if self.keyed:
            self.assigned = RunsRecord(self.record.names, [item.entry.name for item in parsed], self.record.next)
            return self.assigned.current, []
        known, number = dict(self.record.names), self.record.next
        names, problems, first = [], [], {}
        for position, item in enumerate(parsed):
            digest = override_hash(item.override) if item.override is not None else None
            if digest in first:
                where = f"{item.source}:{item.first_line}" if item.first_line else item.source
                problems.append(
                    f"{where}: {self.name}: this override is already in RUNS as {first[digest]}; "
                    "remove one (a run is its override: the same twice would be one run)"
                )
                parsed[position] = dataclasses.replace(item, duplicate=True)
            if digest in known:
                name = known[digest]
            else:
                name, number = f"run{number:03d}", number + 1
            if digest is not None:
                first.setdefault(digest, name)
                known.setdefault(digest, name)
            names.append(name)
        self.assigned = RunsRecord(known, names, number)  # what `run` records, once it runs
        return names, problems

    def _spec(self, name: str, text: str, override: dict, merged: dict, seed: int, force: bool) -> RunSpec:
        return RunSpec(
            exp=self.name,
            name=name,
            override_text=config.dedent(text).strip() + "\n" if text.strip() else "",
            override_hash=override_hash(override),
            config=merged,
            out_dir=self.out_dir / name,
            input_dir=self.project.input_dir,
            seed=seed,
            force=force,
            tracking=self._tracking(merged),
        )

    def _tracking(self, merged: dict) -> dict | None:
        """What the run tells wandb, when kagexp.yml (or the run's config) enables it."""
        wandb = self.project.settings["wandb"]
        if not wandb["enabled"] and "wandb" not in merged:
            return None
        from kagexp.integrations import wandb_settings

        name = self.project.settings["name"] or self.project.root.name
        return wandb_settings(wandb, merged, name, self._note)

    @cached_property
    def _note(self) -> str | None:
        return self.project.lineage(self.name).get("note")

    def select(self, only: list[str], names: list[str]) -> set[str]:
        """Run names from `--only` (`run002`, `2`), each checked to be one of `names`."""
        if not only:
            raise UsageError("--only names no run; give run names such as run002,run003 (or leave --only out)")
        chosen = set()
        for text in only:
            name = run_name(text) if text.strip() not in names else text.strip()
            if name not in names:
                hint = config.did_you_mean(name, names)
                raise NotFoundError(f"{self.name}: no run named {text!r} in RUNS{hint} (runs: {', '.join(names)})")
            chosen.add(name)
        return chosen

    def plan(self, only: list[str] | None = None, force: bool = False) -> list[Planned]:
        """What a call would do, validated in full before anything is written."""
        specs = self.specs(force)
        selected = self.select(only, [spec.name for spec in specs]) if only is not None else None
        plans, changed = [], []
        for spec in specs:
            if selected is not None and spec.name not in selected:
                continue
            meta = spec.folder.meta()
            status = spec.folder.status(meta)
            plans.append(self._decide(spec, status, meta, force))
            if status == "done" and not force and meta.get("override_hash") != spec.override_hash:
                changed.append(spec.name)
        if changed:
            other = "give the changed run a new name" if self.keyed else "append a new entry to RUNS"
            raise RunStateError(
                f"{self.name}: {', '.join(changed)} done, but the override changed since; re-run with "
                f"--force --only {','.join(changed)} (the old attempt is kept) or {other}"
            )
        return plans

    def _decide(self, spec: RunSpec, status: str, meta: dict | None, force: bool) -> Planned:
        if status == "done" and not force:
            note = ""
            if meta.get("code_hash") not in (None, self.provenance.code_hash):
                note = " (code changed since; --force to re-run)"
            return Planned(spec, status, "skip", "done" + note)
        if status == "running":
            return Planned(spec, status, "skip", holder_of(meta))
        return Planned(spec, status, "run")

    def statuses(self) -> list[RunStatus]:
        """Each run in RUNS with its status on disk and its meta (empty when it never ran), then the
        runs on disk that RUNS no longer holds (their entry was deleted or edited), in name order."""
        names = [spec.name for spec in self.specs()]
        gone = [e.name for e in run_folders(self.out_dir) if e.name not in names] if self.out_dir.is_dir() else []
        rows = []
        for name in [*names, *gone]:
            folder = RunFolder(self.out_dir / name)
            if name in gone and not folder.is_run():
                continue
            meta = folder.meta()
            rows.append(RunStatus(name, folder.status(meta), meta or {}, in_runs=name not in gone))
        return rows

    def _remember_runs(self) -> None:
        """Record which run each entry is, so numbers stay with overrides and listings can tell
        the runs RUNS no longer holds. Best effort when nothing runs: the runs' meta is the authority."""
        if self.out_dir.is_dir():
            try:
                write_runs_record(self.out_dir, self.assigned)
            except OSError:
                pass

    def launcher(
        self, launcher: str | LaunchOptions | Launcher | None = None, *, jobs: int | None = None, gpus=(), dry_run=False
    ) -> Launcher:
        """The launcher asked for, checked before anything runs: a launcher, its options, or its name
        (`inline`, `processes`, `slurm`) with `jobs` and `gpus`; by default inline, or processes with jobs."""
        from kagexp.launchers import LaunchOptions, make_launcher

        if hasattr(launcher, "launch"):
            return launcher
        if not isinstance(launcher, LaunchOptions):
            launcher = LaunchOptions(launcher=launcher, jobs=jobs, gpus=tuple(str(g) for g in gpus))
        return make_launcher(launcher, self.project.settings, self.out_dir, dry_run)

    def run(
        self,
        fn: RunFunction,
        *,
        only: list[str] | None = None,
        force: bool = False,
        jobs: int | None = None,
        gpus=(),
        launcher: str | LaunchOptions | Launcher | None = None,
        fail_fast: bool = False,
        reporter: Reporter | None = None,
        capture: bool = True,
    ) -> list[RunResult]:
        """Run the runs that are not done yet: plan, prepare the output folder, execute, report.

        Returns one result per planned run, in RUNS order: `done`, `failed`, `interrupted`,
        `skipped` (done already, or running elsewhere) or `not run` (stopped by `fail_fast`).
        A problem with any override raises before anything is written. SIGTERM ends the runs
        as `interrupted`, like Ctrl-C, and KeyboardInterrupt reaches the caller.
        """
        plans = self.plan(only=only, force=force)
        chosen = self.launcher(launcher, jobs=jobs, gpus=gpus)
        todo = [plan.spec for plan in plans if plan.action == "run"]
        if todo:
            require_locks()
            guards.check(self.project.root, self.exp_dir, self.project.settings["git"], [s.name for s in todo])
            self.prepare_output(todo)
        self._remember_runs()
        if reporter:
            reporter.planned(plans, parallel=chosen.parallel)
        with interruptible():
            results = chosen.launch(
                fn=fn, specs=todo, provenance=self.provenance, reporter=reporter, fail_fast=fail_fast, capture=capture
            )
        return _in_plan_order(plans, results)


def _in_plan_order(plans: list[Planned], results: list[RunResult]) -> list[RunResult]:
    by_name = {result.name: result for result in results}
    ordered = []
    for plan in plans:
        if plan.action == "skip":
            ordered.append(RunResult(plan.name, "skipped", message=plan.reason))
        else:
            ordered.append(by_name.get(plan.name) or RunResult(plan.name, "not run"))
    return ordered


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM (a scheduler's preemption, `kill`) end the runs as `interrupted`, and are
    counted (`run.on_interrupt`), so a run that catches the KeyboardInterrupt cannot hide one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, on_interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_script(exp: str, args: list[str], cwd: Path | None = None) -> int:
    """`kagexp run EXP ARGS`: run `python exp/EXP/exp.py ARGS` from the project root; its exit code."""
    import subprocess
    import sys

    project = load_project(cwd)
    name = project.find_exp(exp)
    script = project.exp_dir(name) / "exp.py"
    if not script.is_file():
        where = script.relative_to(project.root)
        raise NotFoundError(f"{where}: no such experiment script{unknown(name, project.experiments())}")
    try:
        return subprocess.call([sys.executable, str(script), *args], cwd=project.root)
    except KeyboardInterrupt:
        return 130
