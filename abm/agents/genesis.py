"""The traders' genesis positions opened in one vectorised pass, bit for bit what opening them one trader at a time
(`LeveragedTrader.open_positions` with `genesis=True`, in the activation order) gives.

One at a time, each trader is funded from the outside world and opens its positions at the leverage it wants
(`LeveragedTrader.wanted_leverage`); the only thing one trader's opening changes for the next is the pool: its cash,
its borrows and so its borrow rate, which enters the next trader's wanted leverage through the carry factor
min(1, borrow_rate_tolerance / rate). While every trader's rate stays under the tolerance that factor is exactly 1,
so no trader's amounts depend on the others' and every running total (pool cash and borrows, the market ledger,
wallets, accounts) is the same sequence of float additions, which `np.cumsum` (left to right, like the loop)
reproduces. `open_genesis_positions` checks that on the planned path (rates, the pool's cash, borrow power, wallets)
and, when a check fails or is too close to call, changes nothing and returns False: the caller then opens the
positions one trader at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from abm.agents.strategies import target_leverages
from abm.agents.trader import LeveragedTrader
from abm.config.schema import MARGIN_MODES
from abm.lending.wallets import NEGATIVE_TOLERANCE
from abm.numerics import row_sums
from abm.protocol import borrow_rate, utilisation

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

# a sign decided by a value within this share of its scale is left to the one-at-a-time path
MARGIN = 1e-9


def _sequential(start: float, deltas: np.ndarray) -> np.ndarray:
    """start + deltas[0] + deltas[1] + ..., every partial total, added left to right as a loop of `+=` does."""
    return np.cumsum(np.concatenate(([start], deltas)))


def open_genesis_positions(model: ReflexivityModel, order: np.ndarray) -> bool:
    """Fund every trader with its initial equity and open its genesis positions, traders in `order`; False (and
    nothing changed) when the vectorised pass does not apply: perp traders or portfolio margin, or a trader whose
    carry factor, pool cash, borrow power or wallet would not let it open exactly as planned."""
    traders = model.traders
    if not traders or any(type(t) is not LeveragedTrader for t in traders):
        return False
    book, engine, pool, market, wallets = model.book, model.engine, model.pool, model.market, model.wallets
    if np.any(book.mode == MARGIN_MODES.index("portfolio")):
        return False
    cfg = model.config.traders
    n_assets = len(model.symbols)
    tr = [traders[int(i)] for i in order]
    holders = np.array([t.holder for t in tr], dtype=np.int64)
    assets = np.array([t.assets for t in tr], dtype=np.int64)  # (traders, k): every trader holds k assets
    accounts = np.array([t.accounts for t in tr], dtype=np.int64)
    if assets.ndim != 2 or assets.shape != accounts.shape:
        return False
    n, k = assets.shape
    long = book.direction[holders] > 0
    equity = book.initial_equity[holders]
    # the pool state each trader sees when it decides: the running cash and scaled borrows of its debt asset
    debt_asset = np.where(long, 0, assets[:, 0])
    # 1. the wanted leverage with the carry factor 1 (checked below): min(target, max_leverage, cap)
    target = target_leverages(model, tr)  # each trader's accounts are empty: current leverage 0
    target = np.minimum(np.minimum(target, cfg.max_leverage), book.leverage_cap[holders])
    leverage = np.where(long, 1.0 + (target - 1.0) * 1.0, target * 1.0)
    share = equity / k
    # 2. every trade, in the loop's order (trader by trader, its assets in turn): flattened (n * k)
    price = np.array([float(np.exp(market.log_f[a])) for a in range(n_assets)])  # as `genesis_quote` reads it
    pos_asset = assets.ravel()
    pos_long = np.repeat(long, k)
    pos_share = np.repeat(share, k)
    pos_lev = np.repeat(leverage, k)
    pos_price = price[pos_asset]
    borrow = np.where(pos_long, pos_share * (pos_lev - 1.0), pos_share * pos_lev / pos_price)  # USD / tokens
    borrow_asset = np.where(pos_long, 0, pos_asset)
    if np.any(borrow < 0) or np.any(borrow + pos_share <= 0) or np.any(pos_share < 0):
        return False
    if not np.all(pool.borrow_enabled[borrow_asset]):  # `_can_borrow` asks even for a loan of 0
        return False
    # the pool: cash and scaled borrows of each reserve after every trade before this one (and the rate then)
    cash_before = np.empty(n * k)
    scaled_before = np.empty(n * k)
    scaled_new = borrow / pool.borrow_index[borrow_asset]
    cash_after = pool.cash.copy()
    scaled_after = pool.scaled_borrows.copy()
    for a in range(n_assets):
        mine = np.flatnonzero((borrow_asset == a) & (borrow > 0))  # `lever_*` books no loan of 0
        if not len(mine):
            cash_before[borrow_asset == a] = pool.cash[a]
            scaled_before[borrow_asset == a] = pool.scaled_borrows[a]
            continue
        cash_run = _sequential(float(pool.cash[a]), -borrow[mine])
        scaled_run = _sequential(float(pool.scaled_borrows[a]), scaled_new[mine])
        # a trade with no loan sees the totals of the last loan before it
        idx = np.searchsorted(mine, np.flatnonzero(borrow_asset == a), side="left")
        cash_before[borrow_asset == a] = cash_run[idx]
        scaled_before[borrow_asset == a] = scaled_run[idx]
        if np.any(borrow[mine] > cash_run[:-1] * (1.0 - MARGIN)):  # `_can_borrow`; lend_out's max(., 0) idle
            return False
        cash_after[a], scaled_after[a] = cash_run[-1], scaled_run[-1]
    # the carry factor is 1 when each trader's rate, at the state before its first trade, is within the tolerance
    first = np.arange(n) * k
    c0, s0 = cash_before[first], scaled_before[first]
    u = utilisation(c0, s0 * pool.borrow_index[debt_asset], check=False)
    rate = borrow_rate(
        u,
        pool.base_rate[debt_asset],
        pool.slope1[debt_asset],
        pool.slope2[debt_asset],
        pool.optimal[debt_asset],
        check=False,
    )
    if np.any(rate > cfg.borrow_rate_tolerance * (1.0 - MARGIN)):
        return False
    # 3. the accounts, the wallets and the borrow-power checks, asset by asset of each trader (accounts are the
    # trader's own, so only a trader's own trades add up in them)
    spend = borrow + pos_share  # long: USD spent; short: unused
    bought = spend / pos_price  # long: `genesis_quote` of a USD amount
    raised = borrow * pos_price  # short: -`genesis_quote` of -tokens
    ltv = engine._effective_params()[1]
    oracle = model.oracle.prices
    acct_coll = engine.collateral[accounts[:, 0]].copy()  # one row per trader: cross accounts are shared
    acct_debt = engine.scaled_debt[accounts[:, 0]].copy()
    isolated = accounts[:, 0] != accounts[:, -1] if k > 1 else np.zeros(n, dtype=bool)
    balance = wallets.balances[holders, 0] + equity  # `fund_from_world` credits the initial equity
    rows = np.arange(n)
    new_coll: list[np.ndarray] = []
    new_debt: list[np.ndarray] = []
    for j in range(k):
        p = rows * k + j
        a = assets[:, j]
        if k > 1 and isolated.any():  # an isolated trader's next asset is a fresh account
            fresh = engine.collateral[accounts[:, j]]
            acct_coll = np.where(isolated[:, None], fresh, acct_coll)
            acct_debt = np.where(isolated[:, None], engine.scaled_debt[accounts[:, j]], acct_debt)
        # the end state each trade's borrow-power check sees (tokens), then its headroom at oracle prices
        coll_end = acct_coll.copy()
        debt_end = acct_debt * pool.borrow_index
        coll_end[rows, np.where(long, a, 0)] += np.where(long, bought[p], pos_share[p] + raised[p])
        debt_end[rows, np.where(long, 0, a)] += borrow[p]
        value = coll_end * oracle
        owed = row_sums(debt_end * oracle)
        headroom = row_sums(value * ltv) - owed
        scale = np.maximum(np.abs(row_sums(value * ltv)), owed)
        if np.any((borrow[p] > 0) & (headroom < MARGIN * scale)):
            return False
        # the wallet pays its share (`Wallets.debit`: a shortfall within rounding ends at 0)
        balance = balance - pos_share[p]
        if np.any(balance < -NEGATIVE_TOLERANCE * np.maximum(1.0, pos_share[p])):
            return False
        balance = np.where(balance < 0, 0.0, balance)
        # the account after the trade: long, the bought tokens; short, the own USD, then the sale's USD
        loan = np.where(borrow[p] > 0, scaled_new[p], 0.0)
        acct_debt = acct_debt.copy()
        acct_debt[rows, np.where(long, 0, a)] += loan
        acct_coll = acct_coll.copy()
        acct_coll[long, a[long]] += bought[p][long]
        short = ~long
        acct_coll[short, 0] += pos_share[p][short]
        acct_coll[short, 0] += np.where(borrow[p] > 0, raised[p], 0.0)[short]
        new_coll.append(acct_coll)
        new_debt.append(acct_debt)
    # the market ledger: the outside world pays each trader's equity, then takes each long's USD for tokens and
    # each short's tokens for USD, in the loop's order
    usd_flow = np.empty(n * (k + 1))
    usd_flow[:: k + 1] = -equity
    trade_usd = np.where(pos_long, spend, -raised).reshape(n, k)
    for j in range(k):
        usd_flow[j + 1 :: k + 1] = trade_usd[:, j]
    world_usd = _sequential(float(market.world_net[0]), usd_flow)
    world_start = market.world_start
    if np.any(world_usd[1 :: k + 1] < -world_start[0] * (1.0 - MARGIN)):  # `pay_out` of the equity
        return False
    token_flow = np.where(pos_long, -bought, borrow)
    world_tokens = market.world_net.copy()
    world_tokens[0] = world_usd[-1]
    for a in range(1, n_assets):
        mine = np.flatnonzero(pos_asset == a)
        if len(mine):
            world_tokens[a] = _sequential(float(market.world_net[a]), token_flow[mine])[-1]
    # every check passed: write the state the one-at-a-time loop would have left
    for j in range(k):
        engine.collateral[accounts[:, j]] = new_coll[j]
        engine.scaled_debt[accounts[:, j]] = new_debt[j]
    wallets.balances[holders, 0] = balance
    pool.book_loans(cash_after, scaled_after)
    market.world_net[:] = world_tokens
    return True
