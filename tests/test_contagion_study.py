"""The contagion study's per-run metrics and the contagion figures (smoke: files are written)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from abm import ModelConfig
from abm.contagion.cascade import cascade_graph
from abm.contagion.distress import EquitySnapshot, distress_metrics
from abm.contagion.figures import (
    ccdf,
    draw_cascade_trees,
    draw_exposure_network,
    plot_cascade_ccdf,
    plot_debtrank_vs_size,
    plot_hawkes_vs_truth,
    tree_layout,
)
from abm.contagion.study import hawkes_metrics, point_labels, scenario_breaks


def test_distress_metrics_by_hand() -> None:
    # four accounts with debt at the start (the fifth has none), two traders
    start = EquitySnapshot(
        account_equity=np.array([100.0, 50.0, 80.0, 20.0, 10.0]),
        positions=np.array([[1, 0], [1, 1], [0, 1], [1, 0], [0, 0]], dtype=bool),
        has_debt=np.array([True, True, True, True, False]),
        trader_equity=np.array([150.0, 110.0]),
    )
    end = EquitySnapshot(
        account_equity=np.array([2.0, 40.0, 80.0, -1.0, 10.0]),
        positions=np.zeros((5, 2), dtype=bool),
        has_debt=np.zeros(5, dtype=bool),
        trader_equity=np.array([5.0, 100.0]),
    )
    events = pd.DataFrame(
        {"account": [0, 0, 3], "collateral_asset": ["ETH", "ETH", "ETH"], "debt_asset": ["USD", "USD", "USD"]}
    )
    m = distress_metrics(start, end, events, ["USD", "ETH", "BTC"])
    assert m["n_accounts_with_debt"] == 4
    assert m["share_accounts_liquidated"] == pytest.approx(2 / 4)
    assert m["share_accounts_wiped_out"] == pytest.approx(2 / 4)  # 0 (2 < 5% of 100) and 3 (negative)
    assert m["share_traders_wiped_out"] == pytest.approx(1 / 2)  # trader 0: 5 < 5% of 150
    assert m["share_equity_lost"] == pytest.approx(1 - 105 / 260)
    assert m["positions_liquidated"] == 2  # (0, ETH) and (3, ETH)
    assert m["share_positions_liquidated"] == pytest.approx(2 / 5)


def test_hawkes_metrics_handle_few_and_many_events() -> None:
    empty = hawkes_metrics(pd.DataFrame({"step": [], "event_id": [], "account": [], "endogenous": []}), 100, 0)
    assert np.isnan(empty["hawkes_n_counts"])
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(0, 600, 60))
    ev = pd.DataFrame(
        {
            "step": steps,
            "event_id": np.arange(60),
            "account": np.arange(60),
            "endogenous": np.zeros(60, dtype=bool),
            "endogenous_share": np.zeros(60),
        }
    )
    m = hawkes_metrics(ev, 600, 0)
    assert m["hawkes_n_counts"] < 0.2 and m["hawkes_n_mle"] < 0.2  # Poisson times: little self-excitation
    assert m["mean_endogenous_share"] == 0.0


def test_point_labels_make_readable_columns() -> None:
    shock = [{"kind": "shock", "asset": "ETH", "size": -0.2, "start": 1, "duration": 2}]
    labels = point_labels(
        {"scenario.events": shock, "traders.margin_mode_mix": {"cross": 1.0, "portfolio": 3.0}, "x.y": 2}
    )
    assert labels["shock_ETH"] == -0.2
    assert labels["margin_mode_mix_portfolio"] == pytest.approx(0.75)
    assert labels["x.y"] == 2 and isinstance(labels["scenario.events"], str)


def small_cascade() -> nx.DiGraph:
    events = pd.DataFrame(
        {
            "event_id": range(6),
            "step": [1, 2, 2, 3, 5, 6],
            "repaid_usd": [5.0, 1.0, 2.0, 1.0, 3.0, 1.0],
            "endogenous": [False, True, True, True, False, True],
            "endogenous_share": [0.1, 0.9, 0.7, 1.0, 0.0, 0.6],
        }
    )
    return cascade_graph(events, [(0, 1, 1.0), (0, 2, 1.0), (2, 3, 1.0), (4, 5, 1.0)])


def test_tree_layout_and_ccdf() -> None:
    g = small_cascade()
    pos = tree_layout(g.subgraph([0, 1, 2, 3]).copy(), 0)
    assert pos[0][1] == 0 and pos[3][1] == -2
    assert pos[1][0] < pos[2][0]
    x, p = ccdf([1, 1, 2, 5])
    np.testing.assert_allclose(x, [1, 2, 5])
    np.testing.assert_allclose(p, [1.0, 0.5, 0.25])


def test_figures_are_written(tmp_path: Path) -> None:
    g = small_cascade()
    assert draw_cascade_trees(g, tmp_path / "trees.png", n=2).stat().st_size > 1000
    assert plot_cascade_ccdf({"a": [1, 2, 4], "b": [1, 1, 3]}, tmp_path / "ccdf.png").exists()
    table = pd.DataFrame(
        {
            "gross_exposure_usd": [1e5, 2e5, 3e5, 4e5],
            "equity": [1.0, 2.0, 3.0, 4.0],
            "debtrank": [0.0, 0.01, 0.02, 0.05],
            "liquidated": [False, True, False, True],
        }
    )
    assert plot_debtrank_vs_size(table, tmp_path / "dr.png").exists()
    truth = pd.DataFrame({"branching_ratio": [0.1, 0.5], "h": [0.2, 0.4], "preset": ["a", "b"]})
    assert plot_hawkes_vs_truth(truth, tmp_path / "hk.png", {"h": "estimate"}).exists()
    eg = nx.Graph(k=2)
    eg.add_node("asset:ETH", kind="asset", symbol="ETH")
    for i in range(4):
        eg.add_node(f"account:{i}", kind="account", account=i, equity=1.0 + i, gross_exposure_usd=2.0 + i)
        eg.add_edge(f"account:{i}", "asset:ETH", kind="exposure", weight=2.0 + i)
    eg.add_edge("account:0", "account:1", kind="overlap", overlap_usd=1.0, weight=1.0)
    assert draw_exposure_network(eg, tmp_path / "net.png", liquidated={1}, highlight_asset="ETH").exists()


def test_scenario_breaks_from_the_presets() -> None:
    assert scenario_breaks(ModelConfig.from_preset("crash")) == [240.0, 270.0, 330.0]
    assert scenario_breaks(ModelConfig.from_preset("black_thursday")) == [240.0, 480.0, 540.0, 720.0]
    assert scenario_breaks(ModelConfig.from_preset("baseline")) == []
