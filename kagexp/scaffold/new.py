"""`kagexp new`: pick the next number, copy an experiment (or render a template) and publish it.

The new experiment is built in a hidden folder inside `exp/` and renamed into place, which is atomic:
two `kagexp new` at once never mix their files, and the loser of a race for an automatic number
takes the next one.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kagexp import files
from kagexp.config import dump_yaml
from kagexp.errors import NotFoundError, TargetExistsError, TemplateError
from kagexp.project import LINEAGE_FILE, Project, exp_name, unknown
from kagexp.scaffold import builtin
from kagexp.scaffold.copying import copy_experiment
from kagexp.scaffold.render import render
from kagexp.scaffold.staging import temp_path
from kagexp.scaffold.templates import check_trust, open_template

_NUMBERED = re.compile(r"exp(\d+)(?!\d)")
_PUBLISH_TRIES = 20


@dataclass
class NewExperiment:
    """What `new_experiment` made; the CLI prints it and warns about `large_files`."""

    name: str
    path: Path
    parent: str | None
    note: str | None
    large_files: list[tuple[str, int]] = field(default_factory=list)
    copied: int = 0
    template: str | None = None


def new_experiment(
    project: Project,
    *,
    name: str | None = None,
    source: str | None = None,
    note: str | None = None,
    template: str | Path | None = None,
    trust: bool = False,
    data: dict | None = None,
) -> NewExperiment:
    """Start an experiment as a wholesale copy of another (default: the latest), or from a template.

    `name` defaults to the next number (`exp042` after `exp041`); `42` means `exp042`. The copy
    leaves out caches, outputs and the files kagexp writes itself; `lineage.yml` records the parent.
    `template` is a copier or cookiecutter template, or the name of a starter kagexp ships; `data`
    answers its questions.
    """
    if data and template is None:
        raise TemplateError("answers (--data) are for a template's questions; give --template too")
    target = exp_name(str(name)) if name is not None else next_name(project.experiments())
    if name is not None:
        _check_free(project, target)  # an automatic name that another `new` takes meanwhile: the next one
    if template is not None:
        answers = {**project_answers(project, target), **(data or {})}
        return _new_from_template(project, target, template, note=note, trust=trust, data=answers, auto=name is None)
    parent = resolve_source(project, source)
    tmp = temp_path(project.exp_root, target)
    try:
        copy = copy_experiment(project.exp_dir(parent), tmp, exclude=project.settings["new"]["exclude"])
        write_lineage(tmp, parent=parent, note=note)
        target = _publish(project, tmp, target, auto=name is None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return NewExperiment(target, project.exp_dir(target), parent, note, copy.large_files, copy.copied)


def next_name(existing: list[str]) -> str:
    """The number after the highest numbered experiment (`exp041_lgbm` counts as 41)."""
    return exp_name(str(max(_numbers(existing).values(), default=0) + 1))


def _numbers(existing: list[str]) -> dict[str, int]:
    return {n: int(m.group(1)) for n in existing if (m := _NUMBERED.match(n))}


def resolve_source(project: Project, source: str | None) -> str:
    """The experiment to copy: `source` (`41`, `exp041`), else the highest numbered one."""
    existing = project.experiments()
    if source is None:
        if not existing:
            raise NotFoundError("no experiment in exp/ to copy; create a project with `kagexp init`, or use a template")
        numbers = _numbers(existing)
        if not numbers:
            return existing[-1]
        top = max(numbers.values())
        return [n for n in existing if numbers.get(n) == top][-1]
    name = project.find_exp(str(source))
    if name not in existing:
        raise NotFoundError(f"exp/{name} does not exist{unknown(name, existing)}")
    return name


def _check_free(project: Project, name: str) -> None:
    if os.path.lexists(project.exp_dir(name)):
        raise TargetExistsError(
            f"exp/{name} already exists; kagexp never overwrites — pick another name or omit it for the next number"
        )


def _publish(project: Project, tmp: Path, name: str, *, auto: bool) -> str:
    """Rename the finished folder into place; losing a race for an automatic name takes the next one."""
    for _ in range(_PUBLISH_TRIES):
        try:
            os.rename(tmp, project.exp_dir(name))
            return name
        except OSError:
            if not os.path.lexists(project.exp_dir(name)):
                raise
            if not auto:
                _check_free(project, name)  # raises: another `new` took the name first
                raise
            name = next_name(project.experiments())
    raise TargetExistsError(f"exp/{name}: lost the race for a free number {_PUBLISH_TRIES} times; try again")


def write_lineage(exp_dir: Path, *, parent: str | None, note: str | None, template: str | None = None) -> None:
    """`lineage.yml`: where an experiment came from, for `kagexp ls` and the reader of the folder."""
    created = datetime.now().astimezone().isoformat(timespec="seconds")
    data: dict[str, Any] = {"parent": parent, "note": note, "created": created}
    if template is not None:
        data["template"] = template
    files.write_text(exp_dir / LINEAGE_FILE, dump_yaml(data))


def project_answers(project: Project, name: str) -> dict[str, str]:
    """What an experiment template may ask that the project already knows; a template uses those it declares."""
    settings = project.settings
    known = {
        "exp_name": name,
        "project_name": settings["name"],
        "metric_name": settings["metric"]["name"],
        "metric_direction": settings["metric"]["direction"],
    }
    return {key: value for key, value in known.items() if value is not None}


def _new_from_template(
    project: Project, name: str, template: str | Path, *, note: str | None, trust: bool, data: dict, auto: bool
) -> NewExperiment:
    """Render a template as the new experiment folder, with the same temporary-folder-then-rename."""
    shipped = builtin.starter(template) if isinstance(template, str) and not os.path.exists(template) else None
    with open_template(shipped or template) as tpl:
        origin = str(template) if shipped else tpl.origin  # a starter by its name: its path is this machine's
        check_trust(tpl, trust=trust)
        project.exp_root.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(project.exp_root, name)
        tmp.mkdir()
        try:
            built = tmp / name
            render(tpl, built, data=data, defaults=True, trust=trust)
            write_lineage(built, parent=None, note=note, template=origin)
            copied = sum(len(names) for _, _, names in os.walk(built))
            name = _publish(project, built, name, auto=auto)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return NewExperiment(name, project.exp_dir(name), None, note, [], copied, template=origin)
