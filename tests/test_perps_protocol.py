"""Perpetual-futures formulas in abm.protocol against the exchanges' published examples and rules (docs/perps.md).

Each published example names its source next to it; numbers marked "hand-computed" follow from a published
formula with the inputs stated.
"""

from __future__ import annotations

import numpy as np
import pytest

from abm.perps import adl_allocation
from abm.protocol import (
    adl_rank,
    funding_rate,
    perp_bankruptcy_price,
    perp_liquidation_price,
    premium_index,
    tier_cumulative_amounts,
    tiered_margin,
)

# --- premium index and funding rate ---------------------------------------------------------------------------


def test_funding_worked_example_hyperliquid() -> None:
    # Hyperliquid Docs, Trading > Funding, example calculation (as reproduced in the Hyperliquid community docs,
    # Clearinghouse > Funding): interest rate 0.01%, impact bid 10,100, oracle (spot) 10,000 ->
    # premium (10,100 - 10,000) / 10,000 = 1%; clamp(0.01% - 1%, -0.05%, 0.05%) = -0.05%; funding rate 0.95%.
    premium = premium_index(impact_bid=10_100.0, impact_ask=10_120.0, index=10_000.0)
    assert premium == pytest.approx(0.01, rel=1e-12)
    assert funding_rate(premium, interest=0.0001, clamp=0.0005) == pytest.approx(0.0095, rel=1e-12)


def test_funding_equals_interest_inside_the_clamp_bybit_rule() -> None:
    # Bybit Help Center, "What is funding rate and predicted rate": "if (I - P) is within +/-0.05%, then
    # F = P + (I - P) = I. In other words, the funding rate will equal the Interest Rate." (Binance states the same.)
    for premium in (0.0, 0.0003, -0.0003, 0.0006 - 1e-12):
        assert funding_rate(premium, 0.0001, 0.0005) == pytest.approx(0.0001, abs=1e-15)
    # outside the dampener the premium leads: P = -0.2% -> F = -0.2% + 0.05% = -0.15% (shorts pay longs)
    assert funding_rate(-0.002, 0.0001, 0.0005) == pytest.approx(-0.0015, rel=1e-12)


def test_funding_cap_hyperliquid() -> None:
    # Hyperliquid Docs, Trading > Funding: "Funding is capped at 4%/hour" (the cap applies to the rate paid).
    assert funding_rate(0.10, 0.0001, 0.0005, cap=0.04) == pytest.approx(0.04)
    assert funding_rate(-0.10, 0.0001, 0.0005, cap=0.04) == pytest.approx(-0.04)
    assert funding_rate(0.01, 0.0001, 0.0005, cap=0.04) == pytest.approx(0.0095)


def test_premium_index_binance_form() -> None:
    # Binance / Bybit / Gate: P = [max(0, impact bid - index) - max(0, index - impact ask)] / index.
    assert premium_index(99.0, 101.0, 100.0) == 0.0  # index inside the impact spread: no premium
    assert premium_index(98.0, 99.0, 100.0) == pytest.approx(-0.01)  # book below the index
    got = premium_index(np.array([99.0, 101.0, 97.0]), np.array([101.0, 102.0, 98.0]), 100.0)
    np.testing.assert_allclose(got, [0.0, 0.01, -0.02])


# --- bankruptcy and liquidation prices ------------------------------------------------------------------------


def test_bankruptcy_price_bybit_example() -> None:
    # Bybit Help Center, "Bankruptcy Price (USDT Contract)": a 1 BTC long at 10,000 USDT, 50x ->
    # 10,000 x (1 - 2%) = 9,800 USDT; a short's is Entry x (1 + 1/L).
    assert perp_bankruptcy_price(10_000.0, 50.0, +1) == pytest.approx(9_800.0)
    assert perp_bankruptcy_price(10_000.0, 50.0, -1) == pytest.approx(10_200.0)


