"""`kagexp blend` on real runs: the CV it reports is the metric recomputed with scikit-learn, ridge
weights never score the rows they were fitted on, and runs on other rows or folds are refused."""

import json

import numpy as np
import pytest
from helpers import make_project, out_dir, page_data, run_exp, run_kagexp, runs_of
from scipy.optimize import nnls
from scipy.stats import rankdata
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

import kagexp
from kagexp import results
from kagexp.project import load_project
from kagexp.records import scan

CONFIG = "seed: 1\ntask: binary\nmember: 1\nnoise: 1.0\nfold_shift: 0\nid_shift: 0\n"

# Shared data (seeded apart from the member), each member a noisy view of the same signal.
BODY = """\
import numpy as np
n = 240
data = np.random.default_rng(0)
own = np.random.default_rng(cfg.member)
ids = np.arange(n) + 100
if cfg.id_shift:
    ids[7] += 1000
fold_of = (np.arange(n) + cfg.fold_shift) % 5
if cfg.task == "binary":
    target = data.integers(0, 2, n)
    pred = 1 / (1 + np.exp(-(2 * target - 1 + own.normal(scale=cfg.noise, size=n))))
elif cfg.task == "multiclass":
    target = data.integers(0, 3, n)
    logits = 2 * np.eye(3)[target] + own.normal(scale=cfg.noise, size=(n, 3))
    pred = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
else:
    target = data.normal(size=n)
    pred = target + own.normal(scale=cfg.noise, size=n) if cfg.task == "regression" else own.normal(size=n)
for fold in ctx.folds(5):
    rows = fold_of == fold
    ctx.save_fold(fold, oof=pred[rows], ids=ids[rows], target=target[rows], test=pred[:10] + fold / 100,
                  test_ids=np.arange(10), metrics={"rows": int(rows.sum())})
ctx.save_submission([{"PassengerId": i, "Survived": 0} for i in range(10)])
"""


def members(root, *overrides, task="binary"):
    """exp001 with one run per override; returns the run ids."""
    make_project(root, runs=list(overrides), body=BODY, config=CONFIG.replace("binary", task))
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    return [f"exp001/run{i + 1:03d}" for i in range(len(overrides))]


