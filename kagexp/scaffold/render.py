"""Render a template into a folder with copier or cookiecutter, and turn their errors into one line.

copier and cookiecutter are imported here, inside the functions, so that `import kagexp` stays light.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kagexp.errors import TemplateError, UntrustedTemplateError
from kagexp.scaffold.templates import Template


def render(
    template: Template, target: Path, *, data: dict, defaults: bool, trust: bool, vcs_ref: str | None = None
) -> None:
    """Render `template` into the folder `target`, which must not exist yet.

    `defaults` answers every question with its default (no prompts), `data` gives answers,
    `trust` lets the template run code, `vcs_ref` picks the git tag or commit of a copier template.
    """
    if template.kind == "copier":
        _render_copier(template, target, data=data, defaults=defaults, trust=trust, vcs_ref=vcs_ref)
    else:
        _render_cookiecutter(template, target, data=data, defaults=defaults, trust=trust)


def _render_copier(
    template: Template, target: Path, *, data: dict, defaults: bool, trust: bool, vcs_ref: str | None
) -> None:
    """copier refuses unsafe features (tasks, migrations, extensions) itself; its refusal is translated."""
    import copier
    from copier.errors import CopierError, UnsafeTemplateError

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
    except UnsafeTemplateError as exc:
        features = str(exc).split(":", 1)[-1].split("\n", 1)[0].strip(" .")
        raise UntrustedTemplateError(
            f"the template {template.origin} runs code ({features}); pass --trust if you trust it"
        ) from None
    except (CopierError, ValueError) as exc:  # copier reports a bad answer as a ValueError
        raise TemplateError(f"template {template.origin}: {first_line(exc)}") from exc


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
