"""Odd files wherever kagexp reads: FIFOs, sockets, devices and links of every kind in an
experiment folder; broken report templates and odd report targets; `meta.json` values of the
wrong shape; a malformed `diff --tool`; a linked experiment folder; a reader that goes away.

Real projects, real special files (`os.mkfifo`, a bound AF_UNIX socket, `os.mknod`, dangling and
looping links) and real processes. Every process has a timeout, so that a hang fails its case
instead of blocking the suite. The promises: an odd file is never opened (hashing, snapshots and
diffs take regular files; a link is recorded as a link, never followed); a user error is one
`kagexp: error:` line, exit 2, no traceback and nothing written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import make_project, meta, out_dir, run_exp, subprocess_env

TIMEOUT = 30  # seconds; a case that hangs fails at this point
SETTINGS = "name: test\nmetric:\n  name: cv\n  direction: max\n"
TWO_RUNS = ["model:\n  params:\n    max_depth: 2\n", "model:\n  params:\n    max_depth: 3\n"]
BODY = "ctx.log({'cv': cfg.model.params.max_depth / 10})\n"  # writes nothing outside its run folder


def kagexp(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kagexp", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=TIMEOUT,
    )


def shown(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\nstderr:\n{done.stderr}\nstdout:\n{done.stdout}"


def assert_ok(done: subprocess.CompletedProcess, code: int = 0) -> None:
    assert "Traceback" not in done.stderr, shown(done)
    assert done.returncode == code, shown(done)


def assert_one_error(done: subprocess.CompletedProcess, *parts: str) -> None:
    """Exit 2, one `kagexp: error:` line holding every part, no traceback, nothing on stdout."""
    assert "Traceback" not in done.stderr, shown(done)
    assert done.returncode == 2, shown(done)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kagexp: error: "), shown(done)
    for part in parts:
        assert part in lines[0], f"{part!r} missing\n{shown(done)}"
    assert done.stdout == "", shown(done)


def listing(root: Path) -> dict[str, str]:
    """Every entry under `root`, links and special files included and none followed or opened
    but regular files: what a command that writes nothing must leave as it was."""
    found = {}
    for folder, dirs, names in os.walk(root):  # os.walk lists links to folders, never enters them
        for name in dirs + names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = _describe(path)
    return found


def _describe(path: Path) -> str:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "link to " + os.readlink(path)
    if stat.S_ISREG(mode):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return "folder" if stat.S_ISDIR(mode) else f"special {stat.S_IFMT(mode):o}"


# --- odd entries in an experiment folder -------------------------------------------------

Maker = Callable[[Path, Path], None]  # (experiment folder, a folder outside the project)


def make_fifo(relative: str) -> Maker:
    def make(exp: Path, outside: Path) -> None:
        (exp / relative).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(exp / relative)

    return make


def make_socket(relative: str) -> Maker:
    """A bound AF_UNIX socket; bound by its short name from its folder, as socket paths are
    limited to ~100 bytes and temporary folders are long."""

    def make(exp: Path, outside: Path) -> None:
        here = os.getcwd()
        os.chdir(exp)
        try:
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(relative)
        finally:
            os.chdir(here)

    return make


def make_device(relative: str, minor: int) -> Maker:
    """A character device of the memory driver (major 1): 5 is /dev/zero, 9 /dev/urandom."""

    def make(exp: Path, outside: Path) -> None:
        try:
            os.mknod(exp / relative, stat.S_IFCHR | 0o600, os.makedev(1, minor))
        except PermissionError:
            pytest.skip("creating a device file needs CAP_MKNOD")

    return make


def make_link(relative: str, target: str) -> Maker:
    """A symbolic link; `{outside}` in the target is a folder beside the project."""

    def make(exp: Path, outside: Path) -> None:
        (exp / relative).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target.replace("{outside}", str(outside)), exp / relative)

    return make


def both(*makers: Maker) -> Maker:
    def make(exp: Path, outside: Path) -> None:
        for maker in makers:
            maker(exp, outside)

    return make


@dataclass(frozen=True)
class Odd:
    """An odd entry: how to make it, the links it leaves (recorded as links, by their target),
    and the special files it leaves (never code: not hashed, not copied, never opened)."""

    id: str
    make: Maker
    links: tuple[str, ...] = ()
    special: tuple[str, ...] = ()
    root_only: bool = False

    def param(self, command: str):
        marks = [pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")] if self.root_only else []
        return pytest.param(self, id=f"{self.id}-{command}", marks=marks)


ODD = [
    Odd("fifo", make_fifo("d.fifo"), special=("d.fifo",)),
    Odd("fifo-in-subfolder", make_fifo("lib/pipe"), special=("lib/pipe",)),
    Odd("fifo-named-like-code", make_fifo("features.py"), special=("features.py",)),
    Odd("socket", make_socket("app.sock"), special=("app.sock",)),
    Odd("device-zero", make_device("zero", 5), special=("zero",), root_only=True),
    Odd("device-urandom", make_device("random.py", 9), special=("random.py",), root_only=True),
    Odd("link-to-dev-zero", make_link("z", "/dev/zero"), links=("z",)),
    Odd("link-to-dev-urandom", make_link("lib/noise.bin", "/dev/urandom"), links=("lib/noise.bin",)),
    Odd("link-to-fifo", both(make_fifo("pipe"), make_link("to-pipe", "pipe")), ("to-pipe",), ("pipe",)),
    Odd("emacs-lock-file", make_link(".#exp.py", "root@host.4242:1700000000"), links=(".#exp.py",)),
    Odd("dangling-absolute-link", make_link("data", "/nonexistent/kagexp/input"), links=("data",)),
    Odd("link-loop-self", make_link("loop", "loop"), links=("loop",)),
    Odd("link-loop-pair", both(make_link("a", "b"), make_link("b", "a")), links=("a", "b")),
    Odd("link-to-own-parent", make_link("up", ".."), links=("up",)),
    Odd("link-to-folder-outside", make_link("inputs", "{outside}"), links=("inputs",)),
    Odd("link-to-file-outside", make_link("secret.txt", "{outside}/secret.txt"), links=("secret.txt",)),
    Odd("link-to-sibling-file", make_link("alias.py", "model.py"), links=("alias.py",)),
]


def outside_folder(tmp_path: Path) -> Path:
    """A folder beside the project holding a FIFO: following a link into it would hang."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the project's\n")
    os.mkfifo(outside / "pipe")
    return outside


