"""LeveragedTrader: holds leveraged long or short positions in the pool and trades them on a decision clock.

A trader has a strategy (what leverage it wants: `abm.agents.strategies`), a risk style (what it does when things
go wrong), a margin mode (one cross account, one isolated account per position, or one portfolio-margined
account) and a base leverage. Its state lives in the model's `TraderBook` (row = the trader's holder id); the agent
reads and writes that row. It sees market prices and its own accounts (docs/model.md, 2 Design concepts); the
protocol sees oracle prices.

Where the exposure is held is a handful of methods (accounts, account equity, health, carry, trade depth, the trade
itself); this class holds it in the lending pool, `PerpTrader` (`abm.agents.perp_trader`) in the perpetual venue,
with the same strategies, risk styles and rebalancing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.agents.book import TraderBook
from abm.agents.decisions import (
    current_leverages,
    lending_carry_rates,
    lending_exposures,
    leverages_for_health,
    wanted_leverages,
)
from abm.agents.registry import new_agents
from abm.agents.strategies import target_leverages

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


class LeveragedTrader(mesa.Agent):
    """A leveraged trader. holder: its wallet row and its row in `model.book`. assets: indices of the risky
    assets it trades. accounts: one account id per asset (isolated) or the same id repeated."""

    model: ReflexivityModel
    # Mesa's attributes and the trader's own held in slots, not in a dict per trader: a million traders are built in
    # a third of the time (`new_traders`). The instance dict (Mesa's `Agent` has one) holds anything else.
    __slots__ = ("accounts", "assets", "book", "holder", "model", "pos", "unique_id")

    def __init__(
        self, model: ReflexivityModel, holder: int, assets: list[int], accounts: list[int] | None = None
    ) -> None:
        """accounts: its accounts when the model opened them already (`MarginEngine.open_accounts`, the whole
        population in one pass), else opened here."""
        super().__init__(model)
        self.book: TraderBook = model.book  # its row's owner (an attribute, not a lookup: read many times a decision)
        self.holder = holder
        self.assets = assets
        self.accounts = self.open_accounts() if accounts is None else accounts

    @cached_property
    def _assets_by_account(self) -> dict[int, list[int]]:
        """Its accounts (in order), each with the assets it holds there; made on first use (a population of a
        million traders is built without it)."""
        by_account: dict[int, list[int]] = {}
        for acct, a in zip(self.accounts, self.assets, strict=True):
            by_account.setdefault(acct, []).append(a)
        return by_account

    def open_accounts(self) -> list[int]:
        """Open the trader's accounts with the margin engine: one per asset (isolated) or one shared; returns the
        account id of each of its assets."""
        engine = self.model.engine
        if self.mode == "isolated":
            return [engine.open_account(self.holder, self.mode) for _ in self.assets]
        shared = engine.open_account(self.holder, self.mode)
        return [shared for _ in self.assets]

    # --- its row of the trader book ---------------------------------------------------------------------------

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
        return float(lending_exposures(self.model.engine, self.direction > 0, acct, asset, prices))

    def current_leverage(self, prices: np.ndarray) -> float:
        """Exposure over the equity of its accounts (wallet excluded); 0 without equity."""
        exposure = sum(self.exposure_usd(acct, a, prices) for acct, a in zip(self.accounts, self.assets, strict=True))
        eq = float(self.model.engine.account_equity(prices, list(self._assets_by_account)).sum())
        return float(current_leverages(np.array(exposure), np.array(eq)))

    def has_position(self) -> bool:
        engine = self.model.engine
        accounts = list(self._assets_by_account)
        return bool(np.any(engine.collateral[accounts]) or np.any(engine.scaled_debt[accounts]))

    # --- where the exposure is held: the lending pool (`PerpTrader` overrides these for the perp venue) ---------

    def trading_prices(self) -> np.ndarray:
        """Prices the trader values its positions at (USD/token): the spot market's."""
        return self.model.market.prices

    def account_equity_usd(self, acct: int, prices: np.ndarray) -> float:
        """Collateral minus debt of one account (USD at `prices`)."""
        return float(self.model.engine.account_equity(prices, [acct])[0])

    def worst_health(self, oracle: np.ndarray) -> float:
        """The lowest health factor of its accounts (oracle prices, as the protocol sees them)."""
        return float(self.model.engine.accounts_health(np.array(self.accounts), oracle).min())

    def carry_rate(self) -> float:
        """What holding the levered exposure costs (per year): the pool's borrow rate of the borrowed asset."""
        return float(lending_carry_rates(self.model, np.array([self.holder]), np.array(self.assets[:1]))[0])

    def trade_depth(self, asset: int) -> float:
        """Depth (USD per unit log price) that bounds one step's trade: the spot market's."""
        return self.model.market.effective_depth_of(asset)

    def trade_exposure(self, acct: int, asset: int, gap_usd: float, prices: np.ndarray, oracle: np.ndarray) -> None:
        """Change the exposure in `asset` by `gap_usd` (USD, + more exposure) through the margin engine: a long
        borrows USD and buys (or sells and repays), a short borrows the asset and sells it (or buys back)."""
        engine, t = self.model.engine, self.model.steps
        if self.direction > 0:
            if gap_usd > 0:
                engine.lever_long(acct, asset, gap_usd, 0.0, oracle, t)
            else:
                engine.delever_long(acct, asset, -gap_usd / prices[asset], oracle, t)
        elif gap_usd > 0:
            engine.lever_short(acct, asset, gap_usd / prices[asset], 0.0, oracle, t)
        else:
            engine.delever_short(acct, asset, -gap_usd / prices[asset], oracle, t)

    # --- decisions ----------------------------------------------------------------------------------------
    # A lending trader decides in the traders' phase with every other trader whose clock fires
    # (`abm.agents.batched`); the methods below ask the same functions for this one trader.

    def target_leverage(self) -> float:
        """Leverage the strategy wants now (1 = unlevered, dimensionless)."""
        m = self.model

        def current(rows: np.ndarray) -> np.ndarray:
            return np.array([self.current_leverage(m.market.prices)])

        holder = np.array([self.holder])
        return float(target_leverages(m, holder, np.array(self.assets[:1]), current)[0])

    def wanted_leverage(self) -> float:
        """The strategy's target within the trader's limits and the cost of borrowing (`decisions.wanted_leverages`)."""
        holder = np.array([self.holder])
        return float(
            wanted_leverages(self.model, holder, np.array([self.target_leverage()]), np.array([self.carry_rate()]))[0]
        )

    def step(self) -> None:
        """Act once (the model calls this only when the trader's clock fires or a risk alert rings): the traders'
        phase for this one trader."""
        from abm.agents.batched import batched_trader_phase  # the phase module imports this one

        batched_trader_phase(self.model, [self.holder])

    def stop_out(self, oracle: np.ndarray) -> None:
        """Stop-loss: close every position and stay out for `reentry_delay_steps`."""
        self.close_all(oracle)
        self.out_until = self.model.steps + self.model.config.traders.reentry_delay_steps

    def leverage_for_health(self, hf_target: float, oracle: np.ndarray) -> float:
        """Leverage at which a long (short) account reaches `hf_target` by selling collateral to repay debt
        (`decisions.leverages_for_health` for this one trader)."""
        holder, accounts = np.array([self.holder]), np.array([self.accounts])
        return float(leverages_for_health(self.model, holder, accounts, hf_target, oracle)[0])

    def trade_toward(self, acct: int, asset: int, gap_usd: float, prices: np.ndarray, oracle: np.ndarray) -> None:
        """Trade `gap_usd` (USD, + more exposure) of `asset` in account `acct` now, bounded by a share of the
        market's depth now (`max_trade_depth_share`); the rest waits for its next decision, brought to the next
        step."""
        m = self.model
        bound = m.config.traders.max_trade_depth_share * self.trade_depth(asset)
        if abs(gap_usd) > bound:
            gap_usd = float(np.copysign(bound, gap_usd))
            self.book.next_decision[self.holder] = min(self.book.next_decision[self.holder], m.steps + 1)
        self.trade_exposure(acct, asset, gap_usd, prices, oracle)

    def free_cash(self) -> None:
        """Move USD left idle in its flat accounts back to its wallet (the pool's `close_out` already does)."""

    def close_all(self, oracle: np.ndarray) -> None:
        for acct in self._assets_by_account:
            self.model.engine.close_out(acct, oracle, self.model.steps)

    def open_positions(self, equity_usd: float, oracle: np.ndarray, genesis: bool) -> None:
        """Put `equity_usd` of wallet USD to work at the leverage the trader wants now (`wanted_leverage`), split
        evenly over its assets. genesis: a position that exists before the run, filled at the fundamental
        (`open_genesis_positions` for this one trader)."""
        m = self.model
        leverage = self.wanted_leverage()
        if genesis:
            holder = np.array([self.holder])
            assets, accounts = np.array([self.assets]), np.array([self.accounts])
            open_genesis_positions(m, holder, assets, accounts, np.array([equity_usd]), np.array([leverage]), oracle)
            return
        price = np.array([m.market.price(a) for a in self.assets])
        borrow, own = opening_orders(np.array(self.direction > 0), equity_usd / len(self.assets), leverage, price)
        for acct, a, b, o in zip(self.accounts, self.assets, borrow.tolist(), own.tolist(), strict=True):
            if self.direction > 0:
                m.engine.lever_long(acct, a, b, o, oracle, m.steps)
            else:
                m.engine.lever_short(acct, a, b, o, oracle, m.steps)

    def _reenter(self) -> None:
        """After a wipe-out or a stop, come back with fresh equity from outside once the delay has passed."""
        m = self.model
        if m.config.traders.reentry_delay_steps <= 0 or m.steps >= m.total_steps:
            return
        if self.out_until < 0:  # first time we notice the trader is flat: start its delay
            self.out_until = m.steps + m.config.traders.reentry_delay_steps
            return
        self.free_cash()
        wallet_usd = m.wallets.balance(self.holder, 0)
        fresh = max(self.initial_equity - wallet_usd, 0.0)
        m.wallets.fund_from_world(m.market, self.holder, 0, fresh)
        self.peak_equity = wallet_usd + fresh  # the drawdown counts from the re-entry
        self.out_until = -1
        self.open_positions(wallet_usd + fresh, m.oracle.prices, genesis=False)


