"""Price-impact models: how a trade in one asset's market fills and moves its price (docs/model.md, 3.3
Submodels: Price impact).

Each model is one small class with the same methods, and `IMPACT_MODELS` maps the names the configuration accepts
(`assets.<symbol>.impact`) to them; `Market` keeps one model per asset and delegates to it. The classes keep no
state: they read and move the market's per-asset arrays (`m`, the accumulated log impact; `amm_x`, `amm_y`, the
AMM's reserves). Adding an impact model is one class here plus its name in the schema's `IMPACT_MODEL_NAMES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from abm.config.schema import MarketConfig
from abm.protocol import (
    amm_amount_in,
    amm_amount_out,
    linear_impact_cost,
    linear_impact_proceeds,
    linear_impact_tokens_bought,
    sqrt_impact_proceeds,
    sqrt_impact_tokens_bought,
)

if TYPE_CHECKING:
    from abm.market.impact import Market

MAX_PATH_FRACTION = 0.999  # a buy may not ask for more tokens than this share of what the path can ever supply


class ImpactModel:
    """The interface, and the behaviour shared by the models whose log price is the fundamental plus `m`.

    Arguments are the market, the asset index k, and amounts in USD or tokens; prices in USD/token. Quotes change
    nothing; `execute` moves the market's state by a trade already quoted.
    """

    name: ClassVar[str]

    def start(self, market: Market, k: int) -> None:
        """Set up asset k's state at the fundamental price."""

    def decay(self, config: MarketConfig) -> float:
        """Share of the log impact left after one step without trades: 0.5 ** (1 / half-life)."""
        half_life = config.impact_half_life_steps
        return 0.5 ** (1.0 / half_life) if np.isfinite(half_life) else 1.0

    def relax(self, market: Market, k: int) -> None:
        """One step of impact decay toward the fundamental."""
        market.m[k] *= market.decay[k]

    def thin(self, market: Market, k: int, scale: float) -> None:
        """Depth is multiplied by `scale` (volatility thinning); models that read `depth_factor` need nothing."""

    def sync(self, market: Market, k: int) -> None:
        """Set the market's log price of asset k from its state: the fundamental plus the log impact."""
        market.log_p[k] = market.log_f[k] + market.m[k]

    def quote_buy(self, market: Market, k: int, usd: float) -> float:
        """Tokens `usd` (> 0) buys now."""
        raise NotImplementedError

    def quote_sell(self, market: Market, k: int, tokens: float) -> float:
        """USD a sale of `tokens` (> 0) raises now."""
        raise NotImplementedError

    def quote_cost(self, market: Market, k: int, tokens: float) -> float:
        """USD needed to buy exactly `tokens` (> 0) now; inf if the market cannot supply them."""
        raise NotImplementedError

    def execute(self, market: Market, k: int, usd_in: float, tokens_out: float) -> None:
        """Move the state by a trade: `usd_in` USD in and `tokens_out` tokens out (both negative for a sale)."""
        raise NotImplementedError

    def proceeds_bound(self, market: Market, k: int, tokens: np.ndarray) -> np.ndarray:
        """At least what `quote_sell` gives for each of `tokens` (> 0), up to rounding: here the sale at the price
        now without slippage (every path moves against the seller); a model with a closed form uses it."""
        return tokens * market.price(k)

    def cost_bound(self, market: Market, k: int, tokens: np.ndarray) -> np.ndarray:
        """At most what `quote_cost` gives for each of `tokens` (> 0), up to rounding: here the purchase at the
        price now without slippage (every path moves against the buyer); a model with a closed form uses it."""
        return tokens * market.price(k)

    def linear_depth(self, market: Market, k: int, reference_usd: float | None) -> float:
        """USD notional that moves the log price by 1 (the secant at `reference_usd` for nonlinear paths)."""
        raise NotImplementedError


class LinearImpact(ImpactModel):
    """Kyle-style linear impact: the log price moves by Q / depth for Q USD of signed notional, then decays."""

    name = "linear"

    def quote_buy(self, market: Market, k: int, usd: float) -> float:
        return float(linear_impact_tokens_bought(usd, market.price(k), market.depth(k), check=False))

    def quote_sell(self, market: Market, k: int, tokens: float) -> float:
        return float(linear_impact_proceeds(tokens, market.price(k), market.depth(k), check=False))

    def quote_cost(self, market: Market, k: int, tokens: float) -> float:
        price, depth = market.price(k), market.depth(k)
        if tokens * price / depth >= MAX_PATH_FRACTION:
            return float("inf")
        return float(linear_impact_cost(tokens, price, depth, check=False))

    def execute(self, market: Market, k: int, usd_in: float, tokens_out: float) -> None:
        market.m[k] += usd_in / market.depth(k)

    def proceeds_bound(self, market: Market, k: int, tokens: np.ndarray) -> np.ndarray:
        return linear_impact_proceeds(tokens, market.price(k), market.depth(k), check=False)

    def cost_bound(self, market: Market, k: int, tokens: np.ndarray) -> np.ndarray:
        # the formula, inf only where the path can never supply the tokens (`quote_cost` is inf from earlier on)
        return linear_impact_cost(tokens, market.price(k), market.depth(k), check=False)

    def linear_depth(self, market: Market, k: int, reference_usd: float | None) -> float:
        return market.depth(k)


