"""`kagexp dashboard`: one self-contained HTML file, checked as data here and in a real browser.

The browser tests drive Debian's `chromium` through Playwright's Python package (its own browser
download cannot be reached here), with the network off; they skip, saying why, where either is
missing. `make test` installs chromium when it can.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from helpers import make_project, page_data, run_exp, run_kagexp, runs_of, set_runs

from kagexp.dashboard_cache import split_history
from kagexp.project import load_project
from kagexp.records import scan
from kagexp.results import varying_keys

ARTIFACTS = Path(__file__).resolve().parents[1] / ".pytest-artifacts"
HOSTILE = "</script><script>alert(1)</script><!--"
NAME = "comp </title><script>alert(2)</script>"
SETTINGS = f"name: '{NAME}'\nmetric:\n  name: cv\n  direction: max\n"
BODY = """\
depth = cfg.model.params.max_depth
if depth == 3:
    raise ValueError("depth 3 is broken on purpose")
for fold in range(3):
    ctx.log({"auc": depth / 10 + fold / 100}, fold=fold)
for step in range(6):
    ctx.log({"loss": 1 / (step + depth)}, step=step)
ctx.log({"cv": depth / 10 + 0.005})
ctx.save_submission([{"id": 1, "target": depth}])
"""
RUNS = [
    "model:\n  params:\n    max_depth: 1\n",
    "model:\n  params:\n    max_depth: 2\n",
    "model:\n  params:\n    max_depth: 3\n",
    "model:\n  params:\n    max_depth: 5\nlr: 1.0e-1\n",
    f"# {HOSTILE}\nmodel:\n  params:\n    max_depth: 4\n    min_samples_leaf: 100\n",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two experiments (exp002 copied from exp001 with a hostile note), 9 runs (2 failed), two LB
    score, and a hostile project name."""
    root = make_project(tmp_path_factory.mktemp("dash") / "comp", runs=RUNS, body=BODY, settings=SETTINGS)
    assert run_exp(root).returncode == 1  # the depth-3 run fails
    new = run_kagexp(root, "new", "exp002", "--from", "exp001", "-m", f"deeper trees {HOSTILE}")
    assert new.returncode == 0, new.stderr
    set_runs(root, RUNS[1:], exp="exp002", body=BODY)
    assert run_exp(root, exp="exp002").returncode == 1
    for run, score in (("exp001/run002", "0.215"), ("exp001/run004", "0.5")):
        lb = run_kagexp(root, "lb", run, score)
        assert lb.returncode == 0, lb.stderr
    done = run_kagexp(root, "dashboard")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "wrote data/output/dashboard.html\n"
    return root


@pytest.fixture(scope="module")
def html(project) -> str:
    return (project / "data" / "output" / "dashboard.html").read_text(encoding="utf-8")


# --- the file ------------------------------------------------------------------------------


def test_the_page_is_one_file_with_nothing_to_fetch(html):
    assert not re.search(r"https?://", html)
    assert not re.search(r"<(link|img|iframe)\b|\ssrc=|@import|url\(", html)
    assert "default-src 'none'" in html  # the browser may fetch nothing at all


def test_the_page_holds_every_run_with_metric_lb_and_varying_keys(html, project):
    data = page_data(html)
    assert data["metric"] == "cv" and data["metrics"][0] == "cv"
    runs = runs_of(data)
    names = [f"{data['exps'][e]['name']}/{r}" for e, r in zip(runs["e"], runs["r"])]
    assert names == [f"exp001/run00{i}" for i in range(1, 6)] + [f"exp002/run00{i}" for i in range(1, 5)]
    assert runs["s"].count("failed") == 2 and runs["s"].count("done") == 7
    assert runs["lb"][1] == 0.215 and runs["lb"][3] == 0.5 and runs["lb"].count(None) == 7
    assert runs["m"][1][0] == pytest.approx(0.205)
    varying = [data["keys"][k] for k in data["varying"]]
    assert set(varying) == {"model.params.max_depth", "model.params.min_samples_leaf", "lr"}
    assert varying == varying_keys(scan(load_project(project)))  # the columns `kagexp runs` shows


