"""The bad-input corpus: what a user can mistype, each case through a real command on a real project.

Every case of `CASES` builds a project in a temporary folder, snapshots the whole folder (files and
their bytes, folders, links), runs one real command in a subprocess and asserts what the README
promises for a user error: exit code 2, one line per problem on stderr starting `kagexp: error: `
(or a click/argparse usage message for a malformed command line), the message names what the user
needs to find the problem (the file and, where it applies, the line, experiment, run and key), no
traceback, nothing on stdout, and **not one byte changed** anywhere under the temporary folder.

`MUST_NOT_CRASH` holds damaged run folders that are not the user's mistake to report: listing
them must succeed (exit 0) and show what is wrong (`corrupt`) instead of crashing.

A case whose `bug` is set asserts the right behaviour and is marked `xfail(strict=True)`: the
suite stays green while the bug is visible, and turns red the day it is fixed (remove the mark).

A case marked `unprivileged` (a folder that cannot be written, a file that cannot be read) runs its
command as an unprivileged user (`helpers.unprivileged`: `nobody` when the tests run as root, who
reads and writes through permissions), in a folder handed over to that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import BASE_CONFIG, hand_over, make_project, run_exp, snapshot_tree, subprocess_env, unprivileged

SETTINGS = "name: test\nmetric:\n  name: cv\n  direction: max\n"
EXP_PY = "exp/exp001/exp.py"
CONFIG = "exp/exp001/config.yml"
RUN2 = "data/output/exp/exp001/run002"


def overrides(*texts: str) -> str:
    """RUNS as an exp.py author writes it: a list of triple-quoted YAML strings, indented."""
    body = "".join(f'    """\n{textwrap.indent(text, "    ")}    """,\n' for text in texts)
    return "[\n" + body + "]"


def named(runs: dict[str, str]) -> str:
    """RUNS as a dict of names to triple-quoted YAML strings."""
    body = "".join(f'    {name!r}: """\n{textwrap.indent(text, "    ")}    """,\n' for name, text in runs.items())
    return "{\n" + body + "}"


def depth(value: object) -> str:
    return f"model:\n  params:\n    max_depth: {value}\n"


RUNS = overrides(depth(1), depth(2), depth(3))


@dataclass(frozen=True)
class At:
    """`file:N`, N being the line of `file` that holds `text` (its `nth` occurrence): where the
    message must point. Resolved against the project the case built."""

    file: str
    text: str
    nth: int = 1
    then: str = ""  # what must follow `file:N`, e.g. `: exp001/run002`

    def resolve(self, root: Path) -> str:
        lines = [i for i, line in enumerate((root / self.file).read_text().splitlines(), 1) if self.text in line]
        return f"{self.file}:{lines[self.nth - 1]}{self.then}"


Prepare = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One bad input: the project (`runs`, `config`, `settings`, then `prepare`), the command, and the
    substrings the error must contain. `argv[0]` is `exp.py` (python exp/exp001/exp.py) or `kagexp`
    (python -m kagexp); `{outside}` in an argument is a folder beside the project."""

    id: str
    argv: tuple[str, ...]
    expect: tuple[str | At, ...]
    runs: str = RUNS
    config: str = BASE_CONFIG
    settings: str = SETTINGS
    prepare: Prepare | None = None
    done: bool = False  # start from a project whose three runs are done
    problems: int = 1  # lines on stderr, one per problem
    usage: bool = False  # a usage error of click or argparse rather than a kagexp error
    bug: str | None = None  # what is wrong today: the case is a strict xfail
    unprivileged: bool = False  # the command depends on file permissions: run it as an unprivileged user

    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=self.bug)] if self.bug else []
        return pytest.param(self, id=self.id, marks=marks)


# --- ways to damage a project ----------------------------------------------------------


def write(relative: str, content: str | bytes) -> Prepare:
    def prepare(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return prepare


def remove(relative: str) -> Prepare:
    def prepare(root: Path) -> None:
        path = root / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return prepare


def make_dir(relative: str) -> Prepare:
    def prepare(root: Path) -> None:
        path = root / relative
        if path.exists():
            path.unlink()
        path.mkdir(parents=True)

    return prepare


def edit(relative: str, old: str, new: str) -> Prepare:
    def prepare(root: Path) -> None:
        path = root / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new))

    return prepare


