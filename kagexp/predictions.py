"""Out-of-fold (OOF) and test predictions, one schema for every run, and folds that resume.

A run's predictions are a `.npz` file (numpy's zip of `.npy` arrays: no dependency beyond numpy,
which every model already imports) holding `ids`, `pred` (a vector, or one column per class),
`columns`, and for the OOF `folds` and, when given, `target`. Rows are kept sorted by id, so two
runs over the same rows hold them in the same order whatever order their folds ran in; the
hashes of the ids and of the fold assignment are what `kagexp blend` compares first.

Folds: `ctx.folds(5)` yields the folds not finished yet in this run; `ctx.save_fold` finishes one
(`RunFolder.write_fold`). A run that failed, was interrupted or stopped `partial` runs again with
the finished folds of its previous attempt (unless forced, or its config changed beyond `folds`),
so only the missing folds are computed; the assembled OOF is the same as a run that never failed.
"""

from __future__ import annotations

import hashlib
import io
import statistics
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp.errors import MetricError, NotFoundError, RunStateError, UsageError
from kagexp.runfolder import RunFolder

RESUMABLE = ("failed", "interrupted", "stale", "partial")
FOLDS_KEY = "folds"  # the config key that picks folds: `folds: [0]` runs fold 0 only


# --- one set of predictions ------------------------------------------------------------------


@dataclass
class Predictions:
    """Predictions for a set of rows, sorted by id: `pred` is a vector or one column per class."""

    ids: Any
    pred: Any
    columns: list[str]
    folds: Any = None
    target: Any = None

    @property
    def ids_hash(self) -> str:
        return _hash(self.ids)

    @property
    def folds_hash(self) -> str | None:
        return None if self.folds is None else _hash(self.folds)

    def matrix(self):
        """The predictions as a matrix, one column per column name."""
        return self.pred.reshape(len(self.ids), -1)

    def to_bytes(self) -> bytes:
        import numpy as np

        arrays = {"ids": self.ids, "pred": self.pred, "columns": np.asarray(self.columns, dtype=str)}
        arrays.update({k: v for k, v in (("folds", self.folds), ("target", self.target)) if v is not None})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def read(cls, path: Path) -> Predictions:
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return cls(arrays["ids"], arrays["pred"], arrays["columns"].tolist(), arrays.get("folds"), arrays.get("target"))

    def describe(self) -> dict:
        """What the run's meta records of them: size, columns and the hashes blends compare."""
        described = {"rows": len(self.ids), "columns": self.columns, "ids_hash": self.ids_hash}
        if self.folds is not None:
            described["folds_hash"] = self.folds_hash
            described["folds"] = sorted({int(f) for f in self.folds.tolist()})
        return described

    def frame(self):
        """A pandas DataFrame indexed by id: one column per prediction column, then `fold`, `target`."""
        import pandas as pd

        frame = pd.DataFrame(self.matrix(), index=pd.Index(self.ids, name="id"), columns=self.columns)
        for name in ("fold", "target"):
            values = self.folds if name == "fold" else self.target
            if values is not None:
                frame[name] = values
        return frame


def _hash(values: Any) -> str:
    """A hash of the values' text, so that ids read as int32 or int64 (or text) hash alike."""
    import numpy as np

    text = "\n".join(np.asarray(values).astype(str).tolist())
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def make(
    pred: Any, ids: Any = None, folds: Any = None, target: Any = None, columns: Any = None, what: str = "predictions"
) -> Predictions:
    """Predictions checked and sorted by id; ids default to the row numbers."""
    import numpy as np

    values = np.asarray(pred, dtype=float)
    if values.ndim not in (1, 2) or len(values) == 0:
        raise MetricError(
            f"{what}: give one prediction per row (a vector, or one column per class), not {values.shape}"
        )
    n = len(values)
    ids = np.arange(n) if ids is None else _array(ids)
    for name, array in (("ids", ids), ("folds", folds), ("target", target)):
        if array is not None and len(array) != n:
            raise MetricError(f"{what}: {len(array)} {name} for {n} rows of predictions")
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    twice = ids[1:][ids[1:] == ids[:-1]]
    if len(twice):
        raise MetricError(f"{what}: the row id {twice[0].item()!r} is given twice; each id names one row")
    names = _columns(values, columns, what)
    folds = None if folds is None else np.asarray(folds).astype(int)[order]
    target = None if target is None else _array(target)[order]
    return Predictions(ids, values[order], names, folds, target)


def _array(values: Any):
    """An array numpy can store without pickling: text stays text (object arrays become str)."""
    import numpy as np

    array = np.asarray(values)
    return array.astype(str) if array.dtype == object else array


