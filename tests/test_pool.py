"""The lending pool: suppliers, loans, interest accrual with the reserve factor, and the bad-debt waterfall.

Worked numbers use one-year steps (`market.step_seconds` = 365 days) so that one accrual applies the annual rate
exactly: the USD reserve has Aave v3 USDC parameters (U* 0.92, slope1 9%, slope2 60%, reserve factor 10%).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import System, SystemFactory

from abm.errors import InvariantError
from abm.protocol import SECONDS_PER_YEAR

USD, ETH, BTC = 0, 1, 2
YEAR_STEPS = {"market.step_seconds": SECONDS_PER_YEAR}


def assert_identity(system: System) -> None:
    pool = system.pool
    np.testing.assert_allclose(pool.cash + pool.borrows, pool.supplied + pool.reserves, rtol=1e-12, atol=1e-9)


def usd_pool(make_system: SystemFactory, policy: str = "socialize") -> tuple[System, list[float]]:
    """1000 USD supplied (600 by supplier 0, 400 by supplier 1); 920 lent to three loans (U = 0.92, the kink)."""
    s = make_system({**YEAR_STEPS, "pool.bad_debt_policy": policy})
    s.fund(0, USD, 600.0)
    s.fund(1, USD, 400.0)
    s.pool.supply(0, 0, USD, 600.0, s.wallets)
    s.pool.supply(1, 1, USD, 400.0, s.wallets)
    loans = [s.pool.lend_out(USD, amount) for amount in (5.0, 455.0, 460.0)]
    # the borrowed cash leaves the pool's books for a borrower's wallet (holder 2)
    s.wallets.credit(2, USD, 920.0)
    return s, loans


def test_supply_and_withdraw(make_system: SystemFactory) -> None:
    s = make_system()
    s.fund(0, ETH, 10.0)
    before = s.totals()
    s.pool.supply(0, 0, ETH, 4.0, s.wallets)
    assert s.wallets.balance(0, ETH) == 6.0
    assert s.pool.cash[ETH] == 4.0
    assert s.pool.supplier_balance(0, ETH) == 4.0
    assert s.pool.supplied[ETH] == 4.0
    got = s.pool.withdraw(0, 0, ETH, 1.5, s.wallets)
    assert got == 1.5
    assert s.wallets.balance(0, ETH) == 7.5
    assert s.pool.supplier_balance(0, ETH) == pytest.approx(2.5)
    # a supplier cannot take more than its balance; nothing is "blocked" by that
    assert s.pool.withdraw(0, 0, ETH, 100.0, s.wallets) == pytest.approx(2.5)
    assert s.pool.unmet_withdrawals[ETH] == 0.0
    s.assert_conserved(before)
    assert_identity(s)


def test_lend_out_and_take_repayment(make_system: SystemFactory) -> None:
    s, loans = usd_pool(make_system)
    pool = s.pool
    assert pool.cash[USD] == pytest.approx(80.0)
    assert pool.borrows[USD] == pytest.approx(920.0)
    assert sum(loans) == pytest.approx(920.0)  # index 1: scaled debt = tokens
    assert pool.utilisation()[USD] == pytest.approx(0.92)
    assert pool.borrow_rates()[USD] == pytest.approx(0.09)  # at the USDC kink
    # supply rate 0.09 * 0.92 * (1 - 0.10) = 0.07452
    assert pool.supply_rates()[USD] == pytest.approx(0.07452)
    assert_identity(s)
    scaled = pool.take_repayment(USD, 20.0)
    s.wallets.debit(2, USD, 20.0)
    assert scaled == pytest.approx(20.0)
    assert pool.cash[USD] == pytest.approx(100.0)
    assert pool.utilisation()[USD] == pytest.approx(0.9)  # the cached rates follow the state
    assert_identity(s)
    with pytest.raises(InvariantError, match="exceeds cash"):
        pool.lend_out(USD, 101.0)


def test_accrue_one_step_index_growth_is_rate_times_dt(make_system: SystemFactory) -> None:
    s = make_system({"market.step_seconds": 60.0})
    s.fund(0, ETH, 100.0)
    s.pool.supply(0, 0, ETH, 100.0, s.wallets)
    s.pool.lend_out(ETH, 95.0)
    s.wallets.credit(2, ETH, 95.0)
    # WETH at U = 0.95: r = 0.027 + 0.80 * 0.05 / 0.10 = 0.427 per year; dt = 60 / 31,536,000 years
    r_dt = 0.427 * 60.0 / SECONDS_PER_YEAR
    s.pool.accrue()
    assert s.pool.borrow_index[ETH] == pytest.approx(1.0 + r_dt, rel=1e-15)
    interest = 95.0 * r_dt
    assert s.pool.reserves[ETH] == pytest.approx(0.15 * interest, rel=1e-12)
    # suppliers get the other 85% of the interest on their 100 ETH
    assert s.pool.supply_index[ETH] == pytest.approx(1.0 + 0.85 * interest / 100.0, rel=1e-15)
    assert_identity(s)
    # reserves without borrows do not move
    assert s.pool.borrow_index[USD] == 1.0 and s.pool.supply_index[USD] == 1.0


def test_accrue_one_year_reserve_factor_split(make_system: SystemFactory) -> None:
    s, _ = usd_pool(make_system)
    s.pool.accrue()
    # 920 borrowed at 9%: interest 82.8; reserves 10% = 8.28; suppliers 74.52 on 1000 -> index 1.07452
    assert s.pool.borrow_index[USD] == pytest.approx(1.09)
    assert s.pool.borrows[USD] == pytest.approx(1002.8)
    assert s.pool.reserves[USD] == pytest.approx(8.28)
    assert s.pool.supply_index[USD] == pytest.approx(1.07452)
    assert s.pool.supplier_balance(0, USD) == pytest.approx(600 * 1.07452)
    assert s.pool.supplier_balance(1, USD) == pytest.approx(400 * 1.07452)
    assert_identity(s)


def test_withdraw_limited_by_cash_records_unmet_requests(make_system: SystemFactory) -> None:
    s, _ = usd_pool(make_system)
    before = s.totals()
    s.pool.begin_withdrawals()
    # only 80 USD of cash: supplier 0 asks for 600, gets 80, 520 is unmet
    got = s.pool.withdraw(0, 0, USD, 600.0, s.wallets)
    assert got == pytest.approx(80.0)
    assert s.pool.cash[USD] == pytest.approx(0.0)
    assert s.pool.unmet_withdrawals[USD] == pytest.approx(520.0)
    assert s.pool.supplier_balance(0, USD) == pytest.approx(520.0)
    # with no cash left, supplier 1's whole request is unmet too
    assert s.pool.withdraw(1, 1, USD, 100.0, s.wallets) == 0.0
    assert s.pool.unmet_withdrawals[USD] == pytest.approx(620.0)
    # the next round of requests starts from zero: asking again is the same unmet demand, not more of it
    s.pool.begin_withdrawals()
    assert s.pool.withdraw(0, 0, USD, 520.0, s.wallets) == 0.0
    assert s.pool.unmet_withdrawals[USD] == pytest.approx(520.0)
    s.assert_conserved(before)
    assert_identity(s)


def test_write_off_socialize_reserves_first_then_supply_index_haircut(make_system: SystemFactory) -> None:
    s, loans = usd_pool(make_system, "socialize")
    s.pool.accrue()  # index 1.09, reserves 8.28, supplied 1074.52
    before = s.totals()
    # a small loss is covered by the reserves alone: 5 * 1.09 = 5.45 <= 8.28
    rec = s.pool.write_off(step=1, account=0, asset=USD, scaled_debt=loans[0], price=1.0, market=s.market)
    assert rec.amount == pytest.approx(5.45)
    assert rec.reserves_usd == pytest.approx(5.45) and rec.lenders_usd == 0.0 and rec.dilution_usd == 0.0
    assert s.pool.reserves[USD] == pytest.approx(8.28 - 5.45)
    assert s.pool.supply_index[USD] == pytest.approx(1.07452)
    assert_identity(s)
    # a large loss: 460 * 1.09 = 501.4; reserves pay 2.83, lenders 498.57 through the supply index
    rec = s.pool.write_off(step=2, account=2, asset=USD, scaled_debt=loans[2], price=1.0, market=s.market)
    assert rec.amount == pytest.approx(501.4)
    assert rec.reserves_usd == pytest.approx(2.83)
    assert rec.lenders_usd == pytest.approx(498.57)
    assert s.pool.reserves[USD] == pytest.approx(0.0, abs=1e-12)
    # supplied 1074.52 - 498.57 = 575.95, shared pro rata (60% / 40%)
    assert s.pool.supplied[USD] == pytest.approx(575.95)
    assert s.pool.supplier_balance(0, USD) == pytest.approx(0.6 * 575.95)
    assert s.pool.lender_loss_usd == pytest.approx(498.57)
    assert s.pool.bad_debt_usd == pytest.approx(5.45 + 501.4)
    assert s.pool.bad_debt_tokens[USD] == pytest.approx(5.45 + 501.4)
    assert [w.step for w in s.pool.write_offs] == [1, 2]
    assert_identity(s)
    # the remaining loan (455 scaled) is all the pool's borrows now; no token moved
    assert s.pool.borrows[USD] == pytest.approx(455 * 1.09)
    s.assert_conserved(before)


def test_write_off_dilute_keeps_lenders_whole(make_system: SystemFactory) -> None:
    s, loans = usd_pool(make_system, "dilute")
    s.pool.accrue()
    before = s.totals()
    world_before = s.market.inventory[USD]
    rec = s.pool.write_off(step=3, account=2, asset=USD, scaled_debt=loans[2], price=1.0, market=s.market)
    # 501.4 of bad debt: reserves 8.28, the rest 493.12 bought from the world with minted tokens
    assert rec.reserves_usd == pytest.approx(8.28)
    assert rec.dilution_usd == pytest.approx(493.12)
    assert rec.lenders_usd == 0.0
    assert s.pool.supply_index[USD] == pytest.approx(1.07452)  # lenders whole
    assert s.pool.cash[USD] == pytest.approx(80.0 + 493.12)
    assert s.market.inventory[USD] == pytest.approx(world_before - 493.12)
    assert s.pool.dilution_usd == pytest.approx(493.12)
    assert_identity(s)
    s.assert_conserved(before)  # the tokens came from the outside ledger


def test_write_off_of_everything_lent_leaves_the_reserve_usable(make_system: SystemFactory) -> None:
    s = make_system()
    s.fund(0, ETH, 10.0)
    s.pool.supply(0, 0, ETH, 10.0, s.wallets)
    scaled = s.pool.lend_out(ETH, 10.0)  # U = 100%: no cash left
    s.wallets.credit(2, ETH, 10.0)
    rec = s.pool.write_off(step=0, account=0, asset=ETH, scaled_debt=scaled, price=3000.0, market=s.market)
    # the lenders lose all 10 ETH; the pool is empty but not broken
    assert rec.lenders_usd == pytest.approx(30_000.0)
    assert s.pool.supplied[ETH] == 0.0 and s.pool.supplier_balance(0, ETH) == 0.0
    assert s.pool.supply_index[ETH] > 0
    assert_identity(s)
    # a new supplier comes in and owns exactly what it brought
    s.fund(1, ETH, 4.0)
    s.pool.supply(1, 1, ETH, 4.0, s.wallets)
    assert s.pool.supplier_balance(1, ETH) == pytest.approx(4.0)
    assert s.pool.withdraw(1, 1, ETH, 4.0, s.wallets) == pytest.approx(4.0)
    assert_identity(s)


def test_write_off_records_usd_at_the_given_price(make_system: SystemFactory) -> None:
    s = make_system()
    s.fund(0, ETH, 10.0)
    s.pool.supply(0, 0, ETH, 10.0, s.wallets)
    scaled = s.pool.lend_out(ETH, 2.0)
    s.wallets.credit(2, ETH, 2.0)
    rec = s.pool.write_off(step=0, account=0, asset=ETH, scaled_debt=scaled, price=2500.0, market=s.market)
    # 2 ETH at $2500 = $5000, all on the lenders (no reserves yet): supplied 10 -> 8
    assert rec.asset == "ETH"
    assert rec.amount_usd == pytest.approx(5000.0)
    assert rec.lenders_usd == pytest.approx(5000.0)
    assert s.pool.supplied[ETH] == pytest.approx(8.0)
    assert_identity(s)


def test_lenders_act_in_turn_run_from_panicked_reserves_and_chase_rates(make_system: SystemFactory) -> None:
    """The lenders' phase (abm.agents.lender.act_in_turn), in the order given: in a reserve in panic each withdraws
    `run_fraction` (0.2) of its funds there, bounded by the cash left (the rest is unmet); elsewhere it moves the
    view's share: out of the pool a share of its funds, into it a share of its funds plus its idle tokens, at most
    those idle tokens. Worked numbers; every token accounted for."""
    from types import SimpleNamespace

    from abm.agents.lender import LenderView, act_in_turn

    s = make_system()
    for holder, asset, amount in ((0, USD, 600.0), (1, USD, 400.0), (0, ETH, 200.0), (1, BTC, 5.0)):
        s.fund(holder, asset, amount)
        s.pool.supply(holder, holder, asset, amount, s.wallets)
    s.fund(1, ETH, 50.0)  # lender 1's idle ETH
    s.pool.lend_out(USD, 880.0)  # 120 USD of cash left
    s.wallets.credit(5, USD, 880.0)  # the borrower's wallet (conservation below)
    before = s.totals()
    s.pool.begin_withdrawals()
    lenders = [SimpleNamespace(supplier=1, holder=1), SimpleNamespace(supplier=0, holder=0)]
    view = LenderView(panic=np.array([True, False, False]), move=np.array([0.0, 0.1, -0.5]))
    act_in_turn(SimpleNamespace(pool=s.pool, wallets=s.wallets, config=s.config), lenders, view)  # type: ignore[arg-type]
    # USD in panic: lender 1 takes 0.2 x 400 = 80 of the 120; lender 0 asks 0.2 x 600 = 120, gets the 40 left
    assert s.wallets.balance(1, USD) == pytest.approx(80.0)
    assert s.wallets.balance(0, USD) == pytest.approx(40.0)
    assert s.pool.cash[USD] == 0.0
    assert s.pool.unmet_withdrawals[USD] == pytest.approx(80.0)
    assert s.pool.supplier_balance(1, USD) == pytest.approx(320.0)
    assert s.pool.supplier_balance(0, USD) == pytest.approx(560.0)
    # ETH, move +0.1: lender 1 supplies 0.1 x (0 + 50) = 5 of its idle 50; lender 0 has no idle ETH to bring
    assert s.pool.supplier_balance(1, ETH) == pytest.approx(5.0)
    assert s.wallets.balance(1, ETH) == pytest.approx(45.0)
    assert s.pool.supplier_balance(0, ETH) == pytest.approx(200.0)
    # BTC, move -0.5: lender 1 withdraws half of its 5
    assert s.pool.supplier_balance(1, BTC) == pytest.approx(2.5)
    assert s.wallets.balance(1, BTC) == pytest.approx(2.5)
    s.assert_conserved(before)
    assert_identity(s)
    # the pool's rates follow the new cash
    assert s.pool.utilisation()[USD] == pytest.approx(1.0)
