"""What the two adversaries share (docs/model.md, 3.3 Submodels: Adversaries): a wallet row, a short sale of
tokens borrowed outside the model, its cover, and the ledger of what the manipulation cost and gained.

An adversary's wallet is a row of `Wallets` after every other holder's (so no existing holder's row moves), funded
with its capital from the outside world at the start. It sells a risky asset it does not own: the tokens are
borrowed from the outside world (`Wallets.fund_from_world`: a securities loan on another venue, interest-free over
the minutes a hunt lasts) and owed back (`short`), so the token ledgers close exactly as for any other holder.
Profit is marked to market: wallet at market prices less the tokens still owed, less the capital it started with.
The ledger splits it, against the episode's reference price (the market price when the episode began), into the
cost of moving the market (what sales raised below the reference and buy-backs paid above it, plus gas) and the
gain from liquidating (collateral seized valued at the reference, less the debt repaid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mesa
import numpy as np

from abm.protocol import linear_push_tokens

if TYPE_CHECKING:
    from abm.market.impact import Market
    from abm.model import ReflexivityModel


class Adversary(mesa.Agent):
    """A holder with capital (USD) that can short a risky asset through the outside world and book the costs.

    holder: its wallet row. short: tokens per asset borrowed outside the model and not yet returned. reference:
    the price (USD/token) each asset's costs and gains are measured against in the current episode.
    """

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int, capital_usd: float, gas_cost_usd: float) -> None:
        super().__init__(model)
        self.holder = holder
        self.capital_usd = capital_usd
        self.gas_cost_usd = gas_cost_usd
        n = len(model.symbols)
        self.short = np.zeros(n)
        self.reference = model.market.prices.copy()
        self.cost_usd = 0.0  # impact paid both ways against the reference, plus gas
        self.gain_usd = 0.0  # liquidations: seized collateral at the reference less the debt repaid
        self.peak_short_usd = 0.0  # the largest notional (at the reference) it was short at once
        model.wallets.fund_from_world(model.market, holder, 0, capital_usd)

    # --- its position ---------------------------------------------------------------------------------------------

    def equity_usd(self, prices: np.ndarray | None = None) -> float:
        """Wallet at `prices` (market prices by default) less the tokens it still owes (USD)."""
        p = self.model.market.prices if prices is None else prices
        return float(self.model.wallets.balances[self.holder] @ p - self.short @ p)

    def profit_usd(self) -> float:
        """Mark-to-market profit (USD): equity at market prices less the capital it started with."""
        return self.equity_usd() - self.capital_usd

    def short_room(self, asset: int) -> float:
        """Tokens it may still sell short: its short's notional at the reference stays within its capital."""
        return max(self.capital_usd / float(self.reference[asset]) - float(self.short[asset]), 0.0)

    # --- trades ---------------------------------------------------------------------------------------------------

    def pay_gas(self) -> None:
        m = self.model
        gas = min(self.gas_cost_usd, m.wallets.balance(self.holder, 0))
        m.wallets.pay_to_world(m.market, self.holder, 0, gas)
        self.cost_usd += gas

    def sell_short(self, asset: int, tokens: float, venue: Market | None = None) -> float:
        """Borrow `tokens` of `asset` outside the model and sell them into the market (or into `venue`, a thin
        oracle venue's market); returns USD raised."""
        m = self.model
        if tokens <= 0:
            return 0.0
        m.wallets.fund_from_world(m.market, self.holder, asset, tokens)
        self.short[asset] += tokens
        m.wallets.debit(self.holder, asset, tokens)
        usd = (venue or m.market).sell(asset, tokens, "disc", step=m.steps)
        m.wallets.credit(self.holder, 0, usd)
        self.cost_usd += tokens * float(self.reference[asset]) - usd
        self.peak_short_usd = max(self.peak_short_usd, float(self.short[asset] * self.reference[asset]))
        self.pay_gas()
        return usd

    def push_to(self, asset: int, target: float, venue: Market | None = None) -> None:
        """Sell short enough to bring the market price of `asset` (or `venue`'s) down to `target` (USD/token) by
        the linear depth now, within its capital (`short_room`); nothing if the price is there already."""
        market = venue or self.model.market
        price = market.price(asset)
        if price <= target:
            return
        tokens = float(linear_push_tokens(np.log(price / target), price, market.effective_depth_of(asset)))
        self.sell_short(asset, min(tokens, self.short_room(asset)), venue)

    def cover(self, asset: int) -> None:
        """Buy back what its wallet lacks of the tokens it owes (as far as its USD reaches) and return them to the
        outside world. Tokens beyond what it owes (seized collateral) stay in its wallet."""
        m = self.model
        wallets, me = m.wallets, self.holder
        owe = float(self.short[asset]) - wallets.balance(me, asset)
        if owe > 0:
            cash = wallets.balance(me, 0)
            cost = m.market.quote_cost(asset, owe)
            if np.isfinite(cost) and cost <= cash:
                m.market.buy_exact(asset, owe, "disc", step=m.steps)
                bought = owe
            else:  # it cannot afford the whole buy-back: what its cash buys; the rest stays owed
                cost = cash
                bought = m.market.buy(asset, cash, "disc", step=m.steps)
            wallets.debit(me, 0, cost)
            wallets.credit(me, asset, bought)
            self.cost_usd += cost - bought * float(self.reference[asset])
        give_back = min(float(self.short[asset]), wallets.balance(me, asset))
        if give_back > 0:
            wallets.pay_to_world(m.market, me, asset, give_back)
            self.short[asset] -= give_back
        self.pay_gas()


