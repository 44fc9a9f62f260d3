"""Atomic file writes: a crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

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
    write_bytes(path, text.encode("utf-8"))


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
    tmp = _temp_name(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())
