"""kagexp pack: done runs as a Kaggle dataset with an offline inference kernel; infer(cfg, ctx)."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import build_tree, make_project, out_dir, run_exp, run_kagexp, subprocess_env

EXAMPLE = Path(__file__).resolve().parents[1] / "example-exp-iris"
DATASET = "alice/iris-exp001-run002"


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """The iris example with exp001's three runs done, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("pack") / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("output", "__pycache__"))
    done = run_exp(root, timeout=120)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def packed(iris):
    done = run_kagexp(iris, "pack", "exp001/run002", "--dataset", DATASET, "-o", "pack")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("packed exp001/run002 into ") and "KB)" in done.stdout
    return iris / "pack"


def test_the_pack_holds_the_run_its_code_a_wheel_and_the_metadata(iris, packed):
    files = sorted(p.relative_to(packed).as_posix() for p in packed.rglob("*") if p.is_file())
    manifest = json.loads((packed / "kagexp-pack.json").read_text())
    code = manifest["code"]["exp001/run002"]
    assert files == [
        "dataset-metadata.json",
        f"exp001/code/{code}/config.yml",
        f"exp001/code/{code}/exp.py",
        f"exp001/code/{code}/model.py",
        f"exp001/code/{code}/train.py",
        "exp001/run002/config.yml",
        "exp001/run002/config_update.yml",
        "exp001/run002/meta.json",
        "exp001/run002/model.pkl",
        "exp001/run002/submission.csv",
        "kagexp-pack.json",
        "kernel/infer.py",
        "kernel/kernel-metadata.json",
        "wheels/kagexp-0.1.0-py3-none-any.whl",
    ]
    run = out_dir(iris) / "run002"
    assert (packed / "exp001/run002/model.pkl").read_bytes() == (run / "model.pkl").read_bytes()
    assert manifest == {
        "format": 1,
        "dataset": DATASET,
        "competition": None,
        "runs": ["exp001/run002"],
        "kernel_run": "exp001/run002",
        "code": {"exp001/run002": code},
    }
    refs = [json.loads(line) for line in (run / "refs.jsonl").read_text().splitlines()]
    assert [(r["by"], r["kind"]) for r in refs] == [("pack:pack", "pack")]
    assert not (out_dir(iris) / "run001" / "refs.jsonl").exists()


def test_the_kagexp_wheel_holds_the_package_and_installs_offline(packed, tmp_path):
    wheel = packed / "wheels/kagexp-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        record = z.read("kagexp-0.1.0.dist-info/RECORD").decode()
    assert "kagexp/kaggle.py" in names and "kagexp/packformat.py" in names
    assert not any("__pycache__" in n for n in names)
    assert all(line.split(",")[0] in names for line in record.splitlines())
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    assert (target / "kagexp/kaggle.py").read_bytes() == (Path(__file__).parents[1] / "kagexp/kaggle.py").read_bytes()


def test_the_metadata_passes_the_kaggle_clients_own_checks(packed, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))  # importing the client makes this folder
    from kaggle.api.kaggle_api_extended import KaggleApi
    from slugify import slugify

    api = KaggleApi()
    dataset = json.loads(Path(api.get_dataset_metadata_file(str(packed))).read_text())
    assert dataset == {"id": DATASET, "title": "iris-exp001-run002", "licenses": [{"name": "CC0-1.0"}]}
    api.validate_dataset_string(dataset["id"])
    assert 6 <= len(dataset["title"]) <= 50 and 6 <= len(dataset["id"].split("/")[1]) <= 50
    kernel = json.loads((packed / "kernel/kernel-metadata.json").read_text())
    api.validate_kernel_string(kernel["id"])
    assert slugify(kernel["title"]) == kernel["id"].split("/")[1]  # `kaggle kernels push` refuses otherwise
    for source in kernel["dataset_sources"]:
        api.validate_dataset_string(source)
    assert (packed / "kernel" / kernel["code_file"]).is_file()
    assert kernel["language"] == "python" and kernel["kernel_type"] == "script"
    assert kernel["enable_internet"] is False and kernel["enable_gpu"] is False
    assert kernel["dataset_sources"] == [DATASET] and kernel["competition_sources"] == []
    script = (packed / "kernel/infer.py").read_text()
    assert '"--no-index"' in script and "kagexp.kaggle.infer(RUN)" in script and 'RUN = "exp001/run002"' in script


def test_kaggle_infer_writes_the_training_submission_from_the_packed_run(iris, packed, tmp_path):
    """The kernel's call, without the sandbox: the pack mounted as a dataset, the working folder elsewhere."""
    (tmp_path / "input").mkdir()
    shutil.copytree(packed, tmp_path / "input" / "iris-exp001-run002")
    env = {**subprocess_env(), "KAGEXP_KAGGLE_INPUT": str(tmp_path / "input"), "KAGEXP_KAGGLE_WORKING": "out"}
    code = "import kagexp.kaggle; print(kagexp.kaggle.infer('exp001/run002'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "out/submission.csv"
    made = (tmp_path / "out/submission.csv").read_bytes()
    assert made == (out_dir(iris) / "run002/submission.csv").read_bytes()


