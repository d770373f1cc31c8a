"""The perpetual venue (abm.perps.PerpVenue): funding, the liquidation waterfall, ADL, the zero-sum ledger and its
configuration errors. Scenarios use one asset (ETH) with numbers that can be checked by hand (docs/perps.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from abm.config import ModelConfig
from abm.errors import ConfigError
from abm.perps import BOOK, VAULT, PerpVenue, perp_config
from abm.protocol import adl_rank, perp_bankruptcy_price, perp_liquidation_price

ETH = 1


def make_venue(depth_usd: float = 1e12, half_life: float = 1e-6, **perps: Any) -> PerpVenue:
    """ETH at 1,000 USD. By default a book so deep that impact is ~1e-8 of the price and relaxes fully each step,
    so each step's book price is the index; mark = book price; no fees, no insurance fund, no vault."""
    config = ModelConfig.from_dict(
        {"assets": {"ETH": {"price": 1000.0, "depth_usd": depth_usd}}, "market": {"impact_half_life_steps": half_life}}
    )
    settings = {
        "mark_price": "book",
        "taker_fee": 0.0,
        "liquidation_fee": 0.0,
        "insurance_fund_usd": 0.0,
        "vault_capital_usd": 0.0,
        "funding_interval_steps": 2,
        **perps,
    }
    return PerpVenue(config, perp_config(settings), np.array([1.0, 1000.0]))


def step_to(venue: PerpVenue, price: float, t: int) -> None:
    venue.begin_step(np.array([1.0, price]), t)


def test_funding_one_period_moves_cash_between_positions_only() -> None:
    v = make_venue()
    a = v.open_account(owner=1, margin_usd=5_000.0)
    b = v.open_account(owner=2, margin_usd=5_000.0)
    assert v.trade(a, ETH, 10.0, t=0).size == 10.0
    assert v.trade(b, ETH, -4.0, t=0).size == -4.0
    step_to(v, 1000.0, 1)  # impact relaxed: book = mark = index = 1,000 exactly
    cash = v.cash[: v.n].copy()
    assert v.accrue_funding(1) is None  # first sample of a two-step period: nothing paid yet
    rates = v.accrue_funding(2)
    # premium ~1e-8 is inside the +/-0.05% clamp, so the rate is the interest, 0.01% (Binance default)
    assert rates is not None and rates[ETH] == pytest.approx(0.0001, rel=1e-12)
    paid = v.cash[: v.n] - cash
    assert paid[a] == pytest.approx(-10 * 1000 * 0.0001, rel=1e-9)  # the long pays 1.0 USD
    assert paid[b] == pytest.approx(+4 * 1000 * 0.0001, rel=1e-9)  # the short receives 0.4
    assert paid[BOOK] == pytest.approx(+6 * 1000 * 0.0001, rel=1e-9)  # the book, short 6, receives 0.6
    assert paid.sum() == pytest.approx(0.0, abs=1e-12)
    v.check_ledger(2)


def test_long_liquidated_at_its_liquidation_price_closes_into_the_book() -> None:
    v = make_venue(liquidation_fee=0.01)
    a = v.open_account(owner=7, margin_usd=5_000.0, mode="isolated")
    v.trade(a, ETH, 10.0, t=0, margin_usd=1_000.0)
    entry = v.entry[a, ETH]
    leverage = 10 * entry / 1_000.0  # 10x
    liq = float(perp_liquidation_price(entry, leverage, 0.025, +1))  # first tier: maintenance 2.5%
    assert liq == pytest.approx(923.0769, rel=1e-6)
    step_to(v, liq * (1 + 1e-6), 1)
    assert v.health_pass(1) == []  # just above: healthy
    step_to(v, liq * (1 - 1e-6), 2)
    events = v.health_pass(2)
    assert [e.stage for e in events] == ["book"]
    ev = events[0]
    assert (ev.account, ev.owner, ev.side, ev.size) == (a, 7, 1, 10.0)
    assert ev.price == pytest.approx(liq, rel=2e-6)  # filled in the deep book at the liquidation price
    assert ev.bankruptcy_price == pytest.approx(float(perp_bankruptcy_price(entry, leverage, +1)), rel=1e-12)
    assert ev.fee == pytest.approx(0.01 * 10 * ev.price)
    # what is left of the margin after the loss and the fee goes to the insurance fund
    left = 1_000.0 + 10 * (ev.price - entry)
    assert v.fee_revenue == pytest.approx(ev.fee)
    assert v.insurance_fund == pytest.approx(left - ev.fee)
    assert v.size[a, ETH] == 0.0 and v.margin[a, ETH] == 0.0 and v.cash[a] == pytest.approx(4_000.0)
    assert v.size[BOOK, ETH] == 0.0 and v.book.world_net[ETH] == pytest.approx(0.0, abs=1e-12)
    assert [(step, asset) for _, step, asset, _ in v.book.liq_impacts] == [(2, ETH)]  # its impact is attributed
    v.check_ledger(2)