def _columns(values: Any, columns: Any, what: str) -> list[str]:
    width = 1 if values.ndim == 1 else values.shape[1]
    if columns is None:
        return ["pred"] if values.ndim == 1 else [str(i) for i in range(width)]
    names = [str(c) for c in columns]
    if len(names) != width:
        raise MetricError(f"{what}: {len(names)} column names for {width} columns of predictions")
    return names


# --- folds ---------------------------------------------------------------------------------


@dataclass
class FoldBook:
    """A run's folds: which are finished, which to run, their metrics, and the assembled result."""

    folder: RunFolder
    config_folds: Any = None  # the run config's `folds:` value
    total: int | None = None  # how many folds the run has in all, once `folds()` said so
    saved_oof: bool = False
    saved_test: bool = False
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # each metric's value per fold

    def finished(self) -> dict[int, dict]:
        return self.folder.fold_records()

    def plan(self, n: int | Iterable[int] | None, total: int | None) -> list[int]:
        """The folds this run does: `n` folds (those the config's `folds:` picks, if it does), or
        the folds listed; `total` says how many there are in all when a list names only some."""
        if isinstance(n, int) and not isinstance(n, bool):
            self.total = n
            chosen = _config_folds(self.config_folds, n)
            return chosen if chosen is not None else list(range(n))
        listed = _config_folds(self.config_folds, total) if n is None else _fold_list(n, "ctx.folds")
        if listed is None:
            raise UsageError("ctx.folds() needs the number of folds, a list of them, or a `folds:` key in the config")
        if total is not None:
            self.total = total
        return listed

    def pending(self, n: int | Iterable[int] | None, total: int | None) -> Iterator[int]:
        """Yield the planned folds not finished yet, checking again before each (a fold may be
        saved out of order)."""
        planned = self.plan(n, total)
        done = [f for f in planned if f in self.finished()]
        if done:
            print(f"folds {', '.join(map(str, done))} finished in an earlier attempt: not computed again", flush=True)
        for fold in planned:
            if fold not in self.finished():
                yield fold

    def missing(self) -> list[int]:
        """Folds of `total` not finished: the run is `partial` while there are any."""
        if self.total is None:
            return []
        finished = self.finished()
        return [f for f in range(self.total) if f not in finished]

    def aggregate(self, values: dict[str, Any], fold: int) -> dict[str, Any]:
        """Per-fold values become the mean over folds (`auc`) and their standard deviation (`auc_std`)."""
        out = {}
        for key, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                out[key] = value
                continue
            per_fold = self.values.setdefault(key, {})
            per_fold[int(fold)] = value
            out[key] = statistics.fmean(per_fold.values())
            out[f"{key}_std"] = statistics.pstdev(per_fold.values())
        return out

    def save_fold(self, fold: int, metrics: dict, arrays: Predictions | None, test: Predictions | None, attempt: int):
        """Write one fold atomically: its arrays first, then its record (which finishes it)."""
        record = {"metrics": metrics, "attempt": attempt, "time": round(time.time(), 3)}
        data = None
        if arrays is not None or test is not None:
            record["rows"] = len(arrays.ids) if arrays is not None else 0
            data = _fold_bytes(arrays, test)
        self.folder.write_fold(fold, data, record)

    def assemble(self) -> tuple[Predictions | None, Predictions | None]:
        """The OOF of every finished fold and the mean of their test predictions."""
        import numpy as np

        parts, tests = [], []
        for fold in self.finished():
            path = self.folder.fold_arrays(fold)
            if path is None:
                continue
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            if "pred" in arrays:
                parts.append((fold, arrays))
            if "test" in arrays:
                tests.append((fold, arrays))
        return _assembled_oof(parts), _assembled_test(tests)


def _fold_bytes(oof: Predictions | None, test: Predictions | None) -> bytes:
    import numpy as np

    arrays = {}
    if oof is not None:
        arrays.update(ids=oof.ids, pred=oof.pred, columns=np.asarray(oof.columns, dtype=str))
        if oof.target is not None:
            arrays["target"] = oof.target
    if test is not None:
        arrays.update(test_ids=test.ids, test=test.pred, test_columns=np.asarray(test.columns, dtype=str))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _assembled_oof(parts: list[tuple[int, dict]]) -> Predictions | None:
    import numpy as np

    if not parts:
        return None
    columns = parts[0][1]["columns"].tolist()
    for fold, arrays in parts:
        if arrays["columns"].tolist() != columns:
            raise MetricError(f"fold {fold} has the columns {arrays['columns'].tolist()}, fold {parts[0][0]} {columns}")
    targets = [arrays.get("target") for _, arrays in parts]
    return make(
        np.concatenate([arrays["pred"] for _, arrays in parts]),
        ids=np.concatenate([arrays["ids"] for _, arrays in parts]),
        folds=np.concatenate([np.full(len(arrays["ids"]), fold) for fold, arrays in parts]),
        target=np.concatenate(targets) if all(t is not None for t in targets) else None,
        columns=columns,
        what="the out-of-fold predictions",
    )


