"""`kagexp dashboard`: the whole project as one self-contained HTML file that opens anywhere.

No server and no network: the page's script, style and data are inline, so it works from
`file://` on a laptop, a cluster's login node or a Kaggle kernel's output. The data is one JSON
document in a `<script type="application/json">` tag; every `<` in it is written `\\u003c`, so no
value (a note, an override) can close the tag, and the page's script only ever shows values as text.

The document is compact enough for 10,000 runs in a few MB: what repeats is stored once and
referred to by index (config key names, metric names, file names, the environment of a run and
its package list), a run keeps only how its merged config differs from its experiment's base
config, and metric histories share one budget of points, evenly thinned per run.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kagexp import config, files
from kagexp.errors import NotFoundError, TargetExistsError
from kagexp.files import to_json
from kagexp.project import Project
from kagexp.records import RunRecord, all_experiments, scan
from kagexp.results import best_run, varying_keys

TEMPLATES = Path(__file__).parent / "templates" / "dashboard"
DEFAULT_FILE = "dashboard.html"
BASE_CONFIG = "config.yml"  # an experiment's base config, in exp/EXP/
FORMAT = 1
HISTORY_BUDGET = 150_000  # history values in the whole page: about 1 MB, whatever the number of runs
HISTORY_MIN, HISTORY_MAX = 8, 500  # values kept per metric of one run
FILES_MAX = 50  # files listed per run
FOLD_KEYS = ("fold", "_fold")  # a metrics.jsonl entry with one of these is a per-fold score
# Parts of meta.json that differ from run to run; the rest (host, python, git, packages…) is shared.
PER_RUN = ("started", "ended", "duration", "attempt", "seed", "pid", "command", "error", "rerun_of")
LEFT_OUT = ("format", "exp", "run", "status", "override_hash")


@dataclass
class Interned:
    """A table of values stored once in the page; each use is an index into it."""

    items: list[Any] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def add(self, value: Any) -> int:
        key = value if isinstance(value, str) else to_json(value)
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append(value)
        return self.index[key]


@dataclass
class PageData:
    """Everything the page shows, gathered from the run folders through the record layer."""

    project: Project
    records: list[RunRecord]
    keys: Interned = field(default_factory=Interned)
    metrics: Interned = field(default_factory=Interned)
    file_names: Interned = field(default_factory=Interned)
    envs: Interned = field(default_factory=Interned)
    packages: Interned = field(default_factory=Interned)

    @property
    def metric(self) -> str | None:
        return self.project.settings["metric"]["name"]

    @property
    def direction(self) -> str:
        return self.project.settings["metric"]["direction"]

    @cached_property
    def experiments(self) -> list[str]:
        return all_experiments(self.project)

    @cached_property
    def exp_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.experiments)}

    @cached_property
    def bases(self) -> dict[str, dict[str, Any]]:
        """Each experiment's base config, flattened: the run keeps only what differs from it."""
        return {name: self._base(name) for name in self.experiments}

    def _base(self, name: str) -> dict[str, Any]:
        """`exp/EXP/config.yml`; for an experiment whose folder is gone, what all its runs share."""
        path = self.project.exp_root / name / BASE_CONFIG
        if path.is_file():
            try:
                return config.flatten(config.read_mapping(path))
            except config.ConfigError:
                pass
        runs = [r.config for r in self.records if r.exp == name]
        if not runs:
            return {}
        return {k: v for k, v in runs[0].items() if all(k in c and not _differs(c[k], v) for c in runs)}

    def build(self) -> dict[str, Any]:
        """The page's JSON document."""
        if self.metric:
            self.metrics.add(self.metric)
        varying = [self.keys.add(k) for k in varying_keys(self.records)] if len(self.records) > 1 else []
        budget = max(HISTORY_MIN, min(HISTORY_MAX, HISTORY_BUDGET // max(1, len(self.records))))
        runs = [self._run(record, budget) for record in self.records]
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
            "runs": runs,
        }

    # -- experiments

    def _experiments(self) -> list[dict[str, Any]]:
        best = {name: self._best(name) for name in self.experiments}
        rows = []
        for name in self.experiments:
            lineage = self.project.lineage(name) if (self.project.exp_root / name).is_dir() else {}
            parent = lineage.get("parent")
            parent = str(parent) if parent is not None else None
            value, run = best[name]
            parent_value = best.get(parent, (None, None))[0] if parent else None
            delta = value - parent_value if _number(value) and _number(parent_value) else None
            rows.append(
                {
                    "name": name,
                    "parent": parent,
                    "note": _text(lineage.get("note")),
                    "runs": sum(r.exp == name for r in self.records),
                    "best": value,
                    "best_run": run,
                    "delta": delta,
                    "base": self.bases[name],
                }
            )
        return rows

    def _best(self, name: str) -> tuple[Any, str | None]:
        found = best_run([r for r in self.records if r.exp == name], self.metric, self.direction)
        return (found.metrics[self.metric], found.run) if found else (None, None)

    # -- runs

    def _run(self, record: RunRecord, budget: int) -> dict[str, Any]:
        folder = record.run_folder
        row: dict[str, Any] = {"e": self.exp_index[record.exp], "r": record.run, "s": record.status, "lb": record.lb}
        row["m"] = self._metric_values(record.metrics)
        row.update(self._config_difference(record))
        override = folder.override_text()
        if override.strip():
            row["o"] = override
        folds, history = self._history(folder.history(), budget)
        if folds:
            row["fo"] = folds
        if history:
            row["h"] = history
        row.update(self._provenance(folder.meta() or record.meta))
        row["f"] = [n for name, size in folder.listed_files()[:FILES_MAX] for n in (self.file_names.add(name), size)]
        if record.in_runs is False:
            row["g"] = 1  # its RUNS entry is gone
        return row

    def _metric_values(self, metrics: dict[str, Any]) -> list[Any]:
        """The run's last metric values, aligned with the page's metric names (the project's first)."""
        values: list[Any] = []
        for name, value in metrics.items():
            if name in FOLD_KEYS:  # the fold number of the last per-fold call, not a score
                continue
            index = self.metrics.add(name)
            values.extend([None] * (index + 1 - len(values)))
            values[index] = value
        return values

    def _config_difference(self, record: RunRecord) -> dict[str, Any]:
        """`c`: {key index: value} where the merged config differs from the base; `x`: keys it lacks."""
        base = self.bases.get(record.exp, {})
        changed = {str(self.keys.add(k)): v for k, v in record.config.items() if k not in base or _differs(base[k], v)}
        removed = [self.keys.add(k) for k in base if k not in record.config]
        return {"c": changed, **({"x": removed} if removed else {})}

    def _history(self, entries: list[dict], budget: int) -> tuple[dict, dict]:
        """Per-fold scores ({metric: [[fold, value]…]}) and thinned histories ({metric: [steps, values]})."""
        folds: dict[str, list] = {}
        series: dict[str, tuple[list, list]] = {}
        for position, entry in enumerate(entries):
            fold = next((entry[k] for k in FOLD_KEYS if k in entry), None)
            step = entry.get("_step")
            step = step if _number(step) else position
            for name, value in entry.items():
                if name.startswith("_") or name in FOLD_KEYS or not _number(value):
                    continue
                key = str(self.metrics.add(name))
                if fold is not None:
                    folds.setdefault(key, []).append([fold, value])
                else:
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(step)
                    values.append(value)
        history = {key: _thinned(steps, values, budget) for key, (steps, values) in series.items() if len(values) > 1}
        return folds, history

    def _provenance(self, meta: dict[str, Any]) -> dict[str, Any]:
        """`p`: the index of the run's shared environment; `v`: its own part of meta.json."""
        shared = {k: v for k, v in meta.items() if k not in PER_RUN and k not in LEFT_OUT}
        if isinstance(shared.get("packages"), dict):
            shared["packages"] = self.packages.add(shared["packages"])
        own = {k: meta[k] for k in PER_RUN if meta.get(k) is not None}
        return {"p": self.envs.add(shared), "v": own}


def _thinned(steps: list, values: list, budget: int) -> list:
    """At most `budget` points, evenly spread, the first and last kept; `[values]` alone when
    the steps are 0, 1, 2… (most histories), else `[values, steps]`."""
    if len(values) > budget:
        picks = sorted({round(i * (len(values) - 1) / (budget - 1)) for i in range(budget)})
        steps, values = [steps[i] for i in picks], [values[i] for i in picks]
    values = [_rounded(v) for v in values]
    if steps == list(range(len(steps))):
        return [values]
    return [values, steps]


def _rounded(value: Any) -> Any:
    """Plotted values need no more than 7 significant digits (the tables keep full precision)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.7g}")
    return value


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
    return PageData(project, scan(project, all_experiments(project))).build()


def default_path(project: Project) -> Path:
    return project.inside(project.settings["output_dir"], "output_dir") / DEFAULT_FILE


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
