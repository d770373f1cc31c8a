"""Traders' and lenders' limits (docs/model.md, 3.3 Submodels: Traders, Lenders): the leverage cap with its
opening margin, and the lenders' no-move band on the rate gap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from abm import ModelConfig, ReflexivityModel
from abm.agents.lender import rate_chasing_move
from abm.agents.population import leverage_at_health, leverage_cap
from abm.lending import LendingPool

ETH = 1  # baseline reserves: USD (LTV 0.75, LT 0.78), ETH (LTV 0.80, LT 0.825), BTC


@pytest.fixture(scope="module")
def pool() -> LendingPool:
    return LendingPool(ModelConfig.from_preset("baseline"), n_suppliers=1)


def test_leverage_at_health_inverts_the_health_factor() -> None:
    # long: HF = L LT / (L - 1); short: HF = (1 + L) LT / L
    long = leverage_at_health(1.2, 0.825, short=False)
    short = leverage_at_health(1.2, 0.78, short=True)
    assert long * 0.825 / (long - 1.0) == pytest.approx(1.2)
    assert (1.0 + short) * 0.78 / short == pytest.approx(1.2)


def test_opening_margin_caps_leverage_where_a_move_of_that_size_liquidates(pool: LendingPool) -> None:
    h = math.exp(0.1)  # a 0.1 log move against the position takes HF from h to 1
    long = leverage_cap(pool, [ETH], short=False, prudent=False, prudent_buffer=1.15, liquidation_distance=0.1)
    assert long == pytest.approx(h / (h - 0.825))  # 3.9446, below the LTV cap 0.95 / (1 - 0.80) = 4.75
    assert long == pytest.approx(3.9446, abs=1e-4)
    short = leverage_cap(pool, [ETH], short=True, prudent=False, prudent_buffer=1.15, liquidation_distance=0.1)
    assert short == pytest.approx(0.78 / (h - 0.78))  # USD collateral: 2.3987, below 0.95 * 0.75 / 0.25 = 2.85
    # a fresh long at the cap, after a 0.1 log fall of its collateral: HF exactly 1
    assert long * 0.825 * math.exp(-0.1) / (long - 1.0) == pytest.approx(1.0)


def test_the_lowest_of_ltv_prudence_and_opening_margin_binds(pool: LendingPool) -> None:
    no_margin = leverage_cap(pool, [ETH], short=False, prudent=False, prudent_buffer=1.15)
    assert no_margin == pytest.approx(0.95 / (1.0 - 0.80))  # 4.75: the LTV cap alone
    prudent = leverage_cap(pool, [ETH], short=False, prudent=True, prudent_buffer=1.15, liquidation_distance=0.1)
    assert prudent == pytest.approx(1.265 / (1.265 - 0.825))  # HF 1.1 x 1.15 = 1.265 beats e^0.1 = 1.105
    wide = leverage_cap(pool, [ETH], short=False, prudent=True, prudent_buffer=1.15, liquidation_distance=0.3)
    h = math.exp(0.3)
    assert wide == pytest.approx(h / (h - 0.825)) and wide < prudent  # now the margin binds


def test_every_trader_opens_at_least_its_margin_away_from_liquidation() -> None:
    cfg = ModelConfig.from_preset(
        "crash", {"traders.n_traders": 200, "traders.max_leverage": 6.0, "traders.leverage_min": 1.1}
    )
    model = ReflexivityModel(cfg, rng=5, steps=10)
    engine = model.engine
    hf = engine.health(model.oracle.prices)
    k = cfg.traders.liquidation_distance_sigmas
    for trader in model.traders:
        floor = math.exp(k * float(model.market.sigma_daily[trader.assets].max()))
        for acct in trader.accounts:
            assert hf[acct] >= floor * (1.0 - 1e-9)
    # and the margin binds for some: without it, leverage 6 would put traders closer to liquidation
    open_hf = hf[np.isfinite(hf)]
    assert open_hf.min() == pytest.approx(math.exp(k * float(model.market.sigma_daily[1:].max())), rel=0.02)


def test_rate_gap_within_the_band_moves_nothing_and_only_the_excess_counts() -> None:
    supply = np.array([0.040, 0.049, 0.060, 0.020])
    outside = np.full(4, 0.04)
    move = rate_chasing_move(supply, outside, sensitivity=0.05, band=0.01, step_seconds=60.0)
    per_step = 60.0 / 86400.0
    # gaps 0, +0.9%, +2%, -2% per year: the band of 1% leaves 0, 0, +1%, -1%: 5% of funds per day per 1%
    np.testing.assert_allclose(move, [0.0, 0.0, 0.05 * per_step, -0.05 * per_step])
    no_band = rate_chasing_move(supply, outside, sensitivity=0.05, band=0.0, step_seconds=60.0)
    np.testing.assert_allclose(no_band, [0.0, 0.045 * per_step, 0.1 * per_step, -0.1 * per_step])


def test_lenders_leave_supply_alone_while_rate_gaps_stay_in_their_band() -> None:
    def supplied(band: float) -> np.ndarray:
        cfg = ModelConfig.from_preset("baseline", {"traders.n_traders": 200, "lenders.rate_gap_band": band})
        model = ReflexivityModel(cfg, rng=11, steps=120)
        start = model.pool.supplier_scaled.sum(axis=0)  # scaled balances: interest does not change them
        for _ in range(120):
            model.step()
        return model.pool.supplier_scaled.sum(axis=0) / np.where(start > 0, start, 1.0)

    assert np.abs(supplied(1.0) - 1.0).max() < 1e-12  # a band wider than any gap: not one token moves
    assert np.abs(supplied(0.0) - 1.0).max() > 1e-6  # no band: rate wiggles move funds
