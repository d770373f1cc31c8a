"""Accounting invariants (docs/model.md, 5 Invariants) under random operation sequences, driven by Hypothesis.

A small `ReflexivityModel` (four traders with genesis positions, one liquidator, two lenders) is driven through its
components directly: supplies, withdrawals, leveraged opens and closes, repayments, spot trades, price shocks,
interest accrual, liquidations, bad-debt write-offs, and whole model steps. After EVERY operation: tokens per asset
are conserved over all ledgers, cash + borrows == supplied + reserves per reserve, no balance is negative, prices are
finite and positive, and no health factor is NaN. Runs are derandomised, so CI sees the same examples every time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from conftest import SystemFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from abm import ModelConfig, ReflexivityModel, protocol
from abm.errors import InvariantError
from abm.invariants import Ledgers, check_invariants

N_TRADERS = 4
STEPS = 200  # run length the model sizes its history for; the machine never takes that many model steps
frac = st.floats(0.0, 1.0)
risky = st.sampled_from([1, 2])
asset = st.sampled_from([0, 1, 2])
trader = st.integers(0, N_TRADERS - 1)


def small_model(seed: int, **overrides: object) -> ReflexivityModel:
    params: dict[str, object] = {
        "traders__n_traders": N_TRADERS,
        "liquidators__n_liquidators": 1,
        "lenders__n_lenders": 2,
        "traders__max_leverage": 4.0,
        "market__step_seconds": 3600.0,  # hourly steps: interest is visible within a few accruals
        **overrides,
    }
    return ReflexivityModel(preset="baseline", rng=seed, steps=STEPS, **params)


def reference_scale(model: ReflexivityModel) -> np.ndarray:
    """Tokens per asset inside the model (wallets, collateral, pool cash): the magnitude float residue scales with."""
    ledgers = Ledgers.of(model)
    return np.maximum(ledgers.wallets + ledgers.collateral + ledgers.pool_cash, 1.0)


def debt_ledger_gap(model: ReflexivityModel) -> np.ndarray:
    """|accounts' scaled debts - the pool's scaled borrows| per asset (scaled tokens)."""
    booked = model.engine.scaled_debt[: model.engine.n].sum(axis=0)
    return np.abs(booked - model.pool.scaled_borrows)


def assert_books_balance(model: ReflexivityModel, scale: np.ndarray) -> None:
    """The invariants, checked independently of `check_invariants` (which is checked too).

    Conservation is held to 1e-9 of the tokens inside the model, so a leak of a few dollars is seen, not only one of
    a million. The pool's identities allow float residue of 1e-12 of `scale`, the model's holdings at the start.
    """
    ledgers = Ledgers.of(model)
    inside = ledgers.inside()
    drift = np.abs(ledgers.totals() - model.initial_ledgers.totals())
    tol = 1e-9 * np.maximum(inside, 1.0)
    assert (drift <= tol).all(), f"conservation: drift {drift} > tolerance {tol}"
    pool, engine = model.pool, model.engine
    gap = np.abs(pool.identity_gap())
    assert (gap <= 1e-9 * (pool.supplied + pool.reserves) + 1e-12 * scale).all(), f"pool identity gap {gap}"
    gap = debt_ledger_gap(model)
    assert (gap <= 1e-9 * np.maximum(pool.scaled_borrows, 1.0) + 1e-12 * scale).all(), f"debt ledger gap {gap}"
    tol = -1e-9 * np.maximum(inside, 1.0)  # rounding only: a clamped -1e-12 is fine, a missing token is not
    for name, values in (
        ("wallets", model.wallets.balances),
        ("collateral", engine.collateral[: engine.n]),
        ("debt", engine.scaled_debt[: engine.n]),
        ("pool cash", pool.cash[None, :]),
        ("reserves", pool.reserves[None, :]),
        ("supplier positions", pool.supplier_scaled),
        ("market", model.market.inventory[None, :]),
    ):
        assert (values >= tol).all(), f"negative balance in {name}: {values.min(axis=0)}"
    for prices in (model.market.prices, model.oracle.prices, model.fundamentals.prices):
        assert np.isfinite(prices).all() and (prices > 0).all(), prices
    assert np.isfinite(pool.supply_index).all() and (pool.supply_index > 0).all(), pool.supply_index
    assert not np.isnan(engine.health(model.oracle.prices)).any()


class LeveragedMarketMachine(RuleBasedStateMachine):
    """Random sequences of every operation the model performs, on a small hand-driven system."""

    model: ReflexivityModel

    @initialize(
        seed=st.integers(0, 2**16),
        policy=st.sampled_from(["socialize", "dilute"]),
        impact=st.sampled_from(["linear", "sqrt", "cpmm"]),
        mode=st.sampled_from(["cross", "isolated", "portfolio"]),
    )
    def build(self, seed: int, policy: str, impact: str, mode: str) -> None:
        self.model = small_model(
            seed,
            pool__bad_debt_policy=policy,
            assets__ETH__impact=impact,
            assets__BTC__depth_usd=2.0e7,  # a thin BTC market: large trades really move it
            traders__margin_mode_mix={mode: 1.0},
        )
        self.liquidator = self.model.liquidators[0].holder
        self.scale = reference_scale(self.model)

    # --- helpers ----------------------------------------------------------------------------------------

    @property
    def oracle(self) -> np.ndarray:
        return self.model.oracle.prices

    def account_of(self, owner: int, pick: int) -> int | None:
        accounts = np.flatnonzero(self.model.engine.owner[: self.model.engine.n] == owner)
        return int(accounts[pick % len(accounts)]) if len(accounts) else None

    def state(self) -> list[np.ndarray]:
        m = self.model
        return [
            m.wallets.balances.copy(),
            m.engine.collateral.copy(),
            m.engine.scaled_debt.copy(),
            m.pool.cash.copy(),
            m.pool.scaled_borrows.copy(),
            m.market.inventory.copy(),
            m.market.m.copy(),
        ]

    def assert_reverted(self, before: list[np.ndarray]) -> None:
        for old, new in zip(before, self.state(), strict=True):
            np.testing.assert_array_equal(old, new)

    # --- lenders ----------------------------------------------------------------------------------------

    @rule(lender=st.integers(0, 1), a=asset, share=frac)
    def supply(self, lender: int, a: int, share: float) -> None:
        m = self.model
        holder = m.lenders[lender].holder
        m.pool.supply(lender, holder, a, share * m.wallets.balance(holder, a), m.wallets)

    @rule(lender=st.integers(0, 1), a=asset, share=st.floats(0.0, 1.5))
    def withdraw(self, lender: int, a: int, share: float) -> None:
        m = self.model
        pool = m.pool
        unmet, cash = float(pool.unmet_withdrawals[a]), float(pool.cash[a])
        want = share * pool.supplier_balance(lender, a)
        got = pool.withdraw(lender, m.lenders[lender].holder, a, want, m.wallets)
        assert got <= min(want, cash) * (1 + 1e-12)
        # whatever the cash could not meet is recorded as unmet (tokens)
        expected = min(want, pool.supplier_balance(lender, a) + got) - got
        assert float(pool.unmet_withdrawals[a]) - unmet == pytest.approx(expected, rel=1e-9, abs=1e-9)

    # --- traders ----------------------------------------------------------------------------------------

    @rule(owner=trader, usd=st.floats(0.0, 1e6))
    def fund_trader(self, owner: int, usd: float) -> None:
        self.model.wallets.fund_from_world(self.model.market, owner, 0, usd)

    @rule(owner=trader, pick=st.integers(0, 3), a=risky, borrow=st.floats(0.0, 5e6), own=frac)
    def open_long(self, owner: int, pick: int, a: int, borrow: float, own: float) -> None:
        m = self.model
        acct = self.account_of(owner, pick)
        if acct is None:
            return
        before = self.state()
        own_usd = own * m.wallets.balance(owner, 0)
        if not m.engine.lever_long(acct, a, borrow, own_usd, self.oracle, m.steps):
            self.assert_reverted(before)  # a refused borrow changes nothing
        elif borrow > 0:  # a granted borrow leaves the account within its borrow power
            debt_usd = float(m.engine.debt_tokens(acct) @ self.oracle)
            assert m.engine.borrow_headroom_usd(acct, self.oracle) >= -1e-9 * debt_usd

    @rule(owner=trader, pick=st.integers(0, 3), a=risky, borrow=st.floats(0.0, 100.0), own=frac)
    def open_short(self, owner: int, pick: int, a: int, borrow: float, own: float) -> None:
        m = self.model
        acct = self.account_of(owner, pick)
        if acct is None:
            return
        before = self.state()
        if not m.engine.lever_short(acct, a, borrow, own * m.wallets.balance(owner, 0), self.oracle, m.steps):
            self.assert_reverted(before)

    @rule(owner=trader, pick=st.integers(0, 3), a=risky, share=frac)
    def delever_long(self, owner: int, pick: int, a: int, share: float) -> None:
        m = self.model
        acct = self.account_of(owner, pick)
        if acct is not None:
            m.engine.delever_long(acct, a, share * m.engine.collateral[acct, a], self.oracle, m.steps)

    @rule(owner=trader, pick=st.integers(0, 3), a=risky, share=frac)
    def delever_short(self, owner: int, pick: int, a: int, share: float) -> None:
        m = self.model
        acct = self.account_of(owner, pick)
        if acct is not None:
            m.engine.delever_short(acct, a, share * m.engine.debt_tokens(acct)[a], self.oracle, m.steps)

    @rule(owner=trader, pick=st.integers(0, 3))
    def close_out(self, owner: int, pick: int) -> None:
        m = self.model
        acct = self.account_of(owner, pick)
        if acct is not None:
            m.engine.close_out(acct, self.oracle, m.steps)

    @rule(owner=trader, pick=st.integers(0, 3), a=asset, share=frac)
    def withdraw_collateral(self, owner: int, pick: int, a: int, share: float) -> None:
        m = self.model
        acct = self.account_of(owner, pick)
        if acct is None:
            return
        before = self.state()
        if m.engine.withdraw(acct, a, share * m.engine.collateral[acct, a], self.oracle) == 0.0:
            self.assert_reverted(before)
        elif m.engine.debt_tokens(acct).any():  # collateral leaves only while the debt stays covered
            debt_usd = float(m.engine.debt_tokens(acct) @ self.oracle)
            assert m.engine.borrow_headroom_usd(acct, self.oracle) >= -1e-9 * debt_usd

    @rule(owner=trader, pick=st.integers(0, 3), a=asset, share=frac)
    def repay(self, owner: int, pick: int, a: int, share: float) -> None:
        m = self.model
        acct = self.account_of(owner, pick)
        if acct is not None:
            m.engine.repay_from_wallet(acct, a, share * m.engine.debt_tokens(acct)[a] * 1.1)

    @rule(owner=trader, a=risky, buy=st.booleans(), share=frac)
    def spot_trade(self, owner: int, a: int, buy: bool, share: float) -> None:
        m = self.model
        w = m.wallets
        if buy:
            usd = share * w.balance(owner, 0)
            w.debit(owner, 0, usd)
            w.credit(owner, a, m.market.buy(a, usd, step=m.steps))
        else:
            tokens = share * w.balance(owner, a)
            w.debit(owner, a, tokens)
            w.credit(owner, 0, m.market.sell(a, tokens, step=m.steps))

    # --- the world --------------------------------------------------------------------------------------

    @rule(a=risky, move=st.floats(-1.5, 0.4))
    def price_shock(self, a: int, move: float) -> None:
        """The fundamental jumps by `move` (log); the market follows; every updater posts the market price."""
        m = self.model
        m.fundamentals.log_f[a] += move
        m.market.begin_step(m.fundamentals.log_f)
        for slot in range(m.oracle.posts.shape[0]):
            m.oracle.post(slot, a, m.market.price(a), m.steps)

    @rule(hours=st.floats(1.0, 24.0 * 365.0))
    def accrue(self, hours: float) -> None:
        """One accrual over `hours` (simple interest over the interval, as Aave between two touches)."""
        pool = self.model.pool
        index, rates = pool.borrow_index.copy(), pool.borrow_rates().copy()
        step_seconds, pool.step_seconds = pool.step_seconds, hours * 3600.0
        try:
            pool.accrue()
        finally:
            pool.step_seconds = step_seconds
        np.testing.assert_allclose(pool.borrow_index, index * (1 + rates * hours / (24 * 365)), rtol=1e-12)

    @rule(rounds=st.integers(1, 20))
    def liquidate(self, rounds: int) -> None:
        """Liquidate the unhealthy accounts with flash-funded repayments (the debt tokens come from the world)."""
        m = self.model
        engine = m.engine
        for _ in range(rounds):
            hf = engine.health(self.oracle)
            unhealthy = np.flatnonzero(hf < 1.0)
            if not len(unhealthy):
                return
            for acct in unhealthy:
                plan = engine.plan_liquidation(int(acct), self.oracle)
                if plan is None:
                    continue
                j, k = plan.debt_asset, plan.collateral_asset
                assert plan.hf_before < 1.0
                cf = float(protocol.close_factor(plan.hf_before))
                assert plan.repay <= cf * engine.debt_tokens(int(acct))[j] * (1 + 1e-12)
                assert plan.seize <= engine.collateral[acct, k] * (1 + 1e-12)
                m.wallets.fund_from_world(m.market, self.liquidator, j, plan.repay)
                coll_before = float(engine.collateral[acct, k])
                engine.liquidate(int(acct), plan, self.liquidator)
                assert engine.collateral[acct, k] == pytest.approx(coll_before - plan.seize, abs=1e-9)

    @rule()
    def write_off(self) -> None:
        """Bad debt of collateral-less accounts through the waterfall (as the model's resolution phase)."""
        m = self.model
        engine = m.engine
        for acct in engine.insolvent_accounts(self.oracle):
            for a in np.flatnonzero(engine.scaled_debt[acct] > 0):
                scaled = float(engine.scaled_debt[acct, a])
                engine.scaled_debt[acct, a] = 0.0
                rec = m.pool.write_off(m.steps, int(acct), int(a), scaled, float(self.oracle[a]), m.market)
                assert rec.reserves_usd + rec.lenders_usd + rec.dilution_usd == pytest.approx(rec.amount_usd)

    @precondition(lambda self: self.model.steps < STEPS - 1)
    @rule()
    def model_step(self) -> None:
        m = self.model
        m.hf = m.engine.health(self.oracle)  # accounts opened by the rules above join the model's health array
        m.step()

    @invariant()
    def books_balance(self) -> None:
        check_invariants(self.model)
        assert_books_balance(self.model, self.scale)


LeveragedMarketMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLeveragedMarket = LeveragedMarketMachine.TestCase


# --- smaller property tests (many examples, cheap) --------------------------------------------------------


POOL_CONFIGS = {
    policy: ModelConfig.from_preset("baseline", {"pool.bad_debt_policy": policy, "market.step_seconds": 86400.0})
    for policy in ("socialize", "dilute")
}


@settings(
    max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["supply", "withdraw", "borrow", "repay", "accrue", "write_off"]), frac, frac),
        max_size=40,
    ),
    policy=st.sampled_from(["socialize", "dilute"]),
)
def test_pool_identity_holds_under_random_operations(
    make_system: SystemFactory, ops: list[tuple[str, float, float]], policy: str
) -> None:
    s = make_system(config=POOL_CONFIGS[policy])
    usd = 0
    loans: list[float] = []
    s.fund(0, usd, 1000.0)
    s.fund(1, usd, 1000.0)
    totals = s.totals()
    for op, x, y in ops:
        pool = s.pool
        holder = int(y * 2) % 2
        if op == "supply":
            pool.supply(holder, holder, usd, x * s.wallets.balance(holder, usd), s.wallets)
        elif op == "withdraw":
            pool.withdraw(holder, holder, usd, 1.5 * x * pool.supplier_balance(holder, usd), s.wallets)
        elif op == "borrow":
            amount = x * pool.cash[usd]
            loans.append(pool.lend_out(usd, amount))
            s.wallets.credit(2, usd, amount)
        elif op == "repay" and loans:
            i = int(y * len(loans)) % len(loans)
            amount = min(x * loans[i] * pool.borrow_index[usd], s.wallets.balance(2, usd))
            loans[i] -= pool.take_repayment(usd, amount)
            s.wallets.debit(2, usd, amount)
        elif op == "accrue":
            for _ in range(int(1 + 5 * x)):
                pool.accrue()
        elif op == "write_off" and loans:
            i = int(y * len(loans)) % len(loans)
            pool.write_off(0, i, usd, max(loans.pop(i), 0.0), 1.0, s.market)
        np.testing.assert_allclose(pool.cash + pool.borrows, pool.supplied + pool.reserves, rtol=1e-9, atol=1e-9)
        s.assert_conserved(totals)
        assert pool.cash[usd] >= 0 and pool.reserves[usd] >= 0 and (s.wallets.balances >= 0).all()
        assert math.isfinite(pool.supply_index[usd]) and pool.supply_index[usd] > 0
        u = pool.utilisation()[usd]
        assert 0.0 <= u <= 1.0


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    repaid=st.floats(0.0, 1e9),
    debt_price=st.floats(1e-3, 1e6),
    coll_price=st.floats(1e-3, 1e6),
    bonus=st.floats(0.0, 0.2),
    hf=st.floats(0.0, 5.0),
)
def test_liquidation_formulas_properties(
    repaid: float, debt_price: float, coll_price: float, bonus: float, hf: float
) -> None:
    seized = protocol.collateral_seized(repaid, debt_price, coll_price, bonus)
    # the liquidator receives exactly the repaid value plus the bonus, at oracle prices
    assert seized * coll_price == pytest.approx(repaid * debt_price * (1 + bonus), rel=1e-12, abs=1e-300)
    assert protocol.repay_for_seizure(seized, debt_price, coll_price, bonus) == pytest.approx(repaid, rel=1e-12)
    cf = protocol.close_factor(hf)
    assert cf == (0.0 if hf >= 1 else 1.0 if hf < 0.95 else 0.5)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    amount=st.floats(1e-9, 1e12),
    reserve_in=st.floats(1e-3, 1e12),
    reserve_out=st.floats(1e-3, 1e12),
    fee=st.floats(0.0, 0.05),
)
def test_amm_properties(amount: float, reserve_in: float, reserve_out: float, fee: float) -> None:
    out = float(protocol.amm_amount_out(amount, reserve_in, reserve_out, fee))
    assert 0.0 <= out < reserve_out
    # k never falls (the fee stays in the pool): (R_in + a)(R_out - out) >= R_in R_out  <=>  out <= a R_out / (R_in + a)
    assert out <= amount * reserve_out / (reserve_in + amount) * (1 + 1e-12)
    # never better than the spot price
    assert out <= amount * reserve_out / reserve_in * (1 + 1e-12)
    if out < reserve_out * (1 - 1e-6):
        back = float(protocol.amm_amount_in(out, reserve_in, reserve_out, fee))
        assert back == pytest.approx(amount, rel=1e-6)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    q=st.one_of(st.just(0.0), st.floats(1e-6, 1e10)),
    price=st.floats(1e-2, 1e5),
    depth=st.floats(1e5, 1e10),
    a=st.one_of(st.just(0.0), st.floats(1e-12, 1e-3)),
)
def test_impact_fills_never_beat_the_pre_trade_price(q: float, price: float, depth: float, a: float) -> None:
    tokens = float(protocol.linear_impact_tokens_bought(q, price, depth))
    assert 0.0 <= tokens <= q / price * (1 + 1e-12)
    tokens = float(protocol.sqrt_impact_tokens_bought(q, price, a))
    assert 0.0 <= tokens <= q / price * (1 + 1e-12)
    proceeds = float(protocol.sqrt_impact_proceeds(q / price, price, a))
    assert 0.0 <= proceeds <= q * (1 + 1e-12)