def read_only(relative: str) -> Prepare:
    def prepare(root: Path) -> None:
        (root / relative).mkdir(parents=True, exist_ok=True)
        os.chmod(root / relative, 0o555)

    return prepare


def chain(*steps: Prepare) -> Prepare:
    def prepare(root: Path) -> None:
        for step in steps:
            step(root)

    return prepare


NO_RUNS_ARGUMENT = chain(
    edit(EXP_PY, "kagexp.main(run, RUNS)", "kagexp.main(run)"),
    edit(EXP_PY, "RUNS = [", "OTHER = ["),
)
UNSAFE = "!!python/object/apply:os.system ['touch PWNED']"

# --- the corpus ---------------------------------------------------------------------------


CASES: list[Case] = [
    # config.yml
    Case(
        "config.yml-malformed-yaml",
        ("exp.py",),
        (At(CONFIG, "name: x: y"), "invalid YAML"),
        config=BASE_CONFIG.replace("  name: tree", "  name: x: y"),
    ),
    Case(
        "config.yml-top-level-list",
        ("exp.py",),
        (f"{CONFIG}:1", "mapping", "list"),
        config="- seed\n- lr\n",
    ),
    Case("config.yml-top-level-scalar", ("exp.py",), (f"{CONFIG}:1", "mapping", "str"), config="just words\n"),
    Case(
        "config.yml-duplicate-key",
        ("exp.py",),
        (f"{CONFIG}:3", "duplicate key", "seed"),
        config="seed: 7\nlr: 1e-3\nseed: 8\nmodel: {params: {max_depth: 1}}\n",
    ),
    Case(
        "config.yml-tab-indent",
        ("exp.py",),
        (At(CONFIG, "\tname"), "tab"),
        config=BASE_CONFIG.replace("  name: tree", "\tname: tree"),
    ),
    Case(
        "config.yml-two-documents",
        ("exp.py",),
        (At(CONFIG, "---"), "document"),
        config=BASE_CONFIG + "---\nseed: 8\n",
    ),
    Case(
        "config.yml-unsafe-python-tag",
        ("exp.py",),
        (f"{CONFIG}:1", "python/object/apply"),
        config=f"seed: {UNSAFE}\n" + BASE_CONFIG.replace("seed: 7\n", ""),
    ),
    Case("config.yml-missing", ("exp.py",), (CONFIG, "missing"), prepare=remove(CONFIG)),
    Case("config.yml-is-a-folder", ("exp.py",), (CONFIG,), prepare=make_dir(CONFIG)),
    Case("config.yml-not-utf8", ("exp.py",), (CONFIG, "cannot read"), prepare=write(CONFIG, b"seed: \xff\xfe\n")),
    Case(
        "config.yml-seed-not-an-int",
        ("exp.py",),
        (f"{CONFIG}:1", "`seed`", "'abc'"),
        config=BASE_CONFIG.replace("seed: 7", "seed: abc"),
    ),
    # overrides in exp.py
    Case(
        "override-malformed-yaml",
        ("exp.py",),
        (At(EXP_PY, "name: x: y"), "exp001/run002", "invalid YAML"),
        runs=overrides(depth(1), "model:\n  name: x: y\n"),
    ),
    Case(
        "override-top-level-list",
        ("exp.py",),
        (At(EXP_PY, "- 1"), "exp001/run002", "mapping", "list"),
        runs=overrides(depth(1), "- 1\n- 2\n"),
    ),
    Case(
        "override-top-level-scalar",
        ("exp.py",),
        (At(EXP_PY, "max_depth_is_2"), "exp001/run002", "mapping"),
        runs=overrides(depth(1), "max_depth_is_2\n"),
    ),
    Case(
        "override-duplicate-key",
        ("exp.py",),
        (At(EXP_PY, "lr: 0.2"), "exp001/run002", "duplicate key", "lr"),
        runs=overrides(depth(1), "lr: 0.1\nlr: 0.2\n"),
    ),
    Case(
        "override-tab-indent",
        ("exp.py",),
        (At(EXP_PY, "\tname"), "exp001/run002", "tab"),
        runs=overrides(depth(1), "model:\n\tname: forest\n"),
    ),
    Case(
        "override-two-documents",
        ("exp.py",),
        (At(EXP_PY, "---"), "exp001/run002", "document"),
        runs=overrides(depth(1), "lr: 0.1\n---\nlr: 0.2\n"),
    ),
    Case(
        "override-unknown-nested-key",
        ("exp.py",),
        (
            At(EXP_PY, "max_dpeth"),
            "exp001/run002",
            "`model.params.max_dpeth`",
            "did you mean `model.params.max_depth`",
            "+max_dpeth",
        ),
        runs=overrides(depth(1), "model:\n  params:\n    max_dpeth: 3\n"),
    ),
    Case(
        "override-plus-on-existing-key",
        ("exp.py",),
        (At(EXP_PY, "+name"), "exp001/run002", "`+name`", "model.name", "already exists"),
        runs=overrides(depth(1), "model:\n  +name: forest\n"),
    ),
    Case(
        "override-type-change-string-to-int",
        ("exp.py",),
        (At(EXP_PY, "name: 3"), "exp001/run002", "`model.name`", "an int", "a string"),
        runs=overrides(depth(1), "model:\n  name: 3\n"),
    ),
    Case(
        "override-type-change-list-to-int",
        ("exp.py",),
        (At(EXP_PY, "folds: 3"), "exp001/run002", "`dataset.folds`", "a list"),
        runs=overrides(depth(1), "dataset:\n  folds: 3\n"),
    ),
    Case(
        "override-type-change-int-to-bool",
        ("exp.py",),
        (At(EXP_PY, "batch_size: true"), "exp001/run002", "`dataset.batch_size`", "a boolean"),
        runs=overrides(depth(1), "dataset:\n  batch_size: true\n"),
    ),
    Case(
        "override-type-change-mapping-to-scalar",
        ("exp.py",),
        (At(EXP_PY, "params: 3"), "exp001/run002", "`model.params`", "a mapping"),
        runs=overrides(depth(1), "model:\n  params: 3\n"),
    ),
    Case(
        "override-unsafe-python-tag",
        ("exp.py",),
        (At(EXP_PY, "python/object"), "exp001/run002", "python/object/apply"),
        runs=overrides(depth(1), f"lr: {UNSAFE}\n"),
    ),
    Case(
        "override-problems-in-two-runs",
        ("exp.py",),
        (At(EXP_PY, "lr: fast"), At(EXP_PY, "max_dpeth"), "exp001/run001", "exp001/run002"),
        runs=overrides("lr: fast\n", "model:\n  params:\n    max_dpeth: 3\n"),
        problems=2,
    ),
    Case(
        "override-same-text-twice-points-at-its-own-line",
        ("exp.py",),
        (
            At(EXP_PY, "'model: {name: 3}'", nth=1, then=": exp001/run002"),
            At(EXP_PY, "'model: {name: 3}'", nth=2, then=": exp001: this override is already in RUNS as run002"),
        ),
        runs="[\n    'lr: 0.1',\n    'model: {name: 3}',\n    'model: {name: 3}',\n]",
        prepare=edit(EXP_PY, "'lr: 0.1',", "'lr: 0.1',  # run003 repeats run002: both wrong"),
        problems=2,
    ),
    Case(
        "override-changed-after-its-named-run-is-done",
        ("exp.py",),
        ("exp001", "run002", "override changed", "--force --only run002"),
        done=True,  # the done list's runs, now named by a dict whose run002 changed
        prepare=edit(EXP_PY, RUNS, named({"run001": depth(1), "run002": depth(20), "run003": depth(3)})),
    ),
    # RUNS
    Case(
        "RUNS-a-string",
        ("exp.py",),
        (EXP_PY, "RUNS", "list or a dict", "str"),
        runs="'lr: 0.1'",
    ),
    Case(
        "RUNS-None",
        ("exp.py",),
        (EXP_PY, "RUNS", "NoneType"),
        runs="None",
    ),
    Case(
        "RUNS-missing-from-main-call",
        ("exp.py",),
        (EXP_PY, "RUNS"),
        prepare=NO_RUNS_ARGUMENT,
    ),
    Case(
        "RUNS-entry-a-dict",
        ("exp.py",),
        (EXP_PY, "RUNS entry 2 of the list", "YAML string", "dict"),
        runs="['lr: 0.1', {'lr': 0.2}]",
    ),
    Case(
        "RUNS-entry-an-int",
        ("exp.py",),
        (EXP_PY, "RUNS entry 1 of the list", "YAML string", "int"),
        runs="[3]",
    ),
    Case(
        "RUNS-name-dotdot",
        ("exp.py",),
        (EXP_PY, "'..'", "run name"),
        runs=named({"..": "lr: 0.1\n"}),
    ),
    Case(
        "RUNS-name-with-slash",
        ("exp.py",),
        (EXP_PY, "'a/b'", "run name"),
        runs=named({"a/b": "lr: 0.1\n"}),
    ),
    Case(
        "RUNS-name-with-space",
        ("exp.py",),
        (EXP_PY, "'my run'", "run name"),
        runs=named({"my run": "lr: 0.1\n"}),
    ),
    Case(
        "RUNS-name-absolute-path",
        ("exp.py",),
        (EXP_PY, "'/tmp/run'", "run name"),
        runs=named({"/tmp/run": "lr: 0.1\n"}),
    ),
    Case(
        "RUNS-name-empty",
        ("exp.py",),
        (EXP_PY, "''", "run name"),
        runs=named({"": "lr: 0.1\n"}),
    ),
    # exp.py flags
    Case("only-unknown-run", ("exp.py", "--only", "run009"), ("exp001", "'run009'", "run001, run002, run003")),
    Case("only-dotdot", ("exp.py", "--only", ".."), ("'..'", "run name")),
    Case("only-path", ("exp.py", "--only", "../exp002/run001"), ("'../exp002/run001'", "run name")),
    Case("only-absolute-path", ("exp.py", "--only", "/etc"), ("'/etc'", "run name")),
    Case("only-space", ("exp.py", "--only", "run 1"), ("'run 1'", "run name")),
    Case("only-empty", ("exp.py", "--only", ""), ("--only", "names no run")),
    Case("only-via-kagexp-run", ("kagexp", "run", "1", "--only", "run009"), ("exp001", "'run009'")),
    Case("full-without-dry-run", ("exp.py", "--full"), ("--full", "--dry-run")),
    Case("exp.py-unknown-flag", ("exp.py", "--bogus"), ("--bogus",), usage=True),
    # kagexp.yml
    Case(
        "kagexp.yml-malformed-yaml",
        ("exp.py",),
        ("kagexp.yml:2", "invalid YAML"),
        settings="name: test\nmetric: x: y\n",
    ),
    Case("kagexp.yml-top-level-list", ("exp.py",), ("kagexp.yml:1", "mapping", "list"), settings="- name\n"),
    Case("kagexp.yml-top-level-scalar", ("exp.py",), ("kagexp.yml:1", "mapping"), settings="test\n"),
    Case(
        "kagexp.yml-duplicate-key",
        ("exp.py",),
        ("kagexp.yml:2", "duplicate key", "name"),
        settings="name: a\nname: b\n",
    ),
    Case("kagexp.yml-tab-indent", ("exp.py",), ("kagexp.yml:3", "tab"), settings="name: a\nmetric:\n\tname: cv\n"),
    Case(
        "kagexp.yml-unknown-key",
        ("exp.py",),
        ("kagexp.yml:2", "`metrik`", "did you mean `metric`"),
        settings="name: a\nmetrik:\n  name: cv\n",
    ),
    Case(
        "kagexp.yml-unknown-nested-key",
        ("kagexp", "ls"),
        ("kagexp.yml:3", "`metric.nmae`", "did you mean `metric.name`"),
        settings="name: a\nmetric:\n  nmae: cv\n",
    ),
    Case(
        "kagexp.yml-plus-key",
        ("kagexp", "runs"),
        ("kagexp.yml:1", "`+notes`"),
        settings="+notes: hi\n",
    ),
    Case("kagexp.yml-type-change", ("exp.py",), ("kagexp.yml:1", "`seed`", "a string"), settings="seed: abc\n"),
    Case(
        "kagexp.yml-unsafe-python-tag",
        ("kagexp", "ls"),
        ("kagexp.yml:1", "python/object/apply"),
        settings=f"name: {UNSAFE}\n",
    ),
    Case(
        "kagexp.yml-output-dir-outside",
        ("exp.py",),
        ("kagexp.yml", "`output_dir`", "'../out'"),
        settings="output_dir: ../out\n",
    ),
    Case(
        "kagexp.yml-output-dir-absolute",
        ("exp.py",),
        ("kagexp.yml", "`output_dir`", "'/tmp/kagexp-out'"),
        settings="output_dir: /tmp/kagexp-out\n",
    ),
    Case(
        "kagexp.yml-metric-direction",
        ("kagexp", "ls"),
        ("kagexp.yml", "`metric.direction`", "'up'"),
        settings="metric:\n  direction: up\n",
    ),
    # output folder that cannot be written
    Case(
        "output-dir-is-a-file",
        ("exp.py",),
        ("data/output",),
        prepare=write("data/output", "not a folder\n"),
    ),
    Case(
        "run-folder-is-a-file",
        ("exp.py",),
        ("data/output/exp/exp001/run001",),
        prepare=write("data/output/exp/exp001/run001", "not a folder\n"),
    ),
    Case(
        "output-dir-read-only",
        ("exp.py",),
        ("data/output",),
        prepare=read_only("data/output"),
        unprivileged=True,
    ),
    # kagexp new
    Case("new-existing-target", ("kagexp", "new", "exp001"), ("exp/exp001", "already exists")),
    Case(
        "new-target-is-a-file",
        ("kagexp", "new", "exp002"),
        ("exp/exp002", "already exists"),
        prepare=write("exp/exp002", "x"),
    ),
    Case("new-dotdot", ("kagexp", "new", ".."), ("'..'", "experiment name")),
    Case("new-path", ("kagexp", "new", "../evil"), ("'../evil'", "experiment name")),
    Case("new-slash", ("kagexp", "new", "exp/exp002"), ("'exp/exp002'", "experiment name")),
    Case("new-space", ("kagexp", "new", "my exp"), ("'my exp'", "experiment name")),
    Case("new-absolute-path", ("kagexp", "new", "{outside}/exp002"), ("{outside}/exp002", "experiment name")),
    Case("new-empty-name", ("kagexp", "new", ""), ("''", "experiment name")),
    Case("new-from-missing", ("kagexp", "new", "exp002", "--from", "exp009"), ("exp/exp009", "does not exist")),
    Case("new-from-dotdot", ("kagexp", "new", "exp002", "--from", ".."), ("'..'", "experiment name")),
    Case("new-from-empty", ("kagexp", "new", "exp002", "--from", ""), ("''", "experiment name")),
    Case(
        "new-with-nothing-to-copy",
        ("kagexp", "new"),
        ("no experiment in exp/",),
        prepare=remove("exp/exp001"),
    ),
    # kagexp diff
    Case("diff-unknown-experiment", ("kagexp", "diff", "exp001", "exp009"), ("'exp009'", "exp001")),
    Case("diff-one-unknown-experiment", ("kagexp", "diff", "exp009"), ("exp009",)),
    Case("diff-without-parent", ("kagexp", "diff", "exp001"), ("exp001", "lineage.yml")),
    Case(
        "diff-unknown-run",
        ("kagexp", "diff", "exp001/run001", "exp001/run009"),
        ("exp001/run009", "run001, run002, run003"),
        done=True,
    ),
    Case("diff-run-dotdot", ("kagexp", "diff", "exp001/..", "exp001"), ("'..'", "run name")),
    Case("diff-space", ("kagexp", "diff", "my exp", "exp001"), ("'my exp'",)),
    Case("diff-dotdot", ("kagexp", "diff", "..", "exp001"), ("'..'",)),
    Case(
        "diff-absolute-path-outside",
        ("kagexp", "diff", "{outside}", "exp001"),
        ("{outside}",),
    ),
    Case(
        "diff-empty-name",
        ("kagexp", "diff", "", "exp001"),
        ("''",),
    ),
    # kagexp show
    Case(
        "show-unknown-run", ("kagexp", "show", "exp001/run009"), ("exp001/run009", "run001, run002, run003"), done=True
    ),
    Case("show-unknown-experiment", ("kagexp", "show", "exp009/run001"), ("exp009",)),
    Case("show-empty", ("kagexp", "show", ""), ("''", "exp003/run002")),
    Case("show-dotdot", ("kagexp", "show", "../run001"), ("'..'",)),
    Case("show-run-dotdot", ("kagexp", "show", "exp001/.."), ("'..'",)),
    Case("show-space", ("kagexp", "show", "exp001/run 1"), ("'run 1'",)),
    Case("show-experiment-not-run", ("kagexp", "show", "exp001"), ("'exp001'", "exp003/run002")),
    Case(
        "show-absolute-path",
        ("kagexp", "show", "/etc/passwd"),
        ("'/etc/passwd'",),
    ),
    # kagexp runs, ls, run, report
    Case("runs-where-does-not-parse", ("kagexp", "runs", "--where", "cv >"), ("--where", "'cv >'", "KEY OP VALUE")),
    Case(
        "runs-where-python-expression",
        ("kagexp", "runs", "--where", "__import__('os').system('touch PWNED')"),
        ("--where", "cannot parse"),
    ),
    Case(
        "runs-where-does-not-parse-with-runs",
        ("kagexp", "runs", "--where", "cv >"),
        ("--where", "'cv >'"),
        done=True,
    ),
    Case("runs-unknown-experiment", ("kagexp", "runs", "exp009"), ("exp009", "exp001")),
    Case("runs-dotdot", ("kagexp", "runs", ".."), ("'..'", "experiment name")),
    Case("runs-bad-status", ("kagexp", "runs", "--status", "finished"), ("--status", "'finished'"), usage=True),
    Case("run-unknown-experiment", ("kagexp", "run", "exp009"), ("exp/exp009/exp.py", "exp001")),
    Case("run-dotdot", ("kagexp", "run", "../exp001"), ("'../exp001'", "experiment name")),
    Case("report-unknown-experiment", ("kagexp", "report", "exp009"), ("exp009",)),
    Case("lb-score-not-a-number", ("kagexp", "lb", "exp001/run001", "high"), ("SCORE", "'high'"), usage=True),
    Case("unknown-command", ("kagexp", "lst"), ("'lst'",), usage=True),
]


