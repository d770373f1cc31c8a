"""The traders' phase: the decisions of every lending trader whose clock fires, in one vectorised pass from the
state at the start of the phase; their trades one by one in activation order (docs/model.md, 3.3 Submodels:
Traders, and 7 Scheduling).

A decision reads the state the phase starts from: the market prices and the pool's rates published at the start
of the phase, and the trader's own accounts (which only it changes in the phase). From them come each trader's
equity and peak equity, its stop check, the target leverage of its strategy (`strategies.target_leverages`), the
carry factor and limits (`decisions.wanted_leverages`), a prudent trader's health target, and per position the gap
to the wanted exposure with the tolerance band (`decisions.rebalance_gaps`). The trades then go through the margin
engine in activation order, each converted to tokens at the prices of its moment and bounded by the market's depth
then (`LeveragedTrader.trade_toward`), so the market sees the same sequence of traders, as a block executes orders
submitted against the same published state. Re-entry after a stop or a wipe-out and the stop-loss close-out are
per trader (`LeveragedTrader._reenter`, `stop_out`); perp traders decide one at a time (`PerpTrader.step`) at the
venue's prices of their moment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from abm.agents.book import RISK_CODE
from abm.agents.decisions import (
    current_leverages,
    lending_carry_rates,
    lending_exposures,
    leverages_for_health,
    past_drawdown,
    rebalance_gaps,
    wanted_leverages,
)
from abm.agents.strategies import target_leverages
from abm.agents.trader import LeveragedTrader

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

REENTER, STOP = "reenter", "stop"
Plan = str | list[tuple[int, int, float]]
"""A lending trader's plan: REENTER (flat), STOP (stop-loss), or its trades [(account, asset, gap USD)]."""


def batched_trader_phase(model: ReflexivityModel, order: np.ndarray | list[int]) -> None:
    """Run the traders' phase for the traders `order` (holder ids, activation order): the lending traders'
    decisions in one pass, then each trader's trades in that order (a perp trader decides at its turn)."""
    traders = model.traders
    order = np.asarray(order, dtype=np.int64)
    lending = model.trader_accounts[order, 0] >= 0  # a perp trader has no lending account (-1)
    plans = plan_decisions(model, order[lending]).plans if lending.any() else {}
    # the traders that act, in activation order: the lending ones with a plan (plans keep the order they were
    # given) and every perp trader
    acting = plans.keys()
    if not lending.all():
        acting = [i for i, lends in zip(order.tolist(), lending.tolist(), strict=True) if not lends or i in plans]
    oracle = model.oracle.prices
    for i in acting:
        trader = traders[i]
        if i not in plans:
            # another venue's trader decides at its turn (its class's own `step`: this phase is the lending one)
            if type(trader).step is LeveragedTrader.step:
                raise TypeError(f"{type(trader).__name__} needs its own step (the batched phase is for lending)")
            trader.step()
            continue
        plan = plans[i]
        if plan == REENTER:
            trader._reenter()
        elif plan == STOP:
            trader.stop_out(oracle)
        else:
            prices = trader.trading_prices()  # the prices of its moment
            for acct, asset, gap in plan:
                trader.trade_toward(acct, asset, gap, prices, oracle)


def _any_per_trader(rows: np.ndarray, n: int) -> np.ndarray:
    """Whether any entry of each trader's rows (`rows`: (n x k, assets), k rows per trader) is non-zero: (n,) bool;
    `ndarray.any`'s own reduction, without its wrapper."""
    return np.logical_or.reduce(rows.reshape(n, -1), axis=1)


class Decisions:
    """The lending traders' decisions from one state, per trader (rows in the order of `holders`): equity and peak
    equity (USD), stop, target (the strategy's), carry factor, wanted leverage (after limits, carry and prudence),
    per position (traders, positions) the account equity, exposure and gap (USD) and whether it trades; and the
    plans by holder id (traders that do nothing have none)."""

    equity: np.ndarray
    peak: np.ndarray
    stop: np.ndarray
    current: np.ndarray
    target: np.ndarray
    rate: np.ndarray
    wanted: np.ndarray
    account_equity: np.ndarray
    exposure: np.ndarray
    gap: np.ndarray
    trade: np.ndarray

    def __init__(self, holders: np.ndarray) -> None:
        self.holders = holders
        self.plans: dict[int, Plan] = {}


