"""Portfolio margin with the model's own scenario grid (each asset alone and all together, by 1 - LT)."""

from __future__ import annotations

import numpy as np
import pytest

import abm
from abm import ModelConfig, ReflexivityModel
from abm.protocol import liquidation_price

USD, ETH, BTC = 0, 1, 2


@pytest.fixture(scope="module")
def model() -> ReflexivityModel:
    return ReflexivityModel(ModelConfig.from_preset("crash", {"traders.n_traders": 4}), rng=0, steps=10)


def place(model: ReflexivityModel, mode: str, coll: list[float], debt: list[float]) -> int:
    """An account holding `coll` tokens as collateral and owing `debt` tokens (set directly: HF formulas only)."""
    engine = model.engine
    acct = engine.open_account(0, mode)
    engine.collateral[acct] = coll
    engine.scaled_debt[acct] = np.asarray(debt) / model.pool.borrow_index
    return acct


def requirements(model: ReflexivityModel, acct: int, prices: np.ndarray) -> tuple[float, float]:
    """(portfolio requirement: worst scenario loss; cross requirement: sum c (1 - LT)), USD."""
    coll, debt = model.engine.values(prices)
    net = coll[acct] - debt[acct]
    port = max(float((-(net @ model.engine.scenarios)).max()), 0.0)
    cross = float((coll[acct] * (1.0 - model.pool.liquidation_threshold)).sum())
    return port, cross


def test_model_scenario_grid_is_one_minus_lt(model: ReflexivityModel) -> None:
    grid = model.engine.scenarios
    lt = model.pool.liquidation_threshold
    assert grid.shape == (3, 2 + 2 * 2)  # all down, all up, then each asset down and up
    np.testing.assert_allclose(grid[0], 0.0)  # the numéraire never moves
    np.testing.assert_allclose(np.abs(grid[1:]).max(axis=1), 1.0 - lt[1:])


def test_hedged_book_needs_less_under_portfolio_margin(model: ReflexivityModel) -> None:
    prices = model.oracle.prices
    p_eth, p_btc = prices[ETH], prices[BTC]
    # long $10000 of ETH on $7500 of USD debt, short $9000 of BTC whose proceeds (and $0 more) sit as USD
    coll = [9000.0, 10_000.0 / p_eth, 0.0]
    debt = [7500.0, 0.0, 9000.0 / p_btc]
    port = place(model, "portfolio", coll, debt)
    cross = place(model, "cross", coll, debt)
    lt = model.pool.liquidation_threshold
    req_p, req_c = requirements(model, port, prices)
    # portfolio: worst of ETH -17.5% alone (1750), BTC +22% alone (1980), both together (230) -> 1980
    assert req_p == pytest.approx(max(10_000 * (1 - lt[ETH]), 9000 * (1 - lt[BTC])))
    # cross: 9000 * 0.22 + 10000 * 0.175 = 3730
    assert req_c == pytest.approx(9000 * (1 - lt[USD]) + 10_000 * (1 - lt[ETH]))
    assert req_p < req_c
    hf = model.engine.health(prices)
    equity = 19_000.0 - 16_500.0
    assert hf[port] == pytest.approx(equity / req_p)
    assert hf[cross] == pytest.approx((9000 * lt[USD] + 10_000 * lt[ETH]) / 16_500)
    assert hf[cross] < 1.0 < hf[port]  # the same book is liquidatable in cross mode only
    assert model.engine.plan_liquidation(cross, prices) is not None
    assert model.engine.plan_liquidation(port, prices) is None
    # joint moves: the hedge keeps the portfolio account healthy wherever ETH and BTC move together by up to 15%
    for move in np.linspace(-0.15, 0.15, 7):
        moved = prices * np.array([1.0, 1 + move, 1 + move])
        assert model.engine.account_health(port, moved) > 1.0


def test_single_asset_long_liquidates_exactly_as_cross(model: ReflexivityModel) -> None:
    prices = model.oracle.prices.copy()
    tokens, debt_usd = 2.0, 0.7 * 2.0 * prices[ETH]
    port = place(model, "portfolio", [0.0, tokens, 0.0], [debt_usd, 0.0, 0.0])
    cross = place(model, "cross", [0.0, tokens, 0.0], [debt_usd, 0.0, 0.0])
    lt = float(model.pool.liquidation_threshold[ETH])
    liq = float(liquidation_price(tokens, debt_usd, lt))
    at = prices.copy()
    at[ETH] = liq
    hf = model.engine.health(at)
    np.testing.assert_allclose(hf[[port, cross]], [1.0, 1.0], rtol=1e-12)
    # the same liquidatable set at every price (HF values differ away from 1: equity / (X (1 - LT)) vs X LT / D)
    for p in np.linspace(0.6, 1.4, 41) * liq:
        at[ETH] = p
        hf = model.engine.health(at)
        assert (hf[port] < 1.0) == (hf[cross] < 1.0)
        x = tokens * p
        assert hf[port] == pytest.approx(max(x - debt_usd, 0.0) / (x * (1 - lt)))  # equity floored at 0
        assert hf[cross] == pytest.approx(x * lt / debt_usd)


def test_long_only_multi_asset_book_has_the_same_requirement(model: ReflexivityModel) -> None:
    # with one debt currency and only longs, the worst scenario is "everything down": sum X_k (1 - LT_k),
    # which is the cross maintenance requirement; portfolio margin only helps hedged or short books
    prices = model.oracle.prices
    acct = place(model, "portfolio", [0.0, 1.0, 0.05], [4000.0, 0.0, 0.0])
    req_p, req_c = requirements(model, acct, prices)
    assert req_p == pytest.approx(req_c)


def test_portfolio_traders_run_end_to_end_with_invariants() -> None:
    cfg = ModelConfig.from_preset(
        "crash",
        {
            "traders.n_traders": 60,
            "traders.margin_mode_mix": {"portfolio": 1.0},
            "traders.strategy_mix": {"hodl": 0.6, "short": 0.2, "momentum": 0.2},
            "check_invariants": True,
        },
    )
    result = abm.run(cfg, seed=2, steps=320)
    model = result.model
    assert model is not None
    assert set(model.engine.mode[: model.engine.n].tolist()) == {2}  # every account portfolio-margined
    assert len(result.events) > 0  # the crash liquidates some of them
    assert (result.events["hf_before"] < 1.0).all()
    assert result.summary["n_liquidations"] == len(result.events)


def test_margin_mix_preset_runs_with_invariants() -> None:
    cfg = ModelConfig.from_preset("margin_mix", {"traders.n_traders": 40, "check_invariants": True})
    result = abm.run(cfg, seed=1, steps=300)
    model = result.model
    assert model is not None
    assert set(model.engine.mode[: model.engine.n].tolist()) == {0, 1, 2}
