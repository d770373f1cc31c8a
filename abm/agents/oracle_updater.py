"""OracleUpdater: posts one asset's price when it deviates enough from the last post or a heartbeat elapses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

from abm.market.oracle import observed_price

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


class OracleUpdater(mesa.Agent):
    """A keeper that observes the market (or the asset's thin oracle venue, `abm.market.venue`) with a latency
    (optionally a TWAP) and posts to the oracle board.

    slot: which of the asset's updaters this is (the pool uses the median across slots).
    latency_jitter: extra steps of latency of this updater (heterogeneous feeds), on top of the configured one.
    """

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, asset: int, slot: int, latency_jitter: int) -> None:
        super().__init__(model)
        self.asset = asset
        self.slot = slot
        self.latency_jitter = latency_jitter

    def step(self) -> None:
        m = self.model
        cfg = m.config.oracles
        t = m.steps
        venue = m.oracle_venue  # an updater of a thin venue's asset may read the venue instead of the market
        history = venue.history if venue is not None and venue.is_read_by(self.asset, self.slot) else m.history
        seen = observed_price(
            history, t - 1, self.asset, cfg.latency_steps + self.latency_jitter, cfg.twap_window_steps
        )
        board = m.oracle
        last = board.posts[self.slot, self.asset]
        stale = t - board.last_post_step[self.slot, self.asset] >= cfg.heartbeat_steps
        if stale or abs(seen / last - 1.0) >= cfg.deviation_threshold:
            board.post(self.slot, self.asset, seen, t)