@pytest.fixture(scope="module")
def done_project(tmp_path_factory) -> Path:
    """A project whose two runs are done, with regular files only."""
    root = make_project(tmp_path_factory.mktemp("done") / "proj", runs=TWO_RUNS, body=BODY, settings=SETTINGS)
    assert_ok(run_exp(root, timeout=TIMEOUT))
    return root


@pytest.mark.parametrize("odd", [odd.param("run") for odd in ODD])
def test_a_run_records_links_as_links_and_skips_special_files(odd: Odd, tmp_path: Path):
    """`python exp.py` with the odd entry: both runs done, and the code snapshot holds each link
    as a link with its target text and no special file; a diff of the two runs reads that snapshot."""
    root = make_project(tmp_path / "proj", runs=TWO_RUNS, body=BODY, settings=SETTINGS)
    exp = root / "exp/exp001"
    odd.make(exp, outside_folder(tmp_path))
    done = run_exp(root, timeout=TIMEOUT)
    assert_ok(done)
    assert "exp001: 2 done" in done.stderr, shown(done)
    snapshot = out_dir(root) / ".code" / meta(root, "run001")["code_hash"]
    for relative in odd.links:
        assert os.readlink(snapshot / relative) == os.readlink(exp / relative)
    for relative in odd.special:
        assert not os.path.lexists(snapshot / relative)
    assert (snapshot / "model.py").read_text() == "DEPTH = 1\n"
    compared = kagexp(root, "diff", "exp001/run001", "exp001/run002")
    assert_ok(compared)
    assert "files: same" in compared.stdout, shown(compared)


@pytest.mark.parametrize("odd", [odd.param("ls") for odd in ODD])
def test_ls_hashes_links_by_their_target_and_skips_special_files(odd: Odd, tmp_path: Path, done_project: Path):
    """`kagexp ls` after the runs: a special file is no code (`same`), a new link is (`changed`)."""
    root = tmp_path / "proj"
    shutil.copytree(done_project, root, symlinks=True)
    odd.make(root / "exp/exp001", outside_folder(tmp_path))
    before = listing(root / "exp")
    done = kagexp(root, "ls")
    assert_ok(done)
    row = next(line for line in done.stdout.splitlines() if line.startswith("exp001"))
    assert ("changed" if odd.links else "same") in row.split(), shown(done)
    assert listing(root / "exp") == before


