"""Data fingerprints: the `inputs:` globs, and a sha256 hashed once per file content, not once per run."""

import hashlib
import json
import os

import pytest
from helpers import build_tree

from kagexp.errors import ConfigError
from kagexp.fingerprints import Inputs
from kagexp.project import load_settings


def inputs(tmp_path, *patterns: str) -> Inputs:
    return Inputs(tmp_path / "data/input", patterns, tmp_path / "data/output/.fingerprints.json")


def poison(cache_path, name: str) -> None:
    """Write a sha256 no file has into the cache entry of `name`: reading it back proves the entry
    was reused rather than the file hashed again."""
    cache = json.loads(cache_path.read_text())
    cache["files"][name]["sha256"] = "0" * 64
    cache_path.write_text(json.dumps(cache))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_cache_is_reused_while_size_mtime_and_inode_match(tmp_path):
    build_tree(tmp_path / "data/input", {"train.csv": "a,b\n1,2\n"})
    path = tmp_path / "data/input/train.csv"
    fp = inputs(tmp_path, "*.csv")
    assert fp.fingerprints()["train.csv"]["sha256"] == sha(b"a,b\n1,2\n")

    poison(fp.cache_path, "train.csv")
    assert fp.fingerprints()["train.csv"]["sha256"] == "0" * 64  # same size, mtime, inode: not hashed

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: the same bytes
    assert fp.fingerprints()["train.csv"]["sha256"] == sha(b"a,b\n1,2\n")
    assert json.loads(fp.cache_path.read_text())["files"]["train.csv"]["sha256"] == sha(b"a,b\n1,2\n")

    poison(fp.cache_path, "train.csv")
    stat = path.stat()
    replacement = tmp_path / "data/input/new.tmp"
    replacement.write_text("a,b\n3,4\n")  # same size; given the same mtime: only the inode tells
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)
    assert path.stat().st_ino != stat.st_ino
    assert fp.fingerprints()["train.csv"]["sha256"] == sha(b"a,b\n3,4\n")

    path.write_text("a,b\n3,4\n5,6\n")  # edited in place
    found = fp.fingerprints()["train.csv"]
    assert found["size"] == 12 and found["sha256"] == sha(b"a,b\n3,4\n5,6\n")


def test_the_cache_is_written_only_when_something_was_hashed(tmp_path):
    build_tree(tmp_path / "data/input", {"train.csv": "x\n"})
    fp = inputs(tmp_path, "*.csv")
    fp.fingerprints()
    written = fp.cache_path.stat().st_mtime_ns
    os.utime(fp.cache_path, ns=(written - 10**9, written - 10**9))
    fp.fingerprints()
    assert fp.cache_path.stat().st_mtime_ns == written - 10**9


def test_patterns_match_files_under_the_input_folder(tmp_path):
    build_tree(
        tmp_path / "data/input",
        {
            "train.csv": "1\n",
            "test.csv": "2\n",
            "notes.txt": "3\n",
            "images": {"a": {"x.png": "p"}, "y.png": "q", "folder.png": {"inside.txt": "r"}},
        },
    )
    os.mkfifo(tmp_path / "data/input/pipe.csv")  # matched, but never opened to be hashed: it would wait
    (tmp_path / "elsewhere.csv").write_text("linked\n")
    os.symlink(tmp_path / "elsewhere.csv", tmp_path / "data/input/linked.csv")
    fp = inputs(tmp_path, "*.csv", "train.csv", "images/**/*.png")
    found = fp.fingerprints()
    assert list(found) == ["images/a/x.png", "images/y.png", "linked.csv", "test.csv", "train.csv"]
    assert found["linked.csv"]["sha256"] == sha(b"linked\n")  # data often lives on another disk


def test_no_input_folder_records_nothing(tmp_path):
    assert inputs(tmp_path, "*.csv").fingerprints() == {}
    assert not (tmp_path / "data/output/.fingerprints.json").exists()


def test_a_damaged_cache_is_hashed_again(tmp_path):
    build_tree(tmp_path / "data/input", {"a.csv": "a\n", "b.csv": "b\n"})
    fp = inputs(tmp_path, "*.csv")
    fp.fingerprints()
    cache = json.loads(fp.cache_path.read_text())
    cache["files"]["a.csv"]["size"] = "big"
    fp.cache_path.write_text(json.dumps(cache))
    assert fp.fingerprints()["a.csv"]["sha256"] == sha(b"a\n")
    fp.cache_path.write_text("[1, 2")
    assert fp.fingerprints()["b.csv"]["sha256"] == sha(b"b\n")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("'*.csv'", "`inputs` must be a list of glob patterns inside input_dir"),
        ("['../secret/*.csv']", "`inputs` must be a list of glob patterns inside input_dir"),
        ("['/etc/*']", "`inputs` must be a list of glob patterns inside input_dir"),
        ("['']", "`inputs` must be a list of glob patterns inside input_dir"),
        ("[3]", "`inputs` must be a list of glob patterns inside input_dir"),
    ],
)
def test_inputs_setting_is_checked(tmp_path, value, problem):
    (tmp_path / "kagexp.yml").write_text(f"name: x\ninputs: {value}\n")
    with pytest.raises(ConfigError, match=problem) as caught:
        load_settings(tmp_path)
    assert "kagexp.yml:2" in str(caught.value)


def test_inputs_setting_takes_globs(tmp_path):
    (tmp_path / "kagexp.yml").write_text("inputs: ['*.csv', 'images/**/*.png']\n")
    assert load_settings(tmp_path)["inputs"] == ["*.csv", "images/**/*.png"]
    (tmp_path / "kagexp.yml").write_text("name: x\n")
    assert load_settings(tmp_path)["inputs"] == []
