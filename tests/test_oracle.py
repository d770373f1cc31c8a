"""Oracles: what an updater observes (latency, TWAP), when it posts (deviation, heartbeat), the median board."""

from __future__ import annotations

import math

import numpy as np
import pytest

from abm import ReflexivityModel
from abm.agents import OracleUpdater
from abm.market import OracleBoard
from abm.market.history import PriceHistory
from abm.market.oracle import observed_price

ETH, BTC = 1, 2


def history(eth_prices: list[float]) -> PriceHistory:
    """Price history with no pre-history, ETH following `eth_prices` from step 0, USD and BTC flat."""
    h = np.zeros((len(eth_prices), 3))
    h[:, ETH] = np.log(eth_prices)
    h[:, BTC] = math.log(60000.0)
    out = PriceHistory(h[:1], steps=len(eth_prices) - 1)
    for step, row in enumerate(h):
        out.record(step, row, row)
    return out


PRICES = [100.0, 101.0, 103.0, 106.0, 110.0, 115.0]


@pytest.mark.parametrize(
    ("step", "latency", "window", "expected"),
    [
        (5, 0, 1, 115.0),  # spot, no latency
        (5, 2, 1, 106.0),  # the price two steps ago
        (1, 4, 1, 100.0),  # latency reaching before the start: clipped at the first recorded step
        (5, 0, 3, (106.0 + 110.0 + 115.0) / 3),  # TWAP of the last three prices: 110.3333
        (5, 1, 4, (101.0 + 103.0 + 106.0 + 110.0) / 4),  # TWAP over 4 steps ending one step ago: 105
        (2, 0, 10, (100.0 + 101.0 + 103.0) / 3),  # a window longer than the history: what there is
    ],
)
def test_observed_price_latency_and_twap(step: int, latency: int, window: int, expected: float) -> None:
    assert observed_price(history(PRICES), step, ETH, latency, window) == pytest.approx(expected, rel=1e-12)


def test_board_uses_the_median_of_its_updaters() -> None:
    board = OracleBoard(np.array([1.0, 3000.0, 60000.0]), updaters_per_asset=3)
    np.testing.assert_array_equal(board.prices, [1.0, 3000.0, 60000.0])
    board.post(0, ETH, 2900.0, step=4)
    assert board.prices[ETH] == 3000.0  # (2900, 3000, 3000): one deviant feed does not move the median
    board.post(1, ETH, 5000.0, step=5)
    assert board.prices[ETH] == 3000.0  # (2900, 5000, 3000): an outlier on each side, still the middle one
    board.post(2, ETH, 2950.0, step=5)
    assert board.prices[ETH] == 2950.0  # (2900, 5000, 2950)
    assert board.prices[BTC] == 60000.0 and board.prices[0] == 1.0
    assert board.last_post_step[:, ETH].tolist() == [4, 5, 5]
    assert board.n_posts == 3
    with pytest.raises(ValueError, match="finite and > 0"):
        board.post(0, ETH, float("nan"), step=6)
    with pytest.raises(ValueError, match="finite and > 0"):
        board.post(0, ETH, -1.0, step=6)


def test_board_with_an_even_number_of_updaters_averages_the_middle_two() -> None:
    board = OracleBoard(np.array([1.0, 100.0, 1.0]), updaters_per_asset=2)
    board.post(0, ETH, 110.0, step=1)
    assert board.prices[ETH] == pytest.approx(105.0)


# --- the OracleUpdater agent inside a small model ---------------------------------------------------------


@pytest.fixture
def model() -> ReflexivityModel:
    return ReflexivityModel(
        preset="baseline",
        rng=5,
        steps=50,
        traders__n_traders=3,
        liquidators__n_liquidators=1,
        lenders__n_lenders=1,
        oracles__n_updaters=1,
        oracles__latency_steps=2,
        oracles__deviation_threshold=0.01,
        oracles__heartbeat_steps=10,
    )


def eth_updater(model: ReflexivityModel, slot: int = 0) -> OracleUpdater:
    return next(u for u in model.updaters if u.asset == ETH and u.slot == slot)


