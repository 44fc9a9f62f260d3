"""kagexp pack blend/NAME: a blend's members packed with its recipe; on Kaggle, each member's infer
runs and their submissions are combined into the blend's own submission.csv."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import build_tree, out_dir, run_exp, run_kagexp, subprocess_env

SETTINGS = "name: t\nmetric:\n  name: auc\n  direction: max\n"

# Both experiments import their own model.py (`from model import SCALE`): the kernel imports each
# member's snapshot in turn, so it must not hand exp002 the model module of exp001.
EXP_PY = """\
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from model import SCALE  # noqa: E402

import kagexp  # noqa: E402

RUNS = [""]
TEST_IDS = np.arange(20)


def predict(ids, fold):
    return 1 / (1 + np.exp(-(np.sin(ids * SCALE) + fold / 10)))


def submission(ids, pred):
    return [{{"id": int(i), "target": float(p)}} for i, p in zip(ids, pred)]


def run(cfg, ctx):
    ids = np.arange(120) + 100
    target = (np.sin(ids * 1.3) > 0).astype(int)
    folds = np.arange(120) % 5
    for fold in ctx.folds(5):
        rows = folds == fold
        ctx.save_fold(fold, oof=predict(ids[rows], fold), ids=ids[rows], target=target[rows],
                      test=predict(TEST_IDS, fold), test_ids=TEST_IDS)
    ctx.path("model.json").write_text(json.dumps({{"folds": 5}}))
    ctx.save_submission(submission(TEST_IDS, np.mean([predict(TEST_IDS, f) for f in range(5)], axis=0)))
{infer}

if __name__ == "__main__":
    kagexp.main(run, RUNS)
"""

INFER = """

def infer(cfg, ctx):
    count = json.loads(ctx.artifact("model.json").read_text())["folds"]
    ctx.save_submission(submission(TEST_IDS, np.mean([predict(TEST_IDS, f) for f in range(count)], axis=0)))
"""


def experiment(exp: str, scale: float, infer: bool = True) -> dict:
    return {
        f"exp/{exp}/exp.py": EXP_PY.format(infer=INFER if infer else ""),
        f"exp/{exp}/config.yml": "seed: 1\n",
        f"exp/{exp}/model.py": f"SCALE = {scale}\n",
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two experiments with infer and one without, each run once, and blends of them."""
    root = tmp_path_factory.mktemp("packblend")
    build_tree(root, {"kagexp.yml": SETTINGS, **experiment("exp001", 1.1), **experiment("exp002", 2.7)})
    build_tree(root, experiment("exp003", 0.7, infer=False))
    for exp in ("exp001", "exp002", "exp003"):
        done = run_exp(root, exp=exp)
        assert done.returncode == 0, done.stderr
    for method in ("mean", "hill", "rank", "ridge"):
        blend(root, "exp001/run001", "exp002/run001", "--method", method, "-o", method)
    blend(root, "exp001/run001", "exp003/run001", "-o", "noinfer")
    return root


def blend(root, *args):
    done = run_kagexp(root, "blend", *args)
    assert done.returncode == 0, done.stderr


def pack(root, *runs, out):
    done = run_kagexp(root, "pack", *runs, "--dataset", "alice/blend-models", "-o", out)
    assert done.returncode == 0, done.stderr
    return root / out


def kernel(pack_dir, run, tmp_path):
    """The kernel's call on the pack mounted as a Kaggle dataset, in a process of its own."""
    shutil.copytree(pack_dir, tmp_path / "input/blend-models")
    env = {**subprocess_env(), "KAGEXP_KAGGLE_INPUT": str(tmp_path / "input"), "KAGEXP_KAGGLE_WORKING": "out"}
    code = f"import kagexp.kaggle; print(kagexp.kaggle.infer({run!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def assert_same_submission(made, expected):
    made, expected = rows(made), rows(expected)
    assert made[0] == expected[0] == ["id", "target"]
    assert [r[0] for r in made] == [r[0] for r in expected]
    for a, b in zip(made[1:], expected[1:]):
        assert float(a[1]) == pytest.approx(float(b[1]), abs=1e-9, rel=0)


