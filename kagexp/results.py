"""Filtering and sorting run records, the rows of `kagexp runs`, and the per-experiment summary of `kagexp ls`.

`--where` is a small comparison language over dotted config keys, metrics and run fields
(`model.params.max_depth>=2 and cv>0.9`); it is parsed here, never evaluated as Python.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kagexp import config
from kagexp.errors import ConfigError
from kagexp.project import Project
from kagexp.records import FIELDS, RunRecord, all_experiments, scan
from kagexp.tables import cell

# --- --where -------------------------------------------------------------------------

_OPS = {"==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_CONDITION = re.compile(r"""^\s*([A-Za-z_][\w.\-]*)\s*(==|!=|<=|>=|<|>)\s*('[^']*'|"[^"]*"|[^\s'"<>=!]\S*)\s*$""")


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: Any

    def matches(self, record: RunRecord) -> bool:
        if not record.has(self.key):
            return False
        left, right = _aligned(record.value(self.key), self.value)
        if self.op in ("==", "!=") or _comparable(left, right):
            try:
                return bool(_OPS[self.op](left, right))
            except TypeError:
                return False
        return False

    def why_nothing(self, records: list[RunRecord]) -> str | None:
        """Why an ordering matches no run although runs have the key: no value of theirs can be
        ordered against this one (`cv>abc`, `started>2020`); None when some can."""
        if self.op in ("==", "!="):
            return None
        values = [r.value(self.key) for r in records if r.has(self.key) and r.value(self.key) is not None]
        if not values or any(_comparable(*_aligned(value, self.value)) for value in values):
            return None
        example = values[0]
        hint = f"; compare times with a date or a time, such as {self.key}>2026-12-01" if _as_time(example) else ""
        return (
            f"--where: `{self.key}` is {config.kind(example)} in the runs ({cell(example)}), and `{self.op}` "
            f"cannot compare it with {config.kind(self.value)} ({config.yaml_text(self.value)}){hint}"
        )


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return type(a) is type(b) and isinstance(a, (str, date))


def _aligned(left: Any, right: Any) -> tuple[Any, Any]:
    """A date or time in `--where` against a recorded time (ISO text, as `started` is): a date
    compares with the day the time falls on (`started>=2026-12-01`: from that day on), a time
    to the second, read in the recorded time's zone when it names none."""
    when = _as_time(left) if isinstance(right, date) else None
    if when is None:
        return left, right
    if not isinstance(right, datetime):
        return when.date(), right
    if right.tzinfo is None:
        right = right.replace(tzinfo=when.tzinfo)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=right.tzinfo)
    return when, right


