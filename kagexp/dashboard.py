"""`kagexp dashboard`: the whole project as one self-contained HTML file that opens anywhere.

No server and no network: the page's script, style and data are inline, so it works from
`file://` on a laptop, a cluster's login node or a Kaggle kernel's output. The data is one JSON
document in a `<script type="application/json">` tag; every `<` in it is written `\\u003c`, so no
value (a note, an override) can close the tag, and the page's script only ever shows values as text.

The document stays small (10,000 runs in about 4 MB): what repeats is stored once and referred
to by index (config key names, metric names, file names, environments, package lists), the runs
are stored by column, a run keeps only how its merged config differs from its experiment's base
config, and metric histories share one budget of points, evenly thinned per run.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kagexp import config, files
from kagexp.dashboard_cache import FOLD_KEYS, RunCache, RunFiles, rethinned
from kagexp.errors import NotFoundError, TargetExistsError
from kagexp.files import to_json
from kagexp.project import Project
from kagexp.records import RunRecord, experiments_and_blends, scan
from kagexp.results import best_run
from kagexp.runfolder import BLENDS

TEMPLATES = Path(__file__).parent / "templates" / "dashboard"
DEFAULT_FILE = "dashboard.html"
CACHE_FILE = ".dashboard-cache.json"  # in the output folder, beside the page
BASE_CONFIG = "config.yml"  # an experiment's base config, in exp/EXP/
FORMAT = 1
HISTORY_BUDGET = 60_000  # history values in the whole page (under 1 MB), however many runs
HISTORY_MIN = 8  # values per metric of one run, at least
# The runs' columns in the page: exp index, run name, status, LB, metric values, config difference,
# keys the base has and the run lacks, override, per-fold scores, histories, environment index,
# its own provenance, files, and whether its RUNS entry is gone.
COLUMNS = ("e", "r", "s", "lb", "m", "c", "x", "o", "fo", "h", "p", "v", "f", "g")


@dataclass
class Interned:
    """A table of values stored once in the page; each use is an index into it."""

    items: list[Any] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def add(self, value: Any, key: str | None = None) -> int:
        key = key if key is not None else value if isinstance(value, str) else to_json(value)
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append(value)
        return self.index[key]


# --- the page's data -------------------------------------------------------------------------


@dataclass
class PageData:
    """Everything the page shows, gathered from the run folders through the record layer."""

    project: Project
    records: list[RunRecord]
    cache: RunCache
    keys: Interned = field(default_factory=Interned)
    metrics: Interned = field(default_factory=Interned)
    file_names: Interned = field(default_factory=Interned)
    envs: Interned = field(default_factory=Interned)
    packages: Interned = field(default_factory=Interned)
    name_lists: dict[tuple, list[int]] = field(default_factory=dict)
    # (is it the blends?, config key) → its values where runs differ from their base
    changes: dict[tuple[bool, str], set] = field(default_factory=dict)
    changed_in: dict[tuple[str, str], int] = field(default_factory=dict)  # (exp, key) → runs that change it

    @property
    def metric(self) -> str | None:
        return self.project.settings["metric"]["name"]

    @property
    def direction(self) -> str:
        return self.project.settings["metric"]["direction"]

    @cached_property
    def experiments(self) -> list[str]:
        """Every experiment, then `blend` when the project has blends: a node of its own in the tree."""
        return experiments_and_blends(self.project)

    @cached_property
    def exp_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.experiments)}

    @cached_property
    def by_exp(self) -> dict[str, list[RunRecord]]:
        grouped: dict[str, list[RunRecord]] = {name: [] for name in self.experiments}
        for record in self.records:
            grouped.setdefault(record.exp, []).append(record)
        return grouped

    @cached_property
    def bases(self) -> dict[str, dict[str, Any]]:
        """Each experiment's base config, flattened: the run keeps only what differs from it."""
        return {name: self._base(name) for name in self.experiments}

    def _base(self, name: str) -> dict[str, Any]:
        """`exp/EXP/config.yml`; for an experiment whose folder is gone, what all its runs share;
        none for the blends, whose config is each one's own recipe."""
        if name == BLENDS:
            return {}
        path = self.project.exp_root / name / BASE_CONFIG
        if path.is_file():
            try:
                return config.flatten(config.read_mapping(path))
            except config.ConfigError:
                pass
        runs = [r.config for r in self.by_exp[name]]
        if not runs:
            return {}
        return {k: v for k, v in runs[0].items() if all(k in c and not _differs(c[k], v) for c in runs)}

    def build(self) -> dict[str, Any]:
        """The page's JSON document."""
        if self.metric:
            self.metrics.add(self.metric)
        budget = max(HISTORY_MIN, HISTORY_BUDGET // max(1, len(self.records)))
        now = time.time_ns()
        rows = [self._run(record, self.cache.get(record, now), budget) for record in self.records]
        self.cache.save()
        varying = [self.keys.add(k) for k in self._varying()]
        return {
            "format": FORMAT,
            "project": self.project.settings.get("name") or self.project.root.name,
            "metric": self.metric,
            "direction": self.direction,
            "exps": self._experiments(),
            "varying": varying,
            "keys": self.keys.items,
            "metrics": self.metrics.items,
            "files": self.file_names.items,
            "envs": self.envs.items,
            "packages": self.packages.items,
            "count": len(rows),
            "runs": {column: _column([row.get(column) for row in rows]) for column in COLUMNS},
        }

    # -- experiments

    def _experiments(self) -> list[dict[str, Any]]:
        best = {name: self._best(name) for name in self.experiments}
        rows = []
        for name in self.experiments:
            lineage = self.project.lineage(name) if (self.project.exp_root / name).is_dir() else {}
            parent = _text(lineage.get("parent"))
            value, run = best[name]
            parent_value = best.get(parent, (None, None))[0] if parent else None
            delta = value - parent_value if _number(value) and _number(parent_value) else None
            rows.append(
                {
                    "name": name,
                    "parent": parent,
                    "note": _text(lineage.get("note")),
                    "runs": len(self.by_exp[name]),
                    "best": value,
                    "best_run": run,
                    "delta": delta,
                    "base": self.bases[name],
                    "blend": name == BLENDS,
                }
            )
        return rows

    def _best(self, name: str) -> tuple[Any, str | None]:
        found = best_run(self.by_exp[name], self.metric, self.direction)
        return (found.metrics[self.metric], found.run) if found else (None, None)

    # -- runs

    def _run(self, record: RunRecord, found: RunFiles, budget: int) -> dict[str, Any]:
        """One run's values by column (absent: null in the page)."""
        row: dict[str, Any] = {"e": self.exp_index[record.exp], "r": record.run, "s": record.status, "lb": record.lb}
        row["m"] = self._metric_values(record.metrics)
        row.update(self._config_difference(record))
        if found.override.strip():
            row["o"] = found.override
        if found.folds:
            row["fo"] = {str(self.metrics.add(name)): values for name, values in found.folds.items()}
        if found.history:
            row["h"] = {str(self.metrics.add(name)): rethinned(s, budget) for name, s in found.history.items()}
        row["p"] = self._env(found.env)
        row["v"] = found.own
        names = self._indexes(self.file_names, found.files[::2])
        row["f"] = [n for pair in zip(names, found.files[1::2]) for n in pair]
        if record.in_runs is False:
            row["g"] = 1
        return row

    def _env(self, key: str) -> int:
        """The index of a run's environment; the first time, its package list becomes an index too."""
        if key in self.envs.index:
            return self.envs.index[key]
        found = self.cache.shared.get(key)
        env = dict(found) if isinstance(found, dict) else {}
        packages = env.get("packages")
        if isinstance(packages, str) and isinstance(self.cache.shared.get(packages), dict):
            env["packages"] = self.packages.add(self.cache.shared[packages], packages)
        return self.envs.add(env, key)

    def _indexes(self, table: Interned, names: list[str]) -> list[int]:
        """The indexes of names in a table; most runs share their names, so each list is looked up once."""
        key = (id(table), *names)
        if key not in self.name_lists:
            self.name_lists[key] = [table.add(name) for name in names]
        return self.name_lists[key]

    def _metric_values(self, metrics: dict[str, Any]) -> list[Any]:
        """The run's last metric values, aligned with the page's metric names (the project's first)."""
        names = [name for name in metrics if name not in FOLD_KEYS]  # `fold`: the last fold's number
        indexes = self._indexes(self.metrics, names)
        values: list[Any] = [None] * (max(indexes) + 1 if indexes else 0)
        for index, name in zip(indexes, names):
            values[index] = metrics[name]
        return values

    def _note_change(self, exp: str, key: str, value: Any) -> None:
        self.changes.setdefault((exp == BLENDS, key), set()).add(_token(value))
        self.changed_in[exp, key] = self.changed_in.get((exp, key), 0) + 1

    def _varying(self) -> list[str]:
        """The config keys whose value is not the same in every run (or missing in some), in the
        order `kagexp runs` shows them; from the bases and the runs' differences, without looking
        at every key of every run. Blends are compared with blends only, as `varying_keys` does."""
        order: dict[str, None] = {}
        for record in self.records:
            order.update(dict.fromkeys(record.config))
        return [key for key in order if self._varies(key, blends=False) or self._varies(key, blends=True)]

    def _varies(self, key: str, blends: bool) -> bool:
        seen = set(self.changes.get((blends, key), ()))
        for name, records in self.by_exp.items():
            if (name == BLENDS) == blends and records and self.changed_in.get((name, key), 0) < len(records):
                seen.add(_token(self.bases[name].get(key, _MISSING)))
        return len(seen) > 1

    def _config_difference(self, record: RunRecord) -> dict[str, Any]:
        """`c`: {key index: value} where the merged config differs from the base; `x`: keys it lacks."""
        base = self.bases.get(record.exp, {})
        add = self.keys.add
        changed, shared = {}, 0
        for key, value in record.config.items():
            old = base.get(key, _MISSING)
            if type(old) is not type(value) or old != value:  # 1, 1.0 and true differ
                changed[str(add(key))] = value
                self._note_change(record.exp, key, value)
            shared += old is not _MISSING
        removed = [k for k in base if k not in record.config] if shared < len(base) else []
        for key in removed:
            self._note_change(record.exp, key, _MISSING)
        removed = [add(k) for k in removed]
        return {"c": changed, **({"x": removed} if removed else {})}


_MISSING = object()


def _token(value: Any) -> Any:
    """A config value as a set member: its type counts (1, 1.0 and true differ); lists and mappings as JSON."""
    if value is _MISSING:
        return value
    if isinstance(value, (list, dict)):
        return ("json", to_json(value))
    return (type(value).__name__, value)


def _column(values: list) -> list | dict:
    """A column of the runs: a list, or {position: value} when it is mostly empty."""
    present = {str(i): v for i, v in enumerate(values) if v is not None}
    return present if len(present) < len(values) / 4 else values


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _differs(a: Any, b: Any) -> bool:
    """`1`, `1.0` and `True` are different values of a config key."""
    return type(a) is not type(b) or a != b


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# --- the page ------------------------------------------------------------------------------


def script_json(data: Any) -> str:
    """JSON for a `<script type="application/json">` tag: `<` written `\\u003c` (still the same
    JSON), so `</script>` or `<!--` in a value cannot end the tag or change how it is read."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:  # NaN or an infinity somewhere: rare, so only then is every value looked at
        text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render(data: dict[str, Any]) -> str:
    """The page: the template with its style, script and data inline."""
    parts = {
        "title": html.escape(f"{data['project']} · kagexp dashboard"),
        "style": (TEMPLATES / "dashboard.css").read_text(encoding="utf-8"),
        "script": (TEMPLATES / "dashboard.js").read_text(encoding="utf-8"),
        "data": script_json(data),
    }
    template = (TEMPLATES / "dashboard.html").read_text(encoding="utf-8")
    return re.sub(r"@@(\w+)@@", lambda m: parts[m.group(1)], template)


def _finite(value: Any) -> Any:
    """NaN and infinities have no JSON spelling: they are shown as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def dashboard_data(project: Project) -> dict[str, Any]:
    """The page's data for every run of the project."""
    cache = RunCache.load(output_folder(project) / CACHE_FILE)
    return PageData(project, scan(project), cache).build()  # every run, blends too


def output_folder(project: Project) -> Path:
    return project.inside(project.settings["output_dir"], "output_dir")


def default_path(project: Project) -> Path:
    return output_folder(project) / DEFAULT_FILE


def write_dashboard(project: Project, out: Path | None = None) -> Path:
    """Write the page (atomically) to `out`, by default `data/output/dashboard.html`; returns its path."""
    path = out if out is not None else default_path(project)
    if path.is_dir():
        raise TargetExistsError(f"{path} is a folder; name the dashboard's file, e.g. -o {path / DEFAULT_FILE}")
    if out is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise NotFoundError(f"no folder {path.parent} to write {path.name} in; create it first")
    files.write_text(path, render(dashboard_data(project)))
    return path
