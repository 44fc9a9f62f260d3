"""kagexp's own templates (`templates/`): the starters run and tell the truth, `copier copy` and `copier update`
work from the repository, and the wheel ships the templates. Real copier, git, pip and processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import build_tree, commit_all, git, make_project, out_dir, run_exp, subprocess_env

from kagexp import __version__
from kagexp.errors import NotFoundError, TemplateError
from kagexp.project import load_project, load_settings
from kagexp.scaffold import builtin, init_project, new_experiment
from kagexp.scaffold.init import missing_modules, starter_hint

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("kagexp", "templates", "copier.yml", "pyproject.toml", "setup.py", "README.md")


@pytest.fixture(autouse=True)
def fake_home(tmp_path, monkeypatch):
    """copier, cookiecutter and git read and write under the home folder; keep them in the test's."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # HistGradientBoosting on small data: one thread is the fastest
    for variable in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(variable, "t")
    for variable in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(variable, "t@t")
    return home


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def metrics(root: Path, exp: str = "exp001", run: str = "run001") -> dict:
    return json.loads((out_dir(root, exp) / run / "metrics.json").read_text())


def copy_sources(dest: Path) -> Path:
    """The files of this repository that make kagexp and its templates, without caches."""
    dest.mkdir(parents=True)
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A git clone of kagexp as a user would have it: the sources committed and tagged `v<version>`."""
    repo = copy_sources(tmp_path / "kagexp-checkout")
    git(repo, "init", "-q")
    commit_all(repo, "kagexp", tag=f"v{__version__}")
    return repo


# --- the starter experiment of the project template -------------------------------------


@pytest.mark.parametrize(
    "metric, direction, low, high",
    [("auc", "max", 0.5, 1.0), ("rmse", "min", 30.0, 120.0)],  # diabetes targets lie in 25..346
)
def test_the_starter_computes_the_metric_the_answers_name(tmp_path, metric, direction, low, high):
    root = init_project(tmp_path / "p", data={"metric_name": metric}).path
    assert load_settings(root)["metric"] == {"name": metric, "direction": direction}

    done = run_exp(root, "--only", "1")

    assert done.returncode == 0, done.stderr
    logged = metrics(root)
    assert set(logged) == {metric, f"{metric}_std"}  # the folds' scores are in metrics.jsonl, by fold
    assert low <= logged[metric] <= high
    assert f"CV {metric} " in done.stdout
    submission = (out_dir(root) / "run001/submission.csv").read_text().splitlines()
    assert submission[0] == "id,target"
    predictions = [float(line.split(",")[1]) for line in submission[1:]]
    if metric == "auc":  # probabilities of the positive class, as AUC is computed on
        assert all(0 <= p <= 1 for p in predictions) and not set(predictions) <= {0.0, 1.0}


def test_the_starter_hint_names_the_example_extra():
    assert missing_modules(["json", "kagexp_no_such_module"]) == ["kagexp_no_such_module"]
    hint = starter_hint({"json": "json", "kagexp_no_such_module": "no-such-package"})
    assert hint == "the starter experiment needs no-such-package, missing here: pip install 'kagexp[example]'"
    assert starter_hint({"json": "json"}) is None


# --- experiment starters (templates/exp/) -------------------------------------------------


def test_shipped_starters_are_found_by_name(tmp_path):
    assert builtin.starters() == ["gbdt-folds"]
    assert builtin.starter("gbdt-folds") == builtin.templates_dir() / "exp" / "gbdt-folds"
    assert builtin.starter("../project") is None
    root = make_project(tmp_path / "p")
    with pytest.raises(NotFoundError, match="template no-such-starter not found"):
        new_experiment(load_project(root), template="no-such-starter")
    with pytest.raises(TemplateError, match="give --template too"):
        new_experiment(load_project(root), data={"metric_name": "auc"})
    assert load_project(root).experiments() == ["exp001"]


def test_gbdt_folds_trains_fold_by_fold_with_the_project_metric(tmp_path):
    root = make_project(tmp_path / "p", settings="name: t\nmetric:\n  name: auc\n  direction: max\n")

    made = new_experiment(load_project(root), template="gbdt-folds", note="a GBDT baseline")

    assert (made.name, made.template) == ("exp002", "gbdt-folds")
    assert set(p.name for p in made.path.iterdir()) == {"config.yml", "exp.py", "model.py", "train.py", "lineage.yml"}
    assert 'METRIC = "auc"' in (made.path / "exp.py").read_text()
    assert (made.path / "exp.py").read_text().startswith('"""exp002: ')
    done = run_exp(root, "--only", "1", exp="exp002", timeout=180)
    assert done.returncode == 0, done.stderr
    run = out_dir(root, "exp002") / "run001"
    logged = metrics(root, "exp002")
    assert 0.5 <= logged["auc"] <= 1 and 0 <= logged["auc_std"] < 0.1  # out-of-fold auc, std over the folds
    assert sorted(p.name for p in (run / "models").iterdir()) == [f"fold{i}.pkl" for i in range(5)]
    oof = (run / "oof.csv").read_text().splitlines()
    assert oof[0] == "id,fold,target,pred" and len(oof) - 1 == 398  # 70% of 569 rows, each predicted once
    assert {line.split(",")[1] for line in oof[1:]} == {"0", "1", "2", "3", "4"}


