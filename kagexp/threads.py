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
from dataclasses import dataclass, field
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


def seen() -> dict[str, str | None]:
    """The variables as this process sees them, for meta.json."""
    return {name: os.environ.get(name) for name in VARIABLES}


@dataclass
class ThreadLimits:
    """What `--jobs N` gives every run: the variables, and a handle on the thread pools loaded
    before the fork (threadpoolctl's, taken once in the parent: a forked run inherits them)."""

    share: int
    values: dict[str, str]  # the variables the user left unset, each set to `share`
    loaded: list[Any] = field(default_factory=list)  # threadpoolctl's controllers of pools over `share`

    @classmethod
    def for_jobs(cls, jobs: int, environ: Mapping[str, str] = os.environ) -> ThreadLimits:
        """When `jobs` runs run at once: max(1, cores // jobs) threads each."""
        share = max(1, cores() // jobs)
        return cls(share, {name: str(share) for name in VARIABLES if name not in environ})

    @contextmanager
    def exported(self) -> Iterator[ThreadLimits]:
        """Set the variables in this process while its runs are forked, then unset them again (they
        were unset: `for_jobs` takes no other), so a notebook's later runs see what they saw before."""
        os.environ.update(self.values)
        try:
            yield self
        finally:
            for name in self.values:
                os.environ.pop(name, None)

    def find_loaded(self) -> None:
        """In the parent, after its imports: the thread pools already loaded with more threads
        than the share, which the variables came too late for (nothing to do without threadpoolctl).

        Only those: setting OpenBLAS's count in a forked process starts its threads again, which
        costs a run about 10 ms even when the count does not change.
        """
        apis = [_THREADPOOLCTL_API[name] for name in self.values if name in _THREADPOOLCTL_API]
        if not apis or not importable("threadpoolctl"):
            return
        from threadpoolctl import ThreadpoolController

        pools = ThreadpoolController().select(internal_api=apis).lib_controllers
        self.loaded = [pool for pool in pools if pool.num_threads > self.share]

    def apply(self) -> None:
        """In a forked run: hold the pools loaded before the fork to the run's share."""
        for pool in self.loaded:
            pool.set_num_threads(self.share)
        numexpr = sys.modules.get("numexpr")
        if numexpr is not None and "NUMEXPR_NUM_THREADS" in self.values:
            numexpr.set_num_threads(self.share)
