"""The traders' phase: every lending trader's decision taken in one pass equals that trader's own computation from
the same state, and the phase is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from abm.agents.batched import REENTER, STOP, batched_trader_phase, plan_decisions
from abm.agents.decisions import carry_factor
from abm.config import ModelConfig
from abm.model import ReflexivityModel


def mixed_model(steps: int) -> ReflexivityModel:
    """A crash with every strategy, risk style and margin mode, two assets per trader, run `steps` steps."""
    config = ModelConfig.from_preset(
        "crash",
        {
            "traders.n_traders": 300,
            "traders.assets_per_trader": 2,
            "traders.strategy_mix": {"momentum": 0.2, "contrarian": 0.2, "vol_target": 0.2, "hodl": 0.2, "short": 0.2},
            "traders.risk_mix": {"stubborn": 0.3, "prudent": 0.4, "stop_loss": 0.3},
            "traders.margin_mode_mix": {"cross": 0.4, "isolated": 0.4, "portfolio": 0.2},
            "traders.stop_loss_drawdown": 0.02,
        },
    )
    m = ReflexivityModel(config, rng=3, steps=steps)
    for _ in range(steps):
        m.step()
    return m


def test_the_batched_pass_is_each_traders_own_decision() -> None:
    m = mixed_model(80)
    cfg = m.config.traders
    cfg.prudent_target_hf, cfg.prudent_buffer = 2.2, 2.0  # above the health their caps give: prudent caps bind
    holders = np.arange(len(m.traders))
    prices, oracle = m.market.prices, m.oracle.prices
    traders = [m.traders[i] for i in holders]
    equity = [t.equity_usd(prices) for t in traders]  # before the pass (it moves peak equity)
    peak_before = m.book.peak_equity.copy()
    d = plan_decisions(m, holders)
    rates = m.pool.borrow_rates()
    checked_prudent = checked_portfolio = 0
    for r, t in enumerate(traders):
        assert d.equity[r] == pytest.approx(equity[r], rel=1e-12, abs=1e-6)
        assert d.target[r] == t.target_leverage()
        assert d.rate[r] == t.carry_rate()
        held = t.has_position()
        if held:
            assert d.peak[r] == max(peak_before[r], d.equity[r])
            assert d.current[r] == pytest.approx(t.current_leverage(prices), rel=1e-12)
        # the limits and the carry factor, from the trader's own numbers
        capped = min(t.target_leverage(), cfg.max_leverage, float(m.book.leverage_cap[t.holder]))
        rate = rates[0 if t.direction > 0 else t.assets[0]]
        carry = min(1.0, cfg.borrow_rate_tolerance / rate) if rate > 0 else 1.0
        assert carry_factor(rate, cfg.borrow_rate_tolerance) == carry
        by_hand = 1.0 + (capped - 1.0) * carry if t.direction > 0 else capped * carry
        assert t.wanted_leverage() == pytest.approx(by_hand, rel=1e-15)
        wanted = by_hand
        if t.risk_style == "prudent" and held and d.equity[r] > 0 and t.worst_health(oracle) < cfg.prudent_buffer:
            wanted = min(wanted, t.leverage_for_health(cfg.prudent_target_hf, oracle))
            checked_prudent += 1
            checked_portfolio += m.book.mode_name(t.holder) == "portfolio"  # health from the engine's scenarios
        assert d.wanted[r] == pytest.approx(wanted, rel=1e-15)
        # per position: the gap to the wanted exposure and the tolerance band
        per_account = len(t.assets) if t.accounts[0] == t.accounts[-1] else 1
        for j, (acct, a) in enumerate(zip(t.accounts, t.assets, strict=True)):
            acct_equity = t.account_equity_usd(acct, prices)
            goal = d.wanted[r] * acct_equity / per_account
            have = t.exposure_usd(acct, a, prices)
            assert d.exposure[r, j] == pytest.approx(have, rel=1e-12)
            assert d.gap[r, j] == pytest.approx(goal - have, rel=1e-9, abs=1e-6)
            outside = abs(goal - have) > cfg.rebalance_tolerance * max(goal, have)
            if abs(abs(goal - have) - cfg.rebalance_tolerance * max(goal, have)) > 1e-6:  # not on the band's edge
                assert bool(d.trade[r, j]) == (outside and acct_equity > 0)
        plan = d.plans.get(t.holder)
        if not held:
            assert plan == REENTER or m.steps < t.out_until
        elif d.stop[r] and d.equity[r] > 0:
            assert plan == STOP
        elif isinstance(plan, list):
            assert [(acct, a) for acct, a, _ in plan] == [
                (t.accounts[j], t.assets[j]) for j in np.flatnonzero(d.trade[r])
            ]
    # the test covers what it claims: several strategies' targets, prudent caps, trades and stops
    assert len(np.unique(d.target.round(6))) > 10
    assert checked_prudent > checked_portfolio > 0
    assert any(isinstance(p, list) for p in d.plans.values())


def test_a_run_is_deterministic() -> None:
    config = ModelConfig.from_preset("crash", {"traders.n_traders": 300})
    a = ReflexivityModel(config, rng=5, steps=120)
    b = ReflexivityModel(config, rng=5, steps=120)
    for _ in range(120):
        a.step()
        b.step()
    n = a.engine.n
    assert np.array_equal(a.engine.collateral[:n], b.engine.collateral[:n])
    assert np.array_equal(a.engine.scaled_debt[:n], b.engine.scaled_debt[:n])
    assert np.array_equal(a.market.prices, b.market.prices)
    assert np.array_equal(a.book.peak_equity, b.book.peak_equity)


def test_stop_loss_and_re_entry_go_through_the_phase() -> None:
    """A stop-loss trader past its drawdown is planned STOP and closed at its turn; once flat and its delay over,
    it is planned REENTER and comes back with fresh equity."""
    config = ModelConfig.from_preset(
        "crash",
        {
            "traders.n_traders": 30,
            "traders.strategy_mix": {"hodl": 1.0},
            "traders.risk_mix": {"stop_loss": 1.0},
            "traders.reentry_delay_steps": 3,
        },
    )
    m = ReflexivityModel(config, rng=4, steps=40)
    m.step()
    traders = [m.traders[i] for i in (0, 1, 2)]
    holders = np.array([t.holder for t in traders])
    for t in traders:
        m.book.peak_equity[t.holder] = 10.0 * t.equity_usd(m.market.prices)  # as after a large earlier gain
    d = plan_decisions(m, holders)
    assert all(d.plans[int(h)] == STOP for h in holders)
    batched_trader_phase(m, holders.tolist())
    assert not any(t.has_position() for t in traders)
    assert all(t.out_until == m.steps + 3 for t in traders)
    m.book.out_until[holders] = m.steps  # the delay is over
    assert all(plan_decisions(m, holders).plans[int(h)] == REENTER for h in holders)
    batched_trader_phase(m, holders.tolist())
    for t in traders:
        assert t.has_position() and t.out_until == -1
        assert t.peak_equity == pytest.approx(t.initial_equity, rel=0.01)


def test_leverage_for_health_worked_numbers_long_short_isolated() -> None:
    """Selling x of collateral to repay x of debt reaches health H when (C - x) LT = H (D - x). Long, cross:
    10 ETH at 2,000 USD (C = 20,000), 15,000 USD owed, H = 1.5: x = (22,500 - 20,000 LT) / (1.5 - LT), leverage
    (C - x) / (C - D). A short's exposure is its debt: USD collateral 30,000, 5 ETH owed (D = 10,000), leverage
    (D - x) / 20,000, here 0 (its collateral alone is worth the health). An isolated trader's accounts add up."""
    from abm.agents.decisions import leverages_for_health

    m = mixed_model(0)
    engine, book = m.engine, m.book
    oracle = np.array([1.0, 2000.0, 60000.0])
    lt = m.pool.liquidation_threshold
    index = m.pool.borrow_index
    accounts = m.trader_accounts
    long_cross = next(i for i in range(len(m.traders)) if book.direction[i] > 0 and accounts[i, 0] == accounts[i, 1])
    short_cross = next(i for i in range(len(m.traders)) if book.direction[i] < 0 and accounts[i, 0] == accounts[i, 1])
    long_iso = next(i for i in range(len(m.traders)) if book.direction[i] > 0 and accounts[i, 0] != accounts[i, 1])
    for acct in (*accounts[long_iso], accounts[long_cross, 0], accounts[short_cross, 0]):
        engine.collateral[acct] = 0.0
        engine.scaled_debt[acct] = 0.0
    engine.collateral[accounts[long_cross, 0], 1] = 10.0
    engine.scaled_debt[accounts[long_cross, 0], 0] = 15_000.0 / index[0]
    engine.collateral[accounts[short_cross, 0], 0] = 30_000.0
    engine.scaled_debt[accounts[short_cross, 0], 1] = 5.0 / index[1]
    # the isolated long holds the cross long's position split over its two accounts
    engine.collateral[accounts[long_iso, 0], 1] = 6.0
    engine.collateral[accounts[long_iso, 1], 1] = 4.0
    engine.scaled_debt[accounts[long_iso, 0], 0] = 9_000.0 / index[0]
    engine.scaled_debt[accounts[long_iso, 1], 0] = 6_000.0 / index[0]
    holders = np.array([long_cross, short_cross, long_iso])
    got = leverages_for_health(m, holders, accounts[holders], 1.5, oracle)
    x = (1.5 * 15_000.0 - lt[1] * 20_000.0) / (1.5 - lt[1])
    assert got[0] == pytest.approx((20_000.0 - x) / 5_000.0, rel=1e-12)
    assert 1.0 < got[0] < 4.0
    x_short = max((1.5 * 10_000.0 - lt[0] * 30_000.0) / (1.5 - lt[0]), 0.0)
    assert got[1] == pytest.approx(max((10_000.0 - x_short) / 20_000.0, 0.0), abs=1e-12)
    assert got[2] == pytest.approx(got[0], rel=1e-12)
    # without debt: the base leverage; the single-trader method is the same computation
    engine.scaled_debt[accounts[long_cross, 0]] = 0.0
    assert leverages_for_health(m, holders[:1], accounts[holders[:1]], 1.5, oracle)[0] == book.base_leverage[long_cross]
    assert m.traders[long_iso].leverage_for_health(1.5, oracle) == got[2]


