"""`kagexp init`: render a new project from kagexp's project template or any copier or cookiecutter one."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kagexp.errors import TargetExistsError
from kagexp.scaffold import builtin
from kagexp.scaffold.render import render
from kagexp.scaffold.staging import install, staging
from kagexp.scaffold.templates import check_trust, open_template

# What the built-in starter experiment imports, and the package that provides each.
STARTER_MODULES = {"numpy": "numpy", "pandas": "pandas", "sklearn": "scikit-learn"}


@dataclass(frozen=True)
class InitResult:
    """The new project's folder; with `force`, the files that were there and were kept; and a hint for
    the CLI to print when the starter experiment cannot run in this environment."""

    path: Path
    kept: list[str] = field(default_factory=list)
    hint: str | None = None


def init_project(
    dest: Path,
    *,
    template: str | Path | None = None,
    data: dict | None = None,
    defaults: bool = True,
    trust: bool = False,
    force: bool = False,
    vcs_ref: str | None = None,
) -> InitResult:
    """Render a new project into `dest` from kagexp's project template, or any copier or cookiecutter one.

    `defaults` answers every question with its default (no prompts), `data` overrides answers,
    `trust` lets the template run code, `force` renders into a folder that is not empty, adding
    the template's files that are missing there and keeping every file that exists. `vcs_ref` is
    the git tag or commit of a template kept in git.
    """
    dest = Path(dest).expanduser().absolute()
    _check_dest(dest, force)
    answers = dict(data or {})
    builtin_project = template is None
    if builtin_project:
        answers.setdefault("project_name", dest.name)
        source = builtin.project_source()
        template, vcs_ref = source.path, vcs_ref or source.ref
    with open_template(template, vcs_ref=vcs_ref) as tpl:
        check_trust(tpl, trust=trust)
        with staging(dest) as target:
            render(tpl, target, data=answers, defaults=defaults, trust=trust, vcs_ref=vcs_ref)
            kept = install(target, dest)
    return InitResult(dest, kept, starter_hint(STARTER_MODULES) if builtin_project else None)


def _check_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise TargetExistsError(f"{dest} is a file; give a folder for the new project")
    if not force and dest.is_dir() and any(dest.iterdir()):
        raise TargetExistsError(
            f"{dest} is not empty; kagexp never overwrites — pick a new folder, or pass --force to render into it"
        )


def starter_hint(modules: dict[str, str]) -> str | None:
    """One line saying how to install what the starter imports, when some of `modules` are missing.

    `modules` maps a module to the package that provides it. Checked without importing anything.
    """
    missing = [modules[name] for name in missing_modules(modules)]
    if not missing:
        return None
    return f"the starter experiment needs {', '.join(missing)}, missing here: pip install 'kagexp[example]'"


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The modules that this Python cannot import."""
    return [name for name in modules if importlib.util.find_spec(name) is None]
