"""The contagion study: its per-run metrics, its report from a tiny collection of sweeps, and the contagion figures
(smoke: files are written)."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from abm import ModelConfig
from abm.analysis import style
from abm.cli import main
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
from abm.contagion.study import hawkes_metrics, mean_endogenous_share, scenario_breaks
from abm.contagion.study_report import margin_mode, shock_size
from abm.sweep.runner import run_sweep


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
    empty_events = pd.DataFrame({"step": [], "event_id": [], "account": [], "endogenous_share": []})
    empty = hawkes_metrics(empty_events, 100, 0)
    assert set(empty) == {"hawkes_n_counts", "hawkes_n_mle", "hawkes_beta_mle", "hawkes_n_discrete", "hawkes_n_regime"}
    assert all(np.isnan(v) for v in empty.values())
    assert np.isnan(mean_endogenous_share(empty_events))
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(0, 600, 60))
    ev = pd.DataFrame(
        {
            "step": steps,
            "event_id": np.arange(60),
            "account": np.arange(60),
            "endogenous": np.zeros(60, dtype=bool),
            "endogenous_share": np.r_[np.zeros(30), np.ones(30)],
        }
    )
    m = hawkes_metrics(ev, 600, 0)
    assert m["hawkes_n_counts"] < 0.2 and m["hawkes_n_mle"] < 0.2  # Poisson times: little self-excitation
    assert m == hawkes_metrics(ev, 600, 0)  # the jitter comes from the seed
    assert mean_endogenous_share(ev) == 0.5


def test_derived_columns_of_the_study() -> None:
    shocks = [{"kind": "shock", "asset": "ETH", "size": -0.2, "start": 1, "duration": 2}]
    runs = pd.DataFrame(
        {
            "scenario.events": [json.dumps(shocks), json.dumps([])],
            "traders.margin_mode_mix": [json.dumps({"cross": 1.0}), json.dumps({"cross": 0.5, "isolated": 0.5})],
        }
    )
    assert list(shock_size(runs)) == [0.2, 0.0]
    assert list(margin_mode(runs)) == ["cross", "mix"]


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


TINY_LEVERAGE = """
name = "contagion_leverage"
base = "crash"
steps = 60
replicates = 2
base_seed = 4105
[overrides]
"traders.n_traders" = 60
"scenario.events" = [{ kind = "shock", asset = "ETH", size = -0.3, start = 20, duration = 10 }]
[grid]
"traders.max_leverage" = [1.5, 5.0]
[outputs]
tables = ["cascades"]
metrics = ["endogenous_share"]
"""
TINY_HAWKES = """
name = "contagion_hawkes_crash"
base = "crash"
steps = 80
replicates = 2
base_seed = 4110
save_timeseries = [0]
[overrides]
"traders.n_traders" = 150
"traders.max_leverage" = 6.0
"scenario.events" = [{ kind = "shock", asset = "ETH", size = -0.4, start = 20, duration = 20 }]
[outputs]
tables = ["cascades", "events", "hawkes_inputs"]
metrics = ["hawkes", "endogenous_share"]
"""

TINY_SHOCK = """
name = "contagion_shock"
base = "crash"
steps = 50
base_seed = 4101
[overrides]
"traders.n_traders" = 40
[grid]
"scenario.events" = [
    [{ kind = "shock", asset = "ETH", size = -0.1, start = 20, duration = 10 }],
    [{ kind = "shock", asset = "ETH", size = -0.4, start = 20, duration = 10 }],
]
"""


def test_contagion_report_from_a_tiny_collection_of_sweeps(tmp_path: Path) -> None:
    study = tmp_path / "contagion"
    tiny = {"contagion_leverage": TINY_LEVERAGE, "contagion_hawkes_crash": TINY_HAWKES, "contagion_shock": TINY_SHOCK}
    for name, text in tiny.items():
        (tmp_path / f"{name}.toml").write_text(text)
        run_sweep(tmp_path / f"{name}.toml", study / name, workers=1)
    res = CliRunner().invoke(main, ["report", str(study)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"report: {study / 'tables.md'}"
    body = (study / "tables.md").read_text()
    # the sections whose experiments are present, and only those
    assert "## Reflexivity against leverage (preset crash, 60 traders, 60 steps, 2 seeds)" in body
    assert "## Hawkes check" in body and "## Cascade sizes" in body
    assert "Distress against market depth" not in body and "margin" not in body
    # shock sizes read from the grid's scenario events
    assert "## Distress against shock size" in body and "| 0.1 |" in body and "| 0.4 |" in body
    for png in ("leverage.png", "hawkes_vs_truth.png", "cascade_ccdf.png", "distress_vs_shock.png"):
        assert f"(figures/{png})" in body
        assert (study / "figures" / png).stat().st_size > 10_000
    # the leverage table: mean ± sd over seeds of each sweep row's metrics, from runs.parquet
    runs = pd.read_parquet(study / "contagion_leverage" / "runs.parquet")
    high = runs[runs["traders.max_leverage"] == 5.0]
    row = next(line for line in body.splitlines() if line.startswith("| 5 |"))
    assert style.mean_sd(high["n_liquidations"]) in row and style.mean_sd(high["mean_endogenous_share"]) in row
    numbers = json.loads((study / "numbers.json").read_text())
    assert numbers["leverage"]["liquidations"]["5"] == pytest.approx(high["n_liquidations"].mean())
    hawkes = pd.read_csv(study / "hawkes_runs.csv")
    assert len(hawkes) == 2 and set(hawkes["preset"]) == {"crash"}
    # the pooled fit: one branching ratio from both runs' distress onsets (hawkes_inputs tables)
    inputs = pd.read_parquet(study / "contagion_hawkes_crash" / "hawkes_inputs.parquet")
    assert sorted(inputs["run_index"].unique()) == [0, 1] and len(inputs) == 2 * 81
    events = pd.read_parquet(study / "contagion_hawkes_crash" / "events.parquet")
    episodes = events[["run_index", "account", "distress_step"]].drop_duplicates()
    assert inputs["onsets"].sum() == len(episodes) >= 30  # one onset per account and episode; enough to fit
    pooled = numbers["hawkes"]["the same, one fit pooled over the runs"]["crash"]
    assert 0.0 <= pooled < 1.0
    # each sweep got its own report too
    assert (study / "contagion_leverage" / "report.md").exists()
    assert (study / "contagion_hawkes_crash" / "report.md").exists()


def test_report_of_a_folder_without_sweeps_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "nor sweep directories" in res.output
