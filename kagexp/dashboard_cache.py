"""What the dashboard reads from each run's own files beyond its listing record, and the cache
that keeps it while the run folder is unchanged.

A listing record (`kagexp.records`) has the status, config and last metrics. The dashboard also
shows the override, per-fold scores, metric histories, provenance and the file list: reading
those means every line of `metrics.jsonl` and a walk of the folder, about a millisecond a run.
So a finished run's share is cached in `OUTPUT_DIR/.dashboard-cache.json`, keyed by the run
folder and its modification time (every file kagexp writes is renamed into place, which touches
the folder), the way the listing index is. A folder changed within the last seconds is never
cached, so a write in the same clock tick cannot hide. Deleting the cache is always safe.

What many runs share (a process's environment, an installed-package list) is stored once,
under a hash of its JSON, in both the cache and the page.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kagexp import files
from kagexp.files import to_json
from kagexp.records import RunRecord
from kagexp.runfolder import RunFolder

CACHE_VERSION = 2  # bump whenever what is read from a run, or its shape, changes
SETTLE_NS = 2_000_000_000  # run folders changed more recently than this are read, not cached
HISTORY_MAX = 500  # values kept per metric of one run (the page thins further to its budget)
FILES_MAX = 50  # files listed per run
# A metrics.jsonl entry with one of these keys is a per-fold score (`ctx.log(values, fold=k)` writes
# `_fold`); so is a metric named `…fold…` logged with a step (`ctx.log({"fold_auc": a}, step=fold)`,
# as the iris example does).
FOLD_KEYS = ("fold", "_fold")
# The run's own part of meta.json; everything else but LEFT_OUT is the environment runs share.
OWN = ("started", "duration", "attempt", "error", "rerun_of")
LEFT_OUT = ("format", "exp", "run", "status", "override_hash", "ended")


@dataclass
class RunFiles:
    """One run's share of the page that its listing record lacks."""

    override: str
    folds: dict[str, list]  # metric → [values] (folds 0, 1, 2…) or [values, folds]
    history: dict[str, list]  # metric → [values] (steps 0, 1, 2…) or [values, steps]
    env: str  # key of its environment (meta.json but its own part) in the shared table
    own: dict[str, Any]  # t: start (epoch seconds), d: duration, a: attempt, error, rerun_of
    files: list  # [name, size, name, size…]

    def to_row(self) -> list:
        return [self.override, self.folds, self.history, self.env, self.own, self.files]


def read_run_files(folder: RunFolder, fallback_meta: dict, shared: dict[str, Any]) -> RunFiles:
    """Read one run's override, history, meta and file list (through `kagexp.runfolder`);
    its environment and package list go into `shared`."""
    folds, history = split_history(folder.history())
    meta = folder.meta() or fallback_meta
    env = {k: v for k, v in meta.items() if k not in OWN and k not in LEFT_OUT}
    if isinstance(env.get("packages"), dict):
        env["packages"] = share(shared, env["packages"])
    listed = [item for pair in folder.listed_files()[:FILES_MAX] for item in pair]
    return RunFiles(folder.override_text(), folds, history, share(shared, env), own_meta(meta), listed)


def share(shared: dict[str, Any], value: Any) -> str:
    """The key of `value` in the shared table (a hash of its JSON), adding it when new."""
    key = _key_of_packages(tuple(value.items())) if _is_package_list(value) else _key(value)
    shared[key] = value  # also over a damaged entry of the cache
    return key