@pytest.mark.parametrize("odd", [odd.param("diff") for odd in ODD])
def test_diff_of_folders_lists_links_and_skips_special_files(odd: Odd, tmp_path: Path):
    """`kagexp diff exp001 exp002`: with the odd entry in exp002 only, each link is `added` and
    nothing else; with it in both, where each side's entry is read, the files are the same."""
    root = make_project(tmp_path / "proj", runs=TWO_RUNS, body=BODY, settings=SETTINGS)
    shutil.copytree(root / "exp/exp001", root / "exp/exp002")
    outside = outside_folder(tmp_path)
    odd.make(root / "exp/exp002", outside)
    before = listing(root)
    done = kagexp(root, "diff", "exp001", "exp002")
    assert_ok(done)
    added = sorted(line.split()[-1] for line in done.stdout.splitlines() if line.startswith("  added"))
    assert added == sorted(odd.links), shown(done)
    assert "config: same" in done.stdout, shown(done)
    assert listing(root) == before
    odd.make(root / "exp/exp001", outside)
    again = kagexp(root, "diff", "exp001", "exp002")
    assert_ok(again)
    assert "files: same" in again.stdout.splitlines(), shown(again)


@pytest.mark.parametrize(
    "old, new, expect",
    [
        pytest.param(
            make_link("data", "../inputs-v1"),
            make_link("data", "../inputs-v2"),
            ["  changed  data", "-symlink to ../inputs-v1", "+symlink to ../inputs-v2"],
            id="retargeted-dangling-link",
        ),
        pytest.param(
            make_link("z.py", "model.py"),
            make_link("z.py", "/dev/zero"),
            ["  changed  z.py", "-symlink to model.py", "+symlink to /dev/zero"],
            id="link-now-to-dev-zero",
        ),
        pytest.param(
            lambda exp, outside: (exp / "util.py").write_text("X = 1\n"),
            make_link("util.py", "util.py"),
            ["  changed  util.py", "-X = 1", "+symlink to util.py"],
            id="file-now-a-looping-link",
        ),
    ],
)
def test_diff_shows_a_changed_link_by_its_target(old: Maker, new: Maker, expect: list[str], tmp_path: Path):
    root = make_project(tmp_path / "proj", runs=TWO_RUNS, body=BODY, settings=SETTINGS)
    shutil.copytree(root / "exp/exp001", root / "exp/exp002")
    old(root / "exp/exp001", tmp_path)
    new(root / "exp/exp002", tmp_path)
    done = kagexp(root, "diff", "exp001", "exp002")
    assert_ok(done)
    lines = done.stdout.splitlines()
    for line in expect:
        assert line in lines, shown(done)


# --- diff --tool ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tool, expect",
    [
        pytest.param("meld 'abc", ["--tool", "No closing quotation"], id="unclosed-single-quote"),
        pytest.param('meld "abc', ["--tool", "No closing quotation"], id="unclosed-double-quote"),
        pytest.param("meld \\", ["--tool", "No escaped character"], id="trailing-backslash"),
        pytest.param("   ", ["--tool names no program"], id="blanks"),
        pytest.param("", ["--tool names no program"], id="empty"),
        pytest.param("\t\n", ["--tool names no program"], id="tab-and-newline"),
        pytest.param("no-such-diff-tool-kagexp --x", ["no-such-diff-tool-kagexp", "not found on PATH"], id="missing"),
    ],
)
def test_a_malformed_diff_tool_is_one_line(tool: str, expect: list[str], tmp_path: Path):
    root = make_project(tmp_path / "proj", runs=TWO_RUNS, body=BODY, settings=SETTINGS)
    shutil.copytree(root / "exp/exp001", root / "exp/exp002")
    before = listing(tmp_path)
    assert_one_error(kagexp(root, "diff", "exp001", "exp002", "--tool", tool), *expect)
    assert listing(tmp_path) == before


# --- meta.json values of any shape ---------------------------------------------------------------------


def patch_meta(root: Path, run: str, key: str, value: object) -> None:
    path = out_dir(root) / run / "meta.json"
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data))  # NaN is written as the token NaN, which Python reads back


