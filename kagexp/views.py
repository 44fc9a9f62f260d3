"""Text for the terminal: how `kagexp show`, `diff`, `ls` and `rerun` print what the library found."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kagexp import runfolder
from kagexp.diff import Comparison
from kagexp.records import RunRecord
from kagexp.tables import cell as _value
from kagexp.tables import render

if TYPE_CHECKING:
    from kagexp.rerun import Outcome


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


def record_text(record: RunRecord, metric: str | None = None) -> list[str]:
    """Everything about one run, for `kagexp show`; its LB scores beside the project's `metric`."""
    meta = record.meta
    lines = [f"{record.id}  {record.status}" + (f"  (attempt {meta['attempt']})" if meta.get("attempt") else "")]
    if meta.get("started"):
        lines.append(f"started {meta['started']}  ended {meta.get('ended') or '-'}  duration {meta.get('duration')} s")
    if meta.get("error"):
        lines.append(f"error: {meta['error']}")
    folder = record.run_folder
    if isinstance(meta.get("blend"), dict):
        lines.extend(_blend_lines(meta["blend"]))
    else:
        lines.append(f"override ({runfolder.OVERRIDE}):")
        lines.extend("  " + line for line in folder.override_text().splitlines() or ["(base config)"])
    lines.append(f"config ({runfolder.CONFIG}):")
    lines.extend("  " + line for line in folder.config_text().splitlines())
    lines.append("metrics:")
    lines.extend(f"  {k} = {_value(v)}" for k, v in record.metrics.items())
    lines.extend(_fold_lines(folder.history()))
    lines.extend(_lb_lines(folder.lb_history(), record.metrics.get(metric) if metric else None, metric))
    lines.extend(_provenance_lines(meta))
    lines.append("files:")
    lines.extend(f"  {name}  {size} B" for name, size in folder.listed_files())
    return lines


def _fold_lines(history: list[dict]) -> list[str]:
    """What `ctx.log(…, fold=k)` logged, a row per fold (its latest values): the scores behind a mean."""
    folds: dict[int, dict] = {}
    for entry in history:
        fold = entry.get("_fold")
        if type(fold) is int:
            folds.setdefault(fold, {}).update((k, v) for k, v in entry.items() if not k.startswith("_"))
    if not folds:
        return []
    names = list(dict.fromkeys(name for values in folds.values() for name in values))
    rows = [[fold, *(values.get(name) for name in names)] for fold, values in sorted(folds.items())]
    return ["per fold:", *("  " + line for line in render(["fold", *names], rows, "table").splitlines())]


def _blend_lines(blend: dict) -> list[str]:
    """A blend has no override: its method, and each member's weight and OOF score, as `kagexp blend` printed."""
    metric, members, weights = blend.get("metric"), blend.get("members"), blend.get("weights")
    scores = blend.get("member_cv") if isinstance(blend.get("member_cv"), dict) else {}
    lines = [f"blend: {_value(blend.get('method'))}, {_value(metric)} {_value(blend.get('cv'))} over all OOF rows"]
    if not isinstance(members, list) or not isinstance(weights, list):
        return lines
    rows = [[member, _value(weight), _value(scores.get(member))] for member, weight in zip(members, weights)]
    table = render(["member", "weight", f"oof {_value(metric)}"], rows, "table")
    lines.extend("  " + line for line in table.splitlines())
    if blend.get("fold_weights"):
        lines.append(f"  (test weights fitted on every row; each fold's OOF weights in {runfolder.META})")
    return lines


def _lb_lines(history: list[dict], cv: object, metric: str | None) -> list[str]:
    """The run's leaderboard scores, oldest first, the latest beside its CV."""
    if not history:
        return []
    latest = history[-1]["score"]
    beside = f"{metric} {_value(cv)} | " if cv is not None else ""
    lines = [f"leaderboard: {beside}LB {_value(latest)}" + (f" (latest of {len(history)})" if len(history) > 1 else "")]
    for entry in history:
        when = str(entry.get("time") or "")[:19].replace("T", " ")
        note = f"  {entry['note']}" if entry.get("note") else ""
        private = f" (private {_value(entry['private'])})" if entry.get("private") is not None else ""
        lines.append(f"  {_value(entry['score'])}{private}  {when}{note}".rstrip())
    return lines


