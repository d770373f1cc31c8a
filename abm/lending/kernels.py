"""Compiled passes over the account book (numba): each reads every account's row once.

The margin engine's state is tall and narrow (one row per account, a few assets per row), where numpy spends its
time in per-call overhead and short inner loops; these loops do the same arithmetic in one pass. Float operations
follow numpy's order for the same formulas (products element by element, sums over an account's assets left to
right, as numpy adds fewer than 8 numbers and as `abm.numerics.row_sums` adds its columns), so a result does not
depend on which of the two computed it; no fast-math, so every operation rounds as IEEE 754 prescribes and results
are the same in every process.

Compiled once per machine and cached on disk (`cache=True`). Each kernel is called with one signature (float64 and
int64 arrays in C order): numba's on-disk index numbers a function's specialisations as processes add them, and
two processes adding different ones at the same moment can cross them, so nothing here is specialised per call
(on the number of assets, say).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def health_factors(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    collateral_prices: np.ndarray,
    debt_prices: np.ndarray,
) -> np.ndarray:
    """Health factor of every account (rows of `collateral`, `scaled_debt`) along several price vectors at once.

    collateral, scaled_debt: (accounts, assets), tokens and debt tokens over the borrow index.
    liquidation_threshold: (assets,) fractions (0 where an asset is not collateral).
    collateral_prices: (paths, assets) USD/token; debt_prices: (paths, assets) USD per scaled debt token (the
    borrow index times the price). Returns (paths, accounts): HF = sum_i (c_i p_i) LT_i / sum_j d_j q_j, inf
    without debt (`protocol.health_factor`, cross and isolated margin).
    """
    n, n_assets = collateral.shape
    n_paths = collateral_prices.shape[0]
    out = np.empty((n_paths, n))
    # accounts outside, paths inside: each account's row is read from memory once for every path
    if n_assets == 3:  # the usual book (USD, ETH, BTC): with the count a constant the compiler unrolls the sums
        for i in range(n):
            for k in range(n_paths):
                out[k, i] = _account_health(
                    collateral, scaled_debt, liquidation_threshold, collateral_prices[k], debt_prices[k], i, 3
                )
    else:
        for i in range(n):
            for k in range(n_paths):
                out[k, i] = _account_health(
                    collateral, scaled_debt, liquidation_threshold, collateral_prices[k], debt_prices[k], i, n_assets
                )
    return out


@njit(inline="always")
def _account_health(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    prices: np.ndarray,
    debt_prices: np.ndarray,
    i: int,
    n_assets: int,
) -> float:
    """Health factor of account `i` at one price vector (`health_factors`), over its first `n_assets` assets."""
    weighted = (collateral[i, 0] * prices[0]) * liquidation_threshold[0]
    owed = scaled_debt[i, 0] * debt_prices[0]
    for j in range(1, n_assets):
        weighted += (collateral[i, j] * prices[j]) * liquidation_threshold[j]
        owed += scaled_debt[i, j] * debt_prices[j]
    return weighted / owed if owed > 0 else np.inf


@njit(cache=True, nogil=True)
def rows_changed(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Which rows of `current` differ from the same rows of `previous` in any column (bool per row of `previous`;
    exact comparison)."""
    n, n_cols = previous.shape
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        for j in range(n_cols):
            if current[i, j] != previous[i, j]:
                out[i] = True
                break
    return out


@njit(cache=True, nogil=True)
def rows_in_use(collateral: np.ndarray, scaled_debt: np.ndarray) -> np.ndarray:
    """Which accounts hold any collateral or owe any debt (bool per row)."""
    n, n_assets = collateral.shape
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        for j in range(n_assets):
            if collateral[i, j] != 0.0 or scaled_debt[i, j] != 0.0:
                out[i] = True
                break
    return out


