"""Adversaries (docs/model.md, 3.3 Submodels: Adversaries): the liquidation hunter, with positions visible and
hidden, and the oracle attacker against the TWAP and median defences; their formulas against worked numbers, their
wallets inside the token ledgers, and that a model without them (or with them idle) runs as before."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from attack_helpers import SMALL, oracle_attack_model

from abm import ModelConfig, ReflexivityModel
from abm import protocol as P
from abm.agents.adversary import adversary_summary
from abm.agents.hunter import liquidation_prices
from abm.errors import ConfigError, InvariantError
from abm.invariants import check_invariants

# --- formulas ----------------------------------------------------------------------------------------------------


def test_asset_liquidation_price_worked_numbers() -> None:
    # a long: 10 ETH at LT 0.8 against 24,000 USD of debt -> HF = 1 at 24,000 / (10 * 0.8) = 3,000
    assert P.asset_liquidation_price(0.0, 24000.0, 10.0, 0.8, 0.0) == pytest.approx(3000.0)
    # 1,000 USD of other collateral at LT 0.78 counts 780: (24,000 - 780) / 8 = 2,902.5
    assert P.asset_liquidation_price(780.0, 24000.0, 10.0, 0.8, 0.0) == pytest.approx(2902.5)
    # a short: 5,000 USD collateral at LT 0.78 (3,900 weighted) against 1 ETH of debt -> liquidated when ETH rises
    # to (0 - 3,900) / (0 - 1) = 3,900
    assert P.asset_liquidation_price(3900.0, 0.0, 0.0, 0.8, 1.0) == pytest.approx(3900.0)
    # the same single-collateral long as the older formula
    assert P.asset_liquidation_price(0.0, 24000.0, 10.0, 0.8, 0.0) == pytest.approx(
        P.liquidation_price(10.0, 24000.0, 0.8)
    )
    # no price of the asset liquidates: its weight equals its debt, or the other collateral covers the debt alone
    assert math.isnan(P.asset_liquidation_price(0.0, 100.0, 1.0, 0.5, 0.5))
    assert math.isnan(P.asset_liquidation_price(5000.0, 1000.0, 1.0, 0.8, 0.0))


def test_push_tokens_invert_the_linear_sale() -> None:
    # 1e9 / 3,000 * (e^0.1 - 1) = 35,056.97 tokens, and selling them raises depth * push = 1e8 USD
    tokens = P.linear_push_tokens(0.1, 3000.0, 1.0e9)
    assert tokens == pytest.approx(35056.97269, rel=1e-9)
    assert P.linear_impact_proceeds(tokens, 3000.0, 1.0e9) == pytest.approx(1.0e8)


def test_hold_cost_worked_numbers() -> None:
    # push 0.1 held 10 steps at decay 0.99: leak 10 * 0.1 * 0.01 = 0.01; -1e9 (ln(1 - 0.01 e^0.1) + 0.01)
    expected = -1.0e9 * (math.log(1.0 - 0.01 * math.exp(0.1)) + 0.01)
    assert P.hold_cost(0.1, 1.0e9, 10.0, 0.99) == pytest.approx(expected)
    assert expected == pytest.approx(1.113233e6, rel=1e-6)
    # near depth * h * push^2 * (1 - decay) = 1e6 for small moves; nothing without a hold or without relaxation
    assert P.hold_cost(0.1, 1.0e9, 0.0, 0.99) == 0.0
    assert P.hold_cost(0.1, 1.0e9, 10.0, 1.0) == 0.0
    # cost rises with the hold (a longer TWAP window costs more), and is inf when the market cannot sell back
    assert P.hold_cost(0.1, 1.0e9, 30.0, 0.99) > P.hold_cost(0.1, 1.0e9, 10.0, 0.99)
    assert math.isinf(P.hold_cost(0.5, 1.0e9, 400.0, 0.99))


def test_hunt_gain_matches_the_fills_it_describes() -> None:
    depth, price, push, cascade = 1.0e9, 3000.0, 0.1, 1.0e8
    # worked: 1e9 ln(1 + (e^0.1 - 1)(1 - e^-0.1)) = 9.9586e6
    assert P.hunt_gain(push, cascade, depth) == pytest.approx(9.958584e6, rel=1e-6)
    assert P.hunt_gain(push, 0.0, depth) == 0.0
    # the same from the linear fills: sell, the cascade sells `cascade` more, buy the tokens back
    tokens = P.linear_push_tokens(push, price, depth)
    proceeds = P.linear_impact_proceeds(tokens, price, depth)
    after = price * math.exp(-push - cascade / depth)
    assert proceeds - P.linear_impact_cost(tokens, after, depth) == pytest.approx(P.hunt_gain(push, cascade, depth))


def test_guessed_debt_above_worked_numbers_and_a_sampled_book() -> None:
    # m = 1/2: alpha = 1, collateral uniform on [0, 1], debt ~ r: the debt above 1/2 is 1 - 0.5^2 = 0.75
    assert P.guessed_debt_above(0.5, 0.5) == pytest.approx(0.75)
    # m = 2/3: alpha = 2, 1 - 0.5^3 = 0.875; the whole book above 0, none above 1
    assert P.guessed_debt_above(0.5, 2.0 / 3.0) == pytest.approx(0.875)
    assert P.guessed_debt_above(0.0, 0.6) == 1.0 and P.guessed_debt_above(1.0, 0.6) == 0.0
    # a book drawn from the shape (inverse CDF r = u^(1 / alpha), equal collateral): its collateral-weighted mean
    # ratio is m and the debt share above q is the formula's
    m, q = 0.7, np.array([0.5, 0.8, 0.95])
    r = np.random.default_rng(1).random(400_000) ** (1.0 / (m / (1.0 - m)))
    assert r.mean() == pytest.approx(m, abs=2e-3)
    sampled = np.array([r[r > x].sum() / r.sum() for x in q])
    assert sampled == pytest.approx(P.guessed_debt_above(q, m), abs=3e-3)
    with pytest.raises(ValueError, match="mean_ratio"):
        P.guessed_debt_above(0.5, 1.0)


def test_oracle_attack_formulas_worked_numbers() -> None:
    # repaying 1,000 at 5% bonus with the oracle 0.1 (log) low: 1,000 (1.05 e^0.1 - 1) = 160.43 at the true price
    assert P.liquidation_gain(1000.0, 0.05, 0.1) == pytest.approx(160.4295, rel=1e-6)
    assert P.liquidation_gain(1000.0, 0.05, 0.0) == pytest.approx(50.0)
    # the attack decision: gain 2.88M against cost 2.86M pays with no edge asked, not with a 1% edge (2.8886M)
    assert P.attack_pays(2.88e6, 2.86e6, 0.0)
    assert not P.attack_pays(2.88e6, 2.86e6, 0.01)
    assert P.attack_pays(2.89e6, 2.86e6, 0.01)
    assert not P.attack_pays(2.86e6, 2.86e6, 0.0)  # indifferent: it does not start
    assert not P.attack_pays(0.0, 0.0, 0.0) and P.attack_pays(1.0, 0.0, 10.0)  # free but gainless / free and gainful
    # a 30-step TWAP read 1 step late: held 30 + 1 + 1 = 32 steps
    assert P.oracle_attack_hold_steps(30, 1) == 32.0
    # capital: the push's tokens (1e9 (e^0.1 - 1)) plus 10 steps of holding (1e9 * 10 * 0.1 * 0.01 * e^0.1)
    assert P.oracle_attack_capital(0.1, 1.0e9, 10.0, 0.99) == pytest.approx(
        1.0e9 * (math.expm1(0.1) + 0.01 * math.exp(0.1))
    )
    assert P.oracle_attack_capital(0.1, 1.0e9, 32.0, 0.99) > P.oracle_attack_capital(0.1, 1.0e9, 3.0, 0.99)


# --- the liquidation hunter ---------------------------------------------------------------------------------------


def hunt_model(visible: bool, seed: int = 3, **overrides: object) -> ReflexivityModel:
    config = ModelConfig.from_preset(
        "liquidation_hunt", {**SMALL, "hunters.positions_visible": visible, "check_invariants": True, **overrides}
    )
    return ReflexivityModel(config, rng=seed, steps=60)


def test_liquidation_prices_are_where_health_reaches_one() -> None:
    m = hunt_model(True)
    prices = m.oracle.prices.copy()
    liq = liquidation_prices(m.engine, prices, 1)
    accounts = np.flatnonzero(np.isfinite(liq))[:20]
    assert len(accounts) > 5
    for acct in accounts:
        at = prices.copy()
        at[1] = liq[acct]
        assert m.engine.account_health(int(acct), at) == pytest.approx(1.0, rel=1e-9)


def test_visible_hunter_pushes_a_cluster_over_and_profits() -> None:
    m = hunt_model(True)
    hunter = m.hunters[0]
    plan = hunter.plan()
    assert plan is not None and plan[3] > m.config.hunters.min_profit_usd
    asset, target = plan[0], plan[1]
    # its target is a real account's liquidation price, less the overshoot
    liq = liquidation_prices(m.engine, m.oracle.prices, asset)
    cluster = liq[np.isfinite(liq) & (liq >= target / (1.0 - m.config.hunters.overshoot) * (1 - 1e-12))]
    assert len(cluster) > 0 and cluster.min() == pytest.approx(target / (1.0 - m.config.hunters.overshoot))
    exposed = np.flatnonzero(np.isfinite(liq) & (liq >= cluster.min() * (1 - 1e-12)) & (liq < m.oracle.prices[asset]))
    for _ in range(40):
        m.step()
    assert hunter.n_hunts >= 1
    liquidated = {e["account"] for e in m.recorder.events}
    assert liquidated & set(exposed.tolist())  # the cluster it aimed at went over
    assert hunter.profit_usd() > 0
    assert hunter.short.sum() == 0 or hunter.state != "idle"


def test_hidden_positions_make_the_hunter_guess_from_the_reserve_totals() -> None:
    hidden = hunt_model(False)
    hunter, m = hidden.hunters[0], hidden
    sale = m.pool.close_factor_default * (1.0 + float(m.pool.liquidation_bonus[1]))
    target, cascade = hunter.targets(1)
    # a grid of targets below the price now, each with the guessed cascade: deeper pushes set off more
    assert len(target) > 100 and (np.diff(target) < 0).all() and (target < m.oracle.prices[1]).all()
    assert (np.diff(cascade) > 0).all()
    # the guess uses totals only: the deepest target's cascade is nearly the whole of ETH's share of the USD debt
    value = m.engine.collateral[: m.engine.n].sum(axis=0) * m.oracle.prices
    debt = m.engine.debt_tokens()[:, 0].sum() * value[1] / value[1:].sum()
    assert cascade[-1] == pytest.approx(sale * debt, rel=1e-3)
    # shuffling who holds what (same totals) leaves the guess unchanged: it cannot see positions
    engine = m.engine
    order = np.random.default_rng(0).permutation(engine.n)
    engine.collateral[: engine.n] = engine.collateral[: engine.n][order]
    again, again_cascade = hunter.targets(1)
    assert again == pytest.approx(target) and again_cascade == pytest.approx(cascade, rel=1e-9)


def test_the_hidden_hunter_hunts_on_its_guess_and_counts_hits() -> None:
    hidden = hunt_model(False)
    hunter = hidden.hunters[0]
    plan = hunter.plan()
    assert plan is not None and plan[3] > hidden.config.hunters.min_profit_usd
    for _ in range(60):
        hidden.step()
    assert hunter.n_hunts >= 1 and 0 <= hunter.n_hits <= hunter.n_hunts
    assert hunter.expected_usd >= plan[3]
    summary = adversary_summary(hidden)
    assert summary["hunter_hits"] == hunter.n_hits and summary["hunter_hunts"] == hunter.n_hunts
    assert 0 <= summary["hunter_losing_hunts"] <= hunter.n_hunts


def test_an_idle_hunter_changes_nothing_else() -> None:
    # a hunter that never finds a hunt worth it: its wallet row and agent id move nobody's, so the run is the same
    base = {**SMALL, "hunters.capital_usd": 1.0e8}
    plain = ReflexivityModel(ModelConfig.from_preset("crash", base), rng=0, steps=300)
    idle = ReflexivityModel(
        ModelConfig.from_preset("crash", {**base, "hunters.n_hunters": 1, "hunters.min_profit_usd": 1.0e30}),
        rng=0,
        steps=300,
    )
    for _ in range(300):
        plain.step()
        idle.step()
    assert idle.hunters[0].n_hunts == 0
    assert [t.holder for t in idle.traders] == [t.holder for t in plain.traders]
    assert [x.holder for x in idle.lenders] == [x.holder for x in plain.lenders]
    np.testing.assert_array_equal(idle.history.log_market(300), plain.history.log_market(300))
    assert len(idle.recorder.events) == len(plain.recorder.events) > 0
    assert idle.wallets.kinds[-1] == "hunter" and len(idle.wallets.kinds) == len(plain.wallets.kinds) + 1


# --- the oracle attacker ------------------------------------------------------------------------------------------


def attack_model(twap: int, n_updaters: int, corrupt: int, **overrides: object) -> ReflexivityModel:
    return oracle_attack_model(
        twap,
        n_updaters,
        corrupt,
        **{
            "oracle_venue.enabled": False,  # the deep market route (tests/test_oracle_venue.py: the thin venue)
            "attacker.rational": False,  # the strategy's mechanics, whatever it prices (the decision: test_oracle_venue)
            **overrides,
        },
    )


def run_attack(m: ReflexivityModel) -> None:
    for _ in range(m.total_steps):
        m.step()


# traders who do not answer the push (hodlers within their rebalancing band, no stop-losses): the attacker alone
# holds the price against the impact's relaxation, so the cost of the defence is its own
PASSIVE = {
    "traders.strategy_mix": {"hodl": 1.0},
    "traders.risk_mix": {"stubborn": 1.0},
    "traders.max_leverage": 1.5,
    "traders.leverage_min": 1.2,
}


def test_a_longer_twap_window_costs_more_to_move() -> None:
    short, long = attack_model(1, 1, 0, **PASSIVE), attack_model(20, 1, 0, **PASSIVE)
    run_attack(short)
    run_attack(long)
    a_short, a_long = short.attackers[0], long.attackers[0]
    assert a_short.landed_step >= 0 and a_long.landed_step >= 0
    start = short.config.attacker.start_step
    # the oracle takes longer to reach the target, and the attacker must sell more to hold the push that long
    assert a_long.landed_step - start > a_short.landed_step - start
    assert a_long.peak_short_usd > a_short.peak_short_usd
    assert a_long.cost_usd > a_short.cost_usd > 0


def test_the_median_defends_against_one_corrupted_updater() -> None:
    alone, outvoted = attack_model(1, 1, 1), attack_model(1, 3, 1)
    alone.step()  # step 1: before the attack
    for _ in range(4):
        alone.step()
        outvoted.step()
    outvoted.step()
    # one updater, corrupted: the oracle posts the target at once and the attacker never trades the market
    assert alone.attackers[0].landed_step == alone.config.attacker.start_step
    assert alone.attackers[0].peak_short_usd == 0.0
    # one of three: the median ignores it; the attacker has to sell into the market
    assert outvoted.attackers[0].landed_step == -1
    assert outvoted.attackers[0].peak_short_usd > 0.0


def test_the_attacker_liquidates_first_and_books_its_ledger() -> None:
    m = attack_model(1, 1, 1)
    run_attack(m)
    attacker = m.attackers[0]
    assert attacker.n_liquidations > 0 and attacker.state == "done"
    mine = [e for e in m.recorder.events if e["liquidator"] == attacker.unique_id]
    assert len(mine) == attacker.n_liquidations
    # corrupting the only updater cost only gas; the liquidation gain is the profit, up to the price's drift on the
    # seized collateral it keeps
    assert attacker.cost_usd == pytest.approx(attacker.gas_cost_usd * (attacker.n_liquidations + 1))
    assert attacker.gain_usd > 0 and attacker.short.sum() == 0.0
    held = m.wallets.balances[attacker.holder, attacker.asset]
    drift = held * (m.market.price(attacker.asset) - attacker.reference[attacker.asset])
    assert attacker.profit_usd() == pytest.approx(attacker.gain_usd - attacker.cost_usd + drift)


def test_attacker_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=re.escape("attacker.corrupt_updaters = 2 must be <= oracles.n_updaters = 1")):
        ModelConfig.from_preset("oracle_attack", {"attacker.corrupt_updaters": 2})
    with pytest.raises(ConfigError, match=re.escape("attacker.asset = 'DOGE'")):
        ModelConfig.from_preset("oracle_attack", {"attacker.asset": "DOGE"})


# --- ledgers -------------------------------------------------------------------------------------------------------


def test_adversaries_wallets_are_inside_the_token_ledgers() -> None:
    # invariants are checked after every step (check_invariants = true): conservation with both adversaries trading
    # (seed 2: a population in which the attacker must short the market to move the oracle after the hunt)
    m = hunt_model(True, seed=2, **{"attacker.enabled": True, "attacker.start_step": 3, "oracles.n_updaters": 3})
    for _ in range(30):
        m.step()
    assert m.hunters[0].n_hunts >= 1 and m.attackers[0].peak_short_usd > 0
    assert m.wallets.kinds[-2:] == ["hunter", "oracle attacker"]
    assert m.attackers[0].holder == m.hunters[0].holder + 1 == len(m.wallets.kinds) - 1
    m.hunters[0].short[1] = -1.0e3  # a negative claim on the outside world is a bug the check names
    with pytest.raises(InvariantError, match=r"hunter \d+ owes the outside world"):
        check_invariants(m)


def test_page_controls_turn_the_adversaries_on_and_hide_positions() -> None:
    from abm.app.sim import COMPARISONS, Controls, build_config

    hunt = Controls.from_preset("liquidation_hunt", n_traders=60)
    assert hunt.n_hunters == 1 and hunt.positions_visible and not hunt.attacker
    hidden = build_config(COMPARISONS["positions_hidden"].change(hunt))
    assert hidden.hunters.n_hunters == 1 and not hidden.hunters.positions_visible
    crash = build_config(Controls.from_preset("crash", n_traders=60).replace(n_hunters=2, attacker=True))
    assert crash.hunters.n_hunters == 2 and crash.attacker.enabled
    plain = build_config(Controls.from_preset("crash", n_traders=60))
    assert plain.hunters.n_hunters == 0 and not plain.attacker.enabled


def test_the_unhunted_twin_counts_the_liquidations_the_hunter_caused() -> None:
    import abm

    config = ModelConfig.from_preset("liquidation_hunt", SMALL)
    result = abm.run(config, seed=3, steps=40, twin="unhunted")
    twin = result.twin
    assert twin is not None and twin.config.hunters.n_hunters == 0
    triggered = result.summary["hunter_triggered_liquidations"]
    assert triggered == result.summary["n_liquidations"] - twin.summary["n_liquidations"] > 0
    assert "hunter_profit_usd" not in twin.summary  # the twin has no adversary, so no adversary keys
