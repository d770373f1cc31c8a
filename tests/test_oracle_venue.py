"""The thin oracle venue (docs/model.md, 3.3 Submodels: Oracles) and the oracle attacker that manipulates it
(docs/model.md, 3.3 Submodels: Adversaries): the venue's hold cost against worked numbers, an untraded venue is the
market, the attacker moves the oracle through the venue while the deep market stays where it is, the TWAP window
makes that dearer, a median whose majority reads the deep market makes it stand down, and the venue is inside the
token ledgers."""

from __future__ import annotations

import re

import numpy as np
import pytest
from attack_helpers import oracle_attack_model

from abm import ModelConfig, ReflexivityModel
from abm import protocol as P
from abm.agents.adversary import adversary_summary
from abm.agents.oracle_attacker import OracleAttacker
from abm.errors import ConfigError, InvariantError
from abm.invariants import check_invariants

# traders who do not answer anything (hodlers within their rebalancing band, no stop-losses): what the attacker pays
# is its own hold against arbitrage, as the formulas price it
PASSIVE = {
    "traders.strategy_mix": {"hodl": 1.0},
    "traders.risk_mix": {"stubborn": 1.0},
    "traders.rebalance_tolerance": 100.0,
}


def venue_model(twap: int, n_updaters: int, corrupt: int, steps: int = 80, **overrides: object) -> ReflexivityModel:
    return oracle_attack_model(twap, n_updaters, corrupt, steps, **overrides)


def run(m: ReflexivityModel) -> None:
    for _ in range(m.total_steps):
        m.step()


# --- the formula -------------------------------------------------------------------------------------------------


def test_venue_hold_cost_worked_numbers() -> None:
    # depth $20M, push 0.1, arbitrage closing half the gap a step: each held step re-sells 20M * 0.1 * 0.5 = $1M of
    # proceeds for tokens worth 20M e^0.1 (1 - e^-0.05) = $1,077,996 at the market price; over 10 steps the
    # difference is 10 * 77,996 = $779,964 (small-push approximation 20M 10 0.01 0.5 0.75 = $750,000)
    assert P.venue_hold_cost(0.1, 2.0e7, 10.0, 0.5) == pytest.approx(779964.34, rel=1e-6)
    assert P.venue_hold_cost(0.1, 2.0e7, 10.0, 0.5) == pytest.approx(750000.0, rel=0.05)
    # linear in the hold and in the depth; nothing without a hold (the push itself round-trips at no cost)
    assert P.venue_hold_cost(0.1, 2.0e7, 20.0, 0.5) == pytest.approx(2 * P.venue_hold_cost(0.1, 2.0e7, 10.0, 0.5))
    assert P.venue_hold_cost(0.1, 4.0e7, 10.0, 0.5) == pytest.approx(2 * P.venue_hold_cost(0.1, 2.0e7, 10.0, 0.5))
    assert P.venue_hold_cost(0.1, 2.0e7, 0.0, 0.5) == 0.0
    # faster arbitrage costs more to hold against
    assert P.venue_hold_cost(0.1, 2.0e7, 10.0, 0.9) > P.venue_hold_cost(0.1, 2.0e7, 10.0, 0.5)
    with pytest.raises(ValueError, match="arbitrage_fraction must be in"):
        P.venue_hold_cost(0.1, 2.0e7, 10.0, 1.5)


# --- the venue -----------------------------------------------------------------------------------------------------


def test_an_untraded_venue_is_the_market() -> None:
    # nobody trades on the venue: its price is the market's, so its reader posts what a market reader would
    plain = venue_model(5, 3, 0, steps=40, **{"attacker.enabled": False, "oracle_venue.enabled": False})
    with_venue = venue_model(5, 3, 0, steps=40, **{"attacker.enabled": False})
    run(plain)
    run(with_venue)
    venue = with_venue.oracle_venue
    assert venue is not None and plain.oracle_venue is None
    np.testing.assert_array_equal(venue.history.recorded_market[:, 1], with_venue.history.recorded_market[:, 1])
    np.testing.assert_array_equal(plain.history.recorded_market, with_venue.history.recorded_market)
    np.testing.assert_array_equal(plain.oracle.posts, with_venue.oracle.posts)


def test_the_attacker_moves_the_oracle_through_the_venue_not_the_market() -> None:
    m = venue_model(5, 3, 1, **PASSIVE)
    a = 1
    lowest_market = np.inf
    while m.attackers[0].landed_step < 0 and m.steps < 40:
        m.step()
        lowest_market = min(lowest_market, m.market.price(a))
    attacker, venue = m.attackers[0], m.oracle_venue
    assert venue is not None and attacker.route == "venue" and attacker.landed_step >= 0
    # the oracle shows the target; the venue was held there; the deep market did not go near it
    assert m.oracle.prices[a] <= attacker.target * (1 + m.config.oracles.deviation_threshold + 1e-9)
    assert venue.price() == pytest.approx(attacker.target, rel=1e-6)
    assert lowest_market > attacker.target * 1.05
    # the tokens it sold short went into the venue (its side of the outside world holds them)
    assert venue.market.world_net[a] == pytest.approx(attacker.short[a])
    run_rest = m.total_steps - m.steps
    for _ in range(run_rest):
        m.step()
    # it covered: nothing owed, and the venue's arbitrage pulls it back to the market
    assert attacker.state == "done" and attacker.short[a] == 0.0 and attacker.n_liquidations > 0
    assert venue.price() == pytest.approx(m.market.price(a), rel=1e-3)


