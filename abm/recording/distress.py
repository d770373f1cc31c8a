"""The equity snapshot of every account and trader at one step, the input of the run's distress metrics.

The model takes one when its genesis positions exist; `abm.run.collect_result` takes another at the end and
`abm.contagion.distress.distress_metrics` compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.agents.book import TraderBook
from abm.lending.margin import MarginEngine


@dataclass
class EquitySnapshot:
    """Per-account and per-trader state at one step (market prices), for distress measures (USD)."""

    account_equity: np.ndarray
    positions: np.ndarray  # (accounts, risky assets) bool: holds collateral or debt of the asset
    has_debt: np.ndarray
    trader_equity: np.ndarray


def equity_snapshot(engine: MarginEngine, book: TraderBook, prices: np.ndarray) -> EquitySnapshot:
    """Equity of every account (collateral - debt) and trader (its accounts plus its wallet) at `prices`."""
    coll, debt = engine.values(prices)
    positions = (coll[:, 1:] > 0) | (debt[:, 1:] > 0)
    return EquitySnapshot(engine.account_equity(prices), positions, debt.sum(axis=1) > 0, book.equity(prices))
