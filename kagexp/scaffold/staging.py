"""Build in a temporary folder beside the target, then rename it into place.

A rename within one file system is atomic, so a failure or a crash never leaves half a project or
half an experiment where the user looks; the temporary folder is hidden (its name starts with a dot)
and removed on the way out. Only what this call created is ever deleted.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kagexp.errors import TargetExistsError

_counter = itertools.count()


def temp_path(folder: Path, name: str) -> Path:
    """A hidden name in `folder` that no other call (thread or process) uses: `.NAME.tmp-PID-N`."""
    return folder / f".{name}.tmp-{os.getpid()}-{next(_counter)}"


@contextmanager
def staging(dest: Path) -> Iterator[Path]:
    """A path to build `dest` at, inside a temporary sibling folder that is always removed.

    The path keeps `dest`'s name, for templates that use their folder's name. On failure the parent
    folders this call created are removed too, so nothing is left behind.
    """
    created = _make_parents(dest.parent)
    tmp = temp_path(dest.parent, dest.name)
    tmp.mkdir()
    try:
        yield tmp / dest.name
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            _rmdir_if_empty(folder)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _rmdir_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def install(built: Path, dest: Path) -> list[str]:
    """Move a finished folder into place; returns the files that were already there and were kept.

    One rename when `dest` is absent or empty; otherwise (`init --force`) a merge that adds what is
    missing and keeps every file already there.
    """
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        try:
            os.rename(built, dest)
            return []
        except OSError:
            if not dest.is_dir() or any(dest.iterdir()):
                raise TargetExistsError(f"{dest} appeared while rendering; kagexp never overwrites") from None
    return _merge_into(built, dest, "")


def _merge_into(src: Path, dst: Path, prefix: str) -> list[str]:
    kept = []
    for entry in os.scandir(src):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False) and target.is_dir() and not target.is_symlink():
            kept.extend(_merge_into(Path(entry.path), target, f"{prefix}{entry.name}/"))
        elif os.path.lexists(target):
            kept.append(prefix + entry.name)  # the user's file wins: kagexp never overwrites
        else:
            os.rename(entry.path, target)
    return sorted(kept)
