"""`RESULTS.md` for an experiment or the whole project, from Jinja2 templates, with PNG plots.

Reports are deterministic (same runs, same bytes: no timestamps, PNGs without a date or version),
so they sit well in git. A project overrides the templates with its own `report.md.j2` (one
experiment) or `report-all.md.j2` (the project) at its root. Everything is rendered in memory,
text and plots, before the first write: a report that cannot be made writes nothing.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagexp import config, files
from kagexp.errors import NotFoundError, TargetExistsError, TemplateError
from kagexp.leaderboard import correlation, cv_lb_pairs
from kagexp.project import Project
from kagexp.records import RunRecord, experiments_and_blends, scan
from kagexp.results import (
    best_run,
    missing_metric,
    rank_correlation,
    summarize,
    summary_rows,
    table,
    varying_keys,
)
from kagexp.runfolder import BLENDS, RunFolder
from kagexp.tables import cell, render

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates" / "report"
REPORT_FILE = "RESULTS.md"
DIARY_FILE = "DIARY.md"
PLOTS_DIR = "results"
# The PNG text chunk that marks a plot as the report's own: only such files are ever deleted.
SOFTWARE = "kagexp report"
MARK = b"tEXtSoftware\0" + SOFTWARE.encode()
TEMPLATE_HINT = "fix the template, or delete it to use the built-in one"


@dataclass(frozen=True)
class Plot:
    """A plot drawn in memory: nothing is written until the whole report has rendered."""

    title: str
    path: str  # as the report links it: `results/NAME.png`
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Best:
    id: str
    value: str


@dataclass(frozen=True)
class Written:
    """A report written: its path, and what the command should warn about."""

    path: Path
    warnings: list[str]


def report_experiment(project: Project, exp: str) -> Written:
    """Write `exp/EXP/RESULTS.md` and its plots under `exp/EXP/results/`."""
    if exp.strip().rstrip("/") == BLENDS:
        raise NotFoundError(
            "the blends have no experiment folder to write RESULTS.md in; "
            "see them with `kagexp runs blend` or in `kagexp dashboard`"
        )
    name = project.find_exp(exp)
    exp_dir = project.exp_dir(name)
    if not exp_dir.is_dir():
        raise NotFoundError(f"no experiment exp/{name}{config.did_you_mean(name, project.experiments())}")
    template = _template(project, "experiment.md.j2", "report.md.j2")
    records = scan(project, [name])
    metric, direction = project.settings["metric"]["name"], project.settings["metric"]["direction"]
    lineage = project.lineage(name)
    pairs = cv_lb_pairs(records, metric)
    columns, rows = table(records, metric=metric)
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
        **_cv_lb_context(pairs, metric),
        **_plots(lambda plt: _experiment_plots(plt, records, metric, pairs)),
    }
    path = _write(project, exp_dir, _render(template, context), context["plots"])
    return Written(path, _warnings(records, metric))


def report_project(project: Project) -> Written:
    """Write the project's `RESULTS.md`: one row per experiment, the metric across experiments."""
    template = _template(project, "project.md.j2", "report-all.md.j2")
    metric, direction = project.settings["metric"]["name"], project.settings["metric"]["direction"]
    records = scan(project, experiments_and_blends(project))
    summaries = summarize(project, records)
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
        **_cv_lb_context(pairs, metric),
        **_plots(lambda plt: _project_plots(plt, best, metric, pairs)),
    }
    path = _write(project, project.root, _render(template, context), context["plots"])
    return Written(path, _warnings(records, metric))


def report_diary(project: Project) -> Written:
    """Write the project's `DIARY.md`: each experiment in the order it ran, with its base, its best,
    the best so far and the time spent, like a hand-kept competition README; from the run folders."""
    from kagexp.lineage import diary, lineage

    template = _template(project, "diary.md.j2", DIARY_FILE + ".j2")
    records = scan(project, experiments_and_blends(project))
    lin = lineage(project, records)
    context = {
        "project": project.settings.get("name") or project.root.name,
        "metric": lin.metric,
        "direction": lin.direction,
        "entries": diary(lin),
    }
    path = project.root / DIARY_FILE
    text = _render(template, context)
    _check_target(project, path)
    files.write_text(path, text)
    return Written(path, _warnings(records, lin.metric))


def _cv_lb_context(pairs: list[tuple[str, float, float]], metric: str | None) -> dict:
    """CV and LB side by side (a markdown table), with Spearman's rank correlation and Pearson's."""
    rows = [[run, cv, lb] for run, cv, lb in pairs]
    return {
        "cv_lb": pairs,
        "cv_lb_table": render(["run", f"CV ({metric})", "LB"], rows, "md") if pairs else "",
        "correlation": correlation([(cv, lb) for _, cv, lb in pairs]),
        "rank_correlation": rank_correlation(pairs),
    }


