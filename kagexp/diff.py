"""Compare two experiments, two runs or two folders: config by dotted key, code file by file,
and for runs also metrics and environment."""

from __future__ import annotations

import difflib
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagexp import config
from kagexp.errors import ConfigError, InvalidNameError, KagexpError, NotFoundError, UsageError
from kagexp.project import Project, unknown
from kagexp.provenance import CodeEntry, canonical_name, code_files, read_code
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
    if "/" in text.strip().rstrip("/"):
        raise UsageError(f"a run is compared with another run: name both, e.g. kagexp diff {text} exp001/run001")
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
    """Files added, removed and changed between the two code folders, with unified diffs; links
    compare by their target text, and FIFOs, sockets and devices are no code (never opened)."""
    if left.code_dir is None or right.code_dir is None:
        return []
    exclude = project.settings["new"]["exclude"]
    a, b = set(code_files(left.code_dir, exclude)), set(code_files(right.code_dir, exclude))
    changes = []
    for path in sorted(a | b):
        old = read_code(left.code_dir / path) if path in a else None
        new = read_code(right.code_dir / path) if path in b else None
        change = _change(path, old, new, left.label, right.label)
        if change:
            changes.append(change)
    return changes


def _change(path: str, old: CodeEntry | None, new: CodeEntry | None, left: str, right: str) -> FileChange | None:
    if old == new:
        return None
    if old is None:
        return FileChange(path, "added")
    if new is None:
        return FileChange(path, "removed")
    return FileChange(path, "changed", _unified(_text(old), _text(new), left, right, path))


def _text(entry: CodeEntry) -> str | None:
    """What a diff shows of a file: its text (None when binary); of a link, where it points."""
    if entry.link:
        return f"symlink to {entry.data.decode('utf-8', 'replace')}\n"
    try:
        return entry.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _unified(a: str | None, b: str | None, left: str, right: str, path: str) -> str:
    if a is None or b is None:
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
    "git",  # only when it is no mapping: null (no repository) or a damaged value
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
    """What differs between two runs' machines: git state, python, host, GPUs, package versions,
    input files. `meta.json` is read as found: a value of another shape (`"git": "x"`) is compared as it is."""
    flat_a, flat_b = _without_packages(a), _without_packages(b)
    rows = [(k, flat_a.get(k), flat_b.get(k)) for k in ENVIRONMENT_KEYS if flat_a.get(k) != flat_b.get(k)]
    packages_a, packages_b = _packages(a), _packages(b)
    if not packages_a or not packages_b:  # one side recorded none (a blend): unknown is not changed
        packages_a = packages_b = {}
    for name in sorted(set(packages_a) | set(packages_b)):
        if packages_a.get(name) != packages_b.get(name):
            rows.append((f"packages.{name}", packages_a.get(name), packages_b.get(name)))
    return rows + compare_inputs(a.get("inputs"), b.get("inputs"))


def compare_inputs(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """The input files whose content differs (by sha256), or that only one run read, shown as
    `size B sha256:123456789abc`. Nothing when either run recorded no inputs: unknown is not changed."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return []
    rows = []
    for name in sorted(set(a) | set(b)):
        old, new = _input_text(a.get(name)), _input_text(b.get(name))
        if old != new:
            rows.append((f"inputs.{name}", old, new))
    return rows


def _input_text(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    return f"{entry.get('size')} B sha256:{str(entry.get('sha256'))[:12]}"


def _packages(meta: dict) -> dict:
    """Versions by canonical name: runs recorded before names were canonical spell them as their metadata did."""
    packages = meta.get("packages")
    return {canonical_name(k): v for k, v in packages.items()} if isinstance(packages, dict) else {}


def _without_packages(meta: dict) -> dict:
    return config.flatten({k: v for k, v in meta.items() if k not in ("packages", "inputs")})


def tool_command(tool: str) -> list[str]:
    """`--tool` split as a shell would (quotes, escapes), never run by one; a clear error when
    it does not split (an unclosed quote) or names no program."""
    try:
        words = shlex.split(tool)
    except ValueError as exc:
        raise UsageError(f"--tool {tool!r}: {exc} (close the quote, or escape it with a backslash)") from None
    if not words:
        raise UsageError("--tool names no program; give a diff tool, e.g. --tool meld")
    return words


def open_tool(tool: str, left: Side, right: Side) -> int:
    """Open an external diff tool on the two code folders; the command is split, never run by a shell."""
    words = tool_command(tool)
    if left.code_dir is None or right.code_dir is None:
        raise NotFoundError("no code folder to compare (a run without its code snapshot)")
    executable = shutil.which(words[0])  # not exec's own search: a PATH folder it may not enter says EACCES
    if executable is None:
        raise NotFoundError(f"diff tool {words[0]!r} not found on PATH")
    return subprocess.call([executable, *words[1:], str(left.code_dir), str(right.code_dir)])