def plan_decisions(model: ReflexivityModel, holders: np.ndarray) -> Decisions:
    """The decisions of the lending traders `holders` from the state now (see the module's docstring); only their
    own accounts are read (O(acting traders), not O(all))."""
    m, book, engine = model, model.book, model.engine
    cfg = m.config.traders
    out = Decisions(holders)
    prices = m.market.prices
    accounts = m.trader_accounts.take(holders, axis=0)  # (traders, k): each one's account per asset
    assets = m.trader_assets.take(holders, axis=0)
    n, k = assets.shape
    isolated = accounts[:, 0] != accounts[:, -1]  # one account per position (cross, portfolio: one shared)
    coll = engine.collateral.take(accounts, axis=0).reshape(n * k, -1)  # (traders x k, assets) tokens
    scaled = engine.scaled_debt.take(accounts, axis=0).reshape(n * k, -1)
    held = _any_per_trader(coll, n) | _any_per_trader(scaled, n)  # `has_position`
    acct_equity = engine.rows_equity(coll, scaled, prices).reshape(n, k)
    own_equity = np.where(isolated, acct_equity.sum(axis=1), acct_equity[:, 0])
    equity = own_equity + m.wallets.balances.take(holders, axis=0) @ prices  # `TraderBook.equity` of a lending trader
    peak_before = book.peak_equity.take(holders)
    peak = np.where(held, np.maximum(peak_before, equity), peak_before)
    book.peak_equity[holders] = peak
    risk = book.risk.take(holders)
    stop = (risk == RISK_CODE["stop_loss"]) & past_drawdown(equity, peak, cfg.stop_loss_drawdown)
    long = book.direction.take(holders) > 0
    exposure = lending_exposures(engine, long[:, None], accounts, assets, prices)  # (traders, k) USD
    current = current_leverages(exposure.sum(axis=1), own_equity)
    target = target_leverages(m, holders, assets[:, 0], current.take)
    rate = lending_carry_rates(m, holders, assets[:, 0])
    wanted = wanted_leverages(m, holders, target, rate)
    # a prudent trader under its buffer (its worst account's health at oracle prices, which only its own trades
    # change in the phase) aims at the leverage that restores its target health factor
    oracle = m.oracle.prices
    prudent = np.flatnonzero((risk == RISK_CODE["prudent"]) & held & (equity > 0))
    if len(prudent):
        worst = engine.accounts_health(accounts[prudent].ravel(), oracle).reshape(len(prudent), k).min(axis=1)
        under = prudent[worst < cfg.prudent_buffer]
        if len(under):
            restore = leverages_for_health(m, holders[under], accounts[under], cfg.prudent_target_hf, oracle)
            wanted[under] = np.where(restore < wanted[under], restore, wanted[under])  # min(wanted, restore)
    goal = wanted[:, None] * acct_equity / np.where(isolated, 1, k)[:, None]  # exposure per position (USD)
    gap, outside = rebalance_gaps(goal, exposure, cfg.rebalance_tolerance)
    trade = outside & (acct_equity > 0)
    out.equity, out.peak, out.stop, out.target, out.rate, out.wanted = equity, peak, stop, target, rate, wanted
    out.current, out.exposure, out.account_equity, out.gap, out.trade = current, exposure, acct_equity, gap, trade
    # who acts (in the order of `holders`): a flat trader re-enters; one with a position and equity left (an
    # underwater one has nothing left to manage: the liquidators will come) stops out, or trades the positions
    # outside their band; none while still out after a stop or a wipe-out
    trades = np.logical_or.reduce(trade, axis=1)
    acts = (~held | (~(equity <= 0) & (stop | trades))) & (book.out_until.take(holders) <= m.steps)
    for r in np.flatnonzero(acts).tolist():
        if not held[r]:
            out.plans[int(holders[r])] = REENTER  # re-entry: per trader
        elif stop[r]:
            out.plans[int(holders[r])] = STOP
        else:
            out.plans[int(holders[r])] = [
                (int(accounts[r, j]), int(assets[r, j]), float(gap[r, j])) for j in np.flatnonzero(trade[r]).tolist()
            ]
    return out
