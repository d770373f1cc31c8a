"""The cascade graph (docs/contagion.md) on hand-built scenarios whose right answer is known exactly.

Three accounts, two risky assets (ETH, BTC), debt in USD:
- A0 long ETH, liquidated by an exogenous 10% fall of ETH: a root;
- A1 long ETH, healthy after the fall, liquidated by A0's sale;
- A2 cross-margined long ETH and BTC, healthy after A0's sale, liquidated by A1's sale.
(a) checks the formulas on constructed windows; (b) runs the scenario through the model, where each window starts
when the position was set, so the fall and both sales share every later account's lost health.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from abm import ModelConfig, ReflexivityModel, RunResult
from abm.contagion.cascade import cascade_graph, cascade_metrics, cascade_table, main_parent_forest
from abm.invariants import Ledgers
from abm.recording.attribution import attribute, health_sensitivity
from abm.run import collect_result

USD, ETH, BTC = 0, 1, 2
LT = np.array([0.78, 0.825, 0.78])


# --- (a) the attribution and graph functions on constructed inputs ---------------------------------------------


def test_attribution_and_graph_from_constructed_moves() -> None:
    # A0: only ETH collateral, USD debt -> d log HF / d log p = (0, 1, 0); its window saw ETH -10%, all exogenous
    w0 = health_sensitivity(np.array([0, 100e3, 0]), np.array([78e3, 0, 0]), LT)
    np.testing.assert_allclose(w0, [-1.0, 1.0, 0.0])  # (the USD entry multiplies a USD move, which is always 0)
    a0 = attribute(w0, np.array([0, -0.10, 0]), np.array([0, -0.10, 0]), {})
    assert a0.exogenous == pytest.approx(0.10) and a0.endogenous_share == 0.0
    # A1: ETH -5% in its window: 2% exogenous, 3% the (decayed) impact of A0's sale -> 60% endogenous
    w1 = health_sensitivity(np.array([0, 50e3, 0]), np.array([35.5e3, 0, 0]), LT)
    a1 = attribute(w1, np.array([0, -0.05, 0]), np.array([0, -0.02, 0]), {0: np.array([0, -0.03, 0])})
    assert a1.endogenous_share == pytest.approx(0.6)
    assert a1.parents() == {0: pytest.approx(1.0)}
    # A2: ETH 40k and BTC 20k, LT-weighted: 40k * 0.825 = 33000 and 20k * 0.78 = 15600 of 48600
    w2 = health_sensitivity(np.array([0, 40e3, 20e3]), np.array([42.5e3, 0, 0]), LT)
    share_eth = 33_000 / 48_600
    np.testing.assert_allclose(w2[1:], [share_eth, 1 - share_eth])
    moves = {0: np.array([0, -0.01, 0]), 1: np.array([0, -0.03, 0])}
    a2 = attribute(w2, np.array([0, -0.05, -0.01]), np.array([0, -0.01, -0.01]), moves)
    exo = share_eth * 0.01 + (1 - share_eth) * 0.01
    assert a2.exogenous == pytest.approx(exo)
    assert a2.by_event == {0: pytest.approx(share_eth * 0.01), 1: pytest.approx(share_eth * 0.03)}
    assert a2.endogenous_share == pytest.approx(share_eth * 0.04 / (share_eth * 0.04 + exo))
    assert a2.parents() == {0: pytest.approx(0.25), 1: pytest.approx(0.75)}
    # the recorder's rule: endogenous when the share is >= 0.5, edges from the parents weighted by their share
    atts = [a0, a1, a2]
    events = pd.DataFrame(
        {
            "event_id": [0, 1, 2],
            "step": [4, 5, 6],
            "account": [0, 1, 2],
            "repaid_usd": [78e3, 35.5e3, 30e3],
            "endogenous": [a.endogenous_share >= 0.5 for a in atts],
            "endogenous_share": [a.endogenous_share for a in atts],
        }
    )
    edges = [(p, i, wt) for i, a in enumerate(atts) if a.endogenous_share >= 0.5 for p, wt in a.parents().items()]
    g = cascade_graph(events, edges)
    got = {(u, v): wt for u, v, wt in g.edges(data="weight")}
    assert got == {(0, 1): pytest.approx(1.0), (0, 2): pytest.approx(0.25), (1, 2): pytest.approx(0.75)}
    m = cascade_metrics(g)
    # expected offspring per event: each event's endogenous share (its parents are all in the graph): (0 + 0.6 + s2) / 3
    assert m["branching_ratio"] == pytest.approx((0.0 + 0.6 + a2.endogenous_share) / 3)
    assert m["reflexivity_index"] == pytest.approx((35.5e3 + 30e3) / (78e3 + 35.5e3 + 30e3))
    # main-parent forest: 2 keeps its heavier parent 1 -> one chain 0 -> 1 -> 2
    assert sorted(main_parent_forest(g).edges) == [(0, 1), (1, 2)]
    assert (m["largest_cascade"], m["max_cascade_depth"], m["n_cascades"]) == (3, 2, 1)
    table = cascade_table(g)
    assert table.to_dict("records") == [
        {
            "root": 0,
            "size": 3,
            "depth": 2,
            "volume_usd": 143.5e3,
            "first_step": 4,
            "last_step": 6,
            "n_perp": 0,
            "adl_fills": 0,
            "adl_volume_usd": 0.0,
        }
    ]


def test_metrics_of_an_empty_and_a_rootless_forest() -> None:
    empty = cascade_metrics(nx.DiGraph())
    assert np.isnan(empty["branching_ratio"]) and empty["largest_cascade"] == 0
    events = pd.DataFrame({"event_id": [0, 1, 2], "repaid_usd": [1.0, 1.0, 2.0], "endogenous": [False] * 3})
    g = cascade_graph(events, [])
    m = cascade_metrics(g)
    assert (m["branching_ratio"], m["reflexivity_index"], m["largest_cascade"], m["n_cascades"]) == (0.0, 0.0, 1, 3)


# --- (b) the same scenario driven through the model ------------------------------------------------------------


def scripted_model() -> ReflexivityModel:
    """A model whose three traders' books are replaced by the scenario's accounts; no randomness left that
    matters: zero volatility, traders who never act, one liquidator without costs, full close factor, the oracle
    one step behind the market, permanent impact, ETH -10% at step 3."""
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
            "scenario.events": [{"kind": "shock", "asset": "ETH", "size": -0.10, "start": 3, "duration": 1}],
            "check_invariants": True,
        },
    )
    m = ReflexivityModel(cfg, rng=0, steps=8)
    eng, market = m.engine, m.market
    prices = m.oracle.prices
    for acct in range(eng.n):  # the drawn (tiny) books go; the market forgets their impact
        eng.close_out(acct, prices, 0)
    market.m[:] = 0.0
    market.log_p[:] = market.log_f
    m.history.record(0, market.log_p)  # step 0 as seen by the attribution window: the market at its fundamental

    def fund(holder: int, usd: float) -> None:
        m.wallets.fund_from_world(market, holder, USD, usd)

    lender = m.lenders[0]
    fund(lender.holder, 1e6)
    m.pool.supply(lender.supplier, lender.holder, USD, 1e6, m.wallets)
    books = [[(ETH, 100e3, 78e3)], [(ETH, 50e3, 35.5e3)], [(BTC, 20e3, 10e3), (ETH, 40e3, 32.5e3)]]
    for trader, legs in zip(m.traders, books, strict=True):
        acct = eng.open_account(trader.holder, "cross")
        for asset, value, debt in legs:
            fund(trader.holder, value - debt)
            assert eng.lever_long(acct, asset, debt, value - debt, prices, 0, genesis=True)
    m.initial_ledgers = Ledgers.of(m)
    m.hf = eng.health(prices)
    return m


@pytest.fixture(scope="module")
def scripted() -> tuple[RunResult, np.ndarray]:
    """The run, and the log price impact (ETH) of each liquidation's sale in event order (impact is permanent)."""
    m = scripted_model()
    for _ in range(m.total_steps):
        m.step()
    impacts = np.array([dm for _, _, asset, dm in m.market.liq_impacts if asset == ETH])
    return collect_result(m, 0.0), impacts


