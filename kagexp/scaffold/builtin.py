"""kagexp's own templates (`templates/` at the repository root), and what to record of where they came from.

Installed from a wheel, the templates are inside the package (`kagexp/_templates/`, see setup.py) and
have no git history. Run from a git checkout, the project template is rendered by copier from the
repository itself at a tag or commit, so that copier records `_src_path` and `_commit` in the
project's answers file and `copier update` can bring later template changes into the project.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kagexp import __version__

_PACKAGE = Path(__file__).resolve().parents[1]
PACKAGED = _PACKAGE / "_templates"  # where the wheel puts templates/
CHECKOUT = _PACKAGE.parent  # the repository root, when kagexp runs from a clone
TRACKED = ("templates", "copier.yml")  # what copier renders from a checkout


def templates_dir() -> Path:
    """The folder holding `project/` and `exp/`: the wheel's copy when installed, else the checkout's."""
    return PACKAGED if PACKAGED.is_dir() else CHECKOUT / "templates"


def starter(name: str) -> Path | None:
    """The experiment starter `templates/exp/NAME`, when kagexp ships one of that name."""
    path = templates_dir() / "exp" / name
    return path if name and "/" not in name and (path / "copier.yml").is_file() else None


def starters() -> list[str]:
    """The names of the experiment starters kagexp ships."""
    return sorted(p.parent.name for p in (templates_dir() / "exp").glob("*/copier.yml"))


@dataclass(frozen=True)
class Source:
    """Where copier renders the project template from; `ref` is the git tag or commit, None outside git."""

    path: Path
    ref: str | None = None


def project_source() -> Source:
    """The checkout at a tag or commit when kagexp runs from a clean git checkout, else the folder."""
    if templates_dir() == PACKAGED:
        return Source(PACKAGED / "project")
    return checkout_source(CHECKOUT, __version__) or Source(CHECKOUT / "templates" / "project")


def checkout_source(root: Path, version: str) -> Source | None:
    """`root` at the tag `v<version>` when its templates are the same there as at HEAD, else at HEAD's commit.

    None when `root` is not the top of a git work tree, has no commit, or its templates have changes
    not committed: what copier would render and record (a commit) would not be what is on disk.
    """
    top = _git(root, "rev-parse", "--show-toplevel")
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    if top is None or Path(top).resolve() != root.resolve() or not head:
        return None
    if _git(root, "status", "--porcelain", "--untracked-files=all", "--", *TRACKED) != "":
        return None
    tag = f"v{version}"
    if _git(root, "rev-parse", "--verify", "-q", f"refs/tags/{tag}^{{commit}}") and _same_templates(root, tag):
        return Source(root, tag)
    return Source(root, head)


def _same_templates(root: Path, tag: str) -> bool:
    return _git(root, "diff", "--quiet", tag, "HEAD", "--", *TRACKED) == ""


def _git(root: Path, *args: str) -> str | None:
    """A git command's output, stripped; None when it fails or git is missing."""
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
