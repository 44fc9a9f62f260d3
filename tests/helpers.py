"""Helpers that build real projects on disk and run their exp.py as real processes."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import textwrap
from pathlib import Path

BASE_CONFIG = """\
seed: 7
lr: 1e-3
dataset:
  batch_size: 10
  folds: [0, 1, 2]
model:
  name: tree
  params:
    max_depth: 1
    min_samples_leaf: 1
"""

DEFAULT_BODY = """\
with open(ROOT / "executions.txt", "a") as f:
    f.write(ctx.name + "\\n")
print("hello from", ctx.name)
ctx.log({"cv": cfg.model.params.max_depth / 10})
"""

EXP_PY = """\
import os
import sys
import time
from pathlib import Path

import kagexp

ROOT = Path(__file__).resolve().parents[2]
RUNS = {runs}


def run(cfg, ctx):
{body}

if __name__ == "__main__":
    kagexp.main(run, RUNS)
"""


def build_tree(root: Path, tree: dict) -> None:
    """Write a dict of {relative path: text or nested dict} as files under `root`."""
    for name, content in tree.items():
        path = root / name
        if isinstance(content, dict):
            path.mkdir(parents=True, exist_ok=True)
            build_tree(path, content)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


def depth_runs(*depths: int) -> list[str]:
    return [f"model:\n  params:\n    max_depth: {d}\n" for d in depths]


def make_project(
    root: Path,
    runs: list | dict | str | None = None,
    body: str = DEFAULT_BODY,
    config: str = BASE_CONFIG,
    exp: str = "exp001",
    settings: str = "name: test\nmetric:\n  name: cv\n  direction: max\n",
) -> Path:
    """A project with one experiment; returns the project root."""
    runs = depth_runs(1, 2, 3) if runs is None else runs
    runs_src = runs if isinstance(runs, str) else repr(runs)
    build_tree(
        root,
        {
            "kagexp.yml": settings,
            f"exp/{exp}/config.yml": config,
            f"exp/{exp}/exp.py": EXP_PY.format(runs=runs_src, body=textwrap.indent(body, "    ")),
            f"exp/{exp}/model.py": "DEPTH = 1\n",
        },
    )
    return root


def set_runs(root: Path, runs: list | dict, exp: str = "exp001", body: str = DEFAULT_BODY) -> None:
    path = root / "exp" / exp / "exp.py"
    path.write_text(EXP_PY.format(runs=repr(runs), body=textwrap.indent(body, "    ")))


def run_exp(root: Path, *args: str, exp: str = "exp001", timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, f"exp/{exp}/exp.py", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        **kwargs,
    )


def run_kagexp(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`kagexp ARGS` in `root`, as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "kagexp", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=timeout,
    )


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    return env


def out_dir(root: Path, exp: str = "exp001") -> Path:
    return root / "data" / "output" / "exp" / exp


def meta(root: Path, run: str, exp: str = "exp001") -> dict:
    return json.loads((out_dir(root, exp) / run / "meta.json").read_text())


def executions(root: Path) -> list[str]:
    path = root / "executions.txt"
    return path.read_text().split() if path.exists() else []


def snapshot_tree(root: Path) -> dict[str, bytes | str]:
    """Every file under `root` with its bytes, to prove that a command changed nothing; a file this
    user cannot read is recorded by its mode instead (a str, so never equal to any content)."""
    return {p.relative_to(root).as_posix(): _content(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _content(path: Path) -> bytes | str:
    try:
        return path.read_bytes()
    except PermissionError:
        return f"unreadable, mode {path.stat().st_mode & 0o7777:o}"


# --- running a command as an unprivileged user ------------------------------------------------
#
# Root reads and writes through file permissions, so a test of what kagexp does with a file it
# cannot read or a folder it cannot write runs that command as an unprivileged user: as root, as
# `nobody` under setpriv; as anyone else, as themselves. `nobody` must be able to run this
# interpreter (`make test` makes the venv from a python3 that it can run) and to reach the files:
# `hand_over` gives it the test's folder.

IS_ROOT = os.geteuid() == 0
UNPRIVILEGED = "nobody"


def unprivileged(argv: list[str]) -> list[str]:
    """`argv` as a command that runs without root's privileges."""
    if not IS_ROOT:
        return list(argv)
    user = pwd.getpwnam(UNPRIVILEGED)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]


def hand_over(folder: Path) -> None:
    """As root, make `folder` and everything under it `nobody`'s, as if it had made them; its modes
    stay (a folder made read-only stays read-only). Nothing to do for a normal user, who owns it."""
    if not IS_ROOT:
        return
    user = pwd.getpwnam(UNPRIVILEGED)
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)
    check = subprocess.run(unprivileged([sys.executable, "-c", "pass"]), capture_output=True, text=True)
    assert check.returncode == 0, (
        f"{UNPRIVILEGED} cannot run {sys.executable} ({check.stderr.strip()}): make the venv from a python3 "
        f"that other users can run (`rm -rf .venv && make test` as root does)"
    )


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` with a fixed identity and branch name; returns its output."""
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def commit_all(repo: Path, message: str, tag: str | None = None) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    if tag:
        git(repo, "tag", tag)


# --- the dashboard's page ---------------------------------------------------------------


def page_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert match, "no data tag"
    return json.loads(match.group(1))


def runs_of(data: dict) -> dict[str, list]:
    """The page's run columns as lists (a mostly empty one is stored as {position: value})."""
    count = data["count"]
    return {
        name: column if isinstance(column, list) else [column.get(str(i)) for i in range(count)]
        for name, column in data["runs"].items()
    }
