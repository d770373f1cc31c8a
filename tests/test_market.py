"""The outside market: fills along the impact path, decay, AMM arbitrage, depth thinning, the market ledger."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SystemFactory

from abm.config import ModelConfig
from abm.market import Fundamentals, Market

USD, ETH = 0, 1
MODELS = ("linear", "sqrt", "cpmm")


def market_for(make_system: SystemFactory, impact: str, **overrides: object) -> Market:
    """The baseline market (ETH at $3000, depth $2e9, volume $1.5e10/day) with ETH's impact model set."""
    return make_system({"assets.ETH.impact": impact, **overrides}).market


@pytest.mark.parametrize("impact", MODELS)
def test_quotes_equal_executions_and_do_not_move_the_market(make_system: SystemFactory, impact: str) -> None:
    mkt = market_for(make_system, impact)
    state = (mkt.m.copy(), mkt.amm_x.copy(), mkt.amm_y.copy(), mkt.inventory.copy())
    q_buy = mkt.quote_buy(ETH, 5e6)
    mkt.quote_sell(ETH, 1000.0)
    mkt.quote_cost(ETH, 1000.0)
    for before, after in zip(state, (mkt.m, mkt.amm_x, mkt.amm_y, mkt.inventory), strict=True):
        np.testing.assert_array_equal(before, after)  # quoting changes nothing
    assert mkt.buy(ETH, 5e6) == q_buy
    q_sell = mkt.quote_sell(ETH, 1000.0)
    assert mkt.sell(ETH, 1000.0) == q_sell
    q_cost = mkt.quote_cost(ETH, 1000.0)
    assert mkt.buy_exact(ETH, 1000.0) == q_cost
    # what quote_cost pays is what quote_buy says it buys
    assert mkt.quote_buy(ETH, mkt.quote_cost(ETH, 321.0)) == pytest.approx(321.0, rel=1e-9)


@pytest.mark.parametrize("impact", MODELS)
@pytest.mark.parametrize("usd", [1e5, 5e7, 5e8])
def test_average_fill_between_pre_and_post_trade_price(make_system: SystemFactory, impact: str, usd: float) -> None:
    mkt = market_for(make_system, impact)
    net = 1.0 - (0.003 if impact == "cpmm" else 0.0)  # the AMM's fee comes on top of the curve's price
    pre = mkt.price(ETH)
    tokens = mkt.buy(ETH, usd)
    post = mkt.price(ETH)
    assert pre < usd * net / tokens < post
    # and a sale fills between the price before it and the (lower) price after it
    pre = post
    proceeds = mkt.sell(ETH, tokens / 2)
    post = mkt.price(ETH)
    assert post < proceeds / (net * tokens / 2) < pre


def test_linear_impact_moves_log_price_by_notional_over_depth(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "linear")
    mkt.buy(ETH, 2e7)
    # dm = Q / depth = 2e7 / 2e9 = 0.01
    assert mkt.m[ETH] == pytest.approx(0.01)
    assert mkt.price(ETH) == pytest.approx(3000.0 * math.exp(0.01))
    mkt.sell(ETH, 10.0)
    # a sale of 10 ETH raised depth * ln(1 + 10 p / depth) and moved m down by that over depth
    p = 3000.0 * math.exp(0.01)
    assert mkt.m[ETH] == pytest.approx(0.01 - math.log1p(10 * p / 2e9))


def test_sqrt_impact_moves_log_price_by_the_square_root_law(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "sqrt")
    mkt.buy(ETH, 1.5e8)
    # Y sigma_daily sqrt(Q / V) = 0.7 * (0.6 / sqrt(365)) * sqrt(1.5e8 / 1.5e10) = 0.0021984
    assert mkt.m[ETH] == pytest.approx(0.7 * 0.6 / math.sqrt(365.0) * 0.1)


def test_cpmm_follows_the_pool_exactly(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "cpmm")
    x, y = mkt.amm_x[ETH], mkt.amm_y[ETH]
    assert y == pytest.approx(2e9) and y / x == pytest.approx(3000.0)
    tokens = mkt.buy(ETH, 1e7)
    # Uniswap v2: out = 1e7 * 0.997 * x / (y + 1e7 * 0.997); the whole input stays in the pool
    assert tokens == pytest.approx(1e7 * 0.997 * x / (y + 1e7 * 0.997))
    assert mkt.amm_y[ETH] == pytest.approx(y + 1e7)
    assert mkt.amm_x[ETH] == pytest.approx(x - tokens)
    assert mkt.amm_x[ETH] * mkt.amm_y[ETH] >= x * y
    assert mkt.price(ETH) == pytest.approx(mkt.amm_y[ETH] / mkt.amm_x[ETH])


