"""The liquidators' shared profit screen: one screen per state of the book, made again after every liquidation."""

from __future__ import annotations

from abm.agents.liquidator import _ProfitScreen
from abm.model import ReflexivityModel


def model_with_candidates() -> ReflexivityModel:
    """A small crash model whose oracle shows the risky assets 40% down: many accounts to liquidate."""
    m = ReflexivityModel(preset="crash", rng=4, steps=60, traders__n_traders=150)
    for _ in range(5):
        m.step()
    m.oracle.prices[1:] *= 0.6
    m._health_pass(m.oracle.prices)
    return m


def test_liquidators_share_a_screen_until_one_liquidates() -> None:
    m = model_with_candidates()
    cfg = m.config.liquidators
    threshold = cfg.gas_cost_usd + cfg.min_profit_usd
    candidates = m.liquidation_candidates(cfg.scan_latency_steps)
    assert len(candidates) > 10
    screen = _ProfitScreen.shared(m, candidates, threshold)
    assert _ProfitScreen.shared(m, candidates, threshold) is screen  # nothing liquidated since
    fresh = _ProfitScreen(m, candidates, threshold)  # what a screen made now would say: the same
    assert fresh.debt_usd == screen.debt_usd and fresh.factor == screen.factor
    assert (fresh.coll_of, fresh.debt_of) == (screen.coll_of, screen.debt_of)
    assert _ProfitScreen.shared(m, candidates, threshold + 1.0) is not screen  # another threshold
    screen = _ProfitScreen.shared(m, candidates, threshold)
    screen.passed_over.add(0)
    m.liquidators[0].step()  # liquidates: the book and the market moved
    assert m.liquidators[0].n_liquidations > 0
    after = _ProfitScreen.shared(m, candidates, threshold)
    assert after is not screen and after.passed_over == set()
    assert after.debt_usd != screen.debt_usd  # made from the book after the liquidations


def test_a_refresh_forgets_the_candidates_passed_over() -> None:
    m = model_with_candidates()
    candidates = m.liquidation_candidates(0)
    screen = _ProfitScreen(m, candidates, 30.0)
    screen.passed_over.update({0, 2})
    screen.refresh()
    assert screen.passed_over == set()
