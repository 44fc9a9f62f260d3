"""What each key of `kagexp.yml` takes, and the check that says so with the key's line.

The defaults (`kagexp.project.DEFAULT_SETTINGS`) say which keys exist; this schema says what
values they take, because a default alone cannot: `name: null` is the default, yet `name: 5`
is a mistake, and `output_dir: exp/exp001` is a string like the default, yet it would put run
folders inside an experiment (to be copied into its own code snapshots). A section left empty
(`wandb:` with every key commented out, which YAML reads as null) takes its defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from kagexp import config
from kagexp.config import Problem


@dataclass(frozen=True)
class Field:
    """One key's values: `accepts` says yes or no, `what` says what it takes in a message."""

    what: str
    accepts: Callable[[Any], bool]
    null: bool = False

    def problem(self, dotted: str, value: Any) -> str | None:
        if (value is None and self.null) or (value is not None and self.accepts(value)):
            return None
        message = f"`{dotted}` must be {self.what}{' or null' if self.null else ''}, not {_shown(value)}"
        if not isinstance(value, (dict, list)) and value is not None and self.accepts(config.yaml_text(value)):
            message += f"; quote it to make it text: '{config.yaml_text(value)}'"
        return message


def _shown(value: Any) -> str:
    """`an int (5)`, `null`, or for a list the first item that is not text: `a list holding an int (1)`."""
    if value is None:
        return "null"
    if isinstance(value, list):
        odd = [item for item in value if not isinstance(item, str)]
        return f"a list holding {_shown(odd[0])}" if odd else "a list"
    shown = repr(value) if isinstance(value, str) else config.yaml_text(value)
    return f"{config.kind(value)} ({shown:.60})"


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _globs_inside(value: Any) -> bool:
    """Patterns matched under the input folder must stay there: not empty, not absolute, no `..`."""
    return _texts(value) and all(
        p and "\0" not in p and not PurePath(p).is_absolute() and ".." not in PurePath(p).parts for p in value
    )


def _dataset_id(value: Any) -> bool:
    return isinstance(value, str) and DATASET_ID.fullmatch(value) is not None


DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]{4,48}[a-z0-9]")  # Kaggle: slugs of 6 to 50

TEXT = Field("text", _text)
TEXT_OR_NULL = Field("text", _text, null=True)
BOOL = Field("true or false", lambda value: isinstance(value, bool))
INT = Field("an int", _int)
TEXTS = Field("a list of text", _texts)
FOLDER = Field("a folder inside the project, such as data/output", _text)

SCHEMA: dict[str, Any] = {
    "name": TEXT_OR_NULL,
    "competition": Field("a Kaggle competition slug", _text, null=True),
    "metric": {"name": TEXT_OR_NULL, "direction": Field("`max` or `min`", lambda value: value in ("max", "min"))},
    "output_dir": FOLDER,
    "input_dir": FOLDER,
    "inputs": Field(
        "a list of glob patterns inside input_dir (relative, no `..`), such as ['train.csv', 'images/**/*.png']",
        _globs_inside,
    ),
    "seed": INT,
    "config": {"strict_keys": BOOL, "strict_types": BOOL},
    "new": {"exclude": Field("a list of glob patterns, such as ['*.ckpt']", _texts)},
    "wandb": {
        "enabled": BOOL,
        "project": TEXT_OR_NULL,
        "entity": TEXT_OR_NULL,
        "mode": TEXT_OR_NULL,
        "tags": TEXTS,
        "job_type": TEXT,
    },
    "git": {"require_clean": BOOL, "branch": TEXT_OR_NULL, "auto_commit": BOOL},
    "kaggle": {
        "dataset": Field("a Kaggle dataset id OWNER/SLUG, such as alice/titanic-models", _dataset_id, null=True),
        "license": TEXT,
    },
    "slurm": {  # types only: the Slurm launcher checks the values (clusters, least numbers)
        "cluster": TEXT,
        "partition": TEXT_OR_NULL,
        "time_min": INT,
        "gpus_per_node": INT,
        "cpus_per_task": INT,
        "mem_gb": Field("a number", _number, null=True),
        "array_parallelism": Field("an int", _int, null=True),
        "setup": Field("a list of shell lines", _texts),
        "additional": Field("a mapping of sbatch options", lambda value: isinstance(value, dict), null=True),
    },
}


def check_settings(user: dict, defaults: dict) -> list[Problem]:
    """Every problem of a parsed `kagexp.yml`: unknown keys (with a suggestion), then values of
    the wrong type, then folders that leave the project or would hold run folders where they
    must not be."""
    problems = config.check_override(
        defaults, user, strict_types=False, base_name="kagexp's defaults", extensible=False
    )
    problems += _check_values(user, SCHEMA, defaults, ())
    for key in ("output_dir", "input_dir"):
        message = _folder_problem(key, user.get(key))
        if message:
            problems.append(Problem((key,), message))
    return problems


def _check_values(user: dict, schema: dict, defaults: dict, path: tuple) -> list[Problem]:
    """Values against the schema, which has an entry for every default (a test holds it to that)."""
    problems = []
    for key, value in user.items():
        if not isinstance(key, str) or key not in defaults:
            continue  # unknown keys are reported by check_override
        here, dotted, spec = (*path, key), ".".join((*path, key)), schema[key]
        if isinstance(spec, dict):
            if isinstance(value, dict):
                problems += _check_values(value, spec, defaults[key], here)
            elif value is not None:
                problems.append(Problem(here, f"`{dotted}` must be a mapping of settings, not {config.kind(value)}"))
            continue
        message = spec.problem(dotted, value)
        if message:
            problems.append(Problem(here, message))
    return problems


def _folder_problem(key: str, value: Any) -> str | None:
    """`output_dir` and `input_dir` stay inside the project; run folders go neither into the project
    folder itself (among its files) nor under `exp/` (copied along with the experiments' code)."""
    if not isinstance(value, str):
        return None
    path = PurePath(value)
    if "\0" in value or path.is_absolute() or ".." in path.parts:
        return f"`{key}` must be a folder inside the project, not {value!r}; use a symbolic link for a folder elsewhere"
    if key != "output_dir":
        return None
    if not path.parts:
        return f"`output_dir` is {value!r}, the project folder itself; run folders need their own, such as data/output"
    if path.parts[0].casefold() == "exp":
        return (
            f"`output_dir` is {value!r}, inside exp/: run folders would be copied with the experiments' code; "
            "use a folder such as data/output"
        )
    return None
