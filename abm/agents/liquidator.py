"""Liquidator: repays unhealthy accounts' debt, seizes collateral with the bonus, and sells it at once (SPEC 3.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.protocol import _row_sums

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

SCREEN_SLACK = 1e-9  # relative to the debt's USD value: far above the rounding of the exact profit check


class Liquidator(mesa.Agent):
    """A liquidation bot with capital (USD), a gas cost, a minimum profit, a scan latency and a per-step capacity.

    It acts only when the liquidation pays: value of the seized collateral at the market (after the slippage of
    selling it) minus the cost of the repaid debt (after the slippage of buying it, for a risky debt asset) minus
    gas must reach its minimum profit. With flash loans, its capital does not limit the size it can repay.
    """

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int) -> None:
        super().__init__(model)
        self.holder = holder
        self.n_liquidations = 0
        self.profit_usd = 0.0

    def step(self) -> None:
        m = self.model
        cfg = m.config.liquidators
        if cfg.capacity_per_step <= 0:
            return
        engine, market, wallets = m.engine, m.market, m.wallets
        oracle = m.oracle.prices
        done = 0
        candidates = m.liquidation_candidates(cfg.scan_latency_steps)
        screen = _ProfitScreen(m, candidates, cfg.gas_cost_usd + cfg.min_profit_usd)
        i = 0
        while done < cfg.capacity_per_step:
            i = screen.next_candidate(i)  # skips only candidates whose liquidation certainly would not pay
            if i >= len(candidates):
                break
            acct = int(candidates[i])
            i += 1
            plan = engine.plan_liquidation(acct, oracle)
            if plan is None:
                continue
            j, k, repay, seize, hf = plan
            cost = repay if j == 0 else market.quote_cost(j, repay)
            proceeds = seize if k == 0 else market.quote_sell(k, seize)
            if proceeds - cost - cfg.gas_cost_usd < cfg.min_profit_usd:
                continue
            own = wallets.balance(self.holder, 0)
            if cost + cfg.gas_cost_usd > own and not cfg.flash_loans:
                continue
            # flash loan from the outside world for the shortfall, repaid from the sale within the same step
            flash = max(cost + cfg.gas_cost_usd - own, 0.0)
            if flash > 0:
                market.pay_out(0, flash)
                wallets.credit(self.holder, 0, flash)
            event_id = m.next_event_id()
            t = m.steps
            if j != 0:
                wallets.debit(self.holder, 0, cost)
                bought = market.buy_exact(j, repay, "liq", event_id, t)
                wallets.credit(self.holder, j, repay)
                cost = bought
            else:
                cost = repay
            engine.liquidate(int(acct), j, k, repay, seize, self.holder)
            got = seize
            if k != 0:
                wallets.debit(self.holder, k, seize)
                got = market.sell(k, seize, "liq", event_id, t)
                wallets.credit(self.holder, 0, got)
            wallets.debit(self.holder, 0, cfg.gas_cost_usd)
            market.receive(0, cfg.gas_cost_usd)  # gas goes to block producers, outside the model
            if flash > 0:
                wallets.debit(self.holder, 0, flash)
                market.receive(0, flash)
            self.n_liquidations += 1
            self.profit_usd += got - cost - cfg.gas_cost_usd
            m.record_liquidation(event_id, acct, self, j, repay, k, seize, hf)
            done += 1
            screen.refresh()  # the trades moved market prices


class _ProfitScreen:
    """Which liquidation candidates might pay a liquidator, in the order given, from a vectorised upper bound.

    Liquidating an account repays r tokens of its largest debt asset j and seizes s = r o_j / o_k (1 + b_k) of its
    largest collateral asset k (o: oracle prices; b: bonus; the same relation holds when the collateral caps s).
    Buying r tokens of j costs at least r m_j and selling s of k raises at most s m_k (m: market prices before the
    trade; every impact model fills along a path that moves against the trader; m = 1 for USD). And r o_j is at
    most the account's debt in USD, d. So the profit before gas is at most

        d * max(0, max over collateral assets k of (1 + b_k) m_k / o_k - min over debt assets j of m_j / o_j).

    A candidate whose bound is below gas + minimum profit is one the liquidator would plan and then skip, so
    skipping it without planning changes nothing. During a liquidator's turn debts and the sets of debt and
    collateral assets only shrink and the oracle stays put, so d and the asset sets from the start remain bounds;
    market prices move with every liquidation, so the bound is refreshed after each.
    """

    def __init__(self, model: ReflexivityModel, candidates: np.ndarray, threshold: float) -> None:
        pool, engine = model.pool, model.engine
        self.market = model.market
        self.oracle = model.oracle.prices
        self.threshold = threshold
        self.n = len(candidates)
        debt = engine.scaled_debt[candidates] * pool.borrow_index
        self.has_debt = debt > 0
        self.has_coll = (engine.collateral[candidates] > 0) & pool.collateral_enabled
        self.debt_usd = _row_sums(debt * self.oracle)
        self.gain = (1.0 + pool.liquidation_bonus) / self.oracle
        self.refresh()

    def refresh(self) -> None:
        if self.n == 0:
            self.may_pay = np.zeros(0, dtype=np.int64)
            return
        prices = self.market.prices
        sale, cost = self.gain * prices, prices / self.oracle
        best_sale = np.full(self.n, -np.inf)
        cheapest = np.full(self.n, np.inf)
        for a in range(len(prices)):
            np.maximum(best_sale, np.where(self.has_coll[:, a], sale[a], -np.inf), out=best_sale)
            np.minimum(cheapest, np.where(self.has_debt[:, a], cost[a], np.inf), out=cheapest)
        bound = self.debt_usd * (np.maximum(best_sale - cheapest, 0.0) + SCREEN_SLACK)
        self.may_pay = np.flatnonzero(~(bound < self.threshold))  # NaN bounds are kept

    def next_candidate(self, i: int) -> int:
        """Index of the first candidate at or after i that might pay (len(candidates) if none)."""
        pos = int(np.searchsorted(self.may_pay, i))
        return int(self.may_pay[pos]) if pos < len(self.may_pay) else self.n
