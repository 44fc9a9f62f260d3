"""Kaggle's public leaderboard: scores recorded per run, and submissions through the official client.

Scores live in the run folder, appended one line per score under a lock (concurrent calls all
land), so a run keeps its history wherever it goes; the run's summary carries the latest for fast
listing.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kagexp.errors import ConfigError, KagexpError, NotFoundError
from kagexp.project import Project
from kagexp.records import RunRecord, find_run
from kagexp.runfolder import RunFolder


@dataclass(frozen=True)
class Scores:
    run: str
    history: list[dict]


def record_score(project: Project, run: str, score: float, note: str | None = None) -> Scores:
    """Append a public LB score to the run's history; returns the run and its whole history."""
    if not math.isfinite(score):
        raise ConfigError(f"LB score must be a finite number, not {score}")
    record = find_run(project, run)
    return Scores(record.id, record.run_folder.append_lb(score, note))


def correlation(pairs: list[tuple[float, float]]) -> float | None:
    """Pearson correlation of (CV, LB) pairs; None with fewer than 3 runs or no spread."""
    if len(pairs) < 3:
        return None
    try:
        return statistics.correlation([x for x, _ in pairs], [y for _, y in pairs])
    except statistics.StatisticsError:  # a constant CV or LB
        return None


def cv_lb_pairs(records: list[RunRecord], metric: str | None) -> list[tuple[str, float, float]]:
    """(run, CV, LB) for every run that has both the project's metric and an LB score."""
    pairs = []
    for record in records:
        cv = record.metrics.get(metric) if metric else None
        if isinstance(cv, (int, float)) and not isinstance(cv, bool) and record.lb is not None:
            pairs.append((record.id, float(cv), float(record.lb)))
    return pairs


# --- submissions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    command: list[str]
    file: Path
    folder: Path  # the run's
    message: str


def submission(project: Project, run: str, message: str | None = None, file: str = "submission.csv") -> Submission:
    """The `kaggle competitions submit` command for a run's submission file."""
    competition = project.settings.get("competition")
    if not competition:
        raise ConfigError("no competition in kagexp.yml; add `competition: <slug>` (the name in the Kaggle URL)")
    record = find_run(project, run)
    path = record.path / file
    if not path.is_file():
        raise NotFoundError(f"{record.id} has no {file}; save one with ctx.save_submission(...)")
    metric = project.settings["metric"]["name"]
    value = record.metrics.get(metric) if metric else None
    default = f"{record.id} {metric}={value:.6g}" if isinstance(value, (int, float)) else record.id
    message = message or default
    command = ["kaggle", "competitions", "submit", "-c", str(competition), "-f", str(path), "-m", message]
    return Submission(command, path, record.path, message)


def submit(sub: Submission) -> int:
    """Run the official client; never through a shell, so no text of the user's is interpreted."""
    executable = shutil.which("kaggle")
    if executable is None:
        raise KagexpError("the kaggle command-line client is not installed: pip install kaggle")
    if not has_credentials():
        raise KagexpError(
            "no Kaggle API credentials: put kaggle.json (from kaggle.com > Settings > API) in ~/.kaggle/, "
            "or set KAGGLE_USERNAME and KAGGLE_KEY"
        )
    code = subprocess.call([executable, *sub.command[1:]])
    if code == 0:  # the run counts as submitted (retention keeps it) before its score is known
        name = sub.file.relative_to(sub.folder).as_posix()
        RunFolder(sub.folder).record_submission(name, _sha256(sub.file), sub.message)
    return code


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def has_credentials() -> bool:
    if (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or os.environ.get("KAGGLE_API_TOKEN"):
        return True
    folders = [os.environ.get("KAGGLE_CONFIG_DIR"), "~/.kaggle", "~/.config/kaggle"]
    return any(
        (Path(folder).expanduser() / name).is_file()
        for folder in folders
        if folder
        for name in ("kaggle.json", "access_token")
    )
