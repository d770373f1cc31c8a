"""TraderBook: the traders' state that the model reads in vectorised passes, as arrays indexed by trader.

Each `LeveragedTrader` reads and writes its own row through properties; the model wakes traders (decision clocks,
risk alerts) and the recorder measures equity from the same arrays, so every piece of trader state has one owner.
A trader's index is also its wallet row (holder id).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from abm.agents.decisions import past_drawdown
from abm.config.schema import MARGIN_MODES, RISK_STYLES, STRATEGIES
from abm.lending.kernels import owner_equities, owner_minimum
from abm.lending.margin import MarginEngine
from abm.lending.wallets import Wallets
from abm.numerics import SEQUENTIAL_SUM_MAX, left_sum
from abm.perps import FIRST_ACCOUNT, PerpVenue

RISK_CODE = {name: i for i, name in enumerate(RISK_STYLES)}


class TraderBook:
    """Per-trader arrays. Categories are codes into the schema's name tuples (STRATEGIES, RISK_STYLES,
    MARGIN_MODES); amounts in USD; steps are model steps.

    strategy, risk, mode: category codes. direction: +1 long, -1 short. base_leverage: the strategy's reference
    leverage (exposure / equity). leverage_cap: the highest leverage the trader takes (pool LTVs, prudence, opening
    margin: `population.leverage_cap`). initial_equity: USD it starts (and re-enters) with. peak_equity: highest
    equity seen since it (re-)entered, for the stop-loss drawdown. out_until: step before which it stays out after a
    stop or a wipe-out (-1: not out). decision_interval: mean steps between its decisions; next_decision: the step
    at which its clock fires next. reaction_delay: steps between a risk alert and the trader acting on it.
    """

    def __init__(
        self,
        engine: MarginEngine,
        wallets: Wallets,
        strategy: np.ndarray,
        risk: np.ndarray,
        mode: np.ndarray,
        direction: np.ndarray,
        base_leverage: np.ndarray,
        leverage_cap: np.ndarray,
        initial_equity: np.ndarray,
        decision_interval: np.ndarray,
        next_decision: np.ndarray,
        reaction_delay: np.ndarray,
    ) -> None:
        self.engine = engine
        self.wallets = wallets
        self.perps: PerpVenue | None = None  # the perpetual venue, when the model runs one (its equity counts too)
        self.n = len(strategy)
        self.strategy = strategy
        self.risk = risk
        self.mode = mode
        self.direction = direction
        self.base_leverage = base_leverage
        self.leverage_cap = leverage_cap
        self.initial_equity = initial_equity
        self.peak_equity = initial_equity.copy()
        self.out_until = np.full(self.n, -1, dtype=np.int64)
        self.decision_interval = decision_interval
        self.next_decision = next_decision
        self.reaction_delay = reaction_delay
        # each owner's accounts (lending and perp), found by binary search instead of a scan of every account
        self._lending_index = OwnerIndex()
        self._perp_index = OwnerIndex()

    def strategy_name(self, i: int) -> str:
        return STRATEGIES[int(self.strategy[i])]

    def risk_name(self, i: int) -> str:
        return RISK_STYLES[int(self.risk[i])]

    def mode_name(self, i: int) -> str:
        return MARGIN_MODES[int(self.mode[i])]

    def has_risk(self, style: str) -> np.ndarray:
        """Which traders have risk style `style` (bool per trader)."""
        return self.risk == RISK_CODE[style]

    def equity(self, prices: np.ndarray, trader: int | None = None) -> np.ndarray:
        """Equity (USD at `prices`, USD/token): the collateral minus debt of the trader's accounts plus its wallet,
        plus, when the model runs a perpetual venue, the equity of its perp accounts at the venue's mark prices.

        Every trader's (an array), or one trader's (a 0-d array) when `trader` is given.
        """
        engine, wallets = self.engine, self.wallets
        owners = engine.owner[: engine.n]
        if trader is not None:
            lending = engine.account_equity(prices, self._lending_index.of(owners, trader))
            # np.sum's own order below SEQUENTIAL_SUM_MAX numbers, without its per-call cost (one trader, every decision)
            net = left_sum(lending.tolist()) if 0 < len(lending) < SEQUENTIAL_SUM_MAX else lending.sum()
            own = net + wallets.balances[trader] @ prices
            if self.perps is not None:
                venue = self.perps
                rows = FIRST_ACCOUNT + self._perp_index.of(venue.owner[FIRST_ACCOUNT : venue.n], trader)
                own = own + sum(venue.account_equity(int(r)) for r in rows)
            return own
        by_owner = engine.owner_equity(prices, self.n)
        if self.perps is not None:
            by_owner = by_owner + self._perp_equity()
        return by_owner + wallets.balances[: self.n] @ prices

    def _perp_equity(self) -> np.ndarray:
        """Each trader's equity (USD) in its perp accounts at the venue's mark prices."""
        venue = self.perps
        perp_owners = venue.owner[FIRST_ACCOUNT : venue.n]
        mine = perp_owners < self.n  # basis traders' accounts belong to holders after the traders
        return np.bincount(perp_owners[mine], weights=venue.equity()[mine], minlength=self.n)

    def wake_alerted(
        self, hf: np.ndarray, prices: np.ndarray, step: int, prudent_buffer: float, stop_loss_drawdown: float
    ) -> int:
        """The risk alerts, from each trader's worst health factor (its accounts' lowest: its lending accounts' in
        `hf`, per account, as the last health pass left them, its perp accounts' now) and its `equity` at `prices`:
        every peak equity rises to the equity; a prudent trader whose worst health is under `prudent_buffer`, or a
        stop-loss trader past its drawdown (`past_drawdown`, `stop_loss_drawdown` a fraction) from its peak, acts
        after its own reaction delay: its next decision moves forward to `step` + delay unless it comes sooner.
        One compiled pass over the accounts and the traders; returns how many were alerted."""
        engine, venue, n = self.engine, self.perps, self.n
        perp_worst = perp_equity = _NONE
        if venue is not None:
            if venue.n > FIRST_ACCOUNT:  # perp traders' health: equity over maintenance margin
                perp_worst = owner_minimum(venue.health(), venue.owner[FIRST_ACCOUNT : venue.n], n)
            perp_equity = self._perp_equity()
        accounts = engine.n
        return _risk_alerts(
            hf,
            engine.owner[:accounts],
            perp_worst,
            # each owner's lending equity as `MarginEngine.owner_equity` works it out, in the same pass
            engine.collateral[:accounts],
            engine.scaled_debt[:accounts],
            prices,
            engine.pool.borrow_index * prices,
            perp_equity,
            self.wallets.balances[:n] @ prices,
            self.risk,
            RISK_CODE["prudent"],
            RISK_CODE["stop_loss"],
            float(prudent_buffer),
            float(stop_loss_drawdown),
            self.peak_equity,
            self.next_decision,
            self.reaction_delay,
            int(step),
        )

    def clocks_due(self, step: int, rng: np.random.Generator) -> np.ndarray:
        """Traders whose decision clock fires at `step` (ids, ascending); each such clock is drawn again,
        exponentially."""
        rows = (self.next_decision <= step).nonzero()[0]
        # `rng.exponential(intervals)` without its per-call argument handling (several times the cost of the few
        # draws): numpy draws each as the interval times a standard exponential, in order (a test checks)
        self.next_decision[rows] = step + rng.standard_exponential(len(rows)) * self.decision_interval.take(rows)
        return rows


class OwnerIndex:
    """The accounts of one owner, ascending (`np.flatnonzero(owners == owner)`), by a binary search in the
    accounts sorted by owner, rebuilt when accounts were opened (accounts are only ever added, and an account's
    owner never changes)."""

    def __init__(self) -> None:
        self._n = -1
        self._order = np.empty(0, dtype=np.int64)
        # where each owner's run starts in the sorted accounts (owner o: _starts[o] to _starts[o + 1]), a plain
        # list: one lookup per decision instead of two binary searches
        self._starts: list[int] = [0]

    def of(self, owners: np.ndarray, owner: int) -> np.ndarray:
        """Ids (positions in `owners`, ascending) of the accounts of `owner`."""
        if len(owners) != self._n:
            self._order = np.argsort(owners, kind="stable")  # stable: ascending ids within each owner
            ordered = owners[self._order]
            top = int(ordered[-1]) + 1 if len(ordered) else 0
            self._starts = ordered.searchsorted(np.arange(top + 1), "left").tolist()
            self._n = len(owners)
        if not 0 <= owner < len(self._starts) - 1:
            return self._order[:0]
        return self._order[self._starts[owner] : self._starts[owner + 1]]


_past_drawdown = njit(inline="always")(past_drawdown)
_NONE = np.empty(0)  # no perp venue: nothing to add


@njit(cache=True, nogil=True)
def _risk_alerts(
    hf: np.ndarray,
    owners: np.ndarray,
    perp_worst: np.ndarray,
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    prices: np.ndarray,
    debt_prices: np.ndarray,
    perp_equity: np.ndarray,
    wallet_equity: np.ndarray,
    risk: np.ndarray,
    prudent: int,
    stop_loss: int,
    prudent_buffer: float,
    stop_loss_drawdown: float,
    peak_equity: np.ndarray,
    next_decision: np.ndarray,
    reaction_delay: np.ndarray,
    step: int,
) -> int:
    """`TraderBook.wake_alerted`: each trader's worst health, the lowest `hf` of its accounts (`owners`: each
    account's) and, with a perp venue, its perp accounts' lowest `perp_worst` (np.minimum's NaN rule); its equity,
    (its lending equity, `owner_equities` of the accounts' `collateral` and `scaled_debt` at `prices` and
    `debt_prices`, + `perp_equity`, with a perp venue) + `wallet_equity`, as `equity` adds them; then
    `_wake_alerted`. Without a perp venue `perp_worst` and `perp_equity` are empty."""
    n = len(wallet_equity)
    worst = owner_minimum(hf, owners, n)
    lending_equity = owner_equities(owners, collateral, scaled_debt, prices, debt_prices, n)
    equity = np.empty(n)
    for i in range(n):
        if len(perp_worst) and (perp_worst[i] < worst[i] or perp_worst[i] != perp_worst[i]):
            worst[i] = perp_worst[i]
        e = lending_equity[i]
        if len(perp_equity):
            e = e + perp_equity[i]
        equity[i] = e + wallet_equity[i]
    return _wake_alerted(
        worst,
        equity,
        risk,
        prudent,
        stop_loss,
        prudent_buffer,
        stop_loss_drawdown,
        peak_equity,
        next_decision,
        reaction_delay,
        step,
    )


@njit(cache=True, nogil=True)
def _wake_alerted(
    worst_hf: np.ndarray,
    equity: np.ndarray,
    risk: np.ndarray,
    prudent: int,
    stop_loss: int,
    prudent_buffer: float,
    stop_loss_drawdown: float,
    peak_equity: np.ndarray,
    next_decision: np.ndarray,
    reaction_delay: np.ndarray,
    step: int,
) -> int:
    """`TraderBook.wake_alerted` (risk: style codes; the last three arrays updated in place). np.maximum's and
    np.minimum's NaN rules: a NaN equity becomes the peak, a NaN next decision stays."""
    alerted = 0
    for i in range(len(equity)):
        e = equity[i]
        if e > peak_equity[i] or e != e:
            peak_equity[i] = e
        style = risk[i]
        if (style == prudent and worst_hf[i] < prudent_buffer) or (
            style == stop_loss and _past_drawdown(e, peak_equity[i], stop_loss_drawdown)
        ):
            alerted += 1
            wake = step + reaction_delay[i]
            if wake < next_decision[i] or wake != wake:
                next_decision[i] = wake
    return alerted
