"""Staking collateral wired into the model (docs/model.md, 3.3 Submodels: Staking collateral and looping): loopers
reach their leverage, a depeg with no base-price move liquidates looped accounts and no others, the staked token's
supply is conserved, its news is its base's, and with `lst` off a run is what it was."""

from __future__ import annotations

import re
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from abm import ModelConfig, ReflexivityModel
from abm import protocol as P
from abm.agents.looper import looper_leverages
from abm.analysis.staking import looped_accounts
from abm.contagion.exposure import exposure_arrays
from abm.contagion.staking_channel import PegExposure, staking_channel
from abm.errors import ConfigError
from abm.invariants import Ledgers
from abm.run import run

SMALL = {"traders.n_traders": 60, "lst.n_loopers": 20}
# no news on the risky assets: the base asset's price moves only if the model moves it
STILL = {f"assets.{a}.volatility": 0.0 for a in ("ETH", "BTC", "stETH")}


def depeg(size: float, start: int = 5, duration: int = 30) -> dict[str, object]:
    return {
        "scenario.events": [{"kind": "shock", "asset": "stETH", "size": size, "start": start, "duration": duration}]
    }


def test_loopers_reach_the_target_leverage_and_the_health_the_formula_gives() -> None:
    config = ModelConfig.from_preset("lst_depeg", {**SMALL, "lst.loop_leverage": 6.0, "lst.leverage_spread": 0.0})
    model = ReflexivityModel(config, rng=0)
    oracle = model.oracle.prices
    lt = config.reserve("stETH").liquidation_threshold
    for looper in model.loopers:
        assert looper.leverage(oracle) == pytest.approx(6.0, rel=1e-9)
        hf = model.engine.account_health(looper.account, oracle)
        assert hf == pytest.approx(float(P.looped_health_factor(1.0, 6.0, lt)), rel=1e-9)
    # the flash loan replaces 7 deposit-borrow-buy rounds: hand-computed, 7 loops at LTV 0.93 give
    # (1 - 0.93^8) / 0.07 = 6.291, 6 loops (1 - 0.93^7) / 0.07 = 5.690
    assert model.loopers[0].loops(6.0) == 7
    assert P.loop_leverage(0.93, 7) == pytest.approx(6.291, abs=1e-3) and P.loop_leverage(0.93, 6) < 6.0
    # spread: evenly spaced on L x [0.75, 1.25], mean L
    lev = looper_leverages(8.0, 0.25, 5)
    np.testing.assert_allclose(lev, [6.0, 7.0, 8.0, 9.0, 10.0])
    spread = ReflexivityModel(config.with_overrides({"lst.leverage_spread": 0.25}), rng=0)
    got = np.array([looper.leverage(spread.oracle.prices) for looper in spread.loopers])
    np.testing.assert_allclose(got, looper_leverages(6.0, 0.25, 20), rtol=1e-9)


@pytest.fixture(scope="module")
def depegged() -> dict[float, object]:
    """A 6% depeg over 30 steps with the base asset still, loopers at leverage 11 and 2 (no spread)."""
    out = {}
    for leverage in (11.0, 2.0):
        overrides = {**SMALL, **STILL, **depeg(-0.06), "lst.loop_leverage": leverage, "lst.leverage_spread": 0.0}
        config = ModelConfig.from_preset("lst_depeg", {**overrides, "check_invariants": True})
        out[leverage] = run(config, seed=2, steps=120)
    return out


def test_a_depeg_without_a_base_move_liquidates_looped_accounts_and_no_others(depegged) -> None:
    high, low = depegged[11.0], depegged[2.0]
    fundamental_eth = high.timeseries["fundamental_ETH"].to_numpy()
    assert np.all(fundamental_eth == fundamental_eth[0])  # the base asset did not move
    looped = set(looped_accounts(high.config, high.start_collateral, high.start_debt).tolist())
    assert len(looped) == 20
    liquidated = set(high.events["account"].astype(int).tolist())
    # at leverage 11 and LT 0.95 HF = 1 at a peg of 10 / (11 x 0.95) = 0.957: the 6% depeg reaches it
    assert float(P.looped_liquidation_ratio(11.0, 0.95)) > 0.94
    assert looped <= liquidated and not liquidated - looped
    assert high.summary["lst_accounts_liquidated_share"] == 1.0 and high.summary["unlooped_accounts_liquidated"] == 0
    assert set(high.events["collateral_asset"]) == {"stETH"} and set(high.events["debt_asset"]) == {"ETH"}
    # their sales deepened the depeg beyond the scripted 6%
    assert high.summary["lst_fundamental_peg_min"] == pytest.approx(0.94, abs=1e-9)
    assert high.summary["lst_peg_min"] < 0.94 - 0.005 and high.summary["lst_extra_discount"] > 0.005
    # at leverage 2 the same depeg liquidates nobody and the market peg is the scripted one
    assert len(low.events) == 0 and low.summary["lst_accounts_liquidated_share"] == 0.0
    assert low.summary["lst_peg_min"] == pytest.approx(0.94, abs=2e-3)