@pytest.mark.parametrize(
    "key, value, expect",
    [
        pytest.param("git", "x", "  git: x", id="git-string"),
        pytest.param("git", [1, 2], "  git: [1, 2]", id="git-list"),
        pytest.param("git", 7, "  git: 7", id="git-number"),
        pytest.param("git", float("nan"), "  git: nan", id="git-nan"),
        pytest.param("git", {"commit": 5, "branch": ["main"]}, '  git: 5 on ["main"], clean', id="git-odd-fields"),
        pytest.param("command", [1, None, {"a": 1}], '  command: 1  {"a": 1}', id="command-mixed-list"),
        pytest.param("command", "python exp.py", "  command: python exp.py", id="command-string"),
        pytest.param("gpus", "A100", "  gpus: A100", id="gpus-string"),
        pytest.param("gpus", [0, None], "  gpus: 0, ", id="gpus-mixed-list"),
        pytest.param("packages", [1, {"a": 1}], "  packages: 0 recorded in meta.json", id="packages-list"),
        pytest.param("packages", 5, "  packages: 0 recorded in meta.json", id="packages-number"),
    ],
)
def test_show_prints_meta_values_of_any_shape(key: str, value: object, expect: str, tmp_path: Path, done_project):
    root = tmp_path / "proj"
    shutil.copytree(done_project, root, symlinks=True)
    patch_meta(root, "run001", key, value)
    done = kagexp(root, "show", "exp001/run001")
    assert_ok(done)
    assert expect in done.stdout.splitlines(), shown(done)


@pytest.mark.parametrize(
    "key, value, expect",
    [
        pytest.param("git", "x", "  git: x -> -", id="git-string"),
        pytest.param("git", [1, 2], "  git: [1, 2] -> -", id="git-list"),
        pytest.param("git", float("nan"), "  git: nan -> -", id="git-nan"),
        pytest.param("packages", [1, {"a": 1}], "files: same", id="packages-unhashable-list"),
        pytest.param("packages", "numpy", "files: same", id="packages-string"),
        pytest.param("packages", 5, "files: same", id="packages-number"),
    ],
)
def test_diff_of_runs_compares_meta_values_of_any_shape(key, value, expect: str, tmp_path: Path, done_project):
    """A damaged `packages` is no package list: unknown, as for a blend, not every package removed."""
    root = tmp_path / "proj"
    shutil.copytree(done_project, root, symlinks=True)
    patch_meta(root, "run001", key, value)
    done = kagexp(root, "diff", "exp001/run001", "exp001/run002")
    assert_ok(done)
    lines = done.stdout.splitlines()
    assert expect in lines and not any(line.startswith("  packages.") for line in lines), shown(done)


# --- report: render in memory, then write ------------------------------------------------------


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """A done project with both reports written once (plots under results/ carry the report's mark)."""
    root = make_project(tmp_path_factory.mktemp("reported") / "proj", body=BODY, settings=SETTINGS)
    assert_ok(run_exp(root, timeout=TIMEOUT))
    assert_ok(kagexp(root, "report", "exp001"))
    assert_ok(kagexp(root, "report", "--all"))
    return root


def put(relative: str, content: bytes) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        path = root / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        path.write_bytes(content)

    return prepare


def folder_at(relative: str) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        path = root / relative
        if os.path.lexists(path) and not path.is_dir():
            path.unlink()
        shutil.rmtree(path, ignore_errors=True)
        (path / "keep.txt").parent.mkdir(parents=True)
        (path / "keep.txt").write_text("mine\n")

    return prepare


def special_at(relative: str, kind: str) -> Callable[[Path], None]:
    """A FIFO or a link (to `kind` after `link:`) in place of whatever is at `relative`."""

    def prepare(root: Path) -> None:
        path = root / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        else:
            os.symlink(kind.removeprefix("link:"), path)

    return prepare


TEMPLATE = "report.md.j2"
EXP_RESULTS = "exp/exp001/RESULTS.md"
EXP_PLOTS = "exp/exp001/results"
EXP, ALL = ("report", "exp001"), ("report", "--all")