def repay_every_debt(model: ReflexivityModel) -> None:
    engine = model.engine
    for acct in range(engine.n):
        owner = int(engine.owner[acct])
        for a in range(len(model.symbols)):
            owed = float(engine.debt_tokens(acct)[a])
            if owed > 0:
                model.wallets.fund_from_world(model.market, owner, a, owed)
                assert engine.repay_from_wallet(acct, a, owed) == pytest.approx(owed)
    assert not engine.scaled_debt[: engine.n].any()


def test_debt_ledger_check_tolerates_rounding_after_every_debt_is_repaid() -> None:
    model = small_model(3)
    repay_every_debt(model)
    assert (debt_ledger_gap(model) <= 1e-15 * reference_scale(model)).all()  # agree to the last bits
    check_invariants(model)


def test_pool_identity_check_tolerates_rounding_in_an_emptied_pool() -> None:
    model = small_model(5)
    repay_every_debt(model)
    for lender in model.lenders:
        for a in range(len(model.symbols)):
            model.pool.withdraw(lender.supplier, lender.holder, a, 1e30, model.wallets)
    assert (np.abs(model.pool.identity_gap()) <= 1e-15 * reference_scale(model)).all()
    check_invariants(model)


# --- a broken ledger is reported, never passed over --------------------------------------------------------