def _key(value: Any) -> str:
    return hashlib.sha1(to_json(value).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _is_package_list(value: Any) -> bool:
    return isinstance(value, dict) and all(type(v) is str for v in value.values())


@functools.lru_cache(maxsize=64)
def _key_of_packages(items: tuple) -> str:
    """A package list's key, encoded once for the runs that share it: the list is most of a
    run's meta.json, and 10,000 runs usually have a handful of distinct ones."""
    return _key(dict(items))


def own_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The run's own provenance, short: the start as epoch seconds, the attempt when not the first."""
    own = {k: meta[k] for k in ("error", "rerun_of") if meta.get(k) is not None}
    started = _epoch(meta.get("started"))
    if started is not None:
        own["t"] = started
    if _number(meta.get("duration")):
        own["d"] = meta["duration"]
    if _number(meta.get("attempt")) and meta["attempt"] != 1:
        own["a"] = meta["attempt"]
    return own


def _epoch(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return round(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return None


def split_history(entries: list[dict]) -> tuple[dict[str, list], dict[str, list]]:
    """Per-fold scores (entries with a `fold` key) apart from histories (step by step, thinned).
    The loop is written for speed: it runs over every line of every run's metrics.jsonl."""
    folds: dict[str, tuple[list, list]] = {}
    series: dict[str, tuple[list, list]] = {}
    for position, entry in enumerate(entries):
        fold = entry.get("fold", entry.get("_fold"))
        step = entry.get("_step")
        kind = type(step)
        stepped = kind is int or (kind is float and math.isfinite(step))
        if not stepped:
            step = position
        for name, value in entry.items():
            kind = type(value)
            if not (kind is int or (kind is float and math.isfinite(value))) or name[:1] == "_" or name in FOLD_KEYS:
                continue
            if fold is not None:
                target, key = folds, fold
            elif stepped and "fold" in name:  # `fold_auc` logged with step=fold
                target, key = folds, step
            else:
                target, key = series, step
            keys, values = target.setdefault(name, ([], []))
            keys.append(key)
            values.append(value)
    history = {name: thinned(s, v, HISTORY_MAX) for name, (s, v) in series.items() if len(v) > 1}
    return {name: compact(k, v) for name, (k, v) in folds.items()}, history


def thinned(steps: list, values: list, budget: int) -> list:
    """At most `budget` points, evenly spread, the first and last kept."""
    if len(values) > budget:
        picks = _picks(len(values), budget)
        steps, values = [steps[i] for i in picks], [values[i] for i in picks]
    return compact(steps, values)


def rethinned(series: list, budget: int) -> list:
    """A cached history thinned further to the page's budget (more runs, fewer points each)."""
    values = series[0]
    length = len(values)
    if length <= budget:
        return series
    picks = _picks(length, budget)
    steps = series[1] if len(series) > 1 else range(length)
    return [[values[i] for i in picks], [steps[i] for i in picks]]


@functools.lru_cache(maxsize=1024)
def _picks(length: int, budget: int) -> list[int]:
    """`budget` evenly spread positions in `length`, first and last included (distinct: length > budget)."""
    return [round(i * (length - 1) / (budget - 1)) for i in range(budget)]


def compact(keys: list, values: list) -> list:
    """`[values]` alone when the keys are 0, 1, 2… (most histories and folds), else `[values, keys]`;
    values to 7 significant digits, which plots and fold tables never miss."""
    values = [float(f"{v:.7g}") if isinstance(v, float) and v else v for v in values]
    return [values] if keys == list(range(len(keys))) else [values, keys]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RunCache:
    """`RunFiles` of finished runs by run folder, with the folder's mtime; the shared table."""

    path: Path
    runs: dict[str, list] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    used: dict[str, list] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunCache:
        """The cache; empty when missing, unreadable or of another version or shape."""
        try:
            data = files.read_json(path)
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return cls(path)
        runs, shared = data.get("runs"), data.get("shared")
        if not isinstance(runs, dict) or not isinstance(shared, dict):
            return cls(path)
        return cls(path, runs, shared)

    def get(self, record: RunRecord, now: int) -> RunFiles:
        """The run's files from the cache when its folder is unchanged, else read (and kept)."""
        try:
            mtime = os.stat(record.folder).st_mtime_ns
        except OSError:
            mtime = None
        cached = self.runs.get(record.folder)
        if cached and cached[0] == mtime and _row_shape(cached[1]) and self._has_env(cached[1][3]):
            self.used[record.folder] = cached
            return RunFiles(*cached[1])
        found = read_run_files(record.run_folder, record.meta, self.shared)
        settled = mtime is not None and now - mtime > SETTLE_NS
        if settled and record.status not in ("running", "stale", "corrupt"):
            self.used[record.folder] = [mtime, found.to_row()]
        return found

    def _has_env(self, key: str) -> bool:
        """Whether the shared table holds the environment (and its package list) a cached run names."""
        env = self.shared.get(key)
        packages = env.get("packages") if isinstance(env, dict) else None
        return isinstance(env, dict) and (not isinstance(packages, str) or isinstance(self.shared.get(packages), dict))

    def save(self) -> None:
        """Keep what this build used (runs deleted since drop out); best effort, like the listing index."""
        if self.used == self.runs:
            return
        envs = {row[1][3] for row in self.used.values()}
        keep = envs | {self.shared[e].get("packages") for e in envs if isinstance(self.shared.get(e), dict)}
        shared = {k: v for k, v in self.shared.items() if k in keep}
        try:
            files.write_text(self.path, json.dumps({"version": CACHE_VERSION, "shared": shared, "runs": self.used}))
        except (OSError, ValueError, TypeError):
            pass


def _row_shape(row: Any) -> bool:
    types = (str, dict, dict, str, dict, list)
    return isinstance(row, list) and len(row) == len(types) and all(map(isinstance, row, types))
