"""Filtering and sorting run records, the rows of `kagexp runs`, and the per-experiment summary of `kagexp ls`.

`--where` is a small comparison language over dotted config keys, metrics and run fields
(`model.params.max_depth>=2 and cv>0.9`); it is parsed here, never evaluated as Python.
"""

from __future__ import annotations

import heapq
import math
import operator
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain, groupby, repeat
from operator import itemgetter
from typing import Any

from kagexp import config
from kagexp.errors import ConfigError
from kagexp.project import Project
from kagexp.records import (
    FIELDS,
    Block,
    Part,
    RunRecord,
    columns,
    experiments_and_blends,
    left_runs,
    records_of,
    run_ids,
    scan_parts,
    section_keys,
)
from kagexp.runfolder import ABSENT, BLENDS
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


_TOKEN = re.compile(
    r"""\s*(?:(?P<paren>[()])|(?P<word>(?:and|or)(?=[\s()]|$))"""
    r"""|(?P<condition>[A-Za-z_][\w.\-]*\s*(?:==|!=|<=|>=|<|>)\s*(?:'[^']*'|"[^"]*"|[^\s'"<>=!()][^\s()]*)))"""
)
_WHERE_HELP = (
    "write KEY OP VALUE with OP one of == != < <= > >=, joined by `and`, `or` and parentheses "
    "(e.g. 'model.params.max_depth>=2 and (cv>0.9 or lb>0.9)')"
)


@dataclass(frozen=True)
class Joined:
    """Conditions joined by `or` (`any`) or by `and` (`all`)."""

    join: str
    parts: tuple

    def matches(self, record: RunRecord) -> bool:
        test = any if self.join == "or" else all
        return test(part.matches(record) for part in self.parts)


def conditions(expr: Condition | Joined) -> list[Condition]:
    """Every comparison in an expression, for the checks made before filtering."""
    if isinstance(expr, Condition):
        return [expr]
    return [c for part in expr.parts for c in conditions(part)]


def parse_where(text: str) -> Condition | Joined:
    """`KEY OP VALUE` joined by `and`, `or` (which binds looser) and parentheses; values are YAML
    scalars (`3`, `1e-3`, `true`, `'adam'`). A small recursive-descent parser: nothing is evaluated."""
    tokens = _tokens(text)
    if _depth(tokens) > MAX_NESTING:
        raise ConfigError(f"--where: parentheses nested more than {MAX_NESTING} deep; {_WHERE_HELP}")
    expr, rest = _parse_or(tokens, text)
    if rest:
        raise ConfigError(f"--where: unexpected {rest[0][1]!r} in {text.strip()!r}; {_WHERE_HELP}")
    return expr


MAX_NESTING = 32  # the parser recurses once per level: a hostile `((((…` must be an error, not a crash


