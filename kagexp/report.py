"""`RESULTS.md` for an experiment or the whole project, from Jinja2 templates, with PNG plots.

Reports are deterministic (same runs, same bytes: no timestamps, PNGs without metadata), so they
sit well in git. A project overrides the templates with its own `report.md.j2` (one experiment)
or `report-all.md.j2` (the project) at its root.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kagexp import config, files
from kagexp.errors import NotFoundError
from kagexp.leaderboard import correlation, cv_lb_pairs
from kagexp.project import Project
from kagexp.records import RunRecord, scan
from kagexp.results import best_run, summarize, summary_rows, table, varying_keys
from kagexp.runfolder import RunFolder
from kagexp.tables import cell, render

TEMPLATES = Path(__file__).parent / "templates" / "report"
PLOTS_DIR = "results"


@dataclass(frozen=True)
class Plot:
    title: str
    path: str


@dataclass(frozen=True)
class Best:
    id: str
    value: str


def report_experiment(project: Project, exp: str) -> Path:
    """Write `exp/EXP/RESULTS.md` and its plots under `exp/EXP/results/`; returns the report's path."""
    name = project.find_exp(exp)
    exp_dir = project.exp_dir(name)
    if not exp_dir.is_dir():
        raise NotFoundError(f"no experiment exp/{name}{config.did_you_mean(name, project.experiments())}")
    records = scan(project, [name])
    metric, direction = project.settings["metric"]["name"], project.settings["metric"]["direction"]
    lineage = project.lineage(name)
    pairs = cv_lb_pairs(records, metric)
    columns, rows = table(records)
    context = {
        "exp": name,
        "note": lineage.get("note"),
        "parent": lineage.get("parent"),
        "runs": records,
        "counts": _counts(records),
        "runs_table": render(columns, rows, "md") if records else "_No runs yet._",
        "metric": metric,
        "direction": direction,
        "best": _best(records, metric, direction),
        "config_changes": _config_changes(project, lineage.get("parent"), exp_dir),
        "cv_lb": pairs,
        "correlation": correlation([(cv, lb) for _, cv, lb in pairs]),
        **_plots(lambda plt: _experiment_plots(plt, exp_dir / PLOTS_DIR, records, metric, pairs)),
    }
    path = exp_dir / "RESULTS.md"
    files.write_text(path, _render(project, "experiment.md.j2", "report.md.j2", context))
    return path


def report_project(project: Project) -> Path:
    """Write the project's `RESULTS.md`: one row per experiment, the metric across experiments."""

    metric, direction = project.settings["metric"]["name"], project.settings["metric"]["direction"]
    summaries = summarize(project)
    records = scan(project)
    pairs = cv_lb_pairs(records, metric)
    columns, rows = summary_rows(summaries, metric)
    best = [(s.name, s.best) for s in summaries if s.best is not None]
    context = {
        "project": project.settings.get("name") or project.root.name,
        "experiments": summaries,
        "table": render(columns, rows, "md"),
        "metric": metric,
        "direction": direction,
        "best": _best(records, metric, direction),
        "cv_lb": pairs,
        "correlation": correlation([(cv, lb) for _, cv, lb in pairs]),
        **_plots(lambda plt: _project_plots(plt, project.root / PLOTS_DIR, best, metric, pairs)),
    }
    path = project.root / "RESULTS.md"
    files.write_text(path, _render(project, "project.md.j2", "report-all.md.j2", context))
    return path


def _counts(records: list[RunRecord]) -> str:
    counts = Counter(record.status for record in records)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def _best(records: list[RunRecord], metric: str | None, direction: str) -> Best | None:
    found = best_run(records, metric, direction)
    return Best(found.id, cell(found.metrics[metric])) if found else None


def _config_changes(project: Project, parent: str | None, exp_dir: Path) -> list[config.Change] | None:
    if not parent or not (project.exp_root / str(parent) / "config.yml").is_file():
        return None
    old = config.read_mapping(project.exp_root / str(parent) / "config.yml")
    return config.diff(old, config.read_mapping(exp_dir / "config.yml"))


