"""`kagexp blend`: a fold-safe blend of runs' out-of-fold predictions, saved as a run of its own.

Blending OOF made on different rows or different folds gives a CV that looks better than it is,
so the members must agree on both (the hashes first, then the first row or fold that differs is
named). Methods: `mean`; `rank` (the mean of each member's ranks, scaled to 0–1); `hill`
(greedy forward selection with replacement: add the member that improves the CV most, until none
does); `ridge` (non-negative ridge weights fitted out of fold: the blend's prediction for fold k
uses weights fitted on the other folds' rows only, so the CV never scores weights on the rows
they were fitted to; the test prediction uses weights fitted on every row).

The blend is written to `data/output/blend/<name>/` through `kagexp.runfolder`, built in a hidden
folder and renamed into place (never half-written), and each member gets a ref so `gc` keeps it.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp.combine import METHODS, combined, rank_mean, weighted
from kagexp.errors import RunStateError, TargetExistsError, UsageError
from kagexp.metrics import Metric, resolve
from kagexp.predictions import Predictions, make, read
from kagexp.project import Project, check_name
from kagexp.records import RunRecord, find_run
from kagexp.runfolder import BLENDS, RunFolder, blend_root, now_iso

RIDGE_ALPHA = 1.0  # the penalty of scikit-learn's Ridge by default
HILL_STEPS = 100


@dataclass
class Member:
    """One run of the blend with its OOF and (when saved) test predictions."""

    id: str
    folder: RunFolder
    meta: dict
    oof: Predictions
    test: Predictions | None


@dataclass
class Blend:
    """What a blend made: its CV against its members', its weights, and where it was saved."""

    name: str
    path: Path
    method: str
    metric: Metric
    cv: float
    members: list[str]
    weights: list[float]
    member_cv: dict[str, float]
    fold_weights: dict[int, list[float]] = field(default_factory=dict)
    has_test: bool = False

    def best_member(self) -> tuple[str, float]:
        best = self.members[0]
        for member in self.members[1:]:
            if self.metric.better(self.member_cv[member], self.member_cv[best]):
                best = member
        return best, self.member_cv[best]

    def lines(self) -> list[str]:
        """What `kagexp blend` prints: each member's CV and weight, the blend's, and the verdict."""
        name = self.metric.name
        out = [f"{'member':<28} {'weight':>8} {'oof ' + name:>12}"]
        for member, weight in zip(self.members, self.weights):
            out.append(f"{member:<28} {weight:>8.4f} {self.member_cv[member]:>12.6f}")
        out.append(f"{'blend/' + self.name + ' (' + self.method + ')':<28} {'':>8} {self.cv:>12.6f}")
        best, score = self.best_member()
        if self.metric.better(self.cv, score):
            out.append(f"the blend's CV is better than the best member ({best}) by {abs(self.cv - score):.6f}")
        else:
            out.append(f"the blend's CV is NOT better than the best member ({best}: {score:.6f})")
        out.append(f"(every CV here is the {name} of all OOF rows at once; listings of runs show the mean over folds)")
        missing = "" if self.has_test else " (no test predictions: not every member saved them)"
        out.append(f"saved {_shown(self.path)} as blend/{self.name}{missing}")
        return out


