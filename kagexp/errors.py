"""The one exception family users see: each message says what went wrong and what to do."""

from __future__ import annotations


class KagexpError(Exception):
    """An error in the user's input or project; printed as one line, exit code 2."""

    exit_code = 2

    def lines(self) -> str:
        """The message for stderr: every line (one per problem) starts with `kagexp: error:`."""
        return "\n".join(f"kagexp: error: {line}" for line in str(self).splitlines())


class ConfigError(KagexpError, ValueError):
    """A config file or override that does not parse, or does not fit the base config."""


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
