"""`init` (copier and cookiecutter templates) and `new` (copy an experiment), on real files, templates and git."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from helpers import build_tree, commit_all, git, make_project, run_exp, snapshot_tree

from kagexp.errors import KagexpError, NotFoundError, TargetExistsError, TemplateError, UntrustedTemplateError
from kagexp.project import Project, load_project, load_settings
from kagexp.scaffold import builtin, init_project, new_experiment
from kagexp.scaffold.copying import LARGE_FILE
from kagexp.scaffold.templates import detect_template_kind

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_TEMPLATE = builtin.templates_dir() / "project"
COOKIECUTTER_EXP = FIXTURES / "cookiecutter-exp"
COOKIECUTTER_HOOK = FIXTURES / "cookiecutter-with-hook"
COPIER_TASK = FIXTURES / "copier-with-task"


@pytest.fixture(autouse=True)
def fake_home(tmp_path, monkeypatch):
    """copier and cookiecutter read and write under the home folder; keep them in the test's."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("COOKIECUTTER_CONFIG", raising=False)
    monkeypatch.delenv("COPIER_SETTINGS_PATH", raising=False)
    return home


def leftovers(folder: Path) -> list[str]:
    """Temporary folders a failed call might have left behind (their names start with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp-" in p.name)


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --- init: the built-in template -------------------------------------------------------


def test_init_renders_builtin_template_with_defaults(tmp_path, fake_home):
    dest = tmp_path / "titanic"
    assert init_project(dest).path == dest

    settings = load_settings(dest)
    assert settings["name"] == "titanic"  # the folder's name, unless `project_name` is given
    assert settings["competition"] is None
    assert settings["metric"] == {"name": "auc", "direction": "max"}
    assert settings["wandb"]["enabled"] is False
    assert settings["new"]["exclude"] == []
    expected = {
        ".copier-answers.yml",
        ".gitignore",
        "README.md",
        "kagexp.yml",
        "data/input/.gitkeep",
        "exp/exp001/config.yml",
        "exp/exp001/exp.py",
        "exp/exp001/model.py",
        "exp/exp001/train.py",
    }
    assert set(snapshot_tree(dest)) == expected
    answers = read_yaml(dest / ".copier-answers.yml")
    assert answers["_src_path"] == str(builtin.project_source().path)  # this checkout, or its templates/project
    assert answers["project_name"] == "titanic"
    assert answers["metric_direction"] == "max"
    gitignore = (dest / ".gitignore").read_text().splitlines()
    assert {"data/input/*", "data/output/", "wandb/", "__pycache__/", ".ipynb_checkpoints/"} <= set(gitignore)
    assert "kagexp new" in (dest / "README.md").read_text()
    assert leftovers(tmp_path) == []
    assert list(fake_home.iterdir()) == []


def test_init_data_overrides_answers(tmp_path):
    data = {
        "project_name": "playground",
        "competition": "playground-series-s4e1",
        "metric_name": "rmse",
        "metric_direction": "min",
        "use_wandb": True,
    }
    dest = init_project(tmp_path / "p", data=data).path

    settings = load_settings(dest)
    assert settings["name"] == "playground"
    assert settings["competition"] == "playground-series-s4e1"
    assert settings["metric"] == {"name": "rmse", "direction": "min"}
    assert settings["wandb"]["enabled"] is True
    assert settings["wandb"]["project"] == "playground"
    answers = read_yaml(dest / ".copier-answers.yml")
    assert {key: answers[key] for key in data} == data
    readme = (dest / "README.md").read_text()
    assert "kaggle competitions download -c playground-series-s4e1" in readme
    assert "`rmse` (lower is better)" in readme


def test_metric_direction_follows_the_metric(tmp_path):
    assert load_settings(init_project(tmp_path / "a", data={"metric_name": "logloss"}).path)["metric"] == {
        "name": "logloss",
        "direction": "min",
    }
    with pytest.raises(TemplateError, match="a lower rmse is better: metric_direction must be min") as info:
        init_project(tmp_path / "b", data={"metric_name": "rmse", "metric_direction": "max"})
    assert "\n" not in str(info.value)
    with pytest.raises(TemplateError, match="Invalid choice for 'metric_name': 'cv'"):
        init_project(tmp_path / "c", data={"metric_name": "cv"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "home"]


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    dest = tmp_path / "p"
    build_tree(dest, {"notes.md": "mine\n", "kagexp.yml": "name: old\n"})
    before = snapshot_tree(dest)

    with pytest.raises(TargetExistsError, match="not empty; kagexp never overwrites.*--force"):
        init_project(dest)

    assert snapshot_tree(dest) == before
    assert leftovers(tmp_path) == []


def test_init_force_renders_into_a_folder_that_is_not_empty(tmp_path):
    dest = tmp_path / "p"
    mine = {"notes.md": "mine\n", "kagexp.yml": "name: mine\n", "exp": {"exp001": {"exp.py": "# my edits\n"}}}
    build_tree(dest, mine)

    made = init_project(dest, force=True)

    assert made.kept == ["exp/exp001/exp.py", "kagexp.yml"]
    assert (dest / "notes.md").read_text() == "mine\n"
    assert (dest / "exp/exp001/exp.py").read_text() == "# my edits\n"
    assert (dest / "kagexp.yml").read_text() == "name: mine\n"
    assert (dest / "exp/exp001/train.py").exists() and (dest / "README.md").exists()


def test_init_into_an_empty_folder(tmp_path):
    dest = tmp_path / "p"
    dest.mkdir()
    init_project(dest)
    assert (dest / "kagexp.yml").is_file()


def test_init_refuses_a_file(tmp_path):
    (tmp_path / "p").write_text("x")
    with pytest.raises(TargetExistsError, match="is a file"):
        init_project(tmp_path / "p", force=True)


def test_invalid_answer_is_a_one_line_error(tmp_path):
    with pytest.raises(TemplateError, match="metric_direction") as info:
        init_project(tmp_path / "p", data={"metric_direction": "sideways"})
    assert "\n" not in str(info.value)
    assert not (tmp_path / "p").exists()
    assert leftovers(tmp_path) == []


# --- init: other templates ---------------------------------------------------------------


def test_template_kind_is_detected(tmp_path):
    assert detect_template_kind(PROJECT_TEMPLATE) == "copier"
    assert detect_template_kind(COPIER_TASK) == "copier"
    assert detect_template_kind(COOKIECUTTER_EXP) == "cookiecutter"
    (tmp_path / "plain").mkdir()
    with pytest.raises(TemplateError, match="neither copier.yml .* nor cookiecutter.json"):
        detect_template_kind(tmp_path / "plain")


def test_a_folder_that_is_no_template_is_refused(tmp_path):
    build_tree(tmp_path / "plain", {"README.md": "hi\n"})
    with pytest.raises(TemplateError, match="is not a template"):
        init_project(tmp_path / "p", template=tmp_path / "plain")
    with pytest.raises(NotFoundError, match="template .*missing not found"):
        init_project(tmp_path / "p", template=str(tmp_path / "missing"))
    assert not (tmp_path / "p").exists()


def test_init_renders_a_cookiecutter_template(tmp_path, fake_home):
    dest = init_project(tmp_path / "p", template=COOKIECUTTER_EXP, data={"model": "xgboost"}, trust=True).path

    assert set(snapshot_tree(dest)) == {"config.yml", "exp.py"}  # the slug folder's content, moved up
    assert read_yaml(dest / "config.yml")["model"] == {"name": "xgboost", "params": {"learning_rate": 0.05}}
    assert leftovers(tmp_path) == []
    assert not (fake_home / ".cookiecutter_replay").exists()
    assert not (fake_home / ".cookiecutters").exists()


def test_copier_tasks_need_trust(tmp_path):
    dest = tmp_path / "a" / "b" / "p"  # its missing parents are created, and removed again on failure

    with pytest.raises(UntrustedTemplateError, match="runs code .*tasks.*pass --trust"):
        init_project(dest, template=COPIER_TASK)
    assert not (tmp_path / "a").exists()

    init_project(dest, template=COPIER_TASK, trust=True)
    assert (dest / "task-ran.txt").exists()
    assert (dest / "README.md").read_text() == "# tasked\n"


def test_cookiecutter_hooks_need_trust(tmp_path):
    dest = tmp_path / "p"

    with pytest.raises(UntrustedTemplateError, match="runs code .*hooks.*pass --trust"):
        init_project(dest, template=COOKIECUTTER_HOOK)
    assert not dest.exists()
    assert leftovers(tmp_path) == []

    init_project(dest, template=COOKIECUTTER_HOOK, trust=True)
    assert (dest / "hook-ran.txt").exists()
    assert (dest / "README.md").read_text() == "# hooked\n"


def test_a_failing_hook_leaves_nothing(tmp_path):
    template = tmp_path / "tpl"
    shutil.copytree(COOKIECUTTER_HOOK, template)
    (template / "hooks/post_gen_project.py").write_text("raise SystemExit(3)\n")

    with pytest.raises(TemplateError, match="hook .* failed"):
        init_project(tmp_path / "p", template=template, trust=True)
    assert not (tmp_path / "p").exists()
    assert leftovers(tmp_path) == []


def test_templates_from_git_urls(tmp_path):
    """A template that is not a local folder is cloned; copier gets the URL, so updates find it."""
    for fixture in (COOKIECUTTER_EXP, COPIER_TASK):
        repo = tmp_path / fixture.name
        shutil.copytree(fixture, repo)
        git(repo, "init", "-q")
        commit_all(repo, "template")

    init_project(tmp_path / "cc", template=f"file://{tmp_path / 'cookiecutter-exp'}", trust=True)
    assert (tmp_path / "cc/config.yml").is_file()
    init_project(tmp_path / "cp", template=f"file://{tmp_path / 'copier-with-task'}", trust=True)
    assert (tmp_path / "cp/task-ran.txt").is_file()
    with pytest.raises(TemplateError, match="cannot fetch template"):
        init_project(tmp_path / "x", template=f"file://{tmp_path / 'nowhere'}")


# --- new -----------------------------------------------------------------------------------


def lineage(project: Path, exp: str) -> dict:
    return read_yaml(project / "exp" / exp / "lineage.yml")


def test_new_copies_the_latest_experiment_to_the_next_number(tmp_path):
    root = make_project(tmp_path / "p")
    project = load_project(root)

    made = new_experiment(project)

    assert (made.name, made.parent, made.note, made.large_files) == ("exp002", "exp001", None, [])
    assert made.path == root / "exp" / "exp002"
    assert made.copied == 3
    source = snapshot_tree(root / "exp/exp001")
    copy = snapshot_tree(made.path)
    assert copy.pop("lineage.yml")
    assert copy == source
    record = lineage(root, "exp002")
    assert record["parent"] == "exp001" and record["note"] is None
    assert record["created"][:4].isdigit() and "T" in record["created"]
    assert leftovers(root / "exp") == []


def test_new_with_a_name_and_a_source_by_number(tmp_path):
    root = make_project(tmp_path / "p")
    project = load_project(root)

    assert new_experiment(project, name="42", source="1", note="deeper trees").name == "exp042"
    following = new_experiment(project)

    assert lineage(root, "exp042") | {"created": None} == {"parent": "exp001", "note": "deeper trees", "created": None}
    assert (following.name, following.parent) == ("exp043", "exp042")
    assert project.experiments() == ["exp001", "exp042", "exp043"]


def test_new_numbers_after_the_highest_numbered_experiment(tmp_path):
    root = make_project(tmp_path / "p")
    for name in ("exp010_lgbm", "baseline"):
        shutil.copytree(root / "exp/exp001", root / "exp" / name)
    made = new_experiment(load_project(root))
    assert (made.name, made.parent) == ("exp011", "exp010_lgbm")


def test_new_leaves_out_caches_outputs_and_excluded_files(tmp_path):
    settings = 'name: t\nnew:\n  exclude: ["*.ckpt", "scratch"]\n'
    root = make_project(tmp_path / "p", settings=settings)
    exp = root / "exp/exp001"
    build_tree(
        exp,
        {
            "__pycache__": {"model.cpython-311.pyc": "x"},
            "stale.pyc": "x",
            ".ipynb_checkpoints": {"eda-checkpoint.ipynb": "{}"},
            "wandb": {"run-1": {"files.txt": "x"}},
            "lineage.yml": "parent: null\n",
            "RESULTS.md": "# results\n",
            "weights.ckpt": "x",
            "scratch": {"notes.txt": "x"},
            "features": {"__pycache__": {"f.pyc": "x"}, "build.py": "X = 1\n", "fold.ckpt": "x"},
            "eda.ipynb": "{}",
            "run.sh": "#!/bin/sh\n",
        },
    )
    (exp / "run.sh").chmod(0o755)
    (exp / "data").symlink_to("../../data/input")

    made = new_experiment(load_project(root))

    copied = set(snapshot_tree(made.path))
    assert copied == {"config.yml", "exp.py", "model.py", "features/build.py", "eda.ipynb", "run.sh", "lineage.yml"}
    assert (made.path / "run.sh").stat().st_mode & 0o111
    assert os.readlink(made.path / "data") == "../../data/input"
    assert made.copied == 7  # six files and the symlink
    assert lineage(root, "exp002")["parent"] == "exp001"  # not the source's lineage.yml


def test_new_never_overwrites(tmp_path):
    root = make_project(tmp_path / "p")
    shutil.copytree(root / "exp/exp001", root / "exp/exp002")
    (root / "exp/exp002/model.py").write_text("DEPTH = 2\n")
    before = snapshot_tree(root)

    with pytest.raises(TargetExistsError, match="exp/exp002 already exists; kagexp never overwrites"):
        new_experiment(load_project(root), name="2")

    assert snapshot_tree(root) == before
    assert leftovers(root / "exp") == []


def test_new_from_a_missing_source_suggests_one(tmp_path):
    root = make_project(tmp_path / "p")
    with pytest.raises(NotFoundError) as info:
        new_experiment(load_project(root), source="ex001")
    message = str(info.value)
    assert "exp/ex001 does not exist; did you mean `exp001`?" in message
    assert "experiments: exp001" in message
    assert "\n" not in message
    assert load_project(root).experiments() == ["exp001"]


def test_new_without_any_experiment(tmp_path):
    (tmp_path / "kagexp.yml").write_text("name: t\n")
    with pytest.raises(NotFoundError, match="no experiment in exp/ to copy"):
        new_experiment(load_project(tmp_path))


def test_new_reports_large_files(tmp_path):
    root = make_project(tmp_path / "p")
    for name, size in (("oof.npy", 11 * 2**20), ("small.npy", LARGE_FILE)):
        with open(root / "exp/exp001" / name, "wb") as f:
            f.truncate(size)  # sparse: the size without writing the bytes

    made = new_experiment(load_project(root))

    assert made.large_files == [("oof.npy", 11 * 2**20)]
    assert (made.path / "oof.npy").stat().st_size == 11 * 2**20
    assert (made.path / "small.npy").stat().st_size == LARGE_FILE


def test_new_from_a_template(tmp_path):
    root = make_project(tmp_path / "p")

    made = new_experiment(load_project(root), template=COOKIECUTTER_EXP, note="lgbm baseline", trust=True)

    assert (made.name, made.parent, made.template) == ("exp002", None, str(COOKIECUTTER_EXP))
    assert set(snapshot_tree(made.path)) == {"config.yml", "exp.py", "lineage.yml"}
    record = lineage(root, "exp002")
    assert (record["parent"], record["note"], record["template"]) == (None, "lgbm baseline", str(COOKIECUTTER_EXP))
    done = run_exp(root, exp="exp002")
    assert done.returncode == 0, done.stderr


def test_new_from_an_untrusted_template_leaves_nothing(tmp_path):
    root = make_project(tmp_path / "p")
    before = snapshot_tree(root)
    with pytest.raises(UntrustedTemplateError):
        new_experiment(load_project(root), template=COPIER_TASK)
    assert snapshot_tree(root) == before
    assert leftovers(root / "exp") == []


def race(calls: list) -> list:
    """Start the calls at the same moment in threads; return each one's result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except KagexpError as exc:
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_new_racing_for_one_name(tmp_path):
    root = make_project(tmp_path / "p")
    build_tree(root / "exp/exp001", {f"pkg/m{i}.py": "X = 1\n" * 50 for i in range(100)})
    project = load_project(root)

    results = race([lambda: new_experiment(project, name="7"), lambda: new_experiment(project, name="7")])

    assert sorted(type(r).__name__ for r in results) == ["NewExperiment", "TargetExistsError"]
    assert project.experiments() == ["exp001", "exp007"]
    assert leftovers(root / "exp") == []


def test_two_new_racing_for_the_next_number_both_succeed(tmp_path):
    root = make_project(tmp_path / "p")
    build_tree(root / "exp/exp001", {f"pkg/m{i}.py": "X = 1\n" * 50 for i in range(100)})
    project = Project(root, load_settings(root))

    results = race([lambda: new_experiment(project), lambda: new_experiment(project)])

    assert sorted(r.name for r in results) == ["exp002", "exp003"]
    assert project.experiments() == ["exp001", "exp002", "exp003"]
    assert leftovers(root / "exp") == []