@njit(cache=True, nogil=True)
def account_values(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every account's collateral and debt in USD (two arrays, one number per account): sum_i c_i p_i and
    sum_j d_j q_j (q: the borrow index times the price, USD per scaled debt token)."""
    n = collateral.shape[0]
    coll = np.empty(n)
    debt = np.empty(n)
    for i in range(n):
        coll[i], debt[i] = _account_values(collateral, scaled_debt, prices, debt_prices, i)
    return coll, debt


@njit(inline="always")
def _account_values(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray, i: int
) -> tuple[float, float]:
    """Account `i`'s collateral and debt in USD (`account_values`)."""
    c = collateral[i, 0] * prices[0]
    d = scaled_debt[i, 0] * debt_prices[0]
    for j in range(1, collateral.shape[1]):
        c += collateral[i, j] * prices[j]
        d += scaled_debt[i, j] * debt_prices[j]
    return c, d


@njit(cache=True, nogil=True)
def insolvent_rows(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray, dust_usd: float
) -> np.ndarray:
    """Accounts (ids, ascending) with debt but collateral worth less than `dust_usd` (USD), values as
    `account_values` computes them."""
    found = np.empty(collateral.shape[0], dtype=np.int64)
    count = 0
    for i in range(collateral.shape[0]):
        c, d = _account_values(collateral, scaled_debt, prices, debt_prices, i)
        if d > 0 and c < dust_usd:
            found[count] = i
            count += 1
    return found[:count].copy()


@njit(cache=True, nogil=True)
def account_equities(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray
) -> np.ndarray:
    """Every account's collateral minus debt in USD: sum_i (c_i p_i - d_i q_i), asset by asset (q as in
    `account_values`)."""
    n, n_assets = collateral.shape
    out = np.empty(n)
    for i in range(n):
        e = collateral[i, 0] * prices[0] - scaled_debt[i, 0] * debt_prices[0]
        for j in range(1, n_assets):
            e += collateral[i, j] * prices[j] - scaled_debt[i, j] * debt_prices[j]
        out[i] = e
    return out


@njit(cache=True, nogil=True)
def owner_minimum(values: np.ndarray, owners: np.ndarray, n_owners: int) -> np.ndarray:
    """The smallest of `values` per owner 0..n_owners-1 (inf for an owner without any); values of owners at or
    beyond n_owners are left out."""
    out = np.full(n_owners, np.inf)
    for i in range(len(values)):
        o, v = owners[i], values[i]
        if o < n_owners and (v < out[o] or v != v):  # NaN wins and stays, as in np.minimum
            out[o] = v
    return out


@njit(cache=True, nogil=True)
def loans_in_turn(cash: np.ndarray, assets: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Which loans the pool makes when they come one at a time in order (`amounts[i]` >= 0 tokens of reserve
    `assets[i]`): a loan is made if it is at most the reserve's cash left (`cash`, tokens per reserve, as it was
    before the first loan), which it then lowers (clamped at 0, as `LendingPool.lend_out`); one that does not fit is
    skipped and a later, smaller one may fit."""
    left = cash.copy()
    made = np.empty(len(amounts), dtype=np.bool_)
    for i in range(len(amounts)):
        a = assets[i]
        made[i] = amounts[i] <= left[a]
        if made[i]:
            left[a] = max(left[a] - amounts[i], 0.0)
    return made


@njit(cache=True, nogil=True)
def owner_equities(
    owners: np.ndarray,
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    prices: np.ndarray,
    debt_prices: np.ndarray,
    n_owners: int,
) -> np.ndarray:
    """Each owner's lending equity (USD): the sum of its accounts' `account_equities`, accounts added in order from
    0 (as `np.bincount` with weights adds them), for owners 0..n_owners-1; accounts of later owners are left out."""
    n, n_assets = collateral.shape
    out = np.zeros(n_owners)
    for i in range(n):
        o = owners[i]
        if o < n_owners:
            e = collateral[i, 0] * prices[0] - scaled_debt[i, 0] * debt_prices[0]
            for j in range(1, n_assets):
                e += collateral[i, j] * prices[j] - scaled_debt[i, j] * debt_prices[j]
            out[o] += e
    return out
