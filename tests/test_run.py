"""abm.run and RunResult: the output contract of SPEC 5, saving and loading."""

from __future__ import annotations

import json

import networkx as nx
import pandas as pd
import pytest

import abm
from abm import ModelConfig, RunResult

SPEC_TIMESERIES = ["step", "total_collateral_usd", "total_debt_usd", "aggregate_leverage", "n_liquidations",
                   "liquidation_volume_usd", "bad_debt_usd", "lender_loss_usd", "dilution_usd", "n_liquidatable",
                   "n_active_traders"]  # fmt: skip
SPEC_EVENTS = ["step", "event_id", "account", "owner", "liquidator", "debt_asset", "repaid", "collateral_asset",
               "seized", "price", "hf_before", "bad_debt_usd", "endogenous"]  # fmt: skip
SPEC_SUMMARY = ["liquidation_volume_usd", "n_liquidations", "n_accounts_liquidated", "bad_debt_usd",
                "lender_loss_usd", "dilution_usd", "peak_utilisation", "max_borrow_rate", "return_kurtosis",
                "hill_tail_index", "abs_return_acf", "reflexivity_index", "branching_ratio", "largest_cascade",
                "max_cascade_depth", "seed", "steps", "wall_seconds"]  # fmt: skip


@pytest.fixture(scope="module")
def crash() -> RunResult:
    return abm.run(ModelConfig.from_preset("crash", {"traders.n_traders": 150}), seed=4, steps=500)


def test_timeseries_has_the_contract_columns(crash: RunResult) -> None:
    ts = crash.timeseries
    for col in SPEC_TIMESERIES:
        assert col in ts.columns
    for asset in ("ETH", "BTC"):
        for prefix in ("price", "fundamental", "oracle"):
            assert f"{prefix}_{asset}" in ts.columns
    for reserve in ("USD", "ETH", "BTC"):
        for prefix in ("utilisation", "borrow_rate", "supply_rate", "cash", "borrows", "supplied", "reserves"):
            assert f"{prefix}_{reserve}" in ts.columns
    assert len(ts) == 501 and ts["step"].tolist() == list(range(501))


def test_events_and_summary_have_the_contract_names(crash: RunResult) -> None:
    assert list(crash.events.columns[: len(SPEC_EVENTS)]) != []
    for col in SPEC_EVENTS:
        assert col in crash.events.columns
    for key in [*SPEC_SUMMARY, "max_drawdown_ETH", "amplification_ETH", "max_drawdown_BTC", "amplification_BTC"]:
        assert key in crash.summary
    assert crash.summary["n_liquidations"] == len(crash.events)
    assert crash.summary["liquidation_volume_usd"] == pytest.approx(crash.timeseries["liquidation_volume_usd"].sum())
    assert isinstance(crash.cascade, nx.DiGraph)
    assert crash.cascade.number_of_nodes() == len(crash.events)
    assert 0.0 <= crash.summary["reflexivity_index"] <= 1.0


def test_summary_carries_the_distress_metrics(crash: RunResult) -> None:
    s = crash.summary
    model = crash.model
    assert model is not None
    with_debt = model.start_equity.has_debt
    assert s["n_accounts_with_debt"] == int(with_debt.sum()) > 0
    liquidated = crash.events["account"].unique()
    from_start = [a for a in liquidated if a < len(with_debt) and with_debt[a]]
    assert len(crash.events) > 0 and len(from_start) > 0
    assert s["share_accounts_liquidated"] == pytest.approx(len(from_start) / s["n_accounts_with_debt"])
    for key in (
        "share_accounts_wiped_out",
        "share_traders_wiped_out",
        "share_equity_lost",
        "share_positions_liquidated",
    ):
        assert 0.0 <= s[key] <= 1.0, key
    assert s["share_equity_lost"] > 0  # a 25% shock on leveraged longs costs equity
    calm = abm.run(ModelConfig.from_preset("baseline", {"traders.n_traders": 150}), seed=4, steps=60)
    assert calm.summary["n_liquidations"] == 0  # an hour of a calm market
    assert calm.summary["share_accounts_liquidated"] == 0.0 and calm.summary["positions_liquidated"] == 0


def test_bad_debt_in_events_matches_the_write_offs(crash: RunResult) -> None:
    assert crash.events["bad_debt_usd"].sum() <= crash.write_offs["amount_usd"].sum() + 1e-6
    assert crash.summary["bad_debt_usd"] == pytest.approx(crash.write_offs["amount_usd"].sum())


def test_save_writes_every_artefact_and_load_round_trips(crash: RunResult, tmp_path) -> None:
    out = crash.save(tmp_path / "run", figures=True)
    for name in ("timeseries.parquet", "events.parquet", "summary.json", "config.toml", "cascade.graphml"):
        assert (out / name).is_file()
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == sorted(
        ["prices.png", "liquidations.png", "pool.png", "health_factor.png", "leverage.png", "bad_debt.png"]
    )
    back = RunResult.load(out)
    pd.testing.assert_frame_equal(back.timeseries, crash.timeseries)
    pd.testing.assert_frame_equal(back.events, crash.events)
    assert back.config == crash.config
    assert json.loads((out / "summary.json").read_text())["seed"] == 4
    assert back.cascade.number_of_edges() == crash.cascade.number_of_edges()


def test_saved_config_reruns_to_the_same_result(crash: RunResult, tmp_path) -> None:
    out = crash.save(tmp_path / "run", figures=False)
    again = abm.run(ModelConfig.from_toml(out / "config.toml"), seed=4, steps=500, keep_model=False)
    pd.testing.assert_frame_equal(again.timeseries, crash.timeseries, check_exact=True)


def test_save_is_atomic_when_writing_fails(crash: RunResult, tmp_path, monkeypatch) -> None:
    import abm.analysis.figures as figures

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "run_figures", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        crash.save(tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert list(tmp_path.iterdir()) == []
