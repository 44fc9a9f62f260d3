"""The one exception family users see, each message saying what went wrong and what to do; and
the one place where what escapes a command becomes an exit code, for `kagexp` and `exp.py` alike.

Exit codes: 0 ok, 1 a run failed, 2 a user error (one line per problem, no traceback), 130 interrupted.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_PROBLEMS = 20  # problems shown in one error; the rest are counted (a pasted file can have thousands)


class KagexpError(Exception):
    """An error in the user's input or project; printed as one line, exit code 2."""

    exit_code = EXIT_USAGE

    def lines(self) -> str:
        """The message for stderr: every line (one per problem) starts with `kagexp: error:`."""
        return "\n".join(f"kagexp: error: {line}" for line in str(self).splitlines())


class ConfigError(KagexpError, ValueError):
    """A config file or override that does not parse, or does not fit the base config."""

    @classmethod
    def of(cls, problems: list[str]) -> ConfigError:
        """One error for many problems, one line each: the first `MAX_PROBLEMS`, then how many more."""
        more = len(problems) - MAX_PROBLEMS
        return cls("\n".join(problems[:MAX_PROBLEMS] + ([f"… and {more} more"] if more > 0 else [])))


class UsageError(KagexpError, ValueError):
    """A flag or argument that is wrong or does not fit with another."""


class MetricError(KagexpError, ValueError):
    """A metric given to `ctx.log` that cannot be recorded; raised inside the run, which fails."""


class InvalidNameError(KagexpError, ValueError):
    """An experiment, run or file name that is malformed or would leave the project."""


class NotFoundError(KagexpError, LookupError):
    """A project, experiment or run that does not exist."""


class RunStateError(KagexpError):
    """A run whose state on disk forbids what was asked (e.g. a done run whose override changed)."""


class TargetExistsError(KagexpError, FileExistsError):
    """Something that would be overwritten; kagexp never overwrites."""


class TemplateError(KagexpError, ValueError):
    """A template that is not one, cannot be fetched, or fails to render."""


class UntrustedTemplateError(TemplateError):
    """A template that runs code (copier tasks, cookiecutter hooks), used without `trust=True`."""


def run_command(body: Callable[[], int | None], debug: bool = False) -> int:
    """Run a command's body and return its exit code; a user error prints its lines (and with
    `debug` its traceback), Ctrl-C prints one line, and a reader that went away ends quietly."""
    try:
        return body() or EXIT_OK
    except KagexpError as exc:
        if debug:
            _print_traceback()
        print(exc.lines(), file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kagexp: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `kagexp runs | head`: stop quietly, as `cat` does
        quiet_stdout()
        return EXIT_OK
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT:
            raise  # anything else is a bug: its traceback is wanted
        if debug:
            _print_traceback()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kagexp: error: {where}{exc.strerror}", file=sys.stderr, flush=True)
        return EXIT_USAGE


def _print_traceback() -> None:
    """With `--debug` only: traceback is imported here, `kagexp --help` does not need it."""
    import traceback

    traceback.print_exc()


# What the machine refuses (a full or read-only disk, permissions): the user's to fix, not a bug.
_ENVIRONMENT = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EMFILE, errno.ENAMETOOLONG}


def quiet_stdout() -> None:
    """After the reader of stdout went away: send the rest to /dev/null, so that what is still
    buffered cannot fail again when Python flushes it at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
