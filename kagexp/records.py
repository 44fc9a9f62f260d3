"""Run folders read back as records, fast enough to list 10,000 runs in a blink.

Three ways to read a run, cheapest first (the files are `kagexp.runfolder`'s):
1. the experiment's index, which caches each finished run's record keyed by the modification
   time of its folder (every file kagexp writes is renamed into place, which touches the
   folder); a folder changed within the last seconds is never cached, so a write in the same
   clock tick cannot hide; the index is rebuilt from the folders whenever it is missing,
   unreadable or stale, and deleting it is always safe. In a project of `CHECK_EACH_RUN_BELOW`
   runs or more, an index whose `folder_stamp` is unchanged (no run folder made, removed or
   renamed, no record written through `RunFolder`) is used without a `stat` per run: 100,000
   runs list in a fraction of a second, and a hand edit inside a finished run's folder shows
   after the next write to the experiment, or at once with `refresh`;
2. the run's summary, which a run writes when it ends;
3. the slow path: its meta, merged config and metrics (running runs, older or legacy folders).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

from kagexp import config
from kagexp.errors import NotFoundError
from kagexp.project import Project, check_name, natural, run_name, unknown
from kagexp.runfolder import (
    ABSENT,
    BLENDS,
    SUMMARY_META,
    IndexTable,
    RunFolder,
    blend_root,
    folder_stamp,
    load_index,
    run_folders,
    runs_in_record,
    save_index,
)

FIELDS = ("exp", "run", "status", "lb", "duration", "started")
SETTLE_NS = 2_000_000_000  # folders changed more recently than this are read, not cached
CHECK_EACH_RUN_BELOW = 5_000  # runs; a smaller project stats every run folder (0.03 s: hand edits show)


@dataclass
class RunRecord:
    """One run as listed: its identity, status, flattened merged config, last metrics and LB score."""

    exp: str
    run: str
    status: str
    folder: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    lb: float | None = None
    in_runs: bool | None = None  # False: its RUNS entry is gone; None: not known

    @property
    def id(self) -> str:
        return f"{self.exp}/{self.run}"

    @property
    def path(self) -> Path:
        """The run folder (kept as text: building 10,000 Path objects costs more than reading them)."""
        return Path(self.folder)

    @property
    def run_folder(self) -> RunFolder:
        return RunFolder(Path(self.folder))

    def value(self, key: str) -> Any:
        """A field, metric or config value by name; metrics win over config keys of the same name."""
        if key in ("exp", "run", "status", "lb"):
            return getattr(self, key)
        if key in FIELDS:
            return self.meta.get(key)
        if key in self.metrics:
            return self.metrics[key]
        return self.config.get(key)

    def has(self, key: str) -> bool:
        return key in FIELDS or key in self.metrics or key in self.config

    def keys(self, section: str) -> list[str]:
        """The keys of its `config` or `metrics`."""
        return list(self.config if section == "config" else self.metrics)

    def values(self, section: str, keys: list[str]) -> list[Any]:
        """The values of `keys` in its `config`, `metrics`, `meta` or `run` (status, lb), None where
        it has none: a table row, or the run's part of `columns`."""
        if section == "run":
            return [getattr(self, key) for key in keys]
        found = {"config": self.config, "metrics": self.metrics, "meta": self.meta}[section]
        return [found.get(key) for key in keys]

    def to_row(self) -> dict:
        """What the index keeps of a record."""
        meta = {k: self.meta.get(k) for k in SUMMARY_META}
        return {"status": self.status, "meta": meta, "config": self.config, "metrics": self.metrics, "lb": self.lb}


