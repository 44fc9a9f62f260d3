"""Create projects and experiments: `init` renders a copier or cookiecutter template, `new` copies an experiment.

Both build their result in a temporary folder beside the target and rename it into place at the end,
so a failure or a crash never leaves half a project or half an experiment; both refuse to overwrite,
and both delete only what they created. Template code (copier tasks, cookiecutter hooks) runs only
when the caller says it trusts the template. copier and cookiecutter are imported only when used.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from kagexp import files
from kagexp.config import dump_yaml
from kagexp.errors import NotFoundError, TargetExistsError, TemplateError, UntrustedTemplateError
from kagexp.project import LINEAGE_FILE, Project, exp_name, unknown
from kagexp.provenance import is_code, is_code_dir

BUILTIN_TEMPLATE = Path(__file__).parent / "templates" / "project"
LARGE_FILE = 10 * 2**20  # files above this are copied by `new`, but reported so the CLI can warn
HOOK_NAMES = frozenset({"pre_prompt", "pre_gen_project", "post_gen_project"})
_REMOTE = ("gh:", "gl:", "git@", "git+", "git://", "http://", "https://", "ssh://", "file://")
_NUMBERED = re.compile(r"exp(\d+)(?!\d)")
_counter = itertools.count()

TemplateKind = Literal["copier", "cookiecutter"]


@dataclass(frozen=True)
class Template:
    """A template ready to render: `origin` as the user named it (absolute when local), `src` as the
    renderer wants it, `local` where its files are (a temporary clone for a git URL)."""

    origin: str
    src: str
    local: Path
    kind: TemplateKind


@dataclass(frozen=True)
class InitResult:
    """The new project's folder, and (with `force`) the files that were there and were kept."""

    path: Path
    kept: list[str]


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


# --- templates -------------------------------------------------------------------------


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
def open_template(template: str | Path, vcs_ref: str | None = None) -> Iterator[Template]:
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
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    commands = [["git", "clone", "--quiet", *depth, _git_url(url), str(dest)]]
    if vcs_ref:
        commands.append(["git", "-C", str(dest), "checkout", "--quiet", vcs_ref])
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TemplateError(f"cannot fetch template {url}: {exc}") from None
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["git failed"])[-1]
            raise TemplateError(f"cannot fetch template {url}: {reason}")


def has_hooks(path: Path) -> bool:
    """Whether a cookiecutter template has hooks, which run arbitrary code when it renders."""
    hooks = path / "hooks"
    return hooks.is_dir() and any(p.is_file() and p.stem in HOOK_NAMES for p in hooks.iterdir())


def check_trust(template: Template, trust: bool) -> None:
    """Refuse hooks up front: cookiecutter would otherwise skip them silently and render a broken project.

    copier checks its own unsafe features (tasks, migrations, extensions); see `_render_copier`.
    """
    if not trust and template.kind == "cookiecutter" and has_hooks(template.local):
        raise UntrustedTemplateError(
            f"the template {template.origin} runs code (cookiecutter hooks in hooks/); pass --trust if you trust it"
        )


def render(template: Template, target: Path, data: dict, defaults: bool, trust: bool, vcs_ref: str | None) -> None:
    """Render `template` into the folder `target`, which must not exist yet."""
    if template.kind == "copier":
        _render_copier(template, target, data, defaults, trust, vcs_ref)
    else:
        _render_cookiecutter(template, target, data, defaults, trust)


def _render_copier(template: Template, target: Path, data: dict, defaults: bool, trust: bool, vcs_ref) -> None:
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
        raise TemplateError(f"template {template.origin}: {_first_line(exc)}") from exc


def _render_cookiecutter(template: Template, target: Path, data: dict, defaults: bool, trust: bool) -> None:
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
            raise TemplateError(f"a hook of the template {template.origin} failed: {_first_line(exc)}") from exc
        except CookiecutterException as exc:
            raise TemplateError(f"template {template.origin}: {_first_line(exc)}") from exc
        os.rename(made, target)
        output.rmdir()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- init ------------------------------------------------------------------------------