def _warnings(records: list[RunRecord], metric: str | None) -> list[str]:
    warning = missing_metric(records, metric)
    return [warning] if warning else []


def _counts(records: list[RunRecord]) -> str:
    counts = Counter(record.status for record in records)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def _best(records: list[RunRecord], metric: str | None, direction: str) -> Best | None:
    found = best_run(records, metric, direction)
    return Best(found.id, cell(found.metrics[metric])) if found else None


def _config_changes(project: Project, parent: str | None, exp_dir: Path) -> list[config.Change] | None:
    if not parent or not (project.exp_root / str(parent) / "config.yml").is_file():
        return None
    if not (exp_dir / "config.yml").is_file():
        return None
    old = config.read_mapping(project.exp_root / str(parent) / "config.yml")
    return config.diff(old, config.read_mapping(exp_dir / "config.yml"))


def _template(project: Project, builtin: str, override: str) -> jinja2.Template:
    """The project's own template when it has one, else the built-in one: read and compiled
    before anything is drawn, so that a broken one fails at once."""
    import jinja2

    custom = project.root / override
    if not os.path.lexists(custom):
        return _environment(jinja2.FileSystemLoader(TEMPLATES)).get_template(builtin)
    source = _template_source(custom, override)
    loader = jinja2.FunctionLoader(lambda _: (source, str(custom), lambda: True))
    try:
        return _environment(loader).get_template(override)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{override}:{exc.lineno}: {str(exc.message).rstrip('.')}; {TEMPLATE_HINT}") from None


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    """Undefined names are errors, not empty text: a typo in a template is found, like one in a config."""
    import jinja2

    return jinja2.Environment(loader=loader, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def _render(template: jinja2.Template, context: dict) -> str:
    """The report's text, in memory. A project's own template is the project's code, so whatever
    it raises is the user's to fix: one line naming the template and its line (in a built-in
    template, an error is a bug of kagexp's, with its traceback)."""
    try:
        text = template.render(**context)
    except Exception as exc:
        if Path(template.filename).parent == TEMPLATES:
            raise
        line = _template_line(exc, template.filename)
        where = f"{template.name}:{line}" if line else template.name
        message = (str(exc).splitlines() or [""])[0].rstrip(".")
        raise TemplateError(f"{where}: {type(exc).__name__}: {message}; {TEMPLATE_HINT}") from None
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def _template_source(path: Path, name: str) -> str:
    data = files.read_regular(path, follow=True)
    if data is None:
        problem = "not a readable file (a folder, a FIFO or a broken link)"
        raise TemplateError(f"{name}: {problem}; make it a file, or remove it to use the built-in template")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"not UTF-8 (byte 0x{data[exc.start]:02x})"
        raise TemplateError(f"{name}:{line}: {problem}; save the template as UTF-8") from None


def _template_line(exc: BaseException, filename: str) -> int | None:
    """The template line that raised: Jinja2 rewrites tracebacks so that frames point into the template."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == filename]
    return lines[-1] if lines else None


# --- writing ---------------------------------------------------------------------------


def _write(project: Project, folder: Path, text: str, plots: list[Plot]) -> Path:
    """Write what was rendered in memory: the plots, then RESULTS.md; then delete the plots an
    earlier report made that neither this one nor any other page of the project links (a README
    or a note that shows a plot keeps it). Every target is checked before the first write."""
    report, plots_dir = folder / REPORT_FILE, folder / PLOTS_DIR
    _check_target(project, report)
    if plots:
        _check_plots_dir(project, plots_dir)
        for plot in plots:
            _check_target(project, folder / plot.path)
        plots_dir.mkdir(exist_ok=True)
    for plot in plots:
        files.write_bytes(folder / plot.path, plot.data)
    linked = {Path(plot.path).name for plot in plots} | _linked_elsewhere(project, report, plots_dir)
    _remove_stale_plots(plots_dir, linked)
    files.write_text(report, text)
    return report


def _check_target(project: Project, path: Path) -> None:
    """A file the report replaces: absent, a file or a link (replaced, never written through)."""
    mode = _mode(path)
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise TargetExistsError(
            f"{_relative(project, path)}: is {_kind(mode)}, where the report writes a file; move it away"
        )


def _check_plots_dir(project: Project, path: Path) -> None:
    """The report's own plots folder: absent or a real folder (a link could lead out of the project)."""
    mode = _mode(path)
    if mode is not None and not stat.S_ISDIR(mode):
        raise TargetExistsError(
            f"{_relative(project, path)}: is {_kind(mode)}, where the report keeps its plots in a folder; move it away"
        )


_LINK = re.compile(r"""\]\(\s*<?([^)\s>]+)|\bsrc\s*=\s*["']([^"']+)""")


def _linked_elsewhere(project: Project, report: Path, plots_dir: Path) -> set[str]:
    """Names of files in `plots_dir` that a markdown page of the project links: its own pages at
    the root and in the experiment folders, the report being replaced aside."""
    pages = [*project.root.glob("*.md"), *project.exp_root.glob("*/*.md")]
    names = set()
    for page in pages:
        if page == report or not page.is_file():
            continue
        text = (files.read_regular(page) or b"").decode("utf-8", "replace")
        for match in _LINK.finditer(text):
            target = (page.parent / (match.group(1) or match.group(2)).split("#")[0]).resolve()
            if target.parent == plots_dir.resolve():
                names.add(target.name)
    return names


def _remove_stale_plots(plots_dir: Path, linked: set[str]) -> None:
    """Delete the PNGs an earlier report wrote that this one no longer links: only files carrying
    the report's mark, never one the user put there."""
    mode = _mode(plots_dir)
    if mode is None or not stat.S_ISDIR(mode):
        return
    for entry in os.scandir(plots_dir):
        if entry.name.endswith(".png") and entry.name not in linked and _made_by_report(Path(entry.path)):
            os.unlink(entry.path)


def _made_by_report(path: Path) -> bool:
    opened = files.open_regular(path)
    if opened is None:
        return False
    try:
        return MARK in os.read(opened[0], 256)
    finally:
        os.close(opened[0])


def _mode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"), (stat.S_ISLNK, "a link"), (stat.S_ISFIFO, "a FIFO"))
    return next((name for test, name in kinds if test(mode)), "a socket or device")


def _relative(project: Project, path: Path) -> str:
    try:
        return path.relative_to(project.root).as_posix()
    except ValueError:
        return str(path)


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


def _save(plt, fig, name: str, title: str) -> Plot:
    """PNG bytes in memory, without a date or version (same runs, same bytes), and with the
    report's mark, by which a later report knows the file as its own."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": SOFTWARE})
    plt.close(fig)
    return Plot(title, f"{PLOTS_DIR}/{name}", buffer.getvalue())


def _experiment_plots(plt, records: list[RunRecord], metric: str | None, pairs) -> list[Plot]:
    scored = [r for r in records if metric and _number(r.metrics.get(metric))]
    plots = []
    if scored:
        fig = per_run_figure(plt, [(r.run, r.metrics[metric]) for r in scored], metric)
        plots.append(_save(plt, fig, f"{_slug(metric)}_per_run.png", f"{metric} per run"))
    for key in varying_keys(scored):
        points = [(r.config[key], r.metrics[metric]) for r in scored if _number(r.config.get(key))]
        if len(points) < 2:
            continue
        fig = against_key_figure(plt, points, key, metric)
        plots.append(_save(plt, fig, f"{_slug(metric)}_vs_{_slug(key)}.png", f"{metric} against {key}"))
    plots.extend(_history_plots(plt, records))
    if len(pairs) >= 2:
        plots.append(_save(plt, cv_lb_figure(plt, pairs, metric), "cv_vs_lb.png", "CV against public LB"))
    return plots


def _zoomed(ax, values: list[float]) -> None:
    """The value axis fitted to the data with a margin, never stretched to 0; plain tick labels
    (`0.9925`, not an offset `+9.9e-1`)."""
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or abs(high) * 0.01 or 0.01
    ax.set_ylim(low - pad, high + pad)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.grid(axis="y", alpha=0.3)


def per_run_figure(plt, points: list[tuple[str, float]], metric: str | None):
    """A metric per run as points on an axis zoomed to the data (0.988 and 0.995 look different),
    the best run marked."""
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(points) + 2), 3.2))
    ax.plot([run for run, _ in points], [value for _, value in points], "o", color="tab:blue")
    ax.margins(x=0.5 / max(len(points), 1))  # half a slot beside the first and last point
    _zoomed(ax, [value for _, value in points])
    ax.set_ylabel(metric or "metric")
    _readable_x(ax, rotation=45)
    fig.tight_layout()
    return fig


def against_key_figure(plt, points: list[tuple[float, float]], key: str, metric: str | None):
    """A metric against a numeric config key; a log axis when the key's values span two decades or more."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    xs = [x for x, _ in points]
    ax.plot(xs, [y for _, y in points], "o", color="tab:blue")
    if min(xs) > 0 and max(xs) / min(xs) >= 100:
        ax.set_xscale("log")
    _zoomed(ax, [y for _, y in points])
    ax.set_xlabel(key)
    ax.set_ylabel(metric or "metric")
    fig.tight_layout()
    return fig


def _history_plots(plt, records: list[RunRecord]) -> list[Plot]:
    """One figure per metric logged several times: per-fold scores as a box and points per run,
    other histories as a line per run over the steps."""
    histories = {r.run: _history(r.path) for r in records}
    names = sorted({k for h in histories.values() for k, points in h.items() if len(points) >= 2})
    plots = []
    for name in names:
        series = {run: h[name] for run, h in histories.items() if len(h.get(name, [])) >= 2}
        if _per_fold(name, series):
            fig = folds_figure(plt, {run: [v for _, v, _ in points] for run, points in series.items()}, name)
            plots.append(_save(plt, fig, f"folds_{_slug(name)}.png", f"{name} per fold, by run"))
        else:
            steps = {run: [(step, v) for step, v, _ in points] for run, points in series.items()}
            plots.append(_save(plt, history_figure(plt, steps, name), f"history_{_slug(name)}.png", f"{name} by step"))
    return plots


def _per_fold(name: str, series: dict[str, list[tuple[float, float, bool]]]) -> bool:
    """A metric logged once per fold, not over time: named so (`fold_auc`), or logged with a fold."""
    return "fold" in name.lower() or any(folded for points in series.values() for _, _, folded in points)


def folds_figure(plt, scores: dict[str, list[float]], name: str):
    """Per-fold scores as a box per run with the folds as points: folds are not time steps."""
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(scores) + 2), 3.2))
    runs = list(scores)
    ax.boxplot([scores[run] for run in runs], positions=range(len(runs)), widths=0.5, showfliers=False)
    for i, run in enumerate(runs):
        values = scores[run]
        offsets = [(j - (len(values) - 1) / 2) * 0.06 for j in range(len(values))]
        ax.plot([i + o for o in offsets], values, "o", color="tab:blue", alpha=0.7, markersize=4)
    ax.set_xticks(range(len(runs)), runs)
    _zoomed(ax, [v for values in scores.values() for v in values])
    ax.set_ylabel(name)
    _readable_x(ax, rotation=45)
    fig.tight_layout()
    return fig


