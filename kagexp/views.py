"""Text for the terminal: how `kagexp show`, `diff` and `ls` print what the library found."""

from __future__ import annotations

from kagexp import runfolder
from kagexp.diff import Comparison
from kagexp.records import RunRecord
from kagexp.tables import cell as _value


def comparison_text(c: Comparison, stat: bool = False, parts: tuple[str, ...] = ("config", "code")) -> list[str]:
    """Lines of `kagexp diff`: config by dotted key, files, then unified diffs (not with `stat`)."""
    lines = [f"--- {c.left.label}", f"+++ {c.right.label}"]
    if "config" in parts:
        lines.append(f"config: {len(c.config)} key(s) differ" if c.config else "config: same")
        lines.extend(f"  {change}" for change in c.config)
    if c.metrics and "config" in parts:
        lines.append("metrics:")
        for key, a, b, delta in c.metrics:
            shown = f"  (delta {delta:+.6g})" if delta is not None else ""
            lines.append(f"  {key}: {_value(a) or '-'} | {_value(b) or '-'}{shown}")
    if c.environment and "config" in parts:
        lines.append("environment:")
        lines.extend(f"  {key}: {_value(a) or '-'} -> {_value(b) or '-'}" for key, a, b in c.environment)
    if "code" in parts:
        lines.append(f"files: {len(c.files)} differ" if c.files else "files: same")
        lines.extend(f"  {f.kind:8} {f.path}" for f in c.files)
        if not stat:
            for change in c.files:
                if change.diff:
                    lines.extend(change.diff.rstrip("\n").split("\n"))
    return lines


def record_text(record: RunRecord) -> list[str]:
    """Everything about one run, for `kagexp show`."""
    meta = record.meta
    lines = [f"{record.id}  {record.status}" + (f"  (attempt {meta['attempt']})" if meta.get("attempt") else "")]
    if meta.get("started"):
        lines.append(f"started {meta['started']}  ended {meta.get('ended') or '-'}  duration {meta.get('duration')} s")
    if meta.get("error"):
        lines.append(f"error: {meta['error']}")
    folder = record.run_folder
    lines.append(f"override ({runfolder.OVERRIDE}):")
    lines.extend("  " + line for line in folder.override_text().splitlines() or ["(base config)"])
    lines.append(f"config ({runfolder.CONFIG}):")
    lines.extend("  " + line for line in folder.config_text().splitlines())
    lines.append("metrics:")
    lines.extend(f"  {k} = {_value(v)}" for k, v in record.metrics.items())
    lines.extend(_provenance_lines(meta))
    lines.append("files:")
    lines.extend(f"  {name}  {size} B" for name, size in folder.listed_files())
    return lines


def _provenance_lines(meta: dict) -> list[str]:
    """The provenance part of `show`; `meta.json` is printed as found, whatever the shape of a value."""
    if not meta.get("host"):
        return []
    packages = meta.get("packages")
    return [
        "provenance:",
        f"  host {meta.get('host')}  pid {meta.get('pid')}  user {meta.get('user')}",
        f"  python {meta.get('python')}  kagexp {meta.get('kagexp')}  {meta.get('platform')}",
        f"  gpus: {_joined(meta.get('gpus'), ', ') or 'none'}",
        f"  {_git_line(meta.get('git'))}",
        f"  code {meta.get('code_hash')}  seed {meta.get('seed')}",
        f"  command: {_joined(meta.get('command'), ' ')}",
        f"  packages: {len(packages) if isinstance(packages, dict) else 0} recorded in {runfolder.META}",
    ]


def _git_line(git: object) -> str:
    if not git:
        return "git: not a repository"
    if not isinstance(git, dict):
        return f"git: {_value(git)}"
    where = f"{_value(git.get('commit')) or 'no commit'} on {_value(git.get('branch')) or 'detached'}"
    return f"git: {where}" + (f", dirty ({_diff_note(git)})" if git.get("dirty") else ", clean")


def _joined(value: object, separator: str) -> str:
    """A list (the command line, the GPUs) joined, each item as a table cell shows it; other values as they are."""
    if isinstance(value, list):
        return separator.join(_value(item) for item in value)
    return _value(value)


def _diff_note(git: dict) -> str:
    """Where the uncommitted changes the run ran with are kept, or why they are not."""
    if git.get("diff"):
        return f"its changes in {git['diff']}"
    return git.get("diff_note") or "changes not recorded"
