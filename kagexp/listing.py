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
    rows: list[list[Any]]
    warnings: list[str] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list, repr=False)
    metric: str | None = None

    def cv_lb(self) -> str | None:
        """The CV–LB line printed under a table (only a table: 100,000 json rows need not pay for it)."""
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
) -> Listing:
    """The runs of `exps` (default: all) with one of `statuses`, matching `where`, sorted, at most `limit`."""
    from kagexp import results
    from kagexp.records import scan

    wanted = parse_statuses(statuses)
    if where:
        results.parse_where(where)  # a typo is an error before any folder is read
    records = scan(project, exps or None)
    if wanted:
        records = [r for r in records if r.status in wanted]
    chosen = results.filtered(records, where)
    records = results.sort(chosen.records, sort_key)
    if limit is not None:
        records = records[:limit]
    metric = project.settings["metric"]["name"]
    columns, rows = results.table(records, all_keys, metric)
    return Listing(columns, rows, chosen.warnings, records, metric)
