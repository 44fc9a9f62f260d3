"""The report's plots, drawn for real with matplotlib and read back from the figure objects."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from helpers import make_project, run_exp, run_kagexp  # noqa: E402

from kagexp import report  # noqa: E402

AUCS = [("run001", 0.988), ("run002", 0.9951), ("run003", 0.9902), ("run004", 0.9925)]

FOLD_BODY = """\
for fold in range(4):
    ctx.log({"fold_auc": 0.9 + cfg.model.params.max_depth / 100 + fold / 1000}, step=fold)
ctx.log({"cv": 0.9 + cfg.model.params.max_depth / 100, "C": cfg.C})
"""

CONFIG = "seed: 7\nC: 1.0\nmodel:\n  params:\n    max_depth: 1\n"


def data_lines(ax):
    return [line for line in ax.get_lines() if line.get_marker() == "o"]


def test_metric_per_run_is_points_on_a_zoomed_axis():
    fig = report.per_run_figure(plt, AUCS, "auc")
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert 0.98 < low < 0.988 and 0.9951 < high < 1.0  # not from 0: 0.988 and 0.995 look different
    assert not ax.patches  # no bars
    (points,) = data_lines(ax)
    assert points.get_linestyle() == "None" and list(points.get_ydata()) == [v for _, v in AUCS]
    fig.canvas.draw()
    assert ax.yaxis.get_offset_text().get_text() == ""  # plain tick labels, no `+9.9e-1` offset
    plt.close(fig)


@pytest.mark.parametrize("values, scale", [([0.01, 0.1, 1.0, 10.0], "log"), ([0.5, 1, 2, 4], "linear")])
def test_metric_against_a_key_uses_a_log_axis_over_two_decades(values, scale):
    fig = report.against_key_figure(plt, [(x, 0.99 - i / 1000) for i, x in enumerate(values)], "C", "auc")
    assert fig.axes[0].get_xscale() == scale
    plt.close(fig)


def test_fold_scores_are_points_and_boxes_not_lines():
    scores = {"run001": [0.91, 0.92, 0.93], "run002": [0.95, 0.94, 0.96, 0.95]}
    fig = report.folds_figure(plt, scores, "fold_auc")
    (ax,) = fig.axes
    points = data_lines(ax)
    assert [len(line.get_ydata()) for line in points] == [3, 4]
    assert all(line.get_linestyle() == "None" for line in points)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["run001", "run002"]
    plt.close(fig)


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_cv_against_lb_has_readable_ticks_and_labels_inside():
    pairs = [(f"exp001/run{i:03d}", 0.9920 + i * 0.00025, 0.9900 + i * 0.0003) for i in range(1, 12)]
    fig = report.cv_lb_figure(plt, pairs, "auc")
    (ax,) = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    low, high = ax.get_xlim()
    shown = [t for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]
    ticks = [t.get_window_extent(renderer) for t in shown]
    assert 2 <= len(ticks) <= 6
    assert not any(_overlap(a, b) for i, a in enumerate(ticks) for b in ticks[i + 1 :])
    box = ax.get_window_extent(renderer)
    labels = [text for text in ax.texts]
    assert len(labels) == len(pairs) and labels[0].get_text() == "run001"  # one experiment: run names suffice
    for label in labels:
        extent = label.get_window_extent(renderer)
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1
    figure_box = fig.bbox
    for tick in ticks:
        assert figure_box.x0 <= tick.x0 and tick.x1 <= figure_box.x1 and tick.y0 >= figure_box.y0
    plt.close(fig)


@pytest.fixture(scope="module")
def folds_project(tmp_path_factory):
    runs = [f"C: {c}\nmodel:\n  params:\n    max_depth: {d}\n" for c, d in ((0.01, 1), (1.0, 2), (100.0, 3))]
    root = make_project(tmp_path_factory.mktemp("plots"), runs=runs, body=FOLD_BODY, config=CONFIG)
    assert run_exp(root).returncode == 0
    return root


def test_report_draws_fold_scores_per_run(folds_project):
    done = run_kagexp(folds_project, "report", "exp001")
    assert done.returncode == 0, done.stderr
    plots = sorted(p.name for p in (folds_project / "exp/exp001/results").iterdir())
    assert plots == ["cv_per_run.png", "cv_vs_C.png", "cv_vs_model.params.max_depth.png", "folds_fold_auc.png"]
    text = (folds_project / "exp/exp001/RESULTS.md").read_text()
    assert "![fold_auc per fold, by run](results/folds_fold_auc.png)" in text


def test_report_keeps_old_plots_still_linked_elsewhere(folds_project):
    results = folds_project / "exp/exp001/results"
    assert run_kagexp(folds_project, "report", "exp001").returncode == 0
    # two plots the report no longer makes: one a README still shows, one nothing links
    (results / "cv_vs_C.png").rename(results / "cv_vs_lr.png")
    (results / "cv_per_run.png").rename(results / "cv_vs_old.png")
    (folds_project / "README.md").write_text("Best so far:\n\n![lr](exp/exp001/results/cv_vs_lr.png)\n")
    assert run_kagexp(folds_project, "report", "exp001").returncode == 0
    names = sorted(p.name for p in results.iterdir())
    assert "cv_vs_lr.png" in names and "cv_vs_old.png" not in names
    assert {"cv_vs_C.png", "cv_per_run.png"} <= set(names)
