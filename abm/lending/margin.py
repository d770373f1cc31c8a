"""The margin engine: every account's collateral and debt as numpy arrays, health in one vectorised pass (docs/model.md, "Health and liquidation").

Accounts are rows of struct-of-arrays state: `collateral` (tokens), `scaled_debt` (debt tokens divided by the
reserve's borrow index), `owner` (wallet holder), `mode` (cross, isolated, portfolio). Agents act only through the
methods here, which keep the pool's totals, the wallets and the market ledger consistent, so no token is created
or lost. Each position-changing method is atomic (like a flash-loan-wrapped Aave transaction): it checks the end
state and reverts (returns False) when the account would end up unable to borrow what it owes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.config.schema import MARGIN_MODES
from abm.errors import InvariantError
from abm.lending.kernels import (
    account_equities,
    accounts_health_factors,
    accounts_net_tokens,
    health_factors,
    insolvent_rows,
    liquidation_plans,
    loans_in_turn,
    owner_equities,
    tokens_headroom,
    tokens_health,
)
from abm.lending.pool import LendingPool
from abm.lending.wallets import Wallets
from abm.numerics import SEQUENTIAL_SUM_MAX, row_sums, scale_columns
from abm.protocol import health_factor

MODE_CODE = {m: i for i, m in enumerate(MARGIN_MODES)}  # the code stored in `MarginEngine.mode`
PORTFOLIO = MODE_CODE["portfolio"]


@dataclass(frozen=True)
class LiquidationPlan:
    """A full close-factor liquidation of one account: repay `repay` tokens of its largest debt asset and seize
    `seize` tokens of its largest collateral asset (both at oracle prices); `hf_before` its health factor now."""

    debt_asset: int
    collateral_asset: int
    repay: float
    seize: float
    hf_before: float


@dataclass(frozen=True)
class LiquidationPlans:
    """The `LiquidationPlan`s of several accounts as arrays, one entry per account; where `liquidatable` is False
    the account has no plan (not liquidatable, or no debt or collateral to take) and its other entries mean
    nothing."""

    liquidatable: np.ndarray  # bool
    debt_asset: np.ndarray  # int
    collateral_asset: np.ndarray  # int
    repay: np.ndarray  # debt tokens
    seize: np.ndarray  # collateral tokens
    hf_before: np.ndarray

    def plan(self, r: int) -> LiquidationPlan | None:
        """Entry r as a `LiquidationPlan` (None without one)."""
        if not self.liquidatable[r]:
            return None
        j, k = int(self.debt_asset[r]), int(self.collateral_asset[r])
        return LiquidationPlan(j, k, float(self.repay[r]), float(self.seize[r]), float(self.hf_before[r]))


def portfolio_scenarios(liquidation_threshold: np.ndarray) -> np.ndarray:
    """Joint price shocks (assets x scenarios; relative price moves) for portfolio margin: each risky asset alone and
    all together, down and up, by 1 - its liquidation threshold (so a lone long is margined as in cross mode)."""
    n = len(liquidation_threshold)
    shock = np.zeros(n)
    shock[1:] = 1.0 - liquidation_threshold[1:]
    cols = [-shock, shock]
    for k in range(1, n):
        e = np.zeros(n)
        e[k] = shock[k]
        cols += [-e, e]
    return np.stack(cols, axis=1)


class MarginEngine:
    """Accounts as arrays; health, borrowing power, position changes and liquidations."""

    def __init__(self, pool: LendingPool, wallets: Wallets, market, capacity: int = 1024) -> None:
        self.pool = pool
        self.wallets = wallets
        self.market = market
        self.symbols = pool.symbols
        n_assets = len(self.symbols)
        self.n = 0
        self.collateral = np.zeros((capacity, n_assets))
        self.scaled_debt = np.zeros((capacity, n_assets))
        self.owner = np.zeros(capacity, dtype=np.int64)
        self.mode = np.zeros(capacity, dtype=np.int64)
        self.scenarios = portfolio_scenarios(pool.liquidation_threshold)  # portfolio margin (assets x scenarios)
        self._scenarios_seen = pool.params_version  # the pool parameters the scenario grid was made from
        self._params_seen = -1  # pool.params_version the cached effective LT / LTV were made from
        # `portfolio_accounts`: the ids of the portfolio accounts among the first `_portfolio_rows_of` accounts
        self._portfolio_rows = np.zeros(0, dtype=np.int64)
        self._portfolio_rows_of = 0

    def _effective_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Liquidation thresholds and LTVs with collateral-disabled assets at 0, cached until the pool's risk
        parameters are refreshed (a scenario `set` event, the risk manager); portfolio margin's scenario grid is
        rebuilt from the new thresholds then (a grid set by hand stays until the parameters change)."""
        if self._params_seen != self.pool.params_version:
            enabled = self.pool.collateral_enabled
            self._lt_eff = np.where(enabled, self.pool.liquidation_threshold, 0.0)
            self._ltv_eff = np.where(enabled, self.pool.ltv, 0.0)
            self._params_seen = self.pool.params_version
        if self._scenarios_seen != self.pool.params_version:
            self.scenarios = portfolio_scenarios(self.pool.liquidation_threshold)
            self._scenarios_seen = self.pool.params_version
        return self._lt_eff, self._ltv_eff

    # --- accounts -------------------------------------------------------------------------------------

    def open_account(self, owner: int, mode: str = "cross") -> int:
        """A new empty account for wallet holder `owner`; returns its id (row)."""
        if self.n == len(self.owner):  # amortised doubling keeps opening O(1)
            grow = len(self.owner)
            self.collateral = np.vstack([self.collateral, np.zeros_like(self.collateral[:grow])])
            self.scaled_debt = np.vstack([self.scaled_debt, np.zeros_like(self.scaled_debt[:grow])])
            self.owner = np.concatenate([self.owner, np.zeros(grow, dtype=np.int64)])
            self.mode = np.concatenate([self.mode, np.zeros(grow, dtype=np.int64)])
        acct = self.n
        self.owner[acct] = owner
        self.mode[acct] = MODE_CODE[mode]
        self.n += 1
        return acct

    def open_accounts(self, owners: np.ndarray, modes: np.ndarray) -> np.ndarray:
        """New empty accounts, one per entry of `owners` (wallet holders) with margin mode codes `modes`, ids in
        that order: what `open_account` once per entry gives (the same ids and capacity), in one pass."""
        m = len(owners)
        while self.n + m > len(self.owner):  # the same doublings as one account at a time
            grow = len(self.owner)
            self.collateral = np.vstack([self.collateral, np.zeros_like(self.collateral[:grow])])
            self.scaled_debt = np.vstack([self.scaled_debt, np.zeros_like(self.scaled_debt[:grow])])
            self.owner = np.concatenate([self.owner, np.zeros(grow, dtype=np.int64)])
            self.mode = np.concatenate([self.mode, np.zeros(grow, dtype=np.int64)])
        ids = np.arange(self.n, self.n + m)
        self.owner[ids] = owners
        self.mode[ids] = modes
        self.n += m
        return ids

    def debt_tokens(self, acct: int | slice = slice(None)) -> np.ndarray:
        """Debt in tokens (principal plus interest) of one account, or of all (rows)."""
        if isinstance(acct, slice):
            return self.scaled_debt[: self.n] * self.pool.borrow_index
        return self.scaled_debt[acct] * self.pool.borrow_index

    def owed_tokens(self, acct: int, asset: int) -> float:
        """Debt in tokens of one account in one asset: `debt_tokens(acct)[asset]`, without the whole row."""
        return float(self.scaled_debt[acct, asset] * self.pool.borrow_index[asset])

    # --- health: one vectorised pass ------------------------------------------------------------------

    def values(self, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Collateral and debt in USD per account and asset at `prices` (USD/token): two (n, assets) arrays."""
        coll = scale_columns(self.collateral[: self.n], prices)
        debt = scale_columns(self.scaled_debt[: self.n], self.pool.borrow_index * prices)
        return coll, debt

    def account_equity(self, prices: np.ndarray, accounts: slice | list[int] | np.ndarray = slice(None)) -> np.ndarray:
        """Collateral minus debt (USD at `prices`) of every account, or of `accounts` (ids)."""
        if isinstance(accounts, slice):
            n = self.n
            return account_equities(self.collateral[:n], self.scaled_debt[:n], prices, self.pool.borrow_index * prices)
        # the net tokens gathered in one compiled pass (a few accounts: numpy's per-call cost dominated), valued by
        # one matrix product (whose rounding depends on the rows' count and order: the same product as ever)
        ids = np.asarray(accounts, dtype=np.int64)
        return accounts_net_tokens(self.collateral, self.scaled_debt, ids, self.pool.borrow_index) @ prices

    def owner_equity(self, prices: np.ndarray, n_owners: int) -> np.ndarray:
        """Collateral minus debt (USD at `prices`) of each owner 0..n_owners-1 over its accounts (the sum of their
        `account_equity`, in account order); accounts of later owners are left out."""
        n = self.n
        debt_prices = self.pool.borrow_index * prices
        return owner_equities(self.owner[:n], self.collateral[:n], self.scaled_debt[:n], prices, debt_prices, n_owners)

    def health(self, prices: np.ndarray) -> np.ndarray:
        """Health factor of every account at `prices` (oracle): inf without debt; < 1 is liquidatable.

        cross / isolated: HF = sum_i c_i p_i LT_i / sum_j d_j p_j. portfolio: equity / requirement, the
        requirement being the worst loss over the scenario grid (SPAN-like).
        """
        return self.health_along(prices[None, :])[0]

    def health_along(self, paths: np.ndarray) -> np.ndarray:
        """Health factor of every account along each row of `paths` ((paths, assets), USD/token), as `health`
        computes it, in one pass over the book: (paths, accounts)."""
        n = self.n
        lt = self._effective_params()[0]
        hf = health_factors(self.collateral[:n], self.scaled_debt[:n], lt, paths, self.pool.borrow_index * paths)
        port = self.portfolio_accounts()
        if len(port):
            coll, debt = self.collateral[port], self.scaled_debt[port]
            for k, prices in enumerate(paths):
                hf[k, port] = self._portfolio_hf(coll * prices, debt * (self.pool.borrow_index * prices))
        return hf

    def portfolio_accounts(self) -> np.ndarray:
        """Ids of the portfolio-margined accounts, ascending. An account's mode is set when it opens and never
        changes, so the ids are worked out again only when accounts have opened since the last call."""
        if self._portfolio_rows_of != self.n:
            self._portfolio_rows = np.flatnonzero(self.mode[: self.n] == PORTFOLIO)
            self._portfolio_rows_of = self.n
        return self._portfolio_rows

    def _portfolio_hf(self, coll: np.ndarray, debt: np.ndarray) -> np.ndarray:
        net = coll - debt  # USD exposure per asset
        equity = row_sums(net)
        self._effective_params()  # the scenarios follow the current thresholds
        loss = -(net @ self.scenarios)  # (accounts, scenarios): loss when every asset moves by its shock
        requirement = np.maximum(loss.max(axis=1), 0.0)
        has_debt = row_sums(debt) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            hf = np.where(requirement > 0, np.maximum(equity, 0.0) / requirement, np.inf)
        return np.where(has_debt, hf, np.inf)

    def _state_health(self, coll_tokens: np.ndarray, debt_tokens: np.ndarray, mode: int, prices: np.ndarray) -> float:
        """Health factor of one account state (tokens, debt tokens) at `prices`, as `health` computes it."""
        lt = self._effective_params()[0]
        if mode != PORTFOLIO and len(lt) < SEQUENTIAL_SUM_MAX:  # compiled (one account, every trade)
            return tokens_health(coll_tokens, debt_tokens, lt, prices)
        coll, debt = coll_tokens * prices, debt_tokens * prices
        if mode == PORTFOLIO:
            return float(self._portfolio_hf(coll[None, :], debt[None, :])[0])
        return float(health_factor(coll, lt, debt.sum(), check=False))

    def _state_headroom(self, coll_tokens: np.ndarray, debt_tokens: np.ndarray, mode: int, prices: np.ndarray) -> float:
        """Borrow power minus debt (USD) of one account state; portfolio: equity minus the scenario requirement."""
        if mode != PORTFOLIO and len(prices) < SEQUENTIAL_SUM_MAX:  # compiled (one account, every leveraged trade)
            return tokens_headroom(coll_tokens, debt_tokens, self._effective_params()[1], prices)
        coll, debt = coll_tokens * prices, debt_tokens * prices
        if mode == PORTFOLIO:
            net = coll - debt
            self._effective_params()  # the scenarios follow the current thresholds
            requirement = max(float((-(net @ self.scenarios)).max()), 0.0)
            return float(net.sum() - requirement)
        ltv = self._effective_params()[1]
        return float((coll * ltv).sum() - debt.sum())

    def _states_headroom(
        self, coll_tokens: np.ndarray, debt_tokens: np.ndarray, modes: np.ndarray, prices: np.ndarray
    ) -> np.ndarray:
        """`_state_headroom` of each row of `coll_tokens`, `debt_tokens` ((rows, assets): tokens, debt tokens) with
        margin mode codes `modes`, in one pass: its arithmetic, the sums over assets left to right (as numpy adds
        fewer than `SEQUENTIAL_SUM_MAX` numbers; more assets fall back to one row at a time); a portfolio row's
        scenario product is one matrix product for all rows (it may round apart from the row's own in the last
        place)."""
        if len(prices) >= SEQUENTIAL_SUM_MAX:
            rows = zip(coll_tokens, debt_tokens, modes.tolist(), strict=True)
            return np.array([self._state_headroom(c, d, m, prices) for c, d, m in rows], dtype=float)
        coll, debt = scale_columns(coll_tokens, prices), scale_columns(debt_tokens, prices)
        ltv = self._effective_params()[1]
        headroom = row_sums(scale_columns(coll, ltv)) - row_sums(debt)
        port = np.flatnonzero(modes == PORTFOLIO)
        if len(port):
            net = coll[port] - debt[port]
            requirement = np.maximum((-(net @ self.scenarios)).max(axis=1), 0.0)
            headroom[port] = row_sums(net) - requirement
        return headroom

    def account_health(self, acct: int, prices: np.ndarray) -> float:
        """Health factor of one account (same formulas as `health`)."""
        return self._state_health(self.collateral[acct], self.debt_tokens(acct), int(self.mode[acct]), prices)

    def accounts_health(self, accounts: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """Health factor of each of `accounts` (ids; repeats allowed) at `prices` (USD/token), as `account_health`
        computes it for each, bit for bit, in one pass over those rows (O(accounts), not O(book))."""
        accounts = np.asarray(accounts, dtype=np.int64)
        lt = self._effective_params()[0]
        portfolio = self.mode.take(accounts) == PORTFOLIO
        if len(lt) >= SEQUENTIAL_SUM_MAX or portfolio.all():
            return np.array([self.account_health(int(a), prices) for a in accounts.tolist()], dtype=float)
        # `_state_health`'s arithmetic, compiled: a few accounts (a trader's), where numpy's per-call cost dominated
        hf = accounts_health_factors(self.collateral, self.scaled_debt, accounts, self.pool.borrow_index, lt, prices)
        for r in portfolio.nonzero()[0].tolist():
            hf[r] = self.account_health(int(accounts[r]), prices)
        return hf

    def borrow_headroom_usd(self, acct: int, prices: np.ndarray) -> float:
        """Borrow power minus debt (USD): sum c_i p_i ltv_i - sum d_j p_j (portfolio: equity - requirement)."""
        return self._state_headroom(self.collateral[acct], self.debt_tokens(acct), int(self.mode[acct]), prices)

    # --- primitive moves (no checks beyond balances) --------------------------------------------------

    def _release(self, acct: int, asset: int, amount: float) -> float:
        amount = min(amount, float(self.collateral[acct, asset]))
        self.collateral[acct, asset] -= amount
        return amount

    def _borrow(self, acct: int, asset: int, amount: float) -> None:
        self.scaled_debt[acct, asset] += self.pool.lend_out(asset, amount)

    def _repay(self, acct: int, asset: int, amount: float) -> float:
        """Repay up to the debt; returns tokens used (the caller holds them)."""
        owed = float(self.scaled_debt[acct, asset] * self.pool.borrow_index[asset])
        amount = min(amount, owed)
        if amount <= 0:
            return 0.0
        scaled = self.pool.take_repayment(asset, amount)
        self.scaled_debt[acct, asset] = max(self.scaled_debt[acct, asset] - scaled, 0.0)
        if amount >= owed * (1 - 1e-12):
            self.scaled_debt[acct, asset] = 0.0
        return amount

    def withdraw(self, acct: int, asset: int, amount: float, prices: np.ndarray) -> float:
        """Collateral back to the owner's wallet, as far as the account stays able to borrow what it owes."""
        amount = min(amount, float(self.collateral[acct, asset]))
        if amount <= 0:
            return 0.0
        debt = self.debt_tokens(acct)
        if debt.any():  # check the end state on a copy: (c - x) + x need not give back c in floats
            coll = self.collateral[acct].copy()
            coll[asset] -= amount
            if self._state_headroom(coll, debt, int(self.mode[acct]), prices) < 0:
                return 0.0
        self.collateral[acct, asset] -= amount
        self.wallets.credit(int(self.owner[acct]), asset, amount)
        return amount

    def repay_from_wallet(self, acct: int, asset: int, amount: float) -> float:
        """The owner repays debt from its wallet; returns tokens repaid."""
        owner = int(self.owner[acct])
        amount = min(amount, self.wallets.balance(owner, asset))
        used = self._repay(acct, asset, amount)
        self.wallets.debit(owner, asset, used)
        return used

    # --- leveraged position changes (atomic; market trades inside) ------------------------------------

    def _can_borrow(self, asset: int, borrow: float, own: float) -> bool:
        """Whether a leveraged change may start: amounts non-negative and not both 0, and `borrow` tokens of `asset`
        within the pool's cash and its borrowing switch (the borrow-power check comes after, on the end state)."""
        if borrow < 0 or own < 0 or borrow + own <= 0:
            return False
        return borrow <= self.pool.cash[asset] and bool(self.pool.borrow_enabled[asset])

    def _sell_quote(self, asset: int, tokens: float, genesis: bool) -> float:
        """USD that selling `tokens` of `asset` would raise: at the fundamental for a genesis position, else from
        the market's impact quote (no state change)."""
        return -self.market.genesis_quote(asset, -tokens) if genesis else self.market.quote_sell(asset, tokens)

    def _sell(self, asset: int, tokens: float, genesis: bool, step: int) -> float:
        """Sell `tokens` of `asset` (at the fundamental for a genesis position); returns the USD raised."""
        if genesis:
            return -self.market.genesis_trade(asset, -tokens)
        return self.market.sell(asset, tokens, "disc", step=step)

    def open_genesis(
        self,
        accounts: np.ndarray,
        assets: np.ndarray,
        long: np.ndarray,
        borrow: np.ndarray,
        own: np.ndarray,
        prices: np.ndarray,
    ) -> np.ndarray:
        """Open positions that exist before the run, in one pass: per row (a position, rows in the order one at a
        time would open them), account `accounts[i]` borrows `borrow[i]` and adds `own[i]` USD from its owner's
        wallet. A long (`long[i]`) borrows USD, buys `assets[i]` with both at the fundamental and posts the tokens;
        a short borrows tokens of `assets[i]`, sells them at the fundamental and posts the USD with its own.
        Returns which rows opened.

        Each row opens, or not, exactly as `lever_long` / `lever_short` would one row at a time, bit for bit: the
        same checks (amounts non-negative and not both 0, borrowing of the asset enabled, the borrow within the
        pool's cash left by the rows before it, the end state within borrow power at `prices`, the oracle) skip a
        row with nothing changed, and the next row may still open; the same account and wallet arithmetic (an
        owner's rows in order, so a shared account's second position sees its first); the pool's cash and borrows
        added up in the rows' order (`LendingPool.lend_out_many`). The market's ledger is booked once per asset
        (`Market.genesis_fills`), so its totals may round apart from one fill at a time in the last places.
        """
        rows = len(accounts)
        if rows == 0:
            return np.zeros(0, dtype=bool)
        pool = self.pool
        accounts, assets = np.asarray(accounts, dtype=np.int64), np.asarray(assets, dtype=np.int64)
        long, borrow, own = np.asarray(long, dtype=bool), np.asarray(borrow, dtype=float), np.asarray(own, dtype=float)
        owner = self.owner[accounts]
        borrowed = np.where(long, 0, assets)  # the asset each row borrows
        amounts = np.where(long, borrow + own, -borrow)  # the genesis order: USD spent (long), -tokens sold (short)
        tokens = self.market.genesis_quotes(assets, amounts)  # tokens bought (long), -USD raised (short)
        basic = (borrow >= 0) & (own >= 0) & (borrow + own > 0) & pool.borrow_enabled[borrowed]
        # an owner's k-th row comes in round k: within a round every owner (so every account) appears once
        if np.bincount(owner).max() == 1:  # one row per owner (a million traders with one asset each): no sort
            rank = np.zeros(rows, dtype=np.int64)
        else:
            order = np.argsort(owner, kind="stable")
            first = np.flatnonzero(np.r_[True, owner[order][1:] != owner[order][:-1]])
            rank = np.empty(rows, dtype=np.int64)
            rank[order] = np.arange(rows) - np.repeat(first, np.diff(np.r_[first, rows]))
        # the accounts touched (ascending) and each row's index into them: `np.unique(accounts,
        # return_inverse=True)` by marking the account ids instead of sorting the rows
        marked = np.zeros(int(accounts.max()) + 1, dtype=bool)
        marked[accounts] = True
        touched = np.flatnonzero(marked)
        local = (np.cumsum(marked) - 1)[accounts]
        # which rows find the pool's cash depends on which rows before them opened, which (a shared account's
        # borrow-power check) can depend on which found the cash: repeat until the two agree. Each round fixes at
        # least the first row still wrong, so this ends; without a shortage the first round agrees.
        fits = np.ones(rows, dtype=bool)
        while True:
            within, coll, scaled = self._genesis_rounds(
                local, touched, rank, assets, long, borrow, own, tokens, basic, fits, prices
            )
            eligible = basic & within
            made = loans_in_turn(pool.cash, borrowed[eligible], borrow[eligible])
            now = fits.copy()
            now[eligible] = made
            if np.array_equal(now[eligible], fits[eligible]):
                break
            fits = now
        opened = eligible & fits
        # the books: wallets (an owner's rows in order), the pool (rows in order), the market (once per asset)
        for k in range(int(rank.max()) + 1):
            paid = opened & (rank == k) & (own > 0)
            self.wallets.debit_many(owner[paid], 0, own[paid])
        lend = opened & (borrow > 0)
        pool.lend_out_many(borrowed[lend], borrow[lend])
        self.market.genesis_fills(assets[opened], amounts[opened])
        self.collateral[touched], self.scaled_debt[touched] = coll, scaled
        return opened

    def _genesis_rounds(
        self,
        local: np.ndarray,
        touched: np.ndarray,
        rank: np.ndarray,
        assets: np.ndarray,
        long: np.ndarray,
        borrow: np.ndarray,
        own: np.ndarray,
        tokens: np.ndarray,
        basic: np.ndarray,
        fits: np.ndarray,
        prices: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`open_genesis`'s account arithmetic on copies of the `touched` accounts' rows (`local`: each row's index
        into them), round by round (`rank`): which rows' end states are within borrow power (of the rows passing
        the `basic` checks), and the accounts' collateral and scaled debt once the rows within it that `fits`
        (found the pool's cash) have opened."""
        pool = self.pool
        coll, scaled = self.collateral.take(touched, axis=0), self.scaled_debt.take(touched, axis=0)
        mode = self.mode[touched]
        within = np.zeros(len(local), dtype=bool)
        for k in range(int(rank.max()) + 1):
            r = np.flatnonzero((rank == k) & basic)
            acc, a, lg, b, o, t = local[r], assets[r], long[r], borrow[r], own[r], tokens[r]
            # the end state each would leave, checked on copies as `lever_long` / `lever_short` check it
            c_end, d_end = coll.take(acc, axis=0), scaled.take(acc, axis=0) * pool.borrow_index
            c_end[lg, a[lg]] += t[lg]
            d_end[lg, 0] += b[lg]
            c_end[~lg, 0] += o[~lg] + -t[~lg]
            d_end[~lg, a[~lg]] += b[~lg]
            within[r] = (b <= 0) | ~(self._states_headroom(c_end, d_end, mode[acc], prices) < 0)
            go = within[r] & fits[r]
            acc, a, lg, b, o, t = acc[go], a[go], lg[go], b[go], o[go], t[go]
            # the moves, in `lever_long` / `lever_short`'s order: own USD posted, debt booked, the fill posted
            posted = ~lg & (o > 0)
            coll[acc[posted], 0] += o[posted]
            lend = b > 0
            debt_asset = np.where(lg, 0, a)[lend]
            scaled[acc[lend], debt_asset] += b[lend] / pool.borrow_index[debt_asset]
            coll[acc[lg], a[lg]] += t[lg]
            sold = ~lg & lend
            coll[acc[sold], 0] += -t[sold]
        return within, coll, scaled

    def _open_genesis_one(
        self, acct: int, asset: int, long: bool, borrow: float, own: float, prices: np.ndarray
    ) -> bool:
        """`open_genesis` of one position; whether it opened."""
        one = np.array([acct]), np.array([asset]), np.array([long]), np.array([borrow]), np.array([own])
        return bool(self.open_genesis(*one, prices)[0])

    def lever_long(
        self,
        acct: int,
        asset: int,
        borrow_usd: float,
        own_usd: float,
        prices: np.ndarray,
        step: int,
        genesis: bool = False,
    ) -> bool:
        """Borrow `borrow_usd` USD, add `own_usd` from the wallet, buy the asset, post it as collateral.

        Reverts (returns False, nothing changed) if the borrow would exceed the account's borrow power or the
        pool's cash. prices: oracle prices the protocol checks against. genesis: a position that exists before
        the run, filled at the fundamental without impact (`open_genesis` of one row).
        """
        if genesis:
            return self._open_genesis_one(acct, asset, True, borrow_usd, own_usd, prices)
        if not self._can_borrow(0, borrow_usd, own_usd):
            return False
        # would the end state keep the borrow power? (checked before trading, so a revert touches nothing)
        coll = self.collateral[acct].copy()
        spend = borrow_usd + own_usd
        coll[asset] += self.market.quote_buy(asset, spend)
        debt = self.debt_tokens(acct)  # a new array
        debt[0] += borrow_usd
        if borrow_usd > 0 and self._state_headroom(coll, debt, int(self.mode[acct]), prices) < 0:
            return False
        owner = int(self.owner[acct])
        if own_usd > 0:
            self.wallets.debit(owner, 0, own_usd)
        if borrow_usd > 0:
            self._borrow(acct, 0, borrow_usd)
        self.collateral[acct, asset] += self.market.buy(asset, spend, "disc", step=step)
        return True

    def delever_long(self, acct: int, asset: int, tokens: float, prices: np.ndarray, step: int) -> float:
        """Sell `tokens` of collateral and repay USD debt with the proceeds; any surplus goes to the wallet.

        Allowed when the account ends healthy or healthier than it started. Returns USD raised.
        """
        tokens = min(tokens, float(self.collateral[acct, asset]))
        if tokens <= 0:
            return 0.0
        mode, held = int(self.mode[acct]), self.collateral[acct]
        debt_after = self.debt_tokens(acct)  # a new array: the state now (`account_health`'s), then the end state
        hf0 = self._state_health(held, debt_after, mode, prices)
        proceeds = self.market.quote_sell(asset, tokens)
        owed = float(debt_after[0])
        repay = min(proceeds, owed)
        coll_after = held.copy()
        coll_after[asset] -= tokens
        debt_after[0] -= repay
        hf1 = self._state_health(coll_after, debt_after, mode, prices)
        if hf1 < 1.0 and hf1 < hf0:
            return 0.0
        self._release(acct, asset, tokens)
        usd = self.market.sell(asset, tokens, "disc", step=step)
        used = self._repay(acct, 0, min(usd, owed))
        self.wallets.credit(int(self.owner[acct]), 0, usd - used)
        return usd

    def lever_short(
        self,
        acct: int,
        asset: int,
        borrow_tokens: float,
        own_usd: float,
        prices: np.ndarray,
        step: int,
        genesis: bool = False,
    ) -> bool:
        """Post `own_usd` from the wallet, borrow `borrow_tokens` of the asset, sell them, post the USD. genesis: a
        position that exists before the run, sold at the fundamental without impact (`open_genesis` of one row)."""
        if genesis:
            return self._open_genesis_one(acct, asset, False, borrow_tokens, own_usd, prices)
        if not self._can_borrow(asset, borrow_tokens, own_usd):
            return False
        coll = self.collateral[acct].copy()
        coll[0] += own_usd + self.market.quote_sell(asset, borrow_tokens)
        debt = self.debt_tokens(acct)  # a new array
        debt[asset] += borrow_tokens
        if borrow_tokens > 0 and self._state_headroom(coll, debt, int(self.mode[acct]), prices) < 0:
            return False
        owner = int(self.owner[acct])
        if own_usd > 0:
            self.wallets.debit(owner, 0, own_usd)
            self.collateral[acct, 0] += own_usd
        if borrow_tokens > 0:
            self._borrow(acct, asset, borrow_tokens)
            self.collateral[acct, 0] += self.market.sell(asset, borrow_tokens, "disc", step=step)
        return True

    def delever_short(self, acct: int, asset: int, tokens: float, prices: np.ndarray, step: int) -> float:
        """Use USD collateral to buy back `tokens` of the borrowed asset and repay them. Returns USD spent."""
        tokens = min(tokens, self.owed_tokens(acct, asset))
        if tokens <= 0:
            return 0.0
        cost = self.market.quote_cost(asset, tokens)
        if not np.isfinite(cost) or cost > self.collateral[acct, 0]:
            return 0.0
        self._release(acct, 0, cost)
        self.market.buy_exact(asset, tokens, "disc", step=step)
        self._repay(acct, asset, tokens)
        return cost

    # --- staking collateral: a loop in one transaction (docs/model.md, 3.3 Staking collateral and looping) ---

    def lever_loop(
        self,
        acct: int,
        collateral_asset: int,
        debt_asset: int,
        borrow_tokens: float,
        own_usd: float,
        prices: np.ndarray,
        step: int,
        genesis: bool = False,
    ) -> bool:
        """Borrow `borrow_tokens` of `debt_asset`, sell them, add `own_usd` from the wallet, buy `collateral_asset`
        and post it: the closed form of the deposit-borrow-buy loop, done at once as a flash-loan loop does it.

        Reverts (returns False, nothing changed) if the end state would exceed the account's borrow power or the
        pool's cash. prices: oracle prices the protocol checks against. genesis: filled at the fundamentals.
        """
        if not self._can_borrow(debt_asset, borrow_tokens, own_usd):
            return False
        market = self.market
        usd = self._sell_quote(debt_asset, borrow_tokens, genesis) if borrow_tokens > 0 else 0.0
        if genesis:
            bought = market.genesis_quote(collateral_asset, usd + own_usd)
        else:
            bought = market.quote_buy(collateral_asset, usd + own_usd)
        coll = self.collateral[acct].copy()
        coll[collateral_asset] += bought
        debt = self.debt_tokens(acct)  # a new array
        debt[debt_asset] += borrow_tokens
        if borrow_tokens > 0 and self._state_headroom(coll, debt, int(self.mode[acct]), prices) < 0:
            return False
        if own_usd > 0:
            self.wallets.debit(int(self.owner[acct]), 0, own_usd)
        if borrow_tokens > 0:
            self._borrow(acct, debt_asset, borrow_tokens)
            usd = self._sell(debt_asset, borrow_tokens, genesis, step)
        if genesis:
            bought = market.genesis_trade(collateral_asset, usd + own_usd)
        else:
            bought = market.buy(collateral_asset, usd + own_usd, "disc", step=step)
        self.collateral[acct, collateral_asset] += bought
        return True

    def close_out(self, acct: int, prices: np.ndarray, step: int) -> None:
        """Unwind everything: sell collateral to repay debt, return the rest to the owner's wallet.

        Debt that cannot be repaid stays on the (then collateral-less) account and becomes bad debt.
        """
        owner = int(self.owner[acct])
        for asset in range(1, len(self.symbols)):  # buy back borrowed risky assets with USD collateral first
            owed = self.owed_tokens(acct, asset)
            if owed > 0:
                self.delever_short(acct, asset, owed, prices, step)
        for asset in range(1, len(self.symbols)):
            held = float(self.collateral[acct, asset])
            if held > 0:
                self._release(acct, asset, held)
                usd = self.market.sell(asset, held, "disc", step=step)
                self.collateral[acct, 0] += usd
        usd_coll = self._release(acct, 0, float(self.collateral[acct, 0]))
        used = self._repay(acct, 0, usd_coll)
        self.wallets.credit(owner, 0, usd_coll - used)
        for asset in range(1, len(self.symbols)):  # a short still owed: pay from the wallet if possible
            owed = self.owed_tokens(acct, asset)
            if owed > 0:
                cost = self.market.quote_cost(asset, owed)
                if np.isfinite(cost) and cost <= self.wallets.balance(owner, 0):
                    self.wallets.debit(owner, 0, cost)
                    self.market.buy_exact(asset, owed, "disc", step=step)
                    self._repay(acct, asset, owed)

    # --- liquidation ----------------------------------------------------------------------------------

    def plan_liquidation(self, acct: int, prices: np.ndarray) -> LiquidationPlan | None:
        """The largest debt and collateral assets, and the (repay, seize) a full close-factor liquidation gives at
        oracle `prices` (USD/token); None if the account is not liquidatable."""
        return self.liquidation_plans(np.array([acct], dtype=np.int64), prices).plan(0)

    def liquidation_plans(self, accounts: np.ndarray, prices: np.ndarray) -> LiquidationPlans:
        """`plan_liquidation` of each of `accounts` (ids) at oracle `prices` (USD/token), in one compiled pass; each
        plan's arithmetic is its own, so an account's plan is the same bit for bit whichever accounts are planned
        with it. An account whose health is not below 1 (NaN included) has none."""
        pool = self.pool
        accounts = np.asarray(accounts, dtype=np.int64)
        hf = self.accounts_health(accounts, prices)
        plans = liquidation_plans(
            self.collateral,
            self.scaled_debt,
            accounts,
            pool.borrow_index,
            prices,
            pool.collateral_enabled.astype(np.float64),
            pool.liquidation_bonus,
            hf,
            float(pool.close_factor_default),
            float(pool.close_factor_full_below),
        )
        return LiquidationPlans(*plans, hf_before=hf)

    def liquidate(self, acct: int, plan: LiquidationPlan, liquidator: int) -> None:
        """Execute a planned liquidation: the liquidator's wallet pays `plan.repay` and receives `plan.seize`."""
        debt_asset, coll_asset, repay, seize = plan.debt_asset, plan.collateral_asset, plan.repay, plan.seize
        if seize > self.collateral[acct, coll_asset] * (1 + 1e-12):
            raise InvariantError(
                f"account {acct}: seizing {seize} exceeds collateral {self.collateral[acct, coll_asset]}"
            )
        self.wallets.debit(liquidator, debt_asset, repay)
        used = self._repay(acct, debt_asset, repay)
        if used < repay:
            self.wallets.credit(liquidator, debt_asset, repay - used)
        seized = self._release(acct, coll_asset, seize)
        self.wallets.credit(liquidator, coll_asset, seized)

    def grab(self, acct: int, asset: int, debt_share: float, tokens: float | None = None) -> tuple[float, float]:
        """Take the account's `asset` collateral (all of it, or `tokens` of it: a Cat lump) and `debt_share` (in
        (0, 1]) of its USD debt off the account for a liquidation auction (Maker's `Vat.grab`): returns (tokens,
        scaled USD debt). The pool's borrows do not change: the debt is now the auction's, to be repaid from its
        proceeds or written off."""
        held = float(self.collateral[acct, asset])
        tokens = self._release(acct, asset, held if tokens is None else tokens)
        scaled = float(self.scaled_debt[acct, 0])
        if debt_share < 1.0:
            scaled *= debt_share
        self.scaled_debt[acct, 0] -= scaled
        return tokens, scaled

    def insolvent_accounts(self, prices: np.ndarray) -> np.ndarray:
        """Accounts with debt but collateral worth less than the pool's dust threshold (USD): bad debt."""
        n = self.n
        debt_prices = self.pool.borrow_index * prices
        return insolvent_rows(self.collateral[:n], self.scaled_debt[:n], prices, debt_prices, float(self.pool.dust_usd))
