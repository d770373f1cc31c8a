"""The perpetual-futures venue: linear (USD-margined) perpetuals on every risky asset, each traded against its own
finite-depth book, with funding, tiered margin and a liquidation waterfall (docs/perps.md).

Positions are rows of struct-of-arrays state, one column per asset (the numéraire's column 0 stays empty so columns
match the model's per-asset arrays): `size` (tokens, + long / - short), `entry` (average entry price, USD/token),
`margin` (isolated margin, USD), `cash` (USD: the cross collateral, or an isolated account's free balance).
Row 0 is the book, the outside world's side of every book trade; row 1 the backstop liquidity vault; accounts start
at row 2. Every fill moves a quantity between two rows at one price, so sizes sum to zero per asset (open interest
long == short) and realised plus unrealised PnL sum to zero over all rows: the book's row is the explicit
counterparty that makes the venue's ledger close.

The book is a second `Market` (the spot impact models, reused): its "fundamental" is the spot index, so its price is
index x exp(m), m the perp trades' transient impact, relaxing toward the index as basis arbitrage does. Its
`world_net` holds the book's perp position (tokens) and the USD notional it received, which `check_ledger` matches
against row 0.
"""

from __future__ import annotations

import difflib
import math
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from abm.config.loader import format_validation_error
from abm.config.schema import ModelConfig, PerpConfig
from abm.errors import ConfigError, InvariantError
from abm.market.impact import Market
from abm.perps.waterfall import AdlEvent, Fill, LiquidationEvent, adl_allocation, largest_quantity
from abm.protocol import (
    SECONDS_PER_YEAR,
    adl_rank,
    funding_rate,
    premium_index,
    tier_cumulative_amounts,
    tiered_margin,
)

BOOK = 0  # row of the book: the outside world's market makers, counterparty of every book trade
VAULT = 1  # row of the backstop liquidity vault
FIRST_ACCOUNT = 2  # accounts opened by owners start here
PERP_MODES = ("cross", "isolated")
CROSS, ISOLATED = 0, 1
LEDGER_RTOL = 1e-9  # float residue allowed in the ledger identities, relative to the venue's gross scale (USD)


def perp_config(data: Mapping[str, Any] | None = None) -> PerpConfig:
    """A validated `PerpConfig` from a dict; a bad value is a one-line `ConfigError` naming the field (as
    `perps.<field>`), the value and the rule."""
    try:
        return PerpConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err["type"] == "extra_forbidden":
            name = ".".join(str(p) for p in err["loc"])
            close = difflib.get_close_matches(name, list(PerpConfig.model_fields), n=1, cutoff=0.6)
            hint = f" (did you mean 'perps.{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown parameter 'perps.{name}'{hint}") from None
        line = format_validation_error(exc)
        raise ConfigError(f"perps.{line}" if err["loc"] else f"perps: {line}") from None


