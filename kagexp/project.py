"""The user's project: its root, `kagexp.yml`, and the names and numbers of experiments and runs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from kagexp import config
from kagexp.errors import ConfigError, InvalidNameError, NotFoundError
from kagexp.settings import check_settings

SETTINGS_FILE = "kagexp.yml"
LINEAGE_FILE = "lineage.yml"

DEFAULT_SETTINGS: dict = {
    "name": None,
    "competition": None,
    "metric": {"name": None, "direction": "max"},
    "output_dir": "data/output",
    "input_dir": "data/input",
    "inputs": [],  # glob patterns under input_dir whose files each run fingerprints (kagexp.fingerprints)
    "seed": 42,
    "config": {"strict_keys": True, "strict_types": True},
    "new": {"exclude": []},
    "wandb": {"enabled": False, "project": None, "entity": None, "mode": None, "tags": [], "job_type": "train"},
    "git": {"require_clean": False, "branch": None, "auto_commit": False},  # guards, see kagexp.guards
    "kaggle": {"dataset": None, "license": "CC0-1.0"},  # what `kagexp pack` uploads to (kagexp.pack)
    "slurm": {
        "cluster": "slurm",  # `local`: submitit's local executor, the same code path on this machine
        "partition": None,
        "time_min": 60,
        "gpus_per_node": 0,
        "cpus_per_task": 1,
        "mem_gb": None,
        "array_parallelism": None,  # at most this many runs at once (`--jobs N` says it too)
        "setup": [],  # shell lines run before each job, e.g. `module load cuda`
        "additional": None,  # any other sbatch option, e.g. {account: my-lab, qos: high}
    },
}

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_NAME = 100  # characters; a name is a folder name, and paths have limits (ENAMETOOLONG)


@dataclass
class Project:
    """A project root and its settings (defaults merged with `kagexp.yml`)."""

    root: Path
    settings: dict = field(default_factory=lambda: config.merge(DEFAULT_SETTINGS, {}))

    @property
    def exp_root(self) -> Path:
        return self.root / "exp"

    @property
    def output_root(self) -> Path:
        return self.inside(self.settings["output_dir"], "output_dir") / "exp"

    @property
    def input_dir(self) -> Path:
        return self.inside(self.settings["input_dir"], "input_dir")

    def inside(self, relative: str, what: str) -> Path:
        """`root/relative`, refusing paths that would leave the project."""
        path = Path(relative)
        if path.is_absolute() or ".." in path.parts:
            raise ConfigError(
                f"{self.root / SETTINGS_FILE}: `{what}` must be a path inside the project, not {relative!r}"
            )
        return self.root / path

    def exp_dir(self, name: str) -> Path:
        return self.exp_root / check_name(name, "experiment")

    def output_dir(self, exp: str) -> Path:
        return self.output_root / check_name(exp, "experiment")

    def lineage(self, exp: str) -> dict:
        """The parent and note `kagexp new` recorded in `exp/EXP/lineage.yml` (empty when none)."""
        path = self.exp_dir(exp) / LINEAGE_FILE
        if not path.is_file():
            return {}
        try:
            return config.read_mapping(path)
        except ConfigError:
            return {}

    def find_exp(self, text: str) -> str:
        """An experiment as the user names it: `exp033`, `33`, `exp33` → the folder that exists
        with that name or number (`exp0033` too), else the canonical `exp033`."""
        name = exp_name(text)  # also refuses names that would leave exp/
        literal = text.strip().rstrip("/")
        for candidate in (literal, name):
            if (self.exp_root / candidate).is_dir():
                return candidate
        match = re.fullmatch(r"exp(\d+)", name)
        if match:
            for existing in self.experiments():
                number = re.fullmatch(r"exp(\d+)", existing)
                if number and int(number.group(1)) == int(match.group(1)):
                    return existing
        return name

    def experiments(self) -> list[str]:
        """Experiment folder names, in number order (`exp2` before `exp10`)."""
        if not self.exp_root.is_dir():
            return []
        names = [p.name for p in self.exp_root.iterdir() if p.is_dir() and _NAME_RE.fullmatch(p.name)]
        return sorted(names, key=natural)


def natural(name: str) -> tuple:
    """Sort key: `exp2` before `exp10`."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def check_name(name: str, what: str) -> str:
    """Experiment and run names become folder names: no separators, `..`, spaces, line breaks or
    leading dots, and at most `MAX_NAME` characters; checked before any folder is made."""
    if isinstance(name, str) and ".." in name:
        raise InvalidNameError(f"invalid {what} name {name!r}: `..` is not allowed in names")
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise InvalidNameError(f"invalid {what} name {name[:40]!r}… ({len(name)} characters): at most {MAX_NAME}")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"invalid {what} name {name!r}: use letters, digits, `_`, `-` and `.`, starting with a letter or digit"
        )
    return name


