"""Atomic file writes: a crash leaves either the old file or the new one, never half of one; and
reads that take regular files only, so that a FIFO, a device or a link in a folder never hangs kagexp."""

from __future__ import annotations

import errno
import itertools
import json
import os
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO

_counter = itertools.count()


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}.tmp")


def write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8", "surrogateescape"))


def dumps(obj: Any) -> str:
    """JSON with one top-level key per line: readable, and each value goes through the fast
    C encoder (`indent=` would switch the whole document to the slow pure-Python one)."""
    if not isinstance(obj, dict) or not obj:
        return to_json(obj) + "\n"
    lines = (f" {json.dumps(str(k), ensure_ascii=False)}: {to_json(v)}" for k, v in obj.items())
    return "{\n" + ",\n".join(lines) + "\n}\n"


def to_json(value: Any) -> str:
    """`value` as JSON on one line; what JSON has no type for (a date) is written as text, keys too:
    a config may hold `[{2020-01-01: x}]`, and its summary must still be written."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except TypeError:  # with `default`, only a key can be refused
        return json.dumps(_text_keys(value), ensure_ascii=False, default=str)


_JSON_KEYS = (str, int, float, bool, type(None))


def _text_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k if isinstance(k, _JSON_KEYS) else str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(item) for item in value]
    return value


def write_json(path: Path, obj: Any) -> None:
    write_text(path, dumps(obj))


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` atomically (temporary copy, then rename)."""
    import shutil  # here: every command imports this module, few copy

    tmp = _temp_name(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_regular(path: str | Path, follow: bool = False) -> tuple[int, os.stat_result] | None:
    """A read-only descriptor of `path` and its stat when it is a regular file, else None.

    Never waits and never wanders: `O_NONBLOCK` because opening a FIFO waits for a writer
    forever, `O_NOFOLLOW` (unless `follow`) because a link may point at `/dev/zero` or out of
    the project, and the `fstat` check because reading a device never ends. None also when the
    file is gone, a socket or a folder; other errors (no permission) are raised.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR, errno.EOPNOTSUPP):
            return None
        raise
    stat = os.fstat(fd)
    if not S_ISREG(stat.st_mode):
        os.close(fd)
        return None
    return fd, stat


def read_regular(path: str | Path, follow: bool = False) -> bytes | None:
    """The bytes of `path` when it is a regular file, else None (see `open_regular`)."""
    opened = open_regular(path, follow)
    if opened is None:
        return None
    fd, stat = opened
    try:  # plain reads, no file object: listings read tens of thousands of small files
        chunks = [os.read(fd, stat.st_size + 1)]
        while chunks[-1]:  # the file grew since its stat
            chunks.append(os.read(fd, 2**20))
    finally:
        os.close(fd)
    return b"".join(chunks)


def link_target(path: Path) -> str | None:
    """The text of a symbolic link (dangling and looping ones too), or None when `path` is no link."""
    try:
        return os.readlink(path)
    except OSError:
        return None


def sha256(path: Path | str) -> str:
    with open(path, "rb") as f:
        return stream_sha256(f)


def stream_sha256(f: BinaryIO) -> str:
    """The sha256 of an open file from where it stands, read in 1 MiB pieces (inputs may be large);
    hashlib is imported here, as every command imports this module and few hash."""
    import hashlib

    digest = hashlib.sha256()
    while chunk := f.read(2**20):
        digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | Path) -> Any:
    """A regular file's JSON; anything else (a FIFO would hang a reader, a link) reads as absent."""
    data = read_regular(path)
    if data is None:
        raise FileNotFoundError(errno.ENOENT, "not a regular file", str(path))
    return json.loads(data)