class SqrtImpact(ImpactModel):
    """The square-root law: Q USD moves the log price by a sqrt(|Q|), a = Y sigma_daily / sqrt(daily volume)."""

    name = "sqrt"

    def quote_buy(self, market: Market, k: int, usd: float) -> float:
        return float(sqrt_impact_tokens_bought(usd, market.price(k), market.sqrt_a(k), check=False))

    def quote_sell(self, market: Market, k: int, tokens: float) -> float:
        return float(sqrt_impact_proceeds(tokens, market.price(k), market.sqrt_a(k), check=False))

    def quote_cost(self, market: Market, k: int, tokens: float) -> float:
        # invert the monotone buy formula by bisection on USD (bounded, deterministic)
        lo, hi = 0.0, tokens * market.price(k)
        while self.quote_buy(market, k, hi) < tokens:
            hi *= 2.0
            if hi > 1e18:
                return float("inf")
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if self.quote_buy(market, k, mid) < tokens:
                lo = mid
            else:
                hi = mid
        return hi

    def execute(self, market: Market, k: int, usd_in: float, tokens_out: float) -> None:
        market.m[k] += np.sign(usd_in) * market.sqrt_a(k) * np.sqrt(abs(usd_in))

    def linear_depth(self, market: Market, k: int, reference_usd: float | None) -> float:
        volume = float(market.daily_volume[k] * market.depth_factor[k])
        q = reference_usd if reference_usd is not None else 0.01 * volume
        a = market.sqrt_a(k)
        return float(np.sqrt(max(q, 1.0)) / a) if a > 0 else float("inf")


class ConstantProductImpact(ImpactModel):
    """A Uniswap-v2 x*y=k pool with real reserves; price y/x. Arbitrage closes a share of its gap to the
    fundamental each step (its decay); thinning scales both reserves at an unchanged price."""

    name = "cpmm"

    def start(self, market: Market, k: int) -> None:
        market.amm_y[k] = market.depth_usd[k]
        market.amm_x[k] = market.depth_usd[k] / np.exp(market.log_f[k])

    def decay(self, config: MarketConfig) -> float:
        return 1.0 - config.arbitrage_fraction

    def relax(self, market: Market, k: int) -> None:
        x, y = market.amm_x[k], market.amm_y[k]
        gap = np.log(y / x) - market.log_f[k]
        target = market.log_f[k] + market.decay[k] * gap
        # arbitrageurs trade along the curve (x y unchanged) against the rest of the world
        market.amm_x[k] = np.sqrt(x * y / np.exp(target))
        market.amm_y[k] = np.sqrt(x * y * np.exp(target))

    def thin(self, market: Market, k: int, scale: float) -> None:
        market.amm_x[k] *= scale  # liquidity providers withdraw: both reserves shrink, the price stays
        market.amm_y[k] *= scale

    def sync(self, market: Market, k: int) -> None:
        """The log price is the pool's log(y / x); the log impact is its gap to the fundamental."""
        market.log_p[k] = np.log(market.amm_y[k] / market.amm_x[k])
        market.m[k] = market.log_p[k] - market.log_f[k]

    def quote_buy(self, market: Market, k: int, usd: float) -> float:
        return float(amm_amount_out(usd, market.amm_y[k], market.amm_x[k], market.fee[k], check=False))

    def quote_sell(self, market: Market, k: int, tokens: float) -> float:
        return float(amm_amount_out(tokens, market.amm_x[k], market.amm_y[k], market.fee[k], check=False))

    def quote_cost(self, market: Market, k: int, tokens: float) -> float:
        if tokens >= market.amm_x[k] * MAX_PATH_FRACTION:
            return float("inf")
        return float(amm_amount_in(tokens, market.amm_y[k], market.amm_x[k], market.fee[k], check=False))

    def execute(self, market: Market, k: int, usd_in: float, tokens_out: float) -> None:
        market.amm_y[k] += usd_in  # Uniswap v2: the whole input, fee included, stays in the pool
        market.amm_x[k] -= tokens_out

    def proceeds_bound(self, market: Market, k: int, tokens: np.ndarray) -> np.ndarray:
        return amm_amount_out(tokens, market.amm_x[k], market.amm_y[k], market.fee[k], check=False)

    def cost_bound(self, market: Market, k: int, tokens: np.ndarray) -> np.ndarray:
        # the formula, inf only where the pool cannot supply the tokens (`quote_cost` is inf from earlier on)
        x = market.amm_x[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = amm_amount_in(tokens, market.amm_y[k], x, market.fee[k], check=False)
        return np.where(tokens < x, cost, np.inf)

    def linear_depth(self, market: Market, k: int, reference_usd: float | None) -> float:
        return float(market.amm_y[k]) / 2.0  # d log p = 2 dQ / y


IMPACT_MODELS: dict[str, ImpactModel] = {
    model.name: model for model in (LinearImpact(), SqrtImpact(), ConstantProductImpact())
}
