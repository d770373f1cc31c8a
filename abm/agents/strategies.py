"""Trading strategies: what leverage a trader wants now (docs/model.md, 3.3 Submodels: Traders).

Each strategy is one function registered under the name the configuration uses in `traders.strategy_mix` (the
schema's `STRATEGIES`), with the direction of its positions. A strategy answers for many traders at once: the
traders' phase asks it for every trader whose clock fires (`abm.agents.batched`), and a single trader
(`LeveragedTrader.target_leverage`: re-entry, genesis, perp traders) is the same call with one trader. Adding a
strategy is one function here plus its name in `abm.config.schema.STRATEGIES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import erfc

from abm.config.schema import STRATEGIES
from abm.protocol import SECONDS_PER_YEAR

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

CurrentLeverage = Callable[[np.ndarray], np.ndarray]
"""Current leverage (exposure / equity of its own accounts, 0 without equity) of the traders at the given rows of
the call; asked only by the strategies that need it."""

TargetLeverage = Callable[["ReflexivityModel", np.ndarray, np.ndarray, CurrentLeverage], np.ndarray]
"""(model, first asset per trader, base leverage per trader, current leverage) -> target leverage per trader. A
trader's answer depends on its own entries only: a strategy is asked for every trader of a call, including those
that follow other strategies (`target_leverages`)."""


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


PICK_AS_FLOATS = 64
"""Up to this many traders, `target_leverages` picks each one's answer as a Python float."""


def target_leverages(
    m: ReflexivityModel, holders: np.ndarray, asset: np.ndarray, current: CurrentLeverage
) -> np.ndarray:
    """Target leverage of the traders `holders` (rows of `m.book`), whose first assets are `asset`: each strategy
    that one of them follows answers in one call, and each trader takes its own strategy's answer. A strategy
    answers for every trader of the call (its arithmetic is elementwise, so a trader's answer does not depend on
    who else is asked): for a few traders that is cheaper than gathering each strategy's own."""
    codes = m.book.strategy.take(holders)
    code_list = codes.tolist()
    leverage = m.book.base_leverage.take(holders)
    answers = {
        code: STRATEGY_REGISTRY[STRATEGIES[code]].target_leverage(m, asset, leverage, current)
        for code in sorted(set(code_list))
    }
    if len(code_list) <= PICK_AS_FLOATS:  # a step's few traders: Python floats beat numpy's fancy indexing
        as_floats = {code: answer.tolist() for code, answer in answers.items()}
        return np.array([as_floats[code][r] for r, code in enumerate(code_list)], dtype=float)
    target = np.empty(len(code_list))  # many (the genesis asks every trader): one masked copy per strategy
    for code, answer in answers.items():
        np.copyto(target, answer, where=codes == code)
    return target


@strategy("hodl")
def hodl(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: CurrentLeverage) -> np.ndarray:
    """Hold the base leverage, whatever happens."""
    return leverage.copy()


@strategy("short", direction=-1)
def short(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: CurrentLeverage) -> np.ndarray:
    """Hold a short (borrowed asset sold for USD collateral) at the base leverage."""
    return leverage.copy()


@strategy("momentum")
def momentum(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: CurrentLeverage) -> np.ndarray:
    """Trend following: the levered part of the exposure grows with the trend's strength.

    z = (log return over `momentum_lookback_steps`) / (realised volatility over that horizon); the target is
    1 + (base - 1) * Phi(z / momentum_signal_scale), Phi the standard normal CDF: half levered on no trend, near
    fully levered in a strong rise, near unlevered in a strong fall. A smooth response, so that a trend-follower's
    trades grow with the evidence instead of flipping its whole position on the sign of a noisy return.
    """
    cfg = m.config.traders
    t, lookback = m.steps, cfg.momentum_lookback_steps
    years = lookback * m.config.market.step_seconds / SECONDS_PER_YEAR
    # per market asset (a few numbers) as Python floats, where numpy's cost per call was most of the time: the same
    # IEEE operations as numpy's (max: np.maximum's NaN rule for a NaN volatility; sqrt: correctly rounded
    # anywhere), then each trader's asset's. z = trend / (vol * sqrt(years)); the CDF's argument -z / (scale sqrt 2)
    now, before = m.history.log_market(t - 1).tolist(), m.history.log_market(t - 1 - lookback).tolist()
    vol, horizon, scale = m.market.realised_vol().tolist(), math.sqrt(years), cfg.momentum_signal_scale * math.sqrt(2.0)
    minus_z = [-((a - b) / (max(v, 1e-3) * horizon)) / scale for a, b, v in zip(now, before, vol, strict=True)]
    phi = 0.5 * erfc(np.array(minus_z))  # standard normal CDF of z / scale
    return 1.0 + (leverage - 1.0) * phi.take(asset)


@strategy("contrarian")
def contrarian(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: CurrentLeverage) -> np.ndarray:
    """Lever up when the price is below its EMA anchor by the band, unlever above it; hold inside the band (its
    current leverage, or the base leverage when it has none)."""
    band = m.config.traders.contrarian_band
    # per market asset (a few numbers) as Python floats, then each trader's asset's: the same comparisons of the
    # same gaps (log price - anchor) as numpy's
    gaps = [p - a for p, a in zip(m.history.log_market(m.steps - 1).tolist(), m.anchor_log_price.tolist(), strict=True)]
    below = np.array([g <= -band for g in gaps])
    within = np.array([-band < g < band for g in gaps])
    out = np.where(below.take(asset), leverage, 1.0)
    inside = within.take(asset).nonzero()[0]
    if len(inside):
        held = current(inside)
        out[inside] = np.where(held != 0.0, held, leverage.take(inside))
    return out


@strategy("vol_target")
def vol_target(m: ReflexivityModel, asset: np.ndarray, leverage: np.ndarray, current: CurrentLeverage) -> np.ndarray:
    """Scale leverage by target / realised volatility (pro-cyclical), within [1, max_leverage]."""
    cfg = m.config.traders
    vol = np.maximum(m.market.realised_vol(), 1e-3).take(asset)
    return np.minimum(np.maximum(leverage * cfg.vol_target / vol, 1.0), cfg.max_leverage)
