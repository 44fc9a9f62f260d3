"""Git guards: each refusal is one line with nothing written; auto_commit commits the experiment
folder only and leaves what the user staged staged."""

from __future__ import annotations

from helpers import commit_all, git, make_project, meta, out_dir, run_exp, snapshot_tree

SETTINGS_GIT = "name: test\nmetric:\n  name: cv\n  direction: max\n"


def project(tmp_path, guards: str):
    root = make_project(tmp_path, runs=["", "model:\n  params:\n    max_depth: 2\n"], settings=SETTINGS_GIT + guards)
    (root / ".gitignore").write_text("__pycache__/\ndata/\nexecutions.txt\n")
    git(root, "init", "-q")
    git(root, "config", "user.name", "t")
    git(root, "config", "user.email", "t@t")
    commit_all(root, "start")
    return root


def outside_git(root) -> dict:
    """The tree but .git, whose index `git status` refreshes (stat data only) when kagexp asks it."""
    return {path: data for path, data in snapshot_tree(root).items() if not path.startswith(".git/")}


def refused(root, message: str) -> None:
    before, head = outside_git(root), git(root, "rev-parse", "HEAD") if (root / ".git").exists() else None
    done = run_exp(root)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"kagexp: error: {message}"]
    assert outside_git(root) == before and not out_dir(root).exists()
    if head:
        assert git(root, "rev-parse", "HEAD") == head


def test_require_clean_names_the_changed_files(tmp_path):
    root = project(tmp_path, "git:\n  require_clean: true\n")
    (root / "exp/exp001/model.py").write_text("DEPTH = 2\n")
    (root / "notes.txt").write_text("untracked files do not count\n")
    refused(
        root,
        "git: uncommitted changes in exp/exp001/model.py; commit them (kagexp.yml asks for a clean tree: "
        "git.require_clean)",
    )
    commit_all(root, "deeper")
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert meta(root, "run001")["git"]["dirty"] is False


def test_branch_refuses_another_branch(tmp_path):
    root = project(tmp_path, "git:\n  branch: main\n")
    git(root, "switch", "-q", "-c", "try")
    refused(root, "git: on try, but kagexp.yml asks for branch main; git switch main first")
    git(root, "switch", "-q", "main")
    assert run_exp(root).returncode == 0


def test_guards_outside_a_repository_are_one_line(tmp_path):
    root = make_project(tmp_path, settings=SETTINGS_GIT + "git:\n  require_clean: true\n")
    refused(root, f"kagexp.yml sets git guards, but {root} is not in a git repository (git init it)")


def test_auto_commit_commits_the_experiment_only_and_keeps_what_is_staged(tmp_path):
    root = project(tmp_path, "git:\n  auto_commit: true\n")
    (root / "exp/exp001/model.py").write_text("DEPTH = 3\n")
    (root / "exp/exp001/features.py").write_text("NEW = 1\n")
    (root / "README.md").write_text("staged by the user\n")
    git(root, "add", "README.md")
    (root / "other.py").write_text("left alone\n")
    staged_before = git(root, "diff", "--cached", "--name-status")
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert git(root, "log", "-1", "--format=%s").strip() == "exp001: run001–run002"
    assert sorted(git(root, "show", "--name-only", "--format=", "HEAD").split()) == [
        "exp/exp001/features.py",
        "exp/exp001/model.py",
    ]
    assert git(root, "diff", "--cached", "--name-status") == staged_before == "A\tREADME.md\n"
    assert git(root, "status", "--porcelain", "--", "exp").strip() == ""
    recorded = meta(root, "run001")["git"]
    assert recorded["commit"] == git(root, "rev-parse", "HEAD").strip()
    assert recorded["dirty"] is True, "README.md is still staged: the tree is dirty outside the experiment"
    again = run_exp(root, "--force")
    assert again.returncode == 0
    assert git(root, "log", "-1", "--format=%s").strip() == "exp001: run001–run002", "nothing new to commit"


def test_auto_commit_then_require_clean_passes_when_only_the_experiment_changed(tmp_path):
    root = project(tmp_path, "git:\n  auto_commit: true\n  require_clean: true\n")
    (root / "exp/exp001/model.py").write_text("DEPTH = 4\n")
    done = run_exp(root, "--only", "1")
    assert done.returncode == 0, done.stderr
    assert meta(root, "run001")["git"]["dirty"] is False
    assert git(root, "log", "-1", "--format=%s").strip() == "exp001: run001"


def test_a_guard_setting_of_the_wrong_type_is_named(tmp_path):
    root = make_project(tmp_path, settings=SETTINGS_GIT + "git:\n  require_clean: yes please\n")
    done = run_exp(root)
    assert done.returncode == 2
    assert "kagexp.yml:6: `git.require_clean` must be true or false, not a string ('yes please')" in done.stderr