def unknown(name: str, known: list[str], what: str = "experiments") -> str:
    """` (did you mean …?) (experiments: …, exp040, exp041)`: the tail of a not-found message."""
    shown = (("…, " if len(known) > 8 else "") + ", ".join(known[-8:])) if known else "none yet"
    numbered = re.fullmatch(r"(exp|run)\d+", name)  # exp099 is not a typo of exp002: the list says enough
    return f"{'' if numbered else config.did_you_mean(name, known)} ({what}: {shown})"


def exp_name(text: str) -> str:
    """`33` and `exp33` mean `exp033`; other names are taken as written."""
    text = text.strip().rstrip("/")
    match = re.fullmatch(r"(?:exp)?(\d+)", text)
    return f"exp{int(match.group(1)):03d}" if match else check_name(text, "experiment")


def run_name(text: str) -> str:
    """`2` and `run2` mean `run002`; other names are taken as written."""
    text = text.strip()
    match = re.fullmatch(r"(?:run)?(\d+)", text)
    return f"run{int(match.group(1)):03d}" if match else check_name(text, "run")


def find_root(start: Path) -> Path:
    """The nearest folder holding `kagexp.yml`, else the nearest one holding `exp/`: above `start`
    as written (made absolute, links kept), so that a linked experiment belongs to this project."""
    start = Path(os.path.abspath(start))
    candidates = [start, *start.parents]
    for folder in candidates:
        if os.path.lexists(folder / SETTINGS_FILE):  # a folder or a broken link too: load_settings says so
            return folder
    for folder in candidates:
        if (folder / "exp").is_dir():
            return folder
    raise NotFoundError(f"no kagexp project around {start}: no `{SETTINGS_FILE}` and no `exp/` folder found above it")


def load_project(start: Path | None = None) -> Project:
    root = find_root(start or Path.cwd())
    return Project(root, load_settings(root))


def load_settings(root: Path) -> dict:
    """Defaults merged with `kagexp.yml`, which is checked against the schema of `kagexp.settings`:
    every problem is one line naming the file, the line and the key."""
    path = root / SETTINGS_FILE
    if not os.path.lexists(path):
        return config.merge(DEFAULT_SETTINGS, {})
    text = config.read_text(path, str(path))
    user = config.parse_mapping(text, str(path))
    problems = check_settings(user, DEFAULT_SETTINGS)
    if problems:
        raise ConfigError.of(config.locate(problems, text, str(path)))
    return config.merge(DEFAULT_SETTINGS, _without_empty_sections(user, DEFAULT_SETTINGS))


def _without_empty_sections(user: dict, defaults: dict) -> dict:
    """`wandb:` with nothing under it (null to YAML) means the section's defaults; `user` is valid."""
    out = {}
    for key, value in user.items():
        default = defaults.get(key)
        if isinstance(default, dict):
            if value is None:
                continue
            value = _without_empty_sections(value, default)
        out[key] = value
    return out
