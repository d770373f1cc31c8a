"""The exogenous baseline of the Hawkes check: how many lending accounts the path without liquidation sales would
push below health factor 1, counted step by step on the live book (docs/contagion.md, Hawkes check).

At the health pass of step t the oracle shows the market at the end of step t - lag (lag = the oracles' latency,
at least 1: an oracle without latency reads the market before this step's trades), and the market carries the
decayed impact of earlier liquidation sales (`Market.liquidation_impact`, log units, L_s at the end of step s).
Taking that impact out of what the oracle shows gives the non-liquidation oracle prices
p_t = oracle_t exp(-L_{t - lag}); along each
amplified path p_0 (p_t / p_0)^a (a in `BASELINE_AMPLIFICATIONS`, p_0 the first pass's prices) the tracker counts
the accounts, with the positions they hold at step t, whose health factor is below 1 now and was not at the
previous pass: new crossings. The amplified paths let the baseline anticipate crossings the path alone does not
quite reach, and positions opened or changed after step 0 count, which positions frozen at step 0 would miss.

Nothing here reads the cascade attribution: the baseline is built from prices no liquidation sale moved and the
book's own positions only, so the Hawkes fit's excitation is an independent estimate of the graph's branching ratio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

BASELINE_AMPLIFICATIONS: tuple[float, ...] = (1.0, 1.5, 2.0)


def baseline_crossing_columns() -> list[str]:
    """Names of the per-step columns of new baseline crossings, one per amplification, in
    `BASELINE_AMPLIFICATIONS` order: ``baseline_crossings_x1``, ``baseline_crossings_x1.5``, ``baseline_crossings_x2``."""
    return [f"baseline_crossings_x{a:g}" for a in BASELINE_AMPLIFICATIONS]


class BaselineCrossings:
    """Per step, the new health-factor crossings of the live lending book along the amplified non-liquidation
    oracle paths (`count`), and the market's liquidation impact at the end of every step (`record_impact`), from
    which the non-liquidation oracle prices are taken."""

    def __init__(self, model: ReflexivityModel) -> None:
        self.model = model
        n_assets = len(model.symbols)
        self.impact = np.zeros((model.total_steps + 1, n_assets))  # row t: Market.liquidation_impact after step t
        self.reference: np.ndarray | None = None  # p_0: the first pass's non-liquidation oracle prices
        self.below = np.zeros((len(BASELINE_AMPLIFICATIONS), 0), dtype=bool)
        self.new_crossings = np.zeros(len(BASELINE_AMPLIFICATIONS), dtype=np.int64)
        # the price rows of one health pass (`pass_prices`), refilled at every pass rather than made anew; the
        # amplified paths' rows as views made once, with their amplifications
        self._pass_prices = np.empty((1 + len(BASELINE_AMPLIFICATIONS), n_assets))
        self._path_rows = list(zip(self._pass_prices[1:], BASELINE_AMPLIFICATIONS, strict=True))
        # what the rows were made from (oracle prices, impact): the oracle holds its prices for steps at
        # a time, and before the first liquidation sale the impact stays 0, so the same rows come back often
        self._pass_inputs: tuple[bytes, bytes] | None = None

    def record_impact(self, step: int) -> None:
        """Keep the market's decayed liquidation impact (log, per asset) at the end of `step`."""
        self.impact[step] = self.model.market.liquidation_impact

    def pass_prices(self, step: int, oracle: np.ndarray) -> np.ndarray:
        """The price rows of the health pass of `step` (USD/token): the `oracle` prices, then the amplified
        non-liquidation oracle prices p_0 (p / p_0)^a, one row per amplification a in `BASELINE_AMPLIFICATIONS`
        order (a = 1: the non-liquidation prices themselves). The first call fixes the reference p_0. The rows are a
        buffer the next call overwrites."""
        # the oracle posted at this step shows the market at the end of step - latency (at least the step before)
        lag = max(int(self.model.config.oracles.latency_steps), 1)
        impact = self.impact[max(step - lag, 0)]
        rows = self._pass_prices
        inputs = (oracle.tobytes(), impact.tobytes())  # bit for bit
        if inputs == self._pass_inputs:  # the same prices as the last pass's: its rows stand
            return rows
        prices = oracle * np.exp(-impact)
        if self.reference is None:
            self.reference = prices.copy()
        rows[0] = oracle
        move = prices / self.reference  # the relative move p / p_0, the same for every amplification
        for row, amplification in self._path_rows:
            # x ** 1.0 is x (numpy's power copies it): no power to take for the path itself
            np.multiply(self.reference, move if amplification == 1.0 else move**amplification, out=row)
        self._pass_inputs = inputs
        return rows

    def count(self, health_factors: np.ndarray) -> None:
        """New crossings at this health pass (sets `new_crossings`, one count per amplification), from every
        account's health factor along each amplified path of `pass_prices` (paths x accounts)."""
        n = health_factors.shape[1]
        if self.below.shape[1] < n:  # new accounts start above the line
            grown = np.zeros((len(BASELINE_AMPLIFICATIONS), n), dtype=bool)
            grown[:, : self.below.shape[1]] = self.below
            self.below = grown
        _count_crossings(health_factors, self.below, self.new_crossings)


@njit(cache=True, nogil=True)
def _count_crossings(health_factors: np.ndarray, below: np.ndarray, new_crossings: np.ndarray) -> None:
    """Per path (row of `health_factors`), how many accounts are below 1 now (a NaN health is not) and were not at
    the last pass (`below`, (paths, accounts), then updated in place): into `new_crossings`. One pass, where numpy
    made three arrays the size of the book."""
    for k in range(health_factors.shape[0]):
        crossed = 0
        hf, was_below = health_factors[k], below[k]
        for i in range(health_factors.shape[1]):
            now = hf[i] < 1.0
            crossed += now and not was_below[i]
            was_below[i] = now
        new_crossings[k] = crossed
