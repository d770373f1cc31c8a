"""The parts of a trader's decision that are the same arithmetic for one trader or many, so that the traders' phase
(`abm.agents.batched`, every trader whose clock fires at once) and a single trader (`LeveragedTrader`: re-entry,
genesis, perp traders) run the one implementation. The per-position and per-trader formulas are plain arithmetic on
numbers, which the compiled decision pass of `abm.agents.batched` runs too (Python floats and compiled code round
+ - * / as numpy does); the functions of `m` and `holders` answer for many traders at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from abm.agents.strategies import target_leverages

if TYPE_CHECKING:
    from abm.lending.margin import MarginEngine
    from abm.model import ReflexivityModel


def position_exposure(long: bool, collateral: float, scaled_debt: float, borrow_index: float, price: float) -> float:
    """Exposure (USD) of one position: a long's collateral value of its asset (`collateral` tokens at `price`,
    USD/token), a short's debt value of it (`scaled_debt` times the asset's `borrow_index`, at `price`)."""
    return collateral * price if long else scaled_debt * borrow_index * price


def lending_exposures(engine: MarginEngine, long: bool, account: int, asset: int, prices: np.ndarray) -> float:
    """Exposure (USD at `prices`) of one position (account `account`, asset `asset`): `position_exposure` of the
    margin engine's numbers."""
    return position_exposure(
        long,
        engine.collateral[account, asset],
        engine.scaled_debt[account, asset],
        engine.pool.borrow_index[asset],
        prices[asset],
    )


def current_leverages(exposure: float, equity: float) -> float:
    """Exposure over equity (USD over USD) where the equity is positive, 0 otherwise."""
    return exposure / equity if equity > 0 else 0.0


def past_drawdown(equity: np.ndarray, peak: np.ndarray, drawdown: float) -> np.ndarray:
    """Whether equity has fallen more than `drawdown` (fraction) below its peak (USD): a stop-loss trader's stop.
    Plain arithmetic on numbers or arrays, so that the compiled risk-alert pass (`abm.agents.book`) runs it too."""
    return equity < (1.0 - drawdown) * peak


def carry_factor(rate: float, tolerance: float) -> float:
    """Share of the borrowed part of the exposure a trader keeps at a carry of `rate` (per year): 1 up to
    `tolerance` (per year), tolerance / rate above it (a high borrow rate makes borrowers repay in proportion)."""
    if rate > 0:
        share = tolerance / rate
        return share if share < 1.0 else 1.0
    return 1.0


def lending_carry_rate(borrow_rates: np.ndarray, long: bool, first_asset: int) -> float:
    """What holding a levered exposure in the pool costs (per year): the pool's borrow rate (`borrow_rates`, per
    reserve) of the asset the trader borrows, USD (reserve 0) for a long, its first asset for a short."""
    return borrow_rates[0] if long else borrow_rates[first_asset]


def lending_carry_rates(m: ReflexivityModel, holders: np.ndarray, first_asset: np.ndarray) -> np.ndarray:
    """`lending_carry_rate` of the lending traders `holders`, whose first assets are `first_asset` (one selection
    for them all: the genesis asks it of every trader)."""
    borrowed = np.where(m.book.direction[holders] > 0, 0, first_asset)  # USD for a long, the asset for a short
    return m.pool.borrow_rates()[borrowed]


def genesis_leverages(m: ReflexivityModel, holders: np.ndarray, first_asset: np.ndarray) -> np.ndarray:
    """Leverage the flat lending traders `holders` want at the start (`wanted_leverages` from the state before
    anyone opens: current leverage 0)."""
    target = target_leverages(m, holders, first_asset, lambda rows: np.zeros(len(rows)))
    return wanted_leverages(m, holders, target, lending_carry_rates(m, holders, first_asset))


def wanted_leverage(target: float, max_leverage: float, cap: float, long: bool, carry: float) -> float:
    """Leverage a trader wants (exposure / equity): its strategy's `target` within its limits (`max_leverage`, its
    leverage `cap`: the pool's LTV, and for a prudent trader its health buffer) and the cost of borrowing (the
    `carry_factor` `carry` of its borrow rate). A long borrows (L - 1) of its equity, a short borrows L: the carry
    factor scales that part. The limits as np.minimum takes them: a NaN target stays NaN."""
    capped = target if target < max_leverage or target != target else max_leverage
    capped = capped if capped < cap or capped != capped else cap
    return 1.0 + (capped - 1.0) * carry if long else capped * carry


