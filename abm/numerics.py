"""Fast forms of two numpy operations on tall, narrow arrays (one row per account, one column per asset).

numpy's reductions and broadcasts over the last axis run their inner loop over just a few numbers per row, which
is several times slower than working a whole column at a time. These helpers do the same arithmetic column-wise;
results agree with `x.sum(axis=-1)` and `x * v` up to rounding.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

NARROW = 16  # up to this many columns the column-wise loop beats numpy's reduction


def row_sums(x: FloatArray) -> FloatArray:
    """Sum over the last axis: `x.sum(axis=-1)`, column by column for a tall 2-d array with few columns."""
    if x.ndim != 2 or not 0 < x.shape[1] <= NARROW:
        return np.sum(x, axis=-1)
    out = x[:, 0].astype(np.float64, copy=True)
    for j in range(1, x.shape[1]):
        out += x[:, j]
    return out


def scale_columns(x: FloatArray, v: FloatArray) -> FloatArray:
    """`x * v` for a 2-d x (rows x k) and a vector v of length k, one column multiplication at a time."""
    if x.ndim != 2 or np.ndim(v) != 1 or np.shape(v)[0] != x.shape[1] or x.shape[1] > NARROW:
        return x * v
    out = np.empty(x.shape, dtype=np.result_type(x, v))
    for j in range(x.shape[1]):
        np.multiply(x[:, j], v[j], out=out[:, j])
    return out


# numpy sums a 1-d float array of fewer than 8 numbers left to right (its pairwise summation starts at 8), so
# `left_sum(x.tolist())` is `x.sum()` bit for bit there, without numpy's per-call overhead
SEQUENTIAL_SUM_MAX = 8


def left_sum(values: list[float]) -> float:
    """values[0] + values[1] + ... added left to right (`np.sum` of fewer than `SEQUENTIAL_SUM_MAX` numbers)."""
    total = values[0]
    for v in values[1:]:
        total += v
    return total


def running_total(start: float, increments: FloatArray) -> float:
    """start + increments[0] + increments[1] + ... added left to right: what adding them one at a time to a total
    gives, bit for bit (a running sum's last value: numpy accumulates in order), in one pass."""
    if len(increments) == 0:
        return float(start)
    return float(np.cumsum(np.concatenate(([start], increments)))[-1])