def _shown(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


# --- loading and checking the members ------------------------------------------------------


def _member(project: Project, text: str) -> Member:
    record: RunRecord = find_run(project, text)
    if record.status != "done":
        raise RunStateError(f"{record.id} is {record.status}: blend runs that are done (every fold finished)")
    oof = read(record.run_folder, "oof", record.id)
    if oof.folds is None:
        raise RunStateError(
            f"{record.id}: its OOF has no fold assignment, so a blend cannot check it; save it with "
            f"ctx.save_fold or ctx.save_oof(…, folds=…)"
        )
    test = read(record.run_folder, "test", record.id) if record.run_folder.predictions("test") else None
    return Member(record.id, record.run_folder, record.meta, oof, test)


def check_aligned(members: list[Member]) -> None:
    """Same rows, same folds, same columns and target: else an error naming the runs and where."""
    first = members[0]
    for other in members[1:]:
        pair = f"{first.id} and {other.id}"
        if first.oof.ids_hash != other.oof.ids_hash:
            where = _first_difference(first, other, "ids")
            raise RunStateError(f"{pair} predict different rows: {where}; blend runs made on the same rows")
        if first.oof.folds_hash != other.oof.folds_hash:
            where = _first_difference(first, other, "folds")
            raise RunStateError(f"{pair} were made on different folds: {where}; blend runs made on the same folds")
        if len(first.oof.columns) != len(other.oof.columns):
            raise RunStateError(f"{pair} have {len(first.oof.columns)} and {len(other.oof.columns)} prediction columns")
    targets = [m for m in members if m.oof.target is not None]
    if not targets:
        raise RunStateError(f"none of {', '.join(m.id for m in members)} saved the target: pass target= to save_fold")
    for other in targets[1:]:
        if not _equal(targets[0].oof.target, other.oof.target):
            raise RunStateError(f"{targets[0].id} and {other.id} saved different targets for the same rows")


def _first_difference(a: Member, b: Member, what: str) -> str:
    """Where two members first differ: `row 7 (by id) is id 107 in A, 1107 in B`, or `row id 100 is
    in fold 0 in A, fold 1 in B`, or how many rows each has."""
    import numpy as np

    left, right = (getattr(m.oof, what) for m in (a, b))
    if len(left) != len(right):
        return f"{len(left)} rows in {a.id}, {len(right)} in {b.id}"
    index = int(np.flatnonzero(np.asarray(left).astype(str) != np.asarray(right).astype(str))[0])
    if what == "ids":
        return f"row {index} (by id) is id {left[index]} in {a.id}, {right[index]} in {b.id}"
    return f"row id {a.oof.ids[index]} is in fold {left[index]} in {a.id}, fold {right[index]} in {b.id}"


def _equal(a: Any, b: Any) -> bool:
    import numpy as np

    return np.array_equal(np.asarray(a).astype(str), np.asarray(b).astype(str))


# --- the methods ---------------------------------------------------------------------------


def _score(metric: Metric, target: Any, matrix: Any) -> float:
    return metric(target, matrix[:, 0] if matrix.shape[1] == 1 else matrix)


def hill_climb(metric: Metric, target: Any, matrices: Any) -> list[float]:
    """Greedy forward selection with replacement, from the best single member."""
    import numpy as np

    scores = [_score(metric, target, m) for m in matrices]
    best = max(range(len(scores)), key=lambda i: scores[i] if metric.direction == "max" else -scores[i])
    counts = np.zeros(len(matrices))
    counts[best] = 1
    current = scores[best]
    for _ in range(HILL_STEPS):
        trials = [
            _score(metric, target, weighted((counts + np.eye(len(counts))[i]) / (counts.sum() + 1), matrices))
            for i in range(len(counts))
        ]
        pick = max(range(len(trials)), key=lambda i: trials[i] if metric.direction == "max" else -trials[i])
        if not metric.better(trials[pick], current):
            break
        counts[pick] += 1
        current = trials[pick]
    return (counts / counts.sum()).tolist()


def nonnegative_ridge(x: Any, y: Any, alpha: float = RIDGE_ALPHA):
    """Weights w >= 0 minimising |y - x w|^2 + alpha |w|^2 (coordinate descent; few members)."""
    import numpy as np

    gram = x.T @ x + alpha * np.eye(x.shape[1])
    moment = x.T @ y
    w = np.zeros(x.shape[1])
    for _ in range(10_000):
        largest = 0.0
        for j in range(len(w)):
            new = max(0.0, (moment[j] - gram[j] @ w + gram[j, j] * w[j]) / gram[j, j])
            largest = max(largest, abs(new - w[j]))
            w[j] = new
        if largest < 1e-13:
            break
    return w


def _ridge_design(matrices: Any, rows: Any, target: Any):
    """Members as columns of a regression: each prediction column stacked; a class's target one-hot."""
    import numpy as np

    chosen = matrices[:, rows, :]
    x = chosen.transpose(1, 2, 0).reshape(-1, len(matrices))
    width = matrices.shape[2]
    y = np.asarray(target)[rows].astype(float)
    if width > 1:
        y = (y.astype(int)[:, None] == np.arange(width)[None, :]).astype(float).reshape(-1)
    return x, y


def ridge_out_of_fold(matrices: Any, target: Any, folds: Any) -> tuple[Any, dict[int, list[float]]]:
    """Each fold's rows blended with weights fitted on the other folds' rows only."""
    import numpy as np

    blended = np.empty(matrices.shape[1:])
    per_fold = {}
    for fold in np.unique(folds):
        held = folds == fold
        weights = nonnegative_ridge(*_ridge_design(matrices, ~held, target))
        blended[held] = weighted(weights, matrices[:, held, :])
        per_fold[int(fold)] = weights.tolist()
    return blended, per_fold


# --- the blend -----------------------------------------------------------------------------


def blend(
    project: Project, runs: list[str], method: str = "mean", metric: str | None = None, name: str | None = None
) -> Blend:
    """Blend the runs' OOF predictions, score it, and save it as `data/output/blend/<name>/`."""
    import numpy as np

    if method not in METHODS:
        raise UsageError(f"unknown blend method {method!r}: use one of {', '.join(METHODS)}")
    if len(runs) < 2:
        raise UsageError("name at least two runs to blend, e.g. kagexp blend exp001/run002 exp002/run001")
    started = time.monotonic()
    chosen = resolve(metric or project.settings["metric"]["name"], project.settings["metric"]["direction"])
    root = blend_root(project.output_root)
    name = check_name(name, "blend") if name else _next_name(root)
    if os.path.lexists(root / name):
        raise TargetExistsError(f"blend/{name} exists already; choose another name with -o (kagexp never overwrites)")
    members = [_member(project, text) for text in runs]
    if len({m.id for m in members}) != len(members):
        raise UsageError("a run is named twice; each member is blended once (hill weighs them itself)")
    check_aligned(members)
    target = next(m.oof.target for m in members if m.oof.target is not None)
    matrices = np.stack([m.oof.matrix() for m in members])
    weights, oof, fold_weights = _fit(method, chosen, target, matrices, members[0].oof.folds)
    result = Blend(
        name,
        root / name,
        method,
        chosen,
        _score(chosen, target, oof),
        [m.id for m in members],
        weights,
        {m.id: _score(chosen, target, m.oof.matrix()) for m in members},
        fold_weights,
    )
    test = _blended_test(method, members, weights)
    result.has_test = test is not None
    first = members[0].oof
    oof_predictions = make(oof, first.ids, first.folds, target, first.columns, what="the blend")
    _save(project, result, members, oof_predictions, test, time.monotonic() - started)
    for member in members:
        member.folder.add_ref(f"{BLENDS}/{name}", "blend")
    return result


def _fit(method: str, metric: Metric, target: Any, matrices: Any, folds: Any):
    """The weights, the blended OOF, and for ridge each fold's weights."""
    import numpy as np

    count = len(matrices)
    if method == "ridge":
        oof, per_fold = ridge_out_of_fold(matrices, target, folds)
        return (
            nonnegative_ridge(*_ridge_design(matrices, np.ones(matrices.shape[1], bool), target)).tolist(),
            oof,
            per_fold,
        )
    if method == "hill":
        weights = hill_climb(metric, target, matrices)
        return weights, weighted(weights, matrices), {}
    weights = [1 / count] * count
    return weights, rank_mean(matrices) if method == "rank" else matrices.mean(axis=0), {}


def _blended_test(method: str, members: list[Member], weights: list[float]) -> Predictions | None:
    """The members' test predictions blended with the weights, when every member has the same test rows."""
    import numpy as np

    tests = [m.test for m in members]
    if any(t is None for t in tests) or len({t.ids_hash for t in tests}) != 1:
        return None
    matrices = np.stack([t.matrix() for t in tests])
    blended = combined(method, weights, matrices)
    return make(blended, tests[0].ids, columns=tests[0].columns, what="the blend's test")


def _next_name(root: Path) -> str:
    numbers = [int(p.name[5:]) for p in root.glob("blend*") if p.name[5:].isdigit()] if root.is_dir() else []
    return f"blend{max(numbers, default=0) + 1:03d}"


# --- saving --------------------------------------------------------------------------------


def _save(project: Project, result: Blend, members: list[Member], oof: Predictions, test, duration: float) -> None:
    """Write the blend's folder beside its final place, then rename it there in one step."""
    import shutil

    result.path.parent.mkdir(parents=True, exist_ok=True)
    staging = result.path.parent / f".{result.name}.{os.getpid()}.tmp"
    folder = RunFolder(staging)
    staging.mkdir()
    try:
        _write(project, folder, result, members, oof, test, duration)
        os.rename(staging, result.path)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        raise TargetExistsError(f"blend/{result.name} was made meanwhile; choose another name with -o") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _write(project: Project, folder: RunFolder, result: Blend, members, oof: Predictions, test, duration) -> None:
    config = {"method": result.method, "metric": result.metric.name, "members": result.members}
    metrics = {result.metric.name: result.cv}
    meta = _meta(project, result, members, oof, test, duration)
    folder.write_config(config)
    folder.write_predictions("oof", oof.to_bytes())
    if test is not None:
        folder.write_predictions("test", test.to_bytes())
        folder.write_submission(_submission(members[0].folder, test))
    folder.write_metrics(metrics)
    folder.write_summary(meta, config, metrics)
    folder.write_meta(meta)


def _meta(project: Project, result: Blend, members: list[Member], oof: Predictions, test, duration: float) -> dict:
    import platform
    import socket
    import sys

    from kagexp.provenance import git_state
    from kagexp.version import __version__

    git = git_state(project.root, project.root)
    return {
        "exp": BLENDS,
        "run": result.name,
        "status": "done",
        "attempt": 1,
        "started": now_iso(),
        "ended": now_iso(),
        "duration": round(duration, 3),
        "seed": None,
        "code_hash": None,
        "blend": {
            "method": result.method,
            "metric": result.metric.name,
            "direction": result.metric.direction,
            "cv": result.cv,
            "members": result.members,
            "weights": result.weights,
            "member_cv": result.member_cv,
            **({"fold_weights": {str(k): v for k, v in result.fold_weights.items()}} if result.fold_weights else {}),
        },
        "members": {m.id: {"code_hash": m.meta.get("code_hash"), "started": m.meta.get("started")} for m in members},
        "predictions": {"oof": oof.describe(), **({"test": test.describe()} if test is not None else {})},
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kagexp": __version__,
        "git": git.summary() if git else None,
    }


def _submission(first_member: RunFolder, test: Predictions) -> str:
    """The blend's test predictions as CSV, under the header of the first member's submission when
    it has as many columns (the competition's names), else `id` and the prediction columns."""
    header = ["id", *test.columns]
    path = first_member.submission()
    if path is not None:
        with open(path, newline="") as f:
            found = next(csv.reader(f), [])
        if len(found) == len(header):
            header = found
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row_id, values in zip(test.ids.tolist(), test.matrix().tolist()):
        writer.writerow([row_id, *(repr(v) for v in values)])
    return buffer.getvalue()