def test_gbdt_folds_from_its_path_on_csv_files_with_a_text_column(tmp_path):
    """`kagexp new --template PATH --data metric_name=accuracy`, then a run on the competition's CSV files."""
    root = make_project(tmp_path / "p")
    rows = [(i, ["red", "green", "blue"][i % 3], i % 7, int(i % 3 == 0)) for i in range(150)]
    build_tree(
        root / "data/input",
        {
            "train.csv": "id,colour,size,label\n" + "".join(f"{i},{c},{s},{y}\n" for i, c, s, y in rows),
            "test.csv": "id,colour,size\n100,red,1\n101,blue,2\n",
        },
    )
    template = REPO / "templates" / "exp" / "gbdt-folds"
    env = subprocess_env()
    cli = [sys.executable, "-m", "kagexp"]
    made = subprocess.run(
        [*cli, "new", "--template", str(template), "--data", "metric_name=accuracy"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"created exp/exp002 from {template} (")
    exp_py = root / "exp/exp002/exp.py"
    exp_py.write_text(
        exp_py.read_text().replace(
            'RUNS = [\n    "",', 'RUNS = [\n    "data: {train: train.csv, test: test.csv, target: label}",'
        )
    )

    done = run_exp(root, "--only", "1", exp="exp002", timeout=180)

    assert done.returncode == 0, done.stderr
    assert metrics(root, "exp002")["accuracy"] == 1.0  # the label is `colour == red`: trees find it
    assert (out_dir(root, "exp002") / "run001/submission.csv").read_text() == "id,label\n100,1\n101,0\n"


# --- where the project template comes from: copier copy, copier update ---------------------


def test_checkout_source_is_the_version_tag_or_the_commit(checkout):
    version = __version__
    head = git(checkout, "rev-parse", "HEAD").strip()
    assert builtin.checkout_source(checkout, version) == builtin.Source(checkout, f"v{version}")
    assert builtin.checkout_source(checkout, "99.0") == builtin.Source(checkout, head)  # no such tag

    (checkout / "kagexp/cli.py").write_text("# changed\n")  # code changes do not matter
    commit_all(checkout, "code")
    assert builtin.checkout_source(checkout, version) == builtin.Source(checkout, f"v{version}")

    readme = checkout / "templates/project/template/README.md.jinja"
    readme.write_text(readme.read_text() + "\nChanged.\n")
    assert builtin.checkout_source(checkout, version) is None  # not committed: no ref would say what rendered
    commit_all(checkout, "template")
    head = git(checkout, "rev-parse", "HEAD").strip()
    assert builtin.checkout_source(checkout, version) == builtin.Source(checkout, head)  # the tag's differs

    (checkout / "templates/exp/new-starter").mkdir()
    (checkout / "templates/exp/new-starter/copier.yml").write_text("_subdirectory: template\n")
    assert builtin.checkout_source(checkout, version) is None  # untracked template files count too
    assert builtin.checkout_source(checkout / "templates", version) is None  # not the top of the work tree
    assert builtin.checkout_source(checkout.parent, version) is None  # not in git at all


def test_copier_update_brings_a_template_change_into_a_project_made_by_kagexp_init(checkout, tmp_path):
    """`kagexp init` run from a git checkout records it, so `copier update` works; the user's edits stay."""
    import copier

    env = {**subprocess_env(), "PYTHONPATH": str(checkout)}  # this python runs the checkout's kagexp
    done = subprocess.run(
        [sys.executable, "-m", "kagexp", "init", "comp", "--data", "metric_name=logloss"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing to warn about
    project = tmp_path / "comp"
    answers = read_yaml(project / ".copier-answers.yml")
    assert (answers["_src_path"], answers["_commit"]) == (str(checkout), f"v{__version__}")
    git(project, "init", "-q")
    commit_all(project, "generated")
    readme = project / "README.md"
    readme.write_text(readme.read_text().replace("# comp\n", "# comp: my notes\n", 1))
    config = project / "exp/exp001/config.yml"
    config.write_text(config.read_text().replace("n_splits: 5", "n_splits: 3"))
    commit_all(project, "my edits")

    template = checkout / "templates/project/template"
    (template / ".gitignore").write_text((template / ".gitignore").read_text() + "*.ckpt\n")
    (template / "README.md.jinja").write_text((template / "README.md.jinja").read_text() + "\nTemplate v99.\n")
    commit_all(checkout, "template change", tag="v99.0.0")
    copier.run_update(str(project), overwrite=True, defaults=True, unsafe=False, quiet=True)

    assert "*.ckpt" in (project / ".gitignore").read_text().splitlines()
    text = readme.read_text()
    assert text.startswith("# comp: my notes\n") and "Template v99." in text
    assert "n_splits: 3" in config.read_text()
    answers = read_yaml(project / ".copier-answers.yml")
    assert (answers["_commit"], answers["metric_name"], answers["metric_direction"]) == ("v99.0.0", "logloss", "min")
    assert "<<<<<<<" not in text


@pytest.mark.filterwarnings("ignore:Dirty template changes included")  # this working tree, as it is
def test_copier_copy_from_the_repository(checkout, tmp_path):
    """The root copier.yml points at templates/project: a path or a git URL of the repository renders a project."""
    import copier

    url = f"git+file://{checkout}"
    copier.run_copy(url, tmp_path / "by-url", data={"metric_name": "f1"}, defaults=True, quiet=True)
    copier.run_copy(str(REPO), tmp_path / "by-path", defaults=True, quiet=True, vcs_ref="HEAD")

    for name in ("by-url", "by-path"):
        project = tmp_path / name
        assert (project / "exp/exp001/train.py").is_file() and not (project / "templates").exists()
        assert load_settings(project)["name"] == "my-comp"
    assert load_settings(tmp_path / "by-url")["metric"] == {"name": "f1", "direction": "max"}
    answers = read_yaml(tmp_path / "by-url/.copier-answers.yml")
    assert (answers["_src_path"], answers["_commit"]) == (url, f"v{__version__}")


def test_the_wheel_ships_the_templates_and_init_works_from_it(tmp_path):
    """`pip install .` (not editable): the templates are inside the wheel, and `init` renders from them."""
    sources = copy_sources(tmp_path / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(sources)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("kagexp-*.whl")
    shipped = {p.relative_to(REPO / "templates").as_posix() for p in (REPO / "templates").rglob("*") if p.is_file()}
    shipped = {name for name in shipped if "__pycache__" not in name}
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    in_wheel = {n.removeprefix("kagexp/_templates/") for n in names if n.startswith("kagexp/_templates/")}
    assert shipped <= in_wheel
    assert {"project/template/.gitignore", "project/template/data/input/.gitkeep", "exp/gbdt-folds/copier.yml"} <= (
        in_wheel
    )
    assert "kagexp/scaffold/init.py" in names and "kagexp/templates/report/experiment.md.j2" in names

    script = "import kagexp; from kagexp.scaffold import init_project; print(kagexp.__file__); init_project('comp')"
    env = {**subprocess_env(), "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(tmp_path / "site"))
    answers = read_yaml(tmp_path / "comp/.copier-answers.yml")
    assert answers["_src_path"] == str(tmp_path / "site/kagexp/_templates/project")
    assert (tmp_path / "comp/exp/exp001/exp.py").is_file()
    assert "_commit" not in answers  # no git reference: as the README says, `copier update` cannot work
    import copier
    from copier.errors import UserMessageError

    git(tmp_path / "comp", "init", "-q")
    commit_all(tmp_path / "comp", "generated")
    with pytest.raises(UserMessageError, match="cannot obtain old template references"):
        copier.run_update(str(tmp_path / "comp"), overwrite=True, defaults=True, quiet=True)
