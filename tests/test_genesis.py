"""The vectorised genesis pass (`abm.agents.genesis`) leaves the state opening the positions one trader at a time
leaves, bit for bit, and declines (changing nothing) where it cannot."""

from __future__ import annotations

import numpy as np
import pytest

import abm.model as model_module
from abm.config import ModelConfig
from abm.model import ReflexivityModel


def _state(m: ReflexivityModel) -> list[np.ndarray]:
    return [
        m.engine.collateral,
        m.engine.scaled_debt,
        m.wallets.balances,
        m.pool.cash,
        m.pool.scaled_borrows,
        m.market.world_net,
        m.pool.borrow_rates(),
    ]


def _build(config: ModelConfig, vectorised: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[ReflexivityModel, list]:
    taken: list[bool] = []
    real = model_module.open_genesis_positions

    def spy(m: ReflexivityModel, order: np.ndarray) -> bool:
        taken.append(real(m, order) if vectorised else False)
        return taken[-1]

    monkeypatch.setattr(model_module, "open_genesis_positions", spy)
    return ReflexivityModel(config, rng=3), taken


@pytest.mark.parametrize(
    ("preset", "overrides", "expect_fast"),
    [
        ("crash", {"traders.n_traders": 300}, True),
        (
            "crash",
            {
                "traders.n_traders": 300,
                "traders.assets_per_trader": 2,
                "traders.margin_mode_mix": {"isolated": 0.5, "cross": 0.5},
            },
            True,
        ),
        ("contagion", {"traders.n_traders": 200}, True),
        ("crash", {"traders.n_traders": 300, "traders.borrow_rate_tolerance": 0.001}, False),  # carry binds
        ("perp_crash", {"traders.n_traders": 200}, False),  # perp traders open their own way
    ],
)
def test_genesis_pass_matches_one_at_a_time(
    preset: str, overrides: dict, expect_fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ModelConfig.from_preset(preset, overrides)
    fast, taken = _build(config, True, monkeypatch)
    slow, _ = _build(config, False, monkeypatch)
    assert taken == [expect_fast]
    for x, y in zip(_state(fast), _state(slow), strict=True):
        assert np.array_equal(x.view(np.uint8), y.view(np.uint8))
    assert slow.engine.scaled_debt[: slow.engine.n].any()  # positions were opened
