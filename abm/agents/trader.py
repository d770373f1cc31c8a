"""LeveragedTrader: holds leveraged long or short positions in the pool and trades them on a decision clock.

A trader has a strategy (what leverage it wants), a risk style (what it does when things go wrong), a margin mode
(one cross account, one isolated account per position, or one portfolio-margined account) and a target leverage.
It sees market prices and its own accounts (SPEC 2, sensing); the protocol sees oracle prices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

STRATEGIES = ("momentum", "contrarian", "vol_target", "hodl", "short")
RISK_STYLES = ("stubborn", "prudent", "stop_loss")


class LeveragedTrader(mesa.Agent):
    """A leveraged trader.

    holder: its wallet row. assets: indices of the risky assets it trades. leverage: its base target leverage
    (exposure / equity, dimensionless). accounts: one account id per asset (isolated) or the same id repeated.
    """

    model: ReflexivityModel

    def __init__(
        self,
        model: ReflexivityModel,
        holder: int,
        strategy: str,
        risk_style: str,
        mode: str,
        assets: list[int],
        leverage: float,
        equity_usd: float,
    ) -> None:
        super().__init__(model)
        self.holder = holder
        self.strategy = strategy
        self.risk_style = risk_style
        self.mode = mode
        self.assets = assets
        self.leverage = leverage
        self.initial_equity = equity_usd
        self.direction = -1 if strategy == "short" else 1
        engine = model.engine
        if mode == "isolated":
            self.accounts = [engine.open_account(holder, mode) for _ in assets]
        else:
            shared = engine.open_account(holder, mode)
            self.accounts = [shared for _ in assets]
        self._unique_accounts = tuple(sorted(set(self.accounts)))
        self._assets_by_account: dict[int, list[int]] = {}
        for acct, a in zip(self.accounts, self.assets, strict=True):
            self._assets_by_account.setdefault(acct, []).append(a)
        self.peak_equity = equity_usd
        self.out_until = -1  # step before which the trader stays out after a stop or a wipe-out

    @property
    def out_until(self) -> int:
        """Step before which the trader stays out after a stop or a wipe-out (-1: not out). Kept in the model's
        `out_until` array (indexed by holder), so the model skips traders still out without calling them."""
        return int(self.model.out_until[self.holder])

    @out_until.setter
    def out_until(self, step: int) -> None:
        self.model.out_until[self.holder] = step

    # --- state seen by the trader (market prices) -------------------------------------------------------

    def unique_accounts(self) -> list[int]:
        return list(self._unique_accounts)

    def equity_usd(self, prices: np.ndarray) -> float:
        """Collateral minus debt over its accounts, plus its wallet (USD at `prices`)."""
        engine = self.model.engine
        total = float(self.model.wallets.balances[self.holder] @ prices)
        for acct in self._unique_accounts:
            total += float(engine.collateral[acct] @ prices - engine.debt_tokens(acct) @ prices)
        return total

    def _account_equity(self, acct: int, prices: np.ndarray) -> float:
        engine = self.model.engine
        return float(engine.collateral[acct] @ prices - engine.debt_tokens(acct) @ prices)

    def exposure_usd(self, acct: int, asset: int, prices: np.ndarray) -> float:
        """Long: collateral value of the asset; short: debt value of the asset (USD)."""
        engine = self.model.engine
        if self.direction > 0:
            return float(engine.collateral[acct, asset] * prices[asset])
        return float(engine.debt_tokens(acct)[asset] * prices[asset])

    # --- decisions ----------------------------------------------------------------------------------------

    def target_leverage(self) -> float:
        """Leverage the strategy wants now (1 = unlevered, dimensionless)."""
        m = self.model
        cfg = m.config.traders
        t = m.steps
        hist = m.log_price_hist
        a = self.assets[0]
        if self.strategy in ("hodl", "short"):
            return self.leverage
        if self.strategy == "momentum":
            past = hist[max(t - 1 - cfg.momentum_lookback_steps, 0), a]
            return self.leverage if hist[t - 1, a] >= past else 1.0
        if self.strategy == "contrarian":
            gap = hist[t - 1, a] - m.anchor_log_price[a]
            if gap <= -cfg.contrarian_band:
                return self.leverage
            if gap >= cfg.contrarian_band:
                return 1.0
            return self.current_leverage(m.market.prices) or self.leverage
        # vol_target: pro-cyclical; leverage falls when realised volatility rises
        vol = max(float(m.market.realised_vol()[a]), 1e-3)
        # np.clip(x, 1, max_leverage) on a scalar, without the array round trip (same value, NaN kept)
        return min(max(self.leverage * cfg.vol_target / vol, 1.0), cfg.max_leverage)

    def current_leverage(self, prices: np.ndarray) -> float:
        exposure = sum(self.exposure_usd(acct, a, prices) for acct, a in zip(self.accounts, self.assets, strict=True))
        eq = sum(self._account_equity(acct, prices) for acct in self._unique_accounts)
        return exposure / eq if eq > 0 else 0.0

    def step(self) -> None:
        """Act once (the model calls this only when the trader's clock fires or a risk alert rings)."""
        m = self.model
        t = m.steps
        if t < self.out_until:
            return
        prices = m.market.prices
        oracle = m.oracle.prices
        engine = m.engine
        if not self.has_position():
            self._reenter(prices)
            return
        equity = self.equity_usd(prices)
        self.peak_equity = max(self.peak_equity, equity)
        cfg = m.config.traders
        if equity <= 0:  # underwater: nothing left to manage; the liquidators will come
            return
        if self.risk_style == "stop_loss" and equity < (1.0 - cfg.stop_loss_drawdown) * self.peak_equity:
            self.close_all(oracle)
            self.out_until = t + cfg.reentry_delay_steps
            return
        target = min(self.target_leverage(), cfg.max_leverage)
        if self.risk_style == "prudent":
            worst = min(engine.account_health(acct, oracle) for acct in self._unique_accounts)
            if worst < cfg.prudent_buffer:
                target = min(target, self._leverage_for_hf(cfg.prudent_target_hf, prices, oracle))
        self.rebalance(target, prices, oracle)

    def has_position(self) -> bool:
        engine = self.model.engine
        coll, debt = engine.collateral, engine.scaled_debt
        return any(np.count_nonzero(coll[a]) or np.count_nonzero(debt[a]) for a in self._unique_accounts)

    def _leverage_for_hf(self, hf_target: float, prices: np.ndarray, oracle: np.ndarray) -> float:
        """Leverage at which a long (short) account reaches `hf_target` by selling collateral to repay debt."""
        engine = self.model.engine
        lt = self.model.pool.liquidation_threshold
        coll = sum(engine.collateral[a] * oracle for a in self._unique_accounts)
        debt = float(sum((engine.debt_tokens(a) * oracle).sum() for a in self._unique_accounts))
        c_total = float(coll.sum())
        if debt <= 0 or c_total <= 0:
            return self.leverage
        lt_eff = float((coll * lt).sum() / c_total)
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
            equity = self._account_equity(acct, prices)
            if equity <= 0:
                continue
            goal = target * equity / len(assets)  # exposure per asset (USD)
            for a in assets:
                have = self.exposure_usd(acct, a, prices)
                gap = goal - have
                if abs(gap) <= tol * max(goal, have):
                    continue
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
        for acct in self._unique_accounts:
            self.model.engine.close_out(acct, oracle, self.model.steps)

    def open_positions(self, equity_usd: float, oracle: np.ndarray, genesis: bool) -> None:
        """Put `equity_usd` of wallet USD to work at the base leverage, split evenly over the trader's assets."""
        engine = self.model.engine
        share = equity_usd / len(self.assets)
        t = self.model.steps
        for acct, a in zip(self.accounts, self.assets, strict=True):
            if self.direction > 0:
                engine.lever_long(acct, a, share * (self.leverage - 1.0), share, oracle, t, genesis=genesis)
            else:
                price = float(np.exp(self.model.fundamentals.log_f[a])) if genesis else self.model.market.price(a)
                engine.lever_short(acct, a, share * self.leverage / price, share, oracle, t, genesis=genesis)

    def _reenter(self, prices: np.ndarray) -> None:
        """After a wipe-out or a stop, come back with fresh equity from outside once the delay has passed."""
        m = self.model
        if m.config.traders.reentry_delay_steps <= 0 or m.steps >= m.total_steps:
            return
        if self.out_until < 0:  # first time we notice the trader is flat: start its delay
            self.out_until = m.steps + m.config.traders.reentry_delay_steps
            return
        wallet_usd = m.wallets.balance(self.holder, 0)
        fresh = max(self.initial_equity - wallet_usd, 0.0)
        m.market.pay_out(0, fresh)
        m.wallets.credit(self.holder, 0, fresh)
        self.peak_equity = wallet_usd + fresh
        self.out_until = -1
        self.open_positions(wallet_usd + fresh, m.oracle.prices, genesis=False)
