"""Data fingerprints: what the input files were when a run ran, so that a later run, a `diff` or a
`rerun` can say which inputs changed.

`inputs:` in kagexp.yml lists glob patterns under the input folder. Every matched file is
recorded by its size, modification time and sha256. Hashing a 10 GB dataset takes a minute, and
the next run would pay it again for nothing; so each sha256 is cached in the project's output
folder (`.fingerprints.json`, this module's own file) and reused while the file's size,
modification time (in ns) and inode are what they were: an edit in place moves the mtime, a file
replaced by another (a new download renamed over it) has another inode. A file edited and then
given back its old size and mtime, on the same inode, is not noticed: that takes doing on purpose.

The cache is written atomically and only when something new was hashed; two processes that hash
at once both write correct entries (the last one's file wins, and the other's entries are hashed
again next time). An output folder that cannot be written only loses the cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagexp import files

if TYPE_CHECKING:
    from kagexp.project import Project

CACHE = ".fingerprints.json"
CACHE_VERSION = 1
_ENTRY_KEYS = {"size": int, "mtime_ns": int, "inode": int, "sha256": str}


@dataclass(frozen=True)
class Inputs:
    """The input files a project fingerprints: the `inputs:` patterns, matched under `input_dir`,
    with their hashes cached in `cache_path`. Frozen and plain, so a Slurm job can take it along."""

    input_dir: Path
    patterns: tuple[str, ...]
    cache_path: Path

    @classmethod
    def of(cls, project: Project) -> Inputs | None:
        """The project's inputs, or None when kagexp.yml names none (then runs record no `inputs`)."""
        patterns = tuple(project.settings.get("inputs") or ())
        if not patterns:
            return None
        return cls(project.input_dir, patterns, project.output_root.parent / CACHE)

    def matched(self) -> list[str]:
        """The files the patterns match, as sorted `/`-separated paths relative to `input_dir`."""
        found: set[str] = set()
        if self.input_dir.is_dir():
            for pattern in self.patterns:
                found.update(p.relative_to(self.input_dir).as_posix() for p in self.input_dir.glob(pattern))
        return sorted(found)

    def fingerprints(self) -> dict[str, dict[str, Any]]:
        """Each matched regular file's `size`, `mtime` and `sha256`, hashing only what the cache
        does not vouch for; folders, FIFOs and devices a pattern matches are left out."""
        cached = read_cache(self.cache_path)
        entries, recorded = {}, {}
        for relative in self.matched():
            entry = _entry(self.input_dir / relative, cached.get(relative))
            if entry is not None:
                entries[relative] = entry
                recorded[relative] = {
                    "size": entry["size"],
                    "mtime": _iso(entry["mtime_ns"]),
                    "sha256": entry["sha256"],
                }
        if any(cached.get(relative) != entry for relative, entry in entries.items()):
            _save_cache(self.cache_path, {**cached, **entries})
        return recorded


@cache
def fingerprints_once(inputs: Inputs) -> dict[str, dict[str, Any]]:
    """`inputs.fingerprints()`, once per process, like the rest of a run's provenance."""
    return inputs.fingerprints()


def _entry(path: Path, cached: dict | None) -> dict | None:
    """The cache entry of one file: `cached` when size, mtime and inode still match, else hashed now.
    None when `path` is not a regular file (a link to one is followed: data often lives elsewhere)."""
    opened = files.open_regular(path, follow=True)
    if opened is None:
        return None
    fd, stat = opened
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
    with os.fdopen(fd, "rb") as f:
        if cached is not None and all(cached.get(k) == v for k, v in key.items()):
            return cached
        return {**key, "sha256": files.stream_sha256(f)}


def _iso(mtime_ns: int) -> str:
    return datetime.fromtimestamp(mtime_ns / 1e9).astimezone().isoformat(timespec="milliseconds")


def read_cache(path: Path) -> dict[str, dict]:
    """The cached entries by file; {} when the cache is missing, unreadable or of another shape,
    and an entry of the wrong shape is dropped (its file is hashed again)."""
    try:
        data = files.read_json(path)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return {name: entry for name, entry in data["files"].items() if _entry_shape(entry)}


def _entry_shape(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    return all(isinstance(entry.get(k), kind) and not isinstance(entry.get(k), bool) for k, kind in _ENTRY_KEYS.items())


def _save_cache(path: Path, entries: dict[str, dict]) -> None:
    """Best effort: without the cache the next run hashes again, nothing worse."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_json(path, {"version": CACHE_VERSION, "files": entries})
    except OSError:
        pass
