"""`kagexp doctor [EXP]`: a preflight before a long job, one line per check, writing nothing.

It imports the experiment's exp.py in a subprocess (what a run would import, without running
it), validates every override against config.yml, looks for the input files the configs name,
and checks the output folder, the GPU, the trackers and the git guards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kagexp import config
from kagexp.errors import KagexpError
from kagexp.project import Project, unknown

DATA_SUFFIXES = frozenset(
    {".csv", ".tsv", ".parquet", ".feather", ".pkl", ".pickle", ".npy", ".npz", ".json", ".jsonl", ".txt"}
    | {".zip", ".gz", ".h5", ".hdf5", ".pt", ".pth", ".bin", ".arrow", ".db", ".sqlite"}
    | {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".wav", ".mp3"}
)
LOW_DISK = 2**30  # warn below 1 GiB free
SHOWN = 5

# What the subprocess runs: import exp.py as a module (not __main__), print RUNS as JSON.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[2])
from kagexp.scripts import import_script
from pathlib import Path
module = import_script(Path(sys.argv[1]))
print(json.dumps(getattr(module, "RUNS", None)))
"""


@dataclass(frozen=True)
class Check:
    """One line of the report: `ok`, `warn` or `fail`, what was checked, and what was found."""

    level: str
    name: str
    detail: str


def doctor(project: Project, exp: str | None = None) -> list[Check]:
    """Every check for one experiment (default: the highest numbered)."""
    name = _experiment(project, exp)
    exp_dir = project.exp_dir(name)
    checks, runs = _imports(project, exp_dir)
    specs = None
    if runs is not None:
        check, specs = _configs(project, exp_dir, runs)
        checks.append(check)
    configs = [spec.config for spec in specs or []]
    checks += [_inputs(project, configs), _output(project, name), _gpu(project, configs)]
    checks += [*_tools(project), _guards(project, exp_dir)]
    return checks


def _experiment(project: Project, exp: str | None) -> str:
    existing = project.experiments()
    if exp is None:
        if not existing:
            raise KagexpError("no experiment in exp/ to check; create one with `kagexp new`")
        return existing[-1]
    name = project.find_exp(exp)
    if name not in existing:
        raise KagexpError(f"no experiment exp/{name}{unknown(name, existing)}")
    return name


def _imports(project: Project, exp_dir: Path) -> tuple[list[Check], Any]:
    script = exp_dir / "exp.py"
    shown = script.relative_to(project.root).as_posix()
    if not script.is_file():
        return [Check("fail", "imports", f"{shown}: missing")], None
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(script), str(exp_dir)],
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        return [Check("fail", "imports", f"{shown}: still importing after 10 minutes")], None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return [Check("fail", "imports", f"{shown}: {lines[-1] if lines else 'exit ' + str(done.returncode)}")], None
    seconds = time.monotonic() - started
    try:
        runs = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [Check("ok", "imports", f"{shown} imports ({seconds:.1f} s); its RUNS cannot be shown as JSON")], None
    return [Check("ok", "imports", f"{shown} imports ({seconds:.1f} s)")], runs


def _configs(project: Project, exp_dir: Path, runs: Any) -> tuple[Check, list | None]:
    from kagexp.experiment import Experiment

    if runs is None:
        return Check("fail", "config", "exp.py has no RUNS"), None
    try:
        specs = Experiment(exp_dir, runs, project=project, script=exp_dir / "exp.py").specs()
    except KagexpError as exc:
        lines = str(exc).splitlines()
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        return Check("fail", "config", lines[0] + more), None
    return Check("ok", "config", f"config.yml and {len(specs)} override(s) are valid"), specs


def _inputs(project: Project, configs: list[dict]) -> Check:
    """Config values that name files (a data suffix, or a path under the input folder) must exist."""
    prefix = PurePosixPath(project.settings["input_dir"])
    named, missing = set(), []
    for merged in configs:
        for value in config.flatten(merged).values():
            if not isinstance(value, str) or "://" in value:
                continue
            path = PurePosixPath(value)
            if path.suffix.lower() not in DATA_SUFFIXES and path.parts[: len(prefix.parts)] != prefix.parts:
                continue
            if value in named:
                continue
            named.add(value)
            if not any(p.exists() for p in (project.root / value, project.input_dir / value)):
                missing.append(value)
    if missing:
        shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
        where = project.input_dir.relative_to(project.root).as_posix()
        return Check("fail", "inputs", f"not found (in {where}/ or the project): {shown}")
    return Check(
        "ok", "inputs", f"{len(named)} input file(s) named by the configs exist" if named else "no input files named"
    )


def _output(project: Project, exp: str) -> Check:
    folder = project.output_dir(exp)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    shown = folder.relative_to(project.root).as_posix()
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Check("fail", "output", f"{shown}: cannot be written ({existing} is not a writable folder)")
    free = shutil.disk_usage(existing).free
    level = "warn" if free < LOW_DISK else "ok"
    return Check(level, "output", f"{shown} is writable; {free / 2**30:.1f} GiB free")


def _gpu(project: Project, configs: list[dict]) -> Check:
    from kagexp.provenance import gpu_names

    asked = project.settings["slurm"]["gpus_per_node"] > 0 or any(_asks_for_gpu(c) for c in configs)
    if not asked:
        return Check("ok", "gpu", "not asked for by the configs")
    names = gpu_names()
    if not names:
        return Check("fail", "gpu", "the configs ask for a GPU (cuda), but nvidia-smi sees none")
    return Check("ok", "gpu", ", ".join(names))


def _asks_for_gpu(merged: dict) -> bool:
    for key, value in config.flatten(merged).items():
        if isinstance(value, str) and value.lower().startswith(("cuda", "gpu")):
            return True
        if "gpu" in key.lower() and value not in (None, False, 0, "", []):
            return True
    return False


def _tools(project: Project) -> list[Check]:
    from kagexp.provenance import importable

    checks = []
    if project.settings["wandb"]["enabled"]:
        ok = importable("wandb")
        checks.append(
            Check(
                "ok" if ok else "fail",
                "wandb",
                "installed" if ok else "enabled but not installed: pip install 'kagexp[wandb]'",
            )
        )
    if project.settings.get("competition"):
        found = shutil.which("kaggle")
        detail = (
            f"kaggle CLI at {found}"
            if found
            else "the kaggle CLI is not installed (kagexp submit needs it): pip install kaggle"
        )
        checks.append(Check("ok" if found else "warn", "kaggle", detail))
    return checks


def _guards(project: Project, exp_dir: Path) -> Check:
    from kagexp import guards

    problems = guards.preview(project.root, exp_dir, project.settings["git"])
    if problems is None:
        return Check("ok", "git", "no guards set")
    return Check("fail", "git", problems[0]) if problems else Check("ok", "git", "the guards pass")