def test_a_longer_twap_window_costs_more_to_hold_on_the_venue() -> None:
    short, long = venue_model(1, 3, 1, **PASSIVE), venue_model(20, 3, 1, **PASSIVE)
    run(short)
    run(long)
    a_short, a_long = short.attackers[0], long.attackers[0]
    assert a_short.landed_step >= 0 and a_long.landed_step >= 0
    assert a_long.landed_step > a_short.landed_step
    assert a_long.peak_short_usd > a_short.peak_short_usd
    assert a_long.cost_usd > 3 * a_short.cost_usd > 0
    # the formula's price of the longer hold is what it paid, within the steps it held beyond the minimum
    assert a_long.expected_cost_usd == pytest.approx(a_long.cost_usd, rel=0.25)
    assert a_long.expected_cost_usd > a_short.expected_cost_usd


def test_a_median_whose_majority_reads_the_market_makes_it_stand_down() -> None:
    m = venue_model(5, 5, 1)
    run(m)
    attacker = m.attackers[0]
    # its corrupted updater and the venue's reader are two of five: the venue cannot move the median
    assert attacker.route == "none" and attacker.state == "done"
    assert attacker.peak_short_usd == 0.0 and attacker.landed_step == -1 and attacker.profit_usd() == 0.0
    # what the defence leaves it: holding the deep market (100 times deeper), priced but not paid
    push = float(np.log(1 / (1 - m.config.attacker.push)))
    venue_cost = P.venue_hold_cost(push, m.config.oracle_venue.depth_usd, 5 + 1 + 1 + 1, 0.5)
    assert attacker.expected_cost_usd > venue_cost
    assert attacker.expected_capital_usd > 100 * m.config.oracle_venue.depth_usd * (np.expm1(push))


def test_a_rational_attacker_attacks_only_when_the_priced_gain_beats_the_priced_cost_by_its_edge() -> None:
    def started(twap: int, edge: float) -> OracleAttacker:
        m = venue_model(twap, 3, 1, **{"attacker.rational": True, "attacker.min_edge": edge})
        while m.steps <= m.config.attacker.start_step + 1:
            m.step()
        return m.attackers[0]

    # TWAP 5: the venue's hold is priced under the exposed accounts' gain; its edge decides
    probe = started(5, 0.0)
    gain, cost = probe.expected_gain_usd, probe.expected_cost_usd
    assert gain > 1.2 * cost > 0 and probe.attacked and probe.peak_short_usd > 0
    ratio = gain / cost - 1.0  # the edge at which it is indifferent
    keen, shy = started(5, 0.9 * ratio), started(5, 1.1 * ratio)
    assert (
        (keen.expected_gain_usd, keen.expected_cost_usd)
        == (gain, cost)
        == (shy.expected_gain_usd, shy.expected_cost_usd)
    )
    assert keen.attacked and keen.state in ("push", "landed") and keen.peak_short_usd > 0
    assert not shy.attacked and shy.state == "done" and shy.peak_short_usd == 0.0 and shy.profit_usd() == 0.0
    # TWAP 30: holding the venue for 32 steps is priced above the gain: it stands down even with no edge asked
    late = started(30, 0.0)
    assert late.expected_gain_usd == pytest.approx(gain) and late.expected_cost_usd > gain
    assert not late.attacked and late.peak_short_usd == 0.0 and late.landed_step == -1
    # its summary says so, next to its profit
    m = venue_model(30, 3, 1, steps=12, **{"attacker.rational": True})
    run(m)
    summary = adversary_summary(m)
    assert summary["attacker_attacked"] == 0 and summary["attacker_profit_usd"] == 0.0
    assert summary["attacker_expected_cost_usd"] > summary["attacker_expected_gain_usd"] > 0


def test_the_venue_is_inside_the_token_ledgers() -> None:
    m = venue_model(5, 1, 0)  # the only updater reads the venue: the attacker trades it (invariants every step)
    for _ in range(12):
        m.step()
    venue = m.oracle_venue
    assert venue is not None and m.attackers[0].peak_short_usd > 0 and venue.market.world_net[1] > 0
    venue.market.world_net[1] += 1.0  # a token appearing on the venue's side of the world is a leak the check names
    with pytest.raises(InvariantError, match="conservation of ETH broken"):
        check_invariants(m)


def test_oracle_venue_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=re.escape("oracle_venue.readers = 2 must be <= oracles.n_updaters = 1")):
        ModelConfig.from_preset("oracle_attack", {"oracle_venue.readers": 2})
    with pytest.raises(ConfigError, match=re.escape("oracle_venue.asset = 'DOGE'")):
        ModelConfig.from_preset("oracle_attack", {"oracle_venue.asset": "DOGE"})
    with pytest.raises(ConfigError, match=re.escape("oracle_venue.arbitrage_fraction")):
        ModelConfig.from_preset("oracle_attack", {"oracle_venue.arbitrage_fraction": 1.0})
    with pytest.raises(ConfigError, match=re.escape("attacker.min_edge")):
        ModelConfig.from_preset("oracle_attack", {"attacker.min_edge": -0.1})
