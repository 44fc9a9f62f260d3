"""How a blend combines its members' predictions, in one place: `kagexp blend` uses it on the
members' test predictions, and the offline Kaggle kernel on the submissions the members' `infer`
wrote there, so the kernel's submission is the blend's. numpy is imported only when called (every
Kaggle image has it), so that importing `kagexp.kaggle` stays light.
"""

from __future__ import annotations

from typing import Any

from kagexp.metrics import average_ranks

METHODS = ("mean", "rank", "hill", "ridge")


def weighted(weights: Any, matrices: Any):
    """The members' predictions (`members × rows × columns`) averaged with the weights."""
    import numpy as np

    return np.tensordot(np.asarray(weights, dtype=float), matrices, axes=1)


def rank_mean(matrices: Any):
    """The members' average ranks (per column), averaged and scaled to 0–1. Ranks are whole or half
    numbers, so their sum is exact: equal rank sums stay equal, whatever order they are added in."""
    import numpy as np

    count, rows, width = matrices.shape
    ranks = np.stack([np.column_stack([average_ranks(c) for c in m.T]) for m in matrices])
    return ranks.sum(axis=0) / (count * rows)


def combined(method: str, weights: list[float], matrices: Any):
    """A blend's prediction of new rows: rank-averaged for `rank`, else weighted with the weights
    the blend recorded (for `ridge`, those fitted on every OOF row)."""
    return rank_mean(matrices) if method == "rank" else weighted(weights, matrices)