@pytest.mark.parametrize("impact", MODELS)
def test_round_trip_never_makes_money_and_tiny_orders_pay_the_price(make_system: SystemFactory, impact: str) -> None:
    mkt = market_for(make_system, impact)
    tokens = mkt.buy(ETH, 1e8)
    back = mkt.sell(ETH, tokens)
    if impact == "linear":  # the linear path is reversible: an immediate round trip breaks even
        assert back == pytest.approx(1e8, rel=1e-9)
    else:  # the concave square-root path and the AMM fee both cost money
        assert back < 1e8 * 0.9999
    fee = 0.003 if impact == "cpmm" else 0.0
    tiny = mkt.quote_buy(ETH, 1.0)
    assert tiny == pytest.approx((1 - fee) / mkt.price(ETH), rel=1e-6)


def test_impact_decays_with_the_half_life(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "linear", **{"market.impact_half_life_steps": 10})
    log_f = mkt.log_f.copy()
    mkt.buy(ETH, 4e7)
    m0 = mkt.m[ETH]
    assert m0 == pytest.approx(0.02)
    for _ in range(10):
        mkt.begin_step(log_f)
    assert mkt.m[ETH] == pytest.approx(m0 / 2, rel=1e-12)  # after h steps, half
    for _ in range(10):
        mkt.begin_step(log_f)
    assert mkt.m[ETH] == pytest.approx(m0 / 4, rel=1e-12)
    assert mkt.price(ETH) == pytest.approx(3000.0 * math.exp(m0 / 4))


def test_infinite_half_life_is_permanent_impact(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "sqrt", **{"market.impact_half_life_steps": math.inf})
    mkt.buy(ETH, 1e7)
    m0 = mkt.m[ETH]
    for _ in range(50):
        mkt.begin_step(mkt.log_f.copy())
    assert mkt.m[ETH] == m0


def test_fundamental_moves_carry_the_market_price(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "linear")
    log_f = mkt.log_f.copy()
    log_f[ETH] += math.log(0.9)
    mkt.begin_step(log_f)
    assert mkt.price(ETH) == pytest.approx(2700.0)


def test_cpmm_arbitrage_pulls_toward_the_fundamental(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "cpmm", **{"market.arbitrage_fraction": 0.2})
    mkt.buy(ETH, 1e8)
    gap = math.log(mkt.price(ETH) / 3000.0)
    k = mkt.amm_x[ETH] * mkt.amm_y[ETH]
    assert gap > 0
    mkt.begin_step(mkt.log_f.copy())
    # arbitrageurs close 20% of the log gap per step, trading along the curve (k unchanged)
    assert math.log(mkt.price(ETH) / 3000.0) == pytest.approx(0.8 * gap, rel=1e-9)
    assert mkt.amm_x[ETH] * mkt.amm_y[ETH] == pytest.approx(k, rel=1e-12)
    for _ in range(200):
        mkt.begin_step(mkt.log_f.copy())
    assert mkt.price(ETH) == pytest.approx(3000.0, rel=1e-12)


@pytest.mark.parametrize(
    ("vol_multiple", "factor"),
    [
        (0.5, 1.0),  # calmer than the reference: depth stays at its calm level
        (4.0, 0.5),  # (sigma_ref / sigma)^eta = (1/4)^0.5 = 0.5
        (100.0, 0.25),  # (1/100)^0.5 = 0.1 would thin too far: floored at min_depth_fraction = 0.25
    ],
)
def test_depth_thins_with_volatility_down_to_the_floor(
    make_system: SystemFactory, vol_multiple: float, factor: float
) -> None:
    mkt = market_for(make_system, "linear", **{"market.depth_vol_elasticity": 0.5, "market.min_depth_fraction": 0.25})
    sigma_ref = mkt.sigma_ref[ETH]
    mkt.realised_var[ETH] = (vol_multiple * sigma_ref) ** 2 / mkt.steps_per_year
    assert mkt.realised_vol()[ETH] == pytest.approx(vol_multiple * sigma_ref)
    mkt.begin_step(mkt.log_f.copy())
    assert mkt.depth_factor[ETH] == pytest.approx(factor)
    mkt.buy(ETH, 2e7)
    # the same $2e7 moves log price by 2e7 / (2e9 * factor)
    assert mkt.m[ETH] == pytest.approx(0.01 / factor)


