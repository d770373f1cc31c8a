"""RiskManager: moves each risky collateral reserve's LTV and liquidation threshold with the market's realised
volatility, in bounded steps no more often than a cadence (docs/model.md, 3.3 Submodels: Adaptive risk
parameters).

The rule and its bookkeeping are the risk steward's (`abm.lending.risk_steward.RiskSteward`, the formula
`abm.protocol.steward_update`); this agent feeds it the volatility the market already estimates
(`Market.realised_vol`, the EWMA traders and depth thinning use) and writes its changes into the configuration
through `ReflexivityModel.change_parameters`, the one way parameters change during a run (as scenario `set`
events do), so the pool and the margin engine read the new values where they always read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.lending.risk_steward import RiskSteward

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
    """A risk steward with a volatility feed: each step it offers every managed reserve the market's realised
    volatility; the steward changes a reserve when its target has moved and `risk_manager.cadence_steps` have
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

    @property
    def managed(self) -> np.ndarray:
        return self.steward.managed

    def step(self) -> None:
        m = self.model
        steward = self.steward
        t = m.steps
        seen = len(steward.history)
        if not steward.update(t, np.maximum(m.market.realised_vol(), _MIN_VOL)):
            return
        overrides: dict[str, float] = {}
        for change in steward.history[seen:]:
            reserve = f"pool.reserves.{m.symbols[change.reserve]}"
            overrides[f"{reserve}.ltv"] = change.ltv
            overrides[f"{reserve}.liquidation_threshold"] = change.lt
        m.change_parameters(overrides)
