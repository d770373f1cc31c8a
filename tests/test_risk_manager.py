"""The RiskManager in the model: LTV and LT follow the volatility of its feed in bounded steps, through the
one place parameters change (`ReflexivityModel.change_parameters`), and a run without it is what it always was.

Sources: Aave Risk Stewards (50 bps per update, a minimum delay between changes); Aave v3 WETH 0.80 / 0.825 and
WBTC 0.73 / 0.78 (the presets, docs/calibration.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import abm
from abm import ModelConfig, ReflexivityModel
from abm import protocol as P
from abm.errors import ConfigError
from abm.recording.recorder import risk_columns, timeseries_columns

RISKY = ("ETH", "BTC")
SMALL = {"traders.n_traders": 40}


@pytest.fixture(scope="module")
def fast_crash() -> abm.RunResult:
    """The crash (shock at step 240) with a manager allowed to change every 5 steps, invariants checked each step;
    its feed is the default, its own 5-minute EWMA of the market price, which may also cut on calm-day minute noise."""
    overrides = SMALL | {"risk_manager.enabled": True, "risk_manager.cadence_steps": 5, "check_invariants": True}
    return abm.run(ModelConfig.from_preset("crash", overrides), seed=3, steps=330)


def test_lt_falls_when_volatility_rises_in_bounded_steps(fast_crash: abm.RunResult) -> None:
    ts, cfg = fast_crash.timeseries, fast_crash.config
    rm = cfg.risk_manager
    for a in RISKY:
        lt = ts[f"liquidation_threshold_{a}"].to_numpy()
        ltv = ts[f"ltv_{a}"].to_numpy()
        res = cfg.reserve(a)
        assert lt.max() <= res.liquidation_threshold  # the ceiling holds (max_raise 0)
        if a == "ETH":  # ETH's -25% took its volatility past the 91%/yr where the target crosses 0.825
            assert lt[240:].min() < res.liquidation_threshold - 0.02
        step = np.diff(lt)
        assert np.all(np.abs(step) <= rm.max_change + 1e-12)  # never more than the bound per update
        changed = np.flatnonzero(step != 0) + 1
        assert np.all(np.diff(changed) >= rm.cadence_steps)  # never more often than the cadence
        assert np.all(lt > ltv)  # LT above LTV at every step, the configured gap kept
        np.testing.assert_allclose(lt - ltv, res.liquidation_threshold - res.ltv, atol=1e-12)
        assert lt.min() >= res.liquidation_threshold - rm.max_cut - 1e-12  # within the bounds
        assert np.all(lt * (1 + res.liquidation_bonus) < 1)
    summary = fast_crash.summary
    assert summary["first_risk_change_step"] > 0
    assert summary["min_liquidation_threshold_ETH"] == ts["liquidation_threshold_ETH"].min()


def test_the_pool_and_the_margin_engine_use_the_new_parameters(fast_crash: abm.RunResult) -> None:
    model = fast_crash.model
    assert model is not None
    ts = fast_crash.timeseries
    eth = model.symbols.index("ETH")
    assert model.pool.liquidation_threshold[eth] == ts["liquidation_threshold_ETH"].iloc[-1]
    assert model.config.reserve("ETH").ltv == ts["ltv_ETH"].iloc[-1]  # written into the configuration
    lt_eff, ltv_eff = model.engine._effective_params()
    assert lt_eff[eth] == model.pool.liquidation_threshold[eth] and ltv_eff[eth] == model.pool.ltv[eth]
    np.testing.assert_allclose(model.engine.scenarios[eth, 0], -(1 - model.pool.liquidation_threshold[eth]))
    # capacity: the same positions' under the configured LTVs wherever both LTVs stand configured, less elsewhere
    # (the feed may cut on calm-day noise and go back up, so this holds step by step, not before / after one step)
    cut = np.zeros(len(ts), dtype=bool)
    for a in RISKY:
        cut |= ts[f"ltv_{a}"].to_numpy() < fast_crash.config.reserve(a).ltv  # the run's configured LTV
    capacity, static = ts["borrow_capacity_usd"].to_numpy(), ts["static_borrow_capacity_usd"].to_numpy()
    np.testing.assert_array_equal(capacity[~cut], static[~cut])
    assert cut.any() and np.all(capacity[cut] < static[cut])
    assert fast_crash.summary["borrow_capacity_cost"] > 0


def test_an_account_above_the_new_ltv_is_not_closed_but_cannot_borrow_more() -> None:
    model = ReflexivityModel(ModelConfig.from_preset("crash", SMALL | {"risk_manager.enabled": True}), rng=0)
    engine, pool, eth = model.engine, model.pool, 1
    prices = model.oracle.prices
    acct = engine.open_account(0)
    tokens = 10.0
    engine.collateral[acct, eth] = tokens  # a long at 79% of its collateral: inside LTV 0.80, HF 1.04
    engine.scaled_debt[acct, 0] = 0.79 * tokens * prices[eth] / pool.borrow_index[0]
    model.wallets.fund_from_world(model.market, 0, 0, 1000.0)
    model.change_parameters({"pool.reserves.ETH.ltv": 0.75, "pool.reserves.ETH.liquidation_threshold": 0.81})
    assert engine.borrow_headroom_usd(acct, prices) < 0  # above the new LTV
    assert engine.account_health(acct, prices) > 1.0  # but not liquidatable: LT decides that
    assert engine.plan_liquidation(acct, prices) is None
    debt = engine.scaled_debt[acct, 0]
    assert not engine.lever_long(acct, eth, 100.0, 0.0, prices, model.steps)  # new borrowing refused
    assert engine.scaled_debt[acct, 0] == debt


def test_an_idle_manager_changes_nothing_and_off_adds_no_columns() -> None:
    # a target above the configured thresholds (k_sigma tiny) with the configured values as a ceiling: on, but idle
    cfg = ModelConfig.from_preset("crash", SMALL)
    off = abm.run(cfg, seed=1, steps=300)
    idle = abm.run(cfg.with_overrides({"risk_manager.enabled": True, "risk_manager.k_sigma": 0.01}), seed=1, steps=300)
    assert idle.summary["risk_parameter_changes"] == 0 and idle.summary["borrow_capacity_cost"] == 0.0
    assert list(off.timeseries.columns) == timeseries_columns(cfg.symbols)
    assert list(idle.timeseries.columns) == timeseries_columns(cfg.symbols) + risk_columns(cfg.symbols)
    pd.testing.assert_frame_equal(idle.timeseries[off.timeseries.columns], off.timeseries)
    pd.testing.assert_frame_equal(idle.events, off.events)
    # off, the section's other values are never read
    other = abm.run(
        cfg.with_overrides({"risk_manager.cadence_steps": 1, "risk_manager.max_cut": 0.5}), seed=1, steps=300
    )
    pd.testing.assert_frame_equal(other.timeseries, off.timeseries)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"risk_manager.cadence_steps": 0}, "risk_manager.cadence_steps = 0"),
        ({"risk_manager.max_change": 1.0}, "risk_manager.max_change = 1.0"),
        ({"risk_manager.enabled": True, "risk_manager.max_cut": 0.0}, "max_cut = 0 and max_raise = 0"),
        (
            {
                "risk_manager.enabled": True,
                "scenario.events": [{"kind": "set", "step": 5, "parameter": "pool.reserves.ETH.ltv", "value": 0.7}],
            },
            "scenario.events[0].parameter = 'pool.reserves.ETH.ltv'",
        ),
    ],
)
def test_bad_settings_are_one_line_errors(overrides: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_preset("crash", overrides)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_teaching_page_switch_turns_the_manager_on_and_off() -> None:
    from abm.app.sim import Controls, build_config

    crash = Controls.from_preset("crash")
    assert not crash.risk_manager and build_config(crash) == build_config(crash.replace(risk_manager=False))
    on = build_config(crash.replace(risk_manager=True)).risk_manager
    preset = ModelConfig.from_preset("dynamic_margin").risk_manager
    assert on.enabled and on.cadence_steps == 1  # the dynamic_margin preset's manager
    assert on.vol_feed == preset.vol_feed and on.vol_half_life_steps == preset.vol_half_life_steps  # and its feed
    dynamic = Controls.from_preset("dynamic_margin")
    assert dynamic.risk_manager and not build_config(dynamic.replace(risk_manager=False)).risk_manager.enabled


def test_set_events_of_one_step_are_checked_together_as_the_model_applies_them() -> None:
    # cutting LT below the old LTV is valid in the step that cuts the LTV too (the 'instant cut' of the experiment)
    cut = [
        {"kind": "set", "step": 3, "parameter": "pool.reserves.ETH.ltv", "value": 0.70},
        {"kind": "set", "step": 3, "parameter": "pool.reserves.ETH.liquidation_threshold", "value": 0.725},
    ]
    model = ReflexivityModel(ModelConfig.from_preset("crash", SMALL | {"scenario.events": cut}), rng=0, steps=4)
    for _ in range(3):
        model.step()
    assert (model.pool.ltv[1], model.pool.liquidation_threshold[1]) == (0.70, 0.725)
    assert model.engine._effective_params()[0][1] == 0.725
    # the threshold cut a step before the LTV's is refused: for one step LT would be below LTV
    with pytest.raises(ConfigError, match=r"scenario.events\[0\] \(at step 3\)") as err:
        ModelConfig.from_preset("crash", {"scenario.events": [cut[1], {**cut[0], "step": 4}]})
    assert "\n" not in str(err.value)


def test_its_own_feed_reads_the_shock_in_its_first_minutes() -> None:
    """vol_feed 'market' / 'oracle': the manager's own 5-minute EWMA of the market / oracle price (recomputed here
    from the recorded prices) answers the -25% crash at once, where the market's one-day EWMA waits."""
    base = ModelConfig.from_preset("crash", SMALL | {"risk_manager.enabled": True, "risk_manager.cadence_steps": 1})
    first = {}
    for feed in ("realised", "market", "oracle"):
        # 'market' is the default: the manager reads its own feed of the market price unless told otherwise
        cfg = base.with_overrides(
            {"check_invariants": True} | ({} if feed == "market" else {"risk_manager.vol_feed": feed})
        )
        res = abm.run(cfg, seed=3, steps=260)
        lt = res.timeseries["liquidation_threshold_ETH"].to_numpy()
        assert np.all(np.abs(np.diff(lt)) <= cfg.risk_manager.max_change + 1e-12)  # still bounded per update
        shock = res.timeseries["step"].to_numpy() >= 240
        first[feed] = int(np.flatnonzero(shock & (np.diff(lt, prepend=lt[0]) < 0))[0])
        rm = res.model.risk_manager
        if feed == "realised":
            assert rm.feed_log_price is None  # the market's EWMA: no feed of its own
            continue
        # row k of the table holds the prices the manager read at step k (the end of step k - 1)
        column = res.timeseries["price_ETH" if feed == "market" else "oracle_ETH"].to_numpy()
        log_p = np.log(column)
        var = res.model.market.sigma_ref[1] ** 2 / res.model.market.steps_per_year
        for k in range(1, len(log_p) - 1):
            var = P.ewma_variance(var, log_p[k] - log_p[k - 1], cfg.risk_manager.vol_half_life_steps)
        assert rm.feed_var[1] == pytest.approx(float(var), rel=1e-9)
    assert first["market"] <= 243 and first["oracle"] <= 244  # within a few minutes of the shock at step 240
    assert first["realised"] >= first["market"] + 4  # the one-day EWMA takes several minutes more


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"risk_manager.vol_feed": "fast"}, "risk_manager.vol_feed = 'fast'"),
        ({"risk_manager.vol_half_life_steps": 0.0}, "risk_manager.vol_half_life_steps = 0.0"),
    ],
)
def test_bad_feed_settings_are_one_line_errors(overrides: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_preset("crash", overrides)
    assert expected in str(err.value) and "\n" not in str(err.value)
