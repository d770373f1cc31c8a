"""The pool's, the lenders' and the oracles' per-step shortcuts compute exactly what the numpy formulas compute
(bit for bit), on ordinary values and on the edges (empty reserves, the kink, no gap, one price)."""

from __future__ import annotations

import numpy as np
import pytest

from abm.agents.lender import LenderSentiment, rate_chasing_move
from abm.lending.pool import accrue_interest, reserve_rates
from abm.market.history import PriceHistory
from abm.market.oracle import OracleBoard
from abm.protocol import borrow_rate, supply_rate, utilisation


def random_reserves(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Reserves of every kind: empty, idle, fully lent, at and around the kink."""
    cash = rng.lognormal(10.0, 3.0, n) * (rng.random(n) > 0.2)
    scaled_borrows = rng.lognormal(10.0, 3.0, n) * (rng.random(n) > 0.2)
    borrow_index = 1.0 + rng.random(n)
    optimal = rng.uniform(0.05, 0.95, n)
    at_kink = rng.random(n) < 0.2  # borrows / (cash + borrows) lands on (or within rounding of) the kink
    scaled_borrows[at_kink] = optimal[at_kink] * 1000.0 / borrow_index[at_kink]
    cash[at_kink] = (1.0 - optimal[at_kink]) * 1000.0
    return {
        "cash": cash,
        "scaled_borrows": scaled_borrows,
        "borrow_index": borrow_index,
        "base": rng.uniform(0.0, 0.05, n) * (rng.random(n) > 0.5),
        "slope1": rng.uniform(0.0, 0.2, n),
        "slope2": rng.uniform(0.0, 3.0, n),
        "optimal": optimal,
        "reserve_factor": rng.uniform(0.0, 1.0, n) * (rng.random(n) > 0.1),
    }


@pytest.mark.parametrize("seed", range(5))
def test_reserve_rates_are_the_protocol_formulas_bit_for_bit(seed: int) -> None:
    r = random_reserves(np.random.default_rng(seed), 400)
    u, br, sr = reserve_rates(**r)
    borrows = r["scaled_borrows"] * r["borrow_index"]
    expected_u = utilisation(r["cash"], borrows)
    expected_br = borrow_rate(expected_u, r["base"], r["slope1"], r["slope2"], r["optimal"])
    assert np.array_equal(u, expected_u)
    assert np.array_equal(br, expected_br)
    assert np.array_equal(sr, supply_rate(expected_br, expected_u, r["reserve_factor"]))
    assert (u == 0).any() and (u == 1).any() and (u > r["optimal"]).any() and (u <= r["optimal"]).any()


@pytest.mark.parametrize("seed", range(5))
def test_accrue_interest_is_the_numpy_bookkeeping_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = random_reserves(rng, 400)
    rate = rng.uniform(0.0, 1e-5, 400)
    scaled_supply = rng.lognormal(10.0, 3.0, 400) * (rng.random(400) > 0.2)  # some reserves nobody supplies
    supply_index, reserves = 1.0 + rng.random(400), rng.lognormal(5.0, 2.0, 400)
    # numpy, array by array: the supply's share grows the supply index, or goes to the reserves without suppliers
    interest = r["scaled_borrows"] * r["borrow_index"] * rate
    expected_borrow_index = r["borrow_index"] * (1.0 + rate)
    to_reserves = interest * r["reserve_factor"]
    to_suppliers = interest - to_reserves
    supplied = scaled_supply * supply_index
    grow = np.divide(to_suppliers, supplied, out=np.zeros_like(supplied), where=supplied > 0)
    expected_reserves = reserves + to_reserves + np.where(supplied > 0, 0.0, to_suppliers)
    expected_supply_index = supply_index * (1.0 + grow)
    borrow_index = r["borrow_index"].copy()
    accrue_interest(rate, r["scaled_borrows"], borrow_index, r["reserve_factor"], reserves, scaled_supply, supply_index)
    assert np.array_equal(borrow_index, expected_borrow_index)
    assert np.array_equal(reserves, expected_reserves)
    assert np.array_equal(supply_index, expected_supply_index)
    assert (supplied == 0).any() and (to_suppliers > 0).any()


def test_the_pool_kernels_keep_one_compiled_signature() -> None:
    r = random_reserves(np.random.default_rng(0), 3)
    reserve_rates(**r)
    accrue_interest(np.zeros(3), r["scaled_borrows"], r["borrow_index"].copy(), r["reserve_factor"], *np.ones((3, 3)))
    assert len(reserve_rates.signatures) == 1
    assert len(accrue_interest.signatures) == 1


def test_rate_chasing_move_is_the_numpy_formula_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    outside = rng.uniform(0.0, 0.1, 2000)
    supply = outside + rng.normal(0.0, 0.02, 2000) * (rng.random(2000) > 0.1)  # some with no gap at all
    for band, step_seconds in ((0.01, 60.0), (0.0, 60), (0.005, 3600.0)):
        gap = supply - outside
        beyond = np.sign(gap) * np.maximum(np.abs(gap) - band, 0.0)
        expected = 0.05 * beyond * 100.0 * step_seconds / 86400.0
        move = rate_chasing_move(supply, outside, 0.05, band, step_seconds)
        assert np.array_equal(move, expected)
        assert not np.signbit(move[gap == 0]).any()
    assert np.isnan(rate_chasing_move(np.array([np.nan]), np.zeros(1), 0.05, 0.01, 60.0)).all()


class Pool:
    """The two fields `LenderSentiment.update` reads."""

    def __init__(self, supplied: np.ndarray) -> None:
        self.supplied = supplied
        self.bad_debt_tokens = np.zeros(len(supplied))
        self.write_offs: list[object] = []

    def write_off(self, asset: int, amount: float) -> None:
        self.bad_debt_tokens[asset] += amount
        self.write_offs.append(object())


def test_sentiment_ages_between_write_offs_as_if_each_step_added_no_bad_debt() -> None:
    pool = Pool(np.array([0.0, 100.0, 50.0]))
    sentiment = LenderSentiment(3)
    decay = 0.5 ** (1.0 / 7.0)
    pool.write_off(1, 10.0)
    fear = sentiment.update(pool, 7.0).copy()
    assert np.array_equal(fear, [0.0, 10.0 / 110.0, 0.0])
    for _ in range(3):  # steps without write-offs: the full formula's new share is 0 / supply = 0
        fear = fear * decay + np.zeros(3)
        assert np.array_equal(sentiment.update(pool, 7.0), fear)
    pool.write_off(2, 5.0)
    pool.write_off(2, 5.0)
    assert np.array_equal(sentiment.update(pool, 7.0), fear * decay + np.array([0.0, 0.0, 10.0 / 60.0]))


@pytest.mark.parametrize("window", [1, 2, 3, 9])
def test_mean_market_price_is_numpys_mean_of_the_prices(window: int) -> None:
    rng = np.random.default_rng(window)
    history = PriceHistory(rng.normal(0.0, 3.0, (20, 3)), steps=10)
    for last in range(-25, 10):
        first = last - window + 1
        rows = history.market[history.row(first) : history.row(last) + 1, 1]
        assert history.mean_market_price(first, last, 1) == float(np.mean(np.exp(rows)))


@pytest.mark.parametrize("updaters", [1, 2, 3, 4])
def test_the_oracle_price_is_numpys_median_of_the_posts(updaters: int) -> None:
    rng = np.random.default_rng(updaters)
    board = OracleBoard(np.array([1.0, 3000.0, 60000.0]), updaters)
    for step in range(1, 40):
        slot, asset = int(rng.integers(updaters)), int(rng.integers(1, 3))
        board.post(slot, asset, float(board.prices[asset] * rng.lognormal(0.0, 0.01)), step)
        assert board.prices[asset] == float(np.median(board.posts[:, asset]))
    with pytest.raises(ValueError, match="finite"):
        board.post(0, 1, float("nan"), 40)