REPORT_ERRORS = [
    ("template-unclosed-if", EXP, put(TEMPLATE, b"# {{ exp }}\n{% if best %}\nno end\n"), [TEMPLATE, "end of"]),
    ("template-unknown-tag", EXP, put(TEMPLATE, b"a\nb\n{% frobnicate %}\n"), [f"{TEMPLATE}:3"]),
    ("template-bad-expression", EXP, put(TEMPLATE, b"{{ exp + }}\n"), [f"{TEMPLATE}:1"]),
    ("template-undefined-name", EXP, put(TEMPLATE, b"a\nb\n{{ nope }}\n"), [f"{TEMPLATE}:3", "nope"]),
    ("template-undefined-attr", EXP, put(TEMPLATE, b"a\n{{ nope.x }}\n"), [f"{TEMPLATE}:2", "nope"]),
    ("template-attr-of-none", EXP, put(TEMPLATE, b"{{ note.upper() }}\n"), [f"{TEMPLATE}:1"]),
    ("template-raises", EXP, put(TEMPLATE, b"ok\n{{ 1 // 0 }}\n"), [f"{TEMPLATE}:2", "Division"]),
    (
        "template-latin-1",
        EXP,
        put(TEMPLATE, b"# {{ exp }}\nr\xe9sultats\n"),
        [f"{TEMPLATE}:2", "UTF-8"],
    ),
    (
        "template-utf-16",
        EXP,
        put(TEMPLATE, "{{ exp }}\n".encode("utf-16")),
        [f"{TEMPLATE}:1", "UTF-8"],
    ),
    ("template-is-a-folder", EXP, folder_at(TEMPLATE), [TEMPLATE, "not a readable file"]),
    ("template-is-a-fifo", EXP, special_at(TEMPLATE, "fifo"), [TEMPLATE, "not a readable file"]),
    (
        "template-dangling-link",
        EXP,
        special_at(TEMPLATE, "link:gone.j2"),
        [TEMPLATE, "not a readable"],
    ),
    ("project-template-broken", ALL, put("report-all.md.j2", b"{{ }}\n"), ["report-all.md.j2:1"]),
    ("results-md-is-a-folder", EXP, folder_at(EXP_RESULTS), [EXP_RESULTS, "is a folder"]),
    ("results-md-is-a-fifo", EXP, special_at(EXP_RESULTS, "fifo"), [EXP_RESULTS, "is a FIFO"]),
    ("plots-folder-is-a-file", EXP, put(EXP_PLOTS, b"mine\n"), [EXP_PLOTS, "is a file"]),
    ("plots-folder-is-a-link", EXP, special_at(EXP_PLOTS, "link:/tmp"), [EXP_PLOTS, "is a link"]),
    ("plots-folder-is-a-fifo", EXP, special_at(EXP_PLOTS, "fifo"), [EXP_PLOTS, "is a FIFO"]),
    ("plot-is-a-folder", EXP, folder_at(f"{EXP_PLOTS}/cv_per_run.png"), ["cv_per_run.png", "folder"]),
    ("project-results-md-is-a-folder", ALL, folder_at("RESULTS.md"), ["RESULTS.md: is a folder"]),
    ("project-plots-folder-is-a-file", ALL, put("results", b"x\n"), ["results: is a file"]),
]


@pytest.mark.parametrize("argv, prepare, expect", [pytest.param(*case[1:], id=case[0]) for case in REPORT_ERRORS])
def test_a_report_that_cannot_be_made_writes_nothing(argv, prepare, expect: list[str], tmp_path: Path, reported):
    """The stale plot planted first proves that not even the clean-up ran."""
    root = tmp_path / "proj"
    shutil.copytree(reported, root, symlinks=True)
    prepare(root)
    kagexp(root, "runs")  # the listing's cache (.listing/), which any read of the runs may refresh
    before = without_cache(listing(root))
    assert_one_error(kagexp(root, *argv), *expect)
    assert without_cache(listing(root)) == before


def without_cache(found: dict[str, str]) -> dict[str, str]:
    """The listing's cache is rewritten once its folder settles (see `kagexp runs`): not a write of the command's."""
    return {path: kind for path, kind in found.items() if "/.listing/" not in path}


def stale_plot(root: Path, folder: str, name: str) -> None:
    """A plot an earlier report made under a name this report no longer makes."""
    made = next((root / folder).glob("*.png"))
    shutil.copyfile(made, root / folder / name)


@pytest.mark.parametrize(
    "argv, folder",
    [
        pytest.param(("report", "exp001"), EXP_PLOTS, id="experiment"),
        pytest.param(("report", "--all"), "results", id="project"),
    ],
)
def test_a_report_deletes_only_its_own_plots_that_it_no_longer_links(argv, folder: str, tmp_path: Path, reported):
    root = tmp_path / "proj"
    shutil.copytree(reported, root, symlinks=True)
    made = sorted(p.name for p in (root / folder).glob("*.png"))
    stale_plot(root, folder, "cv_vs_dropped_key.png")
    (root / folder / "mine.png").write_bytes(b"\x89PNG\r\n\x1a\n a user's own plot")
    (root / folder / "notes.txt").write_text("mine\n")
    os.mkfifo(root / folder / "pipe.png")
    done = kagexp(root, *argv)
    assert_ok(done)
    assert sorted(p.name for p in (root / folder).iterdir()) == sorted([*made, "mine.png", "notes.txt", "pipe.png"])