@pytest.mark.parametrize("method", ["mean", "hill", "rank", "ridge"])
def test_the_kernel_writes_the_blends_own_submission(project, tmp_path, method):
    packed = pack(project, f"blend/{method}", out=f"pk-{method}")
    manifest = json.loads((packed / "kagexp-pack.json").read_text())
    assert manifest["runs"] == [f"blend/{method}", "exp001/run001", "exp002/run001"]
    assert manifest["kernel_run"] == f"blend/{method}" and sorted(manifest["code"]) == manifest["runs"][1:]
    recipe = json.loads((packed / f"blend/{method}/blend.json").read_text())
    meta = json.loads((project / f"data/output/blend/{method}/meta.json").read_text())
    assert recipe["weights"] == meta["blend"]["weights"] and recipe["columns"] == ["id", "target"]
    done = kernel(packed, f"blend/{method}", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "out/submission.csv"
    assert_same_submission(tmp_path / "out/submission.csv", project / f"data/output/blend/{method}/submission.csv")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["submission.csv"]  # the scratch is gone


def test_two_blends_share_their_members_in_one_pack(project, tmp_path):
    packed = pack(project, "blend/mean", "blend/hill", out="pk-two")
    manifest = json.loads((packed / "kagexp-pack.json").read_text())
    assert manifest["runs"] == ["blend/mean", "exp001/run001", "exp002/run001", "blend/hill"]
    assert manifest["kernel_run"] == "blend/mean"
    assert 'RUN = "blend/mean"' in (packed / "kernel/infer.py").read_text()
    done = kernel(packed, "blend/hill", tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_submission(tmp_path / "out/submission.csv", project / "data/output/blend/hill/submission.csv")
    refs = (out_dir(project, "exp002") / "run001/refs.jsonl").read_text()
    assert '"pack:pk-two"' in refs


def test_a_member_without_infer_is_one_line_naming_the_blend_and_the_member(project, tmp_path):
    packed = pack(project, "blend/noinfer", out="pk-noinfer")
    done = kernel(packed, "blend/noinfer", tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        "kagexp: error: blend/noinfer: member exp003/run001: exp.py defines no infer(cfg, ctx); add one"
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out/submission.csv").exists()


def test_a_member_run_again_not_done_or_missing_is_refused_in_one_line(project, tmp_path):
    copy = tmp_path / "p"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("pk-*"))
    assert run_exp(copy, "--force", exp="exp001").returncode == 0
    done = run_kagexp(copy, "pack", "blend/mean", "--dataset", "alice/blend-models", "-o", "pk")
    assert done.returncode == 2
    assert done.stderr == (
        "kagexp: error: blend/mean: its member exp001/run001 ran again since it was blended; "
        "blend it again to pack it\n"
    )
    blend(copy, "exp001/run001", "exp002/run001", "-o", "again")
    refs = (out_dir(copy) / "run001/refs.jsonl").read_text()
    meta_path = out_dir(copy, "exp002") / "run001/meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "status": "failed"}))
    done = run_kagexp(copy, "pack", "blend/again", "--dataset", "alice/blend-models", "-o", "pk")
    assert done.returncode == 2
    assert done.stderr == (
        "kagexp: error: blend/again: its member exp002/run001 is failed, not done; only done runs can be packed\n"
    )
    shutil.rmtree(out_dir(copy, "exp002") / "run001")
    done = run_kagexp(copy, "pack", "blend/again", "--dataset", "alice/blend-models", "-o", "pk")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("kagexp: error: blend/again: its member exp002/run001 is gone: no run ")
    assert not (copy / "pk").exists()
    assert (out_dir(copy) / "run001/refs.jsonl").read_text() == refs  # no reference to a pack not made


def test_show_gives_a_blends_method_members_and_weights(project):
    meta = json.loads((project / "data/output/blend/hill/meta.json").read_text())["blend"]
    done = run_kagexp(project, "show", "blend/hill")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index(f"blend: hill, auc {meta['cv']:.6g} over all OOF rows")
    cv = meta["member_cv"]
    assert [line.split() for line in lines[start + 1 : start + 4]] == [
        ["member", "weight", "oof", "auc"],
        ["exp001/run001", f"{meta['weights'][0]:.6g}", f"{cv['exp001/run001']:.6g}"],
        ["exp002/run001", f"{meta['weights'][1]:.6g}", f"{cv['exp002/run001']:.6g}"],
    ]
    assert "override" not in done.stdout and "base config" not in done.stdout
    # no provenance line of a trained run ("host …  pid …  user …"); the checkout's path may hold "user"
    assert "code None" not in done.stdout and "packages:" not in done.stdout and "  user " not in done.stdout
    assert "  command: " in done.stdout and "provenance:" in done.stdout


def test_the_kernels_blend_modules_import_without_numpy():
    """numpy comes only when a blend is combined; importing the kernel's modules needs yaml alone."""
    code = "import sys, kagexp.kaggle, kagexp.packblend; print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert done.stdout.strip() == "False", done.stderr


def test_a_packed_blend_rehearses_to_its_own_submission(project, tmp_path):
    """The real sandbox: the blend's members inferred offline from the packed wheels, in a fresh venv."""
    packed = pack(project, "blend/rank", out="pk-rehearse")
    guard = [] if os.geteuid() == 0 else ["--allow-network"]
    done = run_kagexp(project, "rehearse", "pk-rehearse", "--limit", "5m", *guard, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1] == "submission.csv: 20 rows, columns id,target; identical to the training run's"
    made = (packed / "rehearsal/working/submission.csv").read_bytes()
    assert made == (project / "data/output/blend/rank/submission.csv").read_bytes()
