"""THE run-folder format: the one module that knows the names of a run folder's files, reads and
writes them, claims a folder, and keeps its status lifecycle and earlier attempts.

```
data/output/exp/exp001/            # an experiment's output folder
├── .code/<hash>/                  # one snapshot of the experiment's code per distinct content
├── .diffs/<hash>.diff             # the uncommitted changes runs ran with, once per distinct content
├── .listing/                      # the listing's cache (safe to delete), apart so that writing it leaves
│   ├── .index.json                #   the folder's time alone: finished runs, by column
│   └── generation                 #   replaced by every writer of a run's records (`mark_changed`)
├── .runs.json                     # which run each RUNS entry is (by override), the next free number
└── run002/
    ├── config_update.yml  config.yml  meta.json  summary.json  metrics.json  metrics.jsonl
    ├── log.txt  error.txt  lb.jsonl  submissions.jsonl  submission.csv …
    ├── refs.jsonl                 # who uses the run (blends, packs): retention never collects it
    ├── attempts/N/                # earlier attempts, moved here whole (but for refs.jsonl)
    └── .lock                      # the claim: an exclusive flock held while the run runs
```

`meta.json` and `summary.json` carry `format` (`FORMAT`): a later version reads older folders by
it. Every file is written atomically (temporary file, then rename); the append-only files take
one `O_APPEND` write per line (`metrics.jsonl`) or a lock (`lb.jsonl`). Reading validates shape:
a file that parses but has the wrong shape reads as `corrupt` (meta) or as absent (summary,
index: rebuilt from the other files), never as a traceback.

A run folder is claimed with an exclusive `flock` on `.lock`: the kernel drops the lock when the
process dies, however it dies, so a crashed runner never blocks the next one; the lock file
itself is never deleted (deleting it would let two processes lock two different files). Locks
need POSIX (`fcntl`); without it the read-only commands work and running says so in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kagexp import files
from kagexp.config import dump_yaml, flatten, override_hash, read_mapping
from kagexp.errors import ConfigError, InvalidNameError, RunStateError

FORMAT = 1

OVERRIDE = "config_update.yml"
CONFIG = "config.yml"
META = "meta.json"
SUMMARY = "summary.json"
METRICS = "metrics.json"
HISTORY = "metrics.jsonl"
LB = "lb.jsonl"
LOG = "log.txt"
ERROR = "error.txt"
DIFFS = ".diffs"
GIT_DIFF_CAP = 10 * 2**20  # a larger diff (a dirty binary) is not stored; its file names are
ATTEMPTS = "attempts"
LOCK = ".lock"
CODE = ".code"
LISTING = ".listing"
INDEX = ".index.json"  # in LISTING
GENERATION = "generation"  # in LISTING
RUNS_RECORD = ".runs.json"
REFS = "refs.jsonl"
SUBMISSIONS = "submissions.jsonl"
# Folds, OOF and test predictions (kagexp.predictions, kagexp.blend): each finished fold in `folds/`
# (`fold3.npz` arrays, then `fold3.json`, its record, written last: the fold is finished when that
# exists), the assembled predictions beside the records, and blends as run folders of their own.
FOLDS = "folds"
OOF = "oof.npz"
TEST = "test.npz"
PREDICTIONS = {"oof": OOF, "test": TEST}
SUBMISSION = "submission.csv"
BLENDS = "blend"  # data/output/blend/<name>/, beside data/output/exp/
# Ship to Kaggle (kagexp.pack, kagexp.rehearse): what a pack copies of a run beside its artifacts,
# and each local rehearsal of a packed run (wall time, projection), one line per rehearsal.
PACKED_RECORDS = (OVERRIDE, CONFIG, META)
REHEARSALS = "rehearsals.jsonl"
# A run's own small records, in its folder and in each `attempts/N/`: `gc` never moves them; every
# other file is an artifact the run saved (models, predictions, the submission), which it may.
RECORDS = frozenset(
    {OVERRIDE, CONFIG, META, SUMMARY, METRICS, HISTORY, LB, LOG, ERROR, LOCK, REFS, SUBMISSIONS, REHEARSALS}
)

_HEX = re.compile(r"[0-9a-f]{8,64}")
FINISHED = ("done", "failed", "interrupted", "partial")  # partial: done, with folds still missing
RECORDED = ("running", "stale", *FINISHED)
# what `summary.json` keeps of `meta.json`, besides the status
SUMMARY_META = ("attempt", "started", "ended", "duration", "code_hash", "seed", "error")


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


# --- portable locking ------------------------------------------------------------------


def _fcntl():
    """`fcntl`, or None where it does not exist (Windows): there runs cannot be claimed."""
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def require_locks() -> None:
    """Running needs claims; say so in one line before anything is written where they cannot be had."""
    if _fcntl() is None:
        raise RunStateError(
            "running experiments needs a POSIX system (Linux, macOS; on Windows, WSL): "
            "run folders are claimed with flock; listing and comparing work everywhere"
        )


def _flock(fd: int, exclusive: bool) -> bool:
    """A non-blocking flock; whether it was taken."""
    require_locks()
    fcntl = _fcntl()
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


@contextmanager
def _locked(fd: int) -> Iterator[None]:
    """Hold an exclusive lock on an open file while appending to it (waits for other writers)."""
    fcntl = _fcntl()
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)


# --- reading with shape checks ---------------------------------------------------------


def _read_dict(path: str | Path) -> dict | None:
    """A JSON object; None when the file is absent, unreadable, not JSON or not an object."""
    try:
        data = files.read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of a JSON-lines file; a line cut short by a crash, or not an object, is skipped."""
    try:
        lines = [line for line in (files.read_regular(path) or b"").splitlines() if line.strip()]
    except OSError:
        return []
    try:  # the whole file in one parse (the dashboard reads every run's); a bad line: line by line
        entries = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        entries = None
    if entries is not None and len(entries) == len(lines) and all(type(entry) is dict for entry in entries):
        return entries
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _summary_shape(data: dict | None) -> dict | None:
    """A summary as written by `write_summary`, or None (then the listing reads the other files)."""
    if data is None or data.get("status") not in RECORDED:
        return None
    if not isinstance(data.get("config"), dict) or not isinstance(data.get("metrics"), dict):
        return None
    if not all(key in data for key in SUMMARY_META):
        return None
    lb = data.get("lb")
    if lb is not None and (isinstance(lb, bool) or not isinstance(lb, (int, float))):
        return None
    return data


