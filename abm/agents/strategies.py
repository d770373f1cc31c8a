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

from abm.protocol import SECONDS_PER_YEAR

if TYPE_CHECKING:
    from abm.agents.trader import LeveragedTrader

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
    m, cfg = trader.model, trader.model.config.traders
    t, a = m.steps, trader.assets[0]
    lookback = cfg.momentum_lookback_steps
    trend = m.history.log_market(t - 1)[a] - m.history.log_market(t - 1 - lookback)[a]
    years = lookback * m.config.market.step_seconds / SECONDS_PER_YEAR
    z = trend / (max(float(m.market.realised_vol()[a]), 1e-3) * math.sqrt(years))
    phi = 0.5 * math.erfc(-z / (cfg.momentum_signal_scale * math.sqrt(2.0)))  # standard normal CDF of z / scale
    return 1.0 + (trader.leverage - 1.0) * phi


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
