"""Run folders read back as records, fast enough to list 10,000 runs in a blink.

Three ways to read a run, cheapest first:
1. the experiment's index `.index.json`, which caches each finished run's record keyed by the
   modification time of its folder (every file kagexp writes is renamed into place, which
   touches the folder); a folder changed within the last seconds is never cached, so a write in
   the same clock tick cannot hide; the index is rebuilt from the folders whenever it is missing,
   unreadable or stale, and deleting it is always safe;
2. `summary.json`, which a run writes last when it ends;
3. the slow path: `meta.json`, `config.yml`, `metrics.json` (running runs, older or legacy folders).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp import config, files
from kagexp.errors import ConfigError, NotFoundError
from kagexp.project import Project, run_name, unknown
from kagexp.run import HISTORY, META, METRICS, SUMMARY, SUMMARY_META, read_meta, status_of

FIELDS = ("exp", "run", "status", "lb", "duration", "started")
INDEX = ".index.json"
INDEX_VERSION = 1
SETTLE_NS = 2_000_000_000  # folders changed more recently than this are read, not cached
LB_FILE = "lb.jsonl"


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

    @property
    def id(self) -> str:
        return f"{self.exp}/{self.run}"

    @property
    def path(self) -> Path:
        """The run folder (kept as text: building 10,000 Path objects costs more than reading them)."""
        return Path(self.folder)

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

    def to_row(self) -> dict:
        """What the index keeps of a record."""
        meta = {k: self.meta.get(k) for k in SUMMARY_META}
        return {"status": self.status, "meta": meta, "config": self.config, "metrics": self.metrics, "lb": self.lb}


def from_row(exp: str, run: str, folder: str, row: dict) -> RunRecord:
    return RunRecord(exp, run, row["status"], folder, row["config"], row["metrics"], row["meta"], row["lb"])


# --- reading one run ---------------------------------------------------------------


def read_record(exp: str, run_dir: Path) -> RunRecord:
    """The slow path, with the full `meta.json`; legacy folders (only config_update.yml) are `unknown`."""
    meta = read_meta(run_dir)
    status = status_of(run_dir, meta) if meta is not None else "unknown"
    record = RunRecord(exp, run_dir.name, status, str(run_dir), meta=meta or {})
    record.config = config.flatten(_read_config(run_dir))
    record.metrics = _read_json_dict(run_dir / METRICS) or _last_logged(run_dir)
    record.lb = latest_lb(run_dir)
    return record


def _last_logged(run_dir: Path) -> dict:
    """The last value of each metric in `metrics.jsonl`: what a running or dead run has logged so far."""
    last: dict[str, Any] = {}
    for entry in read_history(run_dir):
        last.update((k, v) for k, v in entry.items() if not k.startswith("_"))
    return last


def read_history(run_dir: Path) -> list[dict]:
    """Every `ctx.log` call of a run, from `metrics.jsonl`."""
    return read_jsonl(run_dir / HISTORY)


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file; a line cut short by a crash is skipped."""
    import json

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def listing_record(exp: str, run_dir: Path) -> RunRecord | None:
    """A record from `summary.json` when the run wrote one, else the slow path; None: not a run."""
    try:
        data = files.read_json(run_dir / SUMMARY)
        meta = {key: data[key] for key in SUMMARY_META}
        return RunRecord(
            exp, run_dir.name, data["status"], run_dir, data["config"], data["metrics"], meta, data.get("lb")
        )
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        pass  # an unreadable summary: the slow path says what is there
    return read_record(exp, run_dir) if is_run_dir(run_dir) else None


def _read_config(run_dir: Path) -> dict:
    for name in ("config.yml", "config_update.yml"):
        path = run_dir / name
        if path.is_file():
            try:
                return config.read_mapping(path)
            except ConfigError:
                return {}
    return {}


def _read_json_dict(path: Path) -> dict:
    try:
        data = files.read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def latest_lb(run_dir: Path) -> float | None:
    history = lb_history(run_dir)
    return history[-1]["score"] if history else None


