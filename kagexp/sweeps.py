"""Sweeps as RUNS entries: `kagexp.grid` crosses values, `kagexp.zipped` pairs them.

Each returns override strings (YAML, dotted keys expanded into nested mappings), so a sweep is
written where runs are written and can be added to hand-written entries:
`RUNS = ["model: {name: lgbm}"] + kagexp.grid({"model.params.lr": [1e-3, 1e-2]})`.
"""

from __future__ import annotations

import itertools
from typing import Any

from kagexp.config import dump_yaml, unflatten
from kagexp.errors import ConfigError


def grid(axes: dict[str, list]) -> list[str]:
    """One override per combination of the values, the last key varying fastest."""
    keys, values = _axes(axes, "grid")
    return [_override(keys, combination) for combination in itertools.product(*values)]


def zipped(axes: dict[str, list]) -> list[str]:
    """One override per position: the first values together, then the second…; lists of one length."""
    keys, values = _axes(axes, "zipped")
    lengths = {key: len(v) for key, v in zip(keys, values)}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{key}: {n}" for key, n in lengths.items())
        raise ConfigError(f"kagexp.zipped: every key needs as many values as the others ({shown})")
    return [_override(keys, position) for position in zip(*values)]


def _axes(axes: dict[str, list], name: str) -> tuple[list[str], list[list[Any]]]:
    if not isinstance(axes, dict) or not axes:
        raise ConfigError(f"kagexp.{name} takes a dict of dotted keys to lists of values, e.g. {{'lr': [0.1, 0.01]}}")
    for key, values in axes.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"kagexp.{name}: {key!r} is not a dotted key such as model.params.lr")
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"kagexp.{name}: `{key}` needs a non-empty list of values, not {values!r}")
    return list(axes), [list(v) for v in axes.values()]


def _override(keys: list[str], values: tuple) -> str:
    try:
        return dump_yaml(unflatten(dict(zip(keys, values))))
    except ConfigError as exc:
        raise ConfigError(f"kagexp.grid/zipped: {exc}") from None
