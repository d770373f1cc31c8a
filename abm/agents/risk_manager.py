"""RiskManager: moves each risky collateral reserve's LTV and liquidation threshold with volatility, in bounded
steps no more often than a cadence (docs/model.md, 3.3 Submodels: Adaptive risk parameters).

The rule and its bookkeeping are the risk steward's (`abm.lending.risk_steward.RiskSteward`, the formula
`abm.protocol.steward_update`); this agent feeds it a volatility (`risk_manager.vol_feed`: by default its own short
half-life EWMA of the market price, `abm.protocol.ewma_variance`, as a risk oracle reading minute data; or the same
of the oracle price; or the one the market already estimates, `Market.realised_vol`, the one-day EWMA traders and
depth thinning use, which shows a fast crash minutes late) and writes its changes into the configuration through
`ReflexivityModel.change_parameters`, the one way parameters change during a run (as scenario `set` events do), so
the pool and the margin engine read the new values where they always read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.lending.risk_steward import RiskSteward
from abm.protocol import ewma_variance

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

# a market that has not moved at all has no volatility; the target formula needs sigma > 0 (per sqrt year)
_MIN_VOL = 1e-12


def managed_reserves(ltv: np.ndarray, liquidation_threshold: np.ndarray, collateral_enabled: np.ndarray) -> np.ndarray:
    """Reserves the manager moves (bool per reserve, numéraire first): the risky ones that count as collateral with
    0 < LTV < LT (a reserve with LTV 0, or LTV = LT, has no borrowing band to move; the numéraire has no
    volatility of its own)."""
    managed = np.asarray(collateral_enabled, dtype=bool) & (ltv > 0) & (ltv < liquidation_threshold)
    managed[0] = False
    return managed


class RiskManager(mesa.Agent):
    """A risk steward with a volatility feed: each step it offers every managed reserve the volatility of its feed
    (`realised_vol`); the steward changes a reserve when its target has moved and `risk_manager.cadence_steps` have
    passed since that reserve's last change, by at most `max_change`, within [configured - max_cut, configured +
    max_raise] for both LTV and LT (the gap LT - LTV stays as configured).

    `configured_ltv`, `configured_lt`: the parameters the run started with (per reserve), the static reference of
    the borrowing-capacity columns.
    """

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel) -> None:
        super().__init__(model)
        cfg = model.config.risk_manager
        pool = model.pool
        self.configured_ltv = pool.ltv.copy()
        self.configured_lt = pool.liquidation_threshold.copy()
        managed = managed_reserves(pool.ltv, pool.liquidation_threshold, pool.collateral_enabled)
        self.steward = RiskSteward(
            pool.ltv,
            pool.liquidation_threshold,
            pool.liquidation_bonus,
            managed=managed,
            k_sigma=cfg.k_sigma,
            horizon_days=cfg.horizon_days,
            max_change=cfg.max_change,
            min_delay_steps=cfg.cadence_steps,
            lt_bounds=(self.configured_lt - cfg.max_cut, self.configured_lt + cfg.max_raise),
        )
        # the manager's own feed (vol_feed 'market' or 'oracle'): per-step variance, starting where the market's
        # EWMA starts (the configured volatility), and the log prices it last saw (None until its first step)
        self.feed = cfg.vol_feed
        self.half_life = cfg.vol_half_life_steps
        self.feed_var = model.market.realised_var.copy()
        self.feed_log_price: np.ndarray | None = None

    @property
    def managed(self) -> np.ndarray:
        return self.steward.managed

    def realised_vol(self) -> np.ndarray:
        """The volatility the manager reads now (per asset, per sqrt year), as prices stood at the end of the last
        step: the market's EWMA, or its own feed updated with the last step's log return (so it is read once a step,
        by `step`)."""
        m = self.model
        if self.feed == "realised":
            return m.market.realised_vol()
        log_price = m.market.log_p.copy() if self.feed == "market" else np.log(m.oracle.prices)
        if self.feed_log_price is not None:
            self.feed_var = ewma_variance(self.feed_var, log_price - self.feed_log_price, self.half_life)
        self.feed_log_price = log_price
        return np.sqrt(self.feed_var * m.market.steps_per_year)

    def step(self) -> None:
        m = self.model
        steward = self.steward
        t = m.steps
        seen = len(steward.history)
        if not steward.update(t, np.maximum(self.realised_vol(), _MIN_VOL)):
            return
        overrides: dict[str, float] = {}
        for change in steward.history[seen:]:
            reserve = f"pool.reserves.{m.symbols[change.reserve]}"
            overrides[f"{reserve}.ltv"] = change.ltv
            overrides[f"{reserve}.liquidation_threshold"] = change.lt
        m.change_parameters(overrides)