def test_decision_clocks_draw_what_exponential_draws() -> None:
    """`TraderBook.clocks_due` draws each fired clock's next interval as a standard exponential times the mean
    interval: what `Generator.exponential` of the mean intervals draws, number for number and leaving the stream
    in the same place."""
    m = ReflexivityModel(ModelConfig.from_preset("crash", {"traders.n_traders": 200}), rng=1, steps=5)
    book = m.book
    before = book.next_decision.copy()
    step = int(np.quantile(before, 0.3))
    rng, twin = np.random.default_rng(9), np.random.default_rng(9)
    due = book.clocks_due(step, rng)
    assert np.array_equal(due, np.flatnonzero(before <= step))
    assert 0 < len(due) < len(before)
    expected = before.copy()
    expected[due] = step + twin.exponential(book.decision_interval[due])
    assert np.array_equal(book.next_decision, expected)
    assert rng.random() == twin.random()


def test_many_traders_get_the_answers_a_few_at_a_time_get() -> None:
    """The genesis asks every trader at once (strategies' answers copied by mask, wanted leverages and carry rates
    in one pass); a step asks a few (answers picked as floats, one trader's formulas): the same numbers."""
    from abm.agents.decisions import carry_factor, lending_carry_rates, wanted_leverage, wanted_leverages
    from abm.agents.strategies import PICK_AS_FLOATS, target_leverages

    m = mixed_model(30)
    holders = np.flatnonzero(m.trader_accounts[:, 0] >= 0)
    assert len(holders) > 2 * PICK_AS_FLOATS and len(set(m.book.strategy[holders].tolist())) > 2
    first = m.trader_assets[holders, 0]
    current = np.linspace(0.0, 3.0, len(holders))
    target = target_leverages(m, holders, first, lambda rows: current[rows])
    chunks = [slice(i, i + 10) for i in range(0, len(holders), 10)]
    few = np.concatenate(
        [target_leverages(m, holders[c], first[c], lambda rows, c=c: current[c][rows]) for c in chunks]
    )
    assert np.array_equal(target, few, equal_nan=True)
    rate = lending_carry_rates(m, holders, first)
    wanted = wanted_leverages(m, holders, target, rate)
    cfg, book = m.config.traders, m.book
    for r, holder in enumerate(holders.tolist()):
        long = bool(book.direction[holder] > 0)
        assert rate[r] == m.pool.borrow_rates()[0 if long else first[r]]
        carry = carry_factor(float(rate[r]), cfg.borrow_rate_tolerance)
        one = wanted_leverage(float(target[r]), cfg.max_leverage, float(book.leverage_cap[holder]), long, carry)
        assert wanted[r] == one or (np.isnan(wanted[r]) and np.isnan(one))
