"""Git guards, opt-in under `git:` in kagexp.yml, checked before any run starts.

- `branch: main` refuses to run on another branch;
- `auto_commit: true` commits the experiment folder, and only it, first ("exp003: run001–run004"),
  so the runs record a clean commit;
- `require_clean: true` refuses to run while tracked files have uncommitted changes, naming them.

The commit is built in a temporary index (`GIT_INDEX_FILE`), so what the user has staged is
never touched; afterwards only the experiment folder's entries of the real index are updated
to the new commit (they are what it now holds).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from kagexp.errors import RunStateError
from kagexp.provenance import git_state

SHOWN = 5  # changed files named in a refusal


def check(root: Path, exp_dir: Path, settings: dict, runs: list[str]) -> None:
    """Apply the guards before `runs` of the experiment at `exp_dir` start; a refusal is one line."""
    if not _set(settings):
        return
    problem = _before_commit(root, exp_dir, settings)
    if problem:
        raise RunStateError(problem)
    if settings["auto_commit"]:
        commit_experiment(root, exp_dir, _message(exp_dir.name, runs))
    problem = _unclean(root, exp_dir, settings, outside=None)
    if problem:
        raise RunStateError(problem)


def preview(root: Path, exp_dir: Path, settings: dict) -> list[str] | None:
    """What `check` would refuse, without committing; None when no guard is set (for `doctor`)."""
    if not _set(settings):
        return None
    problem = _before_commit(root, exp_dir, settings)
    if problem:
        return [problem]
    outside = exp_dir if settings["auto_commit"] else None  # what auto_commit would commit is fine
    problem = _unclean(root, exp_dir, settings, outside)
    return [problem] if problem else []


def _set(settings: dict) -> bool:
    return bool(settings["branch"] or settings["auto_commit"] or settings["require_clean"])


def _before_commit(root: Path, exp_dir: Path, settings: dict) -> str | None:
    state = git_state(root, exp_dir)
    if state is None:
        return f"kagexp.yml sets git guards, but {root} is not in a git repository (git init it)"
    if settings["branch"] and state.branch != settings["branch"]:
        return (
            f"git: on {state.branch or 'a detached HEAD'}, but kagexp.yml asks for branch {settings['branch']}; "
            f"git switch {settings['branch']} first"
        )
    return None


def _unclean(root: Path, exp_dir: Path, settings: dict, outside: Path | None) -> str | None:
    """The refusal of `require_clean`; with `outside`, changes inside that folder do not count."""
    if not settings["require_clean"]:
        return None
    state = git_state(root, exp_dir)
    changed = state.changed
    if outside is not None:
        top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
        inside = os.path.relpath(outside, top) + "/"
        changed = [path for path in changed if not path.startswith(inside)]
    if not state.dirty or (outside is not None and not changed):
        return None
    more = len(changed) - SHOWN
    shown = changed[:SHOWN] + ([f"and {more} more"] if more > 0 else [])
    return (
        f"git: uncommitted changes in {', '.join(shown) or 'tracked files'}; commit them "
        "(kagexp.yml asks for a clean tree: git.require_clean)"
    )


def _message(exp: str, runs: list[str]) -> str:
    return f"{exp}: {runs[0]}–{runs[-1]}" if len(runs) > 1 else f"{exp}: {runs[0]}"


def commit_experiment(root: Path, exp_dir: Path, message: str) -> str | None:
    """Commit the experiment folder as it is on disk, and nothing else; the new commit, or None
    when the folder is already committed as it is."""
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    folder = os.path.relpath(exp_dir, top)
    head = _git(top, "rev-parse", "--verify", "-q", "HEAD", check=False).strip() or None
    with tempfile.TemporaryDirectory(prefix="kagexp-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if head:
            _git(top, "read-tree", head, env=env)
        _git(top, "add", "-A", "--", folder, env=env)
        tree = _git(top, "write-tree", env=env).strip()
    if head and tree == _git(top, "rev-parse", f"{head}^{{tree}}").strip():
        return None
    parents = ["-p", head] if head else []
    commit = _git(top, "commit-tree", tree, *parents, "-m", message).strip()
    _git(top, "update-ref", "-m", f"kagexp: {message}", "HEAD", commit, *([head] if head else []))
    _git(top, "reset", "-q", "--", folder)  # the real index's entries of the folder: now the commit's
    return commit


def _git(cwd: Path, *args: str, env: dict | None = None, check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )
    if check and done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise RunStateError(f"git {args[0]}: {reason}")
    return done.stdout
