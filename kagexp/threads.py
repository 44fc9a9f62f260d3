"""Thread limits for runs that share the machine (`--jobs N`): each run gets its share of the cores.

OpenMP (scikit-learn's HistGradientBoosting, LightGBM, XGBoost) and BLAS (numpy) start one thread
per core in every process: two runs at once on two cores run four busy threads that take turns,
several times slower than the runs one after the other. As joblib does for its workers, each run
gets max(1, cores // N) threads through the variables below, except those the user set.

A variable is read when its library loads, and by the time runs are forked their libraries may be
loaded already: exp.py's top level imports scikit-learn, and the launcher imports numpy to seed.
So the variables are set in the parent before it imports numpy (what exp.py loaded before is out
of reach there), every forked run inherits them (and so do the processes it starts), and in each
run the libraries loaded before the fork are limited with threadpoolctl (a dependency of
scikit-learn) when it is installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kagexp.provenance import importable

VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
# the libraries threadpoolctl limits at run time, by the variable that limits them at load time
_THREADPOOLCTL_API = {"OMP_NUM_THREADS": "openmp", "MKL_NUM_THREADS": "mkl", "OPENBLAS_NUM_THREADS": "openblas"}


def cores() -> int:
    """The cores this process may use (its CPU affinity, as `taskset` and cgroup cpusets set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def shares(jobs: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables a run gets when `jobs` run at once: max(1, cores // jobs) for each the user left unset."""
    share = str(max(1, cores() // jobs))
    return {name: share for name in VARIABLES if name not in environ}


def seen() -> dict[str, str | None]:
    """The variables as this process sees them, for meta.json."""
    return {name: os.environ.get(name) for name in VARIABLES}


@dataclass
class ThreadLimits:
    """What `--jobs N` gives every run: the variables, and a handle on the thread pools loaded
    before the fork (threadpoolctl's, taken once in the parent: a forked run inherits them)."""

    values: dict[str, str]
    loaded: Any = None

    @contextmanager
    def exported(self) -> Iterator[ThreadLimits]:
        """Set the variables in this process while its runs are forked; then put back what was there."""
        saved = {name: os.environ.get(name) for name in self.values}
        os.environ.update(self.values)
        try:
            yield self
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def find_loaded(self) -> None:
        """In the parent, after its imports: the thread pools already loaded that the variables
        would have limited had they been set in time (nothing to do without threadpoolctl)."""
        apis = [_THREADPOOLCTL_API[name] for name in self.values if name in _THREADPOOLCTL_API]
        if not apis or not importable("threadpoolctl"):
            return
        from threadpoolctl import ThreadpoolController

        selected = ThreadpoolController().select(internal_api=apis)
        self.loaded = selected if selected.lib_controllers else None

    def apply(self) -> None:
        """In a forked run: hold the pools loaded before the fork to the run's share."""
        if not self.values:
            return
        share = int(next(iter(self.values.values())))
        if self.loaded is not None:
            self.loaded.limit(limits=share)
        numexpr = sys.modules.get("numexpr")
        if numexpr is not None and "NUMEXPR_NUM_THREADS" in self.values:
            numexpr.set_num_threads(share)