@pytest.fixture
def stepped_model() -> ReflexivityModel:
    model = small_model(3)
    for _ in range(5):
        model.step()
    check_invariants(model)  # healthy before the corruption
    return model


def corrupt_eth_cash(m: ReflexivityModel) -> None:
    m.pool.cash[1] += 2.5  # 2.5 ETH appear in the ETH reserve's cash from nowhere


def corrupt_pool_cash_taken(m: ReflexivityModel) -> None:
    # tokens conserved (2.5 ETH move from the reserve's cash to a wallet), but the pool's books no longer balance
    m.pool.cash[1] -= 2.5
    m.wallets.credit(0, 1, 2.5)


def corrupt_wallet(m: ReflexivityModel) -> None:
    m.wallets.credit(0, 0, 5e6)  # $5M minted into trader 0's wallet


def corrupt_borrows(m: ReflexivityModel) -> None:
    m.pool.scaled_borrows[0] *= 1.001


def corrupt_debt(m: ReflexivityModel) -> None:
    m.engine.scaled_debt[0, 0] += 1e-3 * m.pool.scaled_borrows[0]


def corrupt_negative(m: ReflexivityModel) -> None:
    # tokens conserved, but a wallet goes below 0 by a whole ETH (the tolerance is 1e-9 of the model's ETH)
    m.market.world_net[1] += m.wallets.balances[0, 1] + 1.0
    m.wallets.balances[0, 1] = -1.0


