"""The health pass's pieces: the baseline's price rows and new crossings, the portfolio accounts' ids."""

from __future__ import annotations

import numpy as np

from abm import ModelConfig, ReflexivityModel
from abm.recording.baseline import BASELINE_AMPLIFICATIONS, BaselineCrossings


def small_crash() -> ReflexivityModel:
    return ReflexivityModel(ModelConfig.from_preset("crash", {"traders.n_traders": 20}), rng=2, steps=20)


def test_pass_prices_are_the_oracle_then_the_amplified_non_liquidation_paths() -> None:
    m = small_crash()
    baseline, reference = m.baseline, m.baseline.reference
    assert reference is not None  # fixed by the model's first pass
    lag = max(m.config.oracles.latency_steps, 1)
    baseline.impact[7 - lag] = [0.0, 0.03, -0.01]  # liquidation sales had pushed ETH down and BTC up
    oracle = m.oracle.prices * np.array([1.0, 0.8, 1.1])
    rows = baseline.pass_prices(7, oracle)
    assert rows.shape == (1 + len(BASELINE_AMPLIFICATIONS), 3)
    np.testing.assert_array_equal(rows[0], oracle)
    prices = oracle * np.exp(-baseline.impact[7 - lag])
    for row, a in zip(rows[1:], BASELINE_AMPLIFICATIONS, strict=True):
        np.testing.assert_array_equal(row, reference * (prices / reference) ** a)
    assert rows[1, 1] < oracle[1] and rows[3, 1] < rows[2, 1] < rows[1, 1]  # the fall without the sales, amplified
    expected = rows.copy()
    np.testing.assert_array_equal(baseline.pass_prices(7, oracle.copy()), expected)  # the same prices: the same rows
    baseline.impact[8 - lag] = baseline.impact[7 - lag]
    np.testing.assert_array_equal(baseline.pass_prices(8, oracle), expected)  # the same impact a step later
    baseline.impact[9 - lag] = [0.0, 0.0, -0.01]  # ETH's sales' impact gone: its paths are the oracle's own
    rows = baseline.pass_prices(9, oracle)
    assert rows[1, 1] == reference[1] * (oracle[1] / reference[1]) and rows[1, 2] == expected[1, 2]


def test_new_crossings_count_who_went_below_since_the_last_pass() -> None:
    baseline = BaselineCrossings(small_crash())  # no pass yet: no accounts seen
    baseline.count(np.array([[1.2, 0.9, 1.5], [1.2, 0.9, 0.8], [0.7, 0.9, 0.8]]))
    np.testing.assert_array_equal(baseline.new_crossings, [1, 2, 3])  # everyone below is new at the first pass
    baseline.count(np.array([[1.2, 0.9, 1.5], [0.9, 0.9, 0.8], [0.7, 0.9, 0.8]]))
    np.testing.assert_array_equal(baseline.new_crossings, [0, 1, 0])  # only path 1's first account is new
    baseline.count(np.array([[1.2, 0.9, 1.5], [0.9, 0.9, 0.8], [0.7, 0.9, 0.8]]))
    np.testing.assert_array_equal(baseline.new_crossings, [0, 0, 0])  # still below is not a new crossing
    # two accounts open (they start above the line); one is below on every path, one on none
    baseline.count(np.array([[1.2, 0.9, 1.5, 0.5, 2.0], [1.1, 0.9, 0.8, 0.5, 2.0], [0.7, 0.9, 0.8, 0.5, 2.0]]))
    np.testing.assert_array_equal(baseline.new_crossings, [1, 1, 1])


def test_portfolio_accounts_follow_the_accounts_opened_since_the_last_pass() -> None:
    m = small_crash()
    engine, prices = m.engine, m.oracle.prices
    before = engine.portfolio_accounts().copy()
    engine.health(prices)
    # a hedged book: long ETH on USD debt, short BTC with its proceeds as USD collateral
    acct = engine.open_account(0, "portfolio")
    engine.collateral[acct] = [9000.0, 10_000.0 / prices[1], 0.0]
    engine.scaled_debt[acct] = np.array([7500.0, 0.0, 9000.0 / prices[2]]) / m.pool.borrow_index
    np.testing.assert_array_equal(engine.portfolio_accounts(), np.append(before, acct))
    hf = engine.health(prices)
    assert hf[acct] == engine.account_health(acct, prices)  # the portfolio formula, not the cross one
    cross = float((engine.collateral[acct] * prices * m.pool.liquidation_threshold).sum() / 16_500.0)
    assert hf[acct] > 1.0 > cross