def _render(project: Project, builtin: str, override: str, context: dict) -> str:
    import jinja2

    custom = project.root / override
    if custom.is_file():
        template = jinja2.Template(custom.read_text(encoding="utf-8"), keep_trailing_newline=True)
    else:
        environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True)
        template = environment.get_template(builtin)
    return re.sub(r"\n{3,}", "\n\n", template.render(**context)).rstrip("\n") + "\n"


# --- plots -------------------------------------------------------------------------------


def _plots(draw) -> dict:
    """Draw with matplotlib when it is installed; the report says how to get plots when it is not."""
    if "matplotlib" not in sys.modules:
        # its font cache goes to the temp folder, not into the user's home
        os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), f"kagexp-matplotlib-{os.getuid()}"))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {"plots": [], "plots_missing": True}
    return {"plots": draw(plt), "plots_missing": False}


def _save(plt, fig, folder: Path, name: str, title: str) -> Plot:
    """PNG bytes without metadata (no date, no version), written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    files.write_bytes(folder / name, buffer.getvalue())
    return Plot(title, f"{PLOTS_DIR}/{name}")


def _experiment_plots(plt, folder: Path, records: list[RunRecord], metric: str | None, pairs) -> list[Plot]:
    scored = [r for r in records if metric and _number(r.metrics.get(metric))]
    plots = []
    if scored:
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(scored) + 2), 3.2))
        ax.bar([r.run for r in scored], [r.metrics[metric] for r in scored], color="tab:blue")
        ax.set_ylabel(metric)
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        plots.append(_save(plt, fig, folder, f"{_slug(metric)}_per_run.png", f"{metric} per run"))
    for key in varying_keys(scored):
        points = [(r.config[key], r.metrics[metric]) for r in scored if _number(r.config.get(key))]
        if len(points) < 2:
            continue
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.scatter([x for x, _ in points], [y for _, y in points], color="tab:blue")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        fig.tight_layout()
        plots.append(_save(plt, fig, folder, f"{_slug(metric)}_vs_{_slug(key)}.png", f"{metric} against {key}"))
    plots.extend(_history_plots(plt, folder, records))
    if len(pairs) >= 2:
        plots.append(_cv_lb_plot(plt, folder, pairs, metric))
    return plots


def _history_plots(plt, folder: Path, records: list[RunRecord]) -> list[Plot]:
    """One figure per metric logged at several steps, one line per run."""
    histories = {r.run: _history(r.path) for r in records}
    names = sorted({k for h in histories.values() for k, points in h.items() if len(points) >= 2})
    plots = []
    for name in names:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for run, history in histories.items():
            points = history.get(name, [])
            if len(points) >= 2:
                ax.plot([s for s, _ in points], [v for _, v in points], marker="o", label=run)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.legend(fontsize="small")
        fig.tight_layout()
        plots.append(_save(plt, fig, folder, f"history_{_slug(name)}.png", f"{name} by step"))
    return plots


def _history(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for entry in RunFolder(run_dir).history():
        step = entry.get("_step")
        if _number(step):
            for key, value in entry.items():
                if not key.startswith("_") and _number(value):
                    series.setdefault(key, []).append((step, value))
    return series


def _cv_lb_plot(plt, folder: Path, pairs, metric: str | None) -> Plot:
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.scatter([cv for _, cv, _ in pairs], [lb for _, _, lb in pairs], color="tab:orange")
    for run, cv, lb in pairs:
        ax.annotate(run, (cv, lb), fontsize="x-small")
    ax.set_xlabel(f"CV ({metric})")
    ax.set_ylabel("public LB")
    fig.tight_layout()
    return _save(plt, fig, folder, "cv_vs_lb.png", "CV against public LB")


def _project_plots(plt, folder: Path, best: list[tuple[str, Any]], metric: str | None, pairs) -> list[Plot]:
    plots = []
    if best:
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(best) + 2), 3.2))
        ax.plot([name for name, _ in best], [value for _, value in best], marker="o")
        ax.set_ylabel(f"best {metric}")
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        plots.append(_save(plt, fig, folder, f"best_{_slug(metric)}_by_experiment.png", f"best {metric} by experiment"))
    if len(pairs) >= 2:
        plots.append(_cv_lb_plot(plt, folder, pairs, metric))
    return plots


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _slug(text: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text or "metric")
