"""Where a run came from: git state, the machine and its packages, the code's hash and snapshot, seeds.

Everything here is computed once per process (see `Provenance`), not once per run.
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import importlib.util
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from functools import cache, cached_property
from pathlib import Path

from kagexp.files import link_target, open_regular, read_regular
from kagexp.fingerprints import Inputs, fingerprints_once
from kagexp.version import __version__

IGNORED_DIRS = frozenset(
    {"__pycache__", ".ipynb_checkpoints", "wandb", ".git", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
)
IGNORED_SUFFIXES = (".pyc", ".pyo")
# Written by kagexp itself into an experiment folder; editing them does not change the code.
NOT_CODE = frozenset({"lineage.yml", "RESULTS.md", "results"})


@dataclass(frozen=True)
class GitState:
    commit: str | None
    branch: str | None
    dirty: bool
    untracked: list[str] = field(default_factory=list)
    diff: str = ""
    changed: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """What a run records of the repository (the diff itself is stored once, beside the runs)."""
        data = asdict(self)
        del data["diff"], data["changed"]
        return data


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path, exp_dir: Path) -> GitState | None:
    """The repository state, or None when `root` is not in a git work tree (or git is missing)."""
    if _git(root, "rev-parse", "--is-inside-work-tree") is None:
        return None
    commit = (_git(root, "rev-parse", "--verify", "-q", "HEAD") or "").strip() or None
    branch = (_git(root, "symbolic-ref", "--short", "-q", "HEAD") or "").strip() or None
    dirty = bool((_git(root, "status", "--porcelain", "--untracked-files=no") or "").strip())
    untracked = (_git(root, "ls-files", "--others", "--exclude-standard", "--", str(exp_dir)) or "").split()
    diff, changed = "", []
    if dirty:
        against = ["HEAD"] if commit else ["--cached"]
        diff = _git(root, "diff", *against, "--binary") or ""
        changed = (_git(root, "diff", *against, "--name-only") or "").splitlines()
    return GitState(commit, branch, dirty, untracked, diff, changed)


@cache
def installed_packages() -> dict[str, str]:
    """Every installed distribution's version by its canonical name (`scikit-learn`, `pyyaml`).

    Read from the names of the `name-version.dist-info` / `.egg-info` folders on `sys.path`, as
    importlib.metadata finds them: parsing each METADATA file instead costs about 0.4 ms a
    distribution, half a second of every process in a Kaggle image (~1,200 of them). Names are
    canonical (PEP 503) because folder names spell them as their installer chose (pip keeps
    `PyYAML`, uv writes `pyyaml`). The first on `sys.path` wins, as for `importlib.metadata.version`;
    a folder whose name does not say both (`kagexp.egg-info`) and a zip file are read the slow way.
    """
    return packages_on(sys.path)


def packages_on(path: list[str]) -> dict[str, str]:
    """`installed_packages` for any search path (a benchmark's, a test's), computed each time."""
    packages: dict[str, str] = {}
    for entry in path:
        for name, version in _distributions_on(entry):
            packages.setdefault(canonical_name(name), version)
    return dict(sorted(packages.items()))


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them: `PyYAML`, `ruamel.yaml` → `pyyaml`, `ruamel-yaml`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions_on(entry: str) -> list[tuple[str, str]]:
    """(name, version) of the distributions in one `sys.path` entry, in importlib.metadata's order."""
    root = entry or "."
    try:
        children = os.listdir(root)
    except OSError:  # missing, or a zip file: importlib.metadata reads it (rare, and it knows zips)
        return _from_metadata(root) if os.path.isfile(root) else []
    found = []
    for child in children:
        if child.lower().endswith((".dist-info", ".egg-info")):
            found.extend(_from_name(child, os.path.join(root, child)))
    base = os.path.basename(root)
    if base.lower().endswith(".egg"):  # an egg on sys.path (`foo-1.0-py3.11.egg/EGG-INFO`): its name says both
        for child in (c for c in children if c.lower() == "egg-info"):
            found.extend(_from_name(base, os.path.join(root, child)))
    return found


def _from_name(name: str, metadata: str) -> list[tuple[str, str]]:
    """`name-version.dist-info` and `name-version[-pyX.Y…].egg-info` say both (installers write `-`
    inside a name or version as `_`); a name without a version (`kagexp.egg-info`, left by
    `setup.py develop`) is ambiguous, and its metadata file says it."""
    stem, _, suffix = name.rpartition(".")
    parts = stem.split("-")
    exact = len(parts) == 2 if suffix.lower() == "dist-info" else len(parts) >= 2
    if exact and parts[0] and parts[1] and "_" not in parts[1]:
        return [(parts[0], parts[1])]
    return _from_metadata(metadata, single=True)


def _from_metadata(path: str, single: bool = False) -> list[tuple[str, str]]:
    """The slow way: importlib.metadata parses the metadata file(s)."""
    from importlib.metadata import PathDistribution, distributions

    dists = [PathDistribution(Path(path))] if single else distributions(path=[path])
    found = []
    for dist in dists:
        try:
            name, version = dist.metadata["Name"], dist.version
        except (OSError, TypeError, ValueError):  # a folder left half-removed by an installer
            continue
        if name:
            found.append((name, version))
    return found


