"""Compare two experiments, two runs or two folders: config by dotted key, code file by file,
and for runs also metrics and environment."""

from __future__ import annotations

import difflib
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp import config
from kagexp.errors import ConfigError, InvalidNameError, KagexpError, NotFoundError
from kagexp.project import Project, unknown
from kagexp.provenance import canonical_name, code_files
from kagexp.records import RunRecord, find_run
from kagexp.runfolder import code_dir


@dataclass
class Side:
    """One side of a comparison: where its code is, its config, and its run when it is one."""

    label: str
    code_dir: Path | None
    config: dict
    record: RunRecord | None = None


@dataclass(frozen=True)
class FileChange:
    path: str
    kind: str
    diff: str = ""


@dataclass
class Comparison:
    left: Side
    right: Side
    config: list[config.Change]
    files: list[FileChange]
    metrics: list[tuple[str, Any, Any, Any]] = field(default_factory=list)
    environment: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        metrics_differ = any(a != b for _, a, b, _ in self.metrics)
        return bool(self.config or self.files or metrics_differ or self.environment)


def resolve(project: Project, text: str) -> Side:
    """A run (`exp003/run002`), an experiment (`exp003`, `3`) or a folder path inside the project."""
    if not text.strip():
        raise NotFoundError(f"{text!r} is not an experiment, run or folder; write e.g. exp003 or exp003/run002")
    if text.count("/") == 1 and not Path(text).is_dir():
        return _run_side(project, find_run(project, text))
    try:
        name = project.find_exp(text)
    except KagexpError:
        name = None
    if name and project.exp_dir(name).is_dir():
        return _folder_side(name, project.exp_dir(name))
    if Path(text).is_dir():
        if not Path(text).resolve().is_relative_to(project.root):
            raise InvalidNameError(f"{text!r} is outside the project {project.root}; kagexp compares what is inside it")
        return _folder_side(text, Path(text))
    raise NotFoundError(f"no experiment, run or folder {text!r}{unknown(name or text, project.experiments())}")


def _folder_side(label: str, folder: Path) -> Side:
    path = folder / "config.yml"
    return Side(label, folder, config.read_mapping(path) if path.is_file() else {})


def _run_side(project: Project, record: RunRecord) -> Side:
    snapshot = code_dir(project.output_dir(record.exp), record.meta.get("code_hash"))
    return Side(record.id, snapshot, record.run_folder.config(), record)


def parent_of(project: Project, text: str) -> str:
    """`kagexp diff exp042` compares with the parent that `kagexp new` recorded."""
    name = project.find_exp(text)
    if not project.exp_dir(name).is_dir():
        raise NotFoundError(f"no experiment exp/{name}{unknown(name, project.experiments())}")
    parent = project.lineage(name).get("parent")
    if not parent:
        raise ConfigError(f"{name} has no recorded parent (exp/{name}/lineage.yml); name two experiments to compare")
    return str(parent)


def compare(project: Project, a: str, b: str | None = None) -> Comparison:
    """`a` against `b`; with `b` left out, `a`'s parent against `a`."""
    if b is None:
        a, b = parent_of(project, a), a
    left, right = resolve(project, a), resolve(project, b)
    comparison = Comparison(left, right, config.diff(left.config, right.config), compare_files(left, right, project))
    if left.record and right.record:
        comparison.metrics = compare_metrics(left.record.metrics, right.record.metrics)
        comparison.environment = compare_environment(left.record.meta, right.record.meta)
    return comparison


def compare_files(left: Side, right: Side, project: Project) -> list[FileChange]:
    """Files added, removed and changed between the two code folders, with unified diffs."""
    if left.code_dir is None or right.code_dir is None:
        return []
    exclude = project.settings["new"]["exclude"]
    a, b = set(code_files(left.code_dir, exclude)), set(code_files(right.code_dir, exclude))
    changes = []
    for path in sorted(a | b):
        if path not in b:
            changes.append(FileChange(path, "removed"))
        elif path not in a:
            changes.append(FileChange(path, "added"))
        else:
            old, new = (left.code_dir / path).read_bytes(), (right.code_dir / path).read_bytes()
            if old != new:
                changes.append(FileChange(path, "changed", _unified(old, new, left.label, right.label, path)))
    return changes


def _unified(old: bytes, new: bytes, left: str, right: str, path: str) -> str:
    try:
        a, b = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return "binary files differ\n"
    lines = difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), f"{left}/{path}", f"{right}/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare_metrics(a: dict, b: dict) -> list[tuple[str, Any, Any, Any]]:
    """Each metric of either run, side by side, with the difference when both are numbers."""
    rows = []
    for key in dict.fromkeys([*a, *b]):
        left, right = a.get(key), b.get(key)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        rows.append((key, left, right, right - left if numbers else None))
    return rows


ENVIRONMENT_KEYS = (
    "git.commit",
    "git.branch",
    "git.dirty",
    "python",
    "platform",
    "host",
    "gpus",
    "kagexp",
    "code_hash",
)


def compare_environment(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """What differs between two runs' machines: git state, python, host, GPUs, package versions."""
    flat_a, flat_b = _without_packages(a), _without_packages(b)
    rows = [(k, flat_a.get(k), flat_b.get(k)) for k in ENVIRONMENT_KEYS if flat_a.get(k) != flat_b.get(k)]
    packages_a, packages_b = _packages(a), _packages(b)
    for name in sorted(set(packages_a) | set(packages_b)):
        if packages_a.get(name) != packages_b.get(name):
            rows.append((f"packages.{name}", packages_a.get(name), packages_b.get(name)))
    return rows


def _packages(meta: dict) -> dict:
    """Versions by canonical name: runs recorded before names were canonical spell them as their metadata did."""
    packages = meta.get("packages")
    return {canonical_name(k): v for k, v in packages.items()} if isinstance(packages, dict) else {}


def _without_packages(meta: dict) -> dict:
    return config.flatten({k: v for k, v in meta.items() if k != "packages"})


def open_tool(tool: str, left: Side, right: Side) -> int:
    """Open an external diff tool on the two code folders; the command is split, never run by a shell."""
    if left.code_dir is None or right.code_dir is None:
        raise NotFoundError("no code folder to compare (a run without its code snapshot)")
    command = [*shlex.split(tool), str(left.code_dir), str(right.code_dir)]
    try:
        return subprocess.call(command)
    except FileNotFoundError:
        raise NotFoundError(f"diff tool {command[0]!r} not found on PATH") from None