def test_the_kernels_import_needs_only_yaml():
    """A Kaggle image has pyyaml; kagexp's other requirements (deepmerge, click, rich…) may be missing."""
    code = "import sys, kagexp.kaggle, kagexp.inference; print(sorted(m for m in sys.modules if '.' not in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    loaded = set(eval(done.stdout))
    assert not loaded & {"deepmerge", "click", "rich", "copier", "cookiecutter", "jinja2", "pandas", "numpy"}


# --- refusals, atomicity, choices -------------------------------------------------------------

INFER_EXP = """\
import kagexp

RUNS = {runs}


def run(cfg, ctx):
    if cfg.model.params.max_depth == 9:
        raise ValueError("broken")
    ctx.path("model.txt").write_text(str(cfg.model.params.max_depth))
    ctx.path("models/fold0.bin").write_bytes(b"0")
    ctx.save_submission([{{"id": 1, "target": cfg.model.params.max_depth}}])


def infer(cfg, ctx):
    depth = ctx.artifact("{artifact}").read_text()
    ctx.save_submission([{{"id": 1, "target": depth}}])


if __name__ == "__main__":
    kagexp.main(run, RUNS)
"""


def small_project(root: Path, artifact: str = "model.txt", settings: str = "") -> Path:
    runs = ["model:\n  params:\n    max_depth: 2\n", "model:\n  params:\n    max_depth: 9\n"]
    make_project(root, settings=f"name: t\n{settings}")
    build_tree(root, {"exp/exp001/exp.py": INFER_EXP.format(runs=repr(runs), artifact=artifact)})
    run_exp(root)
    return root


def test_a_run_that_is_not_done_is_refused_in_one_line(tmp_path):
    root = small_project(tmp_path)
    done = run_kagexp(root, "pack", "exp001/run001", "exp001/run002", "--dataset", DATASET)
    assert done.returncode == 2
    assert done.stderr == "kagexp: error: exp001/run002 is failed, not done; only done runs can be packed\n"
    assert not (root / "data/output/packs").exists()
    assert not (out_dir(root) / "run001/refs.jsonl").exists()


def test_the_dataset_id_comes_from_kagexp_yml_and_is_checked(tmp_path):
    root = small_project(tmp_path, settings="kaggle:\n  dataset: bob/small-models\n  license: CC-BY-4.0\n")
    done = run_kagexp(root, "pack", "exp001/run001")
    assert done.returncode == 0, done.stderr
    pack = root / "data/output/packs/small-models"
    assert json.loads((pack / "dataset-metadata.json").read_text())["licenses"] == [{"name": "CC-BY-4.0"}]
    again = run_kagexp(root, "pack", "exp001/run001")
    assert again.returncode == 2 and "exists; pack into another folder with -o DIR" in again.stderr
    bad = run_kagexp(root, "pack", "exp001/run001", "--dataset", "bob/x", "-o", "other")
    assert bad.returncode == 2 and "'bob/x' is not a Kaggle dataset id" in bad.stderr


def test_no_dataset_id_is_an_error_saying_where_to_give_one(tmp_path):
    root = small_project(tmp_path)
    done = run_kagexp(root, "pack", "exp001/run001")
    assert done.returncode == 2
    assert "pass --dataset OWNER/SLUG or set kaggle.dataset in kagexp.yml" in done.stderr


def test_artifacts_choose_the_saved_files(tmp_path):
    root = small_project(tmp_path)
    done = run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "p", "--artifacts", "models/*")
    assert done.returncode == 0, done.stderr
    run = sorted(p.relative_to(root / "p/exp001/run001").as_posix() for p in (root / "p/exp001/run001").rglob("*"))
    assert run == ["config.yml", "config_update.yml", "meta.json", "models", "models/fold0.bin"]
    none = run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "q", "--artifacts", "*.ckpt")
    assert none.returncode == 2 and "no saved file matches *.ckpt" in none.stderr


def _tiny_wheel(folder: Path) -> Path:
    """A real (if empty) wheel, so that --wheels is tested without the network."""
    path = folder / "tinydep-1.0-py3-none-any.whl"
    info = "tinydep-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tinydep/__init__.py", "VALUE = 1\n")
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return path


def test_wheels_are_fetched_with_pip_download(tmp_path):
    root = small_project(tmp_path / "p")
    (tmp_path / "index").mkdir()
    _tiny_wheel(tmp_path / "index")
    old = dict(os.environ)
    os.environ.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path / "index"))
    try:
        done = run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "p", "--wheels", "tinydep==1.0")
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (root / "p/wheels").iterdir()) == [
        "kagexp-0.1.0-py3-none-any.whl",
        "tinydep-1.0-py3-none-any.whl",
    ]