def init_project(
    dest: Path,
    template: str | Path | None = None,
    data: dict | None = None,
    defaults: bool = True,
    trust: bool = False,
    force: bool = False,
    vcs_ref: str | None = None,
) -> InitResult:
    """Render a new project into `dest` from the built-in template, or any copier or cookiecutter one.

    `defaults` answers every question with its default (no prompts), `data` overrides answers,
    `trust` lets the template run code, `force` renders into a folder that is not empty, adding
    the template's files that are missing there and keeping every file that exists.
    """
    dest = Path(dest).expanduser().absolute()
    _check_dest(dest, force)
    answers = dict(data or {})
    if template is None:
        answers.setdefault("project_name", dest.name)
    with open_template(BUILTIN_TEMPLATE if template is None else template, vcs_ref) as tpl:
        check_trust(tpl, trust)
        with staging(dest) as target:
            render(tpl, target, answers, defaults, trust, vcs_ref)
            kept = _install(target, dest)
    return InitResult(dest, kept)


def _check_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise TargetExistsError(f"{dest} is a file; give a folder for the new project")
    if not force and dest.is_dir() and any(dest.iterdir()):
        raise TargetExistsError(
            f"{dest} is not empty; kagexp never overwrites — pick a new folder, or pass --force to render into it"
        )


