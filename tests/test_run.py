"""abm.run and RunResult: the documented output contract (docs/model.md), saving and loading."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import abm
from abm import ModelConfig, RunResult
from abm.contagion.liquidation_hawkes import gross_exposure_weights, hawkes_branching_ratio
from abm.errors import UserInputError
from abm.recording.baseline import baseline_crossing_columns
from abm.run import START_POSITIONS_FILE, add_twin

DOCUMENTED_TIMESERIES = ["step", "total_collateral_usd", "total_debt_usd", "aggregate_leverage", "n_liquidations",
                   "liquidation_volume_usd", "bad_debt_usd", "lender_loss_usd", "dilution_usd", "n_liquidatable",
                   "n_active_traders"]  # fmt: skip
DOCUMENTED_EVENTS = ["step", "distress_step", "event_id", "account", "owner", "liquidator", "debt_asset", "repaid", "collateral_asset",
               "seized", "price", "hf_before", "bad_debt_usd", "endogenous"]  # fmt: skip
DOCUMENTED_SUMMARY = ["liquidation_volume_usd", "n_liquidations", "n_accounts_liquidated", "bad_debt_usd",
                "lender_loss_usd", "dilution_usd", "peak_utilisation", "max_borrow_rate", "return_kurtosis",
                "hill_tail_index", "abs_return_acf", "fundamental_return_kurtosis", "fundamental_hill_tail_index",
                "fundamental_abs_return_acf", "max_fourth_moment_share", "hawkes_branching_ratio", "shock_step",
                "pre_shock_liquidations", "utilisation_recovery_steps", "lender_supply_change", "reflexivity_index", "branching_ratio", "largest_cascade",
                "max_cascade_depth", "seed", "steps", "wall_seconds"]  # fmt: skip
PER_ASSET_SUMMARY = ["max_drawdown", "fundamental_drawdown", "pre_shock_max_gap", "pre_shock_mean_gap",
                     "shock_drawdown", "fundamental_shock_drawdown", "amplification"]  # fmt: skip


@pytest.fixture(scope="module")
def crash() -> RunResult:
    return abm.run(ModelConfig.from_preset("crash", {"traders.n_traders": 150}), seed=4, steps=500)


def test_timeseries_has_the_contract_columns(crash: RunResult) -> None:
    ts = crash.timeseries
    for col in DOCUMENTED_TIMESERIES:
        assert col in ts.columns
    for asset in ("ETH", "BTC"):
        for prefix in ("price", "fundamental", "oracle"):
            assert f"{prefix}_{asset}" in ts.columns
    for reserve in ("USD", "ETH", "BTC"):
        for prefix in ("utilisation", "borrow_rate", "supply_rate", "cash", "borrows", "supplied", "reserves"):
            assert f"{prefix}_{reserve}" in ts.columns
    assert len(ts) == 501 and ts["step"].tolist() == list(range(501))


def test_events_and_summary_have_the_contract_names(crash: RunResult) -> None:
    assert list(crash.events.columns[: len(DOCUMENTED_EVENTS)]) != []
    for col in DOCUMENTED_EVENTS:
        assert col in crash.events.columns
    for key in [*DOCUMENTED_SUMMARY, *(f"{k}_{a}" for k in PER_ASSET_SUMMARY for a in ("ETH", "BTC"))]:
        assert key in crash.summary, key
    assert not any(k.startswith(("twin_", "forced_selling_")) for k in crash.summary)  # no twin asked for
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


# --- shock-window metrics, pre-shock checks and the counterfactual twin ----------------------------------------


@pytest.fixture(scope="module")
def twinned() -> RunResult:
    return abm.run(ModelConfig.from_preset("crash", {"traders.n_traders": 200}), seed=2, steps=400, twin="unlevered")


def test_shock_window_keys_agree_with_the_timeseries(twinned: RunResult) -> None:
    s, ts, ev = twinned.summary, twinned.timeseries.set_index("step"), twinned.events
    assert s["shock_step"] == 240  # the crash preset's shocks start at step 240 and last 30 steps
    assert s["pre_shock_liquidations"] == int((ev["step"] < 240).sum())
    for a in ("ETH", "BTC"):
        p, f = ts[f"price_{a}"], ts[f"fundamental_{a}"]
        gap = np.abs(np.log(p / f)).loc[:239]
        assert s[f"pre_shock_max_gap_{a}"] == pytest.approx(gap.max())
        assert s[f"pre_shock_mean_gap_{a}"] == pytest.approx(gap.mean())
        # the window runs from 240 to 270 + 240 steps, cut at the run's last step (400)
        assert s[f"shock_drawdown_{a}"] == pytest.approx(1 - p.loc[240:400].min() / p.loc[239])
        assert s[f"fundamental_shock_drawdown_{a}"] == pytest.approx(1 - f.loc[240:400].min() / f.loc[239])
        assert s[f"amplification_{a}"] == pytest.approx(s[f"shock_drawdown_{a}"] / s[f"fundamental_shock_drawdown_{a}"])
    assert s["fundamental_shock_drawdown_ETH"] > 0.2  # the scripted -25%, give or take the noise
    five = np.diff(np.log(ts["price_ETH"].to_numpy()[::5]))
    assert s["return_kurtosis"] == pytest.approx(stats.kurtosis(five, bias=False))
    five_f = np.diff(np.log(ts["fundamental_ETH"].to_numpy()[::5]))
    assert s["fundamental_return_kurtosis"] == pytest.approx(stats.kurtosis(five_f, bias=False))
    one = np.diff(np.log(ts["price_ETH"].to_numpy()))
    d4 = (one - one.mean()) ** 4
    assert s["max_fourth_moment_share"] == pytest.approx(d4.max() / d4.sum())


def test_hawkes_branching_ratio_fits_the_runs_own_baseline_crossings(twinned: RunResult) -> None:
    model = twinned.model
    assert model is not None and twinned.start_collateral is not None and twinned.start_debt is not None
    np.testing.assert_array_equal(twinned.start_collateral, model.start_collateral)
    np.testing.assert_array_equal(twinned.start_debt, model.start_debt)
    ts = twinned.timeseries
    # the live book's new crossings along the non-liquidation path and its amplifications: none at step 0, some
    # once the crash starts
    crossings = ts[baseline_crossing_columns()].to_numpy()
    assert crossings.dtype.kind == "i" and (crossings >= 0).all() and (crossings[0] == 0).all()
    assert (crossings[: twinned.summary["shock_step"]].sum(axis=0) < crossings.sum(axis=0)).all()
    fundamental = np.column_stack([np.ones(len(ts)), ts["fundamental_ETH"], ts["fundamental_BTC"]])
    onsets = twinned.events[["account", "distress_step"]].drop_duplicates()["distress_step"].to_numpy()
    assert (twinned.events["distress_step"] <= twinned.events["step"]).all()
    weights = gross_exposure_weights(model.start_collateral, model.start_debt, fundamental[0])
    expected = hawkes_branching_ratio(np.sort(onsets), crossings, fundamental, weights)
    assert len(onsets) >= 30 and math.isfinite(expected)
    assert twinned.summary["hawkes_branching_ratio"] == pytest.approx(expected)


def test_a_run_saved_without_baseline_crossings_has_no_hawkes_estimate(twinned: RunResult) -> None:
    from abm.sweep.outputs import TABLES

    old = replace(twinned, timeseries=twinned.timeseries.drop(columns=baseline_crossing_columns()))
    s = old.table_summary()
    assert s["hawkes_branching_ratio"] is None
    assert s["n_liquidations"] == twinned.summary["n_liquidations"]  # the rest of the summary stays
    assert TABLES["hawkes_inputs"](old).empty


def test_unlevered_twin_sees_the_same_news_and_gives_the_forced_selling_drawdown(twinned: RunResult) -> None:
    twin = twinned.twin
    assert twin is not None
    assert twin.config.traders.max_leverage == 1.0 and twin.config.traders.leverage_min == 1.0
    assert twin.config.model_dump(exclude={"traders"}) == twinned.config.model_dump(exclude={"traders"})
    assert twin.seed == twinned.seed and twin.steps == twinned.steps
    cols = [c for c in twinned.timeseries.columns if c.startswith("fundamental_")]
    assert cols == ["fundamental_ETH", "fundamental_BTC"]
    pd.testing.assert_frame_equal(twin.timeseries[cols], twinned.timeseries[cols], check_exact=True)
    assert twin.summary["n_liquidations"] == 0 and twinned.summary["n_liquidations"] > 0
    s = twinned.summary
    for a in ("ETH", "BTC"):
        assert s[f"twin_shock_drawdown_{a}"] == twin.summary[f"shock_drawdown_{a}"]
        assert s[f"forced_selling_drawdown_{a}"] == s[f"shock_drawdown_{a}"] - s[f"twin_shock_drawdown_{a}"]
    assert s["forced_selling_drawdown_ETH"] > 0.05  # forced sales deepened the crash by more than 5 points


def test_a_twin_with_other_fundamentals_is_refused(twinned: RunResult) -> None:
    assert twinned.twin is not None
    other = twinned.twin.timeseries.copy()
    other.loc[300, "fundamental_BTC"] = np.nextafter(other.loc[300, "fundamental_BTC"], 0.0)  # one bit
    stranger = replace(twinned.twin, timeseries=other)
    mine = replace(twinned, summary=dict(twinned.summary))
    with pytest.raises(RuntimeError, match="saw different fundamentals"):
        add_twin(mine, stranger, "unlevered")


def test_bad_twin_is_a_one_line_user_error() -> None:
    with pytest.raises(UserInputError, match=r"^twin = 'levered': must be one of 'unlevered'") as info:
        abm.run("crash", twin="levered")
    assert "\n" not in str(info.value)


def test_a_run_without_a_shock_has_no_shock_metrics() -> None:
    calm = abm.run(ModelConfig.from_preset("baseline", {"traders.n_traders": 200}), seed=1, steps=100)
    s = calm.summary
    assert s["shock_step"] is None and s["pre_shock_liquidations"] is None
    for key in PER_ASSET_SUMMARY[2:]:
        assert s[f"{key}_ETH"] is None, key
    assert s["hawkes_branching_ratio"] is None  # fewer than 30 liquidations
    assert s["max_drawdown_ETH"] is not None  # the whole-run drawdowns stay


def test_saved_run_keeps_its_start_positions_and_summary(twinned: RunResult, tmp_path) -> None:
    out = twinned.save(tmp_path / "run", figures=False)
    assert (out / START_POSITIONS_FILE).is_file()
    back = RunResult.load(out)
    assert back.summary == json.loads(json.dumps(twinned.summary))  # no NaN: undefined values are None
    assert back.summary == twinned.summary
    np.testing.assert_array_equal(back.start_debt, twinned.start_debt)
    assert back.table_summary() == twinned.table_summary()
    assert back.table_summary().items() <= back.summary.items()


def test_hawkes_inputs_table_reproduces_the_summary_fit(twinned: RunResult) -> None:
    from abm.contagion.hawkes import fit_hawkes_exogenous
    from abm.sweep.outputs import TABLES

    table = TABLES["hawkes_inputs"](twinned)
    assert list(table["step"]) == list(range(len(twinned.timeseries)))
    episodes = twinned.events[["account", "distress_step"]].drop_duplicates()
    assert table["onsets"].sum() == len(episodes)
    covariates = table.drop(columns=["step", "onsets"])
    assert covariates.columns[0] == "cross_x1_lag0" and covariates.columns[-1] == "abs_return_lag1"
    lagged = table["cross_x1.5_lag2"].to_numpy()
    np.testing.assert_array_equal(lagged[2:], twinned.timeseries["baseline_crossings_x1.5"].to_numpy()[:-2])
    fit = fit_hawkes_exogenous(table["onsets"].to_numpy(), covariates.to_numpy())
    assert fit.n == pytest.approx(twinned.summary["hawkes_branching_ratio"])


def test_a_run_holds_blas_to_one_thread_and_gives_the_threads_back() -> None:
    """Inside `one_blas_thread` (every `run`) each BLAS library runs one thread, as in a sweep worker; after it,
    the caller's setting is back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from abm.run import one_blas_thread

    with threadpool_limits(2, user_api="blas"):
        with one_blas_thread():
            inside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert inside and all(n == 1 for n in inside)
    assert after == [2] * len(after)
