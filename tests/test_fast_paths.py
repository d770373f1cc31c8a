"""The hot paths' shortcuts compute exactly what the general functions compute (bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest

from abm.protocol import borrow_rate, supply_rate, utilisation


def test_unchecked_rate_formulas_equal_the_checked_ones() -> None:
    cash, borrows = np.array([3.0e6, 0.0, 120.5]), np.array([1.0e6, 0.0, 80.25])
    base, s1, s2, opt = np.array([0.0, 0.01, 0.0]), np.array([0.04, 0.07, 0.03]), np.array([0.6, 3.0, 0.8]), 0.8
    u = utilisation(cash, borrows)
    assert np.array_equal(u, utilisation(cash, borrows, check=False))
    br = borrow_rate(u, base, s1, s2, np.full(3, opt))
    assert np.array_equal(br, borrow_rate(u, base, s1, s2, np.full(3, opt), check=False))
    rf = np.array([0.1, 0.2, 0.15])
    assert np.array_equal(supply_rate(br, u, rf), supply_rate(br, u, rf, check=False))


def test_owner_index_finds_what_a_scan_finds_and_follows_new_accounts() -> None:
    from abm.agents.book import OwnerIndex

    rng = np.random.default_rng(3)
    owners = rng.integers(0, 40, 500)
    index = OwnerIndex()
    for owner in range(-1, 42):
        assert np.array_equal(index.of(owners, owner), np.flatnonzero(owners == owner))
    owners = np.concatenate([owners, [41, 3]])  # accounts opened later
    assert np.array_equal(index.of(owners, 41), np.flatnonzero(owners == 41))
    assert np.array_equal(index.of(owners, 3), np.flatnonzero(owners == 3))


def test_left_sum_is_numpys_sum_below_eight_numbers() -> None:
    from abm.numerics import SEQUENTIAL_SUM_MAX, left_sum

    rng = np.random.default_rng(5)
    for k in range(1, SEQUENTIAL_SUM_MAX):
        for _ in range(300):
            x = rng.lognormal(0.0, 3.0, k) * rng.choice([-1.0, 1.0], k)
            assert left_sum(x.tolist()) == float(np.sum(x))


@pytest.mark.parametrize("preset", ["crash", "perp_crash", "lst_depeg", "dynamic_margin"])
def test_the_recorded_row_is_the_numpy_formulas_bit_for_bit(preset: str) -> None:
    """Totals, active traders and the health-factor statistics as numpy computes them from the arrays: with perps
    and basis traders, with loopers, with the risk manager (which needs the per-asset values too)."""
    from abm import ModelConfig, ReflexivityModel
    from abm.perps import FIRST_ACCOUNT
    from abm.recording.recorder import HF_BIN_EDGES

    model = ReflexivityModel(ModelConfig.from_preset(preset, {"traders.n_traders": 60}), rng=2, steps=40)
    for _ in range(40):
        model.step()
        engine, row = model.engine, model.recorder.row
        coll, debt = engine.values(model.oracle.prices)
        assert (row["total_collateral_usd"], row["total_debt_usd"]) == (float(coll.sum()), float(debt.sum()))
        owners = engine.owner[: engine.n]
        in_use = (coll != 0).any(axis=1) | (debt != 0).any(axis=1)
        if model.basis_traders or model.loopers:
            in_use &= owners < len(model.traders)
        active = np.bincount(owners[in_use], minlength=len(model.traders))
        if model.perps is not None:
            venue = model.perps
            perp_owners = venue.owner[FIRST_ACCOUNT : venue.n]
            held = np.any(venue.size[FIRST_ACCOUNT : venue.n] != 0, axis=1) & (perp_owners < len(model.traders))
            active = active + np.bincount(perp_owners[held], minlength=len(model.traders))
        assert row["n_active_traders"] == np.count_nonzero(active)
        hf = model.hf[np.isfinite(model.hf)]
        assert [row["hf_p10"], row["hf_p50"], row["hf_p90"]] == np.percentile(hf, [10, 50, 90]).tolist()
        bins = np.concatenate([[0.0], HF_BIN_EDGES])
        assert np.array_equal(model.recorder.hf_histogram[-1], np.histogram(hf, bins=bins)[0])
    # each preset covers the case it is here for
    assert (model.perps is not None and bool(model.basis_traders)) == (preset == "perp_crash")
    assert bool(model.loopers) == (preset == "lst_depeg")
    assert ("borrow_capacity_usd" in row) == (preset == "dynamic_margin")


def test_the_health_pass_marks_what_the_numpy_bookkeeping_marks_as_the_book_grows() -> None:
    """`AttributionLedger.mark_health` against its numpy form: last healthy where healthy; position changed where any
    collateral or scaled debt differs from the last pass's copy; new accounts set now, the copies following."""
    from abm import ModelConfig, ReflexivityModel

    model = ReflexivityModel(ModelConfig.from_preset("crash", {"traders.n_traders": 50}), rng=4, steps=60)
    ledger, engine = model.attribution, model.engine
    grown = 0
    for step in range(60):
        model.step()
        if step % 20 == 10:  # new accounts between passes, one with a position already
            acct = engine.open_account(0)
            engine.collateral[acct, 1] = 2.0
            engine.open_account(1)
        n = engine.n
        last, position = ledger.last_healthy_step.copy(), ledger.position_step.copy()
        pass_coll, pass_debt = ledger.pass_collateral.copy(), ledger.pass_scaled_debt.copy()
        health = np.random.default_rng(step).uniform(0.7, 1.7, n)
        health[step % n] = np.nan  # a NaN health is not healthy
        healthy = health >= 1.0
        assert ledger.mark_health(health, 1000 + step).tolist() == np.flatnonzero(~healthy).tolist()
        known = len(position)
        grown += n > known
        expected_last = np.concatenate([last, np.full(n - len(last), 1000 + step)])
        expected_last[healthy] = 1000 + step
        changed = np.ones(n, dtype=bool)
        changed[:known] = (engine.collateral[:known] != pass_coll).any(axis=1) | (
            engine.scaled_debt[:known] != pass_debt
        ).any(axis=1)
        expected_position = np.concatenate([position, np.zeros(n - known, dtype=np.int64)])
        expected_position[changed] = 1000 + step
        assert np.array_equal(ledger.last_healthy_step, expected_last)
        assert np.array_equal(ledger.position_step, expected_position)
        assert np.array_equal(ledger.pass_collateral, engine.collateral[:n])
        assert np.array_equal(ledger.pass_scaled_debt, engine.scaled_debt[:n])
    assert grown == 3


