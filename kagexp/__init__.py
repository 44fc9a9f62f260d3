"""kagexp: Kaggle-style experiments, one self-contained folder each, runs from YAML overrides."""

from __future__ import annotations

__version__ = "0.1.0"

from kagexp.config import Config  # noqa: E402
from kagexp.errors import KagexpError  # noqa: E402
from kagexp.experiment import Experiment  # noqa: E402
from kagexp.run import RunContext  # noqa: E402
from kagexp.script import main  # noqa: E402

__all__ = ["Config", "Experiment", "KagexpError", "RunContext", "main", "__version__"]
