"""The risk steward: a volatility target for the liquidation threshold, moved in bounded steps with a minimum delay.

Sources:
- Aave Risk Stewards (aave-dao/aave-v3-risk-stewards, README and `scripts/deploy/DeployStewards.s.sol`): for LTV,
  liquidation threshold and bonus `maxPercentChange` is an absolute change in bps (deployed: 50, i.e. 0.5
  percentage points) and `minDelay` the least time between two changes of one parameter (deployed: 3 days); the
  steward never sets these to 0.
- Aave PoolConfigurator `configureReserveAsCollateral`: ltv <= liquidation threshold and threshold x bonus <= 100%.
- Starting parameters: Aave v3 Ethereum WETH, LTV 0.80 / LT 0.825 / bonus 5% (docs/calibration.md); ETH
  volatility 60% per year (docs/calibration.md). The 150% crash volatility and k = 3 over a one-day horizon are
  hand-set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abm import protocol as P
from abm.lending.risk_steward import RiskSteward

DAY = 1.0 / 365.0


def test_target_threshold_worked_numbers() -> None:
    # 3 sigma over one day at 60%/yr: 3 * 0.6 * sqrt(1/365) = 0.094216; exp(-0.094216) / 1.05 = 0.866748
    move = 3 * 0.6 * math.sqrt(DAY)
    assert move == pytest.approx(0.0942163, abs=1e-7)
    assert P.volatility_liquidation_threshold(0.6, 0.05, 3.0, 1.0) == pytest.approx(math.exp(-move) / 1.05)
    assert P.volatility_liquidation_threshold(0.6, 0.05, 3.0, 1.0) == pytest.approx(0.866748, abs=1e-6)
    # at 150%/yr: exp(-0.235541) / 1.05 = 0.752518
    assert P.volatility_liquidation_threshold(1.5, 0.05, 3.0, 1.0) == pytest.approx(0.752518, abs=1e-6)
    # the defining property: an account at HF = 1 still covers debt plus bonus after the k-sigma fall
    lt = float(P.volatility_liquidation_threshold(1.5, 0.05, 3.0, 1.0))
    debt = lt * 1.0  # per unit of collateral at HF = 1
    assert math.exp(-3 * 1.5 * math.sqrt(DAY)) == pytest.approx(debt * 1.05)


def test_one_update_moves_at_most_fifty_bps() -> None:
    # calm (60%): the target LT 0.8667 is above 0.825, so LT rises by the 0.005 cap and LTV with it
    ltv, lt = P.steward_update(0.80, 0.825, 0.6, 0.05)
    assert (float(ltv), float(lt)) == pytest.approx((0.805, 0.830))
    # crash (150%): the target 0.7525 is far below: both fall by the cap, keeping the 0.025 gap
    ltv, lt = P.steward_update(0.80, 0.825, 1.5, 0.05)
    assert (float(ltv), float(lt)) == pytest.approx((0.795, 0.820))
    # a target within the cap is reached exactly: LT* - gap for the LTV
    target = float(P.volatility_liquidation_threshold(0.85, 0.05, 3.0, 1.0))
    ltv, lt = P.steward_update(0.80, 0.825, 0.85, 0.05, max_change=0.05)
    assert float(lt) == pytest.approx(target) and float(ltv) == pytest.approx(target - 0.025)


def test_updates_keep_ltv_below_lt_and_lt_bonus_consistent() -> None:
    rng = np.random.default_rng(0)
    ltv, lt = np.array([0.80, 0.73, 0.40]), np.array([0.825, 0.78, 0.50])
    bonus = np.array([0.05, 0.05, 0.10])
    for vol in rng.uniform(0.05, 4.0, size=(300, 3)):
        new_ltv, new_lt = P.steward_update(ltv, lt, vol, bonus, max_change=0.02)
        assert np.all(np.abs(new_lt - lt) <= 0.02 + 1e-15) and np.all(np.abs(new_ltv - ltv) <= 0.02 + 1e-15)
        assert np.all(new_ltv > 0) and np.all(new_ltv < new_lt) and np.all(new_lt * (1 + bonus) < 1)
        ltv, lt = new_ltv, new_lt


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"current_ltv": 0.9}, "current_ltv"),
        ({"current_lt": 0.96}, "current_lt"),
        ({"realised_vol": 0.0}, "realised_vol"),
        ({"max_change": 0.0}, "max_change"),
        ({"k_sigma": -1.0}, "k_sigma"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict, name: str) -> None:
    args = {"current_ltv": 0.80, "current_lt": 0.825, "realised_vol": 0.6, "bonus": 0.05} | kwargs
    with pytest.raises(ValueError, match=name) as err:
        P.steward_update(**args)
    assert "\n" not in str(err.value)


def test_the_steward_waits_the_minimum_delay_and_keeps_history() -> None:
    # WETH and WBTC-like reserves beside the numéraire, which the steward leaves alone; 3 days of 1-minute steps
    delay = 3 * 24 * 60
    steward = RiskSteward(
        [0.0, 0.80, 0.73], [0.0, 0.825, 0.78], [0.0, 0.05, 0.05], managed=[False, True, True], min_delay_steps=delay
    )
    vol = np.array([0.0, 1.5, 0.5])
    assert steward.update(0, vol)
    assert steward.ltv == pytest.approx([0.0, 0.795, 0.735]) and steward.lt == pytest.approx([0.0, 0.820, 0.785])
    assert not steward.update(delay - 1, vol)  # too early: nothing moves
    assert steward.update(delay, vol)
    assert steward.lt == pytest.approx([0.0, 0.815, 0.790])
    # 2 reserves x 2 updates; each record has the target it was heading for
    assert [(c.step, c.reserve) for c in steward.history] == [(0, 1), (0, 2), (delay, 1), (delay, 2)]
    assert steward.history[0].target_lt == pytest.approx(0.752518, abs=1e-6)
    # from 0.825 to the 0.7525 crash target at 0.005 per 3 days takes 15 updates, the last 42 days after the first
    target, step = steward.history[0].target_lt, delay
    for _ in range(30):
        step += delay
        steward.update(step, vol)
    changes = [c for c in steward.history if c.reserve == 1]
    assert len(changes) == 15 and changes[-1].lt == pytest.approx(target) and changes[-1].step == 14 * delay
    assert changes[-2].lt == pytest.approx(0.755)


def test_an_unchanged_reserve_does_not_restart_its_delay() -> None:
    target = float(P.volatility_liquidation_threshold(0.6, 0.05, 3.0, 1.0))
    steward = RiskSteward([target - 0.02], [target], [0.05], min_delay_steps=10, ltv_gap=0.02)
    assert not steward.update(0, np.array([0.6]))  # already at the target
    assert steward.update(1, np.array([1.5]))  # so a change is allowed at once when volatility jumps
    with pytest.raises(ValueError, match="current_ltv"):
        RiskSteward([0.9], [0.8], [0.05])


def test_bounds_stop_the_steward_and_keep_the_gap() -> None:
    # floor 0.80 for WETH's 0.825: at 150%/yr (target 0.7525) five 50 bps cuts reach the floor and it stays there
    steward = RiskSteward([0.80], [0.825], [0.05], min_delay_steps=1, lt_bounds=(np.array([0.80]), np.array([0.825])))
    for step in range(10):
        steward.update(step, np.array([1.5]))
    assert steward.lt == pytest.approx([0.80]) and steward.ltv == pytest.approx([0.775])
    assert [round(c.lt, 3) for c in steward.history] == [0.82, 0.815, 0.81, 0.805, 0.80]
    # calm (target 0.8667 above): the ceiling 0.825 holds the way back
    for step in range(10, 30):
        steward.update(step, np.array([0.6]))
    assert steward.lt == pytest.approx([0.825]) and steward.ltv == pytest.approx([0.80])
    with pytest.raises(ValueError, match="lt_bounds"):
        RiskSteward([0.80], [0.825], [0.05], lt_bounds=(np.array([0.83]), np.array([0.9])))


def test_ewma_variance_worked_numbers() -> None:
    # half-life 5 steps: lam = 0.5 ** 0.2 = 0.870551; a return's weight halves in 5 steps
    lam = 0.5**0.2
    assert lam == pytest.approx(0.870551, abs=1e-6)
    v = 1e-6
    for _ in range(5):
        v = float(P.ewma_variance(v, 0.0, 5.0))
    assert v == pytest.approx(0.5e-6)
    # calm ETH (60%/yr: 0.36 / 525,600 per one-minute step) then one -2% minute: 5.2376e-5 per step, 525%/yr, so
    # the target threshold exp(-3 * 5.2468 * sqrt(1/365)) / 1.05 = 0.418 asks for the whole cut at once
    calm = 0.36 / 525_600
    v1 = float(P.ewma_variance(calm, math.log(0.98), 5.0))
    assert v1 == pytest.approx(lam * calm + (1 - lam) * math.log(0.98) ** 2)
    assert math.sqrt(0.02**2 * (1 - lam) + lam * calm) * math.sqrt(525_600) == pytest.approx(5.2468, abs=1e-4)
    assert float(P.volatility_liquidation_threshold(5.2468, 0.05, 3.0, 1.0)) == pytest.approx(0.4178, abs=1e-4)
    # a one-day EWMA (the market's: alpha = 2 / 1441, weight 0.9986 on the past) barely notices the same minute
    day = (1 - 2 / 1441) * calm + 2 / 1441 * math.log(0.98) ** 2
    assert math.sqrt(day * 525_600) == pytest.approx(0.81, abs=0.01)  # still below the 91% where the target bites
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="half_life_steps") as err:
            P.ewma_variance(calm, 0.01, bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="variance"):
        P.ewma_variance(-1.0, 0.01, 5.0)