def test_a_run_carries_its_difference_from_base_folds_history_and_provenance(html):
    data = page_data(html)
    runs, keys, metrics = runs_of(data), data["keys"], data["metrics"]
    i = 3  # exp001/run004: max_depth 5, lr 0.1
    assert {keys[int(k)]: v for k, v in runs["c"][i].items()} == {"model.params.max_depth": 5, "lr": 0.1}
    assert runs["o"][i] == "model:\n  params:\n    max_depth: 5\nlr: 1.0e-1\n"
    folds = {metrics[int(m)]: v for m, v in runs["fo"][i].items()}
    assert folds == {"auc": [[0.5, 0.51, 0.52]]}
    history = {metrics[int(m)]: v for m, v in runs["h"][i].items()}
    assert history["loss"][0] == pytest.approx([1 / (s + 5) for s in range(6)], rel=1e-6)
    env = data["envs"][runs["p"][i]]
    assert env["seed"] == 7 and env["python"] and isinstance(env["packages"], int)
    assert "pytest" in data["packages"][env["packages"]]
    assert runs["v"][i]["d"] >= 0 and runs["v"][i]["t"] > 1_700_000_000
    files = {data["files"][n] for n in runs["f"][i][::2]}
    assert {"config.yml", "config_update.yml", "log.txt"} <= files


def test_the_tree_has_parent_note_best_and_delta(html):
    exps = {e["name"]: e for e in page_data(html)["exps"]}
    assert exps["exp002"]["parent"] == "exp001" and exps["exp002"]["note"] == f"deeper trees {HOSTILE}"
    assert exps["exp001"]["best"] == pytest.approx(0.505) and exps["exp001"]["best_run"] == "run004"
    assert exps["exp002"]["best"] == pytest.approx(0.505)
    assert exps["exp002"]["delta"] == pytest.approx(0) and exps["exp001"]["delta"] is None
    assert exps["exp001"]["runs"] == 5 and exps["exp002"]["runs"] == 4


def test_no_value_can_close_the_script_tag(html):
    assert html.count("</script") == 2  # the data tag's and the script's own
    assert html.count("</title") == 1 and "&lt;/title&gt;&lt;script&gt;alert(2)" in html
    assert "<!--" not in html
    data = page_data(html)
    assert data["exps"][1]["note"].endswith(HOSTILE)
    assert HOSTILE in runs_of(data)["o"][4]


def test_output_file_and_its_errors(project, tmp_path):
    target = tmp_path / "page.html"
    done = run_kagexp(project, "dashboard", "-o", str(target))
    assert done.returncode == 0 and done.stdout == f"wrote {target}\n"
    assert page_data(target.read_text())["count"] == 9
    missing = run_kagexp(project, "dashboard", "-o", str(tmp_path / "nope" / "page.html"))
    assert missing.returncode == 2
    assert missing.stderr == f"kagexp: error: no folder {tmp_path / 'nope'} to write page.html in; create it first\n"
    folder = run_kagexp(project, "dashboard", "-o", str(tmp_path))
    assert folder.returncode == 2 and "is a folder" in folder.stderr


def test_long_histories_are_thinned_to_keep_the_page_small(tmp_path):
    body = "for step in range(3000):\n    ctx.log({'loss': 1 / (step + 1), 'lr': 0.1})\nctx.log({'cv': 0.5})\n"
    runs = [f"model:\n  params:\n    max_depth: {d}\n" for d in range(40)]
    root = make_project(tmp_path, runs=runs, body=body)
    assert run_exp(root, timeout=120).returncode == 0
    assert run_kagexp(root, "dashboard").returncode == 0
    page = root / "data" / "output" / "dashboard.html"
    history = runs_of(page_data(page.read_text()))["h"][0]
    assert [len(series[0]) for series in history.values()] == [500, 500]
    assert page.stat().st_size < 600_000  # 40 runs × 2 × 3,000 values would be 4 MB and more


