"""BasisTrader: cash-and-carry across the two venues (docs/perps.md): long spot bought with a loan from the lending
pool, short the perpetual of the same size, earning the funding that longs pay shorts.

It opens a lending account through the margin engine as the leveraged traders do (the spot leg: own USD plus a USD
loan buys the asset, which is posted as collateral) and a cross perp account with the venue (the short leg). It
builds the position while the funding rate the latest premium implies, annualised, is at least
`basis_traders.entry_funding_apr`, and unwinds it once that rate falls below `exit_funding_apr` or either leg's
health falls below `min_health` (the lending health factor at oracle prices; the perp account's equity over its
maintenance margin at mark). One step's trade on each leg is bounded by `traders.max_trade_depth_share` of the
shallower of the two markets' depth, and, as an arbitrageur trades only the mispriced part, by the perp book: it
sells perps only while the fill keeps the premium at or above the level whose funding is the entry rate, and a
funding exit buys back only while the fill keeps it at or below the exit level (a health exit buys back regardless). Unwinding sells the spot on the spot market: that sale, and its price impact
(`ReflexivityModel.basis_spot_dm`), is the perp venue's channel into the spot price besides the index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.perps.waterfall import largest_quantity

if TYPE_CHECKING:
    from abm.model import ReflexivityModel
    from abm.perps import PerpVenue

DUST_TOKENS = 1e-12  # relative to the target: a leg this much larger than the other is already matched


def arbitrage_quantity(priced_in: Callable[[float], bool], upper: float) -> float:
    """The largest trade (tokens, <= `upper`) whose average fill `priced_in` accepts; 0 at once when even the
    first token is not (the book is not mispriced), else a bisection to 1e-9 of `upper`."""
    if upper <= 0 or not priced_in(DUST_TOKENS * upper):
        return 0.0
    return largest_quantity(priced_in, upper, iterations=30)


class BasisTrader(mesa.Agent):
    """A cash-and-carry trader in one risky asset. holder: its wallet row; loan_account: its lending account
    (margin engine); perp_account: its perp account (venue); active: whether it is building or holding the
    position (else unwinding)."""

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int, asset: int) -> None:
        super().__init__(model)
        self.holder = holder
        self.asset = asset
        self.loan_account = model.engine.open_account(holder, "cross")
        self.perp_account = self.venue.open_account(holder, 0.0, "cross")
        self.active = False

    @property
    def venue(self) -> PerpVenue:
        venue = self.model.perps
        if venue is None:
            raise RuntimeError("a BasisTrader needs the model's perpetual venue (perps.enabled = true)")
        return venue

    # --- its state ----------------------------------------------------------------------------------------------

    def spot_tokens(self) -> float:
        """Tokens of the asset held as collateral in its lending account (the long leg)."""
        return float(self.model.engine.collateral[self.loan_account, self.asset])

    def short_tokens(self) -> float:
        """Tokens (contracts) of its perp short (the short leg)."""
        return max(-float(self.venue.size[self.perp_account, self.asset]), 0.0)

    def equity_usd(self) -> float:
        """Wallet USD plus the lending account's equity (market prices) plus the perp account's equity (mark)."""
        m = self.model
        lending = float(m.engine.account_equity(m.market.prices, [self.loan_account])[0])
        return m.wallets.balance(self.holder, 0) + lending + self.venue.account_equity(self.perp_account)

    def funding_apr(self) -> float:
        """The funding rate the latest premium implies for its asset, annualised (per year)."""
        return float(self.venue.implied_funding_apr()[self.asset])

    def healthy(self) -> bool:
        """Both legs' health at least `basis_traders.min_health`."""
        m, floor = self.model, self.model.config.basis_traders.min_health
        lending = m.engine.account_health(self.loan_account, m.oracle.prices)
        return lending >= floor and self.venue.account_health(self.perp_account) >= floor

    def target_tokens(self) -> float:
        """The size of each leg while active (tokens): its equity spread over the two legs' margins,
        equity / (1 / spot_leverage + 1 / perp_leverage) of notional at the index."""
        cfg = self.model.config.basis_traders
        notional = max(self.equity_usd(), 0.0) / (1.0 / cfg.spot_leverage + 1.0 / cfg.perp_leverage)
        return notional / float(self.venue.index[self.asset])

    def open_genesis(self) -> None:
        """Positions that exist before the run: when the funding rate at the start (the premium is 0, so the
        interest rate's) is at least the entry rate, both legs at their target, the spot leg bought at the
        fundamental and the perp leg sold at the index, without impact (as the traders' genesis positions)."""
        m, venue, cfg = self.model, self.venue, self.model.config.basis_traders
        if self.funding_apr() < cfg.entry_funding_apr:
            return
        self.active = True
        a = self.asset
        tokens = self.target_tokens()
        spot_usd = tokens * float(np.exp(m.fundamentals.log_f[a]))
        own = spot_usd / cfg.spot_leverage
        margin = tokens * float(venue.index[a]) / cfg.perp_leverage
        m.wallets.debit(self.holder, 0, margin)
        venue.deposit(self.perp_account, margin)
        if venue.genesis_trade(self.perp_account, a, -tokens).size == 0.0:
            return
        m.engine.lever_long(self.loan_account, a, spot_usd - own, own, m.oracle.prices, m.steps, genesis=True)

    # --- the step -----------------------------------------------------------------------------------------------

    def step(self) -> None:
        """Switch on or off by the funding band and the legs' health, then move both legs toward the target by
        at most one step's trade bound; a leg left larger than the other (the other was liquidated) is cut."""
        m, cfg = self.model, self.model.config.basis_traders
        apr = self.funding_apr()
        healthy = self.healthy()
        if self.active and (apr < cfg.exit_funding_apr or not healthy):
            self.active = False
        elif not self.active and healthy and apr >= cfg.entry_funding_apr:
            self.active = True
        a, venue = self.asset, self.venue
        price = float(venue.index[a])
        depth = min(m.market.effective_depth_of(a), venue.book.effective_depth_of(a))
        bound = m.config.traders.max_trade_depth_share * depth / price  # tokens per leg this step
        spot, short = self.spot_tokens(), self.short_tokens()
        target = self.target_tokens() if self.active else 0.0
        matched = min(spot, short)
        gap = target - matched
        if self.active and gap > m.config.traders.rebalance_tolerance * target:
            # sell the perp only while its fill keeps the premium at or above the entry level: the rich part
            rich = price * (1.0 + venue.premium_for_funding_apr(cfg.entry_funding_apr))
            q = arbitrage_quantity(lambda v: venue.quote(a, -v) >= rich, min(gap, bound))
            if q > DUST_TOKENS * target:
                self._enter(q)
        elif gap < 0:
            q = min(-gap, bound)
            if healthy:  # a funding exit buys back only while the premium stays at or below the exit level
                cheap = price * (1.0 + venue.premium_for_funding_apr(cfg.exit_funding_apr))
                q = arbitrage_quantity(lambda v: venue.quote(a, v) <= cheap, q)
            if q > 0:
                self._exit(q)
        spot, short = self.spot_tokens(), self.short_tokens()
        slack = DUST_TOKENS * max(spot, short, 1.0)
        if spot > short + slack:
            self._sell_spot(min(spot - short, bound))
        elif short > spot + slack:
            self.venue.trade(self.perp_account, a, min(short - spot, bound), m.steps)
        if spot <= slack and short <= slack and self._holds_anything():
            self._settle()

    def _enter(self, tokens: float) -> None:
        """Short `tokens` of the perp and buy as many spot tokens with own USD and a pool loan, within what its
        wallet can margin; if the spot leg cannot be bought, the perp leg is bought back."""
        m, venue, cfg = self.model, self.venue, self.model.config.basis_traders
        a, t = self.asset, m.steps
        cost = m.market.quote_cost(a, tokens)
        margin = tokens * float(venue.mark_prices()[a]) / cfg.perp_leverage
        wallet = m.wallets.balance(self.holder, 0)
        need = cost / cfg.spot_leverage + margin
        if not need > 0 or wallet <= 0:
            return
        if need > wallet:  # scale down to what the wallet margins
            tokens *= wallet / need
            cost = m.market.quote_cost(a, tokens)
            margin *= wallet / need
        m.wallets.debit(self.holder, 0, margin)
        venue.deposit(self.perp_account, margin)
        fill = venue.trade(self.perp_account, a, -tokens, t)
        own = min(cost / cfg.spot_leverage, m.wallets.balance(self.holder, 0))
        bought = fill.size != 0.0 and self._spot_trade(
            lambda: m.engine.lever_long(self.loan_account, a, cost - own, own, m.oracle.prices, t)
        )
        if fill.size != 0.0 and not bought:
            venue.trade(self.perp_account, a, -fill.size, t)
        self._free_perp_cash()

    def _exit(self, tokens: float) -> None:
        """Sell `tokens` of spot (repaying the loan first) and buy back as many perp contracts."""
        self._sell_spot(min(tokens, self.spot_tokens()))
        buy_back = min(tokens, self.short_tokens())
        if buy_back > 0:
            self.venue.trade(self.perp_account, self.asset, buy_back, self.model.steps)
        self._free_perp_cash()

    def _sell_spot(self, tokens: float) -> None:
        m = self.model
        if tokens > 0:
            self._spot_trade(
                lambda: m.engine.delever_long(self.loan_account, self.asset, tokens, m.oracle.prices, m.steps) > 0
            )

    def _spot_trade(self, trade: Callable[[], bool]) -> bool:
        """Run a spot trade (a callable returning whether it happened) and book its log price impact on the spot
        market in `model.basis_spot_dm` (the cross-venue channel)."""
        m, a = self.model, self.asset
        before = float(m.market.log_p[a])
        done = bool(trade())
        m.basis_spot_dm[a] += float(m.market.log_p[a]) - before
        return done

    def _free_perp_cash(self) -> None:
        """Withdraw perp margin beyond what the short needs (the venue's `withdrawable`) to the wallet, keeping the
        short at its perp leverage."""
        m, venue, cfg = self.model, self.venue, self.model.config.basis_traders
        keep = self.short_tokens() * float(venue.mark_prices()[self.asset]) / cfg.perp_leverage
        excess = venue.account_equity(self.perp_account) - keep
        if excess > 0:
            amount = venue.withdraw(self.perp_account, excess)
            if amount > 0:
                m.wallets.credit(self.holder, 0, amount)

    def _holds_anything(self) -> bool:
        """Whether its lending account or its perp account still holds anything (collateral, debt, cash)."""
        engine, venue = self.model.engine, self.venue
        loan = self.loan_account
        return bool(
            engine.collateral[loan].any() or engine.scaled_debt[loan].any() or venue.cash[self.perp_account] > 0
        )

    def _settle(self) -> None:
        """Flat on both legs: repay what is left of the loan from the wallet, take the collateral and the perp
        account's cash back to the wallet."""
        m = self.model
        engine = m.engine
        if engine.scaled_debt[self.loan_account, 0] > 0:
            engine.repay_from_wallet(self.loan_account, 0, float(engine.debt_tokens(self.loan_account)[0]))
        for k in range(len(m.symbols)):
            held = float(engine.collateral[self.loan_account, k])
            if held > 0 and not engine.debt_tokens(self.loan_account).any():
                engine.withdraw(self.loan_account, k, held, m.oracle.prices)
        amount = self.venue.withdraw(self.perp_account, self.venue.withdrawable(self.perp_account))
        if amount > 0:
            m.wallets.credit(self.holder, 0, amount)
