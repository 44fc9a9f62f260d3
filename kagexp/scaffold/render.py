"""Render a template into a folder with copier or cookiecutter, and turn their errors into one line.

copier and cookiecutter are imported here, inside the functions, so that `import kagexp` stays light.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kagexp.errors import TemplateError, UntrustedTemplateError
from kagexp.scaffold.confine import confined
from kagexp.scaffold.templates import Template


def render(
    template: Template, target: Path, *, data: dict, defaults: bool, trust: bool, vcs_ref: str | None = None
) -> None:
    """Render `template` into the folder `target`, which must not exist yet, in a temporary folder of its own.

    `defaults` answers every question with its default (no prompts), `data` gives answers,
    `trust` lets the template run code, `vcs_ref` picks the git tag or commit of a copier template.
    Nothing rendered may land outside `target`'s parent, except the engines' new scratch files and
    clones in the system's temporary folder, and copier's clone cache.
    """
    with confined(template.origin, target.parent, *_caches(template), scratch=Path(tempfile.gettempdir())):
        if template.kind == "copier":
            _render_copier(template, target, data=data, defaults=defaults, trust=trust, vcs_ref=vcs_ref)
        else:
            _render_cookiecutter(template, target, data=data, defaults=defaults, trust=trust)


def _caches(template: Template) -> list[Path]:
    """copier keeps a mirror of every remote template it clones (COPIER_CACHE_DIR, else the user's cache)."""
    if template.kind != "copier" or template.src == str(template.local):
        return []
    from platformdirs import user_cache_dir  # a dependency of copier

    return [Path(os.environ.get("COPIER_CACHE_DIR") or user_cache_dir("copier", appauthor=False))]


def _render_copier(
    template: Template, target: Path, *, data: dict, defaults: bool, trust: bool, vcs_ref: str | None
) -> None:
    """copier refuses unsafe features (tasks, migrations, extensions) itself; its refusal is translated."""
    import copier
    from copier.errors import CopierError
    from jinja2.exceptions import SecurityError

    try:
        copier.run_copy(
            template.src,
            target,
            data=data,
            defaults=defaults,
            unsafe=trust,
            vcs_ref=vcs_ref,
            quiet=True,
            cleanup_on_error=False,  # the caller deletes its own temporary folder
        )
    except (CopierError, ValueError, SecurityError) as exc:  # copier reports a bad answer as a ValueError
        raise _copier_error(template.origin, exc) from exc


def _copier_error(origin: str, exc: BaseException) -> TemplateError:
    """One line for each way copier refuses: code not trusted, a path outside, its sandbox, a bad answer."""
    from copier.errors import ForbiddenPathError, UnsafeTemplateError

    if isinstance(exc, UnsafeTemplateError):
        features = str(exc).split(":", 1)[-1].split("\n", 1)[0].strip(" .")
        return UntrustedTemplateError(f"the template {origin} runs code ({features}); pass --trust if you trust it")
    if isinstance(exc, ForbiddenPathError):
        return TemplateError(
            f"the template {origin} renders a path outside the folder it renders into ({first_line(exc)}); "
            "kagexp refuses it"
        )
    refusal = _sandbox_refusal(exc)
    if refusal is not None:
        return TemplateError(
            f"the template {origin} does what copier's sandbox forbids ({first_line(refusal)}); kagexp refuses it"
        )
    return TemplateError(f"template {origin}: {first_line(exc)}")


def _sandbox_refusal(exc: BaseException) -> BaseException | None:
    """The sandbox's SecurityError behind `exc` (copier wraps it when a file name renders), if any."""
    from jinja2.exceptions import SecurityError

    while exc is not None and not isinstance(exc, SecurityError):
        exc = exc.__cause__ or exc.__context__
    return exc


def _render_cookiecutter(template: Template, target: Path, *, data: dict, defaults: bool, trust: bool) -> None:
    """cookiecutter renders into `output_dir/<slug>/`; that folder becomes `target`."""
    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    with tempfile.TemporaryDirectory(prefix="kagexp-cookiecutter-") as home:
        # Its replay files and clones go here, not into the user's home.
        config = {"replay_dir": f"{home}/replay", "cookiecutters_dir": f"{home}/cookiecutters"}
        output = Path(tempfile.mkdtemp(prefix=".cookiecutter-", dir=target.parent))
        try:
            made = cookiecutter(
                template.src,
                no_input=defaults,
                extra_context=data,
                output_dir=str(output),
                default_config=config,
                accept_hooks=trust,
            )
        except FailedHookException as exc:
            raise TemplateError(f"a hook of the template {template.origin} failed: {first_line(exc)}") from exc
        except CookiecutterException as exc:
            raise TemplateError(f"template {template.origin}: {first_line(exc)}") from exc
        os.rename(made, target)
        output.rmdir()


def first_line(exc: BaseException) -> str:
    """The first line of an engine's message: kagexp's errors are one line each."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