def wanted_leverages(m: ReflexivityModel, holders: np.ndarray, target: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """`wanted_leverage` of the traders `holders`, whose strategies' targets are `target` and whose carry is `rate`
    (per year)."""
    cfg, book = m.config.traders, m.book
    return _wanted_leverages(
        np.asarray(target, dtype=float),
        float(cfg.max_leverage),
        book.leverage_cap[holders],
        book.direction[holders] > 0,
        np.asarray(rate, dtype=float),
        float(cfg.borrow_rate_tolerance),
    )


# the per-trader formulas compiled, inlined into the compiled passes (here and in `abm.agents.batched`)
compiled_carry_factor = njit(inline="always")(carry_factor)
compiled_wanted_leverage = njit(inline="always")(wanted_leverage)


@njit(cache=True, nogil=True)
def _wanted_leverages(
    target: np.ndarray, max_leverage: float, cap: np.ndarray, long: np.ndarray, rate: np.ndarray, tolerance: float
) -> np.ndarray:
    """`wanted_leverage` of each trader (the genesis asks it of every trader: no Python loop over a million)."""
    out = np.empty(len(target))
    for r in range(len(target)):
        carry = compiled_carry_factor(rate[r], tolerance)
        out[r] = compiled_wanted_leverage(target[r], max_leverage, cap[r], long[r], carry)
    return out


def rebalance_gaps(goal: float, have: float, tolerance: float) -> tuple[float, bool]:
    """Trade of one position toward exposure `goal` from exposure `have` (USD): the gap goal - have, and whether
    it is outside the tolerance band (|gap| > tolerance x max(goal, have): no churn on small gaps)."""
    gap = goal - have
    return gap, abs(gap) > tolerance * max(goal, have)


def leverages_for_health(
    m: ReflexivityModel, holders: np.ndarray, accounts: np.ndarray, hf_target: float, oracle: np.ndarray
) -> np.ndarray:
    """Leverage (exposure / equity) at which each lending trader `holders` reaches health factor `hf_target` by
    selling collateral to repay debt, over all its accounts at `oracle` prices (USD/token). accounts: (traders, k),
    its account per asset (isolated: k distinct; cross, portfolio: the one shared, repeated).

    With collateral C, debt D (USD) and the collateral's weighted liquidation threshold LT: sell and repay x with
    (C - x) LT = H (D - x), so x = (H D - LT C) / (H - LT), at least 0; the exposure left (a long's collateral, a
    short's debt) over the equity C - D, at least 1 for a long and 0 for a short. A trader without debt or
    collateral keeps its base leverage; one without equity gets 1.
    """
    engine, pool = m.engine, m.pool
    n, k = accounts.shape
    isolated = accounts[:, 0] != accounts[:, -1]
    coll = np.empty((n, engine.collateral.shape[1]))  # USD per asset over the trader's accounts
    debt = np.empty(n)  # USD
    for rows, width in ((np.flatnonzero(~isolated), 1), (np.flatnonzero(isolated), k)):
        if len(rows) == 0:
            continue
        ids = accounts[rows, :width].ravel()
        # `take`: the rows `collateral[ids]` gives, several times faster on these tall arrays; an account's assets
        # then its accounts in order, as one trader's sums run
        coll[rows] = (engine.collateral.take(ids, axis=0) * oracle).reshape(len(rows), width, -1).sum(axis=1)
        debt[rows] = (
            ((engine.scaled_debt.take(ids, axis=0) * pool.borrow_index) * oracle).reshape(len(rows), -1).sum(axis=1)
        )
    c_total = coll.sum(axis=1)
    long = m.book.direction[holders] > 0
    with np.errstate(divide="ignore", invalid="ignore"):  # rows without collateral or equity are answered apart
        lt_eff = (coll * pool.liquidation_threshold).sum(axis=1) / c_total
        sold = np.maximum((hf_target * debt - lt_eff * c_total) / (hf_target - lt_eff), 0.0)
        equity = c_total - debt
        leverage = np.maximum(np.where(long, c_total - sold, debt - sold) / equity, np.where(long, 1.0, 0.0))
    leverage = np.where(equity <= 0, 1.0, leverage)
    return np.where((debt <= 0) | (c_total <= 0), m.book.base_leverage[holders], leverage)
