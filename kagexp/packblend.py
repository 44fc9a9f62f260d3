"""A packed blend on Kaggle: its members' submissions combined into its own.

The kernel runs each member's `infer` (`kagexp.kaggle`), then this module reads the submissions
they wrote, lines their rows up by the id column, and combines them with the method and weights
the blend recorded (`kagexp.combine`, the code `kagexp blend` used on the test predictions), so
that the kernel writes the blend's submission.csv. Standard library only; numpy when combining.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from kagexp import files
from kagexp.combine import combined
from kagexp.errors import RunStateError
from kagexp.packformat import Recipe


@dataclass(frozen=True)
class Submission:
    """A member's submission: its ids in its order, and each id's prediction columns."""

    member: str
    ids: list[str]
    values: dict[str, list[float]]


def read_submission(path: Path, member: str, columns: list[str]) -> Submission:
    """The member's submission, its columns found by the names of the blend's submission."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise RunStateError(
            f"{member}: its submission.csv has columns {','.join(header)}, the blend needs {','.join(columns)}"
        )
    where = [header.index(c) for c in columns]
    ids: list[str] = []
    values: dict[str, list[float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RunStateError(f"{member}: line {line} of its submission.csv has {len(row)} fields, not {len(header)}")
        key = row[where[0]]
        if key in values:
            raise RunStateError(f"{member}: its submission.csv has id {key} twice (line {line})")
        values[key] = [_number(row[i], member, line) for i in where[1:]]
        ids.append(key)
    if not ids:
        raise RunStateError(f"{member}: its submission.csv has no rows")
    return Submission(member, ids, values)


def _number(text: str, member: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise RunStateError(
            f"{member}: its submission.csv has {text!r} on line {line}; a blend averages numbers"
        ) from None


def combine_submissions(recipe: Recipe, submissions: list[Submission], out: Path) -> Path:
    """The blend's submission, in the first member's row order, written (atomically) to `out`."""
    import numpy as np

    order = submissions[0].ids
    for other in submissions[1:]:
        if set(other.values) != set(order):
            extra = sorted(set(other.values) ^ set(order))[0]
            raise RunStateError(
                f"{submissions[0].member} and {other.member} predicted other rows (id {extra} is in one only)"
            )
    matrices = np.array([[s.values[key] for key in order] for s in submissions], dtype=float)
    blended = combined(recipe.method, recipe.weights, matrices)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(recipe.columns)
    for key, row in zip(order, blended.tolist()):
        writer.writerow([key, *(repr(v) for v in row)])
    files.write_text(out, buffer.getvalue())
    return out