def test_vault_takes_over_a_gapped_position_at_the_bankruptcy_price() -> None:
    v = make_venue(vault_capital_usd=10_000.0)
    a = v.open_account(owner=1, margin_usd=1_000.0, mode="isolated")
    v.trade(a, ETH, 10.0, t=0, margin_usd=1_000.0)
    bk = v.entry[a, ETH] - 100.0  # 1,000 USD margin on 10 ETH
    step_to(v, 800.0, 1)  # a gap far below bankruptcy: nothing can close in the book above it
    events = v.health_pass(1)
    assert [e.stage for e in events] == ["vault"]
    assert events[0].size == pytest.approx(10.0) and events[0].price == pytest.approx(bk)
    assert v.size[VAULT, ETH] == pytest.approx(10.0) and v.entry[VAULT, ETH] == pytest.approx(bk)
    assert v.ledger()["vault_pnl"] == pytest.approx(10 * (800.0 - bk))  # the vault books the gap: -1,000
    assert v.size[a, ETH] == 0.0 and v.margin[a, ETH] == 0.0
    v.check_ledger(1)


def test_gap_beyond_bankruptcy_drains_the_insurance_fund_then_deleverages() -> None:
    v = make_venue(insurance_fund_usd=500.0)
    a = v.open_account(owner=1, margin_usd=1_000.0, mode="isolated")
    s = v.open_account(owner=2, margin_usd=50_000.0)
    v.trade(a, ETH, 10.0, t=0, margin_usd=1_000.0)
    v.trade(s, ETH, -10.0, t=0)
    bk = v.entry[a, ETH] - 100.0
    step_to(v, 800.0, 1)
    events = v.health_pass(1)
    assert [e.stage for e in events] == ["insurance", "adl"]
    insured, adl = events
    # the fund pays (bankruptcy - fill) per token while it lasts: 500 / (bk - 800) ~= 5 tokens
    assert insured.size == pytest.approx(500.0 / (bk - 800.0), rel=1e-6)
    assert insured.shortfall == pytest.approx(500.0, rel=1e-6)
    assert v.insurance_fund == pytest.approx(0.0, abs=1e-6)
    assert adl.size == pytest.approx(10.0 - insured.size) and adl.price == pytest.approx(bk)
    (fill,) = v.adl_events
    assert (fill.account, fill.side, fill.liquidated_account) == (s, -1, a)
    assert fill.size == pytest.approx(adl.size) and fill.price == pytest.approx(bk)
    assert v.size[s, ETH] == pytest.approx(-10.0 + fill.size)
    assert v.margin[a, ETH] == 0.0 and v.bad_debt == 0.0
    v.check_ledger(1)


def test_adl_hits_the_highest_ranked_short_first_with_exact_sizes_at_the_bankruptcy_price() -> None:
    v = make_venue()  # no insurance fund, no vault
    a = v.open_account(owner=0, margin_usd=1_000.0, mode="isolated")
    v.trade(a, ETH, 10.0, t=0, margin_usd=1_000.0)
    shorts = {}
    for owner, (size, margin) in enumerate([(3.0, 1_500.0), (5.0, 1_000.0), (4.0, 400.0)], start=1):
        acct = v.open_account(owner=owner, margin_usd=margin, mode="isolated")
        assert v.trade(acct, ETH, -size, t=0, margin_usd=margin).size == -size
        shorts[owner] = acct
    bk = v.entry[a, ETH] - 100.0
    step_to(v, 850.0, 1)
    # hand-computed BitMEX ranks at mark 850: pnl 15% x notional / (margin + profit)
    expected = {1: 0.15 * 2550 / 1950, 2: 0.15 * 4250 / 1750, 3: 0.15 * 3400 / 1000}
    ranks = v.adl_ranks(ETH)
    for owner, acct in shorts.items():
        assert ranks[acct - 2] == pytest.approx(expected[owner], rel=1e-6)
        assert ranks[acct - 2] == pytest.approx(float(adl_rank(0.15, (expected[owner] / 0.15))), rel=1e-6)
    events = v.health_pass(1)
    assert [e.stage for e in events] == ["adl"]
    assert [(e.account, e.size) for e in v.adl_events] == [(shorts[3], 4.0), (shorts[2], 5.0), (shorts[1], 1.0)]
    assert all(e.price == pytest.approx(bk, rel=1e-15) and e.side == -1 for e in v.adl_events)
    assert [e.rank for e in v.adl_events] == pytest.approx([expected[3], expected[2], expected[1]], rel=1e-6)
    assert v.size[shorts[1], ETH] == pytest.approx(-2.0) and v.size[shorts[2], ETH] == 0.0
    assert v.size[a, ETH] == 0.0 and v.insurance_fund == 0.0 and v.bad_debt == 0.0
    v.check_ledger(1)


