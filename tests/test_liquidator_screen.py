"""The liquidators' shared profit screen: every candidate planned at once, each plan's profit bounded by the impact
models, one screen per step kept up to date by the liquidations."""

from __future__ import annotations

import numpy as np
import pytest

from abm.agents.liquidator import _ProfitScreen
from abm.market.impact_models import IMPACT_MODELS
from abm.model import ReflexivityModel


def model_with_candidates(drop: float = 0.6, impact: str = "linear", depth_scale: float = 1.0) -> ReflexivityModel:
    """A small crash model whose market and oracle show the risky assets down to `drop` of their price: many
    accounts to liquidate, the deepest under water with more collateral than the market absorbs at a profit."""
    overrides = {
        "traders__n_traders": 150,
        "assets__ETH__impact": impact,
        "assets__BTC__impact": impact,
        "market__depth_scale": depth_scale,
    }
    m = ReflexivityModel(preset="crash", rng=4, steps=60, **overrides)
    for _ in range(5):
        m.step()
    for k in (1, 2):  # sales take the market there too
        target = m.market.price(k) * drop
        while m.market.price(k) > target:
            m.market.sell(k, 0.02 * m.market.effective_depth_of(k) / m.market.price(k))
    m.oracle.prices[1:] *= drop
    m._health_pass(m.oracle.prices)
    return m


def pays(m: ReflexivityModel, acct: int) -> bool:
    """What a liquidator with flash loans decides by planning and quoting the account now."""
    plan = m.engine.plan_liquidation(acct, m.oracle.prices)
    return plan is not None and m.liquidators[0].quote(plan) is not None


@pytest.mark.parametrize(
    ("drop", "impact", "depth_scale"),
    [(0.6, "linear", 1.0), (0.3, "linear", 0.05), (0.3, "cpmm", 0.05), (0.3, "sqrt", 0.05), (0.45, "linear", 0.2)],
)
def test_the_screen_skips_only_candidates_that_would_not_pay(drop: float, impact: str, depth_scale: float) -> None:
    m = model_with_candidates(drop, impact, depth_scale)
    cfg = m.config.liquidators
    assert cfg.flash_loans
    candidates = m.liquidation_candidates(0)
    screen = _ProfitScreen(m, candidates, cfg.gas_cost_usd + cfg.min_profit_usd)
    decided = [pays(m, int(a)) for a in candidates]
    kept = set(screen.might_pay)
    assert all(i in kept for i, ok in enumerate(decided) if ok)  # sound: never skips one that pays
    if impact != "sqrt":  # the closed forms bound the quotes to rounding: the screen keeps only those that pay
        assert kept == {i for i, ok in enumerate(decided) if ok}
        if depth_scale < 1.0:  # thin markets: some deep under water do not pay, which the screen saw
            assert len(kept) < int(screen.plans.liquidatable.sum())


def test_the_screens_plans_are_the_margin_engines() -> None:
    m = model_with_candidates(0.45, depth_scale=0.2)
    candidates = m.liquidation_candidates(0)
    screen = _ProfitScreen(m, candidates, 30.0)
    for i, acct in enumerate(candidates.tolist()):
        assert screen.plans.plan(i) == m.engine.plan_liquidation(acct, m.oracle.prices)


def test_liquidators_share_a_screen_kept_up_to_date_by_their_liquidations() -> None:
    m = model_with_candidates(0.45, depth_scale=0.2)
    cfg = m.config.liquidators
    threshold = cfg.gas_cost_usd + cfg.min_profit_usd
    candidates = m.liquidation_candidates(cfg.scan_latency_steps)
    assert len(candidates) > 10
    screen = _ProfitScreen.shared(m, candidates, threshold)
    assert _ProfitScreen.shared(m, candidates, threshold) is screen  # nothing liquidated since
    assert _ProfitScreen.shared(m, candidates, threshold + 1.0) is not screen  # another threshold
    screen = _ProfitScreen.shared(m, candidates, threshold)
    screen.passed_over.add(0)
    m.liquidators[0].step()  # liquidates: the book and the market moved
    assert m.liquidators[0].n_liquidations > 0
    assert _ProfitScreen.shared(m, candidates, threshold) is screen and screen.passed_over == set()
    fresh = _ProfitScreen(m, candidates, threshold)  # what a screen made now says: the same
    for i in range(len(candidates)):
        assert screen.plans.plan(i) == fresh.plans.plan(i)
    assert screen.might_pay == fresh.might_pay
    m.attribution.next_event_id()  # a liquidation the screen did not see: a new one
    assert _ProfitScreen.shared(m, candidates, threshold) is not screen


def test_a_refresh_forgets_the_candidates_passed_over() -> None:
    m = model_with_candidates()
    candidates = m.liquidation_candidates(0)
    screen = _ProfitScreen(m, candidates, 30.0)
    screen.passed_over.update({0, 2})
    screen.refresh()
    assert screen.passed_over == set()


@pytest.mark.parametrize("impact", sorted(IMPACT_MODELS))
def test_impact_bounds_bracket_the_quotes(impact: str) -> None:
    m = model_with_candidates(impact=impact, depth_scale=0.1)
    market = m.market
    market.m[1] = -0.05  # a market already pushed down
    market.impact[1].sync(market, 1)
    model = IMPACT_MODELS[impact]
    tokens = np.geomspace(1e-3, 0.9 * market.depth_usd[1] / market.price(1), 25)
    proceeds = model.proceeds_bound(market, 1, tokens)
    cost = model.cost_bound(market, 1, tokens)
    for t, hi, lo in zip(tokens.tolist(), proceeds.tolist(), cost.tolist(), strict=True):
        sale, purchase = market.quote_sell(1, t), market.quote_cost(1, t)
        assert sale <= hi * (1 + 1e-12) and lo <= purchase * (1 + 1e-12)
        if impact != "sqrt":  # the model's own formula
            assert hi == pytest.approx(sale, rel=1e-12)
            assert lo == pytest.approx(purchase, rel=1e-12) or purchase == np.inf
        else:  # no slippage: the price now
            assert hi == t * market.price(1) == lo
