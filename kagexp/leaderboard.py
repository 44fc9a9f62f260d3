"""Kaggle's public leaderboard: scores recorded per run, and submissions through the official client.

Scores live in the run folder (`lb.jsonl`, one line per score, never rewritten but to append), so
a run keeps its history wherever it goes; `summary.json` carries the latest for fast listing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kagexp import files
from kagexp.errors import ConfigError, KagexpError, NotFoundError
from kagexp.project import Project
from kagexp.records import LB_FILE, RunRecord, find_run, lb_history
from kagexp.run import SUMMARY, now_iso


@dataclass(frozen=True)
class Scores:
    run: str
    history: list[dict]


def record_score(project: Project, run: str, score: float, note: str | None = None) -> Scores:
    """Append a public LB score to the run's history; returns the run and its whole history."""
    if not math.isfinite(score):
        raise ConfigError(f"LB score must be a finite number, not {score}")
    record = find_run(project, run)
    history = [*lb_history(record.path), {"score": score, "note": note, "time": now_iso()}]
    files.write_text(record.path / LB_FILE, "".join(json.dumps(entry) + "\n" for entry in history))
    _update_summary(record.path, score)
    return Scores(record.id, history)


def _update_summary(run_dir: Path, score: float) -> None:
    try:
        summary = files.read_json(run_dir / SUMMARY)
    except (OSError, ValueError):
        return
    summary["lb"] = score
    files.write_json(run_dir / SUMMARY, summary)


def correlation(pairs: list[tuple[float, float]]) -> float | None:
    """Pearson correlation of (CV, LB) pairs; None with fewer than 3 runs or no spread."""
    if len(pairs) < 3:
        return None
    n = len(pairs)
    mean_x = sum(x for x, _ in pairs) / n
    mean_y = sum(y for _, y in pairs) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in pairs)
    var_x = sum((x - mean_x) ** 2 for x, _ in pairs)
    var_y = sum((y - mean_y) ** 2 for _, y in pairs)
    if var_x == 0 or var_y == 0:
        return None
    return cov / math.sqrt(var_x * var_y)


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
    command = ["kaggle", "competitions", "submit", "-c", str(competition), "-f", str(path), "-m", message or default]
    return Submission(command, path)


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
    return subprocess.call([executable, *sub.command[1:]])


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