def set_eth_history(model: ReflexivityModel, prices: dict[int, float]) -> None:
    for step, price in prices.items():
        model.history.market[model.history.row(step), ETH] = math.log(price)


def test_updater_posts_on_deviation_with_latency(model: ReflexivityModel) -> None:
    upd = eth_updater(model)
    board = model.oracle
    assert board.prices[ETH] == pytest.approx(3000.0)
    # at step t the updater reads the end-of-step row t - 1 - latency = t - 3
    set_eth_history(model, {1: 3020.0, 2: 3040.0, 3: 3200.0})
    model.steps = 4  # sees row 1: 3020 / 3000 - 1 = 0.67% < 1%: no post
    upd.step()
    assert board.prices[ETH] == pytest.approx(3000.0)
    model.steps = 5  # sees row 2: 3040 / 3000 - 1 = 1.33% >= 1%: posts 3040
    upd.step()
    assert board.prices[ETH] == pytest.approx(3040.0)
    assert board.last_post_step[0, ETH] == 5
    model.steps = 6  # sees row 3: 3200, although the market moved on since
    set_eth_history(model, {5: 2000.0})
    upd.step()
    assert board.prices[ETH] == pytest.approx(3200.0)


def test_updater_posts_on_heartbeat_without_deviation(model: ReflexivityModel) -> None:
    upd = eth_updater(model)
    board = model.oracle
    set_eth_history(model, dict.fromkeys(range(0, 30), 3010.0))  # +0.33%, below the 1% threshold
    for t in range(1, 10):
        model.steps = t
        upd.step()
        assert board.prices[ETH] == pytest.approx(3000.0), t
    model.steps = 10  # 10 steps since the last post (step 0): the heartbeat fires
    upd.step()
    assert board.prices[ETH] == pytest.approx(3010.0)
    assert board.last_post_step[0, ETH] == 10


def test_updater_twap_window() -> None:
    model = ReflexivityModel(
        preset="baseline",
        rng=5,
        steps=20,
        traders__n_traders=2,
        liquidators__n_liquidators=1,
        lenders__n_lenders=1,
        oracles__latency_steps=0,
        oracles__twap_window_steps=3,
        oracles__deviation_threshold=0.0,
    )
    upd = eth_updater(model)
    set_eth_history(model, {2: 3000.0, 3: 3300.0, 4: 3600.0})
    model.steps = 5  # TWAP of rows 2..4: (3000 + 3300 + 3600) / 3 = 3300
    upd.step()
    assert model.oracle.prices[ETH] == pytest.approx(3300.0)


def test_model_oracle_is_the_median_of_several_updaters_each_step() -> None:
    model = ReflexivityModel(
        preset="crash",
        rng=11,
        steps=300,
        traders__n_traders=4,
        liquidators__n_liquidators=1,
        lenders__n_lenders=1,
        oracles__n_updaters=3,
        oracles__deviation_threshold=0.0,
    )
    eth_updaters = [u for u in model.updaters if u.asset == ETH]
    assert len(eth_updaters) == 3
    for u in eth_updaters:  # heterogeneous feeds: 1, 4 and 7 steps late
        u.latency_jitter = 3 * u.slot
    before_shock = 0.0
    for _ in range(260):
        model.step()
        np.testing.assert_array_equal(model.oracle.prices[1:], np.median(model.oracle.posts[:, 1:], axis=0))
        if model.steps == 240:
            before_shock = float(model.oracle.prices[ETH])
    # the shock starting at step 240 (-25% over 30 steps) reached the oracle through the updaters' latency: the
    # middle feed, 5 steps late, has seen 14 of its 30 steps (-12.6%)
    assert model.oracle.prices[ETH] < 0.9 * before_shock
    # in a falling market the laggards post higher prices; the protocol sees the middle one
    fresh, middle, stale = model.oracle.posts[:, ETH]
    assert fresh < middle < stale
    assert model.oracle.prices[ETH] == middle
