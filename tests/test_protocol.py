"""Protocol formulas against worked numbers computed by hand from the protocols' public documentation.

Sources:
- Aave v3 `DefaultReserveInterestRateStrategy` (docs.aave.com, "Interest Rate Strategy"): for U <= U*,
  r = base + slope1 U / U*; above, r = base + slope1 + slope2 (U - U*) / (1 - U*); supply (liquidity) rate
  = r U (1 - reserve factor). Parameters from docs/calibration.md (Aave v3 Ethereum, mid-2024):
  WETH U* 0.90, base 0, slope1 2.7%, slope2 80%, RF 15%; USDC U* 0.92, slope1 9%, slope2 60%, RF 10%.
- Aave v3 health factor, close factor (50%, 100% below CLOSE_FACTOR_HF_THRESHOLD = 0.95) and
  `LiquidationLogic` seizure: collateral = debt_repaid * debt_price / collateral_price * (1 + bonus).
- Uniswap v2 `UniswapV2Library.getAmountOut / getAmountIn` (fee 0.3%, i.e. the 997/1000 factor).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from abm import protocol as P

WETH = {"base": 0.0, "slope1": 0.027, "slope2": 0.80, "optimal": 0.90}
USDC = {"base": 0.0, "slope1": 0.09, "slope2": 0.60, "optimal": 0.92}


# --- utilisation and rates ---------------------------------------------------------------------------------


def test_utilisation_worked_and_empty_reserve() -> None:
    # 900 borrowed out of 100 cash + 900 borrows -> 900 / 1000 = 0.9
    assert P.utilisation(100.0, 900.0) == pytest.approx(0.9)
    # an empty reserve (0 / 0) is defined as 0, not NaN
    assert P.utilisation(0.0, 0.0) == 0.0
    assert P.utilisation(0.0, 5.0) == 1.0
    np.testing.assert_allclose(P.utilisation([0.0, 1.0, 3.0], [0.0, 1.0, 1.0]), [0.0, 0.5, 0.25])


@pytest.mark.parametrize(
    ("u", "expected"),
    [
        (0.0, 0.0),  # base = 0
        (0.45, 0.0135),  # 0.027 * 0.45 / 0.90 = 0.0135 (half-way up slope1)
        (0.90, 0.027),  # at the kink: base + slope1 = 2.7%
        (0.95, 0.427),  # 0.027 + 0.80 * (0.95 - 0.90) / (1 - 0.90) = 0.027 + 0.40
        (1.00, 0.827),  # 0.027 + 0.80 = 82.7% at full utilisation
    ],
)
def test_borrow_rate_weth(u: float, expected: float) -> None:
    assert P.borrow_rate(u, **WETH) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("u", "expected"),
    [
        (0.0, 0.0),
        (0.46, 0.045),  # 0.09 * 0.46 / 0.92 = 0.045
        (0.92, 0.09),  # kink: slope1
        (0.96, 0.39),  # 0.09 + 0.60 * (0.96 - 0.92) / (1 - 0.92) = 0.09 + 0.30
        (1.00, 0.69),  # 0.09 + 0.60
    ],
)
def test_borrow_rate_usdc(u: float, expected: float) -> None:
    assert P.borrow_rate(u, **USDC) == pytest.approx(expected, abs=1e-15)


def test_borrow_rate_is_continuous_at_the_kink_and_broadcasts() -> None:
    below = P.borrow_rate(0.9 - 1e-12, **WETH)
    above = P.borrow_rate(0.9 + 1e-12, **WETH)
    assert above - below == pytest.approx(0.0, abs=1e-9)
    rates = P.borrow_rate(np.array([0.0, 0.9, 1.0]), **WETH)
    np.testing.assert_allclose(rates, [0.0, 0.027, 0.827])
    # per reserve: WETH and USDC parameters side by side, each at its own kink
    both = P.borrow_rate([0.9, 0.92], [0.0, 0.0], [0.027, 0.09], [0.8, 0.6], [0.9, 0.92])
    np.testing.assert_allclose(both, [0.027, 0.09])


def test_supply_rate_worked() -> None:
    # WETH at the kink: 0.027 * 0.90 * (1 - 0.15) = 0.020655
    assert P.supply_rate(0.027, 0.90, 0.15) == pytest.approx(0.020655)
    # USDC at the kink: 0.09 * 0.92 * (1 - 0.10) = 0.07452
    assert P.supply_rate(0.09, 0.92, 0.10) == pytest.approx(0.07452)
    # nobody borrows, nobody earns
    assert P.supply_rate(0.05, 0.0, 0.1) == 0.0


def test_per_step_rate_is_simple_interest() -> None:
    # 5%/yr for a 60 s step: 0.05 * 60 / (365 * 24 * 3600) = 0.05 / 525600
    assert P.per_step_rate(0.05, 60.0) == pytest.approx(0.05 / 525_600)


# --- health, close factor, seizure ---------------------------------------------------------------------------


def test_health_factor_several_collaterals_and_debts_broadcast() -> None:
    # accounts x assets (USD, ETH, BTC); prices $1, $2000, $60000; LT 0.78, 0.825, 0.78
    prices = np.array([1.0, 2000.0, 60000.0])
    lt = np.array([0.78, 0.825, 0.78])
    coll_tokens = np.array(
        [
            [10_000.0, 2.0, 0.0],  # 10000 USDC + 2 ETH
            [0.0, 0.0, 0.1],  # 0.1 BTC
            [500.0, 1.0, 0.0],  # no debt
        ]
    )
    debt_tokens = np.array(
        [
            [5_000.0, 1.0, 0.0],  # 5000 USDC + 1 ETH
            [5_000.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    coll_usd = coll_tokens * prices
    debt_usd = debt_tokens * prices
    hf = P.health_factor(coll_usd, lt, debt_usd)
    # account 0: (10000 * 0.78 + 4000 * 0.825) / (5000 + 2000) = (7800 + 3300) / 7000 = 1.5857142857
    # account 1: 6000 * 0.78 / 5000 = 4680 / 5000 = 0.936
    # account 2: no debt -> inf
    np.testing.assert_allclose(hf[:2], [11_100 / 7_000, 0.936])
    assert np.isinf(hf[2])
    # debt given already summed per account gives the same answer
    np.testing.assert_allclose(P.health_factor(coll_usd, lt, debt_usd.sum(axis=1)), hf)
    # and per account, one at a time
    for i in range(3):
        assert P.health_factor(coll_usd[i], lt, debt_usd[i].sum()) == hf[i]


def test_borrow_power_and_max_leverage() -> None:
    # 2 ETH at $2000 (LTV 0.80) + 1000 USDC (LTV 0.75): 3200 + 750 = 3950
    assert P.borrow_power_usd([1000.0, 4000.0], [0.75, 0.80]) == pytest.approx(3950.0)
    # looping at LTV 0.8: 1 / (1 - 0.8) = 5x; LTV 0.75: 4x
    assert P.max_leverage(0.8) == pytest.approx(5.0)
    assert P.max_leverage(0.75) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("hf", "expected"),
    [
        (1.2, 0.0),  # healthy: not liquidatable
        (1.0, 0.0),  # HF = 1 exactly is not liquidatable (HF < 1 is)
        (0.99, 0.5),  # just under 1: Aave's 50% close factor
        (0.95, 0.5),  # at the threshold: still 50% (100% only strictly below 0.95)
        (0.9499, 1.0),  # below CLOSE_FACTOR_HF_THRESHOLD: the whole debt
        (0.3, 1.0),
        (math.inf, 0.0),  # no debt
    ],
)
def test_close_factor(hf: float, expected: float) -> None:
    assert P.close_factor(hf) == expected


def test_close_factor_configurable_and_vectorised() -> None:
    np.testing.assert_array_equal(P.close_factor([1.1, 0.97, 0.85], default=0.25, full_below=0.9), [0.0, 0.25, 1.0])


def test_close_factor_of_one_account_is_the_rule_compiled_too() -> None:
    for hf in (1.1, 1.0, 0.97, 0.9, 0.85, math.inf, math.nan):  # a NaN health takes the default (no branch true)
        expected = float(P.close_factor(hf, 0.25, 0.9, check=False))
        assert P.account_close_factor(hf, 0.25, 0.9) == P.compiled_close_factor(hf, 0.25, 0.9) == expected
    assert P.account_close_factor(math.nan, 0.25, 0.9) == 0.25


def test_collateral_seized_aave_example() -> None:
    # repay 1000 USDC at $1 against ETH at $2000 with a 5% bonus: 1000 * 1 / 2000 * 1.05 = 0.525 ETH
    assert P.collateral_seized(1000.0, 1.0, 2000.0, 0.05) == pytest.approx(0.525)
    # inverse: 0.525 ETH * 2000 / (1 * 1.05) = 1000 USDC
    assert P.repay_for_seizure(0.525, 1.0, 2000.0, 0.05) == pytest.approx(1000.0)
    # risky debt: repay 1 ETH ($2000) for BTC at $60000 with 5%: 2000 / 60000 * 1.05 = 0.035 BTC
    assert P.collateral_seized(1.0, 2000.0, 60000.0, 0.05) == pytest.approx(0.035)


def test_repay_for_seizure_inverts_collateral_seized() -> None:
    repaid = np.array([0.0, 1.0, 1234.5, 1e9])
    seized = P.collateral_seized(repaid, 1.0, np.array([1.0, 3000.0, 2000.0, 60000.0]), 0.045)
    back = P.repay_for_seizure(seized, 1.0, np.array([1.0, 3000.0, 2000.0, 60000.0]), 0.045)
    np.testing.assert_allclose(back, repaid, rtol=1e-14)


def test_liquidation_price() -> None:
    # 10 ETH against 15000 USDC debt, LT 0.825: HF = 1 at 15000 / (10 * 0.825) = 1818.1818...
    price = P.liquidation_price(10.0, 15_000.0, 0.825)
    assert price == pytest.approx(15_000 / 8.25)
    # and the health factor at that price is exactly 1
    assert P.health_factor([10.0 * price], [0.825], 15_000.0) == pytest.approx(1.0)
    # no debt: never liquidated (0); debt without collateral: always (inf)
    assert P.liquidation_price(10.0, 0.0, 0.825) == 0.0
    assert np.isinf(P.liquidation_price(0.0, 100.0, 0.825))


# --- Uniswap v2 constant product --------------------------------------------------------------------------


def test_amm_amount_out_uniswap_v2_example() -> None:
    # 10 ETH into a 1000 ETH / 2,000,000 USDC pool, 0.3% fee (getAmountOut):
    # in_with_fee = 10 * 0.997 = 9.97; out = 9.97 * 2,000,000 / (1000 + 9.97) = 19,940,000 / 1009.97 = 19743.1607
    assert P.amm_amount_out(10.0, 1000.0, 2_000_000.0) == pytest.approx(19_743.160687941225, rel=1e-12)


def test_amm_amount_in_uniswap_v2_example() -> None:
    # take 1 ETH out of 2,000,000 USDC / 1000 ETH (getAmountIn without the +1 wei rounding):
    # in = 2,000,000 * 1 / ((1000 - 1) * 0.997) = 2,000,000 / 996.003 = 2008.02608
    assert P.amm_amount_in(1.0, 2_000_000.0, 1000.0) == pytest.approx(2008.0260802427301, rel=1e-12)


def test_amm_tiny_and_huge_swaps() -> None:
    # tiny: the fill is the spot price net of the fee, 1e-6 ETH * 2000 * 0.997
    tiny = P.amm_amount_out(1e-6, 1000.0, 2_000_000.0)
    assert tiny == pytest.approx(1e-6 * 2000 * 0.997, rel=1e-8)
    # huge: the pool never gives out its whole reserve
    huge = P.amm_amount_out(1e12, 1000.0, 2_000_000.0)
    assert 1_999_990.0 < huge < 2_000_000.0


def test_amm_round_trip_loses_the_fee_and_k_never_falls() -> None:
    x, y, fee = 1000.0, 2_000_000.0, 0.003
    for dx in (1e-3, 1.0, 50.0, 5_000.0):
        dy = float(P.amm_amount_out(dx, x, y, fee))
        # k after the swap (the whole input, fee included, stays in the pool)
        assert (x + dx) * (y - dy) >= x * y * (1 - 1e-15)
        back = float(P.amm_amount_out(dy, y - dy, x + dx, fee))
        assert back < dx  # the round trip pays the fee twice
        # without a fee k is exactly constant and the round trip is exact
        dy0 = float(P.amm_amount_out(dx, x, y, 0.0))
        assert (x + dx) * (y - dy0) == pytest.approx(x * y, rel=1e-12)
        assert float(P.amm_amount_out(dy0, y - dy0, x + dx, 0.0)) == pytest.approx(dx, rel=1e-12)


def test_amm_amount_in_inverts_amount_out() -> None:
    outs = np.array([1e-6, 1.0, 100.0, 999.0])
    needed = P.amm_amount_in(outs, 2_000_000.0, 1000.0)
    np.testing.assert_allclose(P.amm_amount_out(needed, 2_000_000.0, 1000.0), outs, rtol=1e-10)


# --- impact fills ------------------------------------------------------------------------------------------


def test_linear_impact_closed_form() -> None:
    # buy $1M at $2000 with depth $2e8 per unit log price:
    # tokens = 2e8 / 2000 * (1 - exp(-1e6 / 2e8)) = 1e5 * (1 - e^-0.005) = 498.7521
    tokens = float(P.linear_impact_tokens_bought(1e6, 2000.0, 2e8))
    assert tokens == pytest.approx(498.75208073176873, rel=1e-12)
    # average fill 1e6 / 498.75 = 2005.00 lies between the pre-trade 2000 and post-trade 2000 e^0.005 = 2010.03
    assert 2000.0 < 1e6 / tokens < 2000.0 * math.exp(0.005)
    # sell 500 ETH: proceeds = 2e8 * ln(1 + 500 * 2000 / 2e8) = 2e8 ln(1.005) = 997,508.30
    assert float(P.linear_impact_proceeds(500.0, 2000.0, 2e8)) == pytest.approx(997_508.3022078148, rel=1e-12)
    # the closed form is the integral of 1 / (p e^{x/depth}) dx over the order
    integral, _ = quad(lambda x: 1.0 / (2000.0 * math.exp(x / 2e8)), 0.0, 1e6)
    assert tokens == pytest.approx(integral, rel=1e-10)


def test_sqrt_impact_closed_form() -> None:
    # square-root law: Y sigma_daily sqrt(Q / V); Y = 0.7, sigma = 0.6 / sqrt(365), Q = 1% of V
    # = 0.7 * 0.0314058 * 0.1 = 0.00219838
    sigma_daily = 0.6 / math.sqrt(365.0)
    assert float(P.sqrt_impact(1.5e8, 0.7, sigma_daily, 1.5e10)) == pytest.approx(0.0021983804748788977)
    assert float(P.sqrt_impact(-1.5e8, 0.7, sigma_daily, 1.5e10)) == pytest.approx(-0.0021983804748788977)
    # fills: tokens = integral_0^Q exp(-a sqrt x) / p dx, proceeds solve integral_0^Q exp(a sqrt x) / p dx = T
    a = 0.7 * sigma_daily / math.sqrt(1.5e10)
    tokens = float(P.sqrt_impact_tokens_bought(1.5e8, 2000.0, a))
    expected, _ = quad(lambda x: math.exp(-a * math.sqrt(x)) / 2000.0, 0.0, 1.5e8, limit=200)
    assert tokens == pytest.approx(expected, rel=1e-9)
    proceeds = float(P.sqrt_impact_proceeds(75_000.0, 2000.0, a))
    sold, _ = quad(lambda x: math.exp(a * math.sqrt(x)) / 2000.0, 0.0, proceeds, limit=200)
    assert sold == pytest.approx(75_000.0, rel=1e-9)
    assert proceeds < 75_000.0 * 2000.0  # sold below the pre-trade price


def test_round_trips_never_make_money() -> None:
    p, depth = 2000.0, 2e8
    for q in (1e3, 1e6, 1e8):
        # linear impact is path-reversible: an immediate round trip returns exactly what it spent
        tokens = P.linear_impact_tokens_bought(q, p, depth)
        back = P.linear_impact_proceeds(tokens, p * math.exp(q / depth), depth)
        assert back == pytest.approx(q, rel=1e-10)
        # the square-root path is concave: buying then selling straight back loses money
        a = 1e-5
        tokens = P.sqrt_impact_tokens_bought(q, p, a)
        back = P.sqrt_impact_proceeds(tokens, p * math.exp(a * math.sqrt(q)), a)
        assert back < q


def test_tiny_orders_have_no_impact() -> None:
    assert P.linear_impact_tokens_bought(1.0, 2000.0, 2e8) == pytest.approx(1.0 / 2000.0, rel=1e-8)
    assert P.linear_impact_proceeds(1e-4, 2000.0, 2e8) == pytest.approx(0.2, rel=1e-8)
    assert P.sqrt_impact_tokens_bought(1e-6, 2000.0, 1e-5) == pytest.approx(1e-6 / 2000.0, rel=1e-8)
    assert P.sqrt_impact_proceeds(1e-9, 2000.0, 1e-5) == pytest.approx(2e-6, rel=1e-8)
    assert P.sqrt_impact_tokens_bought(0.0, 2000.0, 1e-5) == 0.0


def test_spread_shock_compounds_to_total() -> None:
    # -25% over 30 steps: 30 * ln(0.75) / 30 per step; compounding gives back 0.75
    per_step = P.spread_shock(-0.25, 30)
    assert math.exp(30 * per_step) == pytest.approx(0.75)


# --- invalid arguments ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: P.utilisation(-1.0, 5.0), "cash"),
        (lambda: P.utilisation(1.0, -5.0), "borrows"),
        (lambda: P.borrow_rate(1.01, **WETH), "utilisation"),
        (lambda: P.borrow_rate(-0.1, **WETH), "utilisation"),
        (lambda: P.borrow_rate(0.5, 0.0, 0.027, 0.8, 1.0), "optimal"),
        (lambda: P.borrow_rate(0.5, 0.0, 0.027, 0.8, 0.0), "optimal"),
        (lambda: P.borrow_rate(0.5, 0.0, -0.027, 0.8, 0.9), "slope1"),
        (lambda: P.supply_rate(0.05, 1.5, 0.1), "utilisation"),
        (lambda: P.supply_rate(0.05, 0.5, 1.1), "reserve_factor"),
        (lambda: P.per_step_rate(0.05, 0.0), "step_seconds"),
        (lambda: P.health_factor([-1.0], [0.8], 1.0), "collateral_usd"),
        (lambda: P.health_factor([1.0], [0.8], -1.0), "debt_usd"),
        (lambda: P.health_factor([1.0], [1.2], 1.0), "liquidation_threshold"),
        (lambda: P.collateral_seized(-1.0, 1.0, 2000.0, 0.05), "repaid"),
        (lambda: P.collateral_seized(1.0, 1.0, 0.0, 0.05), "collateral_price"),
        (lambda: P.repay_for_seizure(-1.0, 1.0, 2000.0, 0.05), "seized"),
        (lambda: P.liquidation_price(-1.0, 1.0, 0.8), "collateral_tokens"),
        (lambda: P.close_factor(0.9, default=0.0), "default"),
        (lambda: P.amm_amount_out(-1.0, 10.0, 10.0), "amount_in"),
        (lambda: P.amm_amount_out(1.0, -10.0, 10.0), "reserve_in"),
        (lambda: P.amm_amount_out(1.0, 10.0, 0.0), "reserve_out"),
        (lambda: P.amm_amount_out(1.0, 10.0, 10.0, fee=1.0), "fee"),
        (lambda: P.amm_amount_in(10.0, 10.0, 10.0), "amount_out"),
        (lambda: P.amm_amount_in(11.0, 10.0, 10.0), "amount_out"),
        (lambda: P.linear_impact_tokens_bought(-5.0, 2000.0, 1e8), "notional_usd"),
        (lambda: P.linear_impact_proceeds(-5.0, 2000.0, 1e8), "tokens"),
        (lambda: P.sqrt_impact(1.0, 0.7, 0.03, 0.0), "daily_volume_usd"),
        (lambda: P.max_leverage(1.0), "ltv"),
        (lambda: P.spread_shock(-1.0, 5), "total_return"),
        (lambda: P.utilisation(float("nan"), 1.0), "cash"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
