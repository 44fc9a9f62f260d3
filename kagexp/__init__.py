"""kagexp: Kaggle-style experiments, one self-contained folder each, runs from YAML overrides.

The public names are loaded on first use, so `import kagexp` and `kagexp --help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kagexp.version import __version__

_PUBLIC = {
    "main": "kagexp.script",
    "Experiment": "kagexp.experiment",
    "RunContext": "kagexp.run",
    "Config": "kagexp.config",
    "KagexpError": "kagexp.errors",
    "load_runs": "kagexp.frames",
    "load_history": "kagexp.frames",
    "load_oof": "kagexp.predictions",
    "load_test": "kagexp.predictions",
    "grid": "kagexp.sweeps",
    "zipped": "kagexp.sweeps",
}

__all__ = [
    "Config",
    "Experiment",
    "KagexpError",
    "RunContext",
    "grid",
    "load_history",
    "load_oof",
    "load_runs",
    "load_test",
    "main",
    "zipped",
    "__version__",
]

if TYPE_CHECKING:
    from kagexp.config import Config
    from kagexp.errors import KagexpError
    from kagexp.experiment import Experiment
    from kagexp.frames import load_history, load_runs
    from kagexp.predictions import load_oof, load_test
    from kagexp.run import RunContext
    from kagexp.script import main
    from kagexp.sweeps import grid, zipped


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kagexp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
