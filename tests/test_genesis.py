"""Genesis positions in one pass (`MarginEngine.open_genesis`): worked positions, one pass = one row at a time, the
checks that skip a row, and the books after a model's build.

Baseline reserves: USD ltv 0.75; ETH ltv 0.80 / LT 0.825; BTC ltv 0.73. Prices (fundamentals and oracle): ETH
$3000, BTC $60000. The `system` fixture's pool holds 1M USD, 200 ETH and 5 BTC (supplier: holder 0).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import System, SystemFactory

from abm.agents.population import draw_population, leverage_cap
from abm.agents.trader import opening_orders
from abm.config import ModelConfig
from abm.config.schema import RISK_STYLES
from abm.invariants import Ledgers, check_invariants, tolerance
from abm.lending.margin import MODE_CODE
from abm.model import ReflexivityModel

USD, ETH, BTC = 0, 1, 2


def assert_pool_identity(s: System) -> None:
    pool = s.pool
    np.testing.assert_allclose(pool.cash + pool.borrows, pool.supplied + pool.reserves, rtol=1e-12)
    np.testing.assert_allclose(s.engine.scaled_debt[: s.engine.n].sum(axis=0), pool.scaled_borrows, rtol=1e-12)


def test_worked_positions_long_and_short_isolated_and_cross(make_system: SystemFactory) -> None:
    s = make_system(n_holders=5)
    for asset, amount in ((USD, 1_000_000.0), (ETH, 200.0), (BTC, 5.0)):
        s.fund(0, asset, amount)
        s.pool.supply(0, 0, asset, amount, s.wallets)
    eng = s.engine
    iso_long, iso_short = eng.open_account(1, "isolated"), eng.open_account(2, "isolated")
    cross_long, cross_short = eng.open_account(3, "cross"), eng.open_account(4, "cross")
    for holder, usd in ((1, 3000.0), (2, 3000.0), (3, 3000.0), (4, 2000.0)):
        s.fund(holder, USD, usd)
    before = s.totals()
    # rows in the order one at a time would open them; the shared accounts' two positions are not adjacent
    accounts = np.array([cross_long, iso_long, cross_short, cross_long, iso_short, cross_short])
    assets = np.array([ETH, ETH, ETH, BTC, ETH, BTC])
    long = np.array([True, True, False, True, False, False])
    # 3x long: own 3000, borrow 6000; 2x cross long: 1500 + 1500 per asset; 2x short: own 3000, borrow $6000 of
    # ETH (2 ETH); cross short 2x: own 1000 per asset, borrow $2000 of each (2/3 ETH, 1/30 BTC)
    borrow = np.array([1500.0, 6000.0, 2000.0 / 3000.0, 1500.0, 2.0, 2000.0 / 60_000.0])
    own = np.array([1500.0, 3000.0, 1000.0, 1500.0, 3000.0, 1000.0])
    opened = eng.open_genesis(accounts, assets, long, borrow, own, s.prices)
    assert opened.all()
    coll, debt = eng.collateral, eng.debt_tokens()
    np.testing.assert_allclose(coll[iso_long], [0.0, 3.0, 0.0])  # $9000 of ETH at $3000
    np.testing.assert_allclose(debt[iso_long], [6000.0, 0.0, 0.0])
    np.testing.assert_allclose(coll[iso_short], [9000.0, 0.0, 0.0])  # own 3000 + 2 ETH sold at $3000
    np.testing.assert_allclose(debt[iso_short], [0.0, 2.0, 0.0])
    np.testing.assert_allclose(coll[cross_long], [0.0, 1.0, 0.05])  # $3000 of ETH, $3000 of BTC
    np.testing.assert_allclose(debt[cross_long], [3000.0, 0.0, 0.0])
    np.testing.assert_allclose(coll[cross_short], [6000.0, 0.0, 0.0])  # 2 x (own 1000 + $2000 sold)
    np.testing.assert_allclose(debt[cross_short], [0.0, 2.0 / 3.0, 1.0 / 30.0])
    np.testing.assert_allclose(s.wallets.balances[1:], 0.0, atol=1e-9)  # every owner's USD went in
    np.testing.assert_allclose(s.pool.cash, [1_000_000.0 - 9000.0, 200.0 - 2.0 - 2.0 / 3.0, 5.0 - 1.0 / 30.0])
    assert s.market.m.tolist() == [0.0, 0.0, 0.0]  # at the fundamental: no impact
    s.assert_conserved(before)
    assert_pool_identity(s)


def random_book(make_system: SystemFactory, seed: int, btc_borrow: bool) -> tuple[System, tuple[np.ndarray, ...]]:
    """30 owners with cross, isolated and portfolio accounts, one or two positions each, some too levered for
    their borrow power, a pool short of ETH (some shorts find no cash; later, smaller ones may) and BTC borrowing
    switched off (BTC shorts are skipped) or short of BTC too (a shared account may miss one position for cash and
    open the other)."""
    s = make_system({"pool.reserves.BTC.borrow_enabled": btc_borrow}, n_holders=31)
    for asset, amount in ((USD, 2_000_000.0), (ETH, 40.0), (BTC, 1.0 if btc_borrow else 5.0)):
        s.fund(0, asset, amount)
        s.pool.supply(0, 0, asset, amount, s.wallets)
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, bool, float, float]] = []
    for owner in range(1, 31):
        mode = ["cross", "isolated", "portfolio"][owner % 3]
        n_pos = 1 + owner % 2
        equity = float(rng.uniform(1e3, 5e4))
        s.fund(owner, USD, equity)
        shared = s.engine.open_account(owner, mode)
        is_long = bool(rng.random() < 0.5)
        leverage = float(rng.uniform(1.0, 6.0))
        for k, asset in enumerate(rng.permutation([ETH, BTC])[:n_pos].tolist()):
            acct = s.engine.open_account(owner, mode) if mode == "isolated" and k else shared
            price = s.market.genesis_quote(asset, -1.0) * -1.0
            b, o = opening_orders(np.array(is_long), equity / n_pos, leverage, np.array(price))
            rows.append((acct, asset, is_long, float(b), float(o)))
    order = rng.permutation(len(rows))  # owners interleaved, as in activation order
    cols = list(zip(*[rows[i] for i in order.tolist()], strict=True))
    return s, tuple(np.array(c) for c in cols)


@pytest.mark.parametrize(("seed", "btc_borrow"), [(0, False), (1, False), (2, True), (3, True), (4, True)])
def test_one_pass_opens_what_one_row_at_a_time_opens(make_system: SystemFactory, seed: int, btc_borrow: bool) -> None:
    together, (accounts, assets, long, borrow, own) = random_book(make_system, seed, btc_borrow)
    one_by_one, _ = random_book(make_system, seed, btc_borrow)
    before = together.totals()
    opened = together.engine.open_genesis(accounts, assets, long, borrow, own, together.prices)
    alone = np.array(
        [
            (one_by_one.engine.lever_long if lg else one_by_one.engine.lever_short)(
                int(a), int(k), float(b), float(o), one_by_one.prices, 0, genesis=True
            )
            for a, k, lg, b, o in zip(accounts, assets, long, borrow, own, strict=True)
        ]
    )
    np.testing.assert_array_equal(opened, alone)
    # the book exercises every rule: some open, some do not (BTC shorts, too much leverage, no cash left)
    assert opened.any() and not opened.all()
    assert opened[~long & (assets == BTC)].any() == btc_borrow
    got = together.state(market=False)
    for key, value in one_by_one.state(market=False).items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)  # bit for bit
    np.testing.assert_allclose(together.market.world_net, one_by_one.market.world_net, rtol=1e-12)
    together.assert_conserved(before)
    assert_pool_identity(together)


def test_a_row_that_fails_a_check_is_skipped_and_later_rows_still_open(make_system: SystemFactory) -> None:
    s = make_system({"pool.reserves.BTC.borrow_enabled": False})
    s.fund(0, USD, 100.0)
    s.pool.supply(0, 0, USD, 100.0, s.wallets)
    eng = s.engine
    accounts = np.array([eng.open_account(h, "isolated") for h in (1, 2, 3, 4, 5)])
    for h in (1, 2, 3, 4, 5):
        s.fund(h, USD, 10.0)
    # longs borrowing $40, $70 (more than the $60 left), $30; a BTC short (borrowing switched off); a long borrowing
    # $100 on $10 of its own ($110 of ETH at ltv 0.8 carries $88 of debt at most)
    borrow = np.array([40.0, 70.0, 30.0, 1e-4, 100.0])
    own = np.full(5, 10.0)
    long = np.array([True, True, True, False, True])
    assets = np.array([ETH, ETH, ETH, BTC, ETH])
    opened = eng.open_genesis(accounts, assets, long, borrow, own, s.prices)
    np.testing.assert_array_equal(opened, [True, False, True, False, False])
    np.testing.assert_allclose(s.pool.cash[USD], 100.0 - 40.0 - 30.0)
    np.testing.assert_allclose(s.wallets.balances[[1, 2, 3, 4, 5], USD], [0.0, 10.0, 0.0, 10.0, 10.0])  # kept
    np.testing.assert_array_equal(eng.collateral[accounts[[1, 3, 4]]], 0.0)
    np.testing.assert_array_equal(eng.scaled_debt[accounts[[1, 3, 4]]], 0.0)
    np.testing.assert_allclose(eng.collateral[accounts[[0, 2]], ETH], [50.0 / 3000.0, 40.0 / 3000.0])


def test_many_rows_headroom_is_one_rows_headroom(system: System) -> None:
    rng = np.random.default_rng(5)
    coll = rng.uniform(0, 10, (60, 3)) * (rng.random((60, 3)) < 0.7)
    debt = rng.uniform(0, 5, (60, 3)) * (rng.random((60, 3)) < 0.6)
    modes = rng.choice([MODE_CODE[m] for m in ("cross", "isolated", "portfolio")], 60)
    prices = system.prices * rng.uniform(0.8, 1.2, 3)
    many = system.engine._states_headroom(coll, debt, modes, prices)
    one = [system.engine._state_headroom(c, d, int(m), prices) for c, d, m in zip(coll, debt, modes, strict=True)]
    port = modes == MODE_CODE["portfolio"]
    np.testing.assert_array_equal(many[~port], np.array(one)[~port])  # bit for bit
    np.testing.assert_allclose(many[port], np.array(one)[port], rtol=1e-13, atol=1e-9)


def test_population_caps_are_each_traders_leverage_cap() -> None:
    cfg = ModelConfig.from_preset("contagion", {"traders.n_traders": 300})
    model = ReflexivityModel(cfg, rng=2, steps=1)
    pool, sigma = model.pool, model.market.sigma_daily
    n_risky = len(cfg.symbols) - 1
    pop = draw_population(cfg.traders, n_risky, pool, np.random.default_rng(8), sigma)
    tc = cfg.traders
    for i in range(0, 300, 7):
        distance = tc.liquidation_distance_sigmas * float(sigma[pop.assets[i]].max())
        short, prudent = bool(pop.direction[i] < 0), bool(pop.risk[i] == RISK_STYLES.index("prudent"))
        want = leverage_cap(pool, pop.assets[i].tolist(), short, prudent, tc.prudent_buffer, distance)
        assert pop.leverage_cap[i] == want


@pytest.mark.parametrize("preset", ["margin_mix", "contagion"])
def test_the_build_conserves_tokens_and_keeps_the_pool_identity(preset: str) -> None:
    model = ReflexivityModel(ModelConfig.from_preset(preset, {"traders.n_traders": 400}), rng=1, steps=2)
    # every token came from the outside world: the ledgers (the world counted by its change) add up to 0
    assert (np.abs(Ledgers.of(model).totals()) <= tolerance(model)).all()
    check_invariants(model)  # pool identity, debt ledger, no negative holdings
    pool, engine = model.pool, model.engine
    np.testing.assert_allclose(pool.cash + pool.borrows, pool.supplied + pool.reserves, rtol=1e-12)
    np.testing.assert_allclose(engine.scaled_debt[: engine.n].sum(axis=0), pool.scaled_borrows, rtol=1e-12)
    lending = model.trader_accounts[:, 0] >= 0
    held = engine.collateral[model.trader_accounts[lending].ravel()].sum(axis=1) > 0
    assert held.mean() > 0.9  # the traders hold their genesis positions