def test_a_report_without_plots_leaves_a_results_file_alone(tmp_path: Path):
    """No plots to write (no metric logged): a file named `results` is in nobody's way."""
    root = make_project(tmp_path / "proj", body="pass\n", settings=SETTINGS)
    assert_ok(run_exp(root, timeout=TIMEOUT))
    (root / EXP_PLOTS).write_text("mine\n")
    assert_ok(kagexp(root, "report", "exp001"))
    assert (root / EXP_PLOTS).read_text() == "mine\n" and (root / EXP_RESULTS).is_file()


# --- a linked experiment folder ----------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """`proj/exp/exp002 -> ../../other/exp/exp001`: another project's experiment, linked in."""
    other = make_project(tmp_path / "other", runs=TWO_RUNS, body=BODY, settings=SETTINGS)
    root = tmp_path / "proj"
    (root / "exp").mkdir(parents=True)
    (root / "kagexp.yml").write_text(SETTINGS)
    os.symlink("../../other/exp/exp001", root / "exp/exp002")
    return root, other


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([sys.executable, "exp/exp002/exp.py"], id="exp.py"),
        pytest.param([sys.executable, "-m", "kagexp", "run", "exp002"], id="kagexp-run"),
        pytest.param([sys.executable, "-m", "kagexp", "run", "2", "--only", "run002"], id="kagexp-run-only"),
    ],
)
def test_a_linked_experiment_runs_as_this_projects(argv: list[str], linked: tuple[Path, Path]):
    root, other = linked
    before = listing(other)
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, env=subprocess_env(), timeout=TIMEOUT)
    assert_ok(done)
    assert "exp002/run002 done" in done.stderr and "exp001/" not in done.stderr, shown(done)
    assert meta(root, "run002", exp="exp002")["status"] == "done"
    assert listing(other) == before
    listed = kagexp(root, "runs")
    assert_ok(listed)
    assert "exp002/run002" in listed.stdout, shown(listed)


def test_a_linked_experiment_dry_run_names_it_and_writes_nothing(linked: tuple[Path, Path]):
    root, other = linked
    before = listing(root.parent)
    done = subprocess.run(
        [sys.executable, "exp/exp002/exp.py", "--dry-run"],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=TIMEOUT,
    )
    assert_ok(done)
    assert done.stdout.splitlines()[0] == "exp002/run001: would run", shown(done)
    assert listing(root.parent) == before


# --- a reader that goes away -----------------------------------------------------------------


@pytest.fixture(scope="module")
def big_diff(tmp_path_factory) -> Path:
    """Two experiments whose diff is megabytes long: far more than a pipe holds."""
    root = make_project(tmp_path_factory.mktemp("big") / "proj", runs=TWO_RUNS, body=BODY, settings=SETTINGS)
    shutil.copytree(root / "exp/exp001", root / "exp/exp002")
    for exp, word in (("exp001", "left"), ("exp002", "right")):
        lines = (f"{word} line {i} of a long generated table of features\n" for i in range(40_000))
        (root / "exp" / exp / "table.txt").write_text("".join(lines))
    return root


@pytest.mark.parametrize(
    "args, code",
    [
        pytest.param(("exp001", "exp002"), 0, id="diff"),
        pytest.param(("exp001", "exp002", "--code"), 0, id="diff-code"),
        pytest.param(("exp001", "exp002", "--exit-code"), 1, id="diff-exit-code-still-answers"),
    ],
)
def test_diff_into_a_reader_that_stops_ends_quietly(args: tuple[str, ...], code: int, big_diff: Path):
    """`kagexp diff … | head -1`: exit 0 (1 with --exit-code, they differ) and nothing on stderr, as git does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kagexp", "diff", *args],
        cwd=big_diff,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    try:
        assert proc.stdout.readline() == b"--- exp001\n"
        proc.stdout.close()  # the reader goes away, as head does after its lines
        stderr = proc.stderr.read()
        assert proc.wait(timeout=TIMEOUT) == code, stderr
        assert stderr == b""
    finally:
        proc.kill()
        proc.wait()
