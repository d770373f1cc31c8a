"""Liquidator: repays unhealthy accounts' debt, seizes collateral with the bonus, and sells it at once (SPEC 3.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


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
        for acct in m.liquidation_candidates(cfg.scan_latency_steps):
            if done >= cfg.capacity_per_step:
                break
            plan = engine.plan_liquidation(int(acct), oracle)
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
            m.record_liquidation(event_id, int(acct), self, j, repay, k, seize, hf)
            done += 1
