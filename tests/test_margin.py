"""The margin engine: vectorised health, margin modes, atomic position changes, liquidation.

Baseline reserves (Aave v3 style): USD ltv 0.75 / LT 0.78; ETH ltv 0.80 / LT 0.825 / bonus 5%; BTC ltv 0.73 /
LT 0.78 / bonus 5%. Prices: ETH $3000, BTC $60000. Holder 0 is the pool's supplier (see conftest), holders 1-2
are traders, holder 3 a liquidator.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import System

from abm import protocol
from abm.errors import InvariantError
from abm.lending.margin import LiquidationPlan

USD, ETH, BTC = 0, 1, 2
TRADER, TRADER2, LIQUIDATOR = 1, 2, 3


def assert_unchanged(before: dict[str, np.ndarray], s: System) -> None:
    after = s.state()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def assert_books_balance(s: System, totals: np.ndarray) -> None:
    """Tokens conserved, pool identity, the accounts' debts add up to the pool's borrows."""
    s.assert_conserved(totals)
    pool = s.pool
    np.testing.assert_allclose(pool.cash + pool.borrows, pool.supplied + pool.reserves, rtol=1e-12)
    np.testing.assert_allclose(s.engine.scaled_debt[: s.engine.n].sum(axis=0), pool.scaled_borrows, atol=1e-9)
    assert (s.wallets.balances >= 0).all() and (s.engine.collateral[: s.engine.n] >= 0).all()


def long_account(s: System, eth: float, debt_usd: float, owner: int = TRADER, mode: str = "cross") -> int:
    """An account holding `eth` ETH bought at the fundamental and owing `debt_usd` USD (a genesis position)."""
    acct = s.engine.open_account(owner, mode)
    own = eth * 3000.0 - debt_usd
    s.fund(owner, USD, own)
    assert s.engine.lever_long(acct, ETH, debt_usd, own, s.prices, step=0, genesis=True)
    return acct


# --- health ------------------------------------------------------------------------------------------------


def test_vectorised_health_equals_protocol_per_account(system: System) -> None:
    s = system
    rng = np.random.default_rng(7)
    n = 40
    for i in range(n):
        s.engine.open_account(owner=i % 3, mode="isolated" if i % 2 else "cross")
    s.engine.collateral[:n] = rng.uniform(0, 10, (n, 3)) * (rng.random((n, 3)) < 0.7)
    s.engine.scaled_debt[:n] = rng.uniform(0, 5, (n, 3)) * (rng.random((n, 3)) < 0.5)
    s.pool.borrow_index = np.array([1.01, 1.02, 1.03])  # debts carry interest
    prices = np.array([1.0, 2500.0, 50000.0])
    hf = s.engine.health(prices)
    assert hf.shape == (n,)
    for i in range(n):
        coll_usd = s.engine.collateral[i] * prices
        debt_usd = s.engine.scaled_debt[i] * s.pool.borrow_index * prices
        expected = protocol.health_factor(coll_usd, s.pool.liquidation_threshold, debt_usd.sum())
        assert hf[i] == pytest.approx(expected, rel=1e-12)
        assert s.engine.account_health(i, prices) == pytest.approx(expected, rel=1e-12)
    assert np.isinf(hf[s.engine.scaled_debt[:n].sum(axis=1) == 0]).all()


def random_mixed_accounts(
    s: System,
    n: int,
    rng: np.random.Generator,
    coll_units: float | list[float] = 1.0,
    debt_high: float = 5.0,
    debt_units: float | list[float] = 1.0,
) -> None:
    """Open `n` accounts, cross, isolated and portfolio in turn, with random holdings: collateral up to 10
    `coll_units` in about 70% of the cells, scaled debt up to `debt_high` `debt_units` in about half; borrow indices
    a little above 1."""
    modes = ["cross", "isolated", "portfolio"]
    for i in range(n):
        s.engine.open_account(owner=i % 3, mode=modes[i % 3])
    s.engine.collateral[:n] = rng.uniform(0, 10, (n, 3)) * (rng.random((n, 3)) < 0.7) * coll_units
    s.engine.scaled_debt[:n] = rng.uniform(0, debt_high, (n, 3)) * (rng.random((n, 3)) < 0.5) * debt_units
    s.pool.borrow_index = np.array([1.01, 1.02, 1.03])


def test_health_of_chosen_accounts_is_each_accounts_health_bit_for_bit(system: System) -> None:
    # cross, isolated and portfolio accounts, some without debt, chosen out of order and with repeats
    s = system
    rng = np.random.default_rng(11)
    n = 30
    random_mixed_accounts(s, n, rng)
    prices = np.array([1.0, 2500.0, 50000.0])
    chosen = np.concatenate([rng.permutation(n), [4, 4, 7]])
    hf = s.engine.accounts_health(chosen, prices)
    expected = np.array([s.engine.account_health(int(a), prices) for a in chosen])
    np.testing.assert_array_equal(hf, expected)
    assert np.isinf(hf).any() and np.isfinite(hf).any()


def test_collateral_disabled_asset_counts_for_nothing(make_system) -> None:
    s = make_system({"pool.reserves.BTC.collateral_enabled": False})
    acct = s.engine.open_account(TRADER)
    s.engine.collateral[acct] = [1000.0, 0.0, 1.0]
    s.engine.scaled_debt[acct] = [500.0, 0.0, 0.0]
    # only the USD counts: 1000 * 0.78 / 500 = 1.56 (the BTC's $60000 is ignored)
    assert s.engine.account_health(acct, s.prices) == pytest.approx(1.56)


def test_isolated_accounts_do_not_share_losses_cross_accounts_do(system: System) -> None:
    s = system
    eth_iso = long_account(s, eth=1.0, debt_usd=2000.0, mode="isolated")
    btc_iso = s.engine.open_account(TRADER, "isolated")
    s.fund(TRADER, USD, 40_000.0)
    assert s.engine.lever_long(btc_iso, BTC, 20_000.0, 40_000.0, s.prices, step=0, genesis=True)
    cross = s.engine.open_account(TRADER2, "cross")
    s.fund(TRADER2, USD, 41_000.0)
    assert s.engine.lever_long(cross, ETH, 2000.0, 1000.0, s.prices, step=0, genesis=True)
    assert s.engine.lever_long(cross, BTC, 20_000.0, 40_000.0, s.prices, step=0, genesis=True)
    # ETH at $3000: isolated ETH 2475 / 2000 = 1.2375; isolated BTC 46800 / 20000 = 2.34;
    # cross (2475 + 46800) / 22000 = 2.2398
    hf = s.engine.health(s.prices)
    np.testing.assert_allclose(hf[[eth_iso, btc_iso, cross]], [1.2375, 2.34, 49_275 / 22_000])
    # ETH falls to $2000: the isolated ETH account fails (1650 / 2000 = 0.825), the BTC one is untouched,
    # the cross account absorbs the loss with its BTC: (1650 + 46800) / 22000 = 2.2023
    crashed = np.array([1.0, 2000.0, 60000.0])
    hf = s.engine.health(crashed)
    np.testing.assert_allclose(hf[[eth_iso, btc_iso, cross]], [0.825, 2.34, 48_450 / 22_000])
    plan = s.engine.plan_liquidation(eth_iso, crashed)
    assert plan is not None and plan.collateral_asset == ETH  # only the isolated account's own collateral is at stake
    assert s.engine.plan_liquidation(btc_iso, crashed) is None
    assert s.engine.plan_liquidation(cross, crashed) is None


def test_portfolio_requirement_is_the_worst_scenario_loss(system: System) -> None:
    s = system
    # a SPAN-like grid (assets x scenarios): everything moves together by +-20%, or one asset alone by +-5%
    s.engine.scenarios = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [-0.2, 0.2, -0.05, 0.05, 0.0, 0.0],
            [-0.2, 0.2, 0.0, 0.0, -0.05, 0.05],
        ]
    )
    # hedged book: 3000 USD + 10 ETH ($30000) collateral against 0.5 BTC ($30000) debt; equity $3000
    hedged = np.array([[3000.0, 10.0, 0.0]]), np.array([[0.0, 0.0, 0.5]])
    port = s.engine.open_account(TRADER, "portfolio")
    cross = s.engine.open_account(TRADER2, "cross")
    for acct in (port, cross):
        s.engine.collateral[acct], s.engine.scaled_debt[acct] = hedged[0][0], hedged[1][0]
    # scenario losses: joint moves 0 (hedged); ETH alone -5%: 1500; BTC alone +5%: 1500 -> requirement 1500
    # portfolio HF = equity / requirement = 3000 / 1500 = 2
    # cross HF = (3000 * 0.78 + 30000 * 0.825) / 30000 = 27090 / 30000 = 0.903: liquidatable
    hf = s.engine.health(s.prices)
    assert hf[port] == pytest.approx(2.0)
    assert hf[cross] == pytest.approx(0.903)
    assert s.engine.plan_liquidation(port, s.prices) is None
    assert s.engine.plan_liquidation(cross, s.prices) is not None
    # borrow headroom in portfolio mode: equity - requirement = 3000 - 1500
    assert s.engine.borrow_headroom_usd(port, s.prices) == pytest.approx(1500.0)
    # cross headroom: 3000 * 0.75 + 30000 * 0.80 - 30000 = -3750
    assert s.engine.borrow_headroom_usd(cross, s.prices) == pytest.approx(-3750.0)


def test_portfolio_with_per_asset_haircut_grid_matches_cross_on_a_lone_long(system: System) -> None:
    s = system
    shock = 1.0 - s.pool.liquidation_threshold
    shock[0] = 0.0
    s.engine.scenarios = np.stack([-shock, shock], axis=1)
    port = long_account(s, eth=1.0, debt_usd=2000.0, mode="portfolio")
    cross = long_account(s, eth=1.0, debt_usd=2000.0, mode="cross")
    # the lone long's worst loss is 3000 * 0.175 = 525; equity 1000 -> HF 1000 / 525
    assert s.engine.account_health(port, s.prices) == pytest.approx(1000.0 / 525.0)
    # both modes agree on where HF crosses 1: the liquidation price 2000 / 0.825
    at_liq = np.array([1.0, protocol.liquidation_price(1.0, 2000.0, 0.825), 60000.0])
    hf = s.engine.health(at_liq)
    np.testing.assert_allclose(hf[[port, cross]], [1.0, 1.0])


# --- position changes ----------------------------------------------------------------------------------------


def test_lever_and_delever_long_conserve_tokens(system: System) -> None:
    s = system
    s.fund(TRADER, USD, 10_000.0)
    totals = s.totals()
    acct = s.engine.open_account(TRADER)
    quote = s.market.quote_buy(ETH, 30_000.0)
    assert s.engine.lever_long(acct, ETH, 20_000.0, 10_000.0, s.prices, step=1)
    assert s.engine.collateral[acct, ETH] == pytest.approx(quote)
    assert s.engine.debt_tokens(acct)[USD] == pytest.approx(20_000.0)
    assert s.wallets.balance(TRADER, USD) == 0.0
    assert s.market.price(ETH) > 3000.0  # the buy moved the market
    assert_books_balance(s, totals)
    # sell half: the proceeds repay USD debt first
    raised = s.engine.delever_long(acct, ETH, quote / 2, s.prices, step=2)
    assert 0 < raised < 20_000.0
    assert s.engine.debt_tokens(acct)[USD] == pytest.approx(20_000.0 - raised)
    assert_books_balance(s, totals)
    # sell everything: the debt is gone and the surplus lands in the wallet
    raised2 = s.engine.delever_long(acct, ETH, 1e9, s.prices, step=3)
    assert s.engine.collateral[acct, ETH] == 0.0
    assert s.engine.debt_tokens(acct)[USD] == 0.0
    assert s.wallets.balance(TRADER, USD) == pytest.approx(raised + raised2 - 20_000.0)
    assert_books_balance(s, totals)


def test_lever_and_delever_short_conserve_tokens(system: System) -> None:
    s = system
    s.fund(TRADER, USD, 20_000.0)
    totals = s.totals()
    acct = s.engine.open_account(TRADER)
    proceeds = s.market.quote_sell(ETH, 10.0)
    assert s.engine.lever_short(acct, ETH, 10.0, 20_000.0, s.prices, step=1)
    assert s.engine.collateral[acct, USD] == pytest.approx(20_000.0 + proceeds)
    assert s.engine.debt_tokens(acct)[ETH] == pytest.approx(10.0)
    assert s.pool.cash[ETH] == pytest.approx(190.0)
    assert_books_balance(s, totals)
    spent = s.engine.delever_short(acct, ETH, 4.0, s.prices, step=2)
    assert spent > 0
    assert s.engine.debt_tokens(acct)[ETH] == pytest.approx(6.0)
    assert s.engine.collateral[acct, USD] == pytest.approx(20_000.0 + proceeds - spent)
    assert_books_balance(s, totals)


def test_close_out_unwinds_long_and_short(system: System) -> None:
    s = system
    s.fund(TRADER, USD, 50_000.0)
    totals = s.totals()
    acct = s.engine.open_account(TRADER)
    assert s.engine.lever_long(acct, ETH, 20_000.0, 10_000.0, s.prices, step=1)
    assert s.engine.lever_short(acct, BTC, 0.2, 20_000.0, s.prices, step=1)
    s.engine.close_out(acct, s.prices, step=2)
    assert not s.engine.collateral[acct].any()
    assert not s.engine.scaled_debt[acct].any()
    # round trips through the market cost something, but most of the 50k comes back
    assert 45_000.0 < s.wallets.balance(TRADER, USD) < 50_000.0
    assert_books_balance(s, totals)


def test_borrow_beyond_borrow_power_reverts_with_nothing_changed(system: System) -> None:
    s = system
    s.fund(TRADER, USD, 10_000.0)
    acct = s.engine.open_account(TRADER)
    before = s.state()
    # 60000 of ETH at ltv 0.8 supports at most 48000 of debt (less after impact): 50000 reverts
    assert not s.engine.lever_long(acct, ETH, 50_000.0, 10_000.0, s.prices, step=1)
    assert_unchanged(before, s)
    # a short of 40 ETH ($120000 of debt) against 10000 + ~120000 of USD at ltv 0.75 = ~97500: reverts
    assert not s.engine.lever_short(acct, ETH, 40.0, 10_000.0, s.prices, step=1)
    assert_unchanged(before, s)
    # more than the reserve's cash (200 ETH) reverts too, whatever the collateral
    assert not s.engine.lever_short(acct, ETH, 250.0, 10_000.0, s.prices, step=1)
    assert_unchanged(before, s)
    # within the limit it goes through: 10000 + 30000 ETH, 30000 * 0.8 = 24000 >= 20000
    assert s.engine.lever_long(acct, ETH, 20_000.0, 10_000.0, s.prices, step=1)
    # and withdrawing collateral the debt needs is refused
    before = s.state()
    assert s.engine.withdraw(acct, ETH, s.engine.collateral[acct, ETH], s.prices) == 0.0
    assert_unchanged(before, s)


# --- liquidation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eth_price", "repay", "seize"),
    [
        # HF = 2880 * 0.825 / 2400 = 0.99 >= 0.95: close factor 50% -> repay 1200; seize 1200 / 2880 * 1.05
        (2880.0, 1200.0, 1200.0 / 2880.0 * 1.05),
        # HF = 2700 * 0.825 / 2400 = 0.928 < 0.95: the whole 2400; seize 2400 / 2700 * 1.05 = 0.9333 ETH
        (2700.0, 2400.0, 2400.0 / 2700.0 * 1.05),
        # HF = 0.6875: the whole debt would seize 2400 / 2000 * 1.05 = 1.26 ETH > the 1 held: capped at 1 ETH,
        # repay reduced to 1 * 2000 / 1.05 = 1904.76
        (2000.0, 2000.0 / 1.05, 1.0),
    ],
)
def test_plan_liquidation_close_factor_and_cap(system: System, eth_price: float, repay: float, seize: float) -> None:
    s = system
    acct = long_account(s, eth=1.0, debt_usd=2400.0)
    prices = np.array([1.0, eth_price, 60000.0])
    plan = s.engine.plan_liquidation(acct, prices)
    assert plan is not None
    assert (plan.debt_asset, plan.collateral_asset) == (USD, ETH)
    assert plan.hf_before == pytest.approx(eth_price * 0.825 / 2400.0)
    assert plan.repay == pytest.approx(repay)
    assert plan.seize == pytest.approx(seize)


def test_liquidation_plans_are_the_protocols_plan_of_each_account_bit_for_bit(system: System) -> None:
    # cross, isolated and portfolio accounts at random, some healthy, some without debt or collateral, some capped
    # by the collateral they hold, with and without the close factor's full liquidation, one disabled collateral
    s = system
    rng = np.random.default_rng(5)
    n = 300
    random_mixed_accounts(s, n, rng, [3000.0, 1.0, 0.05], 30000.0, [1.0, 1 / 3000, 1 / 6e4])
    s.pool.collateral_enabled[2] = False
    s.pool.params_version += 1
    pool, prices = s.pool, np.array([1.0, 2500.0, 50000.0])
    accounts = rng.permutation(n)
    plans = s.engine.liquidation_plans(accounts, prices)
    assert 20 < plans.liquidatable.sum() < n
    for r, acct in enumerate(accounts.tolist()):
        hf = s.engine.account_health(acct, prices)
        debt = s.engine.debt_tokens(acct)
        debt_usd, coll_usd = debt * prices, s.engine.collateral[acct] * prices * pool.collateral_enabled
        j, k = int(np.argmax(debt_usd)), int(np.argmax(coll_usd))
        if not (hf < 1.0 and debt_usd[j] > 0 and coll_usd[k] > 0):
            assert plans.plan(r) is None and s.engine.plan_liquidation(acct, prices) is None
            continue
        cf = float(protocol.close_factor(hf, pool.close_factor_default, pool.close_factor_full_below))
        bonus = float(pool.liquidation_bonus[k])
        repay = cf * float(debt[j])
        seize = float(protocol.collateral_seized(repay, prices[j], prices[k], bonus))
        if seize > s.engine.collateral[acct, k]:
            seize = float(s.engine.collateral[acct, k])
            repay = float(protocol.repay_for_seizure(seize, prices[j], prices[k], bonus))
        expected = LiquidationPlan(j, k, repay, seize, hf)
        assert plans.plan(r) == expected == s.engine.plan_liquidation(acct, prices)


def test_plan_liquidation_none_when_healthy(system: System) -> None:
    s = system
    acct = long_account(s, eth=1.0, debt_usd=2400.0)
    # HF = 3000 * 0.825 / 2400 = 1.03
    assert s.engine.plan_liquidation(acct, s.prices) is None
    empty = s.engine.open_account(TRADER2)
    assert s.engine.plan_liquidation(empty, s.prices) is None


def test_liquidate_moves_exactly_repay_and_seize(system: System) -> None:
    s = system
    acct = long_account(s, eth=1.0, debt_usd=2400.0)
    s.fund(LIQUIDATOR, USD, 5000.0)
    totals = s.totals()
    prices = np.array([1.0, 2880.0, 60000.0])
    plan = s.engine.plan_liquidation(acct, prices)
    assert plan is not None
    cash0 = s.pool.cash[USD]
    s.engine.liquidate(acct, plan, LIQUIDATOR)
    assert s.wallets.balance(LIQUIDATOR, USD) == pytest.approx(5000.0 - 1200.0)
    assert s.wallets.balance(LIQUIDATOR, ETH) == pytest.approx(0.4375)  # 1200 / 2880 * 1.05
    assert s.engine.collateral[acct, ETH] == pytest.approx(1.0 - 0.4375)
    assert s.engine.debt_tokens(acct)[USD] == pytest.approx(1200.0)
    assert s.pool.cash[USD] == pytest.approx(cash0 + 1200.0)
    assert_books_balance(s, totals)
    # seizing more than the account holds is a bug, not a silent cap
    with pytest.raises(InvariantError, match="exceeds collateral"):
        s.engine.liquidate(acct, LiquidationPlan(USD, ETH, 100.0, 5.0, plan.hf_before), LIQUIDATOR)


def test_capped_liquidation_leaves_bad_debt(system: System) -> None:
    s = system
    acct = long_account(s, eth=1.0, debt_usd=2400.0)
    s.fund(LIQUIDATOR, USD, 5000.0)
    prices = np.array([1.0, 2000.0, 60000.0])
    plan = s.engine.plan_liquidation(acct, prices)
    assert plan is not None
    s.engine.liquidate(acct, plan, LIQUIDATOR)
    # all collateral gone, 2400 - 1904.76 = 495.24 still owed: the account is insolvent (bad debt)
    assert s.engine.collateral[acct].sum() == 0.0
    assert s.engine.debt_tokens(acct)[USD] == pytest.approx(2400.0 - 2000.0 / 1.05)
    np.testing.assert_array_equal(s.engine.insolvent_accounts(prices), [acct])
