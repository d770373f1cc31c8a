"""A thin oracle venue: a second, shallow market for one risky asset that some of its oracle updaters read, apart
from the deep market every trader uses (docs/model.md, 3.3 Submodels: Oracles).

Real oracle manipulations (Mango Markets' MNGO in October 2022, Inverse Finance's INV in April 2022) pushed such a
venue, not the deep market: a price source the oracle read that was cheap to move, with arbitrage pulling it back.
The venue is a `Market` (the same linear impact code, fills and token ledger) whose "fundamental" is the deep
market's price: its log price is the market's plus its own log impact, and that impact decays by the factor
1 - `arbitrage_fraction` each step, so arbitrage closes that share of the gap. Its depth is absolute (not scaled by
`market.depth_scale`) and does not thin with volatility. Only the venue's asset is traded on it; the other assets'
columns exist so that its arrays line up with the market's.
"""

from __future__ import annotations

import numpy as np

from abm.config.schema import ModelConfig
from abm.market.history import PriceHistory
from abm.market.impact import Market


class OracleVenue:
    """The thin venue of `oracle_venue.asset`: its market (impact state and token ledger), its price history, and
    which of the asset's updater slots read it (the last `readers` slots)."""

    def __init__(self, config: ModelConfig, log_market: np.ndarray, prehistory: np.ndarray, steps: int) -> None:
        """log_market: the deep market's log prices at the start (per asset); prehistory: the pre-history of log
        prices (the venue equals the market before the run); steps: the run's length."""
        vcfg = config.oracle_venue
        self.asset = config.symbols.index(vcfg.asset)
        self.first_reader = config.oracles.n_updaters - vcfg.readers
        # one half-life per step count so the linear impact's decay factor 0.5 ** (1 / half-life) is 1 - f
        half_life = float(np.log(0.5) / np.log1p(-vcfg.arbitrage_fraction))
        overrides: dict[str, object] = {f"assets.{s}.impact": "linear" for s in config.assets}
        overrides |= {f"assets.{vcfg.asset}.depth_usd": vcfg.depth_usd, "market.impact_half_life_steps": half_life}
        overrides |= {"market.depth_scale": 1.0, "market.depth_vol_elasticity": 0.0}
        self.market = Market(config.with_overrides(overrides), log_market)
        self.history = PriceHistory(prehistory, steps)

    def is_read_by(self, asset: int, slot: int) -> bool:
        """Whether updater `slot` of `asset` reads the venue (else the deep market)."""
        return asset == self.asset and slot >= self.first_reader

    def price(self) -> float:
        """The venue's price of its asset (USD/token)."""
        return self.market.price(self.asset)

    def depth(self) -> float:
        """The venue's linear depth (USD per unit of log price)."""
        return self.market.depth(self.asset)

    def begin_step(self, t: int, log_market: np.ndarray) -> None:
        """Follow the deep market's move, let arbitrage close the share f of the venue's own impact, and record the
        step's provisional (pre-trade) price."""
        self.market.begin_step(log_market)
        self.history.record(t, self.market.log_p)

    def end_step(self, t: int) -> None:
        """Record the step's closing price (after the trades), as the deep market's history is."""
        self.history.record(t, self.market.log_p)