def test_momentum_and_contrarian_answer_what_their_numpy_formulas_answer() -> None:
    """The strategies' per-asset arithmetic in Python floats gives numpy's answers bit for bit, on random market
    states: trends and gaps of either sign, volatility under the 1e-3 floor and NaN, gaps at the band's edges."""
    from scipy.special import erfc

    from abm import ModelConfig, ReflexivityModel
    from abm.agents.strategies import contrarian, momentum
    from abm.protocol import SECONDS_PER_YEAR

    m = ReflexivityModel(ModelConfig.from_preset("crash", {"traders.n_traders": 30}), rng=1, steps=60)
    for _ in range(40):
        m.step()
    cfg, rng = m.config.traders, np.random.default_rng(11)
    n_assets = len(m.market.prices)
    asset = rng.integers(1, n_assets, 50)
    leverage = rng.uniform(1.0, 5.0, 50)
    current = rng.choice([0.0, 2.5], 50)
    for trial in range(200):
        t, lookback = m.steps, cfg.momentum_lookback_steps
        m.history.market[m.history.row(t - 1)] = rng.normal(0.0, 0.3, n_assets)
        m.history.market[m.history.row(t - 1 - lookback)] = rng.normal(0.0, 0.3, n_assets)
        m.market.realised_var = rng.choice([0.0, 1e-12, np.nan, 0.5], n_assets) * rng.uniform(0.5, 2.0, n_assets)
        band = cfg.contrarian_band
        edge = rng.choice([-band, band, 0.0, np.nan], n_assets)
        m.anchor_log_price = m.history.log_market(t - 1) - np.where(trial % 2, edge, rng.normal(0.0, 0.2, n_assets))
        # numpy's formulas on the arrays, as the strategies were written before
        years = lookback * m.config.market.step_seconds / SECONDS_PER_YEAR
        trend = m.history.log_market(t - 1) - m.history.log_market(t - 1 - lookback)
        z = trend / (np.maximum(m.market.realised_vol(), 1e-3) * np.sqrt(years))
        phi = 0.5 * erfc(-z / (cfg.momentum_signal_scale * np.sqrt(2.0)))
        expected = 1.0 + (leverage - 1.0) * phi.take(asset)
        got = momentum(m, asset, leverage, lambda rows: current[rows])
        assert np.array_equal(got, expected, equal_nan=True)
        gap = (m.history.log_market(t - 1) - m.anchor_log_price).take(asset)
        expected = np.where(gap <= -band, leverage, 1.0)
        inside = ((gap > -band) & (gap < band)).nonzero()[0]
        expected[inside] = np.where(current[inside] != 0.0, current[inside], leverage[inside])
        assert np.array_equal(contrarian(m, asset, leverage, lambda rows: current[rows]), expected)


def test_compiled_headroom_is_numpys_headroom() -> None:
    """`tokens_headroom` (one account state, a few assets) is numpy's sum of collateral value x LTV minus debt value
    bit for bit: empty, zero and NaN-priced states, one to seven assets."""
    from abm.lending.kernels import tokens_headroom
    from abm.numerics import SEQUENTIAL_SUM_MAX

    rng = np.random.default_rng(7)
    for k in range(1, SEQUENTIAL_SUM_MAX):
        for trial in range(300):
            coll = rng.lognormal(0.0, 3.0, k) * (rng.random(k) < 0.7)
            debt = rng.lognormal(0.0, 3.0, k) * (rng.random(k) < 0.5)
            ltv, prices = rng.uniform(0.0, 0.9, k), rng.lognormal(0.0, 2.0, k)
            if trial % 50 == 0:
                prices[rng.integers(k)] = np.nan
            expected = float((coll * prices * ltv).sum() - (debt * prices).sum())
            assert np.array_equal(tokens_headroom(coll, debt, ltv, prices), expected, equal_nan=True)
