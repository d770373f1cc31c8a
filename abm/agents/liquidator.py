"""Liquidator: repays unhealthy accounts' debt, seizes collateral with the bonus, and sells it at once
(docs/model.md, 3.3 Submodels: Liquidation)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.lending.margin import LiquidationPlan

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

SCREEN_SLACK = 1e-9  # relative to the USD amounts: far above the rounding apart of the screen and the exact quote


@dataclass(frozen=True)
class LiquidationQuote:
    """What a planned liquidation would cost and raise at the market now (USD), and the flash loan it needs."""

    cost_usd: float  # buying the repaid debt tokens (the debt itself when it is USD)
    proceeds_usd: float  # selling the seized collateral
    flash_usd: float  # borrowed from the outside world for the step, repaid from the sale


class Liquidator(mesa.Agent):
    """A liquidation bot with capital (USD), a gas cost, a minimum profit, a scan latency and a per-step capacity.

    It acts only when the liquidation pays: value of the seized collateral at the market (after the slippage of
    selling it) minus the cost of the repaid debt (after the slippage of buying it, for a risky debt asset) minus
    gas must reach its minimum profit. With flash loans, its capital does not limit the size it can repay.
    Each liquidation runs in four named steps: plan (the margin engine), quote, execute, book.
    """

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int) -> None:
        super().__init__(model)
        self.holder = holder
        self.n_liquidations = 0
        self.profit_usd = 0.0

    def step(self) -> None:
        """Work through the accounts seen as liquidatable, largest debt first, up to the per-step capacity."""
        m = self.model
        cfg = m.config.liquidators
        if cfg.capacity_per_step <= 0:
            return
        candidates = m.liquidation_candidates(cfg.scan_latency_steps)
        if m.auctions is not None:  # english / dutch: kick to auctions instead (abm.agents.auction_desk)
            m.auctions.work(self, candidates, cfg.capacity_per_step)
            return
        if len(candidates) == 0:
            return
        screen = _ProfitScreen.shared(m, candidates, cfg.gas_cost_usd + cfg.min_profit_usd)
        done = i = 0
        while done < cfg.capacity_per_step:
            i = screen.next_candidate(i)  # skips only candidates whose liquidation certainly would not pay
            if i >= len(candidates):
                break
            acct = int(candidates[i])
            i += 1
            if i - 1 in screen.passed_over:  # an earlier liquidator quoted it in this very state and let it be
                continue
            plan = screen.plans.plan(i - 1)  # `plan_liquidation` of the account now; the screen keeps planned ones
            assert plan is not None
            quote = self.quote(plan)
            if quote is None:
                if cfg.flash_loans:  # not a matter of this liquidator's own capital
                    screen.passed_over.add(i - 1)
                continue
            self.execute(acct, plan, quote)
            done += 1
            screen.liquidated(i - 1)  # the account's plan and market prices changed

    def quote(self, plan: LiquidationPlan) -> LiquidationQuote | None:
        """Price `plan` at the market now; None if it would not pay its gas and minimum profit, or if the
        liquidator could not fund it (no flash loans and too little capital)."""
        cfg = self.model.config.liquidators
        market = self.model.market
        j, k = plan.debt_asset, plan.collateral_asset
        cost = plan.repay if j == 0 else market.quote_cost(j, plan.repay)
        if (j, k) == self.model.staked_pair:  # staking: one swap in the token's pool, priced by the token's impact
            cost = plan.repay * market.price(j)
        proceeds = plan.seize if k == 0 else market.quote_sell(k, plan.seize)
        if proceeds - cost - cfg.gas_cost_usd < cfg.min_profit_usd:
            return None
        own = self.model.wallets.balance(self.holder, 0)
        if cost + cfg.gas_cost_usd > own and not cfg.flash_loans:
            return None
        return LiquidationQuote(cost, proceeds, flash_usd=max(cost + cfg.gas_cost_usd - own, 0.0))

    def execute(self, acct: int, plan: LiquidationPlan, quote: LiquidationQuote) -> None:
        """Carry out `plan` in one step: borrow the flash loan, buy the debt tokens, liquidate, sell the seized
        collateral, pay gas, repay the flash loan; then book it."""
        m = self.model
        market, wallets, me = m.market, m.wallets, self.holder
        gas = m.config.liquidators.gas_cost_usd
        j, k = plan.debt_asset, plan.collateral_asset
        event_id = m.attribution.next_event_id()
        if quote.flash_usd > 0:
            wallets.fund_from_world(market, me, 0, quote.flash_usd)
        cost = plan.repay
        if (j, k) == m.staked_pair:  # staking: the pool pays out the base asset; its price impact is the token's
            wallets.debit(me, 0, quote.cost_usd)
            market.receive(0, quote.cost_usd)
            market.pay_out(j, plan.repay)
            wallets.credit(me, j, plan.repay)
            cost = quote.cost_usd
        elif j != 0:
            wallets.debit(me, 0, quote.cost_usd)
            cost = market.buy_exact(j, plan.repay, "liq", event_id, m.steps)
            wallets.credit(me, j, plan.repay)
        m.engine.liquidate(acct, plan, me)
        got = plan.seize
        if k != 0:
            wallets.debit(me, k, plan.seize)
            got = market.sell(k, plan.seize, "liq", event_id, m.steps)
            wallets.credit(me, 0, got)
        wallets.pay_to_world(market, me, 0, gas)  # gas goes to block producers, outside the model
        if quote.flash_usd > 0:
            wallets.pay_to_world(market, me, 0, quote.flash_usd)
        self.book(event_id, acct, plan, profit_usd=got - cost - gas)

    def book(self, event_id: int, acct: int, plan: LiquidationPlan, profit_usd: float) -> None:
        """Count the liquidation and its profit (USD), and record it with its attribution."""
        self.n_liquidations += 1
        self.profit_usd += profit_usd
        self.model.attribution.record(event_id, acct, self.unique_id, plan)


class _ProfitScreen:
    """Which liquidation candidates might pay a liquidator, in the order given, with their plans.

    The screen plans every candidate at once (`MarginEngine.liquidation_plans`: `plan_liquidation`'s arithmetic,
    so the same plans bit for bit, which the liquidator then quotes) and bounds what quoting each plan would give
    at the market now: the seized collateral's proceeds from above and the repaid debt's cost from below, by the
    asset's impact model (`ImpactModel.proceeds_bound`, `cost_bound`: its own formula on arrays, or the trade
    without slippage; USD at face value; the staked pair's cost as `Liquidator.quote` prices it). A candidate
    without a plan, or whose proceeds bound minus cost bound falls short of gas + minimum profit by more than
    SCREEN_SLACK of the amounts (array and scalar arithmetic may round apart), is one the liquidator would plan and
    let be, so skipping it changes nothing; the exact quote decides for the others. A NaN bound (an infinite cost)
    is kept.

    The liquidators of a step share one screen (`shared`): during their turns only their liquidations change the
    book and the market (the oracle stays put), and a liquidation changes the plan of the account liquidated only
    (`liquidated` plans it again) and market prices (the bounds are worked out again). A candidate one liquidator
    quoted and let be (`passed_over`: a quote that would not pay its gas and minimum profit with flash loans) is one
    every other would let be too, until the next liquidation.
    """

    @classmethod
    def shared(cls, model: ReflexivityModel, candidates: np.ndarray, threshold: float) -> _ProfitScreen:
        """The screen of `candidates` at the state now: the model's `profit_screen` when it is up to date with
        this state (the same candidates and threshold, and every liquidation since counted by its `liquidated`:
        `AttributionLedger.n_events` counts them), else a new one, which becomes the model's."""
        screen = model.profit_screen
        if (
            screen is None
            or screen.candidates is not candidates
            or screen.events != model.attribution.n_events
            or screen.threshold != threshold
        ):
            screen = model.profit_screen = cls(model, candidates, threshold)
        return screen

    def __init__(self, model: ReflexivityModel, candidates: np.ndarray, threshold: float) -> None:
        self.model = model
        self.candidates = candidates
        self.events = model.attribution.n_events  # the liquidations so far: the state this screen follows
        self.threshold = threshold
        self.n = len(candidates)
        self.plans = model.engine.liquidation_plans(candidates, model.oracle.prices)
        self.refresh()

    def liquidated(self, i: int) -> None:
        """Candidate i was just liquidated: plan it again and bound every plan at the market prices now."""
        m = self.model
        self.events = m.attribution.n_events
        again = m.engine.liquidation_plans(self.candidates[i : i + 1], m.oracle.prices)
        for field in fields(again):
            getattr(self.plans, field.name)[i] = getattr(again, field.name)[0]
        self.refresh()

    def refresh(self) -> None:
        """Bound each plan's profit at the market prices now and keep the candidates that might pay; forget which
        candidates were passed over (a liquidation moved the market: they may pay now)."""
        self.passed_over: set[int] = set()  # indices of candidates planned at this state that would not pay
        plans, market, staked_pair = self.plans, self.model.market, self.model.staked_pair
        live = np.flatnonzero(plans.liquidatable)
        sold, bought = plans.collateral_asset[live], plans.debt_asset[live]
        proceeds, cost = plans.seize[live], plans.repay[live]  # USD at face value; copies (fancy indexing)
        n_sold, n_bought = np.bincount(sold, minlength=market.n_assets), np.bincount(bought, minlength=market.n_assets)
        for a in range(1, market.n_assets):
            if n_sold[a]:
                rows = sold == a
                proceeds[rows] = market.impact[a].proceeds_bound(market, a, proceeds[rows])
            if n_bought[a]:
                rows = bought == a
                cost[rows] = market.impact[a].cost_bound(market, a, cost[rows])
        if staked_pair is not None:  # one swap in the token's pool (`Liquidator.quote`)
            j, k = staked_pair
            rows = (bought == j) & (sold == k)
            cost[rows] = plans.repay[live[rows]] * market.price(j)
        with np.errstate(invalid="ignore"):
            bound = proceeds - cost + SCREEN_SLACK * (proceeds + cost + self.threshold)
        self.might_pay: list[int] = live[~(bound < self.threshold)].tolist()

    def next_candidate(self, i: int) -> int:
        """Index of the first candidate at or after i that might pay (len(candidates) if none)."""
        r = bisect_left(self.might_pay, i)
        return self.might_pay[r] if r < len(self.might_pay) else self.n
