"""The experiment lineage: which experiment each one was copied from (`kagexp new --from`), with
what it reached. `kagexp tree`, `kagexp report --diary` (and a dashboard) read it from here.

A node's numbers come from its run folders only (the index makes this cheap): the best value of
the project's metric and its run, the change against the parent's best, the runs' compute time
(the sum of their durations) and when they ran. The parent and note are those `kagexp new`
recorded in `exp/EXP/lineage.yml`; an experiment whose parent is gone becomes a root.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kagexp.project import Project, natural
from kagexp.records import RunRecord, experiments_and_blends, scan
from kagexp.runfolder import BLENDS


@dataclass
class Node:
    """One experiment in the lineage."""

    name: str
    parent: str | None
    note: str | None
    counts: dict[str, int]
    best: float | None = None
    best_run: str | None = None
    delta: float | None = None  # best minus the parent's best; None when either has none
    compute: float = 0.0  # seconds: the sum of its runs' durations
    started: str | None = None  # the first run's start (ISO)
    ended: str | None = None  # the last run's end (ISO)
    children: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(self.counts.values())


@dataclass
class Lineage:
    """Every experiment as a node, the roots in number order; `metric` is the project's."""

    nodes: dict[str, Node]
    roots: list[str]
    metric: str | None
    direction: str

    def walk(self) -> list[tuple[Node, str]]:
        """Depth first, children in number order: each node with its tree prefix (`├── `, `│   └── `)."""
        rows: list[tuple[Node, str]] = []
        for name in self.roots:
            self._walk(name, "", "", rows)
        return rows

    def _walk(self, name: str, prefix: str, branch: str, rows: list) -> None:
        node = self.nodes[name]
        rows.append((node, prefix + branch))
        indent = prefix + ("" if not branch else "    " if branch.startswith("└") else "│   ")
        for i, child in enumerate(node.children):
            self._walk(child, indent, "└── " if i == len(node.children) - 1 else "├── ", rows)

    def chronological(self) -> list[Node]:
        """The experiments in the order their runs started (those that never ran last, by number)."""
        ran = sorted((n for n in self.nodes.values() if n.started), key=lambda n: (n.started, natural(n.name)))
        idle = [n for n in self.nodes.values() if not n.started]
        return ran + sorted(idle, key=lambda n: natural(n.name))

    def improved(self, value: float | None, than: float | None) -> bool:
        """Whether `value` beats `than` in the metric's direction (anything beats nothing)."""
        if value is None:
            return False
        return than is None or (value > than if self.direction == "max" else value < than)


def lineage(project: Project, records: list[RunRecord] | None = None) -> Lineage:
    """The whole project's lineage, from `lineage.yml` files and the run folders; the blends are a
    root of their own, `blend`."""
    metric = project.settings["metric"]
    names = experiments_and_blends(project)
    by_exp: dict[str, list[RunRecord]] = {name: [] for name in names}
    for record in scan(project, names) if records is None else records:
        by_exp.setdefault(record.exp, []).append(record)
    nodes = {name: _node(project, name, by_exp[name], metric["name"], metric["direction"]) for name in names}
    roots = []
    for name in names:
        parent = nodes[name].parent
        if parent in nodes and parent != name and not _descends(nodes, parent, name):
            nodes[parent].children.append(name)
        else:  # no parent, one that is gone, or a loop written by hand
            nodes[name].parent = None
            roots.append(name)
    for node in nodes.values():
        parent = nodes.get(node.parent) if node.parent else None
        if parent and node.best is not None and parent.best is not None:
            node.delta = node.best - parent.best
    return Lineage(nodes, roots, metric["name"], metric["direction"])


def _descends(nodes: dict[str, Node], name: str, ancestor: str) -> bool:
    """Whether `name` has `ancestor` up its parent chain (a hand-edited loop must not hang the tree)."""
    seen = set()
    while name in nodes and name not in seen:
        if name == ancestor:
            return True
        seen.add(name)
        name = nodes[name].parent or ""
    return False