class IndexedRecord(RunRecord):
    """A record cached in the experiment's index: its fields are read from the index's columns
    when first asked for, so that sorting 100,000 runs by `cv` reads the `cv` column only.
    Plain properties (the table caches what it parsed): `cached_property` takes a lock per call."""

    def __init__(self, exp: str, run: str, folder: str, index: IndexTable, position: int) -> None:
        self.exp, self.run, self.folder = exp, run, folder
        self.in_runs = None
        self.index, self._position = index, position

    @property
    def status(self) -> str:  # type: ignore[override]
        return self.index.value("run", "status", self._position)

    @property
    def lb(self) -> float | None:  # type: ignore[override]
        return self.index.value("run", "lb", self._position)

    @property
    def config(self) -> dict[str, Any]:  # type: ignore[override]
        return self.index.section("config", self._position)

    @property
    def metrics(self) -> dict[str, Any]:  # type: ignore[override]
        return self.index.section("metrics", self._position)

    @property
    def meta(self) -> dict[str, Any]:  # type: ignore[override]
        return self.index.section("meta", self._position)

    def value(self, key: str) -> Any:
        if key in FIELDS:
            found = self.index.value("meta", key, self._position) if key in SUMMARY_META else ABSENT
            return super().value(key) if found is ABSENT else found
        for section in ("metrics", "config"):
            found = self.index.value(section, key, self._position)
            if found is not ABSENT:
                return found
        return None

    def has(self, key: str) -> bool:
        return key in FIELDS or any(
            self.index.value(s, key, self._position) is not ABSENT for s in ("metrics", "config")
        )


def columns(
    parts: list[Part], section: str, keys: list[str], encode: Callable[[list], list[str]] | None = None
) -> list[list[Any]]:
    """For each key, its value in every run of the parts (None where a run has none), in order;
    with `encode`, each value's JSON text instead. The runs read from one index are served from
    its columns, without a call per run and key, and its columns of numbers as the file spells them."""
    found: list[list[Any]] = [[] for _ in keys]
    for table, positions, group in _by_table(parts):
        if table is None:
            rows = [record.values(section, keys) for record in group]
            for out, values in zip(found, zip(*rows)):
                out.extend(encode(list(values)) if encode else values)
            continue
        for out, key in zip(found, keys):
            texts = table.texts(section, key) if encode else None
            column = texts if texts is not None else _present(table.column(section, key))
            taken = column if positions is None else [column[p] for p in positions]
            out.extend(taken if texts is not None or encode is None else encode(taken))
    return found


def _present(column: list[Any]) -> list[Any]:
    return [None if value is ABSENT else value for value in column] if ABSENT in column else column


def section_keys(parts: list[Part], section: str) -> list[str]:
    """Every key of the runs' `config` or `metrics`, in the order first seen."""
    keys: dict[str, None] = {}
    for table, positions, group in _by_table(parts):
        if table is None:
            for record in group:
                keys.update(dict.fromkeys(record.keys(section)))
            continue
        for key in table.keys(section):
            if key in keys:
                continue
            if positions is None:  # the index's header says which runs lack the key: no column parsed
                if table.present(section, key):
                    keys[key] = None
                continue
            column = table.column(section, key)
            taken = [column[p] for p in positions]
            if taken.count(ABSENT) < len(taken):  # some run has it (counted in C)
                keys[key] = None
    return list(keys)


_POSITION = attrgetter("_position")


def _by_table(parts: list[Part]) -> list[tuple[IndexTable | None, list[int] | None, list[Part]]]:
    """The parts in runs of one index each, with their positions in it (None: the whole index, in
    order), and in runs of records read from their folders (no index), in order."""
    tables = list(map(getattr, parts, repeat("index"), repeat(None)))  # in C: no Python loop per run
    groups: list[tuple[IndexTable | None, list[int] | None, list[Part]]] = []
    for table, run in groupby(range(len(parts)), key=tables.__getitem__):
        indexes = list(run)
        group = parts[indexes[0] : indexes[-1] + 1]
        positions = None if table is None or isinstance(group[0], Block) else list(map(_POSITION, group))
        whole = positions is not None and positions == list(range(len(table.names)))  # type: ignore[union-attr]
        groups.append((table, None if whole else positions, group))
    return groups


