"""Adversarial input to the config and project layer (issue #10, items 3, 9–12 and the degraded list).

`CASES` follows the house pattern of `test_bad_inputs.py`: a real project per case, one real
command in a subprocess, then exit code 2, one `kagexp: error:` line per problem naming the file
(and line, run and key where they apply), no traceback, nothing on stdout, and the whole
temporary folder unchanged byte for byte. The classes, each with several variants:

- RUNS keys that are not strings, or names that would share one folder (item 3);
- override keys YAML reads as numbers, null, booleans or dates, and `+` on them (item 9);
- `kagexp.yml` against its schema: bytes, types, null sections and values, folders (item 10);
- YAML alias bombs and recursive aliases, in every place YAML is read (item 11);
- run and experiment names with line breaks or longer than 100 characters (item 12);
- thousands of problems at once, `--where` that cannot compare, `--gpus` that are no GPU ids.

The tests after the corpus hold the other side: what must keep working (mixed-type keys that
are allowed, empty sections, aliases within bounds, a 100-character name, dates in `--where`),
and that reporting thousands of problems stays fast.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import BASE_CONFIG, make_project, run_exp, subprocess_env
from test_bad_inputs import (
    CONFIG,
    EXP_PY,
    RUNS,
    SETTINGS,
    At,
    Prepare,
    assert_unchanged,
    depth,
    make_dir,
    named,
    overrides,
    tree,
    write,
)

from kagexp.project import DEFAULT_SETTINGS
from kagexp.settings import SCHEMA, check_settings

SETTINGS_FILE = "kagexp.yml"
LONG = "r" * 101
UUID = "GPU-8f3c2a1e-1234-5678-9abc-def012345678"


def bomb(levels: int, indent: str = "", plus: str = "") -> str:
    """The "billion laughs": each level a list of nine aliases of the one before (9**levels nodes)."""
    lines = [f"{indent}{plus}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    lines += [f"{indent}{plus}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, levels + 1)]
    return "".join(lines)


def mapping_bomb(levels: int) -> str:
    """The same with mappings, which `flatten` and the strict check would walk."""
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}\n"]
    keys = "abcdefghi"
    lines += [f"m{i}: &m{i} {{{', '.join(f'{k}: *m{i - 1}' for k in keys)}}}\n" for i in range(1, levels + 1)]
    return "".join(lines)


def flow_bomb(levels: int) -> str:
    """A bomb on one line, as a flag value: `[&a0 [x, …], &a1 [*a0, …], …]`."""
    parts = ["&a0 [" + ", ".join(["x"] * 10) + "]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def settings(text: str) -> str:
    return SETTINGS + text


def fifo(relative: str) -> Prepare:
    def prepare(root: Path) -> None:
        (root / relative).unlink()
        os.mkfifo(root / relative)

    return prepare


def dangling(relative: str) -> Prepare:
    def prepare(root: Path) -> None:
        (root / relative).unlink()
        (root / relative).symlink_to(root / "nowhere.yml")

    return prepare


def rename(relative: str, to: str) -> Prepare:
    def prepare(root: Path) -> None:
        (root / relative).rename(root / to)

    return prepare


def unknown_keys(count: int) -> str:
    return "".join(f"key_{i}: {i}\n" for i in range(count))


@dataclass(frozen=True)
class Case:
    """A bad input: the project, the command (`exp.py …`, `python SCRIPT …` or `kagexp …`), and
    what the message must say (and, in `refuse`, must not)."""

    id: str
    argv: tuple[str, ...]
    expect: tuple[str | At, ...]
    runs: str = RUNS
    config: str = BASE_CONFIG
    settings: str = SETTINGS
    prepare: Prepare | None = None
    problems: int = 1
    refuse: tuple[str, ...] = ()

    def param(self):
        return pytest.param(self, id=self.id)


# --- item 3: RUNS keys ----------------------------------------------------------------------

RUNS_KEYS = [
    Case(
        "RUNS-int-and-text-key-collide",
        ("exp.py",),
        (EXP_PY, "exp001", "run names 1 and '1' would share one folder"),
        runs="{1: 'lr: 0.1', '1': 'lr: 0.2'}",
    ),
    Case(
        "RUNS-text-and-int-key-collide",
        ("exp.py", "--dry-run"),
        (EXP_PY, "run names 7 and '7' would share one folder"),
        runs="{'7': 'lr: 0.1', 7: 'lr: 0.2'}",
    ),
    Case("RUNS-None-key", ("exp.py",), (EXP_PY, "a run named None"), runs="{None: 'lr: 0.1'}"),
    Case(
        "RUNS-int-key",
        ("exp.py", "--dry-run"),
        (EXP_PY, "run name 1 is an int; write it as a string: '1'"),
        runs="{1: 'lr: 0.1'}",
    ),
    Case("RUNS-float-key", ("exp.py",), (EXP_PY, "run name 1.5 is a float"), runs="{1.5: 'lr: 0.1'}"),
    Case("RUNS-bool-key", ("exp.py",), (EXP_PY, "run name True is a boolean"), runs="{True: 'lr: 0.1'}"),
    Case("RUNS-tuple-key", ("exp.py",), (EXP_PY, "run name ('a', 1) is a tuple"), runs="{('a', 1): 'lr: 0.1'}"),
    Case("RUNS-bytes-key", ("exp.py", "--list"), (EXP_PY, "run name b'x' is a bytes"), runs="{b'x': 'lr: 0.1'}"),
    Case(
        "RUNS-names-differ-only-in-case",
        ("exp.py",),
        (EXP_PY, "run names 'Base' and 'base' differ only in case"),
        runs="{'Base': 'lr: 0.1', 'base': 'lr: 0.2'}",
    ),
    Case(
        "RUNS-several-bad-keys-one-line-each",
        ("exp.py",),
        (EXP_PY, "a run named None", "run name 2 is an int"),
        runs="{'ok': 'lr: 0.1', 2: 'lr: 0.2', None: 'lr: 0.3'}",
        problems=2,
    ),
]

# --- item 12: names -------------------------------------------------------------------------

NAMES = [
    Case("RUNS-name-trailing-newline", ("exp.py",), (EXP_PY, r"'run1\n'", "run name"), runs=named({"run1\n": ""})),
    Case("RUNS-name-inner-newline", ("exp.py",), (EXP_PY, r"'run\n1'", "run name"), runs=named({"run\n1": ""})),
    Case("RUNS-name-carriage-return", ("exp.py",), (EXP_PY, r"'run1\r'"), runs=named({"run1\r": ""})),
    Case("RUNS-name-tab", ("exp.py",), (EXP_PY, r"'run\t1'"), runs=named({"run\t1": ""})),
    Case(
        "RUNS-name-101-characters",
        ("exp.py",),
        (EXP_PY, "(101 characters): at most 100"),
        runs=named({LONG: "lr: 0.1\n"}),
    ),
    Case(
        "RUNS-name-300-characters",
        ("exp.py", "--dry-run"),
        (EXP_PY, "(300 characters): at most 100"),
        runs=named({"x" * 300: "lr: 0.1\n"}),
    ),
    Case("new-name-101-characters", ("kagexp", "new", "e" * 101), ("experiment name", "(101 characters)")),
    Case("new-name-300-characters", ("kagexp", "new", "e" * 300), ("experiment name", "(300 characters)")),
    Case("new-name-inner-newline", ("kagexp", "new", "exp\n002"), (r"'exp\n002'", "experiment name")),
    Case("new-from-long-name", ("kagexp", "new", "exp002", "--from", "e" * 150), ("(150 characters)",)),
    Case("run-long-experiment", ("kagexp", "run", "e" * 120), ("(120 characters)",)),
    Case("show-long-run", ("kagexp", "show", f"exp001/{LONG}"), ("run name", "(101 characters)")),
    Case("runs-long-experiment", ("kagexp", "runs", "e" * 101), ("experiment name", "(101 characters)")),
    Case("diff-newline-experiment", ("kagexp", "diff", "exp001", "exp\n1"), (r"'exp\n1'",)),
    Case("only-long-run", ("exp.py", "--only", LONG), ("run name", "(101 characters)")),
    Case("show-300-character-run", ("kagexp", "show", f"exp001/{'x' * 300}"), ("run name", "(300 characters)")),
    Case("lb-300-character-run", ("kagexp", "lb", f"exp001/{'x' * 300}", "0.5"), ("run name", "(300 characters)")),
    Case(
        "experiment-folder-101-characters",
        ("python", f"exp/{'e' * 101}/exp.py"),
        ("invalid experiment name", "(101 characters): at most 100"),
        prepare=rename("exp/exp001", f"exp/{'e' * 101}"),
    ),
    Case(
        "experiment-folder-with-newline",
        ("python", "exp/exp\n1/exp.py", "--dry-run"),
        ("invalid experiment name", r"'exp\n1'"),
        prepare=rename("exp/exp001", "exp/exp\n1"),
    ),
]

# --- item 9: override keys of other types -----------------------------------------------------

BASE_WITH_TEXT_7 = BASE_CONFIG + "'7': q\n"
BASE_WITH_INT_KEYS = BASE_CONFIG + "steps:\n  1: a\n  7: b\n"

OVERRIDE_KEYS = [
    Case(
        "override-plus-5-is-the-number-5",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "+5: x"), "exp001/run002", "unknown key `5` (YAML reads this key as an int", "`'+5'` (quoted)"),
        runs=overrides(depth(1), "+5: x\n"),
        refuse=("write `+5`",),
    ),
    Case(
        "override-plus-float",
        ("exp.py",),
        (At(EXP_PY, "+1.5e3"), "unknown key `1500.0` (YAML reads this key as a float", "`'+1500.0'`"),
        runs=overrides(depth(1), "+1.5e3: x\n"),
    ),
    Case(
        "override-plus-inf",
        ("exp.py",),
        (At(EXP_PY, "+.inf"), "unknown key `.inf`", "`'+.inf'`"),
        runs=overrides(depth(1), "+.inf: x\n"),
    ),
    Case(
        "override-plus-hex",
        ("exp.py",),
        (At(EXP_PY, "+0x1F"), "unknown key `31` (YAML reads this key as an int"),
        runs=overrides(depth(1), "+0x1F: x\n"),
    ),
    Case(
        "override-int-key-beside-text-keys",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "7: x"), "exp001/run001", "unknown key `7` (YAML reads this key as an int"),
        runs=overrides("7: x\nlr: 0.2\n"),
    ),
    Case(
        "override-null-key",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "null: x"), "unknown key `null` (YAML reads this key as null", "`'+null'`"),
        runs=overrides("null: x\nlr: 0.2\n"),
    ),
    Case(
        "override-tilde-key",
        ("exp.py",),
        (At(EXP_PY, "~: x"), "unknown key `null`"),
        runs=overrides("lr: 0.2\n~: x\n"),
    ),
    Case(
        "override-date-key",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "2020-01-01: e"), "unknown key `2020-01-01` (YAML reads this key as a date"),
        runs=overrides("lr: 0.2\n2020-01-01: e\n"),
    ),
    Case(
        "override-bool-key",
        ("exp.py",),
        (At(EXP_PY, "true: x"), "unknown key `true` (YAML reads this key as a boolean"),
        runs=overrides("true: x\n"),
    ),
    Case(
        "override-int-key-where-base-has-text",
        ("exp.py",),
        (At(EXP_PY, "7: x"), "unknown key `7`", "did you mean `'7'`?"),
        runs=overrides("7: x\n"),
        config=BASE_WITH_TEXT_7,
    ),
    Case(
        "override-text-key-where-base-has-int",
        ("exp.py",),
        (At(EXP_PY, "'7': x"), "unknown key `steps.'7'`; did you mean `steps.7`?", "Write `'+7'`"),
        runs=overrides("steps:\n  '7': x\n"),
        config=BASE_WITH_INT_KEYS,
    ),
    Case(
        "override-true-is-not-key-1",
        ("exp.py",),
        (At(EXP_PY, "true: x"), "unknown key `steps.true`"),
        runs=overrides("steps:\n  true: x\n"),
        config=BASE_WITH_INT_KEYS,
    ),
    Case(
        "override-text-key-0-needs-quoted-plus",
        ("exp.py",),
        (At(EXP_PY, "'0': x"), "unknown key `'0'`", "write `'+0'` to add a new key"),
        runs=overrides("'0': x\n"),
        refuse=("write `+0`",),
    ),
    Case(
        "override-true-and-1-are-one-key-to-python",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "1: y"), "found keys `true` and `1`, which Python takes as one key"),
        runs=overrides("steps:\n  true: x\n  1: y\n"),
        config=BASE_WITH_INT_KEYS,
    ),
    Case(
        "override-null-and-tilde-are-one-key",
        ("exp.py",),
        (At(EXP_PY, "~: y"), "exp001/run001", "found duplicate key None"),
        runs=overrides("lr: 0.2\nnull: x\n~: y\n"),
    ),
    Case(
        "config.yml-1-and-1.0-are-one-key-to-python",
        ("exp.py",),
        (At(CONFIG, "1.0: b"), "found keys `1` and `1.0`"),
        config=BASE_CONFIG + "steps:\n  1: a\n  1.0: b\n",
    ),
    Case(
        "override-mixed-keys-problems-in-two-runs",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "7: x"), At(EXP_PY, "null: y"), "exp001/run001", "exp001/run002"),
        runs=overrides("7: x\nlr: 0.2\n", "null: y\nlr: 0.3\n"),
        problems=2,
    ),
]

# --- item 10: kagexp.yml --------------------------------------------------------------------

KAGEXP_YML = [
    Case(
        "kagexp.yml-not-utf8-line-2",
        ("exp.py",),
        ("kagexp.yml:2", "cannot read", "0xff", "UTF-8"),
        prepare=write(SETTINGS_FILE, b"name: t\nmetric: {name: \xff}\n"),
    ),
    Case(
        "kagexp.yml-utf16",
        ("kagexp", "ls"),
        ("kagexp.yml:1", "not UTF-8"),
        prepare=write(SETTINGS_FILE, "name: t\n".encode("utf-16")),
    ),
    Case("kagexp.yml-a-folder", ("exp.py",), ("kagexp.yml: a folder",), prepare=make_dir(SETTINGS_FILE)),
    Case("kagexp.yml-a-folder-ls", ("kagexp", "ls"), ("kagexp.yml: a folder",), prepare=make_dir(SETTINGS_FILE)),
    Case("kagexp.yml-a-fifo", ("kagexp", "runs"), ("kagexp.yml: not a regular file",), prepare=fifo(SETTINGS_FILE)),
    Case("kagexp.yml-dangling-link", ("exp.py",), ("kagexp.yml: file not found",), prepare=dangling(SETTINGS_FILE)),
    Case(
        "kagexp.yml-output-dir-null",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` must be a folder inside the project", "not null"),
        settings=settings("output_dir: null\n"),
    ),
    Case(
        "kagexp.yml-input-dir-empty-value",
        ("exp.py",),
        ("kagexp.yml:5", "`input_dir` must be a folder inside the project", "not null"),
        settings=settings("input_dir:\n"),
    ),
    Case(
        "kagexp.yml-new-exclude-null",
        ("exp.py",),
        ("kagexp.yml:6", "`new.exclude` must be a list of glob patterns", "not null"),
        settings=settings("new:\n  exclude: null\n"),
    ),
    Case(
        "kagexp.yml-new-exclude-a-string",
        ("kagexp", "new"),
        ("kagexp.yml:5", "`new.exclude`", "not a string ('*.ckpt')"),
        settings=settings("new: {exclude: '*.ckpt'}\n"),
    ),
    Case(
        "kagexp.yml-new-exclude-holds-an-int",
        ("exp.py",),
        ("kagexp.yml:5", "`new.exclude`", "a list holding an int (1)"),
        settings=settings("new: {exclude: ['*.ckpt', 1]}\n"),
    ),
    Case(
        "kagexp.yml-strict-keys-null",
        ("exp.py",),
        ("kagexp.yml:5", "`config.strict_keys` must be true or false, not null"),
        settings=settings("config: {strict_keys: null}\n"),
    ),
    Case(
        "kagexp.yml-wandb-enabled-text",
        ("exp.py",),
        ("kagexp.yml:6", "`wandb.enabled` must be true or false", "'yes please'"),
        settings=settings("wandb:\n  enabled: yes please\n"),
    ),
    Case(
        "kagexp.yml-metric-a-list",
        ("kagexp", "ls"),
        ("kagexp.yml:1", "`metric` must be a mapping of settings, not a list"),
        settings="metric: [cv]\n",
    ),
    Case(
        "kagexp.yml-wandb-true",
        ("exp.py",),
        ("kagexp.yml:5", "`wandb` must be a mapping of settings, not a boolean"),
        settings=settings("wandb: true\n"),
    ),
    Case(
        "kagexp.yml-output-dir-empty-string",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` is '', the project folder itself"),
        settings=settings("output_dir: ''\n"),
    ),
    Case(
        "kagexp.yml-output-dir-dot",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` is '.', the project folder itself"),
        settings=settings("output_dir: .\n"),
    ),
    Case(
        "kagexp.yml-output-dir-dot-slash",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` is './', the project folder itself"),
        settings=settings("output_dir: ./\n"),
    ),
    Case(
        "kagexp.yml-output-dir-exp",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` is 'exp', inside exp/"),
        settings=settings("output_dir: exp\n"),
    ),
    Case(
        "kagexp.yml-output-dir-in-an-experiment",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` is 'exp/exp001', inside exp/", "copied with the experiments' code"),
        settings=settings("output_dir: exp/exp001\n"),
    ),
    Case(
        "kagexp.yml-output-dir-dot-exp",
        ("kagexp", "runs"),
        ("kagexp.yml:5", "`output_dir` is './exp/out', inside exp/"),
        settings=settings("output_dir: ./exp/out\n"),
    ),
    Case(
        "kagexp.yml-output-dir-dotdot-inside",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` must be a folder inside the project", "'data/../../out'"),
        settings=settings("output_dir: data/../../out\n"),
    ),
    Case(
        "kagexp.yml-output-dir-nul-byte",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` must be a folder inside the project"),
        settings=settings('output_dir: "data\\0out"\n'),
    ),
    Case(
        "kagexp.yml-input-dir-absolute",
        ("exp.py",),
        ("kagexp.yml:5", "`input_dir` must be a folder inside the project", "'/etc'"),
        settings=settings("input_dir: /etc\n"),
    ),
    Case(
        "kagexp.yml-input-dir-parent",
        ("kagexp", "ls"),
        ("kagexp.yml:5", "`input_dir`", "'../data'"),
        settings=settings("input_dir: ../data\n"),
    ),
    Case(
        "kagexp.yml-output-dir-an-int",
        ("exp.py",),
        ("kagexp.yml:5", "`output_dir` must be a folder", "not an int (5)", "quote it"),
        settings=settings("output_dir: 5\n"),
    ),
    Case(
        "kagexp.yml-name-an-int",
        ("kagexp", "ls"),
        ("kagexp.yml:1", "`name` must be text or null, not an int (2024); quote it to make it text: '2024'"),
        settings="name: 2024\n",
    ),
    Case(
        "kagexp.yml-competition-a-date",
        ("kagexp", "ls"),
        ("kagexp.yml:5", "`competition`", "not a date (2024-01-01)", "'2024-01-01'"),
        settings=settings("competition: 2024-01-01\n"),
    ),
    Case(
        "kagexp.yml-seed-a-float",
        ("exp.py",),
        ("kagexp.yml:5", "`seed` must be an int, not a float (1.5)"),
        settings=settings("seed: 1.5\n"),
    ),
    Case(
        "kagexp.yml-direction-upper-case",
        ("kagexp", "ls"),
        ("kagexp.yml:4", "`metric.direction` must be `max` or `min`", "'MAX'"),
        settings=SETTINGS.replace("direction: max", "direction: MAX"),
    ),
    Case(
        "kagexp.yml-slurm-time-as-text",
        ("exp.py",),
        ("kagexp.yml:6", "`slurm.time_min` must be an int", "'60'"),
        settings=settings("slurm:\n  time_min: '60'\n"),
    ),
    Case(
        "kagexp.yml-slurm-setup-a-string",
        ("exp.py",),
        ("kagexp.yml:6", "`slurm.setup` must be a list of shell lines"),
        settings=settings("slurm:\n  setup: module load cuda\n"),
    ),
    Case(
        "kagexp.yml-wandb-tags-a-string",
        ("exp.py",),
        ("kagexp.yml:5", "`wandb.tags` must be a list of text"),
        settings=settings("wandb: {tags: baseline}\n"),
    ),
    Case(
        "kagexp.yml-unknown-nested-key",
        ("exp.py",),
        ("kagexp.yml:6", "unknown key `wandb.enbled`; did you mean `wandb.enabled`?"),
        settings=settings("wandb:\n  enbled: true\n"),
    ),
    Case(
        "kagexp.yml-unknown-top-key",
        ("kagexp", "ls"),
        ("kagexp.yml:5", "unknown key `outptu_dir`; did you mean `output_dir`?"),
        settings=settings("outptu_dir: out\n"),
    ),
    Case(
        "kagexp.yml-int-key",
        ("kagexp", "ls"),
        ("kagexp.yml:5", "unknown key `1`"),
        settings=settings("1: x\n"),
    ),
    Case(
        "kagexp.yml-three-problems-three-lines",
        ("exp.py",),
        ("kagexp.yml:5: unknown key `sed`", "kagexp.yml:6", "`output_dir` is '.'", "kagexp.yml:7", "`new.exclude`"),
        settings=settings("sed: 1\noutput_dir: .\nnew: {exclude: null}\n"),
        problems=3,
    ),
    Case(
        "kagexp.yml-thirty-unknown-keys",
        ("kagexp", "ls"),
        ("kagexp.yml:5: unknown key `key_0`", "kagexp.yml:24: unknown key `key_19`", "… and 10 more"),
        settings=settings(unknown_keys(30)),
        problems=21,
        refuse=("key_20",),
    ),
]

# --- item 11: alias bombs ---------------------------------------------------------------------

ALIASES = [
    Case(
        "config.yml-bomb-9-levels",
        ("exp.py",),
        (At(CONFIG, "l4: &l4"), "aliases here expand to more than 10,000 nodes"),
        config=BASE_CONFIG + bomb(9),
    ),
    Case(
        "config.yml-bomb-6-levels",
        ("exp.py", "--dry-run"),
        (At(CONFIG, "l4: &l4"), "aliases here expand"),
        config=BASE_CONFIG + bomb(6),
    ),
    Case(
        "config.yml-mapping-bomb",
        ("exp.py",),
        (At(CONFIG, "m3: &m3"), "aliases here expand to more than 13,200 nodes"),
        config=BASE_CONFIG + mapping_bomb(8),
    ),
    Case(
        "config.yml-recursive-list",
        ("exp.py",),
        (At(CONFIG, "loop:"), "recursive alias"),
        config=BASE_CONFIG + "loop: &a [1, *a]\n",
    ),
    Case(
        "config.yml-recursive-mapping",
        ("exp.py",),
        (At(CONFIG, "loop:"), "recursive alias"),
        config=BASE_CONFIG + "loop: &a {next: *a}\n",
    ),
    Case(
        "override-bomb",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "+l4: &l4"), "exp001/run002", "aliases here expand"),
        runs=overrides(depth(1), bomb(8, plus="+")),
    ),
    Case(
        "override-bomb-nested",
        ("exp.py",),
        (At(EXP_PY, "+l4: &l4"), "exp001/run001", "aliases here expand"),
        runs=overrides("model:\n" + bomb(9, indent="  ", plus="+")),
    ),
    Case(
        "override-bomb-through-merge-keys",
        ("exp.py",),
        (At(EXP_PY, "+m3: &m3"), "exp001/run001", "aliases here expand"),
        runs=overrides(
            "+m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n"
            + "".join(f"+m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}], x{i}: {i}}}\n" for i in range(1, 6))
        ),
    ),
    Case(
        "override-recursive-alias",
        ("exp.py",),
        (At(EXP_PY, "+loop"), "exp001/run002", "recursive alias"),
        runs=overrides(depth(1), "+loop: &a [*a]\n"),
    ),
    Case(
        "kagexp.yml-bomb",
        ("kagexp", "ls"),
        ("kagexp.yml:9", "aliases here expand"),
        settings=settings(bomb(9)),
    ),
    Case(
        "slurm-flag-bomb",
        ("exp.py", "--launcher", "slurm", "--slurm", f"additional={flow_bomb(8)}"),
        ("--slurm additional", "aliases here expand"),
    ),
]

# --- degraded: many problems, --where, --gpus --------------------------------------------------

DEGRADED = [
    Case(
        "override-thousands-of-unknown-keys",
        ("exp.py", "--dry-run"),
        (At(EXP_PY, "key_0: 0"), "unknown key `key_0`", At(EXP_PY, "key_19: 19"), "… and 3980 more"),
        runs=overrides(unknown_keys(4000)),
        problems=21,
        refuse=("key_20",),
    ),
    Case(
        "many-runs-each-with-a-problem",
        ("exp.py",),
        ("exp001/run001", "exp001/run020", "… and 10 more"),
        runs=overrides(*[f"lr{i}: 0.1\n" for i in range(30)]),
        problems=21,
        refuse=("exp001/run021",),
    ),
    Case(
        "kagexp.yml-thousands-of-unknown-keys",
        ("kagexp", "runs"),
        ("kagexp.yml:5: unknown key `key_0`", "… and 3980 more"),
        settings=settings(unknown_keys(4000)),
        problems=21,
    ),
    Case("gpus-letters", ("exp.py", "--gpus", "a,b"), ("--gpus", "'a' is not one")),
    Case("gpus-negative", ("exp.py", "--gpus", "-1"), ("--gpus", "'-1' is not one")),
    Case("gpus-one-bad-of-two", ("exp.py", "--gpus", "0,x"), ("'0,x'", "'x' is not one")),
    Case("gpus-float", ("exp.py", "--gpus", "1.5", "--dry-run"), ("'1.5' is not one",)),
    Case("gpus-empty-uuid", ("exp.py", "--gpus", "GPU-"), ("'GPU-' is not one",)),
    Case("gpus-not-hex-uuid", ("exp.py", "--gpus", "GPU-zz"), ("'GPU-zz' is not one",)),
    Case("gpus-arabic-digit", ("exp.py", "--gpus", "\u0663"), ("is not one",)),
    Case("gpus-with-jobs", ("exp.py", "--jobs", "2", "--gpus", "cuda:0,cuda:1"), ("'cuda:0' is not one",)),
    Case("gpus-through-kagexp-run", ("kagexp", "run", "1", "--gpus", "a"), ("--gpus", "'a' is not one")),
]

CASES = RUNS_KEYS + NAMES + OVERRIDE_KEYS + KAGEXP_YML + ALIASES + DEGRADED


def command(case: Case) -> list[str]:
    """`exp.py …` runs exp001's script, `python PATH …` another one, `kagexp …` the CLI."""
    if case.argv[0] == "exp.py":
        return [sys.executable, EXP_PY, *case.argv[1:]]
    if case.argv[0] == "python":
        return [sys.executable, *case.argv[1:]]
    return [sys.executable, "-m", "kagexp", *case.argv[1:]]