def _is_score(entry: dict) -> bool:
    score = entry.get("score")
    return isinstance(score, (int, float)) and not isinstance(score, bool)


# --- one run folder --------------------------------------------------------------------


@dataclass(frozen=True)
class RunFolder:
    """A run's folder: every read and write of its files goes through here."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def log_path(self) -> Path:
        return self.path / LOG

    @property
    def error_path(self) -> Path:
        return self.path / ERROR

    @property
    def exp_out(self) -> Path:
        """The output folder of the experiment (or of the blends) this run, or attempt of a run, is in."""
        parent = self.path.parent
        return parent.parent.parent if parent.name == ATTEMPTS else parent

    def _changed(self) -> None:
        """After a write to a run that may be finished and cached: listings must read it again.
        Called by the writers that touch finished runs (LB scores, submissions, references,
        rehearsals, a new attempt, `settle`); a run's own writes while it runs need not (a
        marker write each would cost bookkeeping time): its new attempt marked the experiment
        when it began, and a listing never caches a run not finished or changed in the last 2 s."""
        mark_changed(self.exp_out)

    def is_run(self) -> bool:
        """Whether the folder holds a run: its meta, a live claim, or (legacy folders) only its override."""
        if self.name.startswith(".") or not self.path.is_dir():
            return False
        if (self.path / META).exists() or (self.path / OVERRIDE).exists():
            return True
        return self._claimed()

    def _claimed(self) -> bool:
        """Claimed by a live process (known only with POSIX locks)."""
        return _fcntl() is not None and (self.path / LOCK).exists() and self.is_locked()

    def check_layout(self) -> None:
        """Before a run starts: kagexp's own names in the folder must be what kagexp makes of them."""
        for name, kind, is_kind in ((ATTEMPTS, "folder", os.path.isdir), (LOCK, "file", os.path.isfile)):
            path = self.path / name
            if os.path.lexists(path) and (os.path.islink(path) or not is_kind(path)):
                raise RunStateError(f"{_shown(path)}: must be a {kind} (kagexp keeps its {name} there); move it away")

    # -- meta and status

    def meta(self) -> dict | None:
        """`meta.json`; None when absent, `{"status": "corrupt"}` when unreadable or of the wrong shape."""
        path = os.path.join(self.path, META)  # text: a Path costs more than the read, 10,000 times
        if not os.path.lexists(path):
            return None
        meta = _read_dict(path)
        if meta is None or not isinstance(meta.get("status"), str):
            return {"status": "corrupt"}
        return meta

    def status(self, meta: dict | None = None) -> str:
        """`pending`, `corrupt`, the recorded status, or `stale` for a `running` run nobody holds;
        a folder claimed a moment ago, before its meta is written, is `running` already."""
        meta = self.meta() if meta is None else meta
        if meta is None:
            return "running" if self._claimed() else "pending"
        status = meta.get("status")
        if status not in RECORDED:
            return "corrupt"
        if status == "running" and not self.is_locked():
            return "stale"
        return status

    def is_locked(self) -> bool:
        """Whether a live process holds the run's claim (unknown without POSIX locks: assume yes)."""
        if _fcntl() is None:
            return True
        try:
            fd = os.open(self.path / LOCK, os.O_RDONLY)
        except OSError:
            return False
        try:
            return not _flock(fd, exclusive=False)
        finally:
            os.close(fd)

    def write_meta(self, meta: dict) -> None:
        files.write_json(self.path / META, {"format": FORMAT, **meta})

    def settle(self, status: str, message: str) -> bool:
        """Record the end of a run whose process died while `running`; whether it did.

        The claim is taken first, so a run that another process picked up meanwhile is left alone.
        """
        claim = Claim(self)
        if not claim.acquire(patience=1.0):
            return False
        try:
            meta = self.meta()
            if not meta or meta.get("status") != "running":
                return False
            meta.update(status=status, ended=now_iso(), error=message)
            self.write_meta(meta)
            self._changed()
            return True
        finally:
            claim.release()

    # -- config

    def write_override(self, text: str) -> None:
        files.write_text(self.path / OVERRIDE, text)

    def write_config(self, merged: dict) -> None:
        files.write_text(self.path / CONFIG, dump_yaml(merged))

    def override_text(self) -> str:
        return _read_text(os.path.join(self.path, OVERRIDE))

    def config_text(self) -> str:
        return _read_text(self.path / CONFIG)

    def merged_config(self) -> dict:
        """The merged config the run saw, exactly as recorded, for running it again: a ConfigError
        naming the file when it is missing or unreadable (a rerun must not guess)."""
        return read_mapping(self.path / CONFIG, _shown(self.path / CONFIG))

    def override_hash(self) -> str | None:
        """Which override this run is: as its meta recorded it, else (a folder older than that, or
        whose meta is damaged) the hash of its `config_update.yml`; None when neither can tell."""
        recorded = (self.meta() or {}).get("override_hash")
        if isinstance(recorded, str):
            return recorded
        if not (self.path / OVERRIDE).is_file():
            return None
        try:
            return override_hash(read_mapping(self.path / OVERRIDE))
        except ConfigError:
            return None

    def config(self) -> dict:
        """The merged config the run saw; for a legacy folder its override; {} when unreadable."""
        for name in (CONFIG, OVERRIDE):
            path = self.path / name
            if path.is_file():
                try:
                    return read_mapping(path)
                except ConfigError:
                    return {}
        return {}

    # -- metrics

    def write_metrics(self, metrics: dict) -> None:
        files.write_json(self.path / METRICS, metrics)

    def open_history(self) -> int:
        """A file descriptor to append `ctx.log` lines to, one `write` per line (see `append_line`)."""
        return os.open(self.path / HISTORY, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)

    def history(self) -> list[dict]:
        """Every `ctx.log` call, oldest first."""
        return read_jsonl(os.path.join(self.path, HISTORY))

    def metrics(self) -> dict:
        """The last value of every metric: `metrics.json`, else what `metrics.jsonl` has so far."""
        metrics = _read_dict(self.path / METRICS)
        if metrics:
            return metrics
        last: dict[str, Any] = {}
        for entry in self.history():
            last.update((k, v) for k, v in entry.items() if not k.startswith("_"))
        return last

    # -- summary: what listings read

    def write_summary(self, meta: dict, merged: dict, metrics: dict) -> None:
        """Written when the run ends, before its final status: a `done` run always has one."""
        data = {
            "format": FORMAT,
            "status": meta["status"],
            **{key: meta.get(key) for key in SUMMARY_META},
            "config": flatten(merged),
            "metrics": metrics,
            "lb": self.latest_lb(),
        }
        files.write_json(self.path / SUMMARY, data)

    def summary(self) -> dict | None:
        """The summary when it has the right shape, else None (read the run the slow way)."""
        return _summary_shape(_read_dict(os.path.join(self.path, SUMMARY)))

    # -- leaderboard

    def append_lb(self, score: float, note: str | None, **extra: Any) -> list[dict]:
        """Append a leaderboard score under a lock, so concurrent callers all land; the history after.
        `extra`: what Kaggle said besides (its submission `ref`, the `private` score).

        `summary.json` gets the latest score under the same lock, so listings see it at once.
        """
        entry = json.dumps({"score": score, "note": note, **extra, "time": now_iso()}, ensure_ascii=False)
        with _appending(self.path / LB, "the score") as fd:
            os.write(fd, (entry + "\n").encode())
            history = self.lb_history()
            self._summarize_lb(history)
        self._changed()
        return history

    def remove_lb(self, number: int) -> dict:
        """Remove the `number`th score (from 1, oldest first), under the same lock; the entry removed."""
        with _appending(self.path / LB, "the score"):
            history = self.lb_history()
            if not 1 <= number <= len(history):
                count = len(history)
                scores = "no LB score" if count == 0 else "1 LB score" if count == 1 else f"{count} LB scores"
                run = f"{self.path.parent.name}/{self.name}"
                raise RunStateError(f"{run} has {scores}; there is no number {number} (kagexp show {run} lists them)")
            removed = history.pop(number - 1)
            files.write_text(self.path / LB, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in history))
            self._summarize_lb(history)
        self._changed()
        return removed

    def _summarize_lb(self, history: list[dict]) -> None:
        summary = self.summary()
        if summary is not None:
            files.write_json(self.path / SUMMARY, {**summary, "lb": history[-1]["score"] if history else None})

    def lb_history(self) -> list[dict]:
        """Every leaderboard score recorded for the run, oldest first."""
        return [e for e in read_jsonl(self.path / LB) if _is_score(e)]

    def latest_lb(self) -> float | None:
        history = self.lb_history()
        return history[-1]["score"] if history else None

    def record_submission(self, file: str, sha256: str, message: str) -> None:
        """A submission sent to Kaggle (its file, hash and message), so the run counts as submitted
        before its score is known."""
        with _appending(self.path / SUBMISSIONS, "the submission") as fd:
            append_line(fd, {"file": file, "sha256": sha256, "message": message, "time": now_iso()})
        self._changed()

    def record_rehearsal(self, entry: dict) -> None:
        """A local rehearsal of the packed run (`kagexp rehearse`): its wall time and projection."""
        with _appending(self.path / REHEARSALS, "the rehearsal") as fd:
            append_line(fd, {**entry, "time": now_iso()})
        self._changed()

    def rehearsals(self) -> list[dict]:
        return [e for e in read_jsonl(self.path / REHEARSALS) if isinstance(e.get("seconds"), (int, float))]

    def submissions(self) -> list[dict]:
        return [e for e in read_jsonl(self.path / SUBMISSIONS) if isinstance(e.get("sha256"), str)]

    def was_submitted(self) -> bool:
        """Sent to Kaggle, or scored on its leaderboard (a score recorded by hand counts)."""
        return bool(self.lb_history() or self.submissions())

    # -- references: THE answer to "does anything use this run?"

    def add_ref(self, by: str, kind: str) -> None:
        """Record that `by` (a blend, a pack: `kind`) uses this run's files; `gc` then leaves them.

        The mark is kept in the used run, not in its user: it travels with the run (rm, restore),
        survives its user being trashed (a blend in the trash can still be restored), and asking
        reads one small file instead of every blend and pack of the project.
        """
        with _appending(self.path / REFS, "the reference") as fd:
            append_line(fd, {"by": by, "kind": kind, "time": now_iso()})
        self._changed()

    def refs(self) -> list[dict]:
        """Who uses this run, oldest first (`by`, `kind`, `time`)."""
        return [e for e in read_jsonl(self.path / REFS) if isinstance(e.get("by"), str)]

    # -- folds and predictions (their arrays are kagexp.predictions' bytes; numpy stays out of here)

    def _fold_file(self, fold: int, suffix: str) -> Path:
        return self.path / FOLDS / f"fold{int(fold)}{suffix}"

    def write_fold(self, fold: int, arrays: bytes | None, record: dict) -> None:
        """A finished fold: its arrays, then its record, each atomically; the record makes it finished."""
        (self.path / FOLDS).mkdir(exist_ok=True)
        if arrays is not None:
            files.write_bytes(self._fold_file(fold, ".npz"), arrays)
        files.write_json(self._fold_file(fold, ".json"), {**record, "fold": int(fold)})

    def fold_records(self) -> dict[int, dict]:
        """The finished folds' records by fold number; a record of the wrong shape is not finished."""
        found = {}
        folder = self.path / FOLDS
        names = os.listdir(folder) if folder.is_dir() else []
        for name in names:
            match = _FOLD_RECORD.fullmatch(name)
            record = _read_dict(folder / name) if match else None
            if record is not None and record.get("fold") == int(match.group(1)):
                found[int(match.group(1))] = record
        return dict(sorted(found.items()))

    def fold_arrays(self, fold: int) -> Path | None:
        path = self._fold_file(fold, ".npz")
        return path if path.is_file() else None

    def carry_folds(self, earlier: RunFolder) -> list[int]:
        """Give this attempt the finished folds of an earlier one (hard links, else copies): the
        earlier attempt stays whole, and the new one computes only the folds still missing."""
        records = earlier.fold_records()
        if records:
            (self.path / FOLDS).mkdir(exist_ok=True)
        for fold in records:
            for suffix in (".npz", ".json"):  # the record last, as when it was written
                source = earlier._fold_file(fold, suffix)
                if source.is_file():
                    _link_or_copy(source, self._fold_file(fold, suffix))
        return list(records)

    def write_predictions(self, kind: str, arrays: bytes) -> None:
        """`oof` or `test` predictions, atomically."""
        files.write_bytes(self.path / PREDICTIONS[kind], arrays)

    def predictions(self, kind: str) -> Path | None:
        """The file of the run's `oof` or `test` predictions, when it saved them."""
        path = self.path / PREDICTIONS[kind]
        return path if path.is_file() else None

    def write_submission(self, text: str) -> None:
        files.write_text(self.path / SUBMISSION, text)

    def submission(self) -> Path | None:
        path = self.path / SUBMISSION
        return path if path.is_file() else None

    # -- other files

    def write_error(self, text: str) -> None:
        files.write_text(self.path / ERROR, text)

    def artifact(self, name: str) -> Path:
        """A path for any file the run saves; it must stay inside the run folder."""
        root = self.path.resolve()
        path = (self.path / name).resolve()
        if not path.is_relative_to(root) or path == root:
            raise InvalidNameError(f"artifact path {name!r} must stay inside the run folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def artifacts(self) -> list[tuple[str, int]]:
        """Every file the run saved beyond its own records (relative path, size), earlier attempts'
        included: what retention may move away. A link is one file (never followed); hidden files
        (the claim, temporary files) stay."""
        found = []
        for folder, dirs, names in os.walk(self.path):
            relative = Path(folder).relative_to(self.path)
            links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in links]
            records = RECORDS if _holds_records(relative) else frozenset()
            for name in (*names, *links):
                if name.startswith(".") or name in records:
                    continue
                try:
                    found.append(((relative / name).as_posix(), os.lstat(os.path.join(folder, name)).st_size))
                except FileNotFoundError:  # gone meanwhile
                    continue
        return sorted(found)

    def saved_files(self) -> list[str]:
        """The files this attempt saved (relative paths), without earlier attempts': what a pack ships."""
        return [name for name, _ in self.artifacts() if not name.startswith(f"{ATTEMPTS}/")]

    def listed_files(self) -> list[tuple[str, int]]:
        """The run's files (relative path, size), without kagexp's hidden ones. One scandir per
        folder: the dashboard lists every run's files, so this is on its path at 10,000 runs."""
        found: list[tuple[str, int]] = []
        _scan_files(str(self.path), "", found)
        return sorted(found)

    # -- attempts

    def attempt(self, number: int) -> RunFolder:
        """An earlier attempt: `archive_attempt` moved attempt N to `attempts/N/`."""
        return RunFolder(self.path / ATTEMPTS / str(number))

    def attempt_numbers(self) -> list[str]:
        """The earlier attempts kept under `attempts/`, as their folder names (`1`, `2`…)."""
        attempts_dir = self.path / ATTEMPTS
        if not attempts_dir.is_dir():
            return []
        return [p.name for p in attempts_dir.iterdir() if p.name.isdigit() and RunFolder(p).is_run()]

    def archive_attempt(self) -> int:
        """Move an earlier attempt's files into `attempts/N/`; return the number of this attempt."""
        stay = (LOCK, ATTEMPTS, REFS)  # the claim, the earlier attempts, who uses the run (any attempt of it)
        previous = [p for p in self.path.iterdir() if p.name not in stay]
        attempts_dir = self.path / ATTEMPTS
        numbers = [int(p.name) for p in attempts_dir.iterdir() if p.name.isdigit()] if attempts_dir.is_dir() else []
        number = max(numbers, default=0) + 1
        if not previous:
            return number
        target = attempts_dir / str(number)
        target.mkdir(parents=True)
        for path in previous:
            os.rename(path, target / path.name)
        self._changed()
        archived = RunFolder(target)
        meta = archived.meta()
        if meta and meta.get("status") == "running":  # it died: we hold its claim, so say so
            archived.write_meta({**meta, "status": "stale"})
        return number + 1


