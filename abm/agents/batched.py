"""The traders' phase: the decisions of every lending trader whose clock fires, in one batched pass from the state
at the start of the phase; their trades one by one in activation order (docs/model.md, 3.3 Submodels: Traders,
and 7 Scheduling).

A decision reads the state the phase starts from: the market prices and the pool's rates published at the start
of the phase, and the trader's own accounts (which only it changes in the phase). From them come each trader's
equity and peak equity, its stop check, the target leverage of its strategy (`strategies.target_leverages`), the
carry factor and limits (`decisions.carry_factor`, `wanted_leverage`), a prudent trader's health target, and per
position the gap to the wanted exposure with the tolerance band (`decisions.rebalance_gaps`). The per-trader
arithmetic runs as two compiled loops (`_position_states` before the strategies, `_rebalance` after them) that
compile the formulas of `abm.agents.decisions` inline: at the ~20 traders of a step, numpy's cost per call, not
the arithmetic, was the phase's time. The trades then go through the margin
engine in activation order, each converted to tokens at the prices of its moment and bounded by the market's depth
then (`LeveragedTrader.trade_toward`), so the market sees the same sequence of traders, as a block executes orders
submitted against the same published state. Re-entry after a stop or a wipe-out and the stop-loss close-out are
per trader (`LeveragedTrader._reenter`, `stop_out`); perp traders decide one at a time (`PerpTrader.step`) at the
venue's prices of their moment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from abm.agents.book import RISK_CODE, _past_drawdown
from abm.agents.decisions import (
    compiled_carry_factor,
    compiled_wanted_leverage,
    current_leverages,
    lending_carry_rate,
    leverages_for_health,
    position_exposure,
    rebalance_gaps,
)
from abm.agents.strategies import target_leverages
from abm.agents.trader import LeveragedTrader
from abm.lending.kernels import state_health
from abm.lending.margin import PORTFOLIO
from abm.numerics import SEQUENTIAL_SUM_MAX

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
    lending = model.trader_accounts[:, 0].take(order) >= 0  # a perp trader has no lending account (-1)
    every_one_lends = lending.all()
    if every_one_lends:
        plans = plan_decisions(model, order).plans if len(order) else {}
    else:
        plans = plan_decisions(model, order[lending]).plans if lending.any() else {}
    # the traders that act, in activation order: the lending ones with a plan (plans keep the order they were
    # given) and every perp trader
    acting = plans.keys()
    if not every_one_lends:
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
    prices, oracle = m.market.prices, m.oracle.prices
    holders = np.ascontiguousarray(holders, dtype=np.int64)
    accounts = m.trader_accounts.take(holders, axis=0)  # (traders, k): each one's account per asset
    assets = m.trader_assets.take(holders, axis=0)
    n, k = assets.shape
    acct_equity = engine.account_equity(prices, accounts.ravel()).reshape(n, k)
    wallet_equity = m.wallets.balances.take(holders, axis=0) @ prices
    # a prudent trader under its buffer (its worst account's health at oracle prices, which only its own trades
    # change in the phase) aims at the leverage that restores its target health factor, if that is lower
    lt = engine._effective_params()[0]
    levels, flags, exposure = _position_states(
        engine.collateral,
        engine.scaled_debt,
        engine.mode,
        acct_equity,
        wallet_equity,
        accounts,
        assets,
        holders,
        engine.pool.borrow_index,
        prices,
        oracle,
        lt,
        book.direction,
        book.risk,
        RISK_CODE["stop_loss"],
        RISK_CODE["prudent"],
        PORTFOLIO,
        len(lt) < SEQUENTIAL_SUM_MAX,
        float(cfg.stop_loss_drawdown),
        float(cfg.prudent_buffer),
        book.peak_equity,
    )
    # rows by index: unpacking a 2-d array iterates it, several times the cost
    equity, peak, current, restore = levels[0], levels[1], levels[2], levels[3]
    held, stop, under, ask = flags[0], flags[1], flags[2], flags[3]
    target = target_leverages(m, holders, assets[:, 0], current.take)
    rows = ask.nonzero()[0]  # the prudent traders whose health the engine works out (portfolio margin, many assets)
    if len(rows):
        worst = engine.accounts_health(accounts[rows].ravel(), oracle).reshape(len(rows), k).min(axis=1)
        under[rows] = worst < cfg.prudent_buffer
    under = under.nonzero()[0]
    if len(under):
        restore[under] = leverages_for_health(m, holders[under], accounts[under], cfg.prudent_target_hf, oracle)
    wanted_rate, gap, moves = _rebalance(
        target,
        m.pool.borrow_rates(),
        restore,
        acct_equity,
        exposure,
        accounts,
        assets,
        holders,
        flags,
        equity,
        book.direction,
        book.leverage_cap,
        book.out_until,
        float(cfg.max_leverage),
        float(cfg.borrow_rate_tolerance),
        float(cfg.rebalance_tolerance),
        m.steps,
    )
    trade = moves[:, :k]
    out.equity, out.peak, out.stop, out.target = equity, peak, stop, target
    out.wanted, out.rate = wanted_rate[0], wanted_rate[1]
    out.current, out.exposure, out.account_equity, out.gap, out.trade = current, exposure, acct_equity, gap, trade
    plans = out.plans
    for r in moves[:, k].nonzero()[0].tolist():  # the traders that act
        if not held[r]:
            plans[int(holders[r])] = REENTER  # re-entry: per trader
        elif stop[r]:
            plans[int(holders[r])] = STOP
        else:
            plans[int(holders[r])] = [
                (int(accounts[r, j]), int(assets[r, j]), float(gap[r, j])) for j in trade[r].nonzero()[0].tolist()
            ]
    return out


# the per-position and per-trader formulas of `abm.agents.decisions`, compiled into the two passes below
_position_exposure = njit(inline="always")(position_exposure)
_current_leverage = njit(inline="always")(current_leverages)
_rebalance_gap = njit(inline="always")(rebalance_gaps)
_lending_carry_rate = njit(inline="always")(lending_carry_rate)


@njit(cache=True, nogil=True)
def _position_states(
    book_collateral: np.ndarray,
    book_scaled_debt: np.ndarray,
    modes: np.ndarray,
    account_equity: np.ndarray,
    wallet_equity: np.ndarray,
    accounts: np.ndarray,
    assets: np.ndarray,
    holders: np.ndarray,
    borrow_index: np.ndarray,
    prices: np.ndarray,
    oracle: np.ndarray,
    liquidation_threshold: np.ndarray,
    direction: np.ndarray,
    risk: np.ndarray,
    stop_loss: int,
    prudent: int,
    portfolio: int,
    health_here: bool,
    stop_loss_drawdown: float,
    prudent_buffer: float,
    peak_equity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first half of `plan_decisions`, per trader r (holder `holders[r]`; its accounts `accounts[r]`, rows of
    the margin engine's `book_collateral`, `book_scaled_debt`, `modes`; `account_equity`, (traders, k) USD;
    `wallet_equity`, USD; the book's `direction`, `risk` codes and `peak_equity`, updated in place).

    Returns (equity, peak, current, restore) per trader (4, traders): its equity (its own accounts', one shared
    account counted once, plus its wallet), peak equity (np.maximum's NaN rule), current leverage, and the
    leverage a prudent trader under its buffer is to restore (inf here: `plan_decisions` sets it); (held, stop,
    under, ask) per trader (4, traders): whether it holds a position, stops, is a prudent trader with a position
    and equity whose worst account's health at `oracle` prices (`state_health`, np.min's NaN rule) is under
    `prudent_buffer`, or is such a trader whose health the engine is to work out (`health_here` false: many
    assets; or a portfolio-margined account); and the exposure per position (traders, k). Sums over a trader's
    positions left to right, as numpy adds fewer than 8 numbers. Few arrays out: numba's cost is per array
    returned."""
    n, k = accounts.shape
    n_assets = book_collateral.shape[1]
    levels = np.empty((4, n))
    flags = np.zeros((4, n), dtype=np.bool_)
    exposure = np.empty((n, k))
    for r in range(n):
        holder = holders[r]
        held = False
        for j in range(k):
            acct = accounts[r, j]
            for a in range(n_assets):
                if book_collateral[acct, a] != 0.0 or book_scaled_debt[acct, a] != 0.0:
                    held = True
        own = account_equity[r, 0]
        if accounts[r, 0] != accounts[r, k - 1]:  # isolated: one account per position
            for j in range(1, k):
                own += account_equity[r, j]
        e = own + wallet_equity[r]
        p = peak_equity[holder]
        if held and (e > p or e != e):
            p = e
        flags[0, r] = held
        flags[1, r] = risk[holder] == stop_loss and _past_drawdown(e, p, stop_loss_drawdown)
        if risk[holder] == prudent and held and e > 0:
            worst = np.inf
            ask = not health_here
            for j in range(k):
                acct = accounts[r, j]
                if modes[acct] == portfolio:
                    ask = True
                elif health_here:
                    h = state_health(
                        book_collateral, book_scaled_debt, acct, borrow_index, liquidation_threshold, oracle
                    )
                    if h < worst or h != h:  # a NaN stays
                        worst = h
            flags[3, r] = ask
            flags[2, r] = not ask and worst < prudent_buffer
        long = direction[holder] > 0
        for j in range(k):
            a, acct = assets[r, j], accounts[r, j]
            exposure[r, j] = _position_exposure(
                long, book_collateral[acct, a], book_scaled_debt[acct, a], borrow_index[a], prices[a]
            )
        total = exposure[r, 0]
        for j in range(1, k):
            total += exposure[r, j]
        levels[0, r], levels[1, r], levels[2, r], levels[3, r] = e, p, _current_leverage(total, own), np.inf
    for r in range(n):  # every peak from the book as it was, then written
        peak_equity[holders[r]] = levels[1, r]
    return levels, flags, exposure