def adversary_summary(model: ReflexivityModel) -> dict[str, Any]:
    """The adversaries' summary keys (docs/model.md, 3.3 Submodels: Adversaries); none when neither is on.

    hunter_profit_usd: the hunters' mark-to-market profit at the end, net of impact and gas (USD, summed);
    hunter_cost_usd: their impact both ways and gas; hunter_hunts: hunts started; hunter_hunt_liquidations:
    liquidations of the hunted asset between a hunt's landing and its buy-back (the twin's
    `hunter_triggered_liquidations` is the causal count); hunter_hits: finished hunts during which at least one
    account of the hunted asset was liquidated (hit rate = hits / hunts); hunter_expected_profit_usd: the profit
    its plans expected of the hunts it started, summed (on the guess, with positions hidden); hunter_losing_hunts:
    finished hunts that lost money (mark-to-market equity at the buy-back below that at the start). attacker_profit_usd, attacker_cost_usd (moving the
    market both ways and gas), attacker_gain_usd (its liquidations at the pre-attack price), attacker_liquidations,
    attacker_attacked (1 if it started the attack: its route could move the median and, if rational, the
    priced gain beat the priced cost), attacker_landed (1 if the oracle reached its target), attacker_capital_used_usd (its largest short notional at
    the pre-attack price); attacker_expected_cost_usd, attacker_expected_capital_usd, attacker_expected_gain_usd: the
    same attack priced at its start by the linear-market formulas (`OracleAttacker.price_the_attack`)."""
    out: dict[str, Any] = {}
    hunters = getattr(model, "hunters", [])
    if hunters:
        out["hunter_profit_usd"] = sum(h.profit_usd() for h in hunters)
        out["hunter_cost_usd"] = sum(h.cost_usd for h in hunters)
        out["hunter_hunts"] = sum(h.n_hunts for h in hunters)
        out["hunter_hunt_liquidations"] = sum(h.hunt_liquidations for h in hunters)
        out["hunter_hits"] = sum(h.n_hits for h in hunters)
        out["hunter_expected_profit_usd"] = sum(h.expected_usd for h in hunters)
        out["hunter_losing_hunts"] = sum(h.n_losses for h in hunters)
    for attacker in getattr(model, "attackers", []):
        out["attacker_profit_usd"] = attacker.profit_usd()
        out["attacker_attacked"] = int(attacker.attacked)
        out["attacker_cost_usd"] = attacker.cost_usd
        out["attacker_gain_usd"] = attacker.gain_usd
        out["attacker_liquidations"] = attacker.n_liquidations
        out["attacker_landed"] = int(attacker.landed_step >= 0)
        out["attacker_capital_used_usd"] = attacker.peak_short_usd
        out["attacker_expected_cost_usd"] = attacker.expected_cost_usd
        out["attacker_expected_capital_usd"] = attacker.expected_capital_usd
        out["attacker_expected_gain_usd"] = attacker.expected_gain_usd
    return out
