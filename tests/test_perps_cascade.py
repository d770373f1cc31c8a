"""Perp liquidations and auto-deleveraging in the cascade graph (docs/contagion.md, "Cascade graph"): the perp margin
written as a lending account, the book's pass-through to the median mark, and scripted scenarios whose right answer
is known exactly (zero volatility, nobody trades, permanent impact, the oracle one step behind the market):

- perp -> perp: P0 (long ETH, 15x) is liquidated by an exogenous 5% fall; its engine close moves the perp book
  (the mark) enough, with a further 1% exogenous fall, to liquidate P1 (long ETH, ~10x) one step later. P0 is
  bankrupt before its book close is done: what is left is auto-deleveraged against a profitable short.
- lending -> perp: a lending account liquidated by a 6% fall; its liquidator's spot sale moves the index under a
  perp long that survived the fall, which is liquidated one step later.
Each window opens when the position was set (step 0), so the scripted fall shares each later liquidation's loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from abm import ModelConfig, ReflexivityModel, RunResult
from abm.contagion.cascade import cascade_metrics, cascade_table, venue_metrics
from abm.invariants import Ledgers
from abm.perps import PerpVenue, perp_config
from abm.recording.attribution import basis_pass_through, health_sensitivity
from abm.run import collect_result, run

USD, ETH, BTC = 0, 1, 2
ONE_TIER = [{"notional_floor_usd": 0.0, "initial_margin_rate": 0.05, "maintenance_margin_rate": 0.025}]


# --- (a) the formulas -------------------------------------------------------------------------------------------


def lending_hf(venue: PerpVenue, acct: int, k: int, mark: np.ndarray) -> float:
    coll, debt, threshold = venue.lending_equivalent(acct, k, mark)
    return float((coll * threshold).sum() / debt.sum()) if debt.sum() > 0 else np.inf


def test_lending_equivalent_is_liquidated_with_the_venue_and_gives_the_mark_sensitivity() -> None:
    config = ModelConfig.from_dict({"assets": {"ETH": {"price": 1000.0}, "BTC": {"price": 20000.0}}})
    settings = {"mark_price": "book", "taker_fee": 0.0, "insurance_fund_usd": 0.0, "vault_capital_usd": 0.0}
    venue = PerpVenue(config, perp_config(settings), np.array([1.0, 1000.0, 20000.0]))
    iso_long = venue.open_account(0, 20_000.0, "isolated")
    venue.add_margin(iso_long, ETH, 20_000.0)
    venue.genesis_trade(iso_long, ETH, 300.0)  # 300k notional: second tier (5% maintenance, 50k amount)
    iso_short = venue.open_account(1, 10_000.0, "isolated")
    venue.add_margin(iso_short, BTC, 10_000.0)
    venue.genesis_trade(iso_short, BTC, -5.0)
    cross = venue.open_account(2, 30_000.0, "cross")
    venue.genesis_trade(cross, ETH, 200.0)
    venue.genesis_trade(cross, BTC, -6.0)
    for eth, btc in [(1000.0, 20000.0), (960.0, 20500.0), (930.0, 21000.0), (900.0, 21800.0), (1040.0, 19000.0)]:
        mark = np.array([1.0, eth, btc])
        for acct, k in [(iso_long, ETH), (iso_short, BTC), (cross, ETH)]:
            ratio = venue.margin_ratio(acct, k, mark)
            hf = lending_hf(venue, acct, k, mark)
            assert (hf < 1.0) == (ratio < 1.0), (acct, eth, btc, hf, ratio)
            # health_sensitivity is d log HF / d log mark (positions held, tiers unchanged by a 1e-6 move)
            coll, debt, threshold = venue.lending_equivalent(acct, k, mark)
            w = health_sensitivity(coll, debt, threshold)
            for j in (ETH, BTC):
                bumped = mark.copy()
                bumped[j] *= np.exp(1e-6)
                numeric = (np.log(lending_hf(venue, acct, k, bumped)) - np.log(hf)) / 1e-6
                assert w[j] == pytest.approx(numeric, rel=1e-4, abs=1e-6)
    # a single-asset long moves one for one with its mark; a short against it
    mark = np.array([1.0, 1000.0, 20000.0])
    assert health_sensitivity(*venue.lending_equivalent(iso_long, ETH, mark))[ETH] == pytest.approx(1.0)
    assert health_sensitivity(*venue.lending_equivalent(iso_short, BTC, mark))[BTC] == pytest.approx(-1.0)


def test_basis_pass_through() -> None:
    # rows mark, book, index; assets USD, ETH, BTC
    begin = np.log(np.array([[1.0, 100.0, 50.0], [1.0, 100.0, 50.0], [1.0, 100.0, 50.0]]))
    end = np.log(np.array([[1.0, 99.0, 45.0], [1.0, 96.0, 45.0], [1.0, 100.0, 45.0]]))
    phi = basis_pass_through(begin, end, mark_is_book=False)
    # ETH: the book's basis fell log(0.96), the mark's log(0.99); BTC: no basis move at all
    assert phi[ETH] == pytest.approx(np.log(0.99) / np.log(0.96))
    assert phi[BTC] == 0.0
    np.testing.assert_array_equal(basis_pass_through(begin, end, mark_is_book=True), [1.0, 1.0, 1.0])
    over = np.log(np.array([[1.0, 90.0, 50.0], [1.0, 96.0, 50.0], [1.0, 100.0, 50.0]]))
    assert basis_pass_through(begin, over, mark_is_book=False)[ETH] == 1.0  # clipped: the mark passed the book


# --- (b) scripted models ------------------------------------------------------------------------------------------


def scripted_base(shocks: list[dict[str, Any]], **overrides: Any) -> ReflexivityModel:
    """Three traders who never act, their drawn books closed; zero volatility, permanent impact, the oracle one
    step behind the market; the perp venue on with one margin tier, no fees, no insurance fund, no vault."""
    cfg = ModelConfig.from_preset(
        "baseline",
        {
            "traders.n_traders": 3,
            "traders.strategy_mix": {"hodl": 1.0},
            "traders.risk_mix": {"stubborn": 1.0},
            "traders.decision_interval_steps": 1e9,
            "traders.total_equity_usd": 3.0,
            "assets.ETH.volatility": 0.0,
            "assets.BTC.volatility": 0.0,
            "assets.ETH.depth_usd": 1.0e6,
            "assets.BTC.depth_usd": 1.0e6,
            "market.impact_half_life_steps": float("inf"),
            "oracles.latency_steps": 0,
            "oracles.deviation_threshold": 0.0,
            "liquidators.n_liquidators": 1,
            "liquidators.gas_cost_usd": 0.0,
            "liquidators.min_profit_usd": 0.0,
            "pool.close_factor": 1.0,
            "lenders.n_lenders": 1,
            "perps.enabled": True,
            "perps.trader_share": 0.0,
            "perps.taker_fee": 0.0,
            "perps.liquidation_fee": 0.0,
            "perps.insurance_fund_usd": 0.0,
            "perps.vault_capital_usd": 0.0,
            "perps.tiers": ONE_TIER,
            "basis_traders.n_traders": 0,
            "scenario.events": shocks,
            "check_invariants": True,
            # each window opens at step 0 and holds the whole scripted fall, so a sale that finishes an account
            # the fall took most of the way is a minority of its lost health: a lower bar makes it an edge
            "contagion.endogenous_share": 0.25,
            **overrides,
        },
    )
    m = ReflexivityModel(cfg, rng=0, steps=8)
    for acct in range(m.engine.n):  # the drawn (tiny) books go; the market forgets their impact
        m.engine.close_out(acct, m.oracle.prices, 0)
    m.market.m[:] = 0.0
    m.market.log_p[:] = m.market.log_f
    m.history.record(0, m.market.log_p)
    return m


def fund(m: ReflexivityModel, holder: int, usd: float) -> None:
    m.wallets.fund_from_world(m.market, holder, USD, usd)


def open_perp(m: ReflexivityModel, holder: int, usd: float, size: float, mode: str) -> int:
    """A perp account of `holder` with `usd` from its wallet, holding `size` ETH contracts opened at the index."""
    venue = m.perps
    assert venue is not None
    fund(m, holder, usd)
    m.wallets.debit(holder, USD, usd)
    acct = venue.open_account(holder, usd, mode)
    if mode == "isolated":
        venue.add_margin(acct, ETH, usd)
    assert venue.genesis_trade(acct, ETH, size).size == size
    return acct


def finish(m: ReflexivityModel) -> RunResult:
    m.initial_ledgers = Ledgers.of(m)
    m.hf = m.engine.health(m.oracle.prices)
    for _ in range(m.total_steps):
        m.step()
    return collect_result(m, 0.0)


@pytest.fixture(scope="module")
def perp_chain() -> tuple[RunResult, float]:
    """P0: 50 ETH at 3,000 with 10,000 USD (15x): liquidated below ~2,872, bankrupt at 2,800. P1: 20 ETH with 5,790
    USD (~10.4x): liquidated below ~2,780. S: short 100 ETH with 100,000 USD (cross), the ADL counterparty. ETH
    falls 5% at step 3 and 1% more at step 4; the mark is the book price. Returns the run and the book's log
    impact after step 4 (P0's closes only)."""
    m = scripted_base(
        [
            {"kind": "shock", "asset": "ETH", "size": -0.05, "start": 3, "duration": 1},
            {"kind": "shock", "asset": "ETH", "size": -0.01, "start": 4, "duration": 1},
        ],
        **{"perps.mark_price": "book"},
    )
    holders = [t.holder for t in m.traders]
    open_perp(m, holders[0], 10_000.0, 50.0, "isolated")
    open_perp(m, holders[1], 5_790.0, 20.0, "isolated")
    open_perp(m, holders[2], 100_000.0, -100.0, "cross")
    m.initial_ledgers = Ledgers.of(m)
    m.hf = m.engine.health(m.oracle.prices)
    book_impact = 0.0
    for _ in range(m.total_steps):
        m.step()
        if m.steps == 4:
            assert m.perps is not None
            book_impact = float(m.perps.book.m[ETH])
    return collect_result(m, 0.0), book_impact


def test_a_perp_close_liquidates_the_next_perp_position(perp_chain: tuple[RunResult, float]) -> None:
    result, y = perp_chain
    ev = result.events
    assert ev["venue"].tolist() == ["perp", "perp"]
    assert ev[["event_id", "step", "account"]].values.tolist() == [[0, 4, 2], [1, 5, 3]]
    assert y < -0.01  # P0's book close moved the perp book (the mark) down by more than 1%
    p0, p1 = ev.iloc[0], ev.iloc[1]
    assert p0["endogenous_share"] == 0.0 and p0["loss_exogenous"] == pytest.approx(-np.log(0.95))
    # P1's window (from the pass that first saw its position, step 0, to the pass of step 5): the log mark fell
    # log(0.95) + log(0.99) with the index and y with the book
    exo = -np.log(0.95) - np.log(0.99)
    assert p1["loss_exogenous"] == pytest.approx(exo, rel=1e-9)
    assert p1["loss_other"] == pytest.approx(0.0, abs=1e-12)
    assert p1["endogenous_share"] == pytest.approx(-y / (-y + exo), rel=1e-9)
    assert bool(p1["endogenous"]) and p1["distress_step"] == 5
    assert sorted(result.cascade.edges(data="weight")) == [(0, 1, 1.0)]
    # the rows' volumes are the waterfall's fills; hf_before is the venue's margin ratio
    fills = result.perp_liquidations
    for _, row in ev.iterrows():
        mine = fills[fills["event_id"] == row["event_id"]]
        assert row["repaid"] == pytest.approx(mine["size"].sum())
        assert row["repaid_usd"] == pytest.approx((mine["size"] * mine["price"]).sum())
        assert row["hf_before"] < 1.0 and row["liquidator"] == -1 and np.isnan(row["seized_usd"])
    assert ev["repaid"].tolist() == pytest.approx([50.0, 20.0])


def test_adl_fills_are_attributes_of_their_bankrupt_liquidation(perp_chain: tuple[RunResult, float]) -> None:
    result, _ = perp_chain
    adl, g = result.adl, result.cascade
    assert len(adl) > 0 and set(adl["event_id"]) <= set(result.events["event_id"])
    assert g.number_of_nodes() == 2  # ADL fills are not nodes
    for node, data in g.nodes(data=True):
        mine = adl[adl["event_id"] == node]
        assert data["adl_fills"] == len(mine)
        assert data["adl_volume_usd"] == pytest.approx(float((mine["size"] * mine["price"]).sum()))
    assert g.nodes[0]["adl_fills"] >= 1  # P0 was bankrupt before its book close was done
    table = cascade_table(g)
    assert table[["root", "size", "n_perp", "adl_fills"]].values.tolist() == [[0, 2, 2, len(adl)]]
    m = cascade_metrics(g)
    assert m["branching_ratio"] == pytest.approx(result.events["endogenous_share"].mean())
    assert (m["largest_cascade"], m["max_cascade_depth"], m["n_cascades"]) == (2, 1, 1)
    assert result.summary["n_events_perp"] == 2 and result.summary["n_events_lending"] == 0
    assert result.summary["branching_ratio_lending"] is None  # no lending event


def test_perp_graph_survives_save_and_load(perp_chain: tuple[RunResult, float], tmp_path: Path) -> None:
    result, _ = perp_chain
    back = RunResult.load(result.save(tmp_path / "run", figures=False))
    assert sorted(back.cascade.edges(data="weight")) == sorted(result.cascade.edges(data="weight"))
    for v, data in result.cascade.nodes(data=True):
        for key, value in data.items():
            assert back.cascade.nodes[v][key] == (value if isinstance(value, str) else pytest.approx(value))
    assert back.events["venue"].tolist() == ["perp", "perp"]
    assert cascade_metrics(back.cascade) == pytest.approx(cascade_metrics(result.cascade))
    assert venue_metrics(back.cascade) == pytest.approx(venue_metrics(result.cascade), nan_ok=True)


def test_a_spot_liquidation_sale_liquidates_a_perp_position_through_the_index() -> None:
    """Lending account A: 100,000 USD of ETH against 78,000 USD of debt (HF 1.058), liquidated by a 6% fall at
    step 4; the liquidator's spot sale at step 4 shows in the index at step 5. Perp P (isolated long, 10x): healthy
    after the fall, liquidated below ~2,769 at step 5 once that sale adds to it."""
    m = scripted_base([{"kind": "shock", "asset": "ETH", "size": -0.06, "start": 3, "duration": 1}])
    lender = m.lenders[0]
    fund(m, lender.holder, 1e6)
    m.pool.supply(lender.supplier, lender.holder, USD, 1e6, m.wallets)
    holder = m.traders[0].holder
    acct = m.engine.open_account(holder, "cross")
    fund(m, holder, 22_000.0)
    assert m.engine.lever_long(acct, ETH, 78_000.0, 22_000.0, m.oracle.prices, 0, genesis=True)
    open_perp(m, m.traders[1].holder, 6_000.0, 20.0, "isolated")
    result = finish(m)
    ev = result.events
    assert ev[["event_id", "step", "venue"]].values.tolist() == [[0, 4, "lending"], [1, 5, "perp"]]
    perp = ev.iloc[1]
    # its loss: the index fell with the 6% fall (exogenous) and by the sale's impact, which the market logged
    sale = -sum(dm for _, _, asset, dm in result.model.market.liq_impacts if asset == ETH)
    assert perp["loss_exogenous"] == pytest.approx(-np.log(0.94), rel=1e-9)
    assert perp["loss_other"] == pytest.approx(0.0, abs=1e-12)
    assert perp["endogenous_share"] == pytest.approx(sale / (sale - np.log(0.94)), rel=1e-9)
    assert sorted(result.cascade.edges(data="weight")) == [(0, 1, 1.0)]
    assert result.summary["cross_venue_edges"] == 1
    assert result.summary["branching_ratio"] == pytest.approx(perp["endogenous_share"] / 2)
    assert result.summary["branching_ratio_perp"] == pytest.approx(perp["endogenous_share"])
    assert result.summary["branching_ratio_lending"] == 0.0


# --- (c) the presets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["perp_crash", "oct_10_2025"])
def test_perp_presets_put_both_venues_in_one_graph(preset: str) -> None:
    result = run(ModelConfig.from_preset(preset, {"traders.n_traders": 200}), seed=0, steps=300, keep_model=False)
    ev, g, s = result.events, result.cascade, result.summary
    assert ev["event_id"].is_unique and ev["event_id"].is_monotonic_increasing
    perp = set(ev.loc[ev["venue"] == "perp", "event_id"])
    assert perp and set(result.perp_liquidations["event_id"]) == perp  # one event per liquidated position
    assert set(result.adl["event_id"]) <= perp
    assert {g.nodes[v]["venue"] for v in g.nodes} <= {"lending", "perp"}
    assert s["n_events_perp"] == len(perp) and s["n_events_lending"] + len(perp) == g.number_of_nodes()
    assert 0.0 <= s["branching_ratio"] < 1.0 and 0.0 <= s["reflexivity_index"] <= 1.0
    assert np.isfinite(s["branching_ratio_perp"])
    ends = ev.loc[ev["venue"] == "perp", "endogenous_share"]
    assert ((ends >= 0.0) & (ends <= 1.0)).all()
    lending = ev[ev["venue"] == "lending"]
    assert lending["seized_usd"].notna().all() and lending["liquidator"].ge(0).all()