def _provenance_lines(meta: dict) -> list[str]:
    """The provenance part of `show`; `meta.json` is printed as found, whatever the shape of a value."""
    if not meta.get("host"):
        return []
    if isinstance(meta.get("blend"), dict):  # made by `kagexp blend`: no code, seed, user, GPUs or packages
        return [
            "provenance:",
            f"  host {meta.get('host')}  pid {meta.get('pid')}",
            f"  python {meta.get('python')}  kagexp {meta.get('kagexp')}  {meta.get('platform')}",
            f"  {_git_line(meta.get('git'))}",
            f"  command: {_joined(meta.get('command'), ' ')}",
        ]
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
        *_rerun_lines(meta),
    ]


def _rerun_lines(meta: dict) -> list[str]:
    """How many input files the run fingerprinted; for a rerun, the attempt it ran again and what changed."""
    lines = []
    if isinstance(meta.get("inputs"), dict):
        lines.append(f"  inputs: {len(meta['inputs'])} file(s) fingerprinted in {runfolder.META}")
    rerun_of = meta.get("rerun_of")
    if isinstance(rerun_of, dict):
        changed = rerun_of.get("changed")
        shown = ", ".join(changed) if isinstance(changed, dict) and changed else "nothing"
        lines.append(f"  rerun of attempt {rerun_of.get('attempt')}; changed since: {shown}")
    return lines


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


def rerun_text(outcome: Outcome, root: Path, check: bool = False, tol: float | None = None) -> list[str]:
    """Lines of `kagexp rerun` for one run: how it ended and where the original attempt is kept,
    what changed in the environment since, and with `check` the metrics that are not identical."""
    target, result = outcome.target, outcome.result
    if result.status == "busy":
        return [f"{target.label}: not run again: {result.message}"]
    kept = f"attempt {target.attempt} kept in {_relative(outcome.original.path, root)}"
    ended = "done" if result.status == "done" else result.status.upper()
    message = f": {result.message}" if result.message and result.status != "done" else ""
    lines = [f"{target.label} rerun {ended} in {result.duration:.2f} s{message} ({kept})"]
    if outcome.changed:
        lines.append(f"  environment changed since attempt {target.attempt}:")
        lines.extend(f"    {key}: {_value(a) or '-'} -> {_value(b) or '-'}" for key, (a, b) in outcome.changed.items())
    else:
        lines.append(f"  environment: same as attempt {target.attempt}")
    if check:
        lines.extend(_check_lines(outcome, tol))
    return lines


def _check_lines(outcome: Outcome, tol: float | None) -> list[str]:
    """`metrics: 3 identical to attempt 1`, or the metrics that differ as a small table."""
    from kagexp.rerun import ABSENT

    checks, attempt = outcome.checks, outcome.target.attempt
    differ = [c for c in checks if c.original != c.rerun]  # ABSENT equals nothing
    if not differ:
        return [f"  metrics: {len(checks)} identical to attempt {attempt}"]
    bad = len(outcome.mismatches)
    rule = f"relative tolerance {tol:g}" if tol is not None else "exact"
    verdict = f"{bad} of {len(checks)} differ from" if bad else f"all {len(checks)} match"
    lines = [f"  metrics: {verdict} attempt {attempt} ({rule}):"]
    columns = ["metric", f"attempt {attempt}", "rerun", "rel. diff", ""]
    rows = [
        [
            c.key,
            "(not logged)" if c.original is ABSENT else _exact(c.original),
            "(not logged)" if c.rerun is ABSENT else _exact(c.rerun),
            f"{c.difference:.3g}" if c.difference is not None else "",
            "ok" if c.ok else "MISMATCH",
        ]
        for c in differ
    ]
    lines.extend("    " + line for line in render(columns, rows, "table").splitlines())
    return lines


def _exact(value: object) -> object:
    """A float in full (`repr`): two values that differ must not print the same."""
    return repr(value) if isinstance(value, float) else value


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
