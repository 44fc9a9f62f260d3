import subprocess
import sys

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


def _metadata_way(path: list[str]) -> dict[str, str]:
    """What parsing every METADATA file says: the first distribution of a name on the path wins."""
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions(path=path):
        found.setdefault(provenance.canonical_name(dist.metadata["Name"]), dist.version)
    return dict(sorted(found.items()))


def test_installed_packages_equal_what_importlib_metadata_says_here():
    assert provenance.installed_packages() == _metadata_way(sys.path)
    assert provenance.installed_packages()["scikit-learn"] and provenance.installed_packages()["pyyaml"]


def meta(name: str, version: str) -> str:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"


def test_folder_names_of_every_installer_give_the_metadata_answer(tmp_path):
    first, second = tmp_path / "site", tmp_path / "user-site"
    egg = tmp_path / "eggy-2.0-py3.11.egg"
    build_tree(
        first,
        {
            "PyYAML-6.0.3.dist-info/METADATA": meta("PyYAML", "6.0.3"),  # pip keeps the project's spelling
            "ruamel.yaml-0.18.6.dist-info/METADATA": meta("ruamel.yaml", "0.18.6"),
            "scikit_learn-1.5.0.dist-info/METADATA": meta("scikit-learn", "1.5.0"),
            "torch-2.1.0+cu118.dist-info/METADATA": meta("torch", "2.1.0+cu118"),
            "python_dateutil-2.9.0.post0-py3.11.egg-info/PKG-INFO": meta("python-dateutil", "2.9.0.post0"),
            "Debian_Thing-1.2.egg-info": meta("Debian-Thing", "1.2"),  # a file, as Debian installs them
            "mylib.egg-info/PKG-INFO": meta("mylib", "0.3.dev0"),  # no version in the name: read the file
            "not-a-distribution/METADATA": meta("nope", "1"),
        },
    )
    build_tree(
        second,
        {
            "pyyaml-5.4.dist-info/METADATA": meta("pyyaml", "5.4"),  # shadowed by the first on the path
            "onlyhere-1.0.dist-info/METADATA": meta("onlyhere", "1.0"),
        },
    )
    build_tree(egg, {"EGG-INFO/PKG-INFO": meta("eggy", "2.0")})
    path = [str(first), str(second), str(egg), str(tmp_path / "missing")]
    found = provenance.packages_on(path)
    assert found == _metadata_way(path)
    assert found == {
        "debian-thing": "1.2",
        "eggy": "2.0",
        "mylib": "0.3.dev0",
        "onlyhere": "1.0",
        "python-dateutil": "2.9.0.post0",
        "pyyaml": "6.0.3",
        "ruamel-yaml": "0.18.6",
        "scikit-learn": "1.5.0",
        "torch": "2.1.0+cu118",
    }


def test_diff_of_package_versions_reads_older_spellings():
    from kagexp.diff import compare_environment

    older = {"packages": {"PyYAML": "6.0.3", "scikit_learn": "1.4.0"}}
    newer = {"packages": {"pyyaml": "6.0.3", "scikit-learn": "1.5.0"}}
    assert compare_environment(older, newer) == [("packages.scikit-learn", "1.4.0", "1.5.0")]


def test_a_run_without_a_package_list_is_not_a_list_of_removed_packages():
    """A blend records no packages: against a run, that is unknown, not every package removed."""
    from kagexp.diff import compare_environment

    run = {"python": "3.11.2", "packages": {"numpy": "2.0.0", "pyyaml": "6.0.3"}}
    blend = {"python": "3.11.2"}
    assert compare_environment(run, blend) == compare_environment(blend, run) == []
    assert compare_environment(run, {**blend, "packages": {"numpy": "2.1.0"}}) == [
        ("packages.numpy", "2.0.0", "2.1.0"),
        ("packages.pyyaml", "6.0.3", None),
    ]