def lb_history(run_dir: Path) -> list[dict]:
    """Every leaderboard score recorded for the run, oldest first."""
    return [e for e in read_jsonl(run_dir / LB_FILE) if isinstance(e.get("score"), (int, float))]


def is_run_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and not path.name.startswith(".")
        and ((path / META).exists() or (path / "config_update.yml").exists())
    )


# --- reading many runs ---------------------------------------------------------------


def scan_experiment(exp: str, out_dir: Path) -> list[RunRecord]:
    """Every run folder of one experiment, in name order, through the index when it is fresh."""
    index = _load_index(out_dir)
    now = time.time_ns()
    records, fresh = [], {}
    with os.scandir(out_dir) as entries:
        folders = sorted((e for e in entries if not e.name.startswith(".") and e.is_dir()), key=lambda e: e.name)
    for entry in folders:
        mtime = entry.stat().st_mtime_ns
        cached = index.get(entry.name)
        if cached and cached[0] == mtime:
            records.append(from_row(exp, entry.name, entry.path, cached[1]))
            fresh[entry.name] = cached
            continue
        record = listing_record(exp, Path(entry.path))
        if record is None:
            continue
        records.append(record)
        if record.status not in ("running", "stale", "corrupt") and now - mtime > SETTLE_NS:
            fresh[entry.name] = [mtime, record.to_row()]
    if fresh != index:
        _save_index(out_dir, fresh)
    return records


def _load_index(out_dir: Path) -> dict:
    try:
        data = files.read_json(out_dir / INDEX)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION or not isinstance(data.get("runs"), dict):
        return {}
    return data["runs"]


def _save_index(out_dir: Path, runs: dict) -> None:
    """Best effort: a read-only output folder still lists, only slower."""
    try:
        files.write_json(out_dir / INDEX, {"version": INDEX_VERSION, "runs": runs})
    except OSError:
        pass


def scan(project: Project, exps: list[str] | None = None) -> list[RunRecord]:
    """Every run of the given experiments (default: all with outputs), in name order."""
    names = [project.find_exp(e) for e in exps] if exps else experiments_with_outputs(project)
    records = []
    for name in names:
        out = project.output_dir(name)
        if not out.is_dir():
            if not project.exp_dir(name).is_dir():
                raise NotFoundError(f"no experiment {name}{unknown(name, project.experiments())}")
            continue
        records.extend(scan_experiment(name, out))
    return records


def experiments_with_outputs(project: Project) -> list[str]:
    if not project.output_root.is_dir():
        return []
    names = {p.name for p in project.output_root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return sorted(names, key=natural)


def all_experiments(project: Project) -> list[str]:
    """Experiment folders and experiments that only have outputs left, in number order."""
    return sorted(set(project.experiments()) | set(experiments_with_outputs(project)), key=natural)


def natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def find_run(project: Project, text: str) -> RunRecord:
    """`exp003/run002`, `3/2` or `exp003/run002/` as a record (full meta); a clear error when absent."""
    parts = [p for p in text.strip().rstrip("/").split("/")]
    if len(parts) != 2 or not all(parts):
        raise NotFoundError(f"{text!r} is not a run; name one as EXP/RUN, e.g. exp003/run002")
    exp = project.find_exp(parts[0])
    if not project.exp_dir(exp).is_dir() and not project.output_dir(exp).is_dir():
        raise NotFoundError(f"no experiment {exp}{unknown(exp, project.experiments())}")
    literal = project.output_dir(exp) / parts[1]  # a run named `1` in a RUNS dict is `1`, not run001
    run = parts[1] if is_run_dir(literal) else run_name(parts[1])
    run_dir = project.output_dir(exp) / run
    if not is_run_dir(run_dir):
        existing = sorted(p.name for p in project.output_dir(exp).glob("*") if is_run_dir(p))
        hint = config.did_you_mean(run, existing) if existing else ""
        where = f"runs of {exp}: {', '.join(existing)}" if existing else f"{exp} has no runs yet"
        raise NotFoundError(f"no run {exp}/{run}{hint} ({where})")
    return read_record(exp, run_dir)