def binance_isolated_liquidation_price(wallet: float, qty: float, entry: float, mmr: float, side: int) -> float:
    """Binance, "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts", isolated mode (TMM = UPNL = 0),
    one-way position, maintenance amount cum = 0: LP = (WB + cum - side * Q * EP) / (Q * MMR - side * Q)."""
    return (wallet - side * qty * entry) / (qty * mmr - side * qty)


@pytest.mark.parametrize("side", [+1, -1])
@pytest.mark.parametrize(("leverage", "mmr"), [(50.0, 0.004), (10.0, 0.025), (3.0, 0.17)])
def test_liquidation_price_is_binance_isolated_formula(side: int, leverage: float, mmr: float) -> None:
    qty, entry = 1.5, 10_000.0
    wallet = qty * entry / leverage  # isolated wallet balance = initial margin, fee-free
    expected = binance_isolated_liquidation_price(wallet, qty, entry, mmr, side)
    assert perp_liquidation_price(entry, leverage, mmr, side) == pytest.approx(expected, rel=1e-12)
    # hand-computed: 1 BTC long at 10,000, 50x, MMR 0.4% (Binance's first BTCUSDT bracket) -> 9,800 / 0.996
    assert perp_liquidation_price(10_000.0, 50.0, 0.004, +1) == pytest.approx(9_839.357429718876)


def test_liquidation_price_charges_maintenance_on_mark_value_not_entry_value() -> None:
    # Bybit Help Center, "Liquidation Price (USDT Contract)": a 1 BTC long at 10,000 USDT, 50x, MMR 0.5% ->
    # 10,000 x (1 - 2% + 0.5%) = 9,850 USDT: Bybit charges maintenance on the ENTRY value. The Binance convention
    # used here charges it on the value at the liquidation price, so the two differ by a second-order term.
    entry, leverage, mmr = 10_000.0, 50.0, 0.005
    bybit = 9_850.0
    ours = float(perp_liquidation_price(entry, leverage, mmr, +1))
    margin = entry / leverage
    assert margin + (bybit - entry) == pytest.approx(mmr * entry)  # Bybit: equity = m x entry value
    assert margin + (ours - entry) == pytest.approx(mmr * ours)  # here: equity = m x mark value
    assert ours < bybit and bybit - ours == pytest.approx(mmr * (entry - ours), rel=1e-9)


def test_perp_prices_vectorised_and_long_below_one_times_never_liquidated() -> None:
    got = perp_liquidation_price([100.0, 100.0], [10.0, 10.0], [0.05, 0.05], [1, -1])
    np.testing.assert_allclose(got, [90.0 / 0.95, 110.0 / 1.05])
    assert perp_bankruptcy_price(100.0, 1.0, +1) == 0.0  # fully collateralised long: no bankruptcy above 0
    assert perp_liquidation_price(100.0, 0.5, 0.01, +1) < 0  # Binance shows "--": never liquidated


# --- margin tiers ----------------------------------------------------------------------------------------------

# Binance, "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts": BTCUSDT brackets with floors 0, 50,000
# and 250,000 USDT; a 264,000 USDT position has MMR 1%; the level-3 maintenance amount is
# 250,000 x (1% - 0.5%) + 50 = 1,300 USDT (level 2's 50 = 50,000 x (0.5% - 0.4%)).
BINANCE_FLOORS = [0.0, 50_000.0, 250_000.0]
BINANCE_MMR = [0.004, 0.005, 0.01]


def test_maintenance_amounts_binance_example() -> None:
    np.testing.assert_allclose(tier_cumulative_amounts(BINANCE_FLOORS, BINANCE_MMR), [0.0, 50.0, 1_300.0])
    # "Maintenance Margin = Position Notional x Maintenance Margin Rate - Maintenance Amount"
    assert tiered_margin(500_000.0, BINANCE_FLOORS, BINANCE_MMR) == pytest.approx(500_000 * 0.01 - 1_300)
    assert tiered_margin(264_000.0, BINANCE_FLOORS, BINANCE_MMR) == pytest.approx(264_000 * 0.01 - 1_300)