def run_ids(parts: list[Part]) -> list[str]:
    """`exp/run` of every run of the parts, in order."""
    found: list[str] = []
    for part in parts:
        if isinstance(part, Block):
            found += [f"{part.exp}/{name}" for name in part.index.names]
        else:
            found.append(f"{part.exp}/{part.run}")
    return found


def left_runs(parts: list[Part]) -> list[bool]:
    """For every run of the parts, whether its experiment's RUNS no longer holds it."""
    found: list[bool] = []
    for part in parts:
        if isinstance(part, Block):
            found += [part.in_runs is not None and name not in part.in_runs for name in part.index.names]
        else:
            found.append(part.in_runs is False)
    return found


def run_count(parts: list[Part]) -> int:
    return sum(len(part.index.names) if isinstance(part, Block) else 1 for part in parts)


# --- reading one run ---------------------------------------------------------------


def read_record(exp: str, run_dir: Path, name: str | None = None) -> RunRecord:
    """The slow path, with the full meta; legacy folders (only the override) are `unknown`."""
    folder = RunFolder(run_dir)
    meta = folder.meta()
    status = folder.status(meta)
    if meta is None and status != "running":  # a legacy folder: only its override
        status = "unknown"
    record = RunRecord(exp, name or run_dir.name, status, str(run_dir), meta=meta or {})
    record.config = config.flatten(folder.config())
    record.metrics = folder.metrics()
    record.lb = folder.latest_lb()
    return record


def listing_record(exp: str, run_dir: Path) -> RunRecord | None:
    """A record from the run's summary when it has one, else the slow path; None: not a run."""
    folder = RunFolder(run_dir)
    data = folder.summary()
    if data is not None:
        meta = {key: data[key] for key in SUMMARY_META}
        status, lb = data["status"], data.get("lb")
        return RunRecord(exp, run_dir.name, status, str(run_dir), data["config"], data["metrics"], meta, lb)
    return read_record(exp, run_dir) if folder.is_run() else None


# --- reading many runs ---------------------------------------------------------------


@dataclass
class Block:
    """The runs of one experiment served whole from its index, which nothing has changed since:
    positions in its table, without a record object each (a listing of 100,000 runs sorted by
    one column needs 20 records, not 100,000)."""

    exp: str
    folder: str
    index: IndexTable
    in_runs: set[str] | None

    def record(self, position: int) -> IndexedRecord:
        name = self.index.names[position]
        record = IndexedRecord(self.exp, name, self.folder + os.sep + name, self.index, position)
        if self.in_runs is not None:
            record.in_runs = name in self.in_runs
        return record

    def records(self) -> list[RunRecord]:
        return list(map(self.record, range(len(self.index.names))))

    def values(self, key: str) -> list[Any]:
        """`IndexedRecord.value` of every run, column by column; ABSENT where a run has no such key."""
        table = self.index
        if key in ("exp", "run"):
            return [self.exp] * len(table.names) if key == "exp" else list(table.names)
        if key in ("status", "lb"):
            return table.column("run", key)
        if key in FIELDS:
            return [None if v is ABSENT else v for v in table.column("meta", key)]
        found = table.column("metrics", key)
        if ABSENT in found:
            config = table.column("config", key)
            found = [c if v is ABSENT else v for v, c in zip(found, config)]
        return found


Part = Block | RunRecord  # what a listing holds: whole experiments from their index, and single runs


def scan_experiment(exp: str, out_dir: Path) -> list[RunRecord]:
    """Every run of one experiment, each run folder checked against its index."""
    return _scan_folders(exp, out_dir, load_index(out_dir), folder_stamp(out_dir))