def test_the_staked_token_supply_is_conserved(depegged) -> None:
    model = depegged[11.0].model
    token = model.symbols.index("stETH")
    now, start = Ledgers.of(model), model.initial_ledgers
    # minted (handed out by the outside world) = held in wallets, accounts and the pool, at the start and now
    assert start.inside()[token] > 0 and -start.market[token] == pytest.approx(start.inside()[token], rel=1e-12)
    assert now.totals()[token] == pytest.approx(start.totals()[token], abs=1e-9 * start.inside()[token])
    # the liquidators sold what they seized: the looped collateral went back to the outside world
    assert now.collateral[token] < 0.5 * start.collateral[token]


def test_the_staked_token_follows_its_base_and_leaves_the_other_news_alone() -> None:
    with_lst = ReflexivityModel(ModelConfig.from_preset("lst_depeg", SMALL), rng=4, steps=50)
    plain = ModelConfig.from_preset("baseline", {"traders.n_traders": 60})
    without = ReflexivityModel(plain, rng=4, steps=50)
    for _ in range(50):
        with_lst.fundamentals.step(with_lst.steps)
        without.fundamentals.step(without.steps)
        with_lst.steps += 1
        without.steps += 1
    f, g = with_lst.fundamentals.log_f, without.fundamentals.log_f
    np.testing.assert_array_equal(f[:3], g)  # USD, ETH, BTC: the same news with or without the staked token
    growth = np.log1p(float(P.per_step_rate(0.04, 60.0)))
    assert f[3] - f[1] == pytest.approx(50 * growth, rel=1e-9)  # stETH = ETH x exchange rate, at par
    assert np.exp(f[3] - f[1]) == pytest.approx(float(P.lst_exchange_rate(1.0, 0.04, 50, 60.0)), rel=1e-12)


def test_with_lst_off_a_run_is_what_it_always_was() -> None:
    small = {"traders.n_traders": 150}
    default = run(ModelConfig.from_preset("crash", small), seed=3, steps=280)
    off = {"lst.enabled": False, "lst.loop_leverage": 9.0, "lst.n_loopers": 7, "lst.staking_apr": 0.2}
    disabled = run(ModelConfig.from_preset("crash", {**small, **off}), seed=3, steps=280)
    assert disabled.model is not None and not disabled.model.loopers and disabled.model.staked_pair is None
    pd.testing.assert_frame_equal(default.timeseries, disabled.timeseries, check_exact=True)
    pd.testing.assert_frame_equal(default.events, disabled.events, check_exact=True)
    assert "lst_peg_min" not in disabled.summary
    timeless = [{k: v for k, v in r.summary.items() if k != "wall_seconds"} for r in (default, disabled)]
    assert timeless[0] == timeless[1]


def test_the_exposure_graph_shows_the_staked_token_as_the_channel() -> None:
    def channel(leverage: float) -> dict[str, float]:
        config = ModelConfig.from_preset("lst_depeg", {**SMALL, "lst.loop_leverage": leverage})
        return staking_channel(ReflexivityModel(config, rng=0))

    low, high = channel(2.0), channel(8.0)
    assert 0 < low["lst_impact_share"] < high["lst_impact_share"]
    assert low["depeg_distress_looped"] < high["depeg_distress_looped"]
    assert high["depeg_distress_looped"] > 10 * high["depeg_distress_unlooped"]
    # the depeg's second-round distress split by the asset side it travels on (the token read as ETH x the peg):
    # with loops of 8 most of it travels on the token's edges, more than with loops of 2; the rest on ETH's
    assert (
        0.5 < high["depeg_lst_channel_share"] < 1.0 and low["depeg_lst_channel_share"] < high["depeg_lst_channel_share"]
    )
    for c in (low, high):
        assert c["depeg_lst_channel_share"] + c["depeg_base_channel_share"] == pytest.approx(1.0, abs=0.02)
        # nobody outside the loop holds the token, so what reaches the unlooped accounts arrives on other edges
        assert c["depeg_unlooped_lst_channel_share"] == 0.0
        assert 0 < c["depeg_distress_unlooped_without_lst"] <= c["depeg_distress_unlooped"] + 1e-12