def test_model_builds_the_known_cascade(scripted: tuple[RunResult, np.ndarray]) -> None:
    run, impacts = scripted
    ev = run.events
    # A0 at step 4 (the oracle sees the fall one step late), A1 at 5, A2 at 6: the new accounts are 3, 4, 5
    assert ev[["event_id", "step", "account"]].values.tolist() == [[0, 4, 3], [1, 5, 4], [2, 6, 5]]
    assert len(impacts) == 3 and (impacts < 0).all()
    # each account's window runs from the step its position was set (0): the whole 10% fall is in it
    fall = -np.log(0.9)
    sale0, sale1 = -impacts[0], -impacts[1]
    np.testing.assert_allclose(ev["loss_exogenous"].iloc[:2], [fall, fall])
    # A0: the fall alone; A1 (long ETH only, w = 1) survived the fall and went under on A0's sale, which did less
    # of its lost health than the fall did; A2 (ETH and BTC) lost the ETH part w of the fall and of both sales
    w2 = ev["loss_exogenous"].iloc[2] / fall
    assert 0 < w2 < 1
    share1 = sale0 / (fall + sale0)
    share2 = (sale0 + sale1) / (fall + sale0 + sale1)
    np.testing.assert_allclose(ev["endogenous_share"], [0.0, share1, share2], rtol=1e-9)
    assert share1 < 0.5 < share2 and ev["endogenous"].tolist() == [False, False, True]
    g = run.cascade
    edges = sorted(g.edges(data="weight"))
    assert [e[:2] for e in edges] == [(0, 2), (1, 2)]  # only an endogenous event gets parents
    np.testing.assert_allclose([e[2] for e in edges], [sale0 / (sale0 + sale1), sale1 / (sale0 + sale1)])
    s = run.summary
    assert s["branching_ratio"] == pytest.approx((share1 + share2) / 3)
    assert s["reflexivity_index"] == pytest.approx(ev["repaid_usd"].iloc[2] / ev["repaid_usd"].sum())
    # the main-parent forest: A2 hangs from A0, its heavier parent; A1 is a root of its own
    assert (s["largest_cascade"], s["max_cascade_depth"], s["n_cascades"]) == (2, 1, 2)
    assert g.nodes[2]["endogenous"] is True and g.nodes[0]["account"] == 3
    # without the perp venue every event is the lending pool's, and the graph carries no ADL attributes
    assert ev["venue"].tolist() == ["lending"] * 3 and {d["venue"] for _, d in g.nodes(data=True)} == {"lending"}
    assert not any("adl_fills" in d for _, d in g.nodes(data=True)) and "n_events_lending" not in s


def test_cascade_graphml_round_trip(scripted: tuple[RunResult, np.ndarray], tmp_path: Path) -> None:
    scripted, _ = scripted
    out = scripted.save(tmp_path / "run", figures=False)
    assert (out / "cascade.graphml").exists()
    back = RunResult.load(out)
    assert sorted(back.cascade.edges(data="weight")) == sorted(scripted.cascade.edges(data="weight"))
    for v, data in scripted.cascade.nodes(data=True):
        for key, value in data.items():
            assert back.cascade.nodes[v][key] == pytest.approx(value)
    assert back.events["endogenous"].tolist() == [False, False, True]
    assert cascade_metrics(back.cascade) == pytest.approx(cascade_metrics(scripted.cascade))