def _scan_folders(exp: str, out_dir: Path, table: IndexTable | None, stamp: list | None) -> list[RunRecord]:
    """Every run folder of one experiment, in name order, through the index where a run folder has
    not changed since it was cached. The loop runs once per run: one `stat` and nothing it can avoid.
    The index is saved with `stamp` (taken before the folders were listed) when it then caches
    every folder, all settled: see `Block`."""
    cached = {name: (mtime, i) for i, (name, mtime) in enumerate(zip(table.names, table.mtimes))} if table else {}
    now = time.time_ns()
    current = runs_in_record(out_dir)
    records, keep, changed = [], {}, False
    entries = run_folders(out_dir)
    for entry in entries:
        name, mtime = entry.name, entry.stat().st_mtime_ns
        hit = cached.get(name)
        if hit is not None and hit[0] == mtime:
            record: RunRecord = IndexedRecord(exp, name, entry.path, table, hit[1])  # type: ignore[arg-type]
            keep[name] = (mtime, record)
        else:
            found = listing_record(exp, Path(entry.path))
            if found is None:
                continue
            record = found
            if record.status not in ("running", "stale", "corrupt") and now - mtime > SETTLE_NS:
                keep[name], changed = (mtime, record), True
        if current is not None:
            record.in_runs = name in current
        records.append(record)
    complete = len(keep) == len(entries)  # else some folder must be read by every listing
    vouched = stamp if complete and stamp is not None and now - stamp[0] > SETTLE_NS else None
    if changed or keep.keys() != cached.keys() or (table and table.stamp) != vouched:
        rows = {name: [mtime, record.to_row()] for name, (mtime, record) in keep.items()}
        save_index(out_dir, rows, vouched)
    return records


def read_experiment(exp: str, out_dir: Path, table: IndexTable | None, check_each_run: bool) -> Block | list[RunRecord]:
    """One experiment's runs: whole from its index when its stamp still holds (unless told to
    check each run), else run folder by run folder."""
    stamp = folder_stamp(out_dir)
    if table is not None and not check_each_run and stamp is not None and table.stamp == stamp:
        return Block(exp, str(out_dir), table, runs_in_record(out_dir))
    return _scan_folders(exp, out_dir, table, stamp)


def scan_parts(project: Project, exps: list[str] | None = None, refresh: bool = False) -> list[Part]:
    """`scan`, with the experiments that nothing changed since they were indexed kept as `Block`s.
    `refresh`: read every run folder again, the indexes unused (and rewritten)."""
    folders = output_folders(project, exps)
    tables = [None if refresh else load_index(out) for _, out in folders]
    check_each_run = refresh or sum(len(t.names) for t in tables if t) < CHECK_EACH_RUN_BELOW
    parts: list[Part] = []
    for (name, out), table in zip(folders, tables):
        found = read_experiment(name, out, table, check_each_run)
        if isinstance(found, Block):
            parts.append(found)
        else:
            parts.extend(found)
    return parts


def records_of(parts: list[Part]) -> list[RunRecord]:
    """The records of `scan_parts`' parts, in order."""
    found: list[RunRecord] = []
    for part in parts:
        if isinstance(part, Block):
            found.extend(part.records())
        else:
            found.append(part)
    return found


def scan(project: Project, exps: list[str] | None = None, refresh: bool = False) -> list[RunRecord]:
    """Every run of the given experiments (default: all with outputs, then the blends), in name order;
    `blend` names the blends (`data/output/blend/<name>/`, each a run folder)."""
    return records_of(scan_parts(project, exps, refresh))


def output_folders(project: Project, exps: list[str] | None) -> list[tuple[str, Path]]:
    """The experiments asked for (default: all with outputs, then the blends) with their output
    folders, those without outputs left out; an unknown experiment is an error."""
    root = project.output_root  # once: each call resolves the project's settings again
    names = [_find(project, e) for e in exps] if exps else experiments_with_outputs(project)
    if not exps and blend_root(root).is_dir():
        names.append(BLENDS)
    folders = []
    for name in names:
        out = blend_root(root) if name == BLENDS else root / check_name(name, "experiment")
        if not os.path.isdir(out):
            if name != BLENDS and not project.exp_dir(name).is_dir():
                raise NotFoundError(f"no experiment {name}{unknown(name, project.experiments())}")
            continue
        folders.append((name, out))
    return folders


