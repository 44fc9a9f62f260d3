"""Keep what a template renders inside the folder it renders into.

Neither engine promises it: cookiecutter writes `{{cookiecutter.f}}.txt` with `f="../../x"` beside
the project (copier refuses `..` in paths, but nothing else stops its Python from writing).
While a template renders, a Python audit hook (PEP 578) looks at every path the rendering thread
opens for writing, creates, renames, links, changes or removes; one outside the allowed folders is
refused with `PermissionError` (so the engine stops there) and reported as one line. It checks the
engines' own writes, not the processes they start (copier tasks, cookiecutter hooks): those run
only with `--trust`.

The hook is added once per process, on the first render, and does nothing outside a render or in
another thread.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kagexp.errors import TemplateError

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# audit event -> (position of a path it changes, position of the folder descriptor it is relative to)
# for each such path (https://docs.python.org/3/library/audit_events.html)
_PATHS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "open": ((0, None),),
    "os.mkdir": ((0, 2),),
    "os.rename": ((0, 2), (1, 3)),
    "os.link": ((1, 3),),
    "os.symlink": ((1, 2),),
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.truncate": ((0, None),),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.utime": ((0, 3),),
    "shutil.copyfile": ((1, None),),
    "shutil.copymode": ((1, None),),
    "shutil.copystat": ((1, None),),
    "shutil.copytree": ((1, None),),
    "shutil.move": ((0, None), (1, None)),
    "shutil.rmtree": ((0, 1),),
}
# Python's own bytecode cache, written when a module is first imported during a render: refused
# like any other path outside, but Python ignores the refusal, and so does the check.
_BYTECODE = re.compile(r"[/\\]__pycache__[/\\][^/\\]+\.pyc(\.\d+)?$")

_state = threading.local()
_hooked = False
_hook_lock = threading.Lock()


@contextmanager
def confined(what: str, *allowed: Path, scratch: Path | None = None) -> Iterator[None]:
    """Refuse, in this thread, every write outside the `allowed` folders while the block runs.

    In `scratch` (the system's temporary folder) only what the block creates is allowed: the
    engines' temporary clones and files, never what was there before. `what` names the template
    in the error message.
    """
    _add_hook()
    _state.allowed = [os.path.realpath(folder) for folder in allowed]
    _state.scratch = os.path.realpath(scratch) if scratch is not None else None
    _state.escapes = []
    try:
        yield
    except BaseException:
        if not _state.escapes:
            raise
        raise _escape_error(what, _state.escapes[0]) from None
    finally:
        escapes, _state.allowed, _state.escapes = _state.escapes, None, []
    if escapes:
        raise _escape_error(what, escapes[0])


def _escape_error(what: str, path: str) -> TemplateError:
    return TemplateError(f"the template {what} writes {path}, outside the folder it renders into; kagexp refuses it")


def _add_hook() -> None:
    global _hooked
    with _hook_lock:
        if not _hooked:
            sys.addaudithook(_audit)
            _hooked = True


def _audit(event: str, args: tuple) -> None:
    """The audit hook: cheap when no render runs in this thread (one dict and one attribute lookup)."""
    paths = _PATHS.get(event)
    if paths is None or getattr(_state, "allowed", None) is None:
        return
    if event == "open" and not (isinstance(args[2], int) and args[2] & _WRITE_FLAGS):
        return  # reading is allowed
    for position, dir_fd in paths:
        path = _absolute(args[position], None if dir_fd is None else args[dir_fd])
        if path is None or _harmless(event, path):
            continue
        if _creates_scratch(event, args, path):
            _state.allowed.append(os.path.realpath(path))
        elif not _inside(path, _state.allowed):
            if not _BYTECODE.search(path):
                _state.escapes.append(path)
            raise PermissionError(errno.EACCES, "a template may not write outside its destination", path)


def _harmless(event: str, path: str) -> bool:
    """Writing to /dev/null (a child's discarded output); opening a folder (only `TemporaryFile` does, for
    an unnamed file) or creating one that exists (`exist_ok`); creating one on the way to an allowed
    folder (copier's cache, on first use)."""
    if path == os.devnull:
        return True
    if event not in ("open", "os.mkdir"):
        return False
    real = os.path.realpath(path)
    if os.path.isdir(real):
        return True
    return event == "os.mkdir" and any(folder.startswith(real + os.sep) for folder in _state.allowed)


def _creates_scratch(event: str, args: tuple, path: str) -> bool:
    """A new folder (`mkdtemp`), or a new file (`mkstemp`, which opens with O_EXCL), in the scratch folder."""
    if _state.scratch is None or os.path.dirname(os.path.realpath(path)) != _state.scratch:
        return False
    return event == "os.mkdir" or (event == "open" and args[2] & os.O_EXCL == os.O_EXCL)


def _absolute(path: object, dir_fd: object) -> str | None:
    """The path an event names, made absolute; None when it cannot be told (a file descriptor, already
    checked when it was opened, or a path relative to a folder descriptor on a system without /proc)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        return None
    path = os.fsdecode(os.fspath(path))
    if os.path.isabs(path):
        return path
    if isinstance(dir_fd, int):
        try:
            return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        except OSError:
            return None
    return os.path.join(os.getcwd(), path)


def _inside(path: str, allowed: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == folder or real.startswith(folder + os.sep) for folder in allowed)