def test_trade_beyond_initial_margin_is_refused_and_reductions_are_not() -> None:
    v = make_venue()
    a = v.open_account(owner=0, margin_usd=1_000.0)
    refused = v.trade(a, ETH, 21.0, t=0)  # 21,000 notional needs 5% = 1,050 > 1,000
    assert refused.size == 0.0 and refused.reason == "initial margin not met" and v.size[a, ETH] == 0.0
    assert v.trade(a, ETH, 19.0, t=0).size == 19.0
    step_to(v, 960.0, 1)  # equity 240 < 5% initial margin on 18,240, but still above the 2.5% maintenance
    assert v.trade(a, ETH, 1.0, t=1).size == 0.0
    assert v.trade(a, ETH, -5.0, t=1).size == -5.0


def test_zero_sum_after_random_trading_with_liquidations() -> None:
    rng = np.random.default_rng(20240611)
    v = make_venue(
        depth_usd=2e7,
        half_life=30.0,
        mark_price="median",
        taker_fee=0.0005,
        liquidation_fee=0.005,
        insurance_fund_usd=2_000.0,
        vault_capital_usd=20_000.0,
        funding_interval_steps=5,
        funding_divisor=8.0,
        funding_cap=0.04,
        surplus_to_insurance=bool(rng.integers(2)),
    )
    accounts = [
        v.open_account(owner=i, margin_usd=float(rng.uniform(500, 5_000)), mode=("cross", "isolated")[i % 2])
        for i in range(30)
    ]
    price = 1000.0
    for t in range(1, 200):
        price *= float(np.exp(rng.normal(0, 0.02) + (-0.25 if t in (60, 140) else 0.0)))  # two gaps
        step_to(v, price, t)
        for acct in rng.choice(accounts, size=8, replace=False):
            size = float(rng.normal(0, 2.0))
            margin = float(v.cash[acct] * 0.3) if v.mode[acct] == 1 and size * v.size[acct, ETH] >= 0 else None
            v.trade(int(acct), ETH, size, t, margin_usd=margin)
        if t % 17 == 0:
            v.deposit(int(accounts[t % 30]), 1_000.0)
            v.withdraw(int(accounts[(t + 7) % 30]), 300.0)
        v.accrue_funding(t)
        v.health_pass(t)
        v.end_step(t)
        v.check_ledger(t)
        long_oi, short_oi = v.open_interest()
        assert long_oi[ETH] == pytest.approx(short_oi[ETH], rel=1e-12, abs=1e-9)
    g = v.ledger()
    assert abs(v.zero_sum_residual()) <= 1e-9 * g["gross_scale"]
    stages = {e.stage for e in v.liquidations}
    assert "book" in stages and len(v.liquidations) > 10  # the waterfall was exercised
    assert g["traders_funding"] != 0.0 and g["fee_revenue"] > 0.0
    assert len(v.history) == 199 and "perp_funding_rate_ETH" in v.history[-1]


def test_venue_is_deterministic() -> None:
    def run() -> list[float]:
        v = make_venue(depth_usd=1e7, half_life=10.0, mark_price="median", taker_fee=0.001)
        a = v.open_account(owner=0, margin_usd=10_000.0)
        out = []
        for t in range(1, 30):
            step_to(v, 1000.0 * (1 + 0.01 * np.sin(t)), t)
            out.append(v.trade(a, ETH, 3.0 * np.cos(t), t).price)
            v.accrue_funding(t)
            out.append(v.end_step(t)["perp_mark_ETH"])
        return out

    assert run() == run()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"tiers": [{"notional_floor_usd": 0, "initial_margin_rate": 0.05, "maintenance_margin_rate": 0.06}]},
            "perps: tiers[0].maintenance_margin_rate = 0.06 must be < tiers[0].initial_margin_rate = 0.05",
        ),
        (
            {
                "tiers": [
                    {"notional_floor_usd": 0, "initial_margin_rate": 0.05, "maintenance_margin_rate": 0.02},
                    {"notional_floor_usd": 0, "initial_margin_rate": 0.10, "maintenance_margin_rate": 0.05},
                ]
            },
            "perps: tiers[1].notional_floor_usd = 0.0 must be > tiers[0].notional_floor_usd = 0.0",
        ),
        (
            {
                "tiers": [
                    {"notional_floor_usd": 0, "initial_margin_rate": 0.10, "maintenance_margin_rate": 0.05},
                    {"notional_floor_usd": 1e6, "initial_margin_rate": 0.05, "maintenance_margin_rate": 0.02},
                ]
            },
            "perps: tiers[1].initial_margin_rate = 0.05 must be >= tiers[0].initial_margin_rate = 0.1",
        ),
        ({"insurance_fund_usd": -1.0}, "perps.insurance_fund_usd = -1.0: Input should be greater than or equal to 0"),
        ({"funding_interval_steps": 480.5}, "perps: funding_interval_steps = 480.5 must be a whole number of steps"),
        ({"funding_interval_steps": 0}, "perps.funding_interval_steps = 0: Input should be greater than 0"),
        ({"depth_scal": 2.0}, "unknown parameter 'perps.depth_scal' (did you mean 'perps.depth_scale'?)"),
    ],
)
def test_bad_config_is_one_line_naming_field_value_and_rule(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        perp_config(settings)
    message = str(info.value)
    assert message.startswith(expected) and "\n" not in message
