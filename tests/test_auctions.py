"""Liquidation auctions: Maker's Flipper (English, tend/dent) and Clipper (Dutch) rules with worked numbers, keeper
participation, settlement accounting and the escrow ledger.

Sources:
- Flipper: docs.makerdao.com, "Flipper - Detailed Documentation" (beg: minimum bid increase, default 5%; ttl: bid
  duration, default 3 hours; tau: auction length, default 2 days; tend raises the DAI bid up to tab, dent then
  lowers the lot, the tokens given up go back to the vault) and makerdao/dss `src/flip.sol` (tend needs
  bid > current, bid <= tab and bid >= beg * current unless bid == tab; dent needs beg * lot <= current lot; deal
  after the bid's ttl or the auction's end; tick restarts an auction with no bid).
- Clipper: docs.makerdao.com, "Liquidation 2.0 Module" (Dog and Clipper) and makerdao/dss `src/clip.sol` (kick:
  top = oracle price * buf and an incentive tip + chip * tab; status: reset when elapsed > tail or price / top <
  cusp; take: owe = slice * price, capped at tab, no partial purchase leaving a tab below dust) and `src/abaci.sol`
  (LinearDecrease top (tau - t) / tau; StairstepExponentialDecrease top cut^floor(t / step);
  ExponentialDecrease top cut^t).
- Parameters: MakerDAO forum, "YFI-A Liquidations 2.0 Parameters" (as LINK-A): cut 0.99, step 90 s, buf 1.30,
  cusp 0.4, tail 140 minutes, chip 0.1%, tip 0. Lot size 50 ETH: MakerDAO forum, "Auction Parameter Derivations".
- Black Thursday (12-13 March 2020): Whiterabbit, "Black Thursday for MakerDAO: $8.32 million was liquidated for
  0 DAI" (36% of liquidations won with zero bids while congestion priced out default keepers; 5.67M DAI of
  protocol losses). Prices, gas and keeper numbers in the house tests are hand-set, not measured.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abm import protocol as P
from abm.errors import InvariantError
from abm.lending.auctions import AuctionHouse, AuctionKeepers, AuctionParams

# --- the price curves (abaci) ------------------------------------------------------------------------------


def test_stairstep_curve_with_the_yfi_a_parameters() -> None:
    # top = 100 * buf 1.30 = 130; after 900 s with a 1% cut every 90 s: 10 drops, 130 * 0.99^10
    assert P.dutch_auction_price(130.0, 900, "stairstep", cut=0.99, step=90) == pytest.approx(117.5696697511)
    # between drops the price holds: 989 s is still 10 drops
    assert P.dutch_auction_price(130.0, 989, "stairstep", cut=0.99, step=90) == pytest.approx(130 * 0.99**10)
    assert P.dutch_auction_price(130.0, 0, "stairstep", cut=0.99, step=90) == 130.0


def test_linear_and_exponential_curves() -> None:
    # LinearDecrease with tau = 3600 s: a quarter of the way down after 900 s, 0 from tau on
    np.testing.assert_allclose(
        P.dutch_auction_price(130.0, [0, 900, 1800, 3600, 5000], "linear", duration=3600), [130, 97.5, 65, 0, 0]
    )
    # ExponentialDecrease with cut 0.9999 per second: 130 * 0.9999^900 = 130 * exp(900 ln 0.9999)
    assert P.dutch_auction_price(130.0, 900, "exponential", cut=0.9999) == pytest.approx(
        130 * math.exp(900 * math.log(0.9999))
    )


def test_reset_on_cusp_before_tail_with_the_yfi_a_parameters() -> None:
    # 0.99^91 = 0.4007 >= cusp 0.4 but 0.99^92 = 0.3968 < 0.4: the price crosses the cusp at 92 * 90 = 8280 s,
    # before the tail of 140 minutes = 8400 s
    t = np.array([8279, 8280])
    price = P.dutch_auction_price(130.0, t, "stairstep", cut=0.99, step=90)
    np.testing.assert_array_equal(P.dutch_auction_needs_reset(t, price, 130.0, tail=8400, cusp=0.4), [False, True])
    # with no cusp, only the tail resets: 8400 s is not past it, 8401 s is
    np.testing.assert_array_equal(
        P.dutch_auction_needs_reset([8400, 8401], [100.0, 100.0], 130.0, tail=8400, cusp=0.0), [False, True]
    )


def test_keeper_incentive_is_tip_plus_chip_times_tab() -> None:
    # chip 0.1% of a 50,000 DAI tab plus a (hypothetical) 300 DAI tip: 50 + 300
    assert P.auction_keeper_incentive(50_000.0, 0.001, 300.0) == pytest.approx(350.0)
    assert P.auction_keeper_incentive(50_000.0, 0.001, 0.0) == pytest.approx(50.0)  # YFI-A: tip 0


def test_take_caps_at_the_tab_and_respects_dust() -> None:
    # 10 tokens for a 1,000 DAI tab at 120 DAI/token
    assert P.dutch_auction_take(10, 1000, 120, 5) == pytest.approx((600, 5))
    owe, piece = P.dutch_auction_take(10, 1000, 120, 10)  # 1,200 > tab: pay the tab, get 1000/120 tokens
    assert (owe, piece) == pytest.approx((1000, 1000 / 120))
    owe, piece = P.dutch_auction_take(10, 1000, 120, 5, dust=500)  # would leave 400 < dust: pay tab - dust
    assert (owe, piece) == pytest.approx((500, 500 / 120))
    with pytest.raises(ValueError, match="whole lot"):
        P.dutch_auction_take(10, 400, 120, 1, dust=500)


# --- the English rules (Flipper) -------------------------------------------------------------------------------


def test_tend_minimum_increment_and_dent_maximum_lot() -> None:
    # beg 5%: after a 100 DAI bid the next must be >= 105, unless it is the tab itself
    assert P.english_auction_min_bid(100.0, 1000.0, 1.05) == pytest.approx(105.0)
    assert P.english_auction_min_bid(100.0, 103.0, 1.05) == pytest.approx(103.0)
    # no bid yet: any bid above 0 is accepted (the zero-bid opening)
    assert P.english_auction_min_bid(0.0, 1000.0, 1.05) == 0.0
    # dent: a 10-token lot can only be cut to 10 / 1.05 = 9.5238 tokens or fewer
    assert P.english_auction_max_lot(10.0, 1.05) == pytest.approx(9.523809523809524)


def test_break_even_bid_counts_gas_and_the_keepers_cost_of_funds() -> None:
    # resale 5,500 USD, two transactions at 50 USD, 10%/yr cost of funds for a 3-hour ttl:
    # (5500 - 100) / (1 + 0.10 * 10800 / 31536000)
    expected = 5400 / (1 + 0.10 * 10800 / P.SECONDS_PER_YEAR)
    assert P.keeper_break_even_bid(5500.0, 100.0, 0.10, 10800.0) == pytest.approx(expected)
    assert P.keeper_break_even_bid(5500.0, 100.0, 0.10, 10800.0) < 5400.0
    # gas above the lot's value: nothing is worth bidding
    assert P.keeper_break_even_bid(80.0, 100.0, 0.0, 0.0) == 0.0


def test_landing_probability_falls_with_gas_and_rises_with_profit() -> None:
    # a fixed 5 USD budget lands every time at 5 USD gas, one time in 20 at 100 USD
    np.testing.assert_allclose(P.keeper_landing_probability([5.0, 100.0], 5.0, 0.0, 0.0), [1.0, 0.05])
    # a keeper that spends half the expected profit: 1,000 USD of profit pays 500 USD of gas
    assert P.keeper_landing_probability(1000.0, 0.0, 1000.0, 0.5) == pytest.approx(0.5)
    assert P.keeper_landing_probability(1000.0, 0.0, 4000.0, 0.5) == 1.0


def test_cat_bite_splits_a_vault_into_lump_sized_lots() -> None:
    # 120 ETH against all of the vault's debt, lump 50 ETH (ETH-A before 12 March 2020): three bites, each taking
    # its lot's share of what debt is left: 50/120, then 50/70, then the last 20 ETH with all the rest
    assert P.cat_bite_lot(120.0, 1.0, 50.0) == pytest.approx((50.0, 5 / 12))
    assert P.cat_bite_lot(70.0, 1.0, 50.0) == pytest.approx((50.0, 5 / 7))
    assert P.cat_bite_lot(20.0, 1.0, 50.0) == (20.0, 1.0)
    # 1,000 USD of debt: 416.67 + 5/7 of 583.33 = 416.67 + 416.67 + 166.67, in proportion to 50 + 50 + 20 ETH
    left, debts = 1000.0, []
    for ink in (120.0, 70.0, 20.0):
        _, share = P.cat_bite_lot(ink, 1.0, 50.0)
        debts.append(left * share)
        left -= debts[-1]
    assert debts == pytest.approx([1000 * 50 / 120, 1000 * 50 / 120, 1000 * 20 / 120]) and left == pytest.approx(0)
    # an asset carrying 40% of a two-asset vault's debt: a 50 of 200 tokens bite takes a quarter of that 40%
    assert P.cat_bite_lot(200.0, 0.4, 50.0) == pytest.approx((50.0, 0.1))
    assert P.cat_bite_lot(30.0, 0.4, math.inf) == (30.0, 0.4)  # no lump: the whole collateral in one auction


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: P.cat_bite_lot(0.0, 1.0, 50.0), "collateral_tokens"),
        (lambda: P.cat_bite_lot(10.0, 1.5, 50.0), "collateral_debt_share"),
        (lambda: P.cat_bite_lot(10.0, 1.0, 0.0), "lump"),
        (lambda: P.dutch_auction_price(-1.0, 1, "linear", duration=10), "start_price"),
        (lambda: P.dutch_auction_price(1.0, 1, "cubic"), "curve"),
        (lambda: P.dutch_auction_price(1.0, 1, "stairstep", cut=1.5), "cut"),
        (lambda: P.dutch_auction_price(1.0, 1, "linear"), "duration"),
        (lambda: P.dutch_auction_needs_reset(1, 1.0, 1.0, tail=0, cusp=0.4), "tail"),
        (lambda: P.english_auction_min_bid(1.0, 2.0, 0.9), "beg"),
        (lambda: P.keeper_landing_probability(0.0, 1.0, 1.0, 0.5), "gas_usd"),
        (lambda: P.keeper_landing_probability(1.0, 1.0, 1.0, 1.5), "profit_share"),
        (lambda: AuctionParams("sealed"), "mechanism"),
        (lambda: AuctionParams("english", beg=0.99), "beg"),
        (lambda: AuctionParams("dutch", curve="linear", cusp=0.0, tail_steps=200, duration_steps=100), "tail_steps"),
    ],
)
def test_bad_input_is_one_line_naming_the_parameter(call, name: str) -> None:
    with pytest.raises(ValueError, match=name) as err:
        call()
    assert "\n" not in str(err.value)


# --- the auction house --------------------------------------------------------------------------------------

ETH = 1
LOT = 50.0  # ETH per auction (Maker's launch lot size)
TAB = 4_000.0  # USD of debt plus penalty to raise (hand-set)


def market(price: float = 100.0, depth: float = 1e12):
    """Oracle and market prices (USD, ETH) and a linear-impact resale quote; depth 1e12 USD is impact-free."""
    prices = np.array([1.0, price])

    def quote_sell(asset: int, tokens: float) -> float:
        return float(P.linear_impact_proceeds(tokens, prices[asset], depth))

    return prices, quote_sell


def run(house: AuctionHouse, steps: int, gas: float, prices: np.ndarray, quote_sell, start: int = 0) -> list:
    """Step the house, checking its escrow ledger every step; returns all settlements."""
    done = []
    for t in range(start, start + steps):
        done += house.step(t, prices, prices, gas, quote_sell)
        house.check_conservation()
    return done


def english(ttl: int = 10, tau: int = 100) -> AuctionParams:
    return AuctionParams("english", beg=1.05, ttl_steps=ttl, tau_steps=tau)


def congested_keepers(n_default: int = 4) -> AuctionKeepers:
    """One keeper that spends up to half its expected profit on gas, and default keepers with a fixed 5 USD budget
    (the default software of March 2020 did not raise its gas price)."""
    n = n_default + 1
    return AuctionKeepers(
        capital_usd=np.full(n, 1e6),
        gas_budget_usd=np.array([0.0] + [5.0] * n_default),
        profit_share=np.array([0.5] + [0.0] * n_default),
        funding_rate=np.full(n, 0.10),
        capacity_per_step=np.full(n, 100),
    )


def test_competitive_english_auction_raises_the_tab_and_returns_collateral() -> None:
    prices, quote_sell = market()
    keepers = AuctionKeepers.uniform(5, capital_usd=1e6, gas_budget_usd=50.0, profit_share=0.0, funding_rate=0.1)
    house = AuctionHouse(english(), keepers, np.random.default_rng(1))
    house.kick(0, account=7, owner=3, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    done = run(house, 40, gas=20.0, prices=prices, quote_sell=quote_sell)
    (s,) = done
    assert s.raised_usd == pytest.approx(TAB) and s.unpaid_usd == 0.0 and s.shortfall_usd == 0.0
    # dent: the winner takes only what covers the tab, its cost of funds and gas; the rest goes back to the owner.
    # Rivals alike push the lot to their common break-even: 4000 * (1 + 0.1 * 600 s / yr) + 40 USD of gas at 100
    need = TAB * (1 + 0.1 * 600 / P.SECONDS_PER_YEAR) + 40.0
    assert s.sold_tokens == pytest.approx(need / 100.0, rel=1e-7)  # 1e12 USD of depth moves it by ~2e-9
    assert s.returned_tokens == pytest.approx(LOT - need / 100.0, rel=1e-7)
    assert not s.zero_bid and s.winners[0] in range(5)
    assert house.live == {} and house.escrow_tokens[ETH] == pytest.approx(0.0, abs=1e-9)


def test_a_lone_keeper_wins_an_english_auction_at_a_zero_bid() -> None:
    # the Black Thursday mechanism, deterministic: only one keeper's transactions land, so nobody answers its
    # opening bid and the lot clears at (almost) 0 when the bid's ttl runs out
    prices, quote_sell = market()
    house = AuctionHouse(english(), congested_keepers(n_default=0), np.random.default_rng(0))
    house.kick(0, account=0, owner=0, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    (s,) = run(house, 20, gas=1_000.0, prices=prices, quote_sell=quote_sell)
    assert s.zero_bid and s.raised_usd == pytest.approx(1e-6)
    assert s.sold_tokens == LOT and s.returned_tokens == 0.0  # the owner loses all 50 ETH
    # the whole tab is unpaid, and the lot cleared far below its market value: it all counts as auction shortfall
    assert s.unpaid_usd == pytest.approx(TAB) and s.shortfall_usd == pytest.approx(TAB)
    assert s.discount_usd == pytest.approx(LOT * 100.0 - 1e-6)
    assert house.auction_shortfall_usd == pytest.approx(TAB) and house.n_zero_bid == 1
    assert s.step == 10  # bid in the kick's step 0, dealt when the bid's ttl of 10 steps ran out


def test_congestion_turns_english_auctions_into_zero_bids_but_not_in_calm_gas() -> None:
    """20 lots with one profit-pricing keeper and four default keepers: at 1,000 USD gas a default keeper lands one
    transaction in 200, so most lots go to the lone bidder at ~0; at 5 USD gas every keeper lands and none does."""
    prices, quote_sell = market()
    share = {}
    for gas in (5.0, 1_000.0):
        house = AuctionHouse(english(), congested_keepers(), np.random.default_rng(42))
        for i in range(20):
            house.kick(0, account=i, owner=i, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
        done = run(house, 40, gas=gas, prices=prices, quote_sell=quote_sell)
        assert len(done) == 20
        share[gas] = house.n_zero_bid / 20
    assert share[5.0] == 0.0
    # P(no default keeper lands within a 10-step ttl) = 0.995^40 = 0.82
    assert share[1_000.0] > 0.6


def zero_bid_house(default_capacity: int, ttl: int = 10) -> AuctionHouse:
    """Two default keepers with 1M USD each and `default_capacity` transactions a step (0: congestion), and one
    zero-bid keeper with no capital whose transactions always land (Black Thursday's zero bidders)."""
    keepers = AuctionKeepers(
        capital_usd=np.array([1e6, 1e6, 0.0]),
        gas_budget_usd=np.array([50.0, 50.0, 0.0]),
        profit_share=np.full(3, 0.5),
        funding_rate=np.full(3, 0.10),
        capacity_per_step=np.array([default_capacity, default_capacity, 20]),
        zero_bid=np.array([False, False, True]),
    )
    return AuctionHouse(english(ttl=ttl, tau=4320), keepers, np.random.default_rng(3))


def test_a_zero_bid_keeper_wins_every_lot_while_congestion_blocks_the_others() -> None:
    # three 50-ETH lots at 100 USD/ETH while the default keepers land nothing: the zero-bid keeper opens each at
    # the minimum bid (1e-6 USD; it holds no capital) and, with nobody to outbid it, wins each when its 10-step
    # ttl runs out, at any gas
    prices, quote_sell = market()
    house = zero_bid_house(default_capacity=0)
    for i in range(3):
        house.kick(0, account=i, owner=i, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    done = run(house, 12, gas=1_000.0, prices=prices, quote_sell=quote_sell)
    assert [s.step for s in done] == [10, 10, 10] and all(s.winners == (2,) for s in done)
    assert all(s.zero_bid and s.raised_usd == pytest.approx(1e-6) for s in done)
    # each lot (5,000 USD at market) raised nothing of its 4,000 USD tab: all of it unpaid and all of it shortfall
    assert house.unpaid_usd == pytest.approx(3 * TAB) and house.auction_shortfall_usd == pytest.approx(3 * TAB)
    assert house.keepers.tokens[2, ETH] == pytest.approx(3 * LOT) and house.keepers.gas_spent_usd[2] == 3_000.0
    assert house.keepers.capital_usd[2] == pytest.approx(-3e-6)  # the three opening bids, owed from the lots


def test_a_zero_bid_loses_to_default_keepers_that_land_within_its_ttl() -> None:
    # the same lots with the block space back: the default keepers outbid the opening within the ttl and the lots
    # clear at the keepers' price; the zero-bid keeper never raises a bid, so it wins nothing
    prices, quote_sell = market()
    house = zero_bid_house(default_capacity=20)
    for i in range(3):
        house.kick(0, account=i, owner=i, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    done = run(house, 40, gas=20.0, prices=prices, quote_sell=quote_sell)
    assert len(done) == 3 and not any(s.zero_bid for s in done)
    assert all(s.raised_usd == pytest.approx(TAB) and s.unpaid_usd == 0.0 for s in done)
    assert all(2 not in s.winners for s in done) and house.keepers.tokens[2, ETH] == 0.0
    assert house.keepers.capital_usd[2] == pytest.approx(0.0)  # its outbid openings came back


def test_dutch_auction_clears_at_the_keepers_break_even_not_at_zero() -> None:
    # the congested market of the zero-bid case (1,000 USD per transaction), with one keeper that pays the going
    # gas. The price falls 1% every 1.5 steps (90 s of 60 s steps) from 130; below 80 = tab / lot the whole lot costs
    # less than the tab, and buying it pays once 50 * 100 - 50 p - 1,000 > 0, p < 80: 130 * 0.99^49 = 79.28
    # (0.99^48 gives 80.08), first reached at step 74 (floor(74 / 1.5) = 49 drops)
    prices, quote_sell = market()
    keepers = congested_keepers()
    keepers.gas_budget_usd[0], keepers.profit_share[0] = 2_000.0, 0.0
    params = AuctionParams("dutch", buf=1.30, curve="stairstep", cut=0.99, drop_steps=1.5, tail_steps=140, cusp=0.4)
    house = AuctionHouse(params, keepers, np.random.default_rng(0))
    house.kick(0, account=0, owner=0, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    (s,) = run(house, 100, gas=1_000.0, prices=prices, quote_sell=quote_sell)
    price = 130 * 0.99**49
    assert s.step == 74 and s.clearing_price == pytest.approx(price) and not s.zero_bid
    assert s.sold_tokens == pytest.approx(LOT) and s.raised_usd == pytest.approx(LOT * price)  # 3,964 of 4,000
    # gas took a fifth of the lot's value: 35.8 USD unpaid, sold below the market, so an auction shortfall
    assert s.unpaid_usd == pytest.approx(TAB - LOT * price) and s.shortfall_usd == pytest.approx(s.unpaid_usd)
    assert s.incentives_usd == pytest.approx(0.001 * TAB)  # chip 0.1% at kick, no reset


def test_dutch_auction_resets_at_the_cusp_and_pays_the_incentive_again() -> None:
    # no keeper has capital: the price falls to the cusp (92 drops = 138 steps) and the auction restarts at a
    # fresh top from the oracle, which has moved to 90: top 1.30 * 90 = 117
    prices, quote_sell = market()
    keepers = AuctionKeepers.uniform(2, capital_usd=0.0, gas_budget_usd=50.0, profit_share=0.0, funding_rate=0.0)
    params = AuctionParams("dutch", cut=0.99, drop_steps=1.5, tail_steps=140, cusp=0.4, chip=0.001, tip_usd=300)
    house = AuctionHouse(params, keepers, np.random.default_rng(0))
    i = house.kick(0, account=0, owner=0, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    run(house, 138, gas=20.0, prices=prices, quote_sell=quote_sell)
    assert house.live[i].resets == 0 and house.live[i].top == pytest.approx(130.0)
    house.step(138, np.array([1.0, 90.0]), prices, 20.0, quote_sell)
    a = house.live[i]
    assert a.resets == 1 and a.top == pytest.approx(117.0) and a.tic == 138
    assert a.incentives_usd == pytest.approx(2 * (300 + 0.001 * TAB))


def test_keepers_capital_splits_a_dutch_lot_between_takers() -> None:
    prices, quote_sell = market()
    keepers = AuctionKeepers.uniform(5, capital_usd=1_000.0, gas_budget_usd=50.0, profit_share=0.0, funding_rate=0.0)
    house = AuctionHouse(AuctionParams("dutch"), keepers, np.random.default_rng(3))
    house.kick(0, account=0, owner=0, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    (s,) = run(house, 100, gas=20.0, prices=prices, quote_sell=quote_sell)
    assert len(set(s.winners)) == 4  # 4,000 USD of tab, 1,000 USD per keeper
    assert keepers.capital_usd.sum() == pytest.approx(5_000.0 - TAB)
    assert keepers.tokens[:, ETH].sum() == pytest.approx(s.sold_tokens)
    assert keepers.gas_spent_usd.sum() == pytest.approx(4 * 20.0)


def test_shortfall_counts_only_auctions_that_cleared_below_market() -> None:
    # a 10,000 USD tab on 50 ETH: the lot cannot cover it. Keepers resell at 100, but the market mark at settlement
    # is 60 (the price kept falling): the lot cleared above the market, so the unpaid debt is bad debt of the
    # collateral, not an auction shortfall
    prices, quote_sell = market()
    keepers = AuctionKeepers.uniform(1, capital_usd=1e6, gas_budget_usd=50.0, profit_share=0.0, funding_rate=0.0)
    house = AuctionHouse(AuctionParams("dutch"), keepers, np.random.default_rng(0))
    house.kick(0, account=0, owner=0, asset=ETH, lot=LOT, tab_usd=10_000.0, oracle_price=100.0)
    mark = np.array([1.0, 60.0])
    done = []
    for t in range(100):
        done += house.step(t, prices, mark, 20.0, quote_sell)
    (s,) = done
    assert s.sold_tokens == pytest.approx(LOT) and s.clearing_price > 60.0
    assert s.unpaid_usd == pytest.approx(10_000.0 - s.raised_usd) and s.unpaid_usd > 0
    assert s.shortfall_usd == 0.0 and house.auction_shortfall_usd == 0.0


def test_same_seed_same_history_and_the_ledger_catches_a_leak() -> None:
    prices, quote_sell = market()

    def history(seed: int):
        house = AuctionHouse(english(), congested_keepers(), np.random.default_rng(seed))
        for i in range(10):
            house.kick(0, account=i, owner=i, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
        return run(house, 60, gas=300.0, prices=prices, quote_sell=quote_sell), house

    a, house = history(5)
    b, _ = history(5)
    assert a == b
    house.kick(60, account=0, owner=0, asset=ETH, lot=1.0, tab_usd=10.0, oracle_price=100.0)
    house.escrow_tokens[ETH] += 0.5  # tokens appearing from nowhere
    with pytest.raises(InvariantError, match="asset 1"):
        house.check_conservation()


def test_kick_rejects_bad_input() -> None:
    keepers = AuctionKeepers.uniform(1, capital_usd=1.0, gas_budget_usd=1.0, profit_share=0.0, funding_rate=0.0)
    house = AuctionHouse(english(), keepers, np.random.default_rng(0))
    with pytest.raises(ValueError, match="lot"):
        house.kick(0, account=0, owner=0, asset=ETH, lot=0.0, tab_usd=1.0, oracle_price=1.0)
    with pytest.raises(ValueError, match="asset"):
        house.kick(0, account=0, owner=0, asset=5, lot=1.0, tab_usd=1.0, oracle_price=1.0)
    with pytest.raises(ValueError, match="gas_usd"):
        house.step(0, np.ones(2), np.ones(2), 0.0, lambda k, q: q)


def test_a_keeper_whose_capital_holds_negative_float_residue_just_does_not_take() -> None:
    # paying its whole capital can leave a keeper -1e-13 USD of rounding: it must not ask for a negative slice
    prices, quote_sell = market()
    keepers = AuctionKeepers.uniform(2, capital_usd=1e6, gas_budget_usd=50.0, profit_share=0.0, funding_rate=0.0)
    keepers.capital_usd[0] = -1e-13
    house = AuctionHouse(AuctionParams("dutch"), keepers, np.random.default_rng(0))
    house.kick(0, account=0, owner=0, asset=ETH, lot=LOT, tab_usd=TAB, oracle_price=100.0)
    (s,) = run(house, 100, gas=20.0, prices=prices, quote_sell=quote_sell)
    assert s.winners == (1,) and s.raised_usd == pytest.approx(TAB)