def _depth(tokens: list[tuple[str, str]]) -> int:
    depth = deepest = 0
    for token in tokens:
        depth += {("paren", "("): 1, ("paren", ")"): -1}.get(token, 0)
        deepest = max(deepest, depth)
    return deepest


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position, stripped = [], 0, text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if not match:
            rest = stripped[position:].strip()
            raise ConfigError(f"--where: cannot parse {rest!r}; {_WHERE_HELP}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _parse_or(tokens: list, text: str) -> tuple[Condition | Joined, list]:
    part, rest = _parse_and(tokens, text)
    parts = [part]
    while rest and rest[0] == ("word", "or"):
        part, rest = _parse_and(rest[1:], text)
        parts.append(part)
    return _joined("or", parts), rest


def _parse_and(tokens: list, text: str) -> tuple[Condition | Joined, list]:
    part, rest = _parse_atom(tokens, text)
    parts = [part]
    while rest and rest[0] == ("word", "and"):
        part, rest = _parse_atom(rest[1:], text)
        parts.append(part)
    return _joined("and", parts), rest


def _joined(join: str, parts: list) -> Condition | Joined:
    return parts[0] if len(parts) == 1 else Joined(join, tuple(parts))


def _parse_atom(tokens: list, text: str) -> tuple[Condition | Joined, list]:
    if not tokens:
        raise ConfigError(f"--where: {text.strip()!r} ends too early; {_WHERE_HELP}")
    kind, value = tokens[0]
    if kind == "paren" and value == "(":
        expr, rest = _parse_or(tokens[1:], text)
        if not rest or rest[0] != ("paren", ")"):
            raise ConfigError(f"--where: a `(` is not closed in {text.strip()!r}; {_WHERE_HELP}")
        return expr, rest[1:]
    if kind != "condition":
        raise ConfigError(f"--where: cannot parse {text.strip()!r} at {value!r}; {_WHERE_HELP}")
    return _condition(value), tokens[1:]


def _condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    assert match  # the token pattern only lets conditions through
    key, op, raw = match.groups()
    try:
        value = config.parse_yaml(raw, "--where")
    except ConfigError:
        value = raw
    if isinstance(value, (dict, list)):
        value = raw
    return Condition(key, op, value)


@dataclass(frozen=True)
class Filtered:
    """The runs a `--where` kept, and the warnings to print (a key no run has)."""

    records: list[RunRecord]
    warnings: list[str]


def where(records: list[RunRecord], text: str | None) -> list[RunRecord]:
    """The records matching the expression (see `filtered` for its warnings)."""
    return filtered(records, text).records


def filtered(records: list[RunRecord], text: str | None) -> Filtered:
    """The records matching the expression. A key no run has matches nothing and is a warning with
    a suggestion (under `or` another branch may still match); an ordering no value can take is an error."""
    if not text:
        return Filtered(records, [])
    expr = parse_where(text)
    known = sorted({k for r in records for k in (*r.config, *r.metrics)} | set(FIELDS))
    warnings = []
    for condition in conditions(expr):
        if records and not any(r.has(condition.key) for r in records):
            hint = config.did_you_mean(condition.key, known)
            warnings.append(f"warning: --where: no run has a key `{condition.key}`{hint}")
        reason = condition.why_nothing(records)
        if reason:
            raise ConfigError(reason)
    return Filtered([r for r in records if expr.matches(r)], list(dict.fromkeys(warnings)))


def sort(records: list[RunRecord], key: str | None) -> list[RunRecord]:
    """Sort by a key (`-cv` for descending): numbers, then text; runs without a value come last."""
    if not key:
        return records
    descending = key.startswith("-")
    name = key.lstrip("-+")
    if records and not any(r.has(name) for r in records):
        known = sorted({k for r in records for k in (*r.config, *r.metrics)} | set(FIELDS))
        raise ConfigError(f"--sort: no run has a key `{name}`{config.did_you_mean(name, known)}")
    numbers, texts, rest = [], [], []
    for record in records:  # each value read once: 100,000 runs sort in a blink
        value = record.value(name)
        if isinstance(value, str):
            texts.append((value, record))
        elif _is_number(value):
            numbers.append((value, record))
        else:
            rest.append(record)
    numbers.sort(key=itemgetter(0), reverse=descending)
    texts.sort(key=itemgetter(0), reverse=descending)
    return [r for _, r in numbers] + [r for _, r in texts] + rest


def top(parts: list[Block | RunRecord], key: str, limit: int, statuses: set[str]) -> list[RunRecord] | None:
    """`sort(records, key)[:limit]` of the runs with one of `statuses` (all when empty), read from
    the columns of `Block`s and with records made for the chosen runs only; None when no run has
    the key (`sort` says so)."""
    descending, name = key.startswith("-"), key.lstrip("-+")
    sign = -1 if descending else 1  # in (value, sign × listing position): ties keep the listing order
    select, extreme = (heapq.nlargest, max) if descending else (heapq.nsmallest, min)
    numbers: list[tuple] = []  # the `limit` best numbers of the plain columns so far, best first
    others: list[tuple] = []
    base = 0
    for index, part in enumerate(parts):
        values, positions = _values(part, name, statuses)
        if isinstance(positions, range) and _plain_numbers(values):  # the usual column: no loop in Python
            if len(numbers) < limit or (numbers and _beats(extreme(values), numbers[-1][0], descending)):
                ranked = zip(values, range(sign * base, sign * (base + len(values)), sign), repeat(index), positions)
                numbers = select(limit, chain(numbers, ranked))
        else:
            others += [(values[p], sign * (base + p), index, p) for p in positions]
        base += len(values)
    if others and not numbers and name not in FIELDS and all(item[0] is ABSENT for item in others):
        return None
    texts = [item for item in others if isinstance(item[0], str)]
    numbers += [item for item in others if _is_number(item[0])]
    chosen = [item[2:] for group in (numbers, texts) for item in select(limit, group)][:limit]
    rest = [item[2:] for item in others if not isinstance(item[0], str) and not _is_number(item[0])]
    chosen += rest[: limit - len(chosen)]  # in listing order, as `sort` leaves them
    return [_record(parts[index], position) for index, position in chosen]


def _beats(value: Any, worst: Any, descending: bool) -> bool:
    """Whether a column's best value would displace the worst kept (a tie comes later: it cannot)."""
    return value > worst if descending else value < worst


def _plain_numbers(values: list[Any]) -> bool:
    """Whether every value is a finite float, or every one an int, checked in C (`map`, `sum`):
    NaN and infinities make the sum NaN or infinite."""
    kinds = set(map(type, values))
    return kinds == {int} or (kinds == {float} and math.isfinite(sum(values)))


def _values(part: Block | RunRecord, key: str, statuses: set[str]) -> tuple[list[Any], range | list[int]]:
    """A part's values of `key` (ABSENT where a run lacks it) and the positions of its runs with one of `statuses`."""
    if isinstance(part, Block):
        values = part.values(key)
        if not statuses:
            return values, range(len(values))
        return values, [p for p, status in enumerate(part.index.column("run", "status")) if status in statuses]
    value = part.value(key) if part.has(key) else ABSENT
    return [value], [] if statuses and part.status not in statuses else [0]


def _record(part: Block | RunRecord, position: int) -> RunRecord:
    return part.record(position) if isinstance(part, Block) else part


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


@dataclass
class Overview:
    """`kagexp ls`: one summary per experiment, and what to warn about."""

    summaries: list[ExpSummary]
    warnings: list[str]


def experiments_overview(project: Project) -> Overview:
    """Every experiment summarized, with a warning when no run logs the project's metric."""
    parts = scan_parts(project, experiments_and_blends(project))
    warning = missing_metric(parts, project.settings["metric"]["name"])
    return Overview(summarize(project, parts), [warning] if warning else [])


def summarize(project: Project, parts: list[Part] | None = None) -> list[ExpSummary]:
    """Every experiment folder (and the blends) with its runs' counts, best metric and whether its
    code moved on."""
    metric = project.settings["metric"]
    names = experiments_and_blends(project)
    by_exp: dict[str, list[Part]] = {}
    for part in scan_parts(project, names) if parts is None else parts:
        by_exp.setdefault(part.exp, []).append(part)
    return [_summary(project, name, by_exp.get(name, []), metric) for name in names]


def _summary(project: Project, name: str, parts: list[Part], metric: dict) -> ExpSummary:
    """One experiment's line, read column by column: 100,000 runs make no record each."""
    from kagexp.provenance import code_files, code_hash

    lineage = project.lineage(name)
    (statuses,) = columns(parts, "run", ["status"])
    started, hashes = columns(parts, "meta", ["started", "code_hash"])
    counts = Counter(statuses)
    counts["not in RUNS"] = sum(left_runs(parts))
    times = [(time, i) for i, time in enumerate(started) if isinstance(time, str)]
    last = max(times, key=itemgetter(0)) if times else (None, None)
    latest = hashes[last[1]] if times else None
    changed = None
    exp_dir = project.exp_root / name
    if latest and exp_dir.is_dir():
        changed = code_hash(exp_dir, code_files(exp_dir, project.settings["new"]["exclude"])) != latest
    value, run = _best_in_column(parts, metric["name"], metric["direction"])
    return ExpSummary(name, lineage.get("parent"), lineage.get("note"), counts, value, run, last[0], changed)


def _best_in_column(parts: list[Part], metric: str | None, direction: str) -> tuple[Any, str | None]:
    """The best value of the metric and its run (first of equals, as `best_run`), or (None, None)."""
    if not metric:
        return None, None
    (values,) = columns(parts, "metrics", [metric])
    scored = [(value, i) for i, value in enumerate(values) if _is_number(value)]
    if not scored:
        return None, None
    pick = max if direction == "max" else min
    value, position = pick(scored, key=itemgetter(0))
    return value, run_ids(parts)[position].rpartition("/")[2]


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
    """Config keys whose value differs between the records (or is missing in some). Blends are
    compared with blends only: their config (method, members) shares no key with a trained run's,
    and every key of the runs would otherwise vary against them."""
    groups: dict[bool, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.exp == BLENDS, []).append(record)
    return list(dict.fromkeys(key for group in groups.values() for key in _varying_within(group)))


def _varying_within(records: list[RunRecord]) -> list[str]:
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


def metric_keys(parts: list[Part], first: str | None = None) -> list[str]:
    """Every metric the runs log, the project's metric (`first`) leading."""
    keys = section_keys(parts, "metrics")
    return [first, *(k for k in keys if k != first)] if first in keys else keys


Column = tuple[str, str, str]  # a column of `kagexp runs`: its name, and the section and key it shows


def table(
    records: list[RunRecord], all_keys: bool = False, metric: str | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows for `kagexp runs` (see `table_layout`)."""
    layout = table_layout(records, all_keys, metric)
    return [name for name, _, _ in layout], list(map(list, zip(*table_data(records, layout))))


def table_layout(parts: list[Part], all_keys: bool = False, metric: str | None = None) -> list[Column]:
    """The columns of `kagexp runs`: run, status, the varying config keys (every key with
    `all_keys`), then the metrics with the project's `metric` first and the LB score beside it,
    then duration, and the error of a failed run when a listed run has one. The section `id` is
    the run's name and whether its RUNS still holds it."""
    config_keys = section_keys(parts, "config") if all_keys else varying_keys(records_of(parts))
    metrics = metric_keys(parts, metric)
    lead, rest = (metrics[:1], metrics[1:]) if metric in metrics else ([], metrics)
    layout = [("run", "id", "run"), ("status", "run", "status")]
    layout += [("in RUNS", "id", "in RUNS")] if any(left_runs(parts)) else []
    layout += [(key, "config", key) for key in config_keys] + [(key, "metrics", key) for key in lead]
    layout += [("lb", "run", "lb")] if any(value is not None for value in columns(parts, "run", ["lb"])[0]) else []
    layout += [(key, "metrics", key) for key in rest] + [("duration", "meta", "duration")]
    return layout + [("error", "meta", "error")] if any(columns(parts, "meta", ["error"])[0]) else layout


def table_data(
    parts: list[Part], layout: list[Column], encode: Callable[[list], list[str]] | None = None
) -> list[list[Any]]:
    """Each column's values in run order (with `encode`, their JSON texts), read a section's keys
    at a time (`records.columns`): 100,000 rows from the index cost no call per run and key."""
    data: list[list[Any]] = []
    for section, group in groupby(layout, key=itemgetter(1)):
        keys = [key for _, _, key in group]
        if section != "id":
            data += columns(parts, section, keys, encode)
            continue
        for key in keys:
            values = run_ids(parts) if key == "run" else ["no" if left else "" for left in left_runs(parts)]
            data.append(encode(values) if encode else values)
    return data


# --- warnings and CV against LB ------------------------------------------------------


def missing_metric(parts: list[Part], metric: str | None) -> str | None:
    """A warning when runs log metrics but none logs the project's (a typo in kagexp.yml, or a
    renamed metric): the listings would otherwise show no best run without saying why."""
    logged = metric_keys(parts)
    if not metric or not logged or metric in logged:
        return None
    return (
        f"warning: no run logs the project metric `{metric}` (metric.name in kagexp.yml)"
        f"{config.did_you_mean(metric, logged)}; the runs log {', '.join(f'`{k}`' for k in logged[:8])}"
    )


def rank_correlation(pairs: list[tuple[Any, float, float]]) -> float | None:
    """Spearman's rank correlation of (run, CV, LB) triples: does a better CV rank better on the LB?
    None with fewer than 3 runs, or when CV or LB does not vary."""
    if len(pairs) < 3:
        return None
    x, y = _ranks([cv for _, cv, _ in pairs]), _ranks([lb for _, _, lb in pairs])
    mean = (len(pairs) + 1) / 2
    cov = sum((a - mean) * (b - mean) for a, b in zip(x, y))
    spread = math.sqrt(sum((a - mean) ** 2 for a in x) * sum((b - mean) ** 2 for b in y))
    return cov / spread if spread else None


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def cv_lb_line(pairs: list[tuple[Any, float, float]], metric: str | None) -> str | None:
    """`CV (auc) against LB: 5 runs with both; Spearman rank correlation 0.900`, or None without pairs."""
    if not pairs:
        return None
    rho = rank_correlation(pairs)
    shown = f"; Spearman rank correlation {rho:.3f}" if rho is not None else "; the rank correlation needs 3 or more"
    return f"CV ({metric}) against LB: {len(pairs)} run(s) with both{shown}"


# --- experiments table ---------------------------------------------------------------

STATUS_COLUMNS = ("done", "failed", "interrupted", "running", "stale")


def summary_rows(
    summaries: list[ExpSummary], metric: str | None, machine: bool = False
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of `kagexp ls`, typed for the machine formats (numbers, null): every status
    that occurs (`partial`: runs with folds still missing, beside `done`), the best value and its
    run in two columns; the last run's time as recorded (ISO, with its zone) for a `machine`."""
    seen = {status for s in summaries for status, n in s.counts.items() if n and status != "not in RUNS"}
    extra = sorted(seen - set(STATUS_COLUMNS) - {"partial"})
    statuses = ["done", *(["partial"] if "partial" in seen else []), *STATUS_COLUMNS[1:], *extra]
    columns = ["exp", "parent", *statuses, "not in RUNS", f"best {metric or 'metric'}", "best run", "last run"]
    columns += ["code", "note"]
    rows = []
    for s in summaries:
        code = {True: "changed", False: "same", None: None}[s.code_changed]
        rows.append(
            [
                s.name,
                s.parent or None,
                *(s.counts.get(status, 0) for status in statuses),
                s.counts.get("not in RUNS", 0),
                s.best,
                s.best_run,
                s.last_run if machine else (s.last_run or "")[:19].replace("T", " ") or None,
                code,
                s.note or None,
            ]
        )
    return columns, rows