@cache
def gpu_names() -> list[str]:
    """GPU names from `nvidia-smi`, or an empty list when there is none (short timeout)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def is_code(relative: str, exclude: list[str] = ()) -> bool:
    """Whether a path inside an experiment folder is part of its code (and copied by `new`)."""
    parts = relative.split("/")
    if parts[0] in NOT_CODE or any(p in IGNORED_DIRS for p in parts) or relative.endswith(IGNORED_SUFFIXES):
        return False
    return not any(fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(parts[-1], pattern) for pattern in exclude)


def is_code_dir(relative: str, exclude: list[str] = ()) -> bool:
    """Whether a folder inside an experiment holds code: not a cache, not kagexp's, not excluded."""
    name = relative.rsplit("/", 1)[-1]
    if name in IGNORED_DIRS or relative in NOT_CODE:
        return False
    return not any(fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern) for pattern in exclude)


def code_files(exp_dir: Path, exclude: list[str] = ()) -> list[str]:
    """The experiment's code, as sorted `/`-separated paths relative to `exp_dir`: regular files
    and symbolic links (recorded as links, never followed), no FIFOs, sockets or devices."""
    found = []
    stack = [("", exp_dir)]
    while stack:
        prefix, folder = stack.pop()
        for entry in _entries(folder):
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if is_code_dir(relative, exclude):
                    stack.append((relative + "/", Path(entry.path)))
            elif (entry.is_symlink() or entry.is_file(follow_symlinks=False)) and is_code(relative, exclude):
                found.append(relative)
    return sorted(found)


def _entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries; none when it cannot be listed (gone, no permission), as `os.walk` does."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return []


@dataclass(frozen=True)
class CodeEntry:
    """One file of an experiment's code as it is on disk: a regular file's bytes, or a symbolic
    link's target text (a link is code as written: following it could leave the folder, reach
    `/dev/zero`, or loop)."""

    data: bytes
    link: bool = False


def read_code(path: Path) -> CodeEntry | None:
    """`path` as code; None when it is no longer a regular file or a link (gone since listed)."""
    data = read_regular(path)
    if data is not None:
        return CodeEntry(data)
    target = link_target(path)
    return None if target is None else CodeEntry(os.fsencode(target), link=True)


def code_hash(exp_dir: Path, files: list[str]) -> str:
    """A content hash of the code: same files, same bytes, same hash, wherever the folder is.

    The `RUNS = …` assignment of exp.py is left out: appending a run does not change the code
    of the runs before it (each run's own override is recorded, and hashed, on its own).
    A link counts by its target text, under a header no file's can have (`link` is no length).
    """
    digest = hashlib.sha256()
    for relative in files:
        entry = read_code(exp_dir / relative)
        if entry is None:
            continue
        data = without_runs(entry.data) if relative == "exp.py" and not entry.link else entry.data
        kind = "link\0" if entry.link else ""
        digest.update(f"{relative}\0{kind}{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def without_runs(source: bytes) -> bytes:
    """exp.py with its top-level `RUNS = …` lines replaced by one placeholder (as is if it does not parse)."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    lines = source.split(b"\n")
    for node in reversed(tree.body):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = getattr(node, "targets", None) or [node.target]
            if any(isinstance(t, ast.Name) and t.id == "RUNS" for t in targets):
                lines[node.lineno - 1 : node.end_lineno] = [b"RUNS = ..."]
    return b"\n".join(lines)


def snapshot(exp_dir: Path, files: list[str], dest: Path) -> Path:
    """Copy the code to `dest` once; a concurrent copy of the same hash is harmless."""
    if dest.is_dir():
        return dest
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    for relative in files:
        target = tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_code(exp_dir / relative, target)
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():
            raise
    return dest


def copy_code(src: Path, dst: Path) -> None:
    """Copy one file of code as `shutil.copy2` would (bytes, mode, times), a link as a link;
    nothing when `src` is no longer either."""
    opened = open_regular(src)
    if opened is None:
        target = link_target(src)
        if target is not None:
            os.symlink(target, dst)
        return
    fd, stat = opened
    with os.fdopen(fd, "rb") as source, open(dst, "wb") as copy:
        shutil.copyfileobj(source, copy)
    os.chmod(dst, stat.st_mode & 0o7777)
    os.utime(dst, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@dataclass
class Provenance:
    """The provenance of one process's runs of one experiment; each part computed on first use.
    `inputs`: the data files to fingerprint (`kagexp.yml`'s `inputs:`), None when it names none."""

    root: Path
    exp_dir: Path
    exclude: list[str] = field(default_factory=list)
    inputs: Inputs | None = None

    @cached_property
    def git(self) -> GitState | None:
        return git_state(self.root, self.exp_dir)

    @cached_property
    def files(self) -> list[str]:
        return code_files(self.exp_dir, self.exclude)

    @cached_property
    def code_hash(self) -> str:
        return code_hash(self.exp_dir, self.files)

    @cached_property
    def environment(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "user": _user(),
            "command": [sys.executable, *sys.argv],
            "cwd": os.getcwd(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "kagexp": __version__,
            "gpus": gpu_names(),
            "git": self.git.summary() if self.git else None,
            "code_hash": self.code_hash,
            "packages": installed_packages(),
            **({"inputs": fingerprints_once(self.inputs)} if self.inputs else {}),
        }

    def snapshot(self, code_root: Path) -> Path:
        return snapshot(self.exp_dir, self.files, code_root / self.code_hash)


_importable: dict[str, bool] = {}


def importable(module: str) -> bool:
    """Whether `module` is installed, without importing it (remembered per process)."""
    if module not in _importable:
        _importable[module] = module in sys.modules or importlib.util.find_spec(module) is not None
    return _importable[module]


def seed_everything(seed: int) -> None:
    """Seed `random`, and numpy and torch when they are installed, before a run starts."""
    random.seed(seed)
    if importable("numpy"):
        import numpy

        numpy.random.seed(seed % 2**32)
    if importable("torch"):
        import torch

        torch.manual_seed(seed)
