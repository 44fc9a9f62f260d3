"""`kagexp runs` as one library call: read the runs, keep those asked for, sort, cut, tabulate.

Kept apart from `results` (the pieces) so that the command stays one call, and light to import:
the CLI reads `STATUSES` for its help without loading the records machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kagexp.errors import UsageError

if TYPE_CHECKING:
    from kagexp.project import Project
    from kagexp.records import RunRecord

STATUSES = ("done", "partial", "failed", "interrupted", "running", "stale", "unknown", "corrupt")


@dataclass
class Listing:
    """The table of `kagexp runs`, and what to warn about."""

    columns: list[str]
    data: list[list[Any]]  # each column's values, in row order
    warnings: list[str] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list, repr=False)
    metric: str | None = None

    @property
    def rows(self) -> list[list[Any]]:
        return list(map(list, zip(*self.data)))

    def cv_lb(self) -> str | None:
        """The CV–LB line printed under a table (only a table: 100,000 json rows need not pay for it)."""
        if all(record.lb is None for record in self.records):  # no pair: not worth importing for
            return None
        from kagexp.leaderboard import cv_lb_pairs
        from kagexp.results import cv_lb_line

        return cv_lb_line(cv_lb_pairs(self.records, self.metric), self.metric)


def parse_statuses(values: tuple[str, ...] | list[str]) -> set[str]:
    """`--status failed --status interrupted` and `--status failed,interrupted` alike; empty: all."""
    wanted = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        shown = ", ".join(repr(name) for name in unknown)
        raise UsageError(f"--status: unknown status {shown}; use one or more of {', '.join(STATUSES)}")
    return wanted


def list_runs(
    project: Project,
    exps: list[str],
    statuses: tuple[str, ...] | list[str] = (),
    where: str | None = None,
    sort_key: str | None = None,
    limit: int | None = None,
    all_keys: bool = False,
    refresh: bool = False,
) -> Listing:
    """The runs of `exps` (default: all) with one of `statuses`, matching `where`, sorted, at most
    `limit`; `refresh`: every run folder read again, not from the indexes."""
    from kagexp import results
    from kagexp.records import scan_parts

    wanted = parse_statuses(statuses)
    if where:
        results.parse_where(where)  # a typo is an error before any folder is read
    parts = scan_parts(project, exps or None, refresh)
    records = results.top(parts, sort_key, limit, wanted) if sort_key and limit is not None and not where else None
    warnings: list[str] = []
    if records is None:
        records, warnings = _selected(parts, wanted, where, sort_key, limit)
    metric = project.settings["metric"]["name"]
    columns, data = results.table_columns(records, all_keys, metric)
    return Listing(columns, data, warnings, records, metric)


def _selected(
    parts: list, wanted: set[str], where: str | None, sort_key: str | None, limit: int | None
) -> tuple[list[RunRecord], list[str]]:
    """The runs kept, sorted and cut, with a record each, and the warnings of `--where`."""
    from kagexp import results
    from kagexp.records import records_of

    records = records_of(parts)
    if wanted:
        records = [r for r in records if r.status in wanted]
    chosen = results.filtered(records, where)
    records = results.sort(chosen.records, sort_key)
    return (records if limit is None else records[:limit]), chosen.warnings