# --- the test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def done_project(tmp_path_factory) -> Path:
    """A project whose three runs are done, their folders dated a minute back (settled for listing)."""
    root = make_project(tmp_path_factory.mktemp("done") / "proj", runs=RUNS)
    finished = run_exp(root)
    assert finished.returncode == 0, finished.stderr
    past = time.time() - 60
    for folder, _, _ in os.walk(root / "data/output", topdown=False):
        os.utime(folder, (past, past))
    return root


def build(case: Case, tmp_path: Path, done_project: Path) -> Path:
    root = tmp_path / "proj"
    if case.done:
        shutil.copytree(done_project, root, symlinks=True)
    else:
        make_project(root, runs=case.runs, config=case.config, settings=case.settings)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.yml").write_text("seed: 1\n")
    if case.prepare:
        case.prepare(root)
    return root


def tree(root: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every file with its bytes, and every folder and link: what must not change."""
    others = sorted(
        p.relative_to(root).as_posix() + ("@" + os.readlink(p) if p.is_symlink() else "/")
        for p in root.rglob("*")
        if p.is_dir() or p.is_symlink()
    )
    return snapshot_tree(root), others


def command(case: Case, tmp_path: Path) -> list[str]:
    args = [arg.replace("{outside}", str(tmp_path / "outside")) for arg in case.argv[1:]]
    if case.argv[0] == "exp.py":
        return [sys.executable, EXP_PY, *args]
    return [sys.executable, "-m", "kagexp", *args]


def expected(case: Case, root: Path, tmp_path: Path) -> list[str]:
    return [
        part.resolve(root) if isinstance(part, At) else part.replace("{outside}", str(tmp_path / "outside"))
        for part in case.expect
    ]


def run_command(argv: list[str], root: Path, as_unprivileged: bool) -> subprocess.CompletedProcess:
    """`argv` in the project `root`; as an unprivileged user, in a folder handed over to it, when asked."""
    if as_unprivileged:
        hand_over(root.parent)
        argv = unprivileged(argv)
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, env=subprocess_env(), timeout=60)


@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(case: Case, request, done_project: Path):
    tmp_path = request.getfixturevalue("unprivileged_tmp_path" if case.unprivileged else "tmp_path")
    root = build(case, tmp_path, done_project)
    before = tree(tmp_path)
    done = run_command(command(case, tmp_path), root, case.unprivileged)
    shown = f"exit {done.returncode}\nstderr:\n{done.stderr}\nstdout:\n{done.stdout}"
    assert "Traceback" not in done.stderr, shown
    assert done.returncode == 2, shown
    lines = done.stderr.splitlines()
    assert len(lines) == (1 if case.usage else case.problems), shown
    assert all(line.startswith("kagexp: error: ") for line in lines), shown
    for part in expected(case, root, tmp_path):
        assert part in done.stderr, f"{part!r} missing from the message\n{shown}"
    assert done.stdout == "", shown
    assert_unchanged(before, tree(tmp_path))


def assert_unchanged(before: tuple[dict, list], after: tuple[dict, list]) -> None:
    (files_before, others_before), (files_after, others_after) = before, after
    changed = sorted(k for k in files_before.keys() | files_after.keys() if files_before.get(k) != files_after.get(k))
    changed += sorted(set(others_before) ^ set(others_after))
    assert not changed, f"the command changed: {changed}"


def test_the_corpus_is_large_and_every_id_unique():
    ids = [case.id for case in CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


def test_exp_py_without_RUNS_is_a_python_error_before_kagexp_runs(tmp_path):
    """`kagexp.main(run, RUNS)` with no RUNS defined: Python raises NameError on that line before
    kagexp is called, so kagexp cannot turn it into its one-line error. The traceback names the
    file, the line and `RUNS`, which is clear; and nothing is written."""
    root = make_project(tmp_path / "proj")
    edit(EXP_PY, "RUNS = [", "OTHER = [")(root)
    before = tree(tmp_path)
    done = run_exp(root)
    assert done.returncode == 1
    assert "NameError: name 'RUNS' is not defined" in done.stderr
    assert f'{root / EXP_PY}", line' in done.stderr and "kagexp.main(run, RUNS)" in done.stderr
    assert_unchanged(before, tree(tmp_path))


# --- damaged run folders: listed, never a crash -----------------------------------------------


@dataclass(frozen=True)
class Damage:
    """A run folder damaged by something else than the user's input; `expect` must be in stdout."""

    id: str
    argv: tuple[str, ...]
    prepare: Prepare
    expect: tuple[str, ...]
    bug: str | None = None
    unprivileged: bool = False

    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=self.bug)] if self.bug else []
        return pytest.param(self, id=self.id, marks=marks)


