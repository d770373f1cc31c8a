"""The parts of a trader's decision that are the same arithmetic for one trader or many: each takes arrays (one
entry per trader, or per position) so that the traders' phase (`abm.agents.batched`, every trader whose clock fires
at once) and a single trader (`LeveragedTrader`: re-entry, genesis, perp traders) run the one implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from abm.agents.strategies import target_leverages

if TYPE_CHECKING:
    from abm.lending.margin import MarginEngine
    from abm.model import ReflexivityModel


def lending_exposures(
    engine: MarginEngine, long: np.ndarray, accounts: np.ndarray, assets: np.ndarray, prices: np.ndarray
) -> np.ndarray:
    """Exposure (USD at `prices`) of each position (account `accounts`, asset `assets`, same shape; `long`
    broadcast to it): a long's collateral value of the asset, a short's debt value of it."""
    coll = engine.collateral[accounts, assets] * prices[assets]
    debt = engine.scaled_debt[accounts, assets] * engine.pool.borrow_index[assets] * prices[assets]
    return np.where(long, coll, debt)


def current_leverages(exposure: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Exposure over equity (USD over USD) where the equity is positive, 0 elsewhere."""
    out = np.zeros(np.shape(equity))
    return np.divide(exposure, equity, out=out, where=np.asarray(equity) > 0)


def past_drawdown(equity: np.ndarray, peak: np.ndarray, drawdown: float) -> np.ndarray:
    """Whether equity has fallen more than `drawdown` (fraction) below its peak (USD): a stop-loss trader's stop.
    Plain arithmetic on numbers or arrays, so that the compiled risk-alert pass (`abm.agents.book`) runs it too."""
    return equity < (1.0 - drawdown) * peak


def carry_factors(rate: np.ndarray, tolerance: float) -> np.ndarray:
    """Share of the borrowed part of the exposure a trader keeps at a carry of `rate` (per year): 1 up to
    `tolerance` (per year), tolerance / rate above it (a high borrow rate makes borrowers repay in proportion)."""
    rate = np.asarray(rate, dtype=float)
    positive = rate > 0
    return np.where(positive, np.minimum(1.0, tolerance / np.where(positive, rate, 1.0)), 1.0)


def lending_carry_rates(m: ReflexivityModel, holders: np.ndarray, first_asset: np.ndarray) -> np.ndarray:
    """What holding their levered exposure in the pool costs the lending traders `holders` (per year): the borrow
    rate of the asset each borrows (USD for a long, its first asset for a short)."""
    return m.pool.borrow_rates()[np.where(m.book.direction[holders] > 0, 0, first_asset)]


def genesis_leverages(m: ReflexivityModel, holders: np.ndarray, first_asset: np.ndarray) -> np.ndarray:
    """Leverage the flat lending traders `holders` want at the start (`wanted_leverages` from the state before
    anyone opens: current leverage 0)."""
    target = target_leverages(m, holders, first_asset, lambda rows: np.zeros(len(rows)))
    return wanted_leverages(m, holders, target, lending_carry_rates(m, holders, first_asset))


def wanted_leverages(m: ReflexivityModel, holders: np.ndarray, target: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Leverage the traders `holders` want (exposure / equity): their strategies' `target` within their limits
    (`max_leverage`, each one's leverage cap: the pool's LTV, and for a prudent trader its health buffer) and the
    cost of borrowing (`carry_factors` of each one's carry `rate`, per year). A long borrows (L - 1) of its equity,
    a short borrows L: the carry factor scales that part."""
    cfg, book = m.config.traders, m.book
    capped = np.minimum(np.minimum(target, cfg.max_leverage), book.leverage_cap[holders])
    carry = carry_factors(rate, cfg.borrow_rate_tolerance)
    return np.where(book.direction[holders] > 0, 1.0 + (capped - 1.0) * carry, capped * carry)


def rebalance_gaps(goal: np.ndarray, have: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Trade per position toward exposure `goal` from exposure `have` (USD): the gap goal - have, and whether it
    is outside the tolerance band (|gap| > tolerance x max(goal, have): no churn on small gaps)."""
    gap = np.subtract(goal, have)
    return gap, np.abs(gap) > tolerance * np.maximum(goal, have)


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