def test_the_cache_is_used_and_a_run_done_again_is_read_again(tmp_path):
    root = make_project(tmp_path, runs=RUNS[:2], body=BODY)
    assert run_exp(root).returncode == 0
    time.sleep(2.1)  # run folders younger than 2 s are never cached
    assert run_kagexp(root, "dashboard").returncode == 0
    cache = json.loads((root / "data" / "output" / ".dashboard-cache.json").read_text())
    assert sorted(Path(folder).name for folder in cache["runs"]) == ["run001", "run002"]
    page = root / "data" / "output" / "dashboard.html"
    first = page.read_text()
    assert run_kagexp(root, "dashboard").returncode == 0
    assert page.read_text() == first  # from the cache, the same page
    cache_file = root / "data" / "output" / ".dashboard-cache.json"
    folder = next(iter(cache["runs"]))
    damaged = [
        "{not json",
        "[]",
        json.dumps({**cache, "runs": {folder: [cache["runs"][folder][0], ["x"]]}}),
        json.dumps({**cache, "shared": {key: [1, 2] for key in cache["shared"]}}),
    ]
    for text in damaged:  # read again from the run folders, never a traceback
        cache_file.write_text(text)
        done = run_kagexp(root, "dashboard")
        assert done.returncode == 0 and done.stderr == ""
        assert page.read_text() == first
    body = BODY.replace("1 / (step + depth)", "2 / (step + depth)")
    set_runs(root, RUNS[:2], body=body)
    assert run_exp(root, "--force", "--only", "run002").returncode == 0
    assert run_kagexp(root, "dashboard").returncode == 0
    data = page_data(page.read_text())
    runs = runs_of(data)
    histories = [next(iter(h.values()))[0][0] for h in runs["h"]]
    assert histories == [pytest.approx(1 / 1), pytest.approx(2 / 2)]
    assert runs["v"][1]["a"] == 2  # its second attempt


def test_folds_are_told_apart_from_steps():
    entries = [
        {"_step": None, "fold": 0, "auc": 0.9},
        {"_step": None, "fold": 1, "auc": 0.8, "note": "text"},
        {"_step": 0, "fold_accuracy": 0.5},  # the iris example: a per-fold metric logged with step=fold
        {"_step": 1, "fold_accuracy": 0.7},
        {"_step": 0, "loss": 2.0, "ok": True},
        {"_step": 1, "loss": float("nan")},
        {"_step": 2, "loss": 1.0},
    ]
    folds, history = split_history(entries)
    assert folds == {"auc": [[0.9, 0.8]], "fold_accuracy": [[0.5, 0.7]]}
    assert history == {"loss": [[2.0, 1.0], [0, 2]]}


def test_a_project_without_runs_gets_a_page(tmp_path):
    root = make_project(tmp_path)
    done = run_kagexp(root, "dashboard")
    assert done.returncode == 0, done.stderr
    data = page_data((root / "data" / "output" / "dashboard.html").read_text())
    assert data["count"] == 0 and [e["name"] for e in data["exps"]] == ["exp001"]


# --- in a real browser ---------------------------------------------------------------------