def _as_time(value: Any) -> datetime | None:
    """`value` as a datetime: a datetime, a date (at midnight) or ISO text; else None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str) and value[:1].isdigit():
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_where(text: str) -> list[Condition]:
    """`key op value [and key op value …]`; values are YAML scalars (`3`, `1e-3`, `true`, `'adam'`)."""
    conditions = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _CONDITION.match(part)
        if not match:
            raise ConfigError(
                f"--where: cannot parse {part.strip()!r}; write KEY OP VALUE with OP one of "
                "== != < <= > >=, joined by `and` (e.g. 'model.params.max_depth>=2 and cv>0.9')"
            )
        key, op, raw = match.groups()
        try:
            value = config.parse_yaml(raw, "--where")
        except ConfigError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw
        conditions.append(Condition(key, op, value))
    return conditions


def where(records: list[RunRecord], text: str | None) -> list[RunRecord]:
    """The records matching every condition; a key no record has is an error with a suggestion."""
    if not text:
        return records
    conditions = parse_where(text)
    known = sorted({k for r in records for k in (*r.config, *r.metrics)} | set(FIELDS))
    for condition in conditions:
        if records and not any(r.has(condition.key) for r in records):
            raise ConfigError(f"--where: no run has a key `{condition.key}`{config.did_you_mean(condition.key, known)}")
        reason = condition.why_nothing(records)
        if reason:
            raise ConfigError(reason)
    return [r for r in records if all(c.matches(r) for c in conditions)]


def sort(records: list[RunRecord], key: str | None) -> list[RunRecord]:
    """Sort by a key (`-cv` for descending): numbers, then text; runs without a value come last."""
    if not key:
        return records
    descending = key.startswith("-")
    name = key.lstrip("-+")
    if records and not any(r.has(name) for r in records):
        known = sorted({k for r in records for k in (*r.config, *r.metrics)} | set(FIELDS))
        raise ConfigError(f"--sort: no run has a key `{name}`{config.did_you_mean(name, known)}")
    numbers = [r for r in records if _is_number(r.value(name))]
    texts = [r for r in records if isinstance(r.value(name), str)]
    rest = [r for r in records if not _is_number(r.value(name)) and not isinstance(r.value(name), str)]
    numbers.sort(key=lambda r: r.value(name), reverse=descending)
    texts.sort(key=lambda r: r.value(name), reverse=descending)
    return numbers + texts + rest


def _is_number(value: Any) -> bool:
    """A real, finite number (not a bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- experiments ---------------------------------------------------------------------


@dataclass
class ExpSummary:
    """One row of `kagexp ls`."""

    name: str
    parent: str | None
    note: str | None
    counts: dict[str, int]
    best: Any
    best_run: str | None
    last_run: str | None
    code_changed: bool | None


def summarize(project: Project) -> list[ExpSummary]:
    """Every experiment folder with its runs' counts, best metric and whether its code moved on."""
    metric = project.settings["metric"]
    by_exp: dict[str, list[RunRecord]] = {}
    for record in scan(project, all_experiments(project)):
        by_exp.setdefault(record.exp, []).append(record)
    return [_summary(project, name, by_exp.get(name, []), metric) for name in all_experiments(project)]


def _summary(project: Project, name: str, records: list[RunRecord], metric: dict) -> ExpSummary:
    from kagexp.provenance import code_files, code_hash

    lineage = project.lineage(name)
    counts = Counter(record.status for record in records)
    counts["not in RUNS"] = sum(record.in_runs is False for record in records)
    best = best_run(records, metric["name"], metric["direction"])
    timed = [r for r in records if isinstance(r.meta.get("started"), str)]
    started = [r.meta["started"] for r in timed]
    latest = max(timed, key=lambda r: r.meta["started"], default=None)
    changed = None
    exp_dir = project.exp_root / name
    if latest and latest.meta.get("code_hash") and exp_dir.is_dir():
        current = code_hash(exp_dir, code_files(exp_dir, project.settings["new"]["exclude"]))
        changed = current != latest.meta["code_hash"]
    value, run = (best.metrics[metric["name"]], best.run) if best else (None, None)
    return ExpSummary(
        name, lineage.get("parent"), lineage.get("note"), counts, value, run, max(started, default=None), changed
    )


def best_run(records: list[RunRecord], metric: str | None, direction: str) -> RunRecord | None:
    """The run with the best value of the metric (first of equals), or None when none has it."""
    best = best_runs(records, metric, direction, 1)
    return best[0] if best else None


def best_runs(records: list[RunRecord], metric: str | None, direction: str, count: int) -> list[RunRecord]:
    """The `count` runs with the best values of the metric, best first (equals in listing order)."""
    scored = [r for r in records if metric and _is_number(r.metrics.get(metric))]
    return sorted(scored, key=lambda r: r.metrics[metric], reverse=direction == "max")[:count]


# --- tables --------------------------------------------------------------------------


def varying_keys(records: list[RunRecord]) -> list[str]:
    """Config keys whose value differs between the records (or is missing in some)."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record.config))
    varying = []
    for key in keys:
        first = records[0].config.get(key, _MISSING)
        if any(_differs(r.config.get(key, _MISSING), first) for r in records):
            varying.append(key)
    return varying


_MISSING = object()


def _differs(a: Any, b: Any) -> bool:
    """`1`, `1.0` and `True` are different values of a config key."""
    return a is not b and (type(a) is not type(b) or a != b)


def metric_keys(records: list[RunRecord]) -> list[str]:
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record.metrics))
    return list(keys)


def table(records: list[RunRecord], all_keys: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows for `kagexp runs`: run, status, the varying config keys, metrics, duration."""
    config_keys = list(dict.fromkeys(k for r in records for k in r.config)) if all_keys else varying_keys(records)
    metrics = metric_keys(records)
    lb = ["lb"] if any(r.lb is not None for r in records) else []
    gone = ["in RUNS"] if any(r.in_runs is False for r in records) else []
    columns = ["run", "status", *gone, *config_keys, *metrics, *lb, "duration"]
    rows = [
        [
            r.id,
            r.status,
            *(["no" if r.in_runs is False else ""] if gone else []),
            *(r.config.get(k) for k in config_keys),
            *(r.metrics.get(k) for k in metrics),
            *([r.lb] if lb else []),
            r.meta.get("duration"),
        ]
        for r in records
    ]
    return columns, rows


def summary_rows(summaries: list[ExpSummary], metric: str | None) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of `kagexp ls`; `partial` (runs with folds still missing) when there are any."""
    partial = any(s.counts.get("partial") for s in summaries)
    columns = [
        "exp",
        "parent",
        "done",
        *(["partial"] if partial else []),
        "failed",
        "running",
        "stale",
        "not in RUNS",
        f"best {metric or 'metric'}",
        "last run",
        "code",
        "note",
    ]
    rows = []
    for s in summaries:
        code = {True: "changed", False: "same", None: ""}[s.code_changed]
        best = f"{cell(s.best)} ({s.best_run})" if s.best_run else ""
        rows.append(
            [
                s.name,
                s.parent or "",
                s.counts.get("done", 0),
                *([s.counts.get("partial", 0)] if partial else []),
                s.counts.get("failed", 0),
                s.counts.get("running", 0),
                s.counts.get("stale", 0),
                s.counts.get("not in RUNS", 0),
                best,
                (s.last_run or "")[:19].replace("T", " "),
                code,
                s.note or "",
            ]
        )
    return columns, rows
