"""Price history: log market and fundamental prices per step, with the pre-history before step 0.

Agents look back at prices (momentum's lookback, oracles' latency and TWAP, the attribution window), and at the
start of a run they look back into the pre-history (docs/model.md, 3.1 Initialisation): step t is row
t + `prehistory_steps`, and steps before the pre-history read its first row.
"""

from __future__ import annotations

import numpy as np


class PriceHistory:
    """Log prices (log USD/token, numéraire in column 0) at the end of each step, pre-history included.

    `market[row]` and `fundamental[row]` for row = step + `offset`; `offset` = the number of pre-history steps.
    """

    def __init__(self, prehistory: np.ndarray, steps: int) -> None:
        """prehistory: (P + 1, assets) log fundamental path whose last row is step 0; the market equals it (no
        one traded before the run). steps: the recorded run's length."""
        self.offset = len(prehistory) - 1
        n_rows = self.offset + steps + 1
        self.fundamental = np.zeros((n_rows, prehistory.shape[1]))
        self.fundamental[: self.offset + 1] = prehistory
        self.market = self.fundamental.copy()

    def row(self, step: int) -> int:
        """Array row of `step` (steps before the pre-history read its first row)."""
        return max(step + self.offset, 0)

    def log_market(self, step: int) -> np.ndarray:
        """Log market prices at the end of `step` (per asset)."""
        return self.market[self.row(step)]

    def log_fundamental(self, step: int) -> np.ndarray:
        """Log fundamental prices at the end of `step` (per asset)."""
        return self.fundamental[self.row(step)]

    def mean_market_price(self, first: int, last: int, asset: int) -> float:
        """Arithmetic mean of `asset`'s market price (USD/token) over steps first..last inclusive (a TWAP)."""
        prices = np.exp(self.market[self.row(first) : self.row(last) + 1, asset])
        # one price (a spot read) is its own mean, exactly what np.mean's sum and division by 1 would return
        return float(prices[0]) if len(prices) == 1 else float(np.mean(prices))

    def record(self, step: int, log_market: np.ndarray, log_fundamental: np.ndarray | None = None) -> None:
        """Store the prices of `step` (the fundamental too when given)."""
        self.market[self.row(step)] = log_market
        if log_fundamental is not None:
            self.fundamental[self.row(step)] = log_fundamental

    @property
    def recorded_market(self) -> np.ndarray:
        """(steps + 1, assets) log market prices of the recorded run, row t = step t (a view)."""
        return self.market[self.offset :]

    @property
    def recorded_fundamental(self) -> np.ndarray:
        """(steps + 1, assets) log fundamental prices of the recorded run, row t = step t (a view)."""
        return self.fundamental[self.offset :]