def run_case(case: Case, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(case), cwd=root, capture_output=True, text=True, env=subprocess_env(), timeout=60)


@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_adversarial_input_is_one_clear_line_per_problem_and_changes_nothing(case: Case, tmp_path: Path):
    root = make_project(tmp_path / "proj", runs=case.runs, config=case.config, settings=case.settings)
    if case.prepare:
        case.prepare(root)
    before = tree(tmp_path)
    done = run_case(case, root)
    shown = f"exit {done.returncode}\nstderr:\n{done.stderr[:3000]}\nstdout:\n{done.stdout[:3000]}"
    assert "Traceback" not in done.stderr, shown
    assert done.returncode == 2, shown
    lines = done.stderr.splitlines()
    assert len(lines) == case.problems, shown
    assert all(line.startswith("kagexp: error: ") for line in lines), shown
    for part in case.expect:
        text = part.resolve(root) if isinstance(part, At) else part
        assert text in done.stderr, f"{text!r} missing from the message\n{shown}"
    for part in case.refuse:
        assert part not in done.stderr, f"{part!r} must not be in the message\n{shown}"
    assert done.stdout == "", shown
    assert_unchanged(before, tree(tmp_path))


def test_the_corpus_is_large_and_every_id_unique():
    ids = [case.id for case in CASES]
    assert len(ids) >= 90
    assert len(set(ids)) == len(ids)


