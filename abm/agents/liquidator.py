"""Liquidator: repays unhealthy accounts' debt, seizes collateral with the bonus, and sells it at once
(docs/model.md, 3.3 Submodels: Liquidation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.lending.margin import LiquidationPlan
from abm.numerics import row_sums

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

SCREEN_SLACK = 1e-9  # relative to the debt's USD value: far above the rounding of the exact profit check


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
            if i - 1 in screen.passed_over:  # an earlier liquidator planned it in this very state and let it be
                continue
            plan = m.engine.plan_liquidation(acct, m.oracle.prices)
            quote = self.quote(plan) if plan is not None else None
            if plan is None or quote is None:
                if plan is None or cfg.flash_loans:  # not a matter of this liquidator's own capital
                    screen.passed_over.add(i - 1)
                continue
            self.execute(acct, plan, quote)
            done += 1
            screen.refresh()  # the trades moved market prices

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
    """Which liquidation candidates might pay a liquidator, in the order given, from an upper bound on the profit.

    Liquidating an account repays r tokens of its largest debt asset j and seizes s = r o_j / o_k (1 + b_k) of its
    largest collateral asset k (o: oracle prices; b: bonus; the same relation holds when the collateral caps s).
    Buying r tokens of j costs at least r m_j and selling s of k raises at most s m_k (m: market prices before the
    trade; every impact model fills along a path that moves against the trader; m = 1 for USD). And r o_j is at
    most the account's debt in USD, d. So the profit before gas is at most

        d * max(0, max over collateral assets k of (1 + b_k) m_k / o_k - min over debt assets j of m_j / o_j).

    A candidate whose bound is below gas + minimum profit is one the liquidator would plan and then skip, so
    skipping it without planning changes nothing. During a liquidator's turn debts and the sets of debt and
    collateral assets only shrink and the oracle stays put, so d and the asset sets from the start remain bounds;
    market prices move with every liquidation, so the bound is refreshed after each. The factor after d depends on
    the account only through its collateral set and its debt set: a refresh works it out per pair of sets present
    (a small table), and the scan multiplies it by d only for the candidates it reaches (a liquidator's capacity
    usually runs out long before the list does).

    The liquidators of a step share one screen (`shared`) until one of them liquidates: until then the book, the
    oracle and the market are what they were when it was made, so a new one would be the same, and a candidate one
    liquidator planned and let be (`passed_over`: no plan, or a quote that would not pay its gas and minimum profit
    with flash loans) is one every other would plan and let be too.
    """

    @classmethod
    def shared(cls, model: ReflexivityModel, candidates: np.ndarray, threshold: float) -> _ProfitScreen:
        """The screen of `candidates` at the state now: the model's `profit_screen` when it was made from this
        state (the same candidates and threshold, and no liquidation since: `AttributionLedger.n_events` counts
        them), else a new one, which becomes the model's."""
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
        pool, engine = model.pool, model.engine
        self.candidates = candidates
        self.events = model.attribution.n_events  # the liquidations so far: the state this screen was made from
        self.market = model.market
        self.oracle = model.oracle.prices
        self.threshold = threshold
        self.n = len(candidates)
        debt = engine.scaled_debt[candidates] * pool.borrow_index
        self.coll_sets, coll_of = _asset_sets((engine.collateral[candidates] > 0) & pool.collateral_enabled)
        self.debt_sets, debt_of = _asset_sets(debt > 0)
        self.coll_of, self.debt_of = coll_of.tolist(), debt_of.tolist()  # per candidate, read one at a time
        self.debt_usd: list[float] = row_sums(debt * self.oracle).tolist()
        self.gain = (1.0 + pool.liquidation_bonus) / self.oracle
        self.refresh()

    def refresh(self) -> None:
        """Work out the bound's factor for each (collateral set, debt set) pair at the market prices now; forget
        which candidates were passed over (a liquidation moved the market: they may pay now)."""
        self.passed_over: set[int] = set()  # indices of candidates planned at this state that would not pay
        prices = self.market.prices
        sale, cost = self.gain * prices, prices / self.oracle
        best_sale = np.where(self.coll_sets, sale, -np.inf).max(axis=1)  # per collateral set
        cheapest = np.where(self.debt_sets, cost, np.inf).min(axis=1)  # per debt set
        self.factor: list[list[float]] = (np.maximum(best_sale[:, None] - cheapest, 0.0) + SCREEN_SLACK).tolist()

    def next_candidate(self, i: int) -> int:
        """Index of the first candidate at or after i that might pay (len(candidates) if none)."""
        while i < self.n:
            bound = self.debt_usd[i] * self.factor[self.coll_of[i]][self.debt_of[i]]
            if not bound < self.threshold:  # NaN bounds are kept
                return i
            i += 1
        return self.n


def _asset_sets(held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `held` (accounts x assets, bool: which assets each account holds), and each account's
    row among them. Rows are coded as bit sets in int64 (up to 63 assets) because sorting integers is much faster
    than sorting rows."""
    bits = np.left_shift(1, np.arange(held.shape[1], dtype=np.int64))
    codes, of = np.unique(held @ bits, return_inverse=True)
    return (codes[:, None] & bits) > 0, of