@njit(cache=True, nogil=True)
def _rebalance(
    target: np.ndarray,
    borrow_rates: np.ndarray,
    restore: np.ndarray,
    account_equity: np.ndarray,
    exposure: np.ndarray,
    accounts: np.ndarray,
    assets: np.ndarray,
    holders: np.ndarray,
    flags: np.ndarray,
    equity: np.ndarray,
    direction: np.ndarray,
    leverage_cap: np.ndarray,
    out_until: np.ndarray,
    max_leverage: float,
    borrow_rate_tolerance: float,
    rebalance_tolerance: float,
    step: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The second half of `plan_decisions`, per trader r: the leverage it wants (its strategy's `target`, limits
    and carry at its `lending_carry_rate` of the pool's `borrow_rates`, per year; lowered to `restore` when that is
    lower), per position the gap to its share of that leverage (USD: an isolated position's account equity, a
    shared account's over its k positions) and whether it trades (outside the band, with account equity); and
    whether the trader acts: a flat trader re-enters, one with a position and equity left (an underwater one has
    nothing left to manage: the liquidators will come) stops out or trades; none while still out (`out_until`)
    after a stop or a wipe-out. `flags`: (held, stop, ...) per trader, from `_position_states`.

    Returns (wanted, rate) per trader (2, traders), the gap per position (traders, k), and (traders, k + 1): whether
    each position trades, then whether the trader acts."""
    n, k = account_equity.shape
    wanted_rate = np.empty((2, n))
    gap = np.empty((n, k))
    moves = np.zeros((n, k + 1), dtype=np.bool_)
    for r in range(n):
        holder = holders[r]
        long = direction[holder] > 0
        rate = _lending_carry_rate(borrow_rates, long, assets[r, 0])
        carry = compiled_carry_factor(rate, borrow_rate_tolerance)
        w = compiled_wanted_leverage(target[r], max_leverage, leverage_cap[holder], long, carry)
        if restore[r] < w:
            w = restore[r]
        wanted_rate[0, r], wanted_rate[1, r] = w, rate
        positions = 1.0 if accounts[r, 0] != accounts[r, k - 1] else float(k)
        trades = False
        for j in range(k):
            gap[r, j], outside = _rebalance_gap(
                w * account_equity[r, j] / positions, exposure[r, j], rebalance_tolerance
            )
            if outside and account_equity[r, j] > 0:
                moves[r, j] = True
                trades = True
        held, stop = flags[0, r], flags[1, r]
        moves[r, k] = (not held or (not equity[r] <= 0 and (stop or trades))) and out_until[holder] <= step
    return wanted_rate, gap, moves