def history_figure(plt, series: dict[str, list[tuple[float, float]]], name: str):
    """A metric over the steps it was logged at, one line per run."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for run, points in series.items():
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=run)
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _history(run_dir: Path) -> dict[str, list[tuple[float, float, bool]]]:
    """Each metric's (step, value, logged with a fold) in logging order; a call without a step
    counts by its position."""
    series: dict[str, list[tuple[float, float, bool]]] = {}
    for position, entry in enumerate(RunFolder(run_dir).history()):
        step = entry["_step"] if _number(entry.get("_step")) else position
        folded = "fold" in entry or "_fold" in entry
        for key, value in entry.items():
            if not key.startswith("_") and key != "fold" and _number(value):
                series.setdefault(key, []).append((step, value, folded))
    return series


def _readable_x(ax, rotation: int = 0) -> None:
    """Tick labels that do not run into each other: rotated, right-aligned to their tick."""
    for label in ax.get_xticklabels():
        label.set_rotation(rotation)
        label.set_horizontalalignment("right" if rotation else "center")


def cv_lb_figure(plt, pairs, metric: str | None):
    """CV against LB: at most 5 plain ticks per axis (no `0.99200.9925…`), the x labels slanted,
    and each run's label placed toward the middle so that it stays inside the axes."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5, 4))
    cvs, lbs = [cv for _, cv, _ in pairs], [lb for _, _, lb in pairs]
    ax.plot(cvs, lbs, "o", color="tab:orange")
    ax.margins(0.12)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=5))
    ax.ticklabel_format(useOffset=False, style="plain")
    middle = (min(cvs) + max(cvs)) / 2
    for run, cv, lb in pairs:
        right = cv > middle
        ax.annotate(
            run.split("/")[-1] if len({r.split("/")[0] for r, _, _ in pairs}) == 1 else run,
            (cv, lb),
            xytext=(-4 if right else 4, 4),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize="x-small",
            annotation_clip=True,
        )
    ax.set_xlabel(f"CV ({metric})")
    ax.set_ylabel("public LB")
    _readable_x(ax, rotation=30)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _project_plots(plt, best: list[tuple[str, Any]], metric: str | None, pairs) -> list[Plot]:
    plots = []
    if best:
        fig = per_run_figure(plt, best, f"best {metric}")
        plots.append(_save(plt, fig, f"best_{_slug(metric)}_by_experiment.png", f"best {metric} by experiment"))
    if len(pairs) >= 2:
        plots.append(_save(plt, cv_lb_figure(plt, pairs, metric), "cv_vs_lb.png", "CV against public LB"))
    return plots


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _slug(text: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text or "metric")
