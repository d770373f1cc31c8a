"""Oracle aggregation: the price the pool sees is the median of its updaters' latest posts (docs/model.md,
3.3 Submodels: Oracles).

The updaters themselves are Mesa agents (`abm.agents.oracle_updater`); this board only keeps their posts and
the aggregate, so the pool and the margin engine never import an agent.
"""

from __future__ import annotations

import math

import numpy as np

from abm.market.history import PriceHistory


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
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"oracle post for asset {asset} must be finite and > 0 (got {price!r})")
        self.posts[slot, asset] = price
        self.last_post_step[slot, asset] = step
        # one updater's post is its own median, exactly what np.median (the mean of the middle post) returns
        self.prices[asset] = self.posts[0, asset] if len(self.posts) == 1 else float(np.median(self.posts[:, asset]))
        self.n_posts += 1


def observed_price(history: PriceHistory, step: int, asset: int, latency: int, twap_window: int) -> float:
    """What an updater sees at `step`: the market price `latency` steps ago, or its TWAP over `twap_window` steps.

    The TWAP is the arithmetic mean of prices (as Uniswap v2's accumulator); before step 0 it reads the
    pre-history (docs/model.md, 3.1 Initialisation).
    """
    end = step - latency
    return history.mean_market_price(end - twap_window + 1, end, asset)
