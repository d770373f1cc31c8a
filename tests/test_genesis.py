"""The vectorised genesis pass (`abm.agents.genesis`) leaves the state opening the positions one trader at a time
leaves, bit for bit, and declines (changing nothing) where it cannot."""

from __future__ import annotations

import numpy as np
import pytest

import abm.model as model_module
from abm.agents import PerpTrader
from abm.config import ModelConfig
from abm.lending import MarginEngine
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


def test_trader_accounts_opened_in_one_pass_as_one_at_a_time() -> None:
    """The accounts `MarginEngine.open_accounts` opens for the whole population are the ids, owners and modes that
    each trader opening its own in turn (`LeveragedTrader.open_accounts`) gives."""
    config = ModelConfig.from_preset(
        "perp_crash",
        {
            "traders.n_traders": 120,
            "traders.assets_per_trader": 2,
            "traders.margin_mode_mix": {"isolated": 0.5, "cross": 0.5},
        },
    )
    m = ReflexivityModel(config, rng=5)
    expected = MarginEngine(m.pool, m.wallets, m.market, capacity=max(16, 2 * config.traders.n_traders))
    n_perp = 0
    for trader in m.traders:
        if isinstance(trader, PerpTrader):
            n_perp += 1
            continue
        if trader.mode == "isolated":
            ids = [expected.open_account(trader.holder, "isolated") for _ in trader.assets]
        else:
            ids = [expected.open_account(trader.holder, trader.mode)] * len(trader.assets)
        assert trader.accounts == ids
    assert 0 < n_perp < len(m.traders)
    n = expected.n
    assert np.array_equal(m.engine.owner[:n], expected.owner[:n])
    assert np.array_equal(m.engine.mode[:n], expected.mode[:n])
