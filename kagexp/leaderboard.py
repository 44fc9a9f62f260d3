"""Kaggle's public leaderboard: scores recorded per run, and submissions through the official client.

Scores live in the run folder, appended one line per score under a lock (concurrent calls all
land), so a run keeps its history wherever it goes; the run's summary carries the latest for fast
listing.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from kagexp import files, kaggle_cli
from kagexp.errors import ConfigError, NotFoundError
from kagexp.project import Project
from kagexp.records import RunRecord, find_run, scan
from kagexp.runfolder import RunFolder

SUBMISSION = "submission.csv"
HASH_TAG, HASH_SHOWN = "sha256:", 12  # a message holding `sha256:1a2b3c4d5e6f` is matched by the file's hash


@dataclass(frozen=True)
class Scores:
    run: str
    history: list[dict]


BOUNDED_METRICS = frozenset({"auc", "roc_auc", "accuracy", "acc", "f1", "f1_score"})  # scores in [0, 1]


def record_score(project: Project, run: str, score: float, note: str | None = None, force: bool = False) -> Scores:
    """Append a public LB score to the run's history; returns the run and its whole history.

    Refused: a score that is not finite; without `force`, one of a run that has no submission
    (submitted another way), and one outside [0, 1] for a metric that cannot leave it (a typo)."""
    if not math.isfinite(score):
        raise ConfigError(f"LB score must be a finite number, not {score}")
    record = find_run(project, run)
    folder = record.run_folder
    if not (force or folder.file(SUBMISSION).is_file() or folder.submissions()):
        raise NotFoundError(
            f"{record.id} has no {SUBMISSION}: an LB score belongs to a run that made one; "
            "pass --force if it was submitted another way"
        )
    metric = (project.settings["metric"]["name"] or "").lower()
    if metric in BOUNDED_METRICS and not 0 <= score <= 1 and not force:
        raise ConfigError(f"{metric} lies in [0, 1], so {score:g} looks like a typo; pass --force to record it anyway")
    return Scores(record.id, folder.append_lb(score, note))


def remove_score(project: Project, run: str, number: int) -> tuple[str, dict]:
    """Remove a run's `number`th LB score (as `kagexp show` lists them, from 1)."""
    record = find_run(project, run)
    return record.id, record.run_folder.remove_lb(number)


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


def submission(project: Project, run: str, message: str | None = None, file: str = SUBMISSION) -> Submission:
    """The `kaggle competitions submit` command for a run's submission file; the default message
    starts with the run, which `lb --fetch` matches it by when it was sent another way."""
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
    """Run the official client (an argument list, never a shell)."""
    code = kaggle_cli.call(sub.command[1:])
    if code == 0:  # the run counts as submitted (retention keeps it) before its score is known
        name = sub.file.relative_to(sub.folder).as_posix()
        RunFolder(sub.folder).record_submission(name, files.sha256(sub.file), sub.message)
    return code


# --- the ledger: Kaggle's list of submissions, matched to runs ------------------------------------


@dataclass(frozen=True)
class KaggleSubmission:
    """One row of `kaggle competitions submissions --csv`."""

    ref: str
    file: str
    date: str
    description: str
    status: str
    public: float | None
    private: float | None


@dataclass
class Fetched:
    """What `lb --fetch` did: scores stored per run, rows already stored, rows no run claims."""

    stored: list[tuple[str, KaggleSubmission]]
    known: int
    pending: list[KaggleSubmission]
    unmatched: list[KaggleSubmission]


def parse_submissions(text: str) -> list[KaggleSubmission]:
    """The client's CSV (`ref,fileName,date,description,status,publicScore,privateScore`); a line
    it prints before the table (`Using competition: …`) is skipped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "fileName" in line and "publicScore" in line), None)
    if start is None:
        return []
    rows = csv.DictReader(io.StringIO("\n".join(lines[start:])))
    return [
        KaggleSubmission(
            ref=row.get("ref") or "",
            file=row.get("fileName") or "",
            date=row.get("date") or "",
            description=row.get("description") or "",
            status=row.get("status") or "",
            public=_score(row.get("publicScore")),
            private=_score(row.get("privateScore")),
        )
        for row in rows
    ]


def _score(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_RUN_ID = re.compile(r"\b(exp[\w.-]+/run[\w.-]+)")


class Matcher:
    """Which run a Kaggle submission belongs to: the file hash in its message, the exact message
    `kagexp submit` sent, or a run named at the start of the message, in that order."""

    def __init__(self, records: list[RunRecord]) -> None:
        self.by_hash: dict[str, RunRecord] = {}
        self.by_message: dict[str, RunRecord] = {}
        self.by_id = {record.id: record for record in records}
        for record in records:
            for sent in record.run_folder.submissions():
                self.by_hash[sent["sha256"][:HASH_SHOWN]] = record
                if isinstance(sent.get("message"), str):
                    self.by_message[sent["message"]] = record

    def run_of(self, sub: KaggleSubmission) -> RunRecord | None:
        tag = re.search(re.escape(HASH_TAG) + f"([0-9a-f]{{{HASH_SHOWN}}})", sub.description)
        if tag and tag.group(1) in self.by_hash:
            return self.by_hash[tag.group(1)]
        if sub.description in self.by_message:
            return self.by_message[sub.description]
        named = _RUN_ID.match(sub.description.strip())
        return self.by_id.get(named.group(1)) if named else None


def fetch(project: Project) -> Fetched:
    """Read the competition's submissions with the official client and store each scored one in
    its run, once (by Kaggle's `ref`; again when a private score appears)."""
    competition = project.settings.get("competition")
    if not competition:
        raise ConfigError("no competition in kagexp.yml; add `competition: <slug>` (the name in the Kaggle URL)")
    subs = parse_submissions(kaggle_cli.output(["competitions", "submissions", "-c", str(competition), "--csv"]))
    matcher = Matcher(scan(project))
    result = Fetched([], 0, [], [])
    for sub in reversed(subs):  # the client lists the newest first; the ledger is oldest first
        record = matcher.run_of(sub)
        if record is None:
            result.unmatched.append(sub)
        elif sub.public is None:
            result.pending.append(sub)
        elif _already(record, sub):
            result.known += 1
        else:
            record.run_folder.append_lb(sub.public, sub.description, ref=sub.ref, private=sub.private, date=sub.date)
            result.stored.append((record.id, sub))
    return result


def _already(record: RunRecord, sub: KaggleSubmission) -> bool:
    return any(
        e.get("ref") == sub.ref and e.get("score") == sub.public and e.get("private") == sub.private
        for e in record.run_folder.lb_history()
    )