# --- what must keep working ---------------------------------------------------------------------


def kagexp(root: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "kagexp", *args]
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, env=subprocess_env(), timeout=60)


def run_with_hash_seed(root: Path, seed: str) -> subprocess.CompletedProcess:
    env = {**subprocess_env(), "PYTHONHASHSEED": seed}
    return subprocess.run([sys.executable, EXP_PY], cwd=root, capture_output=True, text=True, env=env, timeout=60)


MIXED = overrides(
    "+7: x\n'+7': y\n'+null': z\nlr: 0.2\n",
    "'+1': text\n'+tags': !!set {a, b, c, d, e, f, g}\n",
)


def test_mixed_type_keys_run_once_and_keep_their_identity_across_processes(tmp_path):
    """Keys YAML reads as numbers beside text keys (allowed with `+` quoted, or relaxed keys): the
    override hash must not crash, must tell `7` from `'7'`, and a set must hash the same in every
    process (Python orders sets by a per-process hash seed)."""
    root = make_project(
        tmp_path / "proj",
        runs=MIXED,
        settings=settings("config: {strict_keys: false}\n"),
        config=BASE_CONFIG + "steps: {1: a}\n",
    )
    first = run_with_hash_seed(root, "1")
    assert first.returncode == 0, first.stderr
    again = run_with_hash_seed(root, "2")
    assert again.returncode == 0, again.stderr
    assert "skip exp001/run001: done" in again.stderr and "skip exp001/run002: done" in again.stderr
    metas = [json.loads((root / f"data/output/exp/exp001/{run}/meta.json").read_text()) for run in ("run001", "run002")]
    assert len({meta["override_hash"] for meta in metas}) == 2