def _find(project: Project, text: str) -> str:
    return BLENDS if text.strip().rstrip("/") == BLENDS else project.find_exp(text)


def output_dir(project: Project, exp: str) -> Path:
    """Where an experiment's run folders are; the blends' folder for `blend`."""
    return blend_root(project.output_root) if exp == BLENDS else project.output_dir(exp)


def experiments_with_outputs(project: Project) -> list[str]:
    try:
        with os.scandir(project.output_root) as entries:
            names = {e.name for e in entries if not e.name.startswith(".") and e.is_dir()}
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names, key=natural)


def all_experiments(project: Project) -> list[str]:
    """Experiment folders and experiments that only have outputs left, in number order."""
    return sorted(set(project.experiments()) | set(experiments_with_outputs(project)), key=natural)


def experiments_and_blends(project: Project) -> list[str]:
    """`all_experiments`, then `blend` when the project has blends: what `ls` and `report --all` cover."""
    names = all_experiments(project)
    return [*names, BLENDS] if blend_root(project.output_root).is_dir() else names


def find_run(project: Project, text: str) -> RunRecord:
    """`exp003/run002`, `3/2` or `exp003/run002/` as a record (full meta); `exp003/run002@1` is its
    first attempt, kept in the run folder since; a clear error when absent."""
    run_text, at, number = text.strip().rstrip("/").partition("@")
    record = _find_run(project, run_text if at else text)
    return _find_attempt(record, number) if at else record


def _find_attempt(record: RunRecord, number: str) -> RunRecord:
    """An earlier attempt of a run, read like a run: `run002@1` is `run002/attempts/1/`."""
    kept = sorted(record.run_folder.attempt_numbers(), key=int)
    if not number.isdigit() or number not in kept:
        if not kept:
            raise NotFoundError(f"no attempt {number!r} of {record.id}: it has no earlier attempt")
        raise NotFoundError(
            f"no attempt {number!r} of {record.id} (its earlier attempts: {', '.join(kept)}); "
            f"write e.g. {record.id}@{kept[0]}"
        )
    return read_record(record.exp, record.run_folder.attempt(int(number)).path, f"{record.run}@{number}")


def _find_run(project: Project, text: str) -> RunRecord:
    parts = [p for p in text.strip().rstrip("/").split("/")]
    if len(parts) != 2 or not all(parts):
        blend = blend_root(project.output_root) / parts[0]
        example = f"{BLENDS}/{parts[0]}" if len(parts) == 1 and RunFolder(blend).is_run() else "exp003/run002"
        raise NotFoundError(f"{text!r} is not a run; name one as EXP/RUN, e.g. {example}")
    exp = _find(project, parts[0])
    out = output_dir(project, exp)
    if exp != BLENDS and not project.exp_dir(exp).is_dir() and not out.is_dir():
        raise NotFoundError(f"no experiment {exp}{unknown(exp, project.experiments())}")
    canonical = run_name(parts[1])  # also refuses a name no run can have, before it becomes a path
    literal = out / parts[1]  # a run named `1` in a RUNS dict is `1`, not run001
    run = parts[1] if RunFolder(literal).is_run() else canonical
    run_dir = out / run
    if not RunFolder(run_dir).is_run():
        existing = sorted(p.name for p in out.glob("*") if RunFolder(p).is_run())
        hint = config.did_you_mean(run, existing) if existing else ""
        where = f"runs of {exp}: {', '.join(existing)}" if existing else f"{exp} has no runs yet"
        raise NotFoundError(f"no run {exp}/{run}{hint} ({where})")
    return read_record(exp, run_dir)
