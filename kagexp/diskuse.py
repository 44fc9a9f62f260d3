"""Disk use (`kagexp du`): the space of each experiment's outputs and of each run, biggest first.

Sizes are apparent sizes (what `du --apparent-size` says, the same on every file system), with
links counted as links, never followed; units are powers of 1024, as `du -h` and `ls -lh` use.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from kagexp.errors import UsageError
from kagexp.project import Project
from kagexp.records import output_folders, scan

_UNITS = ("B", "KB", "MB", "GB", "TB")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def tree_size(path: Path | str) -> int:
    """Bytes under `path` (a folder, a file or a link), without following links."""
    try:
        stat = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return stat.st_size
    total = 0
    for folder, dirs, names in os.walk(path):
        for name in (*names, *(d for d in dirs if os.path.islink(os.path.join(folder, d)))):
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:  # gone meanwhile
                continue
    return total


def human(size: int) -> str:
    """`1.5 GB`: three significant figures, in powers of 1024."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.3g} {_UNITS[unit]}"


def parse_size(text: str) -> int:
    """`50MB`, `1.5G`, `200k`, `4096` (bytes); units are powers of 1024 (`MiB` is read as `MB`)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"cannot read the size {text!r}; write a number and a unit, such as 50MB, 1.5GB or 200KB")
    number, prefix, _ = match.groups()
    return int(float(number) * 1024 ** " kmgt".index(prefix.lower() or " "))


def experiments(project: Project) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of `kagexp du`: each experiment's outputs (and the blends'), biggest first."""
    rows = [[exp, len(scan(project, [exp])), tree_size(out)] for exp, out in output_folders(project, None)]
    return ["exp", "runs", "size"], sorted(rows, key=lambda row: -row[2])


def runs(project: Project, exp: str) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of `kagexp du EXP`: each run, biggest first, then what the runs share
    (the code snapshots, the stored diffs, the listing index)."""
    records = scan(project, [exp])
    rows = sorted(([r.id, r.status, tree_size(r.path)] for r in records), key=lambda row: -row[2])
    found = output_folders(project, [exp])
    if not found:
        return ["run", "status", "size"], rows
    ((_, exp_out),) = found
    shared = tree_size(exp_out) - sum(row[2] for row in rows)
    if rows or shared:
        rows.append([f"{exp_out.name} (shared: code snapshots, diffs)", "", shared])
    return ["run", "status", "size"], rows
