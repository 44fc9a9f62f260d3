"""`kagexp runs` as one library call: read the runs, keep those asked for, sort, cut, tabulate.

Kept apart from `results` (the pieces) so that the command stays one call, and light to import:
the CLI reads `STATUSES` for its help without loading the records machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kagexp.errors import UsageError

if TYPE_CHECKING:
    from kagexp.project import Project
    from kagexp.records import Part, RunRecord
    from kagexp.results import Column

STATUSES = ("done", "partial", "failed", "interrupted", "running", "stale", "unknown", "corrupt")


@dataclass
class Listing:
    """The table of `kagexp runs`, and what to warn about. Its values are read when first asked
    for: as values (`data`, `rows`) or straight as JSON (`json`), which skips most of the work."""

    layout: list[Column]
    parts: list[Part] = field(repr=False)  # the runs listed, in order: experiments whole from their index, single runs
    warnings: list[str] = field(default_factory=list)
    metric: str | None = None

    @property
    def columns(self) -> list[str]:
        return [name for name, _, _ in self.layout]

    @cached_property
    def records(self) -> list[RunRecord]:
        from kagexp.records import records_of

        return records_of(self.parts)

    @property
    def empty(self) -> bool:
        from kagexp.records import run_count

        return run_count(self.parts) == 0

    @cached_property
    def data(self) -> list[list[Any]]:
        """Each column's values, in row order."""
        from kagexp.results import table_data

        return table_data(self.parts, self.layout)

    @property
    def rows(self) -> list[list[Any]]:
        return list(map(list, zip(*self.data)))

    def json(self) -> str:
        """The table as `--format json` prints it, the index's numbers passed through as text."""
        from kagexp.results import table_data
        from kagexp.tables import json_column, json_rows

        return json_rows(self.columns, table_data(self.parts, self.layout, json_column))

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
    shown: list[Part] | None = None if wanted or where or sort_key or limit is not None else parts
    if shown is None and sort_key and limit is not None and not where:
        shown = results.top(parts, sort_key, limit, wanted)
    warnings: list[str] = []
    if shown is None:
        shown, warnings = _selected(parts, wanted, where, sort_key, limit)
    metric = project.settings["metric"]["name"]
    in_order = sorted(shown, key=_listing_order(parts)) if sort_key else shown  # the columns never move with the rows
    return Listing(results.table_layout(in_order, all_keys, metric), shown, warnings, metric)


def _listing_order(parts: list[Part]) -> Callable[[RunRecord], tuple[int, int]]:
    """A sort key putting records back in the order of `parts`, the unsorted listing's."""
    from kagexp.records import Block

    place = {id(part.index if isinstance(part, Block) else part): i for i, part in enumerate(parts)}

    def key(record: RunRecord) -> tuple[int, int]:
        if id(record) in place:
            return place[id(record)], 0
        return place.get(id(getattr(record, "index", None)), len(parts)), getattr(record, "_position", 0)

    return key


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