def new_traders(
    model: ReflexivityModel,
    classes: Sequence[type[LeveragedTrader]],
    assets: list[list[int]],
    accounts: list[list[int]],
    opening: Iterable[int],
) -> list[LeveragedTrader]:
    """Traders 0..n-1 (holder = index) of `classes[i]`, each what `classes[i](model, i, assets[i], accounts[i])`
    builds, made and registered with Mesa in one pass (`registry.new_agents`; a million traders' constructors are
    seconds of the build). The traders `opening` (indices, ascending) open their own accounts, in that order, as
    their constructors without `accounts` would (`accounts` holds placeholders for them)."""
    traders = new_agents(model, classes)
    book = model.book
    for holder, trader, its_assets, its_accounts in zip(range(len(traders)), traders, assets, accounts, strict=True):
        trader.book = book  # the attributes of `LeveragedTrader.__init__`, in its order
        trader.holder = holder
        trader.assets = its_assets
        trader.accounts = its_accounts
    for i in opening:
        traders[i].accounts = traders[i].open_accounts()
    return traders


def opening_orders(
    long: np.ndarray, share: np.ndarray | float, leverage: np.ndarray | float, price: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What a trader opening a position with `share` USD of its equity at `leverage` (exposure / equity) borrows and
    puts in (per position, broadcast): a long borrows share x (L - 1) USD, a short L x share of USD in tokens of
    the asset at `price` (USD/token); both add `share` of their own. Returns (borrow, own)."""
    borrow = np.where(long, share * (leverage - 1.0), share * leverage / price)
    return borrow, np.broadcast_to(share, borrow.shape).astype(float)


def open_genesis_positions(
    m: ReflexivityModel,
    holders: np.ndarray,
    assets: np.ndarray,
    accounts: np.ndarray,
    equity: np.ndarray,
    leverage: np.ndarray,
    oracle: np.ndarray,
) -> np.ndarray:
    """The lending traders `holders` (in the order they open) put `equity` USD of their wallets to work at
    `leverage`, split evenly over their assets (`assets`, `accounts`: (traders, assets per trader), an account id
    per asset), in positions that exist before the run: one `MarginEngine.open_genesis` pass, the fill at the
    fundamental. Returns which positions opened ((traders, assets per trader))."""
    per_trader = assets.shape[1]
    long = np.repeat(m.book.direction[holders] > 0, per_trader)
    share = np.repeat(equity / per_trader, per_trader)
    flat_assets = assets.reshape(-1)
    price = np.exp(m.market.log_f)[flat_assets]  # the fundamental (USD/token)
    borrow, own = opening_orders(long, share, np.repeat(leverage, per_trader), price)
    opened = m.engine.open_genesis(accounts.reshape(-1), flat_assets, long, borrow, own, oracle)
    return opened.reshape(assets.shape)