def test_a_failing_download_leaves_no_pack_and_no_reference(tmp_path):
    root = small_project(tmp_path)
    env_pip = {"PIP_NO_INDEX": "1"}
    old = dict(os.environ)
    os.environ.update(env_pip)
    try:
        done = run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "p", "--wheels", "nosuchdep==1")
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert done.returncode == 2
    assert done.stderr.startswith("kagexp: error: pip download nosuchdep==1 failed: ")
    assert len(done.stderr.splitlines()) == 1
    assert sorted(p.name for p in root.iterdir()) == ["data", "exp", "kagexp.yml"]
    assert not (out_dir(root) / "run001/refs.jsonl").exists()


def test_a_missing_artifact_names_the_run_and_the_closest_file(tmp_path):
    root = small_project(tmp_path, artifact="modle.txt")
    done = run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "p")
    assert done.returncode == 0, done.stderr
    (tmp_path / "input").mkdir()
    shutil.copytree(root / "p", tmp_path / "input/iris-exp001-run002")
    env = {**subprocess_env(), "KAGEXP_KAGGLE_INPUT": str(tmp_path / "input"), "KAGEXP_KAGGLE_WORKING": "out"}
    code = "import kagexp.kaggle; kagexp.kaggle.infer('exp001/run001')"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert (
        "NotFoundError: exp001/run001 saved no file 'modle.txt'; did you mean `model.txt`? "
        "(its files: model.txt, models/fold0.bin, submission.csv)"
    ) in done.stderr


# --- the starters define infer too ------------------------------------------------------------------


def _infer_packed(root: Path, run: str, tmp_path: Path) -> bytes:
    """Pack `run` and call the kernel's kagexp.kaggle.infer on it; the submission it writes."""
    done = run_kagexp(root, "pack", run, "--dataset", "alice/starter-models", "-o", "pk")
    assert done.returncode == 0, done.stderr
    (tmp_path / "input").mkdir()
    shutil.copytree(root / "pk", tmp_path / "input/starter-models")
    env = {**subprocess_env(), "KAGEXP_KAGGLE_INPUT": str(tmp_path / "input"), "KAGEXP_KAGGLE_WORKING": "out"}
    code = f"import kagexp.kaggle; kagexp.kaggle.infer({run!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "out/submission.csv").read_bytes()


def test_the_project_starter_infers_its_training_submission(tmp_path):
    from kagexp.scaffold import init_project

    root = init_project(tmp_path / "p", data={"metric_name": "auc"}).path
    assert run_exp(root, "--only", "1", timeout=120).returncode == 0
    made = _infer_packed(root, "exp001/run001", tmp_path)
    assert made == (out_dir(root) / "run001/submission.csv").read_bytes()


def test_the_gbdt_folds_starter_infers_its_training_submission(tmp_path):
    from kagexp.project import load_project
    from kagexp.scaffold import new_experiment

    root = make_project(tmp_path / "p", settings="name: t\nmetric:\n  name: auc\n  direction: max\n")
    new_experiment(load_project(root), template="gbdt-folds")
    assert run_exp(root, "--only", "1", exp="exp002", timeout=180).returncode == 0
    made = _infer_packed(root, "exp002/run001", tmp_path)
    assert made == (out_dir(root, "exp002") / "run001/submission.csv").read_bytes()


def test_a_malformed_dataset_id_in_kagexp_yml_is_named_with_its_line(tmp_path):
    root = small_project(tmp_path, settings="kaggle:\n  dataset: My Models\n")
    done = run_kagexp(root, "pack", "exp001/run001")
    assert done.returncode == 2
    assert done.stderr == (
        f"kagexp: error: {root / 'kagexp.yml'}:3: `kaggle.dataset` must be a Kaggle dataset id OWNER/SLUG, "
        "such as alice/titanic-models or null, not a string ('My Models')\n"
    )


def test_the_kernel_asks_for_a_gpu_when_the_run_saw_one(tmp_path):
    root = small_project(tmp_path)
    meta_path = out_dir(root) / "run001/meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "gpus": ["Tesla T4"]}))
    done = run_kagexp(root, "pack", "exp001/run001", "--dataset", DATASET, "-o", "p")
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "p/kernel/kernel-metadata.json").read_text())["enable_gpu"] is True


def test_a_run_reads_back_what_it_saved_with_ctx_artifact(tmp_path):
    body = """\
ctx.path("model.txt").write_text("fitted")
print("read", ctx.artifact("model.txt").read_text())
ctx.artifact("modle.txt")
"""
    root = make_project(tmp_path, runs=[""], body=body)
    done = run_exp(root)
    assert "read fitted" in done.stdout
    error = (out_dir(root) / "run001/error.txt").read_text()
    assert (
        "NotFoundError: exp001/run001 saved no file 'modle.txt'; did you mean `model.txt`? (its files: model.txt)"
        in error
    )
