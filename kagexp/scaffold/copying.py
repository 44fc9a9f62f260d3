"""The wholesale copy behind `kagexp new`: as fast as `cp -r`, minus caches and kagexp's own files.

With hundreds of small files, per-file overhead is what makes a copy slow: one `lstat` per file and
kernel-side copies, the same system calls as `cp`, and no more.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kagexp.provenance import is_code, is_code_dir

LARGE_FILE = 10 * 2**20  # files above this are copied, but reported so the CLI can warn


@dataclass
class CopyResult:
    """How many files (and symlinks) were copied, and those over `LARGE_FILE` as (path, size)."""

    copied: int = 0
    large_files: list[tuple[str, int]] = field(default_factory=list)


def copy_experiment(src: Path, dst: Path, *, exclude: Sequence[str] = ()) -> CopyResult:
    """Copy `src` into the new folder `dst`, minus what `provenance.is_code` leaves out; symlinks stay links."""
    dst.mkdir()
    result = CopyResult()
    stack = [("", src, dst)]
    while stack:
        prefix, here, there = stack.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                relative = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if is_code_dir(relative, exclude):
                        os.mkdir(there / entry.name)
                        stack.append((relative + "/", Path(entry.path), there / entry.name))
                elif is_code(relative, exclude) and (entry.is_file() or entry.is_symlink()):
                    _copy_entry(entry, there / entry.name, relative, result)
                # anything else is excluded, or a pipe, socket or device
    result.large_files.sort()
    return result


def _copy_entry(entry: os.DirEntry, dst: Path, relative: str, result: CopyResult) -> None:
    if entry.is_symlink():
        os.symlink(os.readlink(entry.path), dst)
    else:
        size = _copy_file(entry, dst)
        if size > LARGE_FILE:
            result.large_files.append((relative, size))
    result.copied += 1


def _copy_file(entry: os.DirEntry, dst: Path) -> int:
    """Copy one file with its permission bits, as `cp` does, in the kernel; returns its size."""
    stat = entry.stat(follow_symlinks=False)
    source = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.st_mode & 0o777)
        try:
            _copy_fd(source, target, stat.st_size)
        finally:
            os.close(target)
    finally:
        os.close(source)
    return stat.st_size


def _copy_fd(source: int, target: int, size: int) -> None:
    """copy_file_range (Linux: in the kernel), else a plain read/write loop."""
    if hasattr(os, "copy_file_range"):
        try:
            while os.copy_file_range(source, target, max(size, 2**20)):
                pass
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
            # this kernel or file system cannot: start again with a plain copy
            os.lseek(source, 0, os.SEEK_SET)
            os.lseek(target, 0, os.SEEK_SET)
            os.ftruncate(target, 0)
    with open(source, "rb", closefd=False) as fin, open(target, "wb", closefd=False) as fout:
        shutil.copyfileobj(fin, fout)
