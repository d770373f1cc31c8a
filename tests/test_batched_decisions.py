"""Parts of the traders' decisions found for every trader in one pass agree with each trader's own answer."""

from __future__ import annotations

import numpy as np

from abm.agents.strategies import target_leverages
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


def test_target_leverages_is_each_traders_target() -> None:
    """`strategies.target_leverages` gives each trader's own `target_leverage()` bit for bit, every strategy,
    before the run and along it (contrarians inside their band read their current leverage)."""
    config = ModelConfig.from_preset(
        "crash",
        {
            "traders.n_traders": 300,
            "traders.strategy_mix": {
                "hodl": 0.2,
                "short": 0.2,
                "momentum": 0.2,
                "contrarian": 0.2,
                "vol_target": 0.2,
            },
        },
    )
    m = ReflexivityModel(config, rng=4, steps=60)
    for step in range(60):
        if step % 10 == 0:
            prices = m.market.prices
            current = np.array([t.current_leverage(prices) for t in m.traders])
            batch = target_leverages(m, m.traders, current)
            own = np.array([t.target_leverage() for t in m.traders])
            assert np.array_equal(batch.view(np.uint8), own.view(np.uint8))
            assert len(np.unique(own)) > 5
        m.step()