_FOLD_RECORD = re.compile(r"fold(\d{1,6})\.json")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        files.copy_file(source, target)


def blend_root(output_root: Path) -> Path:
    """Where blends live: `data/output/blend/` beside the experiments' `data/output/exp/`."""
    return output_root.parent / BLENDS


def _scan_files(folder: str, prefix: str, found: list[tuple[str, int]]) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:  # gone or unreadable meanwhile
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                _scan_files(entry.path, f"{prefix}{entry.name}/", found)
            elif entry.is_file():
                found.append((prefix + entry.name, entry.stat().st_size))
        except OSError:
            continue


def _holds_records(relative: Path) -> bool:
    """The run folder itself and each earlier attempt's folder hold a run's records."""
    parts = relative.parts
    return not parts or (len(parts) == 2 and parts[0] == ATTEMPTS and parts[1].isdigit())


@contextmanager
def _appending(path: Path, what: str) -> Iterator[int]:
    """A descriptor to append lines to `path` under a lock, so concurrent writers all land. A file
    replaced while we waited for its lock (`remove_lb` rewrites it) is opened again."""
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise RunStateError(f"{path}: cannot record {what}: {exc.strerror or exc}") from None
        try:
            with _locked(fd):
                if _same_file(fd, path):
                    yield fd
                    return
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _shown(path: Path) -> str:
    """A path as the user will look for it: relative to where they are, when it is below."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _read_text(path: str | Path) -> str:
    try:
        return (files.read_regular(path) or b"").decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def append_line(fd: int, entry: dict) -> None:
    """One JSON line in one `write` call on an `O_APPEND` descriptor: concurrent lines never interleave."""
    os.write(fd, (json.dumps(entry, default=str) + "\n").encode())


def run_function(meta: dict) -> str | None:
    """The name of the function a run ran (`meta.json`'s `function`, a name in its exp.py), when
    recorded: runs recorded before kagexp kept it, and lambdas, have none."""
    name = meta.get("function")
    return name if isinstance(name, str) and name.isidentifier() else None


def holder_of(meta: dict | None) -> str:
    meta = meta or {}
    return f"running in pid {meta.get('pid', '?')} on {meta.get('host', '?')}"


class Claim:
    """An exclusive claim on a run folder, held as long as this object is open."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.fd: int | None = None

    def acquire(self, patience: float = 0.2) -> bool:
        """Try for a moment (a reader's probe holds the lock for microseconds), then give up."""
        try:
            self.folder.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder.path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunStateError(f"{self.folder.path}: cannot claim the run folder: {exc.strerror or exc}") from None
        deadline = time.monotonic() + patience
        try:
            while not _flock(fd, exclusive=True):
                if time.monotonic() > deadline:
                    os.close(fd)
                    return False
                time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --- an experiment's output folder -----------------------------------------------------


def run_folders(exp_out: Path) -> list[os.DirEntry]:
    """The entries of an experiment's output folder that may be runs, in name order."""
    with os.scandir(exp_out) as entries:
        return sorted((e for e in entries if not e.name.startswith(".") and e.is_dir()), key=lambda e: e.name)


def code_root(exp_out: Path) -> Path:
    """Where an experiment's code snapshots live, one folder per code hash."""
    return exp_out / CODE


def code_dir(exp_out: Path, code_hash: Any) -> Path | None:
    """The snapshot of the code a run ran, when it is there; a hash that is not hex names nothing."""
    if not isinstance(code_hash, str) or not _HEX.fullmatch(code_hash):
        return None
    path = exp_out / CODE / code_hash
    return path if path.is_dir() and not path.is_symlink() else None


_stored_diffs: dict[tuple[Path, str], str] = {}


def store_git_diff(exp_out: Path, diff: str, cap: int = GIT_DIFF_CAP) -> dict[str, Any]:
    """Keep the uncommitted changes once per distinct content (runs of one process share one file);
    what goes into the run's `git` record: `diff`, the file relative to `exp_out`, or a note."""
    size = len(diff.encode("utf-8", "surrogateescape"))
    if size > cap:
        return {"diff": None, "diff_note": f"not stored: {size / 2**20:.1f} MB, over the {cap / 2**20:.0f} MB cap"}
    key = (exp_out, diff)  # a str caches its hash: asking again costs nothing
    if key not in _stored_diffs:
        name = hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest()[:16] + ".diff"
        path = exp_out / DIFFS / name
        if not path.is_file():
            path.parent.mkdir(exist_ok=True)
            files.write_text(path, diff)
        _stored_diffs[key] = f"{DIFFS}/{name}"
    return {"diff": _stored_diffs[key]}


def check_code_dir(exp_out: Path, code_hash: str) -> None:
    """Before runs start: where their snapshot goes must be a folder, or nothing yet."""
    path = exp_out / CODE / code_hash
    for where in (exp_out / CODE, path):
        if os.path.lexists(where) and (where.is_symlink() or not where.is_dir()):
            raise RunStateError(f"{_shown(where)}: must be a folder (kagexp keeps code snapshots there); move it away")


INDEX_VERSION = 4

_NUMBERED = re.compile(r"run(\d+)")


@dataclass
class RunsRecord:
    """What an experiment's RUNS were when it last ran: `names` maps override hashes to run names
    (a list entry is the run whose override it is, wherever it stands), `current` the runs its
    RUNS held, `next` the first number never used (numbers are never reused)."""

    names: dict[str, str]
    current: list[str]
    next: int

    def reserve(self, names: list[str]) -> None:
        """Keep the numbers of `names` (runs in the trash) from being given again: a new run with a
        trashed run's name would block its restore, even when `.runs.json` went missing."""
        numbers = [int(match.group(1)) for name in names if (match := _NUMBERED.fullmatch(name))]
        self.next = max([self.next, *(number + 1 for number in numbers)])


def runs_in_record(exp_out: Path) -> set[str] | None:
    """The runs an experiment's RUNS held when it last ran (None: never recorded), for listings:
    one small file, no run folder read."""
    data = _read_dict(os.path.join(exp_out, RUNS_RECORD))  # text: a Path costs more than the read, 1,000 times
    current = data.get("current") if data else None
    return {n for n in current if isinstance(n, str)} if isinstance(current, list) else None


def read_runs_record(exp_out: Path) -> RunsRecord:
    """The record, completed from the run folders themselves (their meta is the authority)."""
    data = _read_dict(exp_out / RUNS_RECORD) or {}
    names = data.get("names") if isinstance(data.get("names"), dict) else {}
    names = {h: n for h, n in names.items() if isinstance(n, str) and _NUMBERED.fullmatch(n)}
    current = data.get("current") if isinstance(data.get("current"), list) else []
    current = [n for n in current if isinstance(n, str)]
    numbers = [int(m.group(1)) for n in names.values() if (m := _NUMBERED.fullmatch(n))]
    if exp_out.is_dir():
        for entry in run_folders(exp_out):
            if match := _NUMBERED.fullmatch(entry.name):
                numbers.append(int(match.group(1)))
                digest = RunFolder(Path(entry.path)).override_hash()
                if digest:
                    names[digest] = entry.name
    recorded = data.get("next")
    floor = recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else 1
    return RunsRecord(names, current, max([floor, *(n + 1 for n in numbers)]))


def write_runs_record(exp_out: Path, record: RunsRecord) -> None:
    data = {"format": FORMAT, "next": record.next, "current": record.current, "names": record.names}
    files.write_json(exp_out / RUNS_RECORD, data)


_SAME = b'{"same": '
_PLAIN = b"0123456789+-.eE, nulltrfasNIiy"  # the bytes of numbers, true, false, null, NaN, Infinity and ", "
SECTIONS = ("run", "meta", "config", "metrics")  # `run`: status and lb; the others: a row's dicts
ABSENT = object()  # a run's row lacks the key (not the same as null)


class IndexTable:
    """An experiment's listing cache, read lazily: the run names at once, their folder times and
    each column (`metrics`/`cv`, `config`/`lr`, …) only when first asked for. A listing sorted by
    one metric over 100,000 runs parses that column, not the 2.5 million values of every row.

    The file (`LISTING/INDEX`, JSON lines despite its name) is one JSON header line `{"version",
    "runs", "stamp", "columns"}`, each column being `[section, key, absent run positions, CRC-32
    of its line]`, then
    the folder times of the runs (ns), then one line per column, in that order: its values in run
    order, or `{"same": value}` for one value shared by all. `stamp` is the output folder's
    `folder_stamp` when the index was built and held every folder in it, all settled; else null.
    """

    def __init__(self, path: str, header: dict, mtimes: bytes, lines: dict[tuple[str, str], tuple]):
        self.path, self.names, self.stamp = path, header["runs"], header["stamp"]
        self._mtimes, self._lines = mtimes, lines
        self._columns: dict[tuple[str, str], list] = {}
        self._rows: dict[str, list[dict]] = {}
        self._keys: dict[str, list[str]] = {}

    @property
    def mtimes(self) -> list:
        """Each run folder's time when cached; None for all when the line is damaged (all read again)."""
        try:
            found = json.loads(self._mtimes)
        except ValueError:
            found = None
        return found if isinstance(found, list) and len(found) == len(self.names) else [None] * len(self.names)

    def keys(self, section: str) -> list[str]:
        found = self._keys.get(section)
        if found is None:
            found = self._keys[section] = [key for sec, key in self._lines if sec == section]
        return found

    def column(self, section: str, key: str) -> list:
        """The key's value for every run, ABSENT where a run lacks it (everywhere for a key none has)."""
        found = self._columns.get((section, key))
        if found is None:
            known = (section, key) in self._lines
            found = self._columns[(section, key)] = self._parse(section, key) if known else [ABSENT] * len(self.names)
        return found

    def value(self, section: str, key: str, position: int) -> Any:
        return self.column(section, key)[position]

    def present(self, section: str, key: str) -> bool:
        """Whether some run has the key, from the header alone: no column parsed."""
        line = self._lines.get((section, key))
        return line is not None and len(line[0]) < len(self.names)

    def texts(self, section: str, key: str) -> list[str] | None:
        """The column as JSON texts ("null" where absent) cut straight out of the file when it is
        one value shared by all runs, or numbers, booleans and nulls only; None otherwise.
        `save_index` wrote them with `json.dumps` (the line's CRC says it is still that line), so
        they are the texts the parsed values would encode to (`tables.json_column`): a JSON
        listing of 100,000 runs skips both the parse and the encoding, most of its time."""
        absent, body, crc = self._lines.get((section, key), ((), b"", None))
        count = len(self.names)
        if zlib.crc32(body) != crc or not all(type(i) is int and 0 <= i < count for i in absent):
            return None
        if body.startswith(_SAME):
            texts = [body[len(_SAME) : -1].decode()] * count
        elif body[:1] == b"[" and not body[1:-1].translate(None, _PLAIN):
            texts = body[1:-1].decode("ascii").split(", ") if count else []
        else:
            return None
        if len(texts) != count:
            return None
        for position in absent:
            texts[position] = "null"
        return texts

    def section(self, section: str, position: int) -> dict:
        """One run's dict for a section (its config, metrics or meta), in the column order; built
        for every run at once, column by column, when one run's is first asked for."""
        rows = self._rows.get(section)
        if rows is None:
            keys = self.keys(section)
            columns = [self.column(section, key) for key in keys]
            rows = [{k: v for k, v in zip(keys, values) if v is not ABSENT} for values in zip(*columns)]
            rows = self._rows[section] = rows if columns else [{} for _ in self.names]
        return rows[position]

    def _parse(self, section: str, key: str) -> list:
        absent, body, _ = self._lines[(section, key)]
        count = len(self.names)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not all(type(i) is int and 0 <= i < count for i in absent):
            values = None
        elif isinstance(data, dict) and set(data) == {"same"}:
            values = [data["same"]] * count
        elif isinstance(data, list) and len(data) == count:
            values = data
        else:
            values = None
        if values is None:  # damaged (by hand: kagexp writes it whole): absent in this listing, rebuilt by the next
            self._discard()
            return [ABSENT] * count
        for position in absent:
            values[position] = ABSENT
        return values

    def _discard(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def index_path(exp_out: Path) -> Path:
    return exp_out / LISTING / INDEX


def load_index(exp_out: Path) -> IndexTable | None:
    """The listing cache (see `IndexTable`); None when missing, of another version or damaged."""
    path = os.path.join(exp_out, LISTING, INDEX)  # text: a Path costs more than the read, 1,000 times
    try:
        data = files.read_regular(path)
    except OSError:
        return None
    head, *bodies = (data or b"").split(b"\n")  # bytes: the lines never parsed are never decoded
    try:
        header = json.loads(head)
    except ValueError:
        return None
    if not _header_shape(header) or bodies[-1:] != [b""] or len(bodies) != len(header["columns"]) + 2:
        return None
    lines = {
        (section, key): (absent, body, crc) for (section, key, absent, crc), body in zip(header["columns"], bodies[1:])
    }
    if len(lines) != len(header["columns"]) or not all(("run", key) in lines for key in ("status", "lb")):
        return None
    return IndexTable(path, header, bodies[0], lines)


def _header_shape(header: Any) -> bool:
    """Lists where lists belong (a name that is not text matches no run folder and is never used:
    not checked one by one, 100,000 times; a column's absent positions are checked when it is read)."""
    if not isinstance(header, dict) or header.get("version") != INDEX_VERSION:
        return False
    names, columns, stamp = header.get("runs"), header.get("columns"), header.get("stamp")
    return (
        isinstance(names, list)
        and isinstance(columns, list)
        and (stamp is None or _stamp_shape(stamp))
        and all(type(c) is list and len(c) == 4 and c[0] in SECTIONS and type(c[1]) is str for c in columns)
        and all(type(c[2]) is list for c in columns)
    )


def _stamp_shape(stamp: Any) -> bool:
    return isinstance(stamp, list) and len(stamp) == 2 and type(stamp[0]) is int and isinstance(stamp[1], str)


def save_index(exp_out: Path, runs: dict, stamp: list | None = None) -> None:
    """Write the cache of `runs` (name → [mtime_ns, row], a row being `status`, `lb`, and the
    `meta`, `config` and `metrics` dicts), with the `stamp` of `IndexTable`. Best effort: a
    read-only output folder still lists, only slower."""
    names = list(runs)
    rows = [runs[name][1] for name in names]
    columns = [("run", "status", [row["status"] for row in rows]), ("run", "lb", [row["lb"] for row in rows])]
    for section in SECTIONS[1:]:
        for key in dict.fromkeys(key for row in rows for key in row[section]):
            columns.append((section, key, [row[section].get(key, ABSENT) for row in rows]))
    bodies = [files.to_json(_column_body(values)).encode() for _, _, values in columns]
    about = [
        [section, key, [i for i, v in enumerate(values) if v is ABSENT], zlib.crc32(body)]
        for (section, key, values), body in zip(columns, bodies)
    ]
    header = {"version": INDEX_VERSION, "runs": names, "stamp": stamp, "columns": about}
    lines = [files.to_json(header).encode(), files.to_json([runs[name][0] for name in names]).encode(), *bodies]
    try:
        listing_dir(exp_out)
        files.write_bytes(index_path(exp_out), b"\n".join(lines) + b"\n")
        (exp_out / INDEX).unlink(missing_ok=True)  # where index versions 1 and 2 were kept
    except OSError:
        pass


def _column_body(values: list) -> Any:
    """The values (null where absent), or `{"same": value}` when every run has the same one."""
    present = [None if value is ABSENT else value for value in values]
    first = present[0] if present else None
    shared = bool(present) and all(type(v) is type(first) and v == first for v in present)
    return {"same": first} if shared else present


def listing_dir(exp_out: Path) -> Path:
    """The listing's own folder, made when missing (making it moves the output folder's time: once)."""
    folder = exp_out / LISTING
    folder.mkdir(exist_ok=True)
    return folder


def mark_changed(exp_out: Path) -> None:
    """A new generation for the output folder, after a write of a run's records: an index built
    against an earlier one is checked run by run again (see `folder_stamp`)."""
    files.write_text(listing_dir(exp_out) / GENERATION, os.urandom(8).hex())


def folder_stamp(exp_out: Path) -> list | None:
    """What an index is built against: the output folder's time, which moves when a run folder is
    made, removed or renamed in it, and its generation (`mark_changed`), which moves when a run's
    records are written. Read before the run folders are; None when the folder cannot be read."""
    try:
        mtime = os.stat(exp_out).st_mtime_ns
        generation = files.read_regular(os.path.join(exp_out, LISTING, GENERATION)) or b""
    except OSError:
        return None
    return [mtime, generation.decode("ascii", "replace")]