def test_peg_exposure_reads_a_loop_as_long_the_peg_and_long_its_equity_in_the_base_asset() -> None:
    config = ModelConfig.from_preset("lst_depeg", {**SMALL, "lst.loop_leverage": 8.0})
    arrays = exposure_arrays(ReflexivityModel(config, rng=0))
    token, base = config.symbols.index("stETH"), config.symbols.index("ETH")
    peg = PegExposure(**{f.name: getattr(arrays, f.name) for f in fields(arrays)}, token=token, base=base)
    looped = (arrays.coll_usd[:, token] > 0) & (arrays.debt_usd[:, base] > 0)
    net = peg.net_risky[looped]
    coll = arrays.coll_usd[looped, token]
    assert net[:, token - 1] == pytest.approx(coll)  # the peg: all of the token
    assert net[:, base - 1] == pytest.approx(arrays.net_risky[looped, base - 1] + coll)  # the token counts as ETH
    assert (net[:, base - 1] < 0.2 * coll).all()  # the base asset: about the equity, an eighth of the collateral
    assert peg.equity == pytest.approx(arrays.equity)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lst.loop_leverage": 12.0}, "lst.loop_leverage x (1 + lst.leverage_spread) = 15 must be < 1 / (1 - ltv)"),
        ({"assets.stETH.price": 3100.0}, "assets.stETH.price = 3100.0 must equal assets.ETH.price x lst.exchange_rate"),
        ({"lst.symbol": "ETH"}, "lst.symbol = 'ETH' must be the last asset in assets"),
        ({"lst.base": "stETH"}, "lst.base = 'stETH' must be another risky asset"),
    ],
)
def test_bad_staking_settings_are_one_line_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        ModelConfig.from_preset("lst_depeg", overrides)
    assert "\n" not in str(err.value)


def test_the_teaching_page_lists_the_preset_and_its_loop_leverage_control() -> None:
    from abm.app.controls import SECTIONS, visible_sections
    from abm.app.sim import Controls, build_config
    from abm.config import preset_descriptions

    assert "lst_depeg" in preset_descriptions()  # the scenario picker lists every preset
    lst_fields = {spec.field for section in SECTIONS if section.needs_lst for spec in section.sliders}
    assert lst_fields == {"loop_leverage"}
    assert lst_fields <= {spec.field for section in visible_sections(False, True) for spec in section.sliders}
    assert not lst_fields & {spec.field for section in visible_sections(False) for spec in section.sliders}
    c = Controls.from_preset("lst_depeg")
    assert c.loop_leverage == 8.0 and build_config(c.replace(loop_leverage=5.0)).lst.loop_leverage == 5.0
    crash = Controls.from_preset("crash")
    assert build_config(crash.replace(loop_leverage=5.0)) == build_config(crash)  # no loopers: nothing changes


def test_the_staking_summary_is_the_same_after_save_and_load(depegged, tmp_path) -> None:
    from abm.run import RunResult

    high = depegged[11.0]
    high.save(tmp_path / "run")
    loaded = RunResult.load(tmp_path / "run").table_summary()
    keys = [k for k in high.summary if k.startswith(("lst_", "looper", "looped", "unlooped"))]
    assert len(keys) == 9 and {k: loaded[k] for k in keys} == {k: high.summary[k] for k in keys}


def test_a_loop_during_the_run_trades_both_markets_and_reverts_beyond_the_ltv() -> None:
    model = ReflexivityModel(ModelConfig.from_preset("lst_depeg", SMALL), rng=0)
    engine, market, oracle = model.engine, model.market, model.oracle.prices
    eth, steth = model.symbols.index("ETH"), model.symbols.index("stETH")
    holder = model.loopers[0].holder
    acct = engine.open_account(holder, "cross")
    model.wallets.fund_from_world(market, holder, 0, 1.0e6)
    before = market.prices.copy()
    # borrowing 13.5x the equity makes a 14.5x loop, past the E-mode limit 1 / (1 - 0.93) = 14.3: nothing changes
    too_much = 13.5 * 1.0e6 / float(oracle[eth])
    assert not engine.lever_loop(acct, steth, eth, too_much, 1.0e6, oracle, step=0)
    assert not engine.collateral[acct].any() and not engine.scaled_debt[acct].any()
    np.testing.assert_array_equal(market.prices, before)
    assert engine.lever_loop(acct, steth, eth, 4.0 * 1.0e6 / float(oracle[eth]), 1.0e6, oracle, step=0)
    assert engine.debt_tokens(acct)[eth] == pytest.approx(4.0e6 / float(oracle[eth]))
    # selling the borrowed ETH and buying stETH moved both markets; the impact paid comes out of the equity, so at
    # the (unmoved) oracle the loop is a little above 5x
    assert market.prices[eth] < before[eth] and market.prices[steth] > before[steth]
    lev = float(engine.collateral[acct] @ oracle) / float(engine.account_equity(oracle, [acct])[0])
    assert 5.0 < lev < 5.2 and model.wallets.balance(holder, 0) == 0.0
