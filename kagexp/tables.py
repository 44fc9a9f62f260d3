"""The one table renderer: `ls`, `runs`, `show --list` and reports print through here.

`table` is aligned plain text (stable for pipes, grep and tests), or a rich table on a terminal
with colors; `csv`, `json` (a list of objects) and `md` are for other tools. The machine formats
(csv, json) keep numbers in full; tables and md round them for reading. rich is imported only
for a terminal.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from kagexp.errors import KagexpError
from kagexp.files import to_json

FORMATS = ("table", "csv", "json", "md")
MACHINE = ("csv", "json")


def render(columns: list[str], rows: list[list[Any]], fmt: str) -> str:
    """The table as `table` (aligned text), `csv`, `json` (a list of objects) or `md`."""
    if fmt == "json":
        # one object per line: readable, and the fast C encoder (indent= would use the slow one)
        objects = (_json_object(columns, row) for row in rows)
        return "[\n" + ",\n".join(objects) + "\n]" if rows else "[]"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[exact_cell(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    cells = [columns, *[[cell(v) for v in row] for row in rows]]
    if fmt == "md":
        lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join("---" for _ in columns) + "|")
        return "\n".join(lines)
    if fmt == "table":
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
    raise KagexpError(f"unknown format {fmt!r}; use table, csv, json or md")


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode  # one encoder for 100,000 rows


def _json_object(columns: list[str], row: list[Any]) -> str:
    try:
        return _ENCODE(dict(zip(columns, row)))
    except TypeError:  # a key JSON has no type for, deep in a value: `to_json` writes it as text
        return to_json(dict(zip(columns, row)))


def cell(value: Any) -> str:
    """How a value reads in a table: YAML spelling for booleans, 6 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return to_json(value)
    return str(value)


def exact_cell(value: Any) -> str:
    """How a value reads in csv: like a table cell, but a float in full (`repr` reads back the same number)."""
    return repr(value) if isinstance(value, float) else cell(value)


def rich_table(columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table with rich, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, header_style="bold")
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    Console().print(table)
