"""LeveragedTrader: holds leveraged long or short positions in the pool and trades them on a decision clock.

A trader has a strategy (what leverage it wants: `abm.agents.strategies`), a risk style (what it does when things
go wrong), a margin mode (one cross account, one isolated account per position, or one portfolio-margined
account) and a base leverage. Its state lives in the model's `TraderBook` (row = the trader's holder id); the agent
reads and writes that row. It sees market prices and its own accounts (docs/model.md, 2 Design concepts); the
protocol sees oracle prices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.agents.book import TraderBook
from abm.agents.strategies import STRATEGY_REGISTRY

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


class LeveragedTrader(mesa.Agent):
    """A leveraged trader. holder: its wallet row and its row in `model.book`. assets: indices of the risky
    assets it trades. accounts: one account id per asset (isolated) or the same id repeated."""

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int, assets: list[int]) -> None:
        super().__init__(model)
        self.holder = holder
        self.assets = assets
        engine = model.engine
        if self.mode == "isolated":
            self.accounts = [engine.open_account(holder, self.mode) for _ in assets]
        else:
            shared = engine.open_account(holder, self.mode)
            self.accounts = [shared for _ in assets]
        self._assets_by_account: dict[int, list[int]] = {}
        for acct, a in zip(self.accounts, self.assets, strict=True):
            self._assets_by_account.setdefault(acct, []).append(a)

    # --- its row of the trader book ---------------------------------------------------------------------------

    @property
    def book(self) -> TraderBook:
        return self.model.book

    @property
    def strategy(self) -> str:
        return self.book.strategy_name(self.holder)

    @property
    def risk_style(self) -> str:
        return self.book.risk_name(self.holder)

    @property
    def mode(self) -> str:
        return self.book.mode_name(self.holder)

    @property
    def direction(self) -> int:
        return int(self.book.direction[self.holder])

    @property
    def leverage(self) -> float:
        """The strategy's reference leverage (exposure / equity), drawn per trader in [leverage_min, max_leverage]."""
        return float(self.book.base_leverage[self.holder])

    @property
    def initial_equity(self) -> float:
        return float(self.book.initial_equity[self.holder])

    @property
    def peak_equity(self) -> float:
        return float(self.book.peak_equity[self.holder])

    @peak_equity.setter
    def peak_equity(self, usd: float) -> None:
        self.book.peak_equity[self.holder] = usd

    @property
    def out_until(self) -> int:
        """Step before which the trader stays out after a stop or a wipe-out (-1: not out)."""
        return int(self.book.out_until[self.holder])

    @out_until.setter
    def out_until(self, step: int) -> None:
        self.book.out_until[self.holder] = step

    # --- state seen by the trader (market prices) -------------------------------------------------------

    def equity_usd(self, prices: np.ndarray) -> float:
        """Collateral minus debt over its accounts, plus its wallet (USD at `prices`)."""
        return float(self.book.equity(prices, trader=self.holder))

    def exposure_usd(self, acct: int, asset: int, prices: np.ndarray) -> float:
        """Long: collateral value of the asset; short: debt value of the asset (USD)."""
        engine = self.model.engine
        if self.direction > 0:
            return float(engine.collateral[acct, asset] * prices[asset])
        return float(engine.debt_tokens(acct)[asset] * prices[asset])

    def current_leverage(self, prices: np.ndarray) -> float:
        """Exposure over the equity of its accounts (wallet excluded); 0 without equity."""
        exposure = sum(self.exposure_usd(acct, a, prices) for acct, a in zip(self.accounts, self.assets, strict=True))
        eq = float(self.model.engine.account_equity(prices, list(self._assets_by_account)).sum())
        return exposure / eq if eq > 0 else 0.0

    def has_position(self) -> bool:
        engine = self.model.engine
        accounts = list(self._assets_by_account)
        return bool(np.any(engine.collateral[accounts]) or np.any(engine.scaled_debt[accounts]))

    # --- decisions ----------------------------------------------------------------------------------------

    def target_leverage(self) -> float:
        """Leverage the strategy wants now (1 = unlevered, dimensionless)."""
        return STRATEGY_REGISTRY[self.strategy].target_leverage(self)

    def wanted_leverage(self) -> float:
        """The strategy's target within the trader's limits: `max_leverage`, its own leverage cap (the pool's LTV,
        and for a prudent trader its health-factor buffer), and the cost of borrowing: above
        `borrow_rate_tolerance` (per year) the borrowed part of the exposure shrinks in proportion to the rate."""
        m, cfg = self.model, self.model.config.traders
        target = min(self.target_leverage(), cfg.max_leverage, float(self.book.leverage_cap[self.holder]))
        debt_asset = 0 if self.direction > 0 else self.assets[0]
        rate = float(m.pool.borrow_rates()[debt_asset])
        carry = min(1.0, cfg.borrow_rate_tolerance / rate) if rate > 0 else 1.0
        # a long borrows (L - 1) of its equity; a short borrows L
        return 1.0 + (target - 1.0) * carry if self.direction > 0 else target * carry

    def step(self) -> None:
        """Act once (the model calls this only when the trader's clock fires or a risk alert rings)."""
        m = self.model
        if m.steps < self.out_until:
            return
        prices, oracle = m.market.prices, m.oracle.prices
        if not self.has_position():
            self._reenter()
            return
        equity = self.equity_usd(prices)
        self.peak_equity = max(self.peak_equity, equity)
        cfg = m.config.traders
        if equity <= 0:  # underwater: nothing left to manage; the liquidators will come
            return
        if self.risk_style == "stop_loss" and equity < (1.0 - cfg.stop_loss_drawdown) * self.peak_equity:
            self.close_all(oracle)
            self.out_until = m.steps + cfg.reentry_delay_steps
            return
        target = self.wanted_leverage()
        if self.risk_style == "prudent":
            worst = min(m.engine.account_health(acct, oracle) for acct in self._assets_by_account)
            if worst < cfg.prudent_buffer:
                target = min(target, self._leverage_for_hf(cfg.prudent_target_hf, oracle))
        self.rebalance(target, prices, oracle)

    def _leverage_for_hf(self, hf_target: float, oracle: np.ndarray) -> float:
        """Leverage at which a long (short) account reaches `hf_target` by selling collateral to repay debt."""
        engine = self.model.engine
        accounts = list(self._assets_by_account)
        coll = (engine.collateral[accounts] * oracle).sum(axis=0)
        debt = float((engine.scaled_debt[accounts] * self.model.pool.borrow_index * oracle).sum())
        c_total = float(coll.sum())
        if debt <= 0 or c_total <= 0:
            return self.leverage
        lt_eff = float((coll * self.model.pool.liquidation_threshold).sum() / c_total)
        # sell x of collateral and repay x of debt: (C - x) LT = H (D - x)  =>  x = (H D - LT C) / (H - LT)
        x = max((hf_target * debt - lt_eff * c_total) / (hf_target - lt_eff), 0.0)
        equity = c_total - debt
        if equity <= 0:
            return 1.0
        exposure_after = (c_total - x) if self.direction > 0 else (debt - x)
        return max(exposure_after / equity, 1.0 if self.direction > 0 else 0.0)

    def rebalance(self, target: float, prices: np.ndarray, oracle: np.ndarray) -> None:
        """Trade each position toward `target` leverage, outside a tolerance band (no churn on small gaps)."""
        m = self.model
        engine = m.engine
        tol = m.config.traders.rebalance_tolerance
        t = m.steps
        for acct, assets in self._assets_by_account.items():
            equity = float(engine.account_equity(prices, [acct])[0])
            if equity <= 0:
                continue
            goal = target * equity / len(assets)  # exposure per asset (USD)
            for a in assets:
                have = self.exposure_usd(acct, a, prices)
                gap = goal - have
                if abs(gap) <= tol * max(goal, have):
                    continue
                # one step's trade is bounded by a share of the market's depth; the rest waits for the next step
                bound = m.config.traders.max_trade_depth_share * m.market.effective_depth_of(a)
                if abs(gap) > bound:
                    gap = float(np.copysign(bound, gap))
                    self.book.next_decision[self.holder] = min(self.book.next_decision[self.holder], t + 1)
                if self.direction > 0:
                    if gap > 0:
                        engine.lever_long(acct, a, gap, 0.0, oracle, t)
                    else:
                        engine.delever_long(acct, a, -gap / prices[a], oracle, t)
                elif gap > 0:
                    engine.lever_short(acct, a, gap / prices[a], 0.0, oracle, t)
                else:
                    engine.delever_short(acct, a, -gap / prices[a], oracle, t)

    def close_all(self, oracle: np.ndarray) -> None:
        for acct in self._assets_by_account:
            self.model.engine.close_out(acct, oracle, self.model.steps)

    def open_positions(self, equity_usd: float, oracle: np.ndarray, genesis: bool) -> None:
        """Put `equity_usd` of wallet USD to work at the leverage the trader wants now (`wanted_leverage`), split
        evenly over its assets. genesis: a position that exists before the run, filled at the fundamental."""
        m = self.model
        share = equity_usd / len(self.assets)
        leverage = self.wanted_leverage()
        for acct, a in zip(self.accounts, self.assets, strict=True):
            if self.direction > 0:
                m.engine.lever_long(acct, a, share * (leverage - 1.0), share, oracle, m.steps, genesis=genesis)
            else:
                price = float(np.exp(m.fundamentals.log_f[a])) if genesis else m.market.price(a)
                borrow = share * leverage / price
                m.engine.lever_short(acct, a, borrow, share, oracle, m.steps, genesis=genesis)

    def _reenter(self) -> None:
        """After a wipe-out or a stop, come back with fresh equity from outside once the delay has passed."""
        m = self.model
        if m.config.traders.reentry_delay_steps <= 0 or m.steps >= m.total_steps:
            return
        if self.out_until < 0:  # first time we notice the trader is flat: start its delay
            self.out_until = m.steps + m.config.traders.reentry_delay_steps
            return
        wallet_usd = m.wallets.balance(self.holder, 0)
        fresh = max(self.initial_equity - wallet_usd, 0.0)
        m.wallets.fund_from_world(m.market, self.holder, 0, fresh)
        self.peak_equity = wallet_usd + fresh  # the drawdown counts from the re-entry
        self.out_until = -1
        self.open_positions(wallet_usd + fresh, m.oracle.prices, genesis=False)
