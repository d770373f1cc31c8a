"""Shock-window metrics and pre-shock checks (abm.analysis.shock_window) and the stylised facts beside them
(abm.analysis.metrics), on hand-made series with worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from abm.analysis.metrics import max_fourth_moment_share, stylised_facts
from abm.analysis.shock_window import (
    SHOCK_HORIZON_STEPS,
    ShockWindow,
    forced_selling_drawdown,
    pre_shock_liquidations,
    pre_shock_max_gap,
    pre_shock_mean_gap,
    pre_shock_warning,
    scripted_shocks,
    shock_amplification,
    shock_window,
    shock_window_summary,
    window_drawdown,
)
from abm.config import ModelConfig


def v_shape(level: float, bottom: float, flat: int, down: int, up: int, tail: int) -> np.ndarray:
    """`flat` steps at `level`, a straight fall to `bottom` over `down` steps, back up over `up`, then `tail` flat."""
    fall = np.linspace(level, bottom, down + 1)[1:]
    rise = np.linspace(bottom, level, up + 1)[1:]
    return np.concatenate([np.full(flat, level), fall, rise, np.full(tail, level)])


# steps 0..4 at 100 (the shock meets 100 at step 4), falling from step 5, bottom at step 10, back by step 15
FUNDAMENTAL = v_shape(100.0, 70.0, flat=5, down=6, up=5, tail=4)  # 20 steps: 0..19
MARKET = v_shape(100.0, 60.0, flat=5, down=6, up=5, tail=4)
WINDOW = ShockWindow(onset=5, end=11, stop=20)


def test_v_shaped_path_has_the_known_drawdowns_and_amplification() -> None:
    assert len(FUNDAMENTAL) == 20 and FUNDAMENTAL[4] == 100.0 and FUNDAMENTAL[10] == pytest.approx(70.0)
    assert window_drawdown(FUNDAMENTAL, WINDOW) == pytest.approx(0.30)
    assert window_drawdown(MARKET, WINDOW) == pytest.approx(0.40)
    assert shock_amplification(0.40, 0.30) == pytest.approx(4 / 3)
    # a window that stops before the bottom sees only the fall so far: steps 5..7 are 3 of the 6 steps of -5
    early = ShockWindow(onset=5, end=6, stop=8)
    assert window_drawdown(FUNDAMENTAL, early) == pytest.approx(0.15)
    # the reference is the step before onset, not the running peak: a price that only rose has a negative drawdown
    assert window_drawdown(np.array([100.0, 100.0, 110.0, 120.0]), ShockWindow(2, 3, 4)) == pytest.approx(-0.10)


def test_shock_window_from_the_scenario() -> None:
    # one shock of 30 steps at 240 (the crash preset): window [240, 270 + horizon), clipped to the run
    assert shock_window([(240, 30)], last_step=1440) == ShockWindow(240, 270, 270 + SHOCK_HORIZON_STEPS)
    assert shock_window([(240, 30)], last_step=400) == ShockWindow(240, 270, 401)
    # two shocks: onset at the first's start, end at the last's end
    assert shock_window([(300, 10), (100, 50)], last_step=1000, horizon=60) == ShockWindow(100, 310, 370)
    # none, or only after the run: no window
    assert shock_window([], last_step=1440) is None
    assert shock_window([(240, 30)], last_step=100) is None
    # step 0 is the initial state: a shock scheduled there first shows at step 1
    assert shock_window([(0, 5)], last_step=100, horizon=10) == ShockWindow(1, 5, 15)
    cfg = ModelConfig.from_preset("black_thursday")
    assert scripted_shocks(cfg.scenario.events) == [(240, 240), (240, 240)]  # the `set` events are not shocks
    assert scripted_shocks(ModelConfig.from_preset("baseline").scenario.events) == []


def test_pre_shock_counts_and_gaps() -> None:
    assert pre_shock_liquidations(np.array([3, 4, 5, 10]), 5) == 2
    assert pre_shock_liquidations(np.array([], dtype=int), 5) == 0
    assert pre_shock_liquidations(np.array([3]), None) is None
    f = np.full(6, 2000.0)
    m = f * np.exp([0.0, 0.01, -0.02, 0.005, 0.3, -0.5])  # the last two rows are the shock's
    assert pre_shock_max_gap(m, f, 4) == pytest.approx(0.02)
    assert pre_shock_mean_gap(m, f, 4) == pytest.approx((0.0 + 0.01 + 0.02 + 0.005) / 4)
    assert pre_shock_max_gap(m, f, None) is None and pre_shock_mean_gap(m, f, None) is None


def test_an_asset_without_a_shock_of_its_own() -> None:
    # the shocked asset falls 30%; a second asset drifts by less than the 1% minimum over the window: no ratio
    calm = np.concatenate([np.full(5, 50.0), np.full(15, 49.8)])  # -0.4%
    market = {"ETH": MARKET, "BTC": np.concatenate([calm[:5], calm[5:] * 0.99])}  # and the market 1% below
    fundamental = {"ETH": FUNDAMENTAL, "BTC": calm}
    s = shock_window_summary(market, fundamental, np.array([7, 8]), [(5, 6)], last_step=19)
    assert s["fundamental_shock_drawdown_BTC"] == pytest.approx(0.004)
    assert s["amplification_BTC"] is None
    assert s["shock_drawdown_BTC"] == pytest.approx(1 - 49.8 * 0.99 / 50.0)
    assert s["amplification_ETH"] == pytest.approx(4 / 3)
    # one that rose over the window: no ratio either
    assert shock_amplification(0.05, -0.02) is None
    # one that fell through correlation by more than 1% gets its ratio
    assert shock_amplification(0.06, 0.02) == pytest.approx(3.0)


def test_a_run_without_a_shock_gives_none() -> None:
    s = shock_window_summary({"ETH": MARKET}, {"ETH": FUNDAMENTAL}, np.array([7]), [], last_step=19)
    assert s["shock_step"] is None and s["pre_shock_liquidations"] is None
    for key in ("pre_shock_max_gap", "pre_shock_mean_gap", "shock_drawdown", "fundamental_shock_drawdown"):
        assert s[f"{key}_ETH"] is None, key
    assert s["amplification_ETH"] is None
    assert pre_shock_warning(s, "ETH") is None


def test_summary_of_the_v_shape() -> None:
    s = shock_window_summary({"ETH": MARKET}, {"ETH": FUNDAMENTAL}, np.array([2, 7, 9]), [(5, 6)], last_step=19)
    assert s["shock_step"] == 5 and s["pre_shock_liquidations"] == 1
    assert s["pre_shock_max_gap_ETH"] == 0.0 and s["pre_shock_mean_gap_ETH"] == 0.0
    assert s["shock_drawdown_ETH"] == pytest.approx(0.40) and s["fundamental_shock_drawdown_ETH"] == pytest.approx(0.30)


def test_pre_shock_warning() -> None:
    calm = {"pre_shock_liquidations": 0, "pre_shock_max_gap_ETH": 0.01}
    assert pre_shock_warning(calm, "ETH") is None
    liquidated = pre_shock_warning({**calm, "pre_shock_liquidations": 3}, "ETH")
    assert liquidated is not None and "3 liquidations before the shock" in liquidated and "\n" not in liquidated
    gapped = pre_shock_warning({**calm, "pre_shock_max_gap_ETH": 0.045}, "ETH")
    assert gapped is not None and "4.5%" in gapped and "liquidations" not in gapped


def test_forced_selling_drawdown_is_the_difference() -> None:
    assert forced_selling_drawdown(0.40, 0.25) == pytest.approx(0.15)
    assert forced_selling_drawdown(None, 0.25) is None and forced_selling_drawdown(0.4, None) is None


def test_fourth_moment_share_of_one_outlier() -> None:
    # mean 1, deviations -1, -1, -1, -1, 4: fourth powers 1, 1, 1, 1, 256
    assert max_fourth_moment_share(np.array([0.0, 0.0, 0.0, 0.0, 5.0])) == pytest.approx(256 / 260)
    # symmetric pair: each carries half
    assert max_fourth_moment_share(np.array([1.0, -1.0])) == pytest.approx(0.5)
    # a Gaussian sample of 2,000 has no single dominant return
    z = np.random.default_rng(3).standard_normal(2000)
    assert max_fourth_moment_share(z) < 0.05
    assert math.isnan(max_fourth_moment_share(np.ones(10)))


def test_stylised_facts_use_five_step_returns() -> None:
    rng = np.random.default_rng(8)
    prices = 100 * np.exp(np.cumsum(rng.standard_t(3, 2001) * 0.001))
    five = np.diff(np.log(prices[::5]))
    facts = stylised_facts(prices, prefix="fundamental_")
    assert len(five) == 400
    assert facts["fundamental_return_kurtosis"] == pytest.approx(stats.kurtosis(five, fisher=True, bias=False))
    a = np.abs(five)
    assert facts["fundamental_abs_return_acf"] == pytest.approx(
        np.sum((a[:-1] - a.mean()) * (a[1:] - a.mean())) / np.sum((a - a.mean()) ** 2)
    )
    assert set(facts) == {"fundamental_return_kurtosis", "fundamental_hill_tail_index", "fundamental_abs_return_acf"}


def test_utilisation_recovery_counts_steps_from_the_shocks_end() -> None:
    from abm.analysis.shock_window import ShockWindow, utilisation_recovery_steps

    # shock over steps 10..19 (end = 20); U* = 0.8, so recovered below 0.85
    window = ShockWindow(onset=10, end=20, stop=40)
    util = np.full(60, 0.7)
    util[15:27] = 0.97  # still full 7 steps after the shock ends, 0.7 again from step 27
    assert utilisation_recovery_steps(util, window, 0.8) == 7
    util[15:] = 0.84  # just inside the margin at the end: recovered at once
    assert utilisation_recovery_steps(util, window, 0.8) == 0
    util[15:] = 0.99  # never back within the run
    assert utilisation_recovery_steps(util, window, 0.8) is None
    assert utilisation_recovery_steps(util, None, 0.8) is None


def test_lender_supply_change_values_supply_at_step_0_prices() -> None:
    from abm.analysis.metrics import lender_supply_change

    # 1,000 USD and 1 ETH supplied at ETH = 3,000 (4,000 USD); the ETH price halves (no change counted) and
    # lenders withdraw 100 USD: -100 / 4,000 = -2.5%
    ts = pd.DataFrame({"price_ETH": [3000.0, 1500.0], "supplied_USD": [1000.0, 900.0], "supplied_ETH": [1.0, 1.0]})
    assert lender_supply_change(ts, ["ETH"]) == pytest.approx(-0.025)


def test_half_life_of_an_ar1_premium() -> None:
    from abm.analysis.metrics import half_life_steps

    # AR(1) with a = 0.9: half-life log(1/2) / log(0.9) = 6.58 steps
    rng = np.random.default_rng(3)
    x = np.zeros(20_000)
    for t in range(1, len(x)):
        x[t] = 0.9 * x[t - 1] + rng.normal()
    assert half_life_steps(x) == pytest.approx(np.log(0.5) / np.log(0.9), rel=0.05)
    assert math.isnan(half_life_steps(np.zeros(100)))  # a premium that never moved
    assert math.isnan(half_life_steps(np.resize([1.0, -1.0], 100)))  # flips every step: no mean reversion to time
