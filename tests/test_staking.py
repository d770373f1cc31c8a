"""Staking collateral and looping: loop leverage, the exchange rate, the looped account's health against the depeg,
and the staking token's pool.

Sources:
- Aave v2 stETH risk parameters: AIP-75 "Freezing UST and Updating stETH Parameters" (Gauntlet, 14 May 2022):
  stETH LTV 73% and liquidation threshold 75% before, LTV 69% and LT 81% after ("an 81% liquidation threshold ...
  should allow the protocol to withstand an additional 10% depeg").
- stETH/ETH prices: 0.955 on 12 May 2022 (CoinDesk, as reported by croblanc.com, "Ether discount after Terra
  collapse"); 0.937 in mid-June 2022 (Trustnodes, "stETH drops to 0.93 ETH", which also gives staking rewards of
  "about 5% a year").
- The pool and loop-count examples are hand-computed, as labelled.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abm import protocol as P
from abm.lending.staking import StakingToken


def test_loop_leverage_is_a_geometric_series_with_the_max_leverage_limit() -> None:
    # hand-computed: 5 loops at LTV 0.69: (1 - 0.69^6) / 0.31 = (1 - 0.107918) / 0.31 = 2.877683
    assert P.loop_leverage(0.69, 5) == pytest.approx(2.8776833449)
    assert P.loop_leverage(0.69, 0) == 1.0  # deposit only
    assert P.loop_leverage(0.5, [1, 2, 3]) == pytest.approx([1.5, 1.75, 1.875])
    # infinitely many loops reach the limit the model already uses, 1 / (1 - ltv)
    assert P.loop_leverage(0.73, np.inf) == pytest.approx(float(P.max_leverage(0.73)))
    assert P.loop_leverage(0.73, 200) == pytest.approx(1 / 0.27)


def test_loops_needed_for_a_target_leverage() -> None:
    # hand-computed at LTV 0.69: 3 loops give 2.4458, 4 give 2.6876: reaching 2.5 takes 4
    assert P.loop_leverage(0.69, 3) < 2.5 < P.loop_leverage(0.69, 4)
    assert P.loops_for_leverage(2.5, 0.69) == 4
    assert P.loops_for_leverage(1.0, 0.69) == 0
    # a target met exactly costs no extra loop: 1.75 is 2 loops at 0.5
    assert P.loops_for_leverage(1.75, 0.5) == 2
    with pytest.raises(ValueError, match="target_leverage"):
        P.loops_for_leverage(4.0, 0.69)  # above the 1 / 0.31 = 3.23 limit


def test_exchange_rate_accrues_the_staking_yield() -> None:
    # 5% a year compounded daily for a year: (1 + 0.05 / 365)^365 = 1.051267
    assert P.lst_exchange_rate(1.0, 0.05, 365, 86400.0) == pytest.approx((1 + 0.05 / 365) ** 365)
    assert P.lst_exchange_rate(1.0, 0.05, 365, 86400.0) == pytest.approx(1.051267, abs=1e-6)
    token = StakingToken(exchange_rate=1.0, staking_apr=0.05, step_seconds=86400.0, pool_tokens=1e3, pool_base=1e3)
    for _ in range(365):
        token.accrue()
    assert token.exchange_rate == pytest.approx(1.051267, abs=1e-6) and token.steps == 365
    # the pool price did not move, so against the grown rate the token now trades at a discount
    assert token.price_ratio == pytest.approx(1 / 1.051267, abs=1e-6)


def test_looped_health_against_the_june_2022_steth_depeg() -> None:
    # looped to the limit at Aave v2's pre-AIP-75 stETH parameters (LTV 0.73, LT 0.75), HF = 1 at a ratio of
    # ltv / LT = 0.9733: the 0.955 of 12 May 2022 liquidates it
    limit = float(P.max_leverage(0.73))
    assert P.looped_liquidation_ratio(limit, 0.75) == pytest.approx(0.73 / 0.75)
    assert P.looped_health_factor(0.955, limit, 0.75) == pytest.approx(0.955 / (0.73 / 0.75))
    assert P.looped_health_factor(0.955, limit, 0.75) < 1.0
    # after AIP-75 (LTV 0.69, LT 0.81) a maximal loop survives to 0.69 / 0.81 = 0.8519: the mid-June 0.937 leaves
    # it at HF 1.0999, and Gauntlet's "additional 10% depeg" from 0.955 (0.8595) still does not liquidate it
    limit = float(P.max_leverage(0.69))
    assert P.looped_liquidation_ratio(limit, 0.81) == pytest.approx(0.851852, abs=1e-6)
    assert P.looped_health_factor(0.937, limit, 0.81) == pytest.approx(1.09996, abs=1e-5)
    assert P.looped_health_factor(0.955 * 0.9, limit, 0.81) > 1.0
    # fewer loops, more room: 5 loops at 0.69 (leverage 2.8777) liquidate at 1.8777 / (2.8777 * 0.81) = 0.8056
    assert P.looped_liquidation_ratio(P.loop_leverage(0.69, 5), 0.81) == pytest.approx(0.805553, abs=1e-6)


def test_selling_into_the_pool_prices_the_depeg() -> None:
    # hand-computed, no fee: a 1,000 / 1,000 pool reaches 0.937 when x + a = 1000 / sqrt(0.937), a = 33.0770
    token = StakingToken(exchange_rate=1.0, staking_apr=0.0, step_seconds=60.0, pool_tokens=1e3, pool_base=1e3, fee=0.0)
    a = token.tokens_to_depeg(0.937)
    assert a == pytest.approx(1000 / math.sqrt(0.937) - 1000)
    got = token.sell(a)
    assert token.price_ratio == pytest.approx(0.937) and got == pytest.approx(1000 - 1000 * math.sqrt(0.937))
    assert token.tokens_to_depeg(0.95) == 0.0  # already below
    # with a fee the same target needs more tokens, and the swap itself is the model's one cpmm formula
    fee = 0.003
    x = y = 1e3
    a = float(P.amm_amount_in_to_price(x, y, 0.937, fee))
    out = float(P.amm_amount_out(a, x, y, fee))
    assert (y - out) / (x + a) == pytest.approx(0.937) and a > 1000 / math.sqrt(0.937) - 1000


def test_tokens_to_liquidate_a_looped_book() -> None:
    token = StakingToken(exchange_rate=1.0, staking_apr=0.0, step_seconds=60.0, pool_tokens=1e4, pool_base=1e4, fee=0.0)
    limit = float(P.max_leverage(0.73))
    need = token.tokens_to_liquidate(limit, 0.75)
    token.sell(need)
    assert token.price_ratio == pytest.approx(0.73 / 0.75)
    assert P.looped_health_factor(token.price_ratio, limit, 0.75) == pytest.approx(1.0)


def test_arbitrage_caps_the_premium_and_only_redemptions_close_a_discount() -> None:
    above = StakingToken(exchange_rate=1.0, staking_apr=0.0, step_seconds=60.0, pool_tokens=1e3, pool_base=1.1e3)
    sold = above.arbitrage()  # mint at the rate and sell into the pool
    assert sold > 0 and above.price_ratio == pytest.approx(1.0) and above.supply == pytest.approx(1e3 + sold)
    closed = StakingToken(exchange_rate=1.0, staking_apr=0.0, step_seconds=60.0, pool_tokens=1e3, pool_base=937.0)
    assert closed.arbitrage() == 0.0 and closed.price_ratio == pytest.approx(0.937)  # June 2022: no withdrawals
    with pytest.raises(ValueError, match="withdrawals_enabled"):
        closed.redeem(1.0)
    opened = StakingToken(
        exchange_rate=1.0,
        staking_apr=0.0,
        step_seconds=60.0,
        pool_tokens=1e3,
        pool_base=937.0,
        supply=5e3,
        withdrawals_enabled=True,
    )
    bought = -opened.arbitrage()
    assert bought > 0 and opened.price_ratio == pytest.approx(1.0) and opened.supply == pytest.approx(5e3 - bought)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: P.loop_leverage(1.0, 3), "ltv"),
        (lambda: P.loop_leverage(0.5, 2.5), "n_loops"),
        (lambda: P.looped_health_factor(0.9, 1.0, 0.8), "leverage"),
        (lambda: P.lst_exchange_rate(0.0, 0.05, 1, 60.0), "initial_rate"),
        (lambda: P.amm_amount_in_to_price(1.0, 1.0, 0.0), "target_price"),
        (lambda: StakingToken(exchange_rate=1, staking_apr=0, step_seconds=60, pool_tokens=0, pool_base=1), "pool"),
        (lambda: StakingToken(exchange_rate=1, staking_apr=-1, step_seconds=60, pool_tokens=1, pool_base=1), "apr"),
    ],
)
def test_bad_input_names_the_parameter(call, name: str) -> None:
    with pytest.raises(ValueError, match=name) as err:
        call()
    assert "\n" not in str(err.value)
