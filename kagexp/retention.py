"""Retention (`kagexp gc`): move the heavy files of the runs worth little to the trash.

A run kept by `--keep` keeps everything; so does a run that something uses (`RunFolder.refs`:
blends and packs write that mark) and a run that is running. Every other run loses its artifacts
(models, predictions, its submission: everything but its own small records, `RunFolder.artifacts`),
or with `--larger-than` only those above the size, and keeps what says what it was: its meta,
config, metrics and logs, so it is still listed, compared and re-run. The plan is computed once;
`--dry-run` prints it, and a real call moves exactly it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kagexp.diskuse import human
from kagexp.errors import ConfigError, UsageError
from kagexp.project import Project
from kagexp.records import RunRecord, scan
from kagexp.results import best_runs
from kagexp.runfolder import RunFolder
from kagexp.trash import Entry, Item, move_in, output_base, relative

DEFAULT_KEEP = "best:3,submitted,lb"


@dataclass(frozen=True)
class Keep:
    """What `--keep` keeps: the `best` runs of each experiment by the project's metric, runs that
    were `submitted` (sent to Kaggle, or scored), runs with a leaderboard score (`lb`)."""

    best: int = 0
    submitted: bool = False
    lb: bool = False

    @classmethod
    def parse(cls, text: str) -> Keep:
        """`best:3,submitted,lb` (`best` alone is `best:1`)."""
        best, flags = 0, set()
        for term in (t.strip() for t in text.split(",") if t.strip()):
            name, _, count = term.partition(":")
            if name == "best" and (not count or count.isdigit()):
                best = int(count or 1)
            elif term in ("submitted", "lb"):
                flags.add(term)
            else:
                raise UsageError(f"--keep: cannot read {term!r}; use best:N, submitted and lb, e.g. {DEFAULT_KEEP}")
        return cls(best, "submitted" in flags, "lb" in flags)

    def __str__(self) -> str:
        terms = [f"best:{self.best}"] if self.best else []
        return ",".join(terms + [name for name in ("submitted", "lb") if getattr(self, name)])


@dataclass
class Plan:
    """What gc moves (`files`, in run order) and which runs it leaves whole, and why."""

    keep: Keep
    larger_than: int
    files: list[Item] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)  # run → reasons
    runs: dict[str, str] = field(default_factory=dict)  # a run folder's path in `files` → the run (exp001/run002)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.files)

    def rows(self) -> tuple[list[str], list[list]]:
        """Columns and rows of the file list: the run, the file in its folder, its size."""
        rows = [[self.runs[item.run], item.path[len(item.run) + 1 :], item.size] for item in self.files if item.run]
        return ["run", "file", "size"], rows

    def command(self) -> str:
        larger = f" --larger-than {human(self.larger_than).replace(' ', '')}" if self.larger_than else ""
        return f"gc --keep {self.keep}{larger}"


def plan(project: Project, keep: Keep, exps: list[str] | None = None, larger_than: int = 0) -> Plan:
    """The files gc would move, and the runs it keeps whole."""
    records = scan(project, exps)
    result = Plan(keep, larger_than, kept=_kept(project, records, keep))
    for record in records:
        if record.id in result.kept:
            continue
        run = relative(project, record.path)
        result.runs[run] = record.id
        for name, size in record.run_folder.artifacts():
            if size > larger_than:
                result.files.append(Item(f"{run}/{name}", "file", size, run))
    return result


def _kept(project: Project, records: list[RunRecord], keep: Keep) -> dict[str, list[str]]:
    """Each run kept whole, with why: running, partial (its finished folds are what it resumes
    from), used by a blend or a pack, best, submitted, lb."""
    kept: dict[str, list[str]] = {}
    for record in _best(project, records, keep.best):
        kept.setdefault(record.id, []).append(f"best {project.settings['metric']['name']}")
    for record in records:
        folder = record.run_folder
        reasons = [record.status] if record.status in ("running", "partial") else []
        reasons += [f"used by {ref['by']}" for ref in folder.refs()]
        reasons += ["submitted"] if keep.submitted and folder.was_submitted() else []
        reasons += ["lb"] if keep.lb and folder.lb_history() else []
        if reasons:
            kept.setdefault(record.id, []).extend(reasons)
    return kept


def _best(project: Project, records: list[RunRecord], count: int) -> list[RunRecord]:
    """The `count` best runs of each experiment by the project's metric."""
    if not count:
        return []
    metric = project.settings["metric"]
    if not metric["name"]:
        raise ConfigError(
            "--keep best:N needs the project's metric: set `metric: {name: cv, direction: max}` in kagexp.yml"
        )
    by_exp: dict[str, list[RunRecord]] = {}
    for record in records:
        by_exp.setdefault(record.exp, []).append(record)
    return [r for group in by_exp.values() for r in best_runs(group, metric["name"], metric["direction"], count)]


def collect(project: Project, planned: Plan) -> Entry | None:
    """Move the planned files into one trash entry (None when there is nothing to move); their
    runs are claimed meanwhile, so one that started since the plan stops it, with nothing moved."""
    if not planned.files:
        return None
    runs = {item.run: RunFolder(output_base(project) / item.run) for item in planned.files if item.run}
    return move_in(project, planned.files, planned.command(), list(runs.values()))
