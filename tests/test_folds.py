"""Folds that resume, per-fold metrics, and OOF/test predictions, through real exp.py processes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import make_project, meta, out_dir, run_exp, run_kagexp

import kagexp

CONFIG = "seed: 1\nn_rows: 50\nfail_at: -1\n"

# A fake model: the prediction of a row depends on the row and its fold only, so any two runs agree.
# Every computed fold is recorded in computed.txt; `fail_at` makes that fold raise once.
BODY = """\
import numpy as np
ids = 1000 + np.arange(cfg.n_rows)
target = np.arange(cfg.n_rows) % 2
fold_of = np.arange(cfg.n_rows) % 5
test_ids = np.arange(7)
for fold in ctx.folds(5):
    with open(ROOT / "computed.txt", "a") as f:
        f.write(f"{ctx.attempt}:{fold}\\n")
    if fold == cfg.fail_at and not (ROOT / "failed_once").exists():
        (ROOT / "failed_once").write_text("")
        raise RuntimeError(f"fold {fold} broke")
    rows = fold_of == fold
    pred = ((np.flatnonzero(rows) * 7) % 13) / 13
    test = np.full(7, fold / 10)
    auc = 0.5 + fold / 10
    ctx.save_fold(fold, oof=pred, ids=ids[rows], target=target[rows], test=test, test_ids=test_ids,
                  metrics={"auc": auc})