@pytest.mark.parametrize(
    "runs, dry",
    [
        (overrides("7: x\nlr: 0.2\n"), "+ 7: x"),
        (overrides("null: x\nlr: 0.2\n"), "+ null: x"),
        (overrides("2020-01-01: e\nlr: 0.2\n"), "+ 2020-01-01: e"),
        (overrides("'7': y\n7: x\n"), "+ '7': y"),
        (overrides("true: x\n'1': y\n"), "+ true: x"),
    ],
    ids=["int", "null", "date", "int-and-text", "bool-and-text"],
)
def test_mixed_type_keys_with_relaxed_keys_dry_run(tmp_path, runs, dry):
    root = make_project(tmp_path / "proj", runs=runs, settings=settings("config: {strict_keys: false}\n"))
    done = run_exp(root, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert dry in done.stdout, done.stdout


def test_runs_lists_int_and_text_keys_as_two_columns(tmp_path):
    """`1: x` beside `'1': y` are two keys: `kagexp runs` shows each with its own value."""
    config = BASE_CONFIG + "classes:\n  1: one\n  '1': text one\n  a.b: dotted\n  a: {b: nested}\n"
    runs = overrides("classes:\n  1: uno\n", "classes:\n  '1': texto\n", "classes:\n  a.b: punto\n")
    root = make_project(tmp_path / "proj", runs=runs, config=config)
    assert run_exp(root).returncode == 0
    done = kagexp(root, "runs", "--all-keys", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = {row["run"]: row for row in json.loads(done.stdout)}
    assert rows["exp001/run001"]["classes.1"] == "uno" and rows["exp001/run001"]["classes.'1'"] == "text one"
    assert rows["exp001/run002"]["classes.1"] == "one" and rows["exp001/run002"]["classes.'1'"] == "texto"
    assert rows["exp001/run003"]["classes.'a.b'"] == "punto" and rows["exp001/run003"]["classes.a.b"] == "nested"
    diff = kagexp(root, "diff", "exp001/run001", "exp001/run002")
    assert "~ classes.1: uno -> one" in diff.stdout and "~ classes.'1': text one -> texto" in diff.stdout


@pytest.mark.parametrize(
    "text",
    [
        "metric:\n",
        "wandb:\n  # enabled: true\n",
        "new:\nconfig:\nslurm:\n",
        "",
    ],
    ids=["metric", "wandb-commented-out", "three-sections", "empty-file"],
)
def test_an_empty_section_takes_its_defaults(tmp_path, text):
    root = make_project(tmp_path / "proj", settings=text)
    done = run_exp(root, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert kagexp(root, "ls").returncode == 0


def test_the_settings_schema_covers_every_default_and_accepts_the_defaults():
    """A key added to DEFAULT_SETTINGS needs its entry in the schema (else kagexp.yml could not be
    checked); and the defaults, written out as a kagexp.yml, must pass their own schema."""

    def shape(tree: dict) -> dict:
        return {key: shape(value) if isinstance(value, dict) else None for key, value in tree.items()}

    assert shape(SCHEMA) == shape(DEFAULT_SETTINGS)
    assert check_settings(copy.deepcopy(DEFAULT_SETTINGS), DEFAULT_SETTINGS) == []


def test_keys_json_has_no_type_for_are_written_and_listed(tmp_path):
    """A date as a key inside a list of mappings: the summary is still written (as text), the run
    is `done`, and the listing shows it."""
    config = BASE_CONFIG + "schedule: [{2020-01-01: warmup}, {1: main}]\nholidays: [2020-12-25]\n"
    root = make_project(tmp_path / "proj", runs=overrides(depth(2)), config=config)
    done = run_exp(root)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads((root / "data/output/exp/exp001/run001/summary.json").read_text())
    assert summary["status"] == "done" and summary["config"]["schedule"] == [{"2020-01-01": "warmup"}, {"1": "main"}]
    listed = kagexp(root, "runs", "--all-keys")
    assert listed.returncode == 0 and '[{"2020-01-01": "warmup"}, {"1": "main"}]' in listed.stdout, listed.stderr


@pytest.mark.parametrize(
    "config",
    [
        BASE_CONFIG + "defaults: &d {a: 1, b: [1, 2, 3]}\nfirst: *d\nsecond: {<<: *d, a: 2}\n",
        BASE_CONFIG + bomb(3),  # 9**3 nodes: an alias-heavy file that is still small
    ],
    ids=["anchors-reused", "three-levels"],
)
def test_aliases_within_bounds_load(tmp_path, config):
    root = make_project(tmp_path / "proj", config=config, runs=overrides(depth(2)))
    done = run_exp(root)
    assert done.returncode == 0, done.stderr


def test_a_100_character_run_name_is_allowed(tmp_path):
    name = "r" * 100
    root = make_project(tmp_path / "proj", runs=named({name: "lr: 0.1\n"}))
    done = run_exp(root)
    assert done.returncode == 0, done.stderr
    assert (root / "data/output/exp/exp001" / name / "meta.json").is_file()


@pytest.mark.parametrize("gpus", ["0", "0,1", "0,0,1,1", UUID, f"{UUID},1", "MIG-GPU-8f3c2a1e-1234/1/0"])
def test_gpu_ids_and_uuids_are_accepted(tmp_path, gpus):
    root = make_project(tmp_path / "proj")
    done = run_exp(root, "--gpus", gpus, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"one GPU each of {gpus}" in done.stdout


@pytest.fixture(scope="module")
def timed_project(tmp_path_factory) -> tuple[Path, str]:
    root = make_project(tmp_path_factory.mktemp("where") / "proj", runs=RUNS)
    assert run_exp(root).returncode == 0
    started = json.loads((root / "data/output/exp/exp001/run001/meta.json").read_text())["started"]
    return root, started[:10]


@pytest.mark.parametrize(
    "where, matches",
    [
        ("started>2020-01-01", 3),
        ("started<2020-01-01", 0),
        ("started>={day}", 3),
        ("started>{day}", 0),
        ("started=={day}", 3),
        ("started!={day}", 0),
        ("started<2999-01-01T00:00:00Z", 3),
        ("started>2020-01-01T00:00:00", 3),
    ],
)
def test_where_compares_times_with_dates(timed_project, where, matches):
    root, day = timed_project
    done = kagexp(root, "runs", "--where", where.format(day=day), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout or "[]")) == matches, done.stdout + done.stderr


@pytest.mark.parametrize(
    "where, message",
    [
        ("started>2020", "`started` is a string in the runs"),
        ("cv>abc", "`cv` is a float in the runs (0.1), and `>` cannot compare it with a string (abc)"),
        ("model.name<3", "`model.name` is a string in the runs (tree), and `<` cannot compare it with an int (3)"),
    ],
)
def test_where_says_why_nothing_can_match(timed_project, where, message):
    root, _ = timed_project
    done = kagexp(root, "runs", "--where", where)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("kagexp: error: --where: ") and message in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_thousands_of_problems_are_reported_in_linear_time(tmp_path):
    """4,000 unknown keys once took 47 s to report (every problem composed the whole text again);
    8,000 must take about twice as long as 4,000, not four times, and stay well under seconds."""
    timings = []
    for count in (4000, 8000):
        root = make_project(tmp_path / f"p{count}", runs=overrides(unknown_keys(count)))
        start = time.perf_counter()
        done = run_exp(root, "--dry-run")
        timings.append(time.perf_counter() - start)
        assert done.returncode == 2 and f"… and {count - 20} more" in done.stderr
    assert timings[1] < 3 * timings[0] + 1.0, timings
    assert timings[1] < 20, timings
