"""`infer(cfg, ctx)`: an experiment predicting the test set from what one of its runs saved.

The context reads the run's files (read-only: on Kaggle they are a mounted dataset) and writes the
submission into a working folder, the way `run` writes into the run folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kagexp.config import Config
from kagexp.errors import InvalidNameError, NotFoundError
from kagexp.provenance import seed_everything
from kagexp.run import saved_artifact, write_submission
from kagexp.runfolder import RunFolder
from kagexp.scripts import import_script, snapshot_imports


@dataclass
class InferenceContext:
    """What `infer(cfg, ctx)` gets: the run's saved files, the competition data, a working folder."""

    exp: str
    name: str
    run_dir: Path  # the run's folder (packed or in the project), only read
    input_dir: Path  # the competition data
    working_dir: Path  # where the submission and anything else written goes
    seed: int | None = None

    def __repr__(self) -> str:
        return f"InferenceContext({self.exp}/{self.name}, working_dir={str(self.working_dir)!r})"

    def artifact(self, name: str) -> Path:
        """A file the run saved (a model, an encoder); an error naming the run and close matches."""
        return saved_artifact(RunFolder(self.run_dir), f"{self.exp}/{self.name}", name)

    def path(self, name: str) -> Path:
        """A path in the working folder (its parent folders are created); it must stay inside."""
        root = self.working_dir.resolve()
        path = (self.working_dir / name).resolve()
        if not path.is_relative_to(root) or path == root:
            raise InvalidNameError(f"{self.exp}/{self.name}: path {name!r} must stay inside {self.working_dir}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def save_submission(self, obj: Any, name: str = "submission.csv") -> Path:
        """Save a DataFrame, a file or rows as CSV in the working folder, as `run` does in its folder."""
        return write_submission(self.path(name), obj)

    def log(self, metrics: dict, step: int | None = None) -> None:
        """Shared code may log while inferring; nothing is recorded (the run is done)."""


@dataclass(frozen=True)
class Inferred:
    run: str
    submission: Path | None
    seconds: float


def infer_run(run: str, run_dir: Path, code_dir: Path, input_dir: Path, working_dir: Path) -> Inferred:
    """Import the run's snapshot of exp.py (its main line does not run) and call its `infer` with the
    recorded config, as the run's `run` was called; the snapshot's own modules are forgotten after,
    so that the next run inferred in this process (a blend's next member) imports its own."""
    folder = RunFolder(run_dir)
    cfg = Config(folder.merged_config())
    meta = folder.meta() or {}
    exp, name = run.split("/")
    working_dir.mkdir(parents=True, exist_ok=True)
    ctx = InferenceContext(exp, name, run_dir, input_dir, working_dir, meta.get("seed"))
    if not (code_dir / "exp.py").is_file():
        raise NotFoundError(f"{run}: its code snapshot has no exp.py ({code_dir / 'exp.py'}); pack the run again")
    with snapshot_imports(code_dir):
        function = _infer_function(run, code_dir / "exp.py")
        if isinstance(ctx.seed, int):
            seed_everything(ctx.seed)
        started = time.monotonic()
        function(cfg, ctx)
    submission = working_dir / "submission.csv"
    return Inferred(run, submission if submission.is_file() else None, time.monotonic() - started)


def _infer_function(run: str, script: Path) -> Any:
    module = import_script(script)
    function = getattr(module, "infer", None)
    if not callable(function):
        raise NotFoundError(
            f"{run}: exp.py defines no infer(cfg, ctx); add one that loads ctx.artifact(...) and calls "
            "ctx.save_submission(...)"
        )
    return function