def blend(root, *args):
    done = run_kagexp(root, "blend", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def blend_meta(root, name):
    return json.loads((root / "data" / "output" / "blend" / name / "meta.json").read_text())


def oofs(root, runs):
    frames = [kagexp.load_oof(run, root=root) for run in runs]
    columns = [c for c in frames[0].columns if c not in ("fold", "target")]
    return np.stack([f[columns].to_numpy() for f in frames]), frames[0]["target"].to_numpy(), frames[0]["fold"]


THREE = ("member: 1\nnoise: 1.5\n", "member: 2\nnoise: 2.0\n", "member: 3\nnoise: 3.0\n")


@pytest.mark.parametrize("method", ["mean", "rank", "hill"])
def test_binary_blend_cv_is_scikit_learns_auc_of_the_blend(tmp_path, method):
    root = tmp_path
    runs = members(root, *THREE)
    printed = blend(root, *runs, "--method", method, "--metric", "auc", "-o", method)
    preds, target, _ = oofs(root, runs)
    preds = preds[:, :, 0]
    recorded = blend_meta(root, method)["blend"]
    if method == "mean":
        expected = preds.mean(axis=0)
    elif method == "rank":
        expected = np.mean([rankdata(p) for p in preds], axis=0) / len(target)
    else:
        weights = np.asarray(recorded["weights"])
        assert weights.min() >= 0 and weights.sum() == pytest.approx(1)
        expected = np.tensordot(weights, preds, axes=1)
    cv = roc_auc_score(target, expected)
    assert abs(recorded["cv"] - cv) < 1e-12
    for run, pred in zip(runs, preds):
        assert abs(recorded["member_cv"][run] - roc_auc_score(target, pred)) < 1e-12
    assert f"{cv:.6f}" in printed and "blend/" + method in printed
    saved = kagexp.load_oof(f"blend/{method}", root=root)
    assert np.allclose(saved["pred"].to_numpy(), expected) and saved["fold"].equals(
        kagexp.load_oof(runs[0], root=root)["fold"]
    )


def test_a_blend_is_a_run_listed_shown_and_kept_by_gc(tmp_path):
    root = tmp_path
    runs = members(root, *THREE[:2])
    printed = blend(root, *runs, "--metric", "auc")
    assert "saved" in printed and "blend001" in printed
    folder = root / "data" / "output" / "blend" / "blend001"
    assert {"meta.json", "summary.json", "config.yml", "metrics.json", "oof.npz", "test.npz", "submission.csv"} <= {
        p.name for p in folder.iterdir()
    }
    submission = (folder / "submission.csv").read_text().splitlines()
    assert submission[0] == "PassengerId,Survived" and len(submission) == 11  # the members' header kept
    test = kagexp.load_test("blend/blend001", root=root)
    member_tests = [kagexp.load_test(run, root=root)["pred"] for run in runs]
    assert np.allclose(test["pred"], (member_tests[0] + member_tests[1]) / 2)

    listed = json.loads(run_kagexp(root, "runs", "--format", "json").stdout)
    row = next(r for r in listed if r["run"] == "blend/blend001")
    assert row["status"] == "done" and row["auc"] == blend_meta(root, "blend001")["blend"]["cv"]
    only = json.loads(run_kagexp(root, "runs", "blend", "--format", "json").stdout)
    assert [r["run"] for r in only] == ["blend/blend001"]
    header = run_kagexp(root, "runs").stdout.splitlines()[0].split()
    assert header[:4] == ["run", "status", "member", "noise"], header  # a blend's config is no run key's change
    shown = run_kagexp(root, "show", "blend/blend001")
    assert shown.returncode == 0 and "blend001" in shown.stdout
    assert run_kagexp(root, "dashboard").returncode == 0
    page = page_data((root / "data" / "output" / "dashboard.html").read_text(encoding="utf-8"))
    exps = [exp["name"] for exp in page["exps"]]
    rows = runs_of(page)
    assert [page["keys"][k] for k in page["varying"]] == results.varying_keys(scan(load_project(root)))
    assert exps == ["exp001", "blend"] and [(exps[e], r) for e, r in zip(rows["e"], rows["r"])][-1] == (
        "blend",
        "blend001",
    )
    assert rows["m"][-1][page["metrics"].index("auc")] == blend_meta(root, "blend001")["blend"]["cv"]
    sizes = {row["exp"]: row for row in json.loads(run_kagexp(root, "du", "--format", "json").stdout)}
    assert sizes.keys() == {"exp001", "blend"} and sizes["blend"]["runs"] == 1 and sizes["blend"]["size"] > 0
    (*_, shared) = json.loads(run_kagexp(root, "du", "blend", "--format", "json").stdout)
    assert shared["run"].startswith("blend (shared") and shared["size"] >= 0
    overview = {row["exp"]: row for row in json.loads(run_kagexp(root, "ls", "--format", "json").stdout)}
    assert overview.keys() == {"exp001", "blend"} and overview["blend"]["done"] == 1
    tree = json.loads(run_kagexp(root, "tree", "--format", "json").stdout)
    assert [(row["exp"], row["parent"], row["runs"]) for row in tree] == [("exp001", None, 2), ("blend", None, 1)]
    assert run_kagexp(root, "report", "--diary").returncode == 0
    diary = (root / "DIARY.md").read_text()
    assert "## blend" in diary and "- base: the experiments' runs, blended" in diary and "- runs: 1 done" in diary
    unnamed = run_kagexp(root, "show", "blend001")
    assert unnamed.returncode == 2 and "e.g. blend/blend001" in unnamed.stderr
    report = run_kagexp(root, "report", "blend")
    assert report.returncode == 2 and "`kagexp runs blend`" in report.stderr and len(report.stderr.splitlines()) == 1

    for run in runs:
        refs = (out_dir(root) / run.split("/")[1] / "refs.jsonl").read_text()
        assert json.loads(refs)["by"] == "blend/blend001" and json.loads(refs)["kind"] == "blend"
    plan = run_kagexp(root, "gc", "exp001", "--keep", "best:0", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "oof.npz" not in plan.stdout  # members used by a blend keep their predictions

    again = run_kagexp(root, "blend", *runs, "--metric", "auc", "-o", "blend001")
    assert again.returncode == 2 and "blend/blend001 exists already" in again.stderr


def test_a_blends_detail_in_the_dashboard_lists_its_members_with_weights(tmp_path, browser):
    root = tmp_path
    runs = members(root, *THREE[:2])
    blend(root, *runs, "--metric", "auc", "--method", "hill")
    assert run_kagexp(root, "dashboard").returncode == 0
    weights = blend_meta(root, "blend001")["blend"]["weights"]
    page = browser.new_page()
    page.goto((root / "data" / "output" / "dashboard.html").as_uri())
    page.wait_for_selector("html[data-ready]")
    page.click("#runs tbody tr[data-run='blend/blend001'] td")
    rows = [row.split("\t") for row in page.locator("#detail table.blend-members tbody tr").all_inner_texts()]
    assert [row[0] for row in rows] == runs and [float(row[1]) for row in rows] == pytest.approx(weights, abs=1e-6)
    page.click("#detail table.blend-members a >> nth=1")
    assert page.inner_text("#detail h2").startswith(runs[1])  # a member opens its own detail
    page.close()


def test_multiclass_blend_cv_is_scikit_learns_logloss(tmp_path):
    root = tmp_path
    runs = members(root, *THREE, task="multiclass")
    for method in ("mean", "hill"):
        blend(root, *runs, "--method", method, "--metric", "logloss", "-o", method)
        preds, target, _ = oofs(root, runs)
        weights = np.asarray(blend_meta(root, method)["blend"]["weights"])
        expected = np.tensordot(weights, preds, axes=1)
        assert abs(blend_meta(root, method)["blend"]["cv"] - log_loss(target, expected)) < 1e-12
    assert list(kagexp.load_oof("blend/mean", root=root).columns) == ["0", "1", "2", "fold", "target"]


def test_regression_blend_cv_is_scikit_learns_rmse(tmp_path):
    root = tmp_path
    runs = members(root, *THREE, task="regression")
    blend(root, *runs, "--metric", "rmse")
    preds, target, _ = oofs(root, runs)
    expected = np.sqrt(mean_squared_error(target, preds[:, :, 0].mean(axis=0)))
    recorded = blend_meta(root, "blend001")["blend"]
    assert abs(recorded["cv"] - expected) < 1e-12
    assert recorded["cv"] < min(recorded["member_cv"].values())  # independent noise averages out


def ridge_weights(x, y, alpha=1.0):
    """Non-negative ridge, exactly: least squares with rows sqrt(alpha)·I appended, by scipy's NNLS."""
    width = x.shape[1]
    return nnls(np.vstack([x, np.sqrt(alpha) * np.eye(width)]), np.concatenate([y, np.zeros(width)]))[0]


def test_ridge_weights_are_fitted_out_of_fold(tmp_path):
    """Thirty members of pure noise: weights fitted on all rows find chance correlations and score
    well on those same rows; fitted out of fold, they cannot, and the reported CV says so."""
    root = tmp_path
    runs = members(root, *(f"member: {k}\n" for k in range(1, 31)), task="noise")
    printed = blend(root, *runs, "--method", "ridge", "--metric", "rmse")
    preds, target, folds = oofs(root, runs)
    x = preds[:, :, 0].T
    out_of_fold = np.empty(len(target))
    for fold in range(5):
        held = (folds == fold).to_numpy()
        out_of_fold[held] = x[held] @ ridge_weights(x[~held], target[~held])
    in_fold = x @ ridge_weights(x, target)
    reported = blend_meta(root, "blend001")["blend"]
    honest = np.sqrt(mean_squared_error(target, out_of_fold))
    leaky = np.sqrt(mean_squared_error(target, in_fold))
    assert reported["cv"] == pytest.approx(honest, rel=1e-9)
    assert leaky < honest - 0.03  # in-fold fitting would look visibly better
    assert sorted(reported["fold_weights"]) == ["0", "1", "2", "3", "4"]
    assert min(reported["weights"]) >= 0
    assert "oof rmse" in printed and "blend/blend001 (ridge)" in printed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "fold_shift: 1\n",
            "exp001/run001 and exp001/run002 were made on different folds: "
            "row id 100 is in fold 0 in exp001/run001, fold 1 in exp001/run002",
        ),
        (
            "id_shift: 1\n",
            "exp001/run001 and exp001/run002 predict different rows: "
            "row 7 (by id) is id 107 in exp001/run001, 108 in exp001/run002",
        ),
    ],
)
def test_runs_on_other_folds_or_rows_are_refused_by_name(tmp_path, override, message):
    root = tmp_path
    runs = members(root, "member: 1\n", override)
    refused = run_kagexp(root, "blend", *runs, "--metric", "auc")
    assert refused.returncode == 2
    assert message in refused.stderr and "Traceback" not in refused.stderr
    assert not (root / "data" / "output" / "blend" / "blend001").exists()
    assert not (out_dir(root) / "run001" / "refs.jsonl").exists()


def test_partial_runs_and_unknown_metrics_are_refused(tmp_path):
    root = tmp_path
    runs = members(root, *THREE[:2])
    make_project(root, runs=[*THREE[:2], "member: 9\n"], body=BODY, config=CONFIG + "folds: [0]\n")
    run_exp(root)
    partial = run_kagexp(root, "blend", runs[0], "exp001/run003", "--metric", "auc")
    assert partial.returncode == 2 and "exp001/run003 is partial" in partial.stderr
    unknown = run_kagexp(root, "blend", *runs)  # the project's metric is `cv`, not a metric kagexp knows
    assert unknown.returncode == 2 and "unknown metric `cv`" in unknown.stderr