def damage_meta(content: str | bytes) -> Prepare:
    """Replace run002's meta.json and drop its summary.json (else listing would not read meta.json)."""
    return chain(write(f"{RUN2}/meta.json", content), remove(f"{RUN2}/summary.json"))


def patch_meta(**values: object) -> Prepare:
    def prepare(root: Path) -> None:
        import json

        meta = json.loads((root / RUN2 / "meta.json").read_text())
        meta.update(values)
        (root / RUN2 / "meta.json").write_text(json.dumps(meta))
        (root / RUN2 / "summary.json").unlink()

    return prepare


def unreadable(relative: str) -> Prepare:
    return chain(remove(f"{RUN2}/summary.json"), lambda root: os.chmod(root / relative, 0))


CUT_META = damage_meta('{\n "exp": "exp001",\n "status": "do')
CORRUPT_ROW = ("exp001/run002  corrupt",)

MUST_NOT_CRASH: list[Damage] = [
    Damage("runs-meta.json-cut", ("kagexp", "runs"), CUT_META, CORRUPT_ROW),
    Damage("runs-meta.json-empty", ("kagexp", "runs"), damage_meta(""), CORRUPT_ROW),
    Damage("runs-meta.json-binary", ("kagexp", "runs"), damage_meta(b"\xff\xfe\x00\x01"), CORRUPT_ROW),
    Damage("runs-meta.json-a-list", ("kagexp", "runs"), damage_meta("[1, 2]\n"), CORRUPT_ROW),
    Damage(
        "runs-meta.json-a-folder",
        ("kagexp", "runs"),
        chain(remove(f"{RUN2}/meta.json"), make_dir(f"{RUN2}/meta.json"), remove(f"{RUN2}/summary.json")),
        CORRUPT_ROW,
    ),
    Damage(
        "runs-meta.json-unreadable",
        ("kagexp", "runs"),
        unreadable(f"{RUN2}/meta.json"),
        CORRUPT_ROW,
        unprivileged=True,
    ),
    Damage("runs-json-meta.json-cut", ("kagexp", "runs", "--format", "json"), CUT_META, ('"status": "corrupt"',)),
    Damage("runs-status-corrupt-meta.json-cut", ("kagexp", "runs", "--status", "corrupt"), CUT_META, CORRUPT_ROW),
    Damage("show-meta.json-cut", ("kagexp", "show", "exp001/run002"), CUT_META, ("exp001/run002  corrupt",)),
    Damage("list-meta.json-cut", ("exp.py", "--list"), CUT_META, ("run002  corrupt",)),
    Damage("ls-meta.json-cut", ("kagexp", "ls"), CUT_META, ("exp001",)),
    Damage(
        "runs-meta.json-status-not-a-string",
        ("kagexp", "runs"),
        patch_meta(status=5),
        CORRUPT_ROW,
    ),
    Damage(
        "ls-meta.json-started-not-a-string",
        ("kagexp", "ls"),
        patch_meta(started=5),
        ("exp001",),
    ),
    Damage(
        "list-meta.json-duration-not-a-number",
        ("exp.py", "--list"),
        patch_meta(duration="long"),
        ("run002",),
    ),
    Damage(
        "runs-summary.json-cut",
        ("kagexp", "runs"),
        write(f"{RUN2}/summary.json", '{"status": "do'),
        ("exp001/run002  done",),
    ),
    Damage(
        "runs-summary.json-wrong-shape",
        ("kagexp", "runs"),
        write(f"{RUN2}/summary.json", '{"status": "done", "config": [], "metrics": 3}'),
        ("exp001/run002",),
    ),
    Damage(
        "runs-index-corrupt",
        ("kagexp", "runs"),
        write("data/output/exp/exp001/.listing/.index.json", "{]"),
        ("exp001/run002  done",),
    ),
    Damage("runs-metrics.json-cut", ("kagexp", "runs"), write(f"{RUN2}/metrics.json", '{"cv": 0.'), ("exp001/run002",)),
    Damage(
        "show-config.yml-corrupt",
        ("kagexp", "show", "exp001/run002"),
        write(f"{RUN2}/config.yml", "a: [\n"),
        ("exp001/run002",),
    ),
    Damage("ls-lineage.yml-corrupt", ("kagexp", "ls"), write("exp/exp001/lineage.yml", "parent: [\n"), ("exp001",)),
    Damage(
        "runs-lb.jsonl-cut-last-line",
        ("kagexp", "runs"),
        chain(write(f"{RUN2}/lb.jsonl", '{"score": 0.5, "time": "x"}\n{"sco'), remove(f"{RUN2}/summary.json")),
        ("0.5",),
    ),
]


@pytest.mark.parametrize("damage", [damage.param() for damage in MUST_NOT_CRASH])
def test_damaged_run_folders_are_listed_not_crashed_on(damage: Damage, request, done_project: Path):
    root = request.getfixturevalue("unprivileged_tmp_path" if damage.unprivileged else "tmp_path") / "proj"
    shutil.copytree(done_project, root, symlinks=True)
    damage.prepare(root)
    before = {k: v for k, v in snapshot_tree(root).items() if not k.endswith(".index.json")}
    argv = (
        [sys.executable, EXP_PY, *damage.argv[1:]]
        if damage.argv[0] == "exp.py"
        else [sys.executable, "-m", "kagexp", *damage.argv[1:]]
    )
    done = run_command(argv, root, damage.unprivileged)
    shown = f"exit {done.returncode}\nstderr:\n{done.stderr}\nstdout:\n{done.stdout}"
    assert "Traceback" not in done.stderr, shown
    assert done.returncode == 0, shown
    for part in damage.expect:
        assert part in done.stdout, f"{part!r} missing\n{shown}"
    after = {k: v for k, v in snapshot_tree(root).items() if not k.endswith(".index.json")}
    assert after == before, "listing changed a run's files (only the listing cache .index.json may change)"