@pytest.fixture
def page(browser, project):
    """The dashboard opened from file:// offline; every request that is not a file is refused and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_offline(True)
    fetched: list[str] = []
    context.route("**/*", lambda route: _only_files(route, fetched))
    page = context.new_page()
    page.fetched, page.dialogs, page.errors = fetched, [], []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto((project / "data" / "output" / "dashboard.html").as_uri())
    page.wait_for_selector("html[data-ready]", timeout=10_000)
    yield page
    context.close()


def _only_files(route, fetched: list[str]) -> None:
    if route.request.url.startswith("file://"):
        route.continue_()
    else:
        fetched.append(route.request.url)
        route.abort()


def column(page, label: str) -> list[str]:
    headers = page.locator("#runs thead th").all_inner_texts()
    index = [h.replace("▲", "").replace("▼", "").strip() for h in headers].index(label) + 1
    return page.locator(f"#runs tbody td:nth-child({index})").all_inner_texts()


def test_the_table_sorts_and_filters(page):
    headers = page.locator("#runs thead th").all_inner_texts()
    assert [h.strip(" ▲▼") for h in headers[:4]] == ["run", "status", "cv", "LB"]
    assert column(page, "cv")[:2] == ["0.505", "0.505"]  # best first by default (metric: max)
    page.click("#runs thead th[data-col=m0]")
    values = [float(v) for v in column(page, "cv") if v]
    assert values == sorted(values) and values[0] == 0.105
    assert column(page, "status")[-2:] == ["failed", "failed"]  # runs without a value stay last
    page.click("#runs thead th[data-col=m0]")
    values = [float(v) for v in column(page, "cv") if v]
    assert values == sorted(values, reverse=True)
    page.click("#runs thead th[data-col=lb]")
    assert column(page, "LB")[:2] == ["0.5", "0.215"]  # a score on the metric's scale: best first
    page.fill("#filter", "exp002/run00")
    page.wait_for_selector("#count:has-text('4 of 9 runs')")
    assert sorted(column(page, "run")) == [f"exp002/run00{i}" for i in range(1, 5)]
    page.fill("#filter", "")
    page.select_option("#status", "failed")
    page.wait_for_selector("#count:has-text('2 of 9 runs')")
    assert column(page, "run") == ["exp001/run003", "exp002/run002"]
    page.select_option("#status", "")
    page.select_option("#exp", "exp001")
    page.wait_for_selector("#count:has-text('5 of 9 runs')")
    page.click("#chooser summary")
    page.uncheck("#columns input[data-col=status]")
    assert "status" not in [h.strip(" ▲▼") for h in page.locator("#runs thead th").all_inner_texts()]
    assert page.fetched == [] and page.errors == []


def test_a_runs_detail_and_the_tree_show_text_as_text(page, tmp_path):
    page.click("#runs tbody tr[data-run='exp001/run005']")
    detail = page.locator("#detail")
    assert detail.is_visible()
    assert HOSTILE in detail.locator("pre.override").inner_text()
    text = detail.inner_text()
    assert "model.params.min_samples_leaf" in text and "100" in text
    assert "Per-fold scores" in text and "Provenance" in text and "config_update.yml" in text
    assert detail.locator("figure svg path").count() == 1  # its loss history
    page.click(".tab[data-tab=tree]")
    child = page.locator("#tree li[data-exp=exp001] li[data-exp=exp002]")
    assert child.locator(".note").first.inner_text() == f"deeper trees {HOSTILE}"
    assert "+0 vs exp001" in child.inner_text() and "4 runs" in child.inner_text()
    page.click(".tab[data-tab=plots]")
    assert page.locator("figure[data-plot=per-run] circle").count() == 7
    assert page.locator("figure[data-plot=cv-lb] circle").count() == 2
    assert page.locator("figure[data-plot=folds-auc] circle").count() == 7 * 3  # folds as points, not lines
    lr_axis = page.locator("figure[data-plot='key-lr'] text").all_text_contents()
    assert "lr (log)" in lr_axis and "0.001" in lr_axis and "0.1" in lr_axis  # two decades: a log axis
    assert page.locator("figure[data-plot='history-loss'] path").count() == 7
    page.click(".tab[data-tab=runs]")
    page.keyboard.press("Escape")
    assert not page.locator("#detail").is_visible()
    page.click("#runs tbody tr[data-run='exp001/run002'] td")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "dashboard.png")
    assert shot.stat().st_size > 10_000
    assert page.evaluate("document.scripts.length") == 2
    assert page.title() == f"{NAME} · kagexp dashboard" and page.inner_text("#project") == NAME
    assert page.dialogs == [] and page.fetched == [] and page.errors == []


NEAREST_POINT = """(label) => {
  const box = label.getBBox();
  let best = null, distance = Infinity;
  for (const dot of label.ownerSVGElement.querySelectorAll("circle")) {
    const x = Number(dot.getAttribute("cx")), y = Number(dot.getAttribute("cy"));
    const d = Math.hypot(Math.max(box.x - x, 0, x - box.x - box.width), Math.max(box.y - y, 0, y - box.y - box.height));
    if (d < distance) [best, distance] = [dot.getAttribute("data-i"), d];
  }
  return best;
}"""


def test_each_point_label_is_nearest_its_own_point(page, html):
    """A label must never sit nearer another run's point than its own: hovering the point nearest a
    label names that label's run (or, for runs drawn on one spot and labelled "+N", one with the
    same values)."""
    data = page_data(html)
    runs = runs_of(data)
    cv = {f"{data['exps'][e]['name']}/{r}": m[0] if m else None for e, r, m in zip(runs["e"], runs["r"], runs["m"])}
    page.click(".tab[data-tab=plots]")
    figure = page.locator("figure[data-plot='key-model.params.max_depth']")
    labels = figure.locator("text.point-label")
    texts = labels.all_text_contents()
    assert len(texts) >= 3 and any(" +" in text for text in texts), texts  # depth 2 twice: one shared label
    for i, text in enumerate(texts):
        nearest = labels.nth(i).evaluate(NEAREST_POINT)
        figure.locator(f"circle[data-i='{nearest}']").hover(force=True)
        shown = page.inner_text("#tip").split(":")[0]
        run = text.split(" +")[0]
        assert shown == run or (" +" in text and cv[shown] == cv[run]), (text, shown)