def _assembled_test(tests: list[tuple[int, dict]]) -> Predictions | None:
    import numpy as np

    if not tests:
        return None
    first_fold, first = tests[0]
    for fold, arrays in tests[1:]:
        if not np.array_equal(arrays["test_ids"], first["test_ids"]):
            raise MetricError(f"fold {fold} predicted other test rows than fold {first_fold}; give the same test_ids")
    mean = np.mean([arrays["test"] for _, arrays in tests], axis=0)
    return make(mean, ids=first["test_ids"], columns=first["test_columns"].tolist(), what="the test predictions")


def _fold_list(folds: Any, where: str) -> list[int]:
    try:
        listed = [int(f) for f in folds]
    except (TypeError, ValueError):
        raise UsageError(f"{where}: folds are numbers, such as [0, 1]; got {folds!r:.60}") from None
    if any(f < 0 for f in listed) or len(set(listed)) != len(listed):
        raise UsageError(f"{where}: folds are distinct numbers from 0, such as [0, 1]; got {listed}")
    return listed


def _config_folds(value: Any, total: int | None) -> list[int] | None:
    """The folds the config's `folds:` picks: a list of fold numbers, or a count; None when absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return list(range(value))
    listed = _fold_list(value, f"the config's `{FOLDS_KEY}:`")
    outside = [f for f in listed if total is not None and f >= total]
    if outside:
        raise UsageError(
            f"the config's `{FOLDS_KEY}:` names fold {outside[0]}, but the run has {total} folds (0–{total - 1})"
        )
    return listed


def resume_folds(folder: RunFolder, attempt: int, config: dict, force: bool) -> list[int]:
    """Carry the previous attempt's finished folds into this one, when it did not finish `done`
    and ran the same config (but for `folds:`); `--force` starts from the first fold."""
    if force or attempt < 2:
        return []
    earlier = folder.attempt(attempt - 1)
    meta = earlier.meta() or {}
    if meta.get("status") not in RESUMABLE or not earlier.fold_records():
        return []
    if _without_folds(earlier.config()) != _without_folds(config):
        print(f"{folder.name}: its config changed since attempt {attempt - 1}: all folds are computed again")
        return []
    return folder.carry_folds(earlier)


def _without_folds(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != FOLDS_KEY}


def finish(book: FoldBook, meta: dict) -> tuple[str, str]:
    """At the end of a run that returned: assemble the folds' predictions (unless the run saved its
    own), record their hashes in `meta`, and say `partial` while folds are missing."""
    oof, test = book.assemble()
    if oof is not None and not book.saved_oof:
        book.folder.write_predictions("oof", oof.to_bytes())
    if test is not None and not book.saved_test:
        book.folder.write_predictions("test", test.to_bytes())
    described = {kind: read(book.folder, kind).describe() for kind in ("oof", "test") if book.folder.predictions(kind)}
    if described:
        meta["predictions"] = described
    missing = book.missing()
    if missing:
        shown = ", ".join(map(str, missing))
        return "partial", f"folds {shown} of {book.total} not finished; run it again (with them in `folds:`)"
    return "done", ""


# --- reading -------------------------------------------------------------------------------


def read(folder: RunFolder, kind: str, label: str | None = None) -> Predictions:
    """A run's `oof` or `test` predictions; an error saying how to save them when it has none."""
    path = folder.predictions(kind)
    if path is None:
        how = (
            "ctx.save_fold(…, oof=…) or ctx.save_oof" if kind == "oof" else "ctx.save_fold(…, test=…) or ctx.save_test"
        )
        raise NotFoundError(f"{label or folder.path}: no {kind} predictions saved; save them with {how}")
    try:
        return Predictions.read(path)
    except (OSError, ValueError, KeyError) as exc:
        raise RunStateError(f"{label or folder.path}: its {kind} predictions cannot be read ({exc})") from None


def _load(run: str, kind: str, root: str | Path | None):
    from kagexp.project import load_project
    from kagexp.records import find_run

    project = load_project(Path(root) if root is not None else None)
    record = find_run(project, str(run))
    return read(record.run_folder, kind, record.id).frame()


def load_oof(run: str, root: str | Path | None = None):
    """A run's out-of-fold predictions as a pandas DataFrame indexed by id, with `fold` and `target`."""
    return _load(run, "oof", root)


def load_test(run: str, root: str | Path | None = None):
    """A run's test predictions as a pandas DataFrame indexed by id."""
    return _load(run, "test", root)
