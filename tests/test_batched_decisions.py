"""Parts of the traders' decisions found for every trader in one pass agree with each trader's own answer."""

from __future__ import annotations

import numpy as np

from abm.config import ModelConfig
from abm.model import ReflexivityModel


def test_lending_positions_is_has_position_of_every_trader() -> None:
    """`TraderBook.lending_positions` is `has_position()` of each trader, through a crash with liquidations,
    stops and re-entries (traders going flat and back)."""
    config = ModelConfig.from_preset(
        "crash",
        {
            "traders.n_traders": 200,
            "traders.assets_per_trader": 2,
            "traders.margin_mode_mix": {"isolated": 0.5, "cross": 0.5},
            "traders.risk_mix": {"stop_loss": 1.0},
            "traders.stop_loss_drawdown": 0.01,
            "traders.reentry_delay_steps": 5,
        },
    )
    m = ReflexivityModel(config, rng=2, steps=120)
    flat_seen = False
    for _ in range(120):
        m.step()
        held = m.book.lending_positions()
        own = np.array([t.has_position() for t in m.traders])
        assert np.array_equal(held, own)
        flat_seen |= not own.all()
    assert flat_seen and held.any()
