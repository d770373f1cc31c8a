"""Oracle aggregation: the price the pool sees is the median of its updaters' latest posts (SPEC 3.4).

The updaters themselves are Mesa agents (`abm.agents.oracle_updater`); this board only keeps their posts and
the aggregate, so the pool and the margin engine never import an agent.
"""

from __future__ import annotations

import numpy as np


class OracleBoard:
    """Latest post of every updater, per asset, and the median the protocol uses (numéraire fixed at 1)."""

    def __init__(self, initial_prices: np.ndarray, updaters_per_asset: int) -> None:
        n_assets = len(initial_prices)
        self.posts = np.tile(initial_prices.astype(float), (updaters_per_asset, 1))  # (updaters, assets)
        self.posts[:, 0] = 1.0
        self.prices = np.median(self.posts, axis=0)
        self.last_post_step = np.zeros((updaters_per_asset, n_assets), dtype=np.int64)
        self.n_posts = 0

    def post(self, slot: int, asset: int, price: float, step: int) -> None:
        """Record updater `slot`'s new price for `asset` and refresh that asset's median."""
        if not (np.isfinite(price) and price > 0):
            raise ValueError(f"oracle post for asset {asset} must be finite and > 0 (got {price!r})")
        self.posts[slot, asset] = price
        self.last_post_step[slot, asset] = step
        self.prices[asset] = float(np.median(self.posts[:, asset]))
        self.n_posts += 1


def observed_price(log_price_history: np.ndarray, step: int, asset: int, latency: int, twap_window: int) -> float:
    """What an updater sees at `step`: the market price `latency` steps ago, or its TWAP over `twap_window` steps.

    log_price_history: (steps + 1, assets) log market prices, row t = end of step t. The TWAP is the arithmetic
    mean of prices (as Uniswap v2's accumulator), clipped at step 0.
    """
    end = max(step - latency, 0)
    start = max(end - twap_window + 1, 0)
    return float(np.mean(np.exp(log_price_history[start : end + 1, asset])))