"""


def computed(root):
    path = root / "computed.txt"
    return path.read_text().split() if path.exists() else []


def project(root, config=CONFIG):
    return make_project(root, runs=["", "fail_at: 2\n"], body=BODY, config=config)


def test_a_run_whose_fold_2_failed_computes_only_folds_2_to_4_again_and_its_oof_is_the_same(tmp_path):
    root = project(tmp_path)
    first = run_exp(root)
    assert first.returncode == 1, first.stderr
    assert "run002 FAILED" in first.stderr and "fold 2 broke" in first.stderr
    assert meta(root, "run002")["status"] == "failed"
    assert [c for c in computed(root) if c.startswith("1:")] == ["1:0", "1:1", "1:2", "1:3", "1:4", "1:0", "1:1", "1:2"]

    second = run_exp(root)
    assert second.returncode == 0, second.stderr
    assert [c for c in computed(root) if c.startswith("2:")] == ["2:2", "2:3", "2:4"]  # run001 was skipped
    resumed = meta(root, "run002")
    assert (resumed["status"], resumed["attempt"], resumed["folds_resumed"]) == ("done", 2, [0, 1])
    assert "folds 0, 1 finished in an earlier attempt" in (out_dir(root) / "run002" / "log.txt").read_text()

    never_failed, recovered = (kagexp.load_oof(f"exp001/{run}", root=root) for run in ("run001", "run002"))
    assert never_failed.equals(recovered)
    assert list(recovered.columns) == ["pred", "fold", "target"] and len(recovered) == 50
    assert recovered.index[:3].tolist() == [1000, 1001, 1002]
    assert recovered["fold"].tolist()[:6] == [0, 1, 2, 3, 4, 0]
    test = kagexp.load_test("exp001/run002", root=root)
    assert np.allclose(test["pred"], 0.2) and len(test) == 7  # the mean of the folds' 0.0 … 0.4

    metrics = json.loads((out_dir(root) / "run002" / "metrics.json").read_text())
    assert metrics["auc"] == pytest.approx(0.7) and metrics["auc_std"] == pytest.approx(
        np.std([0.5, 0.6, 0.7, 0.8, 0.9])
    )
    history = (out_dir(root) / "run002" / "metrics.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["_fold"] for line in history) == [0, 1, 2, 3, 4]
    assert resumed["predictions"]["oof"]["ids_hash"] == meta(root, "run001")["predictions"]["oof"]["ids_hash"]
    assert resumed["predictions"]["oof"]["folds"] == [0, 1, 2, 3, 4]
    # the failed attempt is kept whole, folds and all
    assert sorted(p.name for p in (out_dir(root) / "run002" / "attempts" / "1" / "folds").iterdir()) == [
        "fold0.json",
        "fold0.npz",
        "fold1.json",
        "fold1.npz",
    ]


def test_force_computes_every_fold_again(tmp_path):
    root = project(tmp_path)
    run_exp(root)
    run_exp(root)
    again = run_exp(root, "--force", "--only", "run002")
    assert again.returncode == 0, again.stderr
    assert [c for c in computed(root) if c.startswith("3:")] == ["3:0", "3:1", "3:2", "3:3", "3:4"]
    assert "folds_resumed" not in meta(root, "run002")


def test_a_run_is_partial_until_every_fold_is_done(tmp_path):
    root = project(tmp_path, config=CONFIG + "folds: [0]\n")
    first = run_exp(root, "--only", "run001")
    assert first.returncode == 0, first.stderr
    assert "run001 partial: folds 1, 2, 3, 4 of 5 not finished" in first.stderr
    assert meta(root, "run001")["status"] == "partial"
    listed = run_kagexp(root, "runs", "--format", "json")
    row = json.loads(listed.stdout)[0]
    assert (row["status"], row["auc"], row["auc_std"]) == ("partial", 0.5, 0.0)
    assert "partial" in run_kagexp(root, "runs", "--status", "partial").stdout
    ls = json.loads(run_kagexp(root, "ls", "--format", "json").stdout)
    assert (ls[0]["done"], ls[0]["partial"]) == (0, 1)
    collected = run_kagexp(root, "gc")  # a partial run's finished folds are what it resumes from
    assert collected.stderr.strip() == "gc: nothing to move; 1 run(s) kept whole", collected.stderr

    (root / "exp" / "exp001" / "config.yml").write_text(CONFIG + "folds: [0, 1, 2, 3, 4]\n")
    second = run_exp(root, "--only", "run001")
    assert second.returncode == 0, second.stderr
    assert computed(root) == ["1:0", "2:1", "2:2", "2:3", "2:4"]
    assert meta(root, "run001")["status"] == "done"
    row = json.loads(run_kagexp(root, "runs", "--format", "json").stdout)[0]
    assert row["status"] == "done" and row["auc"] == pytest.approx(0.7)


def test_a_changed_config_computes_every_fold_again(tmp_path):
    root = project(tmp_path, config=CONFIG + "folds: [0]\n")
    run_exp(root, "--only", "run001")
    (root / "exp" / "exp001" / "config.yml").write_text(CONFIG.replace("n_rows: 50", "n_rows: 60"))
    again = run_exp(root, "--only", "run001")
    assert again.returncode == 0, again.stderr
    assert "config changed since attempt 1" in again.stdout + again.stderr
    assert computed(root) == ["1:0", "2:0", "2:1", "2:2", "2:3", "2:4"]
    assert len(kagexp.load_oof("exp001/run001", root=root)) == 60


MULTICLASS = """\
import numpy as np
rng = np.random.default_rng(0)
probs = rng.dirichlet([1, 1, 1], size=30)
ids = [f"row{i:02d}" for i in range(30)]
ctx.save_oof(probs, ids=ids, folds=np.arange(30) % 3, target=np.arange(30) % 3, columns=["a", "b", "c"])
ctx.save_test(probs[:5], ids=ids[:5], columns=["a", "b", "c"])
np.save(ROOT / "probs.npy", probs)
"""


def test_whole_predictions_keep_one_column_per_class_and_text_ids(tmp_path):
    root = make_project(tmp_path, runs=[""], body=MULTICLASS, config="seed: 1\n")
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    oof = kagexp.load_oof("exp001/run001", root=root)
    assert list(oof.columns) == ["a", "b", "c", "fold", "target"]
    assert oof.index[0] == "row00" and np.allclose(oof[["a", "b", "c"]].to_numpy(), np.load(root / "probs.npy"))
    assert list(kagexp.load_test("exp001/run001", root=root).columns) == ["a", "b", "c"]
    recorded = meta(root, "run001")["predictions"]
    assert recorded["oof"]["rows"] == 30 and recorded["oof"]["columns"] == ["a", "b", "c"]
    assert len(recorded["oof"]["folds_hash"]) == 16 and recorded["test"]["rows"] == 5


def test_a_fold_without_ids_fails_the_run_with_the_fix(tmp_path):
    body = "for fold in ctx.folds(2):\n    ctx.save_fold(fold, oof=[0.5])\n"
    root = make_project(tmp_path, runs=[""], body=body, config="seed: 1\n")
    failed = run_exp(root)
    assert failed.returncode == 1
    assert "ctx.save_fold(0): give ids=" in meta(root, "run001")["error"]


def test_load_oof_of_a_run_without_predictions_names_the_fix(tmp_path):
    root = make_project(tmp_path, runs=[""], body="ctx.log({'cv': 1})\n", config="seed: 1\n")
    run_exp(root)
    with pytest.raises(kagexp.KagexpError, match="no oof predictions saved; save them with ctx.save_fold"):
        kagexp.load_oof("exp001/run001", root=root)


KILLED = BODY.replace(
    'raise RuntimeError(f"fold {fold} broke")', "os.kill(os.getpid(), 9)  # no handler, no cleanup: like an OOM kill"
)


def test_a_run_killed_in_fold_3_resumes_from_fold_3(tmp_path):
    root = make_project(tmp_path, runs=["fail_at: 3\n"], body=KILLED, config=CONFIG)
    killed = run_exp(root)
    assert killed.returncode == -9
    assert run_kagexp(root, "runs", "--format", "json").stdout.count('"stale"') == 1
    again = run_exp(root)
    assert again.returncode == 0, again.stderr
    assert computed(root) == ["1:0", "1:1", "1:2", "1:3", "2:3", "2:4"]
    recovered = meta(root, "run001")
    assert (recovered["status"], recovered["folds_resumed"]) == ("done", [0, 1, 2])
    assert json.loads((out_dir(root) / "run001" / "attempts" / "1" / "meta.json").read_text())["status"] == "stale"
    assert len(kagexp.load_oof("exp001/run001", root=root)) == 50


def test_kagexp_and_its_prediction_modules_import_no_numpy():
    """numpy is imported where predictions are made or read, so `import kagexp` stays light."""
    code = "import kagexp, kagexp.run, kagexp.predictions, kagexp.metrics, kagexp.blend, sys; print(*sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "numpy" not in done.stdout.split()


def test_per_fold_logs_show_mean_and_std_and_mismatched_test_rows_fail_the_run(tmp_path):
    body = """\
for fold in ctx.folds(3):
    ctx.log({"fold_auc": 0.5 + fold / 10, "note": "x"}, fold=fold)
    ctx.save_fold(fold, test=[0.1, 0.2], test_ids=[fold, 9])
"""
    root = make_project(tmp_path, runs=[""], body=body, config="seed: 1\n")
    assert run_exp(root).returncode == 1
    metrics = json.loads((out_dir(root) / "run001" / "metrics.json").read_text())
    assert metrics["fold_auc"] == pytest.approx(0.6)
    assert metrics["fold_auc_std"] == pytest.approx(np.std([0.5, 0.6, 0.7]))
    assert metrics["note"] == "x" and "note_std" not in metrics
    assert "fold 1 predicted other test rows than fold 0; give the same test_ids" in meta(root, "run001")["error"]
