"""A risk steward that moves each reserve's LTV and liquidation threshold with realised volatility, in bounded steps
no more often than a minimum delay (docs/model.md, "Adaptive risk parameters"; the update rule is
`abm.protocol.steward_update`).

Modelled on Aave's Risk Stewards (aave-dao/aave-v3-risk-stewards): a per-parameter `minDelay` between two changes
of one parameter, and a `maxPercentChange` that for LTV, liquidation threshold and bonus is an absolute change
(the deployed configuration: 3 days and 50 bps). The steward only proposes values; the caller writes them into the
pool's risk parameters (and refreshes what caches them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.protocol import steward_update, volatility_liquidation_threshold


@dataclass(frozen=True)
class StewardChange:
    """One reserve's update: LTV and liquidation threshold (fractions) before and after, the realised volatility it
    answered (per sqrt year) and the threshold it was heading for."""

    step: int
    reserve: int
    ltv_before: float
    lt_before: float
    ltv: float
    lt: float
    realised_vol: float
    target_lt: float


class RiskSteward:
    """Schedule, state and history of the volatility-driven risk parameters of a set of reserves.

    ltv, liquidation_threshold, bonus: per reserve (fractions; the numéraire or any reserve not `managed` is left
    alone). k_sigma, horizon_days: the target (`abm.protocol.volatility_liquidation_threshold`); max_change: the
    largest absolute change per update (fraction); min_delay_steps: steps that must pass after a reserve's last
    change before it may change again; ltv_gap: the LT - LTV spread to keep (fraction), by default each reserve's
    spread at the start; lt_bounds: (lowest, highest) liquidation threshold per reserve (fractions, the start
    within them; default none), the LTV's bounds being these less the gap. Clipping a proposal into bounds that
    hold the current value only shortens its move, so neither `max_change` nor LTV < LT is ever broken.
    """

    def __init__(
        self,
        ltv: np.ndarray,
        liquidation_threshold: np.ndarray,
        bonus: np.ndarray,
        *,
        managed: np.ndarray | None = None,
        k_sigma: float = 3.0,
        horizon_days: float = 1.0,
        max_change: float = 0.005,
        min_delay_steps: int = 4320,
        ltv_gap: np.ndarray | float | None = None,
        lt_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.ltv = np.array(ltv, dtype=np.float64)
        self.lt = np.array(liquidation_threshold, dtype=np.float64)
        self.bonus = np.array(bonus, dtype=np.float64)
        n = len(self.ltv)
        if self.lt.shape != (n,) or self.bonus.shape != (n,):
            raise ValueError(f"liquidation_threshold and bonus must have one entry per reserve ({n})")
        self.managed = np.ones(n, dtype=bool) if managed is None else np.array(managed, dtype=bool)
        if self.managed.shape != (n,):
            raise ValueError(f"managed must have one entry per reserve ({n}) (got shape {self.managed.shape})")
        if min_delay_steps < 1:
            raise ValueError(f"min_delay_steps must be >= 1 (got {min_delay_steps!r})")
        self.k_sigma, self.horizon_days, self.max_change = k_sigma, horizon_days, max_change
        self.min_delay_steps = min_delay_steps
        gap = self.lt - self.ltv if ltv_gap is None else np.broadcast_to(np.asarray(ltv_gap, dtype=np.float64), (n,))
        self.ltv_gap = np.array(gap)
        m = self.managed
        # validate the start (and the rule's arguments) once, with the same one-line errors as each update
        steward_update(
            self.ltv[m],
            self.lt[m],
            np.ones(int(m.sum())),
            self.bonus[m],
            k_sigma=k_sigma,
            horizon_days=horizon_days,
            max_change=max_change,
            ltv_gap=self.ltv_gap[m],
        )
        lo, hi = (np.zeros(n), np.ones(n)) if lt_bounds is None else lt_bounds
        self.lt_min = np.broadcast_to(np.asarray(lo, dtype=np.float64), (n,)).copy()
        self.lt_max = np.broadcast_to(np.asarray(hi, dtype=np.float64), (n,)).copy()
        outside = m & ((self.lt < self.lt_min) | (self.lt > self.lt_max))
        if outside.any():
            r = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"liquidation_threshold[{r}] = {self.lt[r]!r} must lie within lt_bounds "
                f"[{self.lt_min[r]!r}, {self.lt_max[r]!r}]"
            )
        self.last_change = np.full(n, -min_delay_steps, dtype=np.int64)
        self.history: list[StewardChange] = []

    def due(self, step: int) -> np.ndarray:
        """Managed reserves whose minimum delay has passed at `step` (boolean per reserve)."""
        return self.managed & (step - self.last_change >= self.min_delay_steps)

    def update(self, step: int, realised_vol: np.ndarray) -> bool:
        """Move every due reserve's (LTV, LT) one bounded step toward its volatility target; realised_vol per
        reserve, per sqrt year (> 0 where due). Returns whether any parameter changed (the caller then writes
        `ltv` and `lt` into the pool)."""
        vol = np.asarray(realised_vol, dtype=np.float64)
        due = self.due(step)
        if not due.any():
            return False
        idx = np.flatnonzero(due)
        new_ltv, new_lt = steward_update(
            self.ltv[idx],
            self.lt[idx],
            vol[idx],
            self.bonus[idx],
            k_sigma=self.k_sigma,
            horizon_days=self.horizon_days,
            max_change=self.max_change,
            ltv_gap=self.ltv_gap[idx],
        )
        gap = self.ltv_gap[idx]
        new_lt = np.clip(np.atleast_1d(new_lt), self.lt_min[idx], self.lt_max[idx])
        new_ltv = np.clip(np.atleast_1d(new_ltv), self.lt_min[idx] - gap, self.lt_max[idx] - gap)
        changed = False
        for j, r in enumerate(idx):
            if new_ltv[j] == self.ltv[r] and new_lt[j] == self.lt[r]:
                continue  # no change: the delay clock does not restart (Aave times changes, not calls)
            target = float(volatility_liquidation_threshold(vol[r], self.bonus[r], self.k_sigma, self.horizon_days))
            self.history.append(
                StewardChange(
                    step,
                    int(r),
                    float(self.ltv[r]),
                    float(self.lt[r]),
                    float(new_ltv[j]),
                    float(new_lt[j]),
                    float(vol[r]),
                    target,
                )
            )
            self.ltv[r], self.lt[r] = new_ltv[j], new_lt[j]
            self.last_change[r] = step
            changed = True
        return changed
