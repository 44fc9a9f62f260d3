"""The one table renderer: `ls`, `runs`, `show --list` and reports print through here.

`table` is aligned plain text (stable for pipes, grep and tests), or a rich table on a terminal
with colors; `csv`, `json` (a list of objects) and `md` are for other tools. The machine formats
(csv, json) keep numbers in full; tables and md round them for reading. rich is imported only
for a terminal.
"""

from __future__ import annotations

import io
import json
from itertools import chain, repeat
from json.encoder import encode_basestring
from typing import Any

from kagexp.errors import KagexpError
from kagexp.files import to_json

FORMATS = ("table", "csv", "json", "md")
MACHINE = ("csv", "json")


def render(columns: list[str], rows: list[list[Any]], fmt: str) -> str:
    """The table as `table` (aligned text), `csv`, `json` (a list of objects) or `md`."""
    if fmt == "json":
        return json_rows(columns, [json_column(list(values)) for values in zip(*rows)])
    if fmt == "csv":
        import csv  # here: `kagexp --help` imports this module

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
_SCALARS = {float, int, bool, type(None)}


def json_rows(columns: list[str], texts: list[list[str]]) -> str:
    """The table as a JSON list of objects, one per line (readable, and the fast C encoder:
    `indent=` would use the slow one), from each column's values already encoded (`json_column`).
    The lines are woven from the names and the texts in one C join: 100,000 rows of 15 columns
    take a quarter of a second, a fifth of filling in a template per row."""
    if not texts or not texts[0]:
        return "[]"
    last = {name: i for i, name in enumerate(columns)}  # a name twice: the last value, as a dict keeps
    heads = [("{" if n == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": " for n, name in enumerate(last)]
    woven = [part for head, i in zip(heads, last.values()) for part in (repeat(head), texts[i])]
    lines = "".join(chain.from_iterable(zip(*woven, repeat("},\n"))))
    return "[\n" + lines[:-2] + "\n]"


def json_column(values: list[Any]) -> list[str]:
    """Each value's JSON text: a column of numbers in one call, of text with one C call per value,
    each distinct object once."""
    kinds = set(map(type, values))
    if kinds <= _SCALARS:  # numbers never hold ", ": the list's text splits into its values
        return _ENCODE(values)[1:-1].split(", ")
    if kinds == {str}:
        return list(map(encode_basestring, values))  # what `_ENCODE` does with text, without its call
    distinct = {id(value): value for value in values}  # lists a whole index shares are one object
    encoded = {key: _json_value(value) for key, value in distinct.items()}
    return list(map(encoded.__getitem__, map(id, values)))


def _json_value(value: Any) -> str:
    try:
        return _ENCODE(value)
    except TypeError:  # a key JSON has no type for, deep in a value: `to_json` writes it as text
        return to_json(value)


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