class PerpVenue:
    """Perpetual-futures accounts, books, funding and liquidations. Prices are USD/token, sizes tokens, money USD;
    `t` is the model step. Arrays are indexed by row (book, vault, then accounts) and asset (numéraire at 0)."""

    def __init__(self, config: ModelConfig, perps: PerpConfig, index_prices: np.ndarray, capacity: int = 64) -> None:
        self.config = perps
        self.symbols = config.symbols
        self.step_seconds = config.market.step_seconds
        self.n_assets = len(self.symbols)
        index = self._checked_prices(index_prices)
        # the perp books reuse the spot impact models; their depth (perps.depth_scale) and its thinning with their
        # own volatility (perps.depth_vol_elasticity, perps.min_depth_fraction) are the venue's settings
        market = config.market.model_copy(
            update={
                "depth_scale": config.market.depth_scale * perps.depth_scale,
                "depth_vol_elasticity": perps.depth_vol_elasticity,
                "min_depth_fraction": perps.min_depth_fraction,
            }
        )
        self.book = Market(config.model_copy(update={"market": market}), np.log(index))
        self.index = index
        cap = max(capacity, FIRST_ACCOUNT + 1)
        self.n = FIRST_ACCOUNT
        self.size = np.zeros((cap, self.n_assets))
        self.entry = np.zeros((cap, self.n_assets))
        self.margin = np.zeros((cap, self.n_assets))
        self.cash = np.zeros(cap)
        self.mode = np.zeros(cap, dtype=np.int64)
        self.owner = np.full(cap, -1, dtype=np.int64)
        # cumulative flows per row (USD), for the ledger: deposits less withdrawals, realised PnL, funding received,
        # fees paid, margin forfeited to the insurance fund, and losses beyond bankruptcy paid for the row
        self.net_deposits = np.zeros(cap)
        self.realised = np.zeros(cap)
        self.funding = np.zeros(cap)
        self.fees = np.zeros(cap)
        self.forfeited = np.zeros(cap)
        self.subsidy = np.zeros(cap)
        self.cash[VAULT] = perps.vault_capital_usd
        self.vault_start = perps.vault_capital_usd
        self.insurance_fund = perps.insurance_fund_usd
        self.insurance_start = perps.insurance_fund_usd
        self.fee_revenue = 0.0
        self.bad_debt = 0.0
        # largest long open interest seen per asset (tokens): the scale of the float residue that the sizes' sum
        # accumulates, which does not shrink when positions close
        self.peak_open_interest = np.zeros(self.n_assets)
        # margin tiers, with Binance's maintenance amounts so the requirement is continuous in notional
        self.floors = np.array([t.notional_floor_usd for t in perps.tiers])
        self.imr = np.array([t.initial_margin_rate for t in perps.tiers])
        self.mmr = np.array([t.maintenance_margin_rate for t in perps.tiers])
        self.im_cum = tier_cumulative_amounts(self.floors, self.imr)
        self.mm_cum = tier_cumulative_amounts(self.floors, self.mmr)
        # funding: premium samples of the running period, the last rate paid, the moving basis of the median mark
        self.interval = int(perps.funding_interval_steps)
        self.premium_sum = np.zeros(self.n_assets)
        self.samples = 0
        self.premium = np.zeros(self.n_assets)
        self.last_funding_rate = np.zeros(self.n_assets)
        self.basis_ema = np.zeros(self.n_assets)
        self.basis_alpha = 2.0 / (perps.mark_basis_steps + 1.0)
        self.liquidations: list[LiquidationEvent] = []
        self.adl_events: list[AdlEvent] = []
        self.history: list[dict[str, float]] = []
        self._next_event = 0
        self._event_allocator: Callable[[], int] | None = None  # the model's shared event ids (`use_event_ids`)
        # called as on_liquidation(event_id, account, asset, t) for each position about to be liquidated, before
        # any of its account's closes (the attribution reads the position as it was when found unhealthy)
        self.on_liquidation: Callable[[int, int, int, int], None] | None = None
        self._liquidating = -1  # the row in the waterfall: its isolated margin stays until the waterfall settles
        # the margin passes, for attributing lost health (docs/model.md, section 4): the step each position (row,
        # asset) was last found healthy, and the log mark, book and index prices each pass read
        self.step_now = 0  # the step last begun (new accounts start healthy at it)
        self.last_healthy_step = np.zeros((cap, self.n_assets), dtype=np.int64)
        # the pass that first saw each position as its owner last set it (trades between passes; the waterfall's
        # closes and ADL happen inside a pass and are not the owner's choice), and the sizes the last pass left
        self.position_step = np.zeros((cap, self.n_assets), dtype=np.int64)
        self.pass_size = np.zeros((cap, self.n_assets))
        self.pass_steps: list[int] = [0]
        self.pass_log_prices: list[np.ndarray] = [np.log(np.stack([index, index, index]))]

    def _checked_prices(self, prices: np.ndarray) -> np.ndarray:
        p = np.asarray(prices, dtype=float)
        if p.shape != (self.n_assets,) or not np.all(np.isfinite(p)) or np.any(p[1:] <= 0):
            raise ValueError(f"index prices must be {self.n_assets} finite prices > 0, numéraire first (got {p!r})")
        out = p.copy()
        out[0] = 1.0
        return out

    # --- accounts ---------------------------------------------------------------------------------------------

    def open_account(self, owner: int, margin_usd: float = 0.0, mode: str = "cross") -> int:
        """A new account of `owner` with `margin_usd` USD deposited; mode 'cross' (the deposit backs every
        position) or 'isolated' (each position has its own margin, taken from the free balance). Returns its id."""
        if mode not in PERP_MODES:
            raise ValueError(f"mode = {mode!r}: perpetual accounts are {' or '.join(PERP_MODES)}")
        if self.n == len(self.cash):  # amortised doubling keeps opening O(1)
            grow = len(self.cash)
            for name in ("size", "entry", "margin", "last_healthy_step", "position_step", "pass_size"):
                arr = getattr(self, name)
                setattr(self, name, np.vstack([arr, np.zeros_like(arr)]))
            for name in ("cash", "net_deposits", "realised", "funding", "fees", "forfeited", "subsidy"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(grow)]))
            self.mode = np.concatenate([self.mode, np.zeros(grow, dtype=np.int64)])
            self.owner = np.concatenate([self.owner, np.full(grow, -1, dtype=np.int64)])
        acct = self.n
        self.n += 1
        self.owner[acct] = owner
        self.last_healthy_step[acct] = self.step_now
        self.position_step[acct] = self.step_now
        self.mode[acct] = PERP_MODES.index(mode)
        self.deposit(acct, margin_usd)
        return acct

    def _check_account(self, acct: int) -> None:
        if not FIRST_ACCOUNT <= acct < self.n:
            raise ValueError(f"account {acct} is not an open perp account")

    def deposit(self, acct: int, usd: float) -> None:
        """Add `usd` (>= 0) to the account's free balance."""
        self._check_account(acct)
        if not (usd >= 0 and math.isfinite(usd)):
            raise ValueError(f"deposit must be a finite amount >= 0 USD (got {usd!r})")
        self.cash[acct] += usd
        self.net_deposits[acct] += usd

    def withdrawable(self, acct: int) -> float:
        """USD the account may withdraw now: an isolated account's free balance; a cross account's equity above the
        initial margin its positions need, at most its cash."""
        self._check_account(acct)
        if self.mode[acct] == ISOLATED:
            return max(float(self.cash[acct]), 0.0)
        mark = self.mark_prices()
        equity = self.cash[acct] + float(self.size[acct] @ (mark - self.entry[acct]))
        need = float(self._initial_margin(np.abs(self.size[acct]) * mark).sum())
        return max(min(equity - need, float(self.cash[acct])), 0.0)

    def withdraw(self, acct: int, usd: float) -> float:
        """Take up to `usd` USD out (capped by `withdrawable`); returns the amount withdrawn."""
        if not (usd >= 0 and math.isfinite(usd)):
            raise ValueError(f"withdrawal must be a finite amount >= 0 USD (got {usd!r})")
        amount = min(usd, self.withdrawable(acct))
        self.cash[acct] -= amount
        self.net_deposits[acct] -= amount
        return amount

    def add_margin(self, acct: int, asset: int, usd: float) -> None:
        """Move `usd` from an isolated account's free balance into one position's margin."""
        self._check_account(acct)
        if self.mode[acct] != ISOLATED:
            raise ValueError(f"account {acct} is cross-margined: its whole balance already backs its positions")
        if not (0 <= usd <= self.cash[acct]):
            raise ValueError(f"add_margin: {usd!r} USD is not in [0, free balance {self.cash[acct]!r}]")
        self.cash[acct] -= usd
        self.margin[acct, asset] += usd

    # --- prices -----------------------------------------------------------------------------------------------

    def book_prices(self) -> np.ndarray:
        """Each perp book's price now (USD/token): the index times exp of the book's transient impact."""
        return self.book.prices

    def mark_prices(self) -> np.ndarray:
        """Mark prices (USD/token), numéraire first. 'book': the book price. 'median' (Binance, "Mark Price"): the
        median of index x (1 + last funding rate x share of the period left), index + a moving average of the
        book's basis, and the book price, so one thin-book print cannot trigger liquidations alone."""
        book = self.book_prices()
        if self.config.mark_price == "book":
            return book
        left = (self.interval - self.samples) / self.interval
        funding_basis = self.index * (1.0 + self.last_funding_rate * left)
        moving_basis = self.index + self.basis_ema
        # the median of three, elementwise (the middle value exactly, as np.median, without its overhead)
        mark = np.maximum(
            np.minimum(funding_basis, moving_basis), np.minimum(np.maximum(funding_basis, moving_basis), book)
        )
        mark[0] = 1.0
        return mark

    # --- margin -----------------------------------------------------------------------------------------------

    def _initial_margin(self, notional: np.ndarray) -> np.ndarray:
        return tiered_margin(notional, self.floors, self.imr, self.im_cum)

    def _maintenance_margin(self, notional: np.ndarray) -> np.ndarray:
        return tiered_margin(notional, self.floors, self.mmr, self.mm_cum)

    def equity(self, mark: np.ndarray | None = None) -> np.ndarray:
        """Equity (USD) of every account at mark: cash + isolated margins + unrealised PnL (rows from
        FIRST_ACCOUNT)."""
        mark = self.mark_prices() if mark is None else mark
        rows = slice(FIRST_ACCOUNT, self.n)
        unreal = (self.size[rows] * (mark - self.entry[rows])).sum(axis=1)
        return self.cash[rows] + self.margin[rows].sum(axis=1) + unreal

    def account_equity(self, acct: int, mark: np.ndarray | None = None) -> float:
        """Equity (USD) of one account at mark: cash + isolated margins + unrealised PnL."""
        mark = self.mark_prices() if mark is None else mark
        return float(self.cash[acct] + self.margin[acct].sum() + self.size[acct] @ (mark - self.entry[acct]))

    def account_health(self, acct: int, mark: np.ndarray | None = None) -> float:
        """`health` of one account (inf without positions)."""
        mark = self.mark_prices() if mark is None else mark
        size = self.size[acct]
        unreal = size * (mark - self.entry[acct])
        mm = self._maintenance_margin(np.abs(size) * mark)
        if self.mode[acct] == ISOLATED:
            held = mm > 0
            return float(((self.margin[acct] + unreal)[held] / mm[held]).min()) if held.any() else math.inf
        total = float(mm.sum())
        return float((self.cash[acct] + unreal.sum()) / total) if total > 0 else math.inf

    def health(self, mark: np.ndarray | None = None) -> np.ndarray:
        """One vectorised pass over all accounts: margin equity over maintenance margin (inf without positions); an
        account (cross) or any of its positions (isolated, the worst one counts) is liquidated below 1."""
        mark = self.mark_prices() if mark is None else mark
        rows = slice(FIRST_ACCOUNT, self.n)
        size = self.size[rows]
        unreal = size * (mark - self.entry[rows])
        mm = self._maintenance_margin(np.abs(size) * mark)
        isolated = self.mode[rows] == ISOLATED
        with np.errstate(divide="ignore", invalid="ignore"):
            per_position = np.where(mm > 0, (self.margin[rows] + unreal) / np.where(mm > 0, mm, 1.0), np.inf)
            total_mm = mm.sum(axis=1)
            cross = np.where(
                total_mm > 0, (self.cash[rows] + unreal.sum(axis=1)) / np.where(total_mm > 0, total_mm, 1.0), np.inf
            )
        return np.where(isolated, per_position.min(axis=1), cross)

    def margin_ratio(self, acct: int, k: int, mark: np.ndarray | None = None) -> float:
        """The ratio the liquidation trigger compares with 1 for position (acct, k): equity over maintenance margin
        at mark of the position (isolated) or of the whole account (cross); inf without a position."""
        mark = self.mark_prices() if mark is None else mark
        if self.mode[acct] != ISOLATED:
            return self.account_health(acct, mark)
        size = float(self.size[acct, k])
        mm = float(self._maintenance_margin(np.array(abs(size) * mark[k])))
        return (float(self.margin[acct, k]) + size * float(mark[k] - self.entry[acct, k])) / mm if mm > 0 else math.inf

    def lending_equivalent(
        self, acct: int, k: int, mark: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the venue margins for position (acct, k) (the position, isolated; every position of the account,
        cross) written as a lending account: (collateral USD, debt USD, liquidation threshold) per asset, numéraire
        first, so that its health factor sum(c LT) / sum(d) is below 1 exactly when equity at mark is below the
        maintenance margin, and `abm.recording.attribution.health_sensitivity` gives d log HF / d log mark.

        With B the backing (isolated margin, or the cross account's cash), r_j and cum_j the maintenance rate and
        amount of position j's tier: equity >= maintenance <=> U + sum_long N_j (1 - r_j) >= sum_short N_j (1 + r_j),
        U = B - sum_j size_j entry_j + sum_j cum_j (USD, no price in it). So a long of notional N is collateral N
        with threshold 1 - r, a short is debt N (1 + r), and U is USD collateral (U > 0) or USD debt (U < 0)."""
        mark = self.mark_prices() if mark is None else mark
        if self.mode[acct] == ISOLATED:
            size = np.zeros(self.n_assets)
            size[k] = self.size[acct, k]
            backing = float(self.margin[acct, k])
        else:
            size = self.size[acct].copy()
            backing = float(self.cash[acct])
        notional = np.abs(size) * mark
        tier = np.clip(np.searchsorted(self.floors, notional, side="right") - 1, 0, len(self.floors) - 1)
        rate = np.where(size != 0, self.mmr[tier], 0.0)
        cum = np.where(size != 0, self.mm_cum[tier], 0.0)
        usd = backing - float(size @ self.entry[acct]) + float(cum.sum())
        coll = np.where(size > 0, notional, 0.0)
        debt = np.where(size < 0, notional * (1.0 + rate), 0.0)
        threshold = np.where(size > 0, 1.0 - rate, 1.0)
        coll[0], debt[0], threshold[0] = max(usd, 0.0), max(-usd, 0.0), 1.0
        return coll, debt, threshold

    # --- event ids and the margin passes' prices --------------------------------------------------------------

    def use_event_ids(self, allocator: Callable[[], int]) -> None:
        """Take liquidation event ids from `allocator` (the model's, shared with the lending pool's liquidations, so
        one id names one event in every table) instead of the venue's own count from 0."""
        self._event_allocator = allocator

    def new_event_id(self) -> int:
        """A fresh liquidation event id."""
        if self._event_allocator is not None:
            return self._event_allocator()
        self._next_event += 1
        return self._next_event - 1

    def _record_pass(self, t: int, mark: np.ndarray) -> None:
        """Keep the log mark, book and index prices a margin pass at step t reads."""
        prices = np.log(np.stack([mark, self.book_prices(), self.index]))
        if self.pass_steps[-1] == t:
            self.pass_log_prices[-1] = prices
        else:
            self.pass_steps.append(t)
            self.pass_log_prices.append(prices)

    def pass_prices(self, step: int) -> np.ndarray:
        """Log prices (3, assets): mark, book and index, as the last margin pass at or before `step` read them (the
        venue's opening prices before the first pass)."""
        return self.pass_log_prices[max(bisect_right(self.pass_steps, step) - 1, 0)]

    # --- the step ---------------------------------------------------------------------------------------------

    def begin_step(self, index_prices: np.ndarray, t: int) -> None:
        """Take this step's spot index (USD/token per asset, numéraire first; the model's oracle prices) and let
        the books' transient impact relax toward it."""
        self.index = self._checked_prices(index_prices)
        self.book.begin_step(np.log(self.index))
        self.step_now = t

    def end_step(self, t: int) -> dict[str, float]:
        """Close the step: move the mark's moving basis, update the books' realised volatility, and record the
        venue's state (one row of `history`, returned for the recorder)."""
        book = self.book_prices()
        self.basis_ema += self.basis_alpha * ((book - self.index) - self.basis_ema)
        self.basis_ema[0] = 0.0
        self.book.end_step()
        mark = self.mark_prices()
        long_oi = np.clip(self.size[: self.n], 0.0, None).sum(axis=0)
        np.maximum(self.peak_open_interest, long_oi, out=self.peak_open_interest)
        row: dict[str, float] = {"step": float(t)}
        for k in range(1, self.n_assets):
            sym = self.symbols[k]
            row[f"perp_mark_{sym}"] = float(mark[k])
            row[f"perp_index_{sym}"] = float(self.index[k])
            row[f"perp_book_{sym}"] = float(book[k])
            row[f"perp_basis_{sym}"] = float(mark[k] / self.index[k] - 1.0)
            row[f"perp_premium_{sym}"] = float(self.premium[k])
            row[f"perp_funding_rate_{sym}"] = float(self.last_funding_rate[k])
            row[f"perp_open_interest_{sym}"] = float(long_oi[k])
        vault_equity = self.cash[VAULT] + float(self.size[VAULT] @ (mark - self.entry[VAULT]))
        row.update(
            perp_insurance_fund_usd=self.insurance_fund,
            perp_vault_equity_usd=float(vault_equity),
            perp_bad_debt_usd=self.bad_debt,
            perp_fee_revenue_usd=self.fee_revenue,
        )
        self.history.append(row)
        return row

    # --- fills ------------------------------------------------------------------------------------------------

    def _apply(self, row: int, k: int, dq: float, price: float) -> float:
        """Move row's position in asset k by `dq` tokens at `price`; realised PnL goes to the isolated margin or to
        cash. On a reduction an isolated row gets back the closed share of its margin (all of it when closed; none
        on a flip, where the margin goes on backing the reversed position), except the row being liquidated, whose
        margin its waterfall settles. Returns the realised PnL (USD)."""
        s0, e0 = self.size[row, k], self.entry[row, k]
        s1 = s0 + dq
        realised = 0.0
        if s0 == 0.0 or s0 * dq > 0:  # open or add: the entry is the size-weighted average
            self.entry[row, k] = (abs(s0) * e0 + abs(dq) * price) / abs(s1)
        else:
            closed = min(abs(dq), abs(s0))
            realised = closed * (price - e0) * np.sign(s0)
            self.entry[row, k] = e0 if abs(s1) > 0 and s1 * s0 > 0 else (price if s1 != 0.0 else 0.0)
            if self.mode[row] == ISOLATED:
                self.margin[row, k] += realised
                if row != self._liquidating and s1 * s0 >= 0:
                    share = 1.0 if abs(s1) <= 1e-12 * abs(s0) else closed / abs(s0)
                    freed = self.margin[row, k] if share == 1.0 else max(self.margin[row, k], 0.0) * share
                    self.margin[row, k] -= freed
                    self.cash[row] += freed
            else:
                self.cash[row] += realised
        self.size[row, k] = s1 if abs(s1) > 1e-12 * max(abs(s0), abs(dq)) else 0.0
        if self.size[row, k] == 0.0:
            self.entry[row, k] = 0.0
        self.realised[row] += realised
        return realised

    def _exchange(self, buyer: int, seller: int, k: int, qty: float, price: float) -> None:
        """`buyer` buys `qty` (> 0) tokens of asset k's perp from `seller` at `price` (USD/token)."""
        self._apply(buyer, k, qty, price)
        self._apply(seller, k, -qty, price)

    def quote(self, asset: int, size_delta: float) -> float:
        """Average fill price (USD/token) of a trade of `size_delta` tokens (+ buy) against the book now, without
        trading; inf if the book cannot supply a buy."""
        q = abs(size_delta)
        if q == 0:
            return float(self.book_prices()[asset])
        usd = self.book.quote_cost(asset, q) if size_delta > 0 else self.book.quote_sell(asset, q)
        return usd / q if math.isfinite(usd) else math.inf

    def trade(self, account: int, asset: int, size_delta: float, t: int, margin_usd: float | None = None) -> Fill:
        """Buy (`size_delta` > 0) or sell perp contracts (tokens) of `asset` against its book, paying the taker
        fee. A trade that adds exposure must leave the account (cross) or position (isolated) with equity at mark of
        at least the initial margin of its new notional, else it is refused (size 0); reductions are always
        allowed. Isolated accounts move `margin_usd` (default: what the initial margin needs) from their free
        balance into the position."""
        self._check_account(account)
        if not 1 <= asset < self.n_assets:
            raise ValueError(f"asset {asset} is not a risky asset (1..{self.n_assets - 1})")
        if not math.isfinite(size_delta):
            raise ValueError(f"size_delta must be finite (got {size_delta!r})")
        if size_delta == 0:
            return Fill(account, asset, 0.0, 0.0, 0.0, "empty order")
        q = abs(size_delta)
        usd = self.book.quote_cost(asset, q) if size_delta > 0 else self.book.quote_sell(asset, q)
        if not math.isfinite(usd) or usd <= 0:
            return Fill(account, asset, 0.0, 0.0, 0.0, "the book cannot fill this size")
        price = usd / q
        fee = self.config.taker_fee * usd
        s0 = self.size[account, asset]
        s1 = s0 + size_delta
        adds_exposure = abs(s1) > abs(s0) or s1 * s0 < 0
        add = 0.0
        if adds_exposure:
            ok, add = self._margin_after(account, asset, size_delta, price, fee, margin_usd)
            if not ok:
                return Fill(account, asset, 0.0, 0.0, 0.0, "initial margin not met")
        if size_delta > 0:
            self.book.buy_exact(asset, q, step=t)
            self._exchange(account, BOOK, asset, q, price)
        else:
            self.book.sell(asset, q, step=t)
            self._exchange(BOOK, account, asset, q, price)
        if self.mode[account] == ISOLATED:
            self.cash[account] -= add
            self.margin[account, asset] += add
            if self.size[account, asset] != 0.0:
                self.margin[account, asset] -= fee
            else:
                self.cash[account] -= fee
        else:
            self.cash[account] -= fee
        self.fees[account] += fee
        self.fee_revenue += fee
        return Fill(account, asset, size_delta, price, fee)

    def genesis_trade(self, account: int, asset: int, size_delta: float) -> Fill:
        """A position that exists before the run: `size_delta` tokens (+ long) filled against the book at the index
        price, with no impact and no fee (as the spot market fills genesis positions at the fundamental). The
        initial margin is checked as in `trade`; the book's `Market` ledger takes the other side."""
        self._check_account(account)
        if size_delta == 0 or not math.isfinite(size_delta):
            return Fill(account, asset, 0.0, 0.0, 0.0, "empty order")
        price = float(self.index[asset])
        ok, add = self._margin_after(account, asset, size_delta, price, 0.0, None)
        if not ok:
            return Fill(account, asset, 0.0, 0.0, 0.0, "initial margin not met")
        q = abs(size_delta)
        if size_delta > 0:
            self.book.genesis_trade(asset, q * price)  # the world's market makers sell q contracts
            self._exchange(account, BOOK, asset, q, price)
        else:
            self.book.genesis_trade(asset, -q)
            self._exchange(BOOK, account, asset, q, price)
        if self.mode[account] == ISOLATED:
            self.cash[account] -= add
            self.margin[account, asset] += add
        return Fill(account, asset, size_delta, price, 0.0)

    def funding_periods_per_year(self) -> float:
        """Funding periods in a year (1 / year): the annualising factor of a per-period funding rate."""
        return SECONDS_PER_YEAR / (self.interval * self.step_seconds)

    def implied_funding_apr(self) -> np.ndarray:
        """Per asset (numéraire 0), the funding rate this step's premium implies, annualised (per year): the rate
        `accrue_funding` would pay if the premium stayed where it is for a whole period, times the periods in a
        year. What a cash-and-carry trader compares with its thresholds."""
        cfg = self.config
        d = cfg.funding_divisor
        rate = np.asarray(
            funding_rate(self.premium / d, cfg.interest_rate / d, cfg.premium_clamp / d, cfg.funding_cap, check=False)
        )
        out = rate * self.funding_periods_per_year()
        out[0] = 0.0
        return out

    def premium_for_funding_apr(self, apr: float) -> float:
        """The lowest premium (dimensionless) at which the funding rate, annualised, is at least `apr` (per year):
        the inverse of `implied_funding_apr` (cap ignored). F = P + clamp(I - P, -c, c) is non-decreasing in P:
        F = P - c above I + c, F = I inside [I - c, I + c], F = P + c below I - c (rates before the divisor)."""
        cfg = self.config
        target = apr / self.funding_periods_per_year() * cfg.funding_divisor  # per period, before the divisor
        i, c = cfg.interest_rate, cfg.premium_clamp
        if target > i:
            return target + c
        if target < i:
            return target - c
        return i - c

    def _margin_after(
        self, acct: int, k: int, dq: float, price: float, fee: float, margin_usd: float | None
    ) -> tuple[bool, float]:
        """Whether a trade adding exposure keeps the initial margin, and the USD an isolated position takes from
        the free balance (valued at the current mark; the fill's slippage counts against the trader)."""
        mark = self.mark_prices()
        s0, e0 = self.size[acct, k], self.entry[acct, k]
        s1 = s0 + dq
        # value after = value before + dq * (mark - price): the fill's slippage against mark is an immediate loss
        pnl_change = dq * (mark[k] - price) - fee
        if self.mode[acct] == ISOLATED:
            need = float(self._initial_margin(np.array(abs(s1) * mark[k])))
            have = self.margin[acct, k] + s0 * (mark[k] - e0) + pnl_change
            add = max(need - have, 0.0) if margin_usd is None else float(margin_usd)
            if not (0.0 <= add <= self.cash[acct]):
                return False, 0.0
            return have + add >= need * (1 - 1e-12), add
        sizes = self.size[acct].copy()
        sizes[k] = s1
        need = float(self._initial_margin(np.abs(sizes) * mark).sum())
        have = self.cash[acct] + float(self.size[acct] @ (mark - self.entry[acct])) + pnl_change
        return have >= need * (1 - 1e-12), 0.0

    # --- funding ----------------------------------------------------------------------------------------------

    def sample_premium(self) -> np.ndarray:
        """The premium index of every book now (dimensionless): impact bid / ask are the average fills of selling /
        buying `impact_notional_usd` worth of contracts (at the book price) into it, against the index."""
        prem = np.zeros(self.n_assets)
        book = self.book_prices()
        for k in range(1, self.n_assets):
            tokens = self.config.impact_notional_usd / book[k]
            bid = self.book.quote_sell(k, tokens) / tokens
            ask = self.book.quote_cost(k, tokens) / tokens
            prem[k] = float(premium_index(bid, ask, self.index[k], check=False))
        return prem

    def accrue_funding(self, t: int) -> np.ndarray | None:
        """Sample this step's premium; when the period's `funding_interval_steps` samples are in, pay funding on
        every position (book and vault included) and return the rates paid per asset (None otherwise).

        Rate (per period): F = funding_rate(P / d, I / d, c / d, cap), P the period's equal-weight average premium
        (Binance and Hyperliquid average evenly), d = `funding_divisor`. Payment = size x mark x F, longs pay when
        F > 0; sizes sum to zero, so funding only moves cash between rows."""
        self.premium = self.sample_premium()
        self.premium_sum += self.premium
        self.samples += 1
        if self.samples < self.interval:
            return None
        cfg = self.config
        d = cfg.funding_divisor
        avg = self.premium_sum / self.samples
        rate = np.asarray(
            funding_rate(avg / d, cfg.interest_rate / d, cfg.premium_clamp / d, cfg.funding_cap, check=False)
        )
        rate[0] = 0.0
        mark = self.mark_prices()
        pay = self.size[: self.n] * (mark * rate)  # USD each row pays, per asset
        iso = self.mode[: self.n] == ISOLATED
        self.margin[: self.n][iso] -= pay[iso]
        self.cash[: self.n][~iso] -= pay[~iso].sum(axis=1)
        self.funding[: self.n] -= pay.sum(axis=1)
        self.last_funding_rate = rate
        self.premium_sum[:] = 0.0
        self.samples = 0
        return rate.copy()

    # --- liquidation ------------------------------------------------------------------------------------------

    def health_pass(self, t: int) -> list[LiquidationEvent]:
        """One vectorised margin pass at mark over every account; each position below maintenance (isolated), or
        every position of an account below maintenance (cross), goes through the waterfall. Returns this pass's
        liquidation events."""
        mark = self.mark_prices()
        self._record_pass(t, mark)
        if self.n == FIRST_ACCOUNT:
            return []
        rows = slice(FIRST_ACCOUNT, self.n)
        size = self.size[rows]
        self.position_step[rows][size != self.pass_size[rows]] = t
        unreal = size * (mark - self.entry[rows])
        mm = self._maintenance_margin(np.abs(size) * mark)
        isolated = (self.mode[rows] == ISOLATED)[:, None]
        iso_bad = isolated & (size != 0) & (self.margin[rows] + unreal < mm)
        total_mm = mm.sum(axis=1)
        cross_bad = ~isolated[:, 0] & (total_mm > 0) & (self.cash[rows] + unreal.sum(axis=1) < total_mm)
        # healthy positions: every position of a cross account above maintenance, each isolated one above its own
        healthy = np.where(isolated, ~iso_bad, ~cross_bad[:, None])
        self.last_healthy_step[rows][healthy] = t
        start = len(self.liquidations)
        for r in np.flatnonzero(cross_bad | iso_bad.any(axis=1)):
            acct = FIRST_ACCOUNT + int(r)
            assets = np.flatnonzero(iso_bad[r]) if self.mode[acct] == ISOLATED else np.flatnonzero(size[r])
            self._liquidate(acct, [int(k) for k in assets], t)
        self.pass_size[rows] = self.size[rows]
        return self.liquidations[start:]

    def _liquidate(self, acct: int, assets: list[int], t: int) -> None:
        """Run the waterfall for each listed position of `acct`, then settle what margin is left: the liquidation
        fees first, the rest to the insurance fund (or back to the trader)."""
        # one event per position; every position is shown to `on_liquidation` before the account's first close
        events = [(k, self.new_event_id()) for k in assets if self.size[acct, k] != 0.0]
        if self.on_liquidation is not None:
            for k, event_id in events:
                self.on_liquidation(event_id, acct, k, t)
        self._liquidating = acct
        fee_due = 0.0
        try:
            for k, event_id in events:
                fee_due += self._waterfall(acct, k, t, event_id)
        finally:
            self._liquidating = -1
        if self.mode[acct] == ISOLATED:
            for k in assets:
                left = self.margin[acct, k]
                self.margin[acct, k] = 0.0
                fee_due = self._settle_remaining(acct, left, fee_due)
        else:
            left = self.cash[acct]
            self.cash[acct] = 0.0
            self._settle_remaining(acct, left, fee_due)

    def _settle_remaining(self, acct: int, left: float, fee_due: float) -> float:
        """Charge the fees due from what is `left` of a liquidated margin (USD), forfeit or return the rest; returns
        the fees still due (when this margin could not pay them all)."""
        fee = min(fee_due, max(left, 0.0))
        self.fees[acct] += fee
        self.fee_revenue += fee
        rest = left - fee
        if self.config.surplus_to_insurance and rest > 0:
            self.insurance_fund += rest
            self.forfeited[acct] += rest
        else:
            self.cash[acct] += rest
        return fee_due - fee

    def _backing(self, acct: int, k: int, mark: np.ndarray) -> float:
        """USD standing behind position (acct, k): its isolated margin, or the account's cash plus the unrealised
        PnL of its other positions at mark (cross)."""
        if self.mode[acct] == ISOLATED:
            return float(self.margin[acct, k])
        others = self.size[acct] * (mark - self.entry[acct])
        return float(self.cash[acct] + others.sum() - others[k])

    def _waterfall(self, acct: int, k: int, t: int, event_id: int) -> float:
        """Close position (acct, k) through the waterfall (docs/perps.md): (a) into the book while the average fill
        is no worse than the bankruptcy price; (b) the vault takes over what it can carry at the bankruptcy price;
        (c) into the book again, the insurance fund paying the loss beyond the bankruptcy price while it lasts;
        (d) auto-deleveraging of the highest-ranked opposite positions at the bankruptcy price; (e) whatever is
        left (no opposite position remains) into the book, the loss as bad debt. Every fill is recorded under
        `event_id`. Returns the liquidation fee due."""
        s0 = self.size[acct, k]
        if s0 == 0.0:
            return 0.0
        side = 1 if s0 > 0 else -1
        qty = abs(s0)
        mark = self.mark_prices()
        bk = self.entry[acct, k] - side * self._backing(acct, k, mark) / qty
        owner = int(self.owner[acct])

        def record(stage: str, size: float, price: float, fee: float = 0.0, shortfall: float = 0.0) -> None:
            self.liquidations.append(
                LiquidationEvent(
                    t,
                    event_id,
                    acct,
                    owner,
                    k,
                    side,
                    float(size),
                    float(price),
                    float(bk),
                    float(fee),
                    float(shortfall),
                    stage,
                )
            )

        # (a) the engine closes into the book as long as the average fill is at or beyond bankruptcy
        x = largest_quantity(lambda v: self._close_value(k, side, v) >= side * v * bk, qty)
        fee_due = 0.0
        if x > 0:
            price = self._close_into_book(acct, k, side, x, t, event_id)
            fee = self.config.liquidation_fee * x * price
            fee_due += fee
            record("book", x, price, fee=fee)
        left = qty - x
        # (b) the backstop vault takes over at the bankruptcy price what its equity can carry
        if left > 0:
            y = largest_quantity(lambda v: self._vault_can_take(k, side, v, bk), left)
            if y > 0:
                if side > 0:
                    self._exchange(VAULT, acct, k, y, bk)
                else:
                    self._exchange(acct, VAULT, k, y, bk)
                record("vault", y, bk)
                left -= y
        # (c) into the book again; the insurance fund pays the loss beyond the bankruptcy price while it can
        if left > 0 and self.insurance_fund > 0:
            z = largest_quantity(lambda v: side * v * bk - self._close_value(k, side, v) <= self.insurance_fund, left)
            if z > 0:
                price = self._close_into_book(acct, k, side, z, t, event_id)
                shortfall = max(side * z * (bk - price), 0.0)
                self._cover(acct, k, min(shortfall, self.insurance_fund), from_insurance=True)
                record("insurance", z, price, shortfall=shortfall)
                left -= z
        # (d) auto-deleveraging: the most profitable, most levered opposite positions close at the bankruptcy price
        if left > 0:
            left -= self._auto_deleverage(acct, k, side, left, bk, t, event_id, mark)
            if abs(self.size[acct, k]) < qty * 1e-12:
                left = 0.0
        # (e) nobody left on the other side: the book takes the rest, the loss beyond bankruptcy is bad debt
        if left > 0:
            left = abs(self.size[acct, k])
            price = self._close_into_book(acct, k, side, left, t, event_id)
            shortfall = max(side * left * (bk - price), 0.0)
            self._cover(acct, k, shortfall, from_insurance=False)
            record("bad_debt", left, price, shortfall=shortfall)
        return fee_due

    def _close_value(self, k: int, side: int, qty: float) -> float:
        """Signed USD a close of `qty` tokens gets against the book (+ sale proceeds of a long; - cost to buy back a
        short), so that the close is at or beyond bankruptcy when value >= side * qty * bankruptcy price."""
        if qty <= 0:
            return 0.0
        if side > 0:
            return self.book.quote_sell(k, qty)
        cost = self.book.quote_cost(k, qty)
        return -cost if math.isfinite(cost) else -math.inf

    def _close_into_book(self, acct: int, k: int, side: int, qty: float, t: int, event_id: int) -> float:
        """Close `qty` tokens of the position against the book as a liquidation sale; returns the average price."""
        if side > 0:
            usd = self.book.sell(k, qty, source="liq", event_id=event_id, step=t)
            price = usd / qty
            self._exchange(BOOK, acct, k, qty, price)
        else:
            usd = self.book.buy_exact(k, qty, source="liq", event_id=event_id, step=t)
            price = usd / qty
            self._exchange(acct, BOOK, k, qty, price)
        return price

    def _cover(self, acct: int, k: int, usd: float, from_insurance: bool) -> None:
        """Pay `usd` of a bankrupt position's loss beyond bankruptcy into its margin: from the insurance fund, or
        as bad debt (nobody's money: the venue's unfunded hole)."""
        if usd <= 0:
            return
        if from_insurance:
            self.insurance_fund -= usd
        else:
            self.bad_debt += usd
        if self.mode[acct] == ISOLATED:
            self.margin[acct, k] += usd
        else:
            self.cash[acct] += usd
        self.subsidy[acct] += usd

    def _vault_can_take(self, k: int, side: int, qty: float, bk: float) -> bool:
        """Whether the vault, after taking over `qty` tokens at the bankruptcy price, still has equity at mark of at
        least the maintenance margin of all its positions."""
        mark = self.mark_prices()
        sizes = self.size[VAULT].copy()
        equity = self.cash[VAULT] + float(sizes @ (mark - self.entry[VAULT])) + side * qty * (mark[k] - bk)
        sizes[k] += side * qty
        return equity >= float(self._maintenance_margin(np.abs(sizes) * mark).sum())

    def adl_ranks(self, k: int, mark: np.ndarray | None = None) -> np.ndarray:
        """`adl_rank` of every account's position in asset k (0 where flat): pnl fraction at mark times (profit) or
        over (loss) effective leverage, notional over the equity standing behind the position (BitMEX)."""
        mark = self.mark_prices() if mark is None else mark
        rows = slice(FIRST_ACCOUNT, self.n)
        size, entry = self.size[rows, k], self.entry[rows, k]
        held = size != 0
        pnl = np.where(held, np.sign(size) * (mark[k] - entry) / np.where(held, entry, 1.0), 0.0)
        unreal = self.size[rows] * (mark - self.entry[rows])
        iso = self.mode[rows] == ISOLATED
        backing = np.where(iso, self.margin[rows, k] + unreal[:, k], self.cash[rows] + unreal.sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            lev = np.where(backing > 0, np.abs(size) * mark[k] / np.where(backing > 0, backing, 1.0), np.inf)
        lev = np.where(held & (lev > 0), lev, np.inf)
        return np.where(held, adl_rank(pnl, lev, check=False), 0.0)

    def _auto_deleverage(
        self, acct: int, k: int, side: int, qty: float, bk: float, t: int, event_id: int, mark: np.ndarray
    ) -> float:
        """Close `qty` tokens of the bankrupt position against opposite-side accounts, highest `adl_rank` first, at
        the bankruptcy price `bk`; returns the tokens covered."""
        ranks = self.adl_ranks(k, mark)
        fund = float(self.insurance_fund)
        room = largest_quantity(lambda v: self._vault_can_take(k, side, v, bk), qty)
        sizes = self.size[FIRST_ACCOUNT : self.n, k]
        available = np.where(sizes * side < 0, np.abs(sizes), 0.0)
        available[acct - FIRST_ACCOUNT] = 0.0
        queue = np.where(available > 0, ranks, -np.inf)
        take = adl_allocation(queue, available, qty)
        covered = 0.0
        for j in np.lexsort((np.arange(len(queue)), -queue)):  # the queue's order: highest rank first
            if take[j] <= 0:
                continue
            other = FIRST_ACCOUNT + int(j)
            amount = float(take[j])
            if side > 0:
                self._exchange(other, acct, k, amount, bk)
            else:
                self._exchange(acct, other, k, amount, bk)
            self.adl_events.append(
                AdlEvent(
                    t,
                    event_id,
                    other,
                    int(self.owner[other]),
                    k,
                    -side,
                    amount,
                    float(bk),
                    float(ranks[j]),
                    acct,
                    fund,
                    room,
                )
            )
            covered += amount
        if covered > 0:
            self.liquidations.append(
                LiquidationEvent(
                    t, event_id, acct, int(self.owner[acct]), k, side, covered, float(bk), float(bk), 0.0, 0.0, "adl"
                )
            )
        return covered

    # --- ledger -----------------------------------------------------------------------------------------------

    def open_interest(self) -> np.ndarray:
        """Long and short open interest per asset over every row, book and vault included: (2, assets) tokens."""
        s = self.size[: self.n]
        return np.stack([np.clip(s, 0.0, None).sum(axis=0), np.clip(-s, 0.0, None).sum(axis=0)])

    def ledger(self) -> dict[str, float]:
        """The terms of the venue's zero-sum identity (USD), at mark:

        traders' equity change (equity less net deposits; = realised + unrealised + funding - fees - forfeited
        margin + losses paid for them) + book PnL + vault PnL + fee revenue + insurance fund change - bad debt = 0.
        """
        mark = self.mark_prices()
        n = self.n
        unreal = (self.size[:n] * (mark - self.entry[:n])).sum(axis=1)
        equity = self.cash[:n] + self.margin[:n].sum(axis=1) + unreal
        tr = slice(FIRST_ACCOUNT, n)
        return {
            "traders_equity_change": float((equity[tr] - self.net_deposits[tr]).sum()),
            "traders_realised": float(self.realised[tr].sum()),
            "traders_unrealised": float(unreal[tr].sum()),
            "traders_funding": float(self.funding[tr].sum()),
            "traders_fees": float(self.fees[tr].sum()),
            "traders_forfeited": float(self.forfeited[tr].sum()),
            "traders_subsidy": float(self.subsidy[tr].sum()),
            "book_pnl": float(equity[BOOK]),
            "vault_pnl": float(equity[VAULT] - self.vault_start),
            "fee_revenue": self.fee_revenue,
            "insurance_change": self.insurance_fund - self.insurance_start,
            "bad_debt": self.bad_debt,
            "gross_scale": float(
                (np.abs(self.size[:n]) * mark).sum()
                + np.abs(self.cash[:n]).sum()
                + np.abs(self.margin[:n]).sum()
                + self.insurance_start
                + self.vault_start
                + 1.0
            ),
        }

    def zero_sum_residual(self) -> float:
        """What the zero-sum identity misses by (USD); float residue only while the venue is consistent."""
        g = self.ledger()
        return (
            g["traders_equity_change"]
            + g["book_pnl"]
            + g["vault_pnl"]
            + g["fee_revenue"]
            + g["insurance_change"]
            - g["bad_debt"]
        )

    def check_ledger(self, t: int | None = None) -> None:
        """Raise `InvariantError` unless: the zero-sum identity holds; traders' equity change equals the sum of
        their recorded flows; long open interest equals short per asset; the book's `Market` ledger holds the
        book row's position; the insurance fund is not negative. Tolerance: `LEDGER_RTOL` of the gross scale."""
        where = f"step {t}: " if t is not None else ""
        g = self.ledger()
        tol = LEDGER_RTOL * g["gross_scale"]
        residual = self.zero_sum_residual()
        if not abs(residual) <= tol:
            raise InvariantError(f"{where}perp ledger is not zero-sum: residual {residual!r} USD ({g})")
        flows = (
            g["traders_realised"]
            + g["traders_unrealised"]
            + g["traders_funding"]
            - g["traders_fees"]
            - g["traders_forfeited"]
            + g["traders_subsidy"]
        )
        if not abs(flows - g["traders_equity_change"]) <= tol:
            raise InvariantError(
                f"{where}perp traders' equity change {g['traders_equity_change']!r} != their flows {flows!r} USD"
            )
        long_oi, short_oi = self.open_interest()
        np.maximum(self.peak_open_interest, long_oi, out=self.peak_open_interest)
        scale = LEDGER_RTOL * np.maximum(self.peak_open_interest, 1.0)
        for k in np.flatnonzero(np.abs(long_oi - short_oi) > scale):
            raise InvariantError(
                f"{where}perp open interest of {self.symbols[k]}: long {long_oi[k]!r} != short {short_oi[k]!r}"
            )
        gap = np.abs(self.book.world_net[1:] - self.size[BOOK, 1:])
        for k in np.flatnonzero(gap > scale[1:]) + 1:
            raise InvariantError(
                f"{where}perp book of {self.symbols[k]}: market ledger {self.book.world_net[k]!r} != book row "
                f"{self.size[BOOK, k]!r} tokens"
            )
        if self.insurance_fund < -tol:
            raise InvariantError(f"{where}perp insurance fund is negative: {self.insurance_fund!r} USD")
