"""Liquidation auctions wired into the model (docs/model.md, 3.3 Submodels: Liquidation auctions), on a scripted
scenario whose right answer is known: one account long 100k USD of ETH against 78k USD of debt, ETH -10% at
step 3, so the oracle shows it unhealthy at step 4 and the liquidator kicks it to an auction. Every invariant
(token conservation with the auction escrow, the pool identity, the debt ledger with the auctions' debt) is checked
every step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from abm import ModelConfig, ReflexivityModel, RunResult
from abm.config.loader import ConfigError
from abm.invariants import Ledgers
from abm.run import collect_result, run

USD, ETH = 0, 1
VALUE, DEBT = 100e3, 78e3  # the account: ETH collateral and USD debt at step 0 (USD)


def scripted_model(mechanism: str, steps: int, liquidator_capacity: int = 20, **auctions: Any) -> ReflexivityModel:
    """One trader who never acts, one liquidator without costs (landing `liquidator_capacity` transactions a step),
    no volatility, the oracle on time, permanent impact, ETH -10% at step 3; auction parameters `auctions` (short
    English clocks: a bid wins after 5 steps)."""
    overrides = {
        "traders.n_traders": 1,
        "traders.strategy_mix": {"hodl": 1.0},
        "traders.risk_mix": {"stubborn": 1.0},
        "traders.decision_interval_steps": 1e9,
        "traders.total_equity_usd": 1.0,
        "assets.ETH.volatility": 0.0,
        "assets.BTC.volatility": 0.0,
        "assets.ETH.depth_usd": 1.0e7,
        "market.impact_half_life_steps": float("inf"),
        "oracles.latency_steps": 0,
        "oracles.deviation_threshold": 0.0,
        "liquidators.n_liquidators": 1,
        "liquidators.gas_cost_usd": 1.0,
        "liquidators.capacity_per_step": liquidator_capacity,
        "liquidators.mechanism": mechanism,
        "lenders.n_lenders": 1,
        "auctions.ttl_steps": 5,
        "auctions.tau_steps": 20,
        "scenario.events": [{"kind": "shock", "asset": "ETH", "size": -0.10, "start": 3, "duration": 1}],
        "check_invariants": True,
    }
    overrides.update({f"auctions.{k}": v for k, v in auctions.items()})
    m = ReflexivityModel(ModelConfig.from_preset("baseline", overrides), rng=0, steps=steps)
    eng, market = m.engine, m.market
    prices = m.oracle.prices
    for acct in range(eng.n):  # the drawn (tiny) book goes; the market forgets its impact
        eng.close_out(acct, prices, 0)
    market.m[:] = 0.0
    market.log_p[:] = market.log_f
    m.history.record(0, market.log_p)
    lender = m.lenders[0]
    m.wallets.fund_from_world(market, lender.holder, USD, 1e6)
    m.pool.supply(lender.supplier, lender.holder, USD, 1e6, m.wallets)
    trader = m.traders[0]
    acct = eng.open_account(trader.holder, "cross")
    m.wallets.fund_from_world(market, trader.holder, USD, VALUE - DEBT)
    assert eng.lever_long(acct, ETH, DEBT, VALUE - DEBT, prices, 0, genesis=True)
    m.initial_ledgers = Ledgers.of(m)
    m.hf = eng.health(prices)
    return m


def finish(m: ReflexivityModel) -> RunResult:
    for _ in range(m.total_steps):
        m.step()
    return collect_result(m, 0.0)


def test_a_lone_keeper_wins_the_lot_for_nothing_and_the_debt_becomes_bad_debt() -> None:
    # one keeper: nobody answers its opening bid, which wins when its ttl runs out (Black Thursday's 0-DAI bids)
    m = scripted_model("english", 16, n_keepers=1)
    result = finish(m)
    (row,) = result.auctions.to_dict("records")
    assert row["kick_step"] == 4 and row["settle_step"] == 9  # bid at the kick, dealt 5 steps later
    assert row["zero_bid"] and row["raised"] < 1e-3 and row["sold"] == pytest.approx(row["lot"])
    # the whole debt (plus the interest of 5 minutes) is bad debt, written off through the pool's waterfall, and all
    # of it is shortfall: the lot, sold at its market value, would have repaid it
    assert row["bad_debt_usd"] == pytest.approx(DEBT, rel=1e-4)
    assert m.pool.bad_debt_usd == pytest.approx(row["bad_debt_usd"])
    assert row["shortfall_usd"] == pytest.approx(row["bad_debt_usd"])
    s = result.summary
    assert s["n_auctions"] == 1 and s["auction_zero_bid_share"] == 1.0
    assert s["auction_shortfall_usd"] == pytest.approx(row["bad_debt_usd"]) == pytest.approx(s["bad_debt_usd"])
    # one liquidation event per kick, carrying the bad debt its auction left; the owner got nothing back
    (event,) = result.events.to_dict("records")
    assert event["step"] == 4 and event["repaid_usd"] == pytest.approx(DEBT, rel=1e-4)
    assert event["bad_debt_usd"] == pytest.approx(row["bad_debt_usd"])
    assert m.wallets.balance(m.traders[0].holder, ETH) == 0.0
    # the keeper sold the lot into the market at once, under the kick's event: forced selling moved the price
    sales = [dm for event_id, step, asset, dm in m.market.liq_impacts if asset == ETH]
    assert [(e, t) for e, t, a, _ in m.market.liq_impacts] == [(event["event_id"], 9)] and sales[0] < 0
    assert m.market.price(ETH) < m.fundamentals.prices[ETH]


def test_a_zero_bid_keeper_kicks_and_wins_while_the_block_space_is_gone() -> None:
    # congestion: the liquidator and the default keepers land nothing (capacity 0); a zero-bid keeper, paying any
    # gas, kicks the vault itself, opens the auction at the minimum bid with no capital, and wins it when the bid's
    # ttl runs out with nobody able to outbid it: the debt is written off, all of it booked as auction shortfall
    m = scripted_model("english", 16, liquidator_capacity=0, n_zero_bid_keepers=1)
    result = finish(m)
    (row,) = result.auctions.to_dict("records")
    assert row["kick_step"] == 4 and row["settle_step"] == 9
    assert row["zero_bid"] and row["raised"] < 1e-3 and row["sold"] == pytest.approx(row["lot"])
    assert row["bad_debt_usd"] == pytest.approx(DEBT, rel=1e-4) == pytest.approx(m.pool.bad_debt_usd)
    assert result.summary["auction_shortfall_usd"] == pytest.approx(row["bad_debt_usd"])
    (event,) = result.events.to_dict("records")
    assert event["liquidator"] == -1  # kicked by the zero-bid keeper, not by a Liquidator agent
    assert m.liquidators[0].n_liquidations == 0
    # the default keepers (5, with 2M USD each) kept their capital; the zero-bid keeper sold the lot it won
    kp = m.auctions.house.keepers
    assert kp.capital_usd[:5].tolist() == [2e6] * 5 and kp.capital_usd[5] > 0.9 * VALUE * 0.9


def test_the_same_vault_with_the_block_space_back_clears_at_the_keepers_price() -> None:
    # the zero-bid keeper still opens the auction, but the default keepers land within the ttl and outbid it
    m = scripted_model("english", 30, n_zero_bid_keepers=1, penalty=0.05)
    (row,) = finish(m).auctions.to_dict("records")
    assert not row["zero_bid"] and row["raised"] == pytest.approx(row["tab"]) and row["bad_debt_usd"] == 0.0


def test_cat_lump_splits_the_vault_into_one_auction_per_kick() -> None:
    # 100k USD of ETH at 3,000 USD: 33.3 ETH against 78k of debt; with a lump of 10 ETH the liquidator bites four
    # times, one kick a step (one per account per liquidator turn): 10, 10, 10 and the last 3.3 ETH, each with its
    # lot's share of the debt. Keepers compete (5% penalty), so every lot repays its tab
    m = scripted_model("english", 30, penalty=0.05, lump={"ETH": 10.0})
    result = finish(m)
    rows = result.auctions.sort_values("auction_id")
    ink = VALUE / 3000.0
    assert rows["kick_step"].tolist() == [4, 5, 6, 7]
    assert rows["lot"].tolist() == pytest.approx([10.0, 10.0, 10.0, ink - 30.0])
    # the debt goes with the lots, in proportion (plus the interest accrued between the kicks)
    assert (rows["debt_usd"] / rows["lot"]).tolist() == pytest.approx([DEBT / ink] * 4, rel=1e-4)
    assert rows["debt_usd"].sum() == pytest.approx(DEBT, rel=1e-4)
    assert (rows["raised"] == rows["tab"]).all() and m.pool.bad_debt_usd == 0.0 and len(result.events) == 4
    # a Dutch auction (Clipper) has no lump: the whole collateral in one auction
    dutch = scripted_model("dutch", 10, lump={"ETH": 10.0})
    (row,) = finish(dutch).auctions.to_dict("records")
    assert row["lot"] == pytest.approx(ink)


def test_with_no_keeper_able_to_bid_an_english_auction_restarts_and_a_dutch_one_resets() -> None:
    english = scripted_model("english", 60, keeper_capital_usd=0.0)
    result = finish(english)
    (row,) = result.auctions.to_dict("records")
    assert np.isnan(row["settle_step"]) and row["resets"] == 2  # tau 20: restarted at steps 24 and 44
    assert result.summary["auction_debt_live_usd"] == pytest.approx(DEBT, rel=1e-4)
    assert english.pool.bad_debt_usd == 0.0  # not written off: the auction is still running
    dutch = scripted_model("dutch", 20, keeper_capital_usd=0.0, tail_steps=6.0)
    (row,) = finish(dutch).auctions.to_dict("records")
    assert np.isnan(row["settle_step"]) and row["resets"] == 2  # tail 6: reset at steps 11 and 18


@pytest.mark.parametrize("mechanism", ["english", "dutch"])
def test_competing_keepers_clear_near_market_repay_the_pool_and_return_collateral(mechanism: str) -> None:
    # a 5% penalty: the tab (82k) is below the lot's value (90k) by more than an English dent's step (beg 5%)
    m = scripted_model(mechanism, 60, penalty=0.05)  # the Dutch price needs ~40 steps to fall from 1.30 x oracle
    result = finish(m)
    (row,) = result.auctions.to_dict("records")
    # raised in full, no bad debt, the collateral not needed back to the owner
    assert row["raised"] == pytest.approx(row["tab"]) and row["tab"] == pytest.approx(1.05 * row["debt_usd"])
    assert row["bad_debt_usd"] == 0.0 and m.pool.bad_debt_usd == 0.0 and not row["zero_bid"]
    assert row["clearing_price"] > 0.97 * row["market_price"]  # within the keepers' costs and the sale's impact
    assert m.wallets.balance(m.traders[0].holder, ETH) == pytest.approx(row["returned"]) and row["returned"] > 0
    # the penalty went to the pool's reserves; the account owes nothing
    assert m.pool.reserves[USD] == pytest.approx(row["tab"] - row["debt_usd"], rel=1e-3)  # (less 5 min of interest)
    assert m.engine.scaled_debt[: m.engine.n].sum() == 0.0 and m.auctions.scaled_debt_total() == 0.0
    assert result.summary["auction_shortfall_usd"] == 0.0 and len(result.events) == 1


def test_the_auctions_table_survives_save_and_load(tmp_path: Path) -> None:
    result = finish(scripted_model("english", 16, n_keepers=1))
    back = RunResult.load(result.save(tmp_path / "run", figures=False))
    assert back.auctions.equals(result.auctions)
    assert back.table_summary()["auction_shortfall_usd"] == result.summary["auction_shortfall_usd"]


def test_auction_settings_cannot_touch_a_keeper_run() -> None:
    # the default mechanism builds no auction desk and draws nothing from the auction stream: any auction setting
    # leaves the run bit for bit as it was
    cfg = ModelConfig.from_preset("crash", {"traders.n_traders": 200})
    other = cfg.with_overrides({"auctions.n_keepers": 9, "auctions.keeper_capital_usd": 1e9, "auctions.beg": 1.5})
    a, b = run(cfg, seed=0, steps=300), run(other, seed=0, steps=300)
    assert a.model is not None and a.model.auctions is None
    assert a.timeseries.equals(b.timeseries) and a.events.equals(b.events)
    assert a.summary["n_auctions"] == 0 and a.summary["auction_zero_bid_share"] is None


def test_bad_auction_settings_are_one_line_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"liquidators.mechanism = 'vickrey'"):
        ModelConfig.from_preset("crash", {"liquidators.mechanism": "vickrey"})
    with pytest.raises(ConfigError, match=r"auctions.tau_steps = 10 must be >= auctions.ttl_steps = 180"):
        ModelConfig.from_preset("crash", {"auctions.tau_steps": 10})
    # the mechanism and the keepers are built once: a scenario event may change the auction rules, not them
    event = {"kind": "set", "step": 5, "parameter": "liquidators.mechanism", "value": "dutch"}
    with pytest.raises(ConfigError, match=r"'liquidators.mechanism': fixed when the run is built"):
        ModelConfig.from_preset("black_thursday_auction", {"scenario.events": [event]})
    event = {"kind": "set", "step": 5, "parameter": "auctions.ttl_steps", "value": 30}
    assert ModelConfig.from_preset("black_thursday_auction", {"scenario.events": [event]}).auctions.ttl_steps == 10
    with pytest.raises(ConfigError, match=r"auctions.lump.DOGE: no such risky asset"):
        ModelConfig.from_preset("crash", {"auctions.lump": {"DOGE": 50.0}})
    with pytest.raises(ConfigError, match=r"auctions.lump.ETH"):
        ModelConfig.from_preset("crash", {"auctions.lump": {"ETH": 0.0}})
    with pytest.raises(ConfigError, match=r"auctions.n_zero_bid_keepers"):
        ModelConfig.from_preset("crash", {"auctions.n_zero_bid_keepers": -1})


@pytest.mark.parametrize("mechanism", ["english", "dutch"])
def test_invariants_hold_every_step_with_auctions_in_a_crash(mechanism: str) -> None:
    """The crash preset's population kicked to auctions (a 30-step English ttl so lots settle within the run): token
    conservation with the escrow and the keepers, the pool identity, the debt ledger with the auctions' debt, every
    step; one liquidation event per kick, and settled auctions' bad debt is the pool's."""
    cfg = ModelConfig.from_preset(
        "crash",
        {
            "traders.n_traders": 200,
            "liquidators.mechanism": mechanism,
            "auctions.ttl_steps": 30,
            "check_invariants": True,
        },
    )
    result = run(cfg, seed=3, steps=420)
    auctions, s = result.auctions, result.summary
    kicked = result.events["event_id"].isin(auctions["event_id"])
    assert s["n_auctions"] == len(auctions) == kicked.sum() > 0
    settled = auctions[auctions["settle_step"].notna()]
    assert len(settled) > 0 and (settled["sold"] + settled["returned"]).to_numpy() == pytest.approx(settled["lot"])
    # each settled auction's bad debt went through the pool's waterfall and sits on its kick's event row
    assert 0 <= s["auction_bad_debt_usd"] <= s["bad_debt_usd"] + 1e-6
    assert result.events.loc[kicked, "bad_debt_usd"].sum() >= s["auction_bad_debt_usd"] - 1e-6