@contextmanager
def staging(dest: Path) -> Iterator[Path]:
    """A path to build `dest` at, inside a temporary sibling folder that is always removed.

    The path keeps `dest`'s name, for templates that use their folder's name. On failure the parent
    folders this call created are removed too, so nothing is left behind.
    """
    created = _make_parents(dest.parent)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{next(_counter)}"
    tmp.mkdir()
    try:
        yield tmp / dest.name
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            _rmdir_if_empty(folder)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _rmdir_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _install(built: Path, dest: Path) -> list[str]:
    """Move the rendered project into place: one rename when `dest` is absent or empty, else a merge
    that adds what is missing and keeps every file already there; returns the files kept."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        try:
            os.rename(built, dest)
            return []
        except OSError:
            if not dest.is_dir() or any(dest.iterdir()):
                raise TargetExistsError(f"{dest} appeared while rendering; kagexp never overwrites") from None
    return _merge_into(built, dest, "")


def _merge_into(src: Path, dst: Path, prefix: str) -> list[str]:
    kept = []
    for entry in os.scandir(src):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False) and target.is_dir() and not target.is_symlink():
            kept.extend(_merge_into(Path(entry.path), target, f"{prefix}{entry.name}/"))
        elif os.path.lexists(target):
            kept.append(prefix + entry.name)  # the user's file wins: kagexp never overwrites
        else:
            os.rename(entry.path, target)
    return sorted(kept)


# --- new -------------------------------------------------------------------------------


def new_experiment(
    project: Project,
    name: str | None = None,
    source: str | None = None,
    note: str | None = None,
    template: str | Path | None = None,
    trust: bool = False,
) -> NewExperiment:
    """Start an experiment as a wholesale copy of another (default: the latest), or from a template.

    `name` defaults to the next number (`exp042` after `exp041`); `42` means `exp042`. The copy
    leaves out caches, outputs and the files kagexp writes itself; `lineage.yml` records the parent.
    """
    existing = project.experiments()
    target = exp_name(str(name)) if name is not None else next_name(existing)
    _check_free(project, target)
    if template is not None:
        return _new_from_template(project, target, template, note, trust, auto=name is None)
    parent = resolve_source(project, source)
    exclude = list(project.settings["new"]["exclude"])
    tmp = _temp_dir(project, target)
    try:
        copied, large = copy_experiment(project.exp_dir(parent), tmp, exclude)
        write_lineage(tmp, parent, note)
        target = _publish(project, tmp, target, auto=name is None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return NewExperiment(target, project.exp_dir(target), parent, note, large, copied)


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


def _temp_dir(project: Project, name: str) -> Path:
    """A hidden folder inside exp/ (on the same file system, so the final rename is atomic)."""
    return project.exp_root / f".{name}.tmp-{os.getpid()}-{next(_counter)}"


def _publish(project: Project, tmp: Path, name: str, auto: bool) -> str:
    """Rename the finished copy into place; losing a race for an automatic name takes the next one."""
    for _ in range(20):
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
    raise TargetExistsError(f"exp/{name}: too many concurrent `kagexp new`; try again")


def copy_experiment(src: Path, dst: Path, exclude: list[str] = ()) -> tuple[int, list[tuple[str, int]]]:
    """Copy `src` into the new folder `dst`, minus caches and kagexp's own files; symlinks stay links.

    Returns the number of files copied and the files over `LARGE_FILE` (path, size). One `lstat`
    per file and kernel-side copies keep this as fast as `cp -r`.
    """
    dst.mkdir()
    copied, large = 0, []
    stack = [("", src, dst)]
    while stack:
        prefix, here, there = stack.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                relative = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if is_code_dir(relative, exclude):
                        os.mkdir(there / entry.name)
                        stack.append((relative + "/", Path(entry.path), there / entry.name))
                    continue
                if not is_code(relative, exclude) or not (entry.is_file() or entry.is_symlink()):
                    continue  # excluded, or a pipe, socket or device
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), there / entry.name)
                else:
                    size = _copy_file(entry, there / entry.name)
                    if size > LARGE_FILE:
                        large.append((relative, size))
                copied += 1
    return copied, sorted(large)


def _copy_file(entry: os.DirEntry, dst: Path) -> int:
    """Copy one file with its permission bits, as `cp` does, in the kernel; returns its size.

    The same system calls as `cp` (open, open, copy_file_range, close, close) and no more:
    with hundreds of small files, per-file overhead is what makes a copy slow.
    """
    stat = entry.stat(follow_symlinks=False)
    source = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.st_mode & 0o777)
        try:
            _copy_fd(source, target, stat.st_size)
        finally:
            os.close(target)
    finally:
        os.close(source)
    return stat.st_size


def _copy_fd(source: int, target: int, size: int) -> None:
    """copy_file_range (Linux: in the kernel), else a plain read/write loop."""
    if hasattr(os, "copy_file_range"):
        try:
            while os.copy_file_range(source, target, max(size, 2**20)):
                pass
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
            # this kernel or file system cannot: start again with a plain copy
            os.lseek(source, 0, os.SEEK_SET)
            os.lseek(target, 0, os.SEEK_SET)
            os.ftruncate(target, 0)
    with open(source, "rb", closefd=False) as fin, open(target, "wb", closefd=False) as fout:
        shutil.copyfileobj(fin, fout)


def write_lineage(exp_dir: Path, parent: str | None, note: str | None, template: str | None = None) -> None:
    """`lineage.yml`: where an experiment came from, for `kagexp ls` and the reader of the folder."""
    created = datetime.now().astimezone().isoformat(timespec="seconds")
    data: dict[str, Any] = {"parent": parent, "note": note, "created": created}
    if template is not None:
        data["template"] = template
    files.write_text(exp_dir / LINEAGE_FILE, dump_yaml(data))


def _new_from_template(
    project: Project, name: str, template: str | Path, note: str | None, trust: bool, auto: bool
) -> NewExperiment:
    """Render a template as the new experiment folder, with the same temporary-folder-then-rename."""
    with open_template(template) as tpl:
        check_trust(tpl, trust)
        project.exp_root.mkdir(parents=True, exist_ok=True)
        tmp = _temp_dir(project, name)
        tmp.mkdir()
        try:
            built = tmp / name
            render(tpl, built, {}, True, trust, None)
            write_lineage(built, None, note, template=tpl.origin)
            copied = sum(len(f) for _, _, f in os.walk(built))
            name = _publish(project, built, name, auto)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return NewExperiment(name, project.exp_dir(name), None, note, [], copied, template=tpl.origin)
