"""pandas DataFrames of runs and metric histories, for notebooks (pandas is an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagexp.errors import KagexpError
from kagexp.project import load_project
from kagexp.records import find_run, scan
from kagexp.results import where as filter_where

if TYPE_CHECKING:
    import pandas


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise KagexpError("this needs pandas: pip install 'kagexp[pandas]'") from None
    return pandas


def load_runs(
    exps: str | list[str] | None = None, root: str | Path | None = None, where: str | None = None
) -> pandas.DataFrame:
    """One row per run: exp, run, status, config keys (dotted), metrics, lb, duration, started.

    The selection is the one of `kagexp runs EXP… --where …`. A metric named like a config key
    becomes `metrics.<name>`.
    """
    pd = _pandas()
    project = load_project(Path(root) if root else None)
    selected = [exps] if isinstance(exps, str) else exps
    records = filter_where(scan(project, selected), where)
    config_keys = list(dict.fromkeys(k for r in records for k in r.config))
    metric_keys = list(dict.fromkeys(k for r in records for k in r.metrics))
    fixed = {"exp", "run", "status", "lb", "duration", "started"}
    clash = set(config_keys) | fixed
    metric_columns = {m: f"metrics.{m}" if m in clash else m for m in metric_keys}
    rows = []
    for r in records:
        row = {"exp": r.exp, "run": r.run, "status": r.status, **r.config}
        row.update({metric_columns[m]: v for m, v in r.metrics.items()})
        row.update(lb=r.lb, duration=r.meta.get("duration"), started=r.meta.get("started"))
        rows.append(row)
    columns = ["exp", "run", "status", *config_keys, *metric_columns.values(), "lb", "duration", "started"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["lb"] = pd.to_numeric(frame["lb"], errors="coerce").astype("float64")
    frame["duration"] = pd.to_numeric(frame["duration"], errors="coerce").astype("float64")
    frame["started"] = pd.to_datetime(frame["started"], utc=True, errors="coerce", format="ISO8601")
    return frame


def load_history(run: str, root: str | Path | None = None) -> pandas.DataFrame:
    """Every `ctx.log` call of a run: columns step (integers; <NA> for a call without one), time
    (UTC, to the millisecond it was recorded at), then the metrics."""
    pd = _pandas()
    record = find_run(load_project(Path(root) if root else None), run)
    rows = [
        {"step": entry.pop("_step", None), "time": entry.pop("_time", None), **entry}
        for entry in record.run_folder.history()
    ]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(k for r in [{"step": 0, "time": 0}, *rows] for k in r)))
    frame["step"] = pd.array([_step(s) for s in frame["step"]], dtype="Int64")
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True).dt.round("ms")
    return frame


def _step(value: Any) -> int | None:
    """A logged step as an integer (a float one such as 3.0 too); anything else is missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return int(value) if float(value).is_integer() else None
