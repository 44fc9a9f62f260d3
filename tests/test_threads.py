"""Runs under `--jobs N` get their share of the cores for OpenMP and BLAS, as seen from inside the runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import build_tree, meta, out_dir, subprocess_env

import kagexp
from kagexp.threads import VARIABLES

# scikit-learn at the top of exp.py: its OpenMP runtime and numpy's BLAS are loaded in the parent,
# before any run is forked, so the variables alone would come too late for them
EXP_PY = """\
import json
import os

import sklearn.ensemble  # noqa: F401

import kagexp

RUNS = ["x: 1", "x: 2", "x: 3"]
VARIABLES = {variables!r}


def run(cfg, ctx):
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_info

    seen = {{
        "variables": {{name: os.environ.get(name) for name in VARIABLES}},
        "histgradientboosting": _openmp_effective_n_threads(),
        "blas": sorted({{pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}}),
    }}
    ctx.path("threads.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    kagexp.main(run, RUNS)
"""


def share(jobs: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // jobs)


def make(root):
    build_tree(
        root,
        {
            "kagexp.yml": "name: threads\n",
            "exp/exp001/config.yml": "x: 0\n",
            "exp/exp001/exp.py": EXP_PY.format(variables=VARIABLES),
        },
    )
    return root


def run_exp(root, *args: str, **environ: str) -> subprocess.CompletedProcess:
    """exp.py in a process whose thread variables are only those given."""
    env = {k: v for k, v in subprocess_env().items() if k not in VARIABLES}
    command = [sys.executable, "exp/exp001/exp.py", *args]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, env={**env, **environ})


def seen_in(root, run: str) -> dict:
    return json.loads((out_dir(root) / run / "threads.json").read_text())


def test_runs_under_jobs_2_see_their_share_even_of_libraries_loaded_before_the_fork(tmp_path):
    root = make(tmp_path)
    done = run_exp(root, "-j", "2")
    assert done.returncode == 0, done.stderr
    expected = {name: str(share(2)) for name in VARIABLES}
    for run in ("run001", "run002", "run003"):
        seen = seen_in(root, run)
        assert seen["variables"] == expected
        assert seen["histgradientboosting"] == share(2)
        assert seen["blas"] == [share(2)]
        assert meta(root, run)["threads"] == expected


def test_a_variable_the_user_set_is_left_as_set(tmp_path):
    root = make(tmp_path)
    done = run_exp(root, "--jobs", "2", OMP_NUM_THREADS="3")
    assert done.returncode == 0, done.stderr
    expected = {name: "3" if name == "OMP_NUM_THREADS" else str(share(2)) for name in VARIABLES}
    assert seen_in(root, "run001")["variables"] == expected
    assert meta(root, "run001")["threads"] == expected


def test_fewer_runs_than_jobs_share_the_cores_among_themselves(tmp_path):
    root = make(tmp_path)
    done = run_exp(root, "--jobs", "4", "--only", "run001")
    assert done.returncode == 0, done.stderr
    assert seen_in(root, "run001")["variables"] == {name: str(share(1)) for name in VARIABLES}


def test_inline_runs_keep_every_thread_and_a_notebook_gets_its_variables_back(tmp_path):
    root = make(tmp_path)
    done = run_exp(root, "--only", "run001")
    assert done.returncode == 0, done.stderr
    assert seen_in(root, "run001")["variables"] == dict.fromkeys(VARIABLES)
    assert "threads" not in meta(root, "run001")

    before = {name: os.environ.get(name) for name in VARIABLES}
    fn = lambda cfg, ctx: ctx.log({"mkl": os.environ.get("MKL_NUM_THREADS")})  # noqa: E731
    results = kagexp.Experiment(root / "exp" / "exp001", ["x: 5", "x: 6"]).run(fn, jobs=2, force=True, capture=False)
    expected = before["MKL_NUM_THREADS"] or str(share(2))
    assert [r.metrics for r in results] == [{"mkl": expected}, {"mkl": expected}]
    assert {name: os.environ.get(name) for name in VARIABLES} == before
