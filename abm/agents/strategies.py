"""Trading strategies: what leverage a trader wants now (docs/model.md, 3.3 Submodels: Traders).

Each strategy is one function of the trader, registered under the name the configuration uses in
`traders.strategy_mix` (the schema's `STRATEGIES`), with the direction of its positions. Adding a strategy is one
function here plus its name in `abm.config.schema.STRATEGIES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from abm.config.schema import STRATEGIES
from abm.protocol import SECONDS_PER_YEAR

if TYPE_CHECKING:
    from abm.agents.trader import LeveragedTrader
    from abm.model import ReflexivityModel

TargetLeverage = Callable[["LeveragedTrader"], float]


@dataclass(frozen=True)
class Strategy:
    """A strategy: its target leverage (exposure / equity, >= 1 for a long) and its direction (+1 long, -1 short)."""

    name: str
    target_leverage: TargetLeverage
    direction: int = 1


STRATEGY_REGISTRY: dict[str, Strategy] = {}


def strategy(name: str, direction: int = 1) -> Callable[[TargetLeverage], TargetLeverage]:
    """Register the decorated function as strategy `name`."""

    def register(fn: TargetLeverage) -> TargetLeverage:
        STRATEGY_REGISTRY[name] = Strategy(name, fn, direction)
        return fn

    return register


@strategy("hodl")
def hodl(trader: LeveragedTrader) -> float:
    """Hold the base leverage, whatever happens."""
    return trader.leverage


@strategy("short", direction=-1)
def short(trader: LeveragedTrader) -> float:
    """Hold a short (borrowed asset sold for USD collateral) at the base leverage."""
    return trader.leverage


@strategy("momentum")
def momentum(trader: LeveragedTrader) -> float:
    """Trend following: the levered part of the exposure grows with the trend's strength.

    z = (log return over `momentum_lookback_steps`) / (realised volatility over that horizon); the target is
    1 + (base - 1) * Phi(z / momentum_signal_scale), Phi the standard normal CDF: half levered on no trend, near
    fully levered in a strong rise, near unlevered in a strong fall. A smooth response, so that a trend-follower's
    trades grow with the evidence instead of flipping its whole position on the sign of a noisy return.
    """
    return 1.0 + (trader.leverage - 1.0) * momentum_signal(trader.model, trader.assets[0])


def momentum_signal(m: ReflexivityModel, a: int) -> float:
    """Phi(z / momentum_signal_scale) of asset `a` now (`momentum`): the share of the levered part a trend-follower
    of that asset takes."""
    cfg = m.config.traders
    t = m.steps
    lookback = cfg.momentum_lookback_steps
    trend = m.history.log_market(t - 1)[a] - m.history.log_market(t - 1 - lookback)[a]
    years = lookback * m.config.market.step_seconds / SECONDS_PER_YEAR
    z = trend / (max(float(m.market.realised_vol()[a]), 1e-3) * math.sqrt(years))
    return 0.5 * math.erfc(-z / (cfg.momentum_signal_scale * math.sqrt(2.0)))  # standard normal CDF of z / scale


@strategy("contrarian")
def contrarian(trader: LeveragedTrader) -> float:
    """Lever up when the price is below its EMA anchor by the band, unlever above it; hold inside the band."""
    m = trader.model
    a, band = trader.assets[0], m.config.traders.contrarian_band
    gap = m.history.log_market(m.steps - 1)[a] - m.anchor_log_price[a]
    if gap <= -band:
        return trader.leverage
    if gap >= band:
        return 1.0
    return trader.current_leverage(m.market.prices) or trader.leverage


@strategy("vol_target")
def vol_target(trader: LeveragedTrader) -> float:
    """Scale leverage by target / realised volatility (pro-cyclical), within [1, max_leverage]."""
    cfg = trader.model.config.traders
    vol = max(float(trader.model.market.realised_vol()[trader.assets[0]]), 1e-3)
    return min(max(trader.leverage * cfg.vol_target / vol, 1.0), cfg.max_leverage)


# --- every trader's target in one pass -----------------------------------------------------------------------
# Each strategy's target is a per-asset signal (computed once per asset, with the code above) mapped through the
# trader's own numbers; the map is the same float arithmetic elementwise, so the batch gives each trader's
# `target_leverage` bit for bit. A strategy without a batch form here is asked trader by trader.

TargetBatch = Callable[["ReflexivityModel", np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(model, first asset per trader, base leverage per trader, current leverage per trader) -> target per trader."""


def _hold(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: np.ndarray) -> np.ndarray:
    return leverage.copy()


def _momentum(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: np.ndarray) -> np.ndarray:
    phi = np.array([momentum_signal(m, a) if a else 0.0 for a in range(len(m.symbols))])
    return 1.0 + (leverage - 1.0) * phi[asset]


def _contrarian(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: np.ndarray) -> np.ndarray:
    band = m.config.traders.contrarian_band
    gap = (m.history.log_market(m.steps - 1) - m.anchor_log_price)[asset]
    inside = np.where(current != 0.0, current, leverage)  # `current_leverage(...) or leverage`
    return np.where(gap <= -band, leverage, np.where(gap >= band, 1.0, inside))


def _vol_target(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: np.ndarray) -> np.ndarray:
    cfg = m.config.traders
    vol = np.array([max(float(v), 1e-3) for v in m.market.realised_vol()])
    return np.minimum(np.maximum(leverage * cfg.vol_target / vol[asset], 1.0), cfg.max_leverage)


TARGET_BATCH: dict[str, TargetBatch] = {
    "hodl": _hold,
    "short": _hold,
    "momentum": _momentum,
    "contrarian": _contrarian,
    "vol_target": _vol_target,
}


def target_leverages(
    m: ReflexivityModel, traders: list[LeveragedTrader], current: np.ndarray | None = None
) -> np.ndarray:
    """`target_leverage()` of each of `traders` (plain lending traders of `m`) in one pass per strategy. current:
    each one's `current_leverage` at market prices, needed only by contrarians inside their band (None: every
    trader is flat, current leverage 0)."""
    book = m.book
    holders = np.array([t.holder for t in traders], dtype=np.int64)
    asset = np.array([t.assets[0] for t in traders], dtype=np.int64)
    leverage = book.base_leverage[holders]
    if current is None:
        current = np.zeros(len(traders))
    codes = book.strategy[holders]
    out = np.empty(len(traders))
    for code in np.unique(codes):
        name = STRATEGIES[int(code)]
        mine = codes == code
        batch = TARGET_BATCH.get(name)
        if batch is None:
            out[mine] = [STRATEGY_REGISTRY[name].target_leverage(traders[i]) for i in np.flatnonzero(mine)]
        else:
            out[mine] = batch(m, asset[mine], leverage[mine], current[mine])
    return out