def corrupt_price(m: ReflexivityModel) -> None:
    m.oracle.prices[2] = float("nan")


@pytest.mark.parametrize(
    ("corrupt", "pattern"),
    [
        (corrupt_eth_cash, r"^step 5: conservation of ETH broken: total .* \(wallets .*, pool cash .*250002\.5.*"),
        (
            corrupt_pool_cash_taken,
            r"^step 5: pool identity of ETH broken: cash .*249997\.5.* \+ borrows .* != supplied .*",
        ),
        (corrupt_wallet, r"^step 5: conservation of USD broken: total .* vs initial .* \(wallets .*, collateral .*"),
        (corrupt_borrows, r"^step 5: pool identity of USD broken: cash .* \+ borrows .* != supplied .* \+ reserves"),
        (corrupt_debt, r"^step 5: debt ledger of USD: accounts owe .* \(scaled\), pool books .*"),
        (corrupt_negative, r"^step 5: negative balance in wallets: ETH = .*\(-1\.0\)$"),
        (corrupt_price, r"^step 5: oracle price of BTC is .*nan"),
    ],
)
def test_check_invariants_names_step_ledger_and_amounts(
    stepped_model: ReflexivityModel, corrupt: Callable[[ReflexivityModel], None], pattern: str
) -> None:
    corrupt(stepped_model)
    with pytest.raises(InvariantError, match=pattern):
        check_invariants(stepped_model)


@pytest.mark.parametrize("leak_usd", [10.0, 50_000.0])
def test_conservation_check_sees_a_small_leak(stepped_model: ReflexivityModel, leak_usd: float) -> None:
    # the outside world holds $1e15; the check must measure against the model's own ~$1e9, not that
    stepped_model.wallets.credit(0, 0, leak_usd)
    with pytest.raises(InvariantError, match="conservation of USD"):
        check_invariants(stepped_model)