def _node(project: Project, name: str, records: list[RunRecord], metric: str | None, direction: str) -> Node:
    from kagexp.results import best_run

    recorded = project.lineage(name) if project.exp_dir(name).is_dir() else {}
    parent, note = recorded.get("parent"), recorded.get("note")
    node = Node(
        name,
        str(parent) if parent else None,
        str(note) if note else None,
        dict(Counter(r.status for r in records)),
    )
    best = best_run(records, metric, direction)
    if best is not None and metric:
        node.best, node.best_run = best.metrics[metric], best.run
    node.compute = round(sum(_seconds(r.meta.get("duration")) for r in records), 3)
    node.started = min(_texts(r.meta.get("started") for r in records), default=None)
    node.ended = max(_texts(r.meta.get("ended") for r in records), default=None)
    return node


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _texts(values) -> list[str]:
    return [v for v in values if isinstance(v, str) and v]


def elapsed(seconds: float) -> str:
    """`4.2s`, `12m 05s`, `3h 07m`: a duration as a person reads it."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


# --- as a table (`kagexp tree`) -----------------------------------------------------------


def tree_table(lin: Lineage, machine: bool = False) -> tuple[list[str], list[list[Any]]]:
    """`kagexp tree`: the tree drawn in the first column for reading; for csv and json one typed
    row per experiment with its parent, the change as a number and the time in seconds."""
    metric = lin.metric or "metric"
    columns = ["exp", *(["parent"] if machine else []), f"best {metric}", "best run", "vs parent", "runs", "time"]
    rows = []
    for node, prefix in lin.walk():
        if machine:
            rows.append(
                [node.name, node.parent, node.best, node.best_run, node.delta, node.runs, node.compute, node.note]
            )
            continue
        delta = f"{node.delta:+.6g}" if node.delta is not None else ""
        time = elapsed(node.compute) if node.runs else ""
        rows.append([prefix + node.name, node.best, node.best_run, delta, node.runs, time, node.note])
    return [*columns, "note"], rows


# --- as a diary (`kagexp report --diary`) --------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One experiment in the diary, in the order they ran, with the project's state after it."""

    node: Node
    base: str | None  # `exp002 (cv 0.8177)`
    best: str | None  # `cv 0.825 (run002), +0.0073 against exp002`
    runs: str  # `3 done, 1 failed`
    time: str  # its runs' compute time
    best_so_far: str | None  # `cv 0.825 (exp004/run002)`
    new_best: bool
    total_time: str  # compute time of the project so far


def diary(lin: Lineage) -> list[Entry]:
    """The experiments in the order they ran, each with its base, the best so far and the time spent."""
    entries, best, where, total = [], None, None, 0.0
    for node in lin.chronological():
        new_best = lin.improved(node.best, best)
        if new_best:
            best, where = node.best, f"{node.name}/{node.best_run}"
        total += node.compute
        parent = lin.nodes.get(node.parent) if node.parent else None
        base = f"{parent.name} ({_scored(lin.metric, parent.best)})" if parent else None
        if node.name == BLENDS:
            base = "the experiments' runs, blended (`kagexp blend`)"
        so_far = f"{lin.metric} {_number(best)} ({where})" if best is not None else None
        runs = ", ".join(f"{n} {status}" for status, n in sorted(node.counts.items())) or "none yet"
        entries.append(
            Entry(node, base, _best(lin, node), runs, elapsed(node.compute), so_far, new_best, elapsed(total))
        )
    return entries


def _best(lin: Lineage, node: Node) -> str | None:
    if node.best is None:
        return None
    against = f", {node.delta:+.6g} against {node.parent}" if node.delta is not None else ""
    return f"{lin.metric} {_number(node.best)} ({node.best_run}){against}"


def _scored(metric: str | None, value: float | None) -> str:
    return f"{metric} {_number(value)}" if value is not None else f"no {metric} yet"


def _number(value: float | None) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
