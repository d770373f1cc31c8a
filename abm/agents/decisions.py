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
    return np.where(rate > 0, np.minimum(1.0, tolerance / np.where(rate > 0, rate, 1.0)), 1.0)


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