def test_tiered_margin_is_continuous_and_increasing() -> None:
    floors = np.array(BINANCE_FLOORS)
    eps = 1e-6
    below = tiered_margin(floors[1:] - eps, BINANCE_FLOORS, BINANCE_MMR)
    at = tiered_margin(floors[1:], BINANCE_FLOORS, BINANCE_MMR)
    np.testing.assert_allclose(below, at, atol=1e-6)
    grid = np.linspace(0, 1e6, 1001)
    assert np.all(np.diff(tiered_margin(grid, BINANCE_FLOORS, BINANCE_MMR)) > 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        tier_cumulative_amounts([0.0, 50.0, 50.0], [0.01, 0.02, 0.03])


# --- auto-deleveraging -----------------------------------------------------------------------------------------


def test_adl_rank_bitmex_formula() -> None:
    # BitMEX, "Auto-Deleveraging": Ranking = PNL% x Effective Leverage if PNL% > 0, PNL% / Effective Leverage if < 0;
    # "more profitable and higher-leveraged traders are deleveraged first".
    np.testing.assert_allclose(adl_rank([0.1, -0.1, 0.0], [5.0, 5.0, 5.0]), [0.5, -0.02, 0.0])
    ranks = adl_rank([0.2, 0.2, 0.1, -0.1, -0.1], [10.0, 2.0, 10.0, 2.0, 10.0])
    assert list(np.argsort(-ranks)) == [0, 2, 1, 4, 3]
    assert adl_rank(0.1, np.inf) == np.inf  # no equity left behind a profitable position: first in the queue


def test_adl_queue_bitmex_worked_example() -> None:
    # BitMEX, "Auto-Deleveraging Further Information": six longs (accounts 1-6) with quantities 10, 10, 20, 30, 20,
    # 10 and PNL rankings 3, 6, 1, 4, 5, 2. A short liquidated with size 20 at bankruptcy 650: "Account 2 will have
    # their entire position of 10 contracts closed, while the remaining 10 contracts ... will be assigned to
    # account 5. Account 5 will thus have 10 contracts remaining (from 20)."
    quantity = np.array([10.0, 10.0, 20.0, 30.0, 20.0, 10.0])
    ranking = np.array([3.0, 6.0, 1.0, 4.0, 5.0, 2.0])
    take = adl_allocation(ranking, quantity, 20.0)
    np.testing.assert_array_equal(take, [0.0, 10.0, 0.0, 0.0, 10.0, 0.0])
    assert quantity[4] - take[4] == 10.0
    assert adl_allocation(ranking, quantity, 1_000.0).sum() == quantity.sum()  # never more than is held


# --- argument checks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: perp_bankruptcy_price(100.0, 10.0, 0), "side must be"),
        (lambda: perp_bankruptcy_price(100.0, 0.0, 1), "leverage must be > 0"),
        (lambda: perp_liquidation_price(-1.0, 10.0, 0.01, 1), "entry must be > 0"),
        (lambda: perp_liquidation_price(100.0, 10.0, 1.0, 1), r"maintenance_margin_rate must be in \[0, 1\)"),
        (lambda: premium_index(101.0, 100.0, 100.0), "impact_bid must be <= impact_ask"),
        (lambda: premium_index(99.0, 101.0, 0.0), "index must be > 0"),
        (lambda: funding_rate(0.0, 0.0001, -0.1), "clamp must be >= 0"),
        (lambda: funding_rate(0.0, cap=0.0), "cap must be > 0"),
        (lambda: adl_rank(0.1, 0.0), "effective_leverage must be > 0"),
        (lambda: adl_rank(np.nan, 2.0), "pnl_fraction must not be NaN"),
    ],
)
def test_bad_arguments_raise_one_line(call, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_check_false_runs_the_same_formula() -> None:
    assert perp_bankruptcy_price(100.0, 10.0, 1, check=False) == perp_bankruptcy_price(100.0, 10.0, 1)
    assert funding_rate(0.002, 0.0001, 0.0005, 0.04, check=False) == funding_rate(0.002, 0.0001, 0.0005, 0.04)
