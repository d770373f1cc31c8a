"""PerpTrader: a leveraged trader whose exposure is a perpetual future on the model's perp venue
(docs/perps.md; the venue is `abm.perps.PerpVenue`).

It is a `LeveragedTrader` in every decision: the same strategies (`abm.agents.strategies`), risk styles,
decision clocks, rebalancing band, per-step trade bound and re-entry, and the same row of the `TraderBook`. Only
where the exposure is held differs, and that is what this class overrides: one perp account (isolated for a trader
whose margin mode is isolated, cross otherwise) holding its whole equity, marked at the venue's mark price; trades
against the perp book, bounded by a share of that book's depth; prudence measured as equity over maintenance
margin; the carry its side pays in funding. Its liquidations are the venue's (the waterfall), not the keepers'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from abm.agents.decisions import current_leverages, past_drawdown, rebalance_gaps
from abm.agents.trader import LeveragedTrader
from abm.perps.venue import ISOLATED

if TYPE_CHECKING:
    from abm.perps import PerpVenue


class PerpTrader(LeveragedTrader):
    """A leveraged trader on the perpetual venue. holder: its wallet row and its row in `model.book`; assets:
    indices of the risky assets it trades; accounts: its one perp account id, repeated per asset."""

    @property
    def venue(self) -> PerpVenue:
        venue = self.model.perps
        if venue is None:
            raise RuntimeError("a PerpTrader needs the model's perpetual venue (perps.enabled = true)")
        return venue

    def open_accounts(self) -> list[int]:
        mode = "isolated" if self.mode == "isolated" else "cross"  # a portfolio-margined trader margins cross
        acct = self.venue.open_account(self.holder, 0.0, mode)
        return [acct for _ in self.assets]

    # --- state seen by the trader (the venue's mark prices) ----------------------------------------------------

    def trading_prices(self) -> np.ndarray:
        """The venue's mark prices (USD/token): what its positions and margin are valued at."""
        return self.venue.mark_prices()

    def exposure_usd(self, acct: int, asset: int, prices: np.ndarray) -> float:
        """Notional of the position in its direction (USD at `prices`): a long's size, a short's |size|."""
        return max(self.direction * float(self.venue.size[acct, asset]), 0.0) * float(prices[asset])

    def current_leverage(self, prices: np.ndarray) -> float:
        """Notional over the equity of its perp account; 0 without equity."""
        acct = self.accounts[0]
        exposure = sum(self.exposure_usd(acct, a, prices) for a in self.assets)
        eq = self.venue.account_equity(acct, prices)
        return float(current_leverages(np.array(exposure), np.array(eq)))

    def has_position(self) -> bool:
        return bool(np.any(self.venue.size[self.accounts[0]]))

    def account_equity_usd(self, acct: int, prices: np.ndarray) -> float:
        return self.venue.account_equity(acct, prices)

    def worst_health(self, oracle: np.ndarray) -> float:
        """Equity over maintenance margin of its perp account at mark (isolated: its worst position)."""
        return self.venue.account_health(self.accounts[0])

    def carry_rate(self) -> float:
        """The funding its side paid at the last payment, annualised (per year; negative when it receives)."""
        venue = self.venue
        return self.direction * float(venue.last_funding_rate[self.assets[0]]) * venue.funding_periods_per_year()

    def trade_depth(self, asset: int) -> float:
        """Depth of the perp book (USD per unit log price): it bounds one step's trade."""
        return self.venue.book.effective_depth_of(asset)

    def leverage_for_health(self, hf_target: float, oracle: np.ndarray) -> float:
        """Leverage at which equity is `hf_target` times the maintenance margin (smallest tier's rate)."""
        return 1.0 / (hf_target * float(self.venue.mmr[0]))

    # --- decisions: one at a time (the lending traders' phase batches only lending traders) ----------------------

    def step(self) -> None:
        """Act once on its clock: re-enter when flat, stop out on its drawdown, else trade toward the leverage it
        wants (a prudent trader under its buffer: the leverage that restores its target health) at the venue's
        prices now. The same functions as a lending trader's decision (`abm.agents.decisions`)."""
        m = self.model
        book, holder = m.book, self.holder
        if m.steps < book.out_until[holder]:
            return
        prices, oracle = self.trading_prices(), m.oracle.prices
        if not self.has_position():
            self._reenter()
            return
        equity = self.equity_usd(prices)
        peak = max(float(book.peak_equity[holder]), equity)
        book.peak_equity[holder] = peak
        cfg = m.config.traders
        if equity <= 0:  # underwater: nothing left to manage; the venue's waterfall will come
            return
        risk_style = book.risk_name(holder)
        if risk_style == "stop_loss" and past_drawdown(equity, peak, cfg.stop_loss_drawdown):
            self.stop_out(oracle)
            return
        target = self.wanted_leverage()
        if risk_style == "prudent" and self.worst_health(oracle) < cfg.prudent_buffer:
            target = min(target, self.leverage_for_health(cfg.prudent_target_hf, oracle))
        acct = self.accounts[0]
        equity = self.account_equity_usd(acct, prices)
        if equity <= 0:
            return
        goal = target * equity / len(self.assets)  # exposure per asset (USD)
        for a in self.assets:
            gap, outside = rebalance_gaps(goal, self.exposure_usd(acct, a, prices), cfg.rebalance_tolerance)
            if outside:
                self.trade_toward(acct, a, float(gap), prices, oracle)

    # --- actions ---------------------------------------------------------------------------------------------

    def trade_exposure(self, acct: int, asset: int, gap_usd: float, prices: np.ndarray, oracle: np.ndarray) -> None:
        """Trade `gap_usd` of notional (+ more exposure in its direction) against the perp book. An isolated
        position adding exposure takes margin for it at the trader's base leverage from its free balance."""
        venue = self.venue
        size_delta = self.direction * gap_usd / float(prices[asset])
        margin = None
        if venue.mode[acct] == ISOLATED and gap_usd > 0:
            margin = min(float(venue.cash[acct]), gap_usd / self.leverage)
        venue.trade(acct, asset, size_delta, self.model.steps, margin_usd=margin)

    def free_cash(self) -> None:
        """Withdraw what the venue lets go of (all of it once flat) back to the wallet."""
        acct = self.accounts[0]
        amount = self.venue.withdraw(acct, self.venue.withdrawable(acct))
        if amount > 0:
            self.model.wallets.credit(self.holder, 0, amount)

    def close_all(self, oracle: np.ndarray) -> None:
        venue, t = self.venue, self.model.steps
        acct = self.accounts[0]
        for a in self.assets:
            size = float(venue.size[acct, a])
            if size != 0.0:
                venue.trade(acct, a, -size, t)
        self.free_cash()

    def open_positions(self, equity_usd: float, oracle: np.ndarray, genesis: bool) -> None:
        """Deposit `equity_usd` of wallet USD and open its positions at the leverage it wants now, split evenly
        over its assets. genesis: a position that exists before the run, filled at the index without impact."""
        m, venue = self.model, self.venue
        acct = self.accounts[0]
        m.wallets.debit(self.holder, 0, equity_usd)
        venue.deposit(acct, equity_usd)
        share = equity_usd / len(self.assets)
        leverage = self.wanted_leverage()
        isolated = venue.mode[acct] == ISOLATED
        for a in self.assets:
            price = float(venue.index[a]) if genesis else float(venue.mark_prices()[a])
            size = self.direction * share * leverage / price
            if genesis:
                if isolated:
                    venue.add_margin(acct, a, min(share, float(venue.cash[acct])))
                venue.genesis_trade(acct, a, size)
            else:
                venue.trade(
                    acct, a, size, m.steps, margin_usd=min(share, float(venue.cash[acct])) if isolated else None
                )