def test_cpmm_depth_thinning_keeps_the_price(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "cpmm", **{"market.depth_vol_elasticity": 1.0, "market.min_depth_fraction": 0.4})
    y0 = mkt.amm_y[ETH]
    mkt.realised_var[ETH] = (2 * mkt.sigma_ref[ETH]) ** 2 / mkt.steps_per_year
    mkt.begin_step(mkt.log_f.copy())
    # (1/2)^1 = 0.5 of the liquidity stays, at the same price
    assert mkt.amm_y[ETH] == pytest.approx(0.5 * y0)
    assert mkt.price(ETH) == pytest.approx(3000.0)


def test_realised_volatility_is_an_ewma_of_squared_returns(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "linear", **{"market.vol_window_steps": 9})  # alpha = 2 / (9 + 1) = 0.2
    var0 = mkt.realised_var[ETH]
    mkt.buy(ETH, 2e7)  # log return 0.01 this step
    r = mkt.end_step()
    assert r[ETH] == pytest.approx(0.01)
    assert mkt.realised_var[ETH] == pytest.approx(0.8 * var0 + 0.2 * 0.01**2)


@pytest.mark.parametrize("impact", MODELS)
def test_market_ledger_conserves_tokens(make_system: SystemFactory, impact: str) -> None:
    mkt = market_for(make_system, impact)
    rng = np.random.default_rng(3)
    wallet = np.array([1e9, 0.0])  # a trader's USD and ETH
    totals = wallet + mkt.inventory[[USD, ETH]]
    for _ in range(200):
        if rng.random() < 0.5 or wallet[1] <= 0:
            usd = float(rng.uniform(0, 1e7))
            wallet += [-usd, mkt.buy(ETH, usd)]
        elif rng.random() < 0.5:
            tokens = float(rng.uniform(0, wallet[1]))
            wallet += [mkt.sell(ETH, tokens), -tokens]
        else:
            tokens = float(rng.uniform(0, 100.0))
            wallet += [-mkt.buy_exact(ETH, tokens), tokens]
        if rng.random() < 0.1:
            mkt.begin_step(mkt.log_f.copy())
        np.testing.assert_allclose(wallet + mkt.inventory[[USD, ETH]], totals, rtol=1e-13)
        assert np.isfinite(mkt.prices).all() and (mkt.prices > 0).all()


def test_genesis_trades_fill_at_the_fundamental_without_impact(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "linear")
    inv = mkt.inventory.copy()
    assert mkt.genesis_trade(ETH, 30_000.0) == pytest.approx(10.0)
    assert mkt.genesis_trade(ETH, -4.0) == pytest.approx(-12_000.0)
    assert mkt.m[ETH] == 0.0
    np.testing.assert_allclose(mkt.inventory - inv, [30_000.0 - 12_000.0, -6.0, 0.0])


def test_buying_beyond_the_linear_path_is_refused(make_system: SystemFactory) -> None:
    mkt = market_for(make_system, "linear")
    # the path can supply at most depth / price = 2e9 / 3000 tokens
    assert math.isinf(mkt.quote_cost(ETH, 2e9 / 3000.0))
    with pytest.raises(ValueError, match="cannot supply"):
        mkt.buy_exact(ETH, 1e6)


def test_scripted_shock_compounds_to_its_size() -> None:
    config = ModelConfig.from_preset(
        "crash", {"assets.ETH.volatility": 0.0, "assets.BTC.volatility": 0.0, "assets.ETH.drift": 0.0}
    )
    fund = Fundamentals(config, np.random.default_rng(0))
    for t in range(1, 300):
        fund.step(t)
    # ETH -25% and BTC -15%, each spread over 30 steps from step 240
    np.testing.assert_allclose(fund.prices, [1.0, 3000.0 * 0.75, 60000.0 * 0.85], rtol=1e-12)
