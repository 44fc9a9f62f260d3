import subprocess

from helpers import build_tree

from kagexp import provenance


def test_code_files_skip_caches_and_kagexp_files(tmp_path):
    build_tree(
        tmp_path,
        {
            "exp.py": "x = 1\n",
            "lib/util.py": "y = 2\n",
            "__pycache__/exp.cpython-311.pyc": "junk",
            "lib/__pycache__/util.pyc": "junk",
            ".ipynb_checkpoints/nb.ipynb": "{}",
            "wandb/run/files.txt": "x",
            "lineage.yml": "parent: exp001\n",
            "RESULTS.md": "# results\n",
            "big.bin": "data",
        },
    )
    assert provenance.code_files(tmp_path) == ["big.bin", "exp.py", "lib/util.py"]
    assert provenance.code_files(tmp_path, exclude=["*.bin"]) == ["exp.py", "lib/util.py"]


def test_code_hash_depends_on_content_and_names_only(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_tree(a, {"exp.py": "x = 1\n", "m.py": "y\n"})
    build_tree(b, {"exp.py": "x = 1\n", "m.py": "y\n", "__pycache__/m.pyc": "z"})
    ha = provenance.code_hash(a, provenance.code_files(a))
    assert ha == provenance.code_hash(b, provenance.code_files(b))
    (b / "m.py").write_text("y2\n")
    assert ha != provenance.code_hash(b, provenance.code_files(b))
    (b / "m.py").write_text("y\n")
    (b / "m.py").rename(b / "n.py")
    assert ha != provenance.code_hash(b, provenance.code_files(b))


def test_snapshot_is_made_once(tmp_path):
    build_tree(tmp_path / "exp", {"exp.py": "x = 1\n", "sub/m.py": "y\n"})
    info = provenance.Provenance(tmp_path, tmp_path / "exp")
    first = info.snapshot(tmp_path / "code")
    assert first.name == info.code_hash
    assert (first / "sub" / "m.py").read_text() == "y\n"
    (first / "exp.py").write_text("changed in place\n")
    assert info.snapshot(tmp_path / "code") == first
    assert (first / "exp.py").read_text() == "changed in place\n"
    assert [p.name for p in (tmp_path / "code").iterdir()] == [info.code_hash]


def test_git_state_outside_git_and_without_commits(tmp_path):
    assert provenance.git_state(tmp_path, tmp_path) is None
    subprocess.run(["git", "init", "-q", "-b", "dev"], cwd=tmp_path, check=True)
    (tmp_path / "a.py").write_text("x\n")
    state = provenance.git_state(tmp_path, tmp_path)
    assert state.commit is None and state.branch == "dev" and state.dirty is False
    assert state.untracked == ["a.py"]


def test_environment_is_complete():
    env = provenance.Provenance(provenance.Path("."), provenance.Path(".")).environment
    assert {"host", "pid", "user", "command", "python", "platform", "kagexp", "gpus", "git", "packages"} <= set(env)
    assert env["packages"]["deepmerge"]
