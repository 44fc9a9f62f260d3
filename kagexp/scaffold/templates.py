"""Find a template, tell its kind, and decide whether it may run code: the stage before rendering.

A local folder is used where it is; a git URL is cloned into a temporary folder so that its kind and
its hooks can be looked at before anything is rendered.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kagexp.errors import NotFoundError, TemplateError, UntrustedTemplateError

_REMOTE = ("gh:", "gl:", "git@", "git+", "git://", "http://", "https://", "ssh://", "file://")

TemplateKind = Literal["copier", "cookiecutter"]


@dataclass(frozen=True)
class Template:
    """A template ready to render.

    `origin` is the template as the user named it (absolute when local), `src` what the renderer
    is given, `local` where its files are (a temporary clone for a git URL).
    """

    origin: str
    src: str
    local: Path
    kind: TemplateKind


def detect_template_kind(path: Path) -> TemplateKind:
    """copier (`copier.yml`) or cookiecutter (`cookiecutter.json`); copier wins when both are there."""
    if (path / "copier.yml").is_file() or (path / "copier.yaml").is_file():
        return "copier"
    if (path / "cookiecutter.json").is_file():
        return "cookiecutter"
    raise TemplateError(
        f"{path} is not a template: it has neither copier.yml (copier) nor cookiecutter.json (cookiecutter)"
    )


def is_remote(template: str) -> bool:
    """Whether `template` names a git repository rather than a local folder."""
    return template.startswith(_REMOTE) or (template.endswith(".git") and not Path(template).expanduser().exists())


@contextmanager
def open_template(template: str | Path, *, vcs_ref: str | None = None) -> Iterator[Template]:
    """Find the template and its kind; a remote one is cloned into a temporary folder to look at it."""
    if isinstance(template, Path) or not is_remote(template):
        local = Path(template).expanduser().absolute()
        if not local.is_dir():
            raise NotFoundError(f"template {template} not found: give a folder or a git URL (gh:owner/repo)")
        yield Template(str(local), str(local), local, detect_template_kind(local))
        return
    with tempfile.TemporaryDirectory(prefix="kagexp-template-") as tmp:
        local = Path(tmp) / "template"
        _clone(template, local, vcs_ref)
        kind = detect_template_kind(local)
        # copier clones again from the URL, so that `copier update` finds the template later.
        src = _copier_url(template) if kind == "copier" else str(local)
        yield Template(template, src, local, kind)


def _git_url(url: str) -> str:
    """The URL git understands, for copier's `gh:`/`gl:` shorthands and `git+` prefix."""
    if url.startswith("git+"):
        return url[4:]
    for alias, host in (("gh:", "https://github.com/"), ("gl:", "https://gitlab.com/")):
        if url.startswith(alias):
            return host + url[len(alias) :].lstrip("/")
    return url


def _copier_url(url: str) -> str:
    """copier takes only some URL forms as git; `git+` makes it take the others (e.g. `file://`)."""
    if url.startswith(("gh:", "gl:", "git@", "git+", "git://")) or url.endswith(".git"):
        return url
    return "git+" + url


def _clone(url: str, dest: Path, vcs_ref: str | None) -> None:
    depth = [] if vcs_ref else ["--depth", "1"]
    commands = [["git", "clone", "--quiet", *depth, _git_url(url), str(dest)]]
    if vcs_ref:
        commands.append(["git", "-C", str(dest), "checkout", "--quiet", vcs_ref])
    for command in commands:
        _git(command, url)


def _git(command: list[str], url: str) -> None:
    """Run one git command without prompting for credentials; a failure is one line naming the template."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TemplateError(f"cannot fetch template {url}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise TemplateError(f"cannot fetch template {url}: {reason}")


def check_trust(template: Template, *, trust: bool) -> None:
    """Refuse a cookiecutter template unless trusted: rendering one is running its code.

    cookiecutter renders with a Jinja environment that is not sandboxed (`{{ cycler.__init__
    .__globals__.os }}` reaches the os module), imports the `_extensions` it names and runs its
    hooks. copier renders in a sandbox and checks its own unsafe features (tasks, migrations,
    extensions) while rendering.
    """
    if not trust and template.kind == "cookiecutter":
        raise UntrustedTemplateError(
            f"the template {template.origin} runs code (cookiecutter renders without a sandbox, and runs its "
            "hooks and extensions); pass --trust if you trust it"
        )
