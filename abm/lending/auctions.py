"""Liquidation auctions: an English (tend/dent) auction after Maker's Flipper and a Dutch (descending-price) auction
after Maker's Clipper, with keepers whose participation depends on gas, capital and their own cost of funds
(docs/auctions_and_risk.md, "Liquidation auctions"; formulas in `abm.protocol`).

The house holds each live auction's collateral (tokens) and the standing English bid (USD) in escrow, settles
auctions into `Settlement` records (what was raised, what went back to the owner, what was left unpaid), and keeps
an escrow ledger whose conservation `check_conservation` verifies. It knows nothing of the pool or the market:
the caller puts seized collateral and the debt up for auction with `kick`, passes prices, the going gas cost and a
`quote_sell(asset, tokens) -> USD` function (the market's `Market.quote_sell`) to `step`, and books each
settlement (repay the pool with `raised_usd`, return `returned_tokens` to the owner, write off `unpaid_usd`).
Time is counted in model steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from abm.errors import InvariantError
from abm.protocol import (
    DUTCH_CURVES,
    SECONDS_PER_YEAR,
    auction_keeper_incentive,
    dutch_auction_needs_reset,
    dutch_auction_price,
    dutch_auction_take,
    english_auction_max_lot,
    english_auction_min_bid,
    keeper_break_even_bid,
    keeper_landing_probability,
)

MECHANISMS = ("english", "dutch")
QuoteSell = Callable[[int, float], float]  # (asset, tokens) -> USD a sale of that many tokens raises now
TINY = 1e-12  # tokens or USD below this are the float residue of an emptied lot or a paid tab
# A lot that raised less than this share of its market value went for (almost) nothing: a "zero bid" (on 12-13
# March 2020 the winning bids were 0 DAI; here a lone bidder's opening bid, or a few beg steps above it)
ZERO_BID_FRACTION = 0.01


@dataclass(frozen=True)
class AuctionParams:
    """The auction house's parameters; Maker's names in brackets, times in steps of `step_seconds` seconds.

    English: minimum bid increase `beg` (a factor, 1.05 = 5%), bid lifetime `ttl_steps` (ttl), auction length
    `tau_steps` (tau), the opening bid `min_bid_usd` (Flipper accepts any bid above 0). Dutch: start-price factor
    `buf` over the oracle price, the price `curve` with `cut` (per drop, or per step for `exponential`),
    `drop_steps` (step) and `duration_steps` (tau of LinearDecrease), resets after `tail_steps` (tail) or a fall
    below `cusp` of the start price (cusp), keeper incentives `chip` (fraction of the tab) and `tip_usd` (tip),
    and `dust_usd` (dust), the smallest tab a partial purchase may leave.
    """

    mechanism: str
    step_seconds: float = 60.0
    beg: float = 1.05
    ttl_steps: int = 180
    tau_steps: int = 2880
    min_bid_usd: float = 1e-6
    buf: float = 1.30
    curve: str = "stairstep"
    cut: float = 0.99
    drop_steps: float = 1.5
    duration_steps: float = 120.0
    tail_steps: float = 140.0
    cusp: float = 0.40
    chip: float = 0.001
    tip_usd: float = 0.0
    dust_usd: float = 0.0

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS} (got {self.mechanism!r})")
        if self.curve not in DUTCH_CURVES:
            raise ValueError(f"curve must be one of {DUTCH_CURVES} (got {self.curve!r})")
        rules = [
            ("step_seconds", self.step_seconds > 0, "> 0"),
            ("beg", self.beg >= 1, ">= 1"),
            ("ttl_steps", self.ttl_steps >= 1, ">= 1"),
            ("tau_steps", self.tau_steps >= self.ttl_steps, ">= ttl_steps"),
            ("min_bid_usd", self.min_bid_usd > 0, "> 0"),
            ("buf", self.buf > 0, "> 0"),
            ("cut", 0 < self.cut <= 1, "in (0, 1]"),
            ("drop_steps", self.drop_steps > 0, "> 0"),
            ("duration_steps", self.duration_steps > 0, "> 0"),
            ("tail_steps", self.tail_steps > 0, "> 0"),
            ("cusp", 0 <= self.cusp <= 1, "in [0, 1]"),
            ("chip", self.chip >= 0, ">= 0"),
            ("tip_usd", self.tip_usd >= 0, ">= 0"),
            ("dust_usd", self.dust_usd >= 0, ">= 0"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"{name} must be {rule} (got {getattr(self, name)!r})")
        if self.curve == "linear" and self.cusp == 0 and self.tail_steps >= self.duration_steps:
            raise ValueError(
                f"tail_steps must be < duration_steps when cusp is 0 on the linear curve (got {self.tail_steps!r}), "
                "or the price sits at 0 with no reset"
            )

    def price(self, top: float, elapsed_steps: float) -> float:
        """The Dutch auction's price (USD/token) `elapsed_steps` after its start or last reset, from start `top`."""
        return float(
            dutch_auction_price(
                top, elapsed_steps, self.curve, duration=self.duration_steps, cut=self.cut, step=self.drop_steps
            )
        )


@dataclass
class AuctionKeepers:
    """Auction keepers as arrays (one entry each): free capital (USD), gas budget (USD per transaction paid
    whatever the prize), share of the expected profit they will spend on gas, own cost of funds (per year) and
    transactions per step. `zero_bid` marks the keepers whose software pays any gas (their transactions always
    land) and only ever opens an English auction at the minimum bid, never raising one (Black Thursday's zero
    bidders); None: nobody. `tokens` (keepers x assets) is the collateral they won; `gas_spent_usd` what their
    landed transactions cost (gas goes to block producers, outside the model)."""

    capital_usd: np.ndarray
    gas_budget_usd: np.ndarray
    profit_share: np.ndarray
    funding_rate: np.ndarray
    capacity_per_step: np.ndarray
    n_assets: int = 2
    zero_bid: np.ndarray | None = None
    tokens: np.ndarray = field(init=False)
    gas_spent_usd: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.capital_usd)
        for name in ("capital_usd", "gas_budget_usd", "profit_share", "funding_rate", "capacity_per_step"):
            arr = np.asarray(getattr(self, name), dtype=np.int64 if name == "capacity_per_step" else np.float64)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have one entry per keeper ({n}) (got shape {arr.shape})")
            if np.any(arr < 0) or np.any(np.isnan(arr)):
                raise ValueError(f"{name} must be >= 0 (got {arr.min()!r})")
            setattr(self, name, arr.copy())
        if np.any(self.profit_share > 1):
            raise ValueError(f"profit_share must be in [0, 1] (got {self.profit_share.max()!r})")
        if self.n_assets < 1:
            raise ValueError(f"n_assets must be >= 1 (got {self.n_assets!r})")
        zero_bid = np.zeros(n, dtype=bool) if self.zero_bid is None else np.asarray(self.zero_bid, dtype=bool)
        if zero_bid.shape != (n,):
            raise ValueError(f"zero_bid must have one entry per keeper ({n}) (got shape {zero_bid.shape})")
        self.zero_bid = zero_bid.copy()
        self.tokens = np.zeros((n, self.n_assets))
        self.gas_spent_usd = np.zeros(n)

    @classmethod
    def uniform(
        cls,
        n: int,
        *,
        capital_usd: float,
        gas_budget_usd: float,
        profit_share: float,
        funding_rate: float,
        capacity_per_step: int = 1,
        n_assets: int = 2,
    ) -> AuctionKeepers:
        """`n` identical keepers."""
        if n < 1:
            raise ValueError(f"n must be >= 1 (got {n!r})")
        return cls(
            capital_usd=np.full(n, capital_usd),
            gas_budget_usd=np.full(n, gas_budget_usd),
            profit_share=np.full(n, profit_share),
            funding_rate=np.full(n, funding_rate),
            capacity_per_step=np.full(n, capacity_per_step),
            n_assets=n_assets,
        )

    def __len__(self) -> int:
        return len(self.capital_usd)


@dataclass
class Auction:
    """One live auction: `lot` collateral tokens of `asset` (escrowed) for `tab` USD of debt still to raise.

    English: `bid` (USD, escrowed from `bidder`), `bid_expiry` (step the standing bid wins, -1 before the first
    bid) and `end` (step the auction ends). Dutch: `top` (start price, USD/token) and `tic` (step of the last
    (re)start).
    """

    auction_id: int
    mechanism: str
    account: int
    owner: int
    asset: int
    start_step: int
    lot0: float
    tab0: float
    lot: float
    tab: float
    end: int = -1
    bid: float = 0.0
    bidder: int = -1
    bid_expiry: int = -1
    top: float = 0.0
    tic: int = 0
    raised: float = 0.0
    returned: float = 0.0
    resets: int = 0
    incentives_usd: float = 0.0
    winners: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Settlement:
    """A finished auction (USD; tokens of `asset`). `unpaid_usd` = tab - raised (the debt the auction did not
    cover); `discount_usd` = market value of the tokens sold at settlement - raised (>= 0); `shortfall_usd` =
    min(unpaid_usd, discount_usd), the unpaid debt a sale at the collateral's market value would have covered (0
    when the lot cleared at or above its market value). `zero_bid`: the lot raised less than `ZERO_BID_FRACTION` of its market
    value (an English lot won at, or a few beg steps above, the opening bid)."""

    auction_id: int
    mechanism: str
    account: int
    owner: int
    asset: int
    start_step: int
    step: int
    tab_usd: float
    raised_usd: float
    lot_tokens: float
    sold_tokens: float
    returned_tokens: float
    clearing_price: float
    market_price: float
    unpaid_usd: float
    shortfall_usd: float
    discount_usd: float
    zero_bid: bool
    resets: int
    incentives_usd: float
    winners: tuple[int, ...]


class AuctionHouse:
    """Live auctions, the keepers who bid in them, settlements and the escrow ledger.

    `rng` (a seeded numpy Generator) draws the keepers' order each step and whether each transaction lands, so one
    seed gives one history.
    """

    def __init__(self, params: AuctionParams, keepers: AuctionKeepers, rng: np.random.Generator) -> None:
        self.params = params
        self.keepers = keepers
        self.rng = rng
        self.n_assets = keepers.n_assets
        self.live: dict[int, Auction] = {}
        self.settlements: list[Settlement] = []
        # every transfer of collateral to a keeper, in order: (auction id, keeper, asset, tokens); the model sells
        # each into the market under the auction's liquidation event
        self.fills: list[tuple[int, int, int, float]] = []
        self._next_id = 0
        self._used = np.zeros(len(keepers), dtype=np.int64)  # transactions landed this step, per keeper
        # escrow ledger: cumulative flows and what is held now (tokens per asset; USD)
        self.tokens_in = np.zeros(self.n_assets)
        self.tokens_to_keepers = np.zeros(self.n_assets)
        self.tokens_returned = np.zeros(self.n_assets)
        self.escrow_tokens = np.zeros(self.n_assets)
        self.usd_in = 0.0
        self.usd_refunded = 0.0
        self.usd_paid_out = 0.0
        self.escrow_usd = 0.0
        # totals over settled auctions (USD)
        self.raised_usd = 0.0
        self.unpaid_usd = 0.0
        self.auction_shortfall_usd = 0.0
        self.incentives_usd = 0.0
        self.n_zero_bid = 0

    # --- starting ---------------------------------------------------------------------------------------

    def kick(
        self, step: int, account: int, owner: int, asset: int, lot: float, tab_usd: float, oracle_price: float
    ) -> int:
        """Put `lot` tokens of `asset` (seized from `account`, owned by wallet holder `owner`) up for auction to
        raise `tab_usd` (the debt plus any liquidation penalty, USD); returns the auction id. A Dutch auction starts
        at oracle_price * buf (USD/token) and pays the keeper incentive tip + chip * tab (`incentives_usd`)."""
        if not 0 <= asset < self.n_assets:
            raise ValueError(f"asset must be in [0, {self.n_assets}) (got {asset!r})")
        if not lot > 0:
            raise ValueError(f"lot must be > 0 (got {lot!r})")
        if not tab_usd > 0:
            raise ValueError(f"tab_usd must be > 0 (got {tab_usd!r})")
        if not oracle_price > 0:
            raise ValueError(f"oracle_price must be > 0 (got {oracle_price!r})")
        p = self.params
        a = Auction(self._next_id, p.mechanism, account, owner, asset, step, lot, tab_usd, lot, tab_usd)
        if p.mechanism == "english":
            a.end = step + p.tau_steps
        else:
            a.top, a.tic = oracle_price * p.buf, step
            a.incentives_usd += float(auction_keeper_incentive(tab_usd, p.chip, p.tip_usd))
        self.live[a.auction_id] = a
        self._next_id += 1
        self.tokens_in[asset] += lot
        self.escrow_tokens[asset] += lot
        return a.auction_id

    # --- one step -------------------------------------------------------------------------------------

    def step(
        self,
        step: int,
        oracle_prices: np.ndarray,
        market_prices: np.ndarray,
        gas_usd: float,
        quote_sell: QuoteSell,
    ) -> list[Settlement]:
        """Advance every live auction by one step, oldest first: settle those that are over, let keepers bid (or
        take), reset Dutch auctions that ran too long or fell too far. Prices in USD/token per asset; gas_usd: what
        one transaction must pay to land now (USD, > 0). Returns this step's settlements."""
        if not gas_usd > 0:
            raise ValueError(f"gas_usd must be > 0 (got {gas_usd!r})")
        self._used[:] = 0
        done: list[Settlement] = []
        for auction_id in sorted(self.live):
            a = self.live[auction_id]
            if a.mechanism == "english":
                finished = self._english(a, step, gas_usd, quote_sell)
            else:
                finished = self._dutch(a, step, float(oracle_prices[a.asset]), gas_usd, quote_sell)
            if finished:
                done.append(self._settle(a, step, float(market_prices[a.asset])))
        return done

    def _order(self) -> np.ndarray:
        """Keepers in this step's random order, those with transactions left first."""
        order = self.rng.permutation(len(self.keepers))
        return order[self._used[order] < self.keepers.capacity_per_step[order]]

    def _lands(self, k: int, gas_usd: float, profit_usd: float) -> bool:
        kp = self.keepers
        if not kp.zero_bid[k]:  # a zero-bid keeper pays whatever gas it takes: no draw
            p = float(keeper_landing_probability(gas_usd, kp.gas_budget_usd[k], profit_usd, kp.profit_share[k]))
            if self.rng.random() >= p:
                return False
        self._used[k] += 1
        kp.gas_spent_usd[k] += gas_usd
        return True

    # --- English: Flipper's tend, dent, deal and tick ----------------------------------------------------

    def _english(self, a: Auction, step: int, gas_usd: float, quote_sell: QuoteSell) -> bool:
        p = self.params
        if (a.bid_expiry >= 0 and step >= a.bid_expiry) or step >= a.end:
            if a.bidder >= 0:
                return True  # deal: the standing bid wins
            a.end = step + p.tau_steps  # tick: no bid at all, restart
            a.resets += 1
        hold_seconds = p.ttl_steps * p.step_seconds  # the bid is locked at least until it wins
        gas = 2.0 * gas_usd  # bid and deal
        if a.bid < a.tab - TINY:
            self._tend(a, step, gas_usd, gas, hold_seconds, quote_sell)
        else:
            self._dent(a, step, gas_usd, gas, hold_seconds, quote_sell)
        return False

    def _tend(self, a: Auction, step: int, gas_usd: float, gas: float, hold: float, quote_sell: QuoteSell) -> None:
        p, kp = self.params, self.keepers
        min_bid = float(english_auction_min_bid(a.bid, a.tab, p.beg)) if a.bid > 0 else min(p.min_bid_usd, a.tab)
        resale = quote_sell(a.asset, a.lot)

        def value(k: int) -> float:  # the most keeper k would bid: its break-even, within its funds and the tab
            if kp.zero_bid[k]:  # opens an auction nobody has bid on at the minimum bid, needing no capital
                return min_bid if a.bidder < 0 else 0.0
            funds = kp.capital_usd[k] + (a.bid if k == a.bidder else 0.0)
            return min(float(keeper_break_even_bid(resale, gas, kp.funding_rate[k], hold)), funds, a.tab)

        def profit(k: int) -> float:  # what winning at the minimum bid would earn
            return resale - min_bid * self._funding_factor(k, hold) - gas

        bids = self._bidders(a, min_bid, value, profit, gas_usd, higher_is_better=True)
        if bids:
            # an English auction among the keepers whose bids landed: the highest value wins at the runner-up's
            # value (at least the minimum bid, at most its own value); a lone bidder pays the minimum bid
            (best, winner), runner_up = bids[0], (bids[1][0] if len(bids) > 1 else min_bid)
            self._take_bid(a, winner, min(best, max(min_bid, runner_up)), step)

    def _dent(self, a: Auction, step: int, gas_usd: float, gas: float, hold: float, quote_sell: QuoteSell) -> None:
        p, kp = self.params, self.keepers
        max_lot = float(english_auction_max_lot(a.lot, p.beg))

        fewest: dict[float, float] = {}  # keepers with one cost of funds need the same tokens: solve once

        def value(k: int) -> float:  # the fewest tokens keeper k would accept for the tab (inf: none, or no funds)
            if kp.zero_bid[k] or kp.capital_usd[k] + (a.bid if k == a.bidder else 0.0) < a.tab - TINY:
                return np.inf
            need = a.tab * self._funding_factor(k, hold) + gas
            if need not in fewest:
                fewest[need] = self._tokens_raising(a.asset, need, a.lot, quote_sell)
            return fewest[need]

        def profit(k: int) -> float:  # what winning the largest acceptable lot would earn
            return quote_sell(a.asset, max_lot) - a.tab * self._funding_factor(k, hold) - gas

        asks = self._bidders(a, max_lot, value, profit, gas_usd, higher_is_better=False)
        if not asks:
            return
        (best, winner), runner_up = asks[0], (asks[1][0] if len(asks) > 1 else max_lot)
        lot = max(best, min(max_lot, runner_up))
        forgone = a.lot - lot  # Flipper gives the tokens a dent frees straight back to the owner
        a.lot = lot
        a.returned += forgone
        self.escrow_tokens[a.asset] -= forgone
        self.tokens_returned[a.asset] += forgone
        self._take_bid(a, winner, a.tab, step)

    def _bidders(
        self,
        a: Auction,
        limit: float,
        value: Callable[[int], float],
        profit: Callable[[int], float],
        gas_usd: float,
        *,
        higher_is_better: bool,
    ) -> list[tuple[float, int]]:
        """(value, keeper) of the keepers whose bids landed this step, best first. Challengers whose value reaches
        `limit` (the minimum bid; in the dent phase the largest acceptable lot) try in this step's order; the
        standing bidder answers only if challenged. Each landed bid uses one of the keeper's transactions."""
        ok = (lambda v: v >= limit) if higher_is_better else (lambda v: v <= limit)
        landed: list[tuple[float, int]] = []
        for k in self._order():
            if k != a.bidder and ok(v := value(int(k))) and self._lands(int(k), gas_usd, profit(int(k))):
                landed.append((v, int(k)))
        k = a.bidder
        if landed and k >= 0 and self._used[k] < self.keepers.capacity_per_step[k]:
            if ok(v := value(k)) and self._lands(k, gas_usd, profit(k)):
                landed.append((v, k))
        landed.sort(key=lambda vk: -vk[0] if higher_is_better else vk[0])
        return landed

    def _funding_factor(self, k: int, hold_seconds: float) -> float:
        """1 + the keeper's cost of funds over `hold_seconds` (simple interest, per-year rate)."""
        return 1.0 + float(self.keepers.funding_rate[k]) * hold_seconds / SECONDS_PER_YEAR

    @staticmethod
    def _tokens_raising(asset: int, need_usd: float, lot: float, quote_sell: QuoteSell) -> float:
        """Fewest tokens (at most `lot`) whose sale raises `need_usd`; inf if the whole lot does not."""
        if quote_sell(asset, lot) < need_usd:
            return np.inf
        lo, hi = 0.0, lot
        for _ in range(60):  # proceeds rise with tokens sold: bisection to ~1e-18 of the lot
            mid = 0.5 * (lo + hi)
            if quote_sell(asset, mid) >= need_usd:
                hi = mid
            else:
                lo = mid
        return hi

    def _take_bid(self, a: Auction, keeper: int, bid: float, step: int) -> None:
        """`keeper` becomes the high bidder at `bid` USD: the previous bidder's bid is refunded from escrow."""
        kp = self.keepers
        if a.bidder >= 0:
            kp.capital_usd[a.bidder] += a.bid
            self.usd_refunded += a.bid
            self.escrow_usd -= a.bid
        kp.capital_usd[keeper] -= bid
        self.usd_in += bid
        self.escrow_usd += bid
        a.bid, a.bidder, a.bid_expiry = bid, keeper, step + self.params.ttl_steps

    # --- Dutch: Clipper's take and redo --------------------------------------------------------------------

    def _dutch(self, a: Auction, step: int, oracle_price: float, gas_usd: float, quote_sell: QuoteSell) -> bool:
        p, kp = self.params, self.keepers
        price = p.price(a.top, step - a.tic)
        if dutch_auction_needs_reset(step - a.tic, price, a.top, p.tail_steps, p.cusp):
            a.top, a.tic = oracle_price * p.buf, step  # redo, called by a keeper for the incentive
            a.resets += 1
            if a.tab >= p.dust_usd and a.lot * oracle_price >= p.dust_usd:
                a.incentives_usd += float(auction_keeper_incentive(a.tab, p.chip, p.tip_usd))
            price = a.top
        if price <= 0:
            return False
        hold = p.step_seconds  # a taker's USD is tied up for the step in which it sells what it bought
        for k in self._order():
            want = min(a.lot, max(float(kp.capital_usd[k]), 0.0) / price)  # capital may hold -1e-13 of float residue
            if a.tab <= p.dust_usd and want < a.lot:
                continue  # Clipper: a tab at or below dust is bought whole or not at all
            owe, piece = dutch_auction_take(a.lot, a.tab, price, want, p.dust_usd)
            if piece <= TINY:
                continue
            profit = quote_sell(a.asset, piece) - owe * self._funding_factor(int(k), hold) - gas_usd
            if profit <= 0 or not self._lands(k, gas_usd, profit):
                continue
            kp.capital_usd[k] -= owe
            kp.tokens[k, a.asset] += piece
            self.fills.append((a.auction_id, int(k), a.asset, piece))
            self.usd_in += owe
            self.usd_paid_out += owe
            self.tokens_to_keepers[a.asset] += piece
            self.escrow_tokens[a.asset] -= piece
            a.lot -= piece
            a.tab -= owe
            a.raised += owe
            a.winners.append(int(k))
            if a.lot <= TINY or a.tab <= TINY:
                return True
        return False

    # --- settling ---------------------------------------------------------------------------------------------

    def _settle(self, a: Auction, step: int, market_price: float) -> Settlement:
        """Close `a`: an English winner pays its escrowed bid and gets the lot; a Dutch auction returns what is left
        of its lot to the owner. Records the settlement and the house's totals."""
        if a.mechanism == "english":
            self.escrow_usd -= a.bid
            self.usd_paid_out += a.bid
            a.raised = a.bid
            self.keepers.tokens[a.bidder, a.asset] += a.lot
            self.fills.append((a.auction_id, a.bidder, a.asset, a.lot))
            self.tokens_to_keepers[a.asset] += a.lot
            self.escrow_tokens[a.asset] -= a.lot
            sold = a.lot
            a.winners.append(a.bidder)
        else:
            sold = a.lot0 - a.lot
            a.returned += a.lot
            self.tokens_returned[a.asset] += a.lot
            self.escrow_tokens[a.asset] -= a.lot
        unpaid = max(a.tab0 - a.raised, 0.0)
        unpaid = 0.0 if unpaid <= TINY * max(a.tab0, 1.0) else unpaid
        clearing = a.raised / sold if sold > TINY else float("nan")
        discount = max(sold * market_price - a.raised, 0.0) if sold > TINY else 0.0
        zero_bid = sold > TINY and a.raised < ZERO_BID_FRACTION * sold * market_price
        s = Settlement(
            auction_id=a.auction_id,
            mechanism=a.mechanism,
            account=a.account,
            owner=a.owner,
            asset=a.asset,
            start_step=a.start_step,
            step=step,
            tab_usd=a.tab0,
            raised_usd=a.raised,
            lot_tokens=a.lot0,
            sold_tokens=sold,
            returned_tokens=a.returned,
            clearing_price=clearing,
            market_price=market_price,
            unpaid_usd=unpaid,
            shortfall_usd=min(unpaid, discount),
            discount_usd=discount,
            zero_bid=zero_bid,
            resets=a.resets,
            incentives_usd=a.incentives_usd,
            winners=tuple(a.winners),
        )
        del self.live[a.auction_id]
        self.settlements.append(s)
        self.raised_usd += s.raised_usd
        self.unpaid_usd += s.unpaid_usd
        self.auction_shortfall_usd += s.shortfall_usd
        self.incentives_usd += s.incentives_usd
        self.n_zero_bid += int(zero_bid)
        return s

    # --- the escrow ledger ------------------------------------------------------------------------------------

    def conservation_gap(self) -> tuple[np.ndarray, float]:
        """(tokens per asset, USD) that the escrow ledger cannot account for; ~0 always.

        Tokens: put up - sold to keepers - returned to owners - held, and held - the live auctions' lots.
        USD: paid in by keepers - refunded - paid out to the protocol - held, and held - the live English bids.
        Each pair is summed in absolute value, so either identity failing shows.
        """
        lots = np.zeros(self.n_assets)
        bids = 0.0
        for a in self.live.values():
            lots[a.asset] += a.lot
            bids += a.bid if a.mechanism == "english" else 0.0
        flows = self.tokens_in - self.tokens_to_keepers - self.tokens_returned - self.escrow_tokens
        tokens = np.abs(flows) + np.abs(self.escrow_tokens - lots)
        usd = abs(self.usd_in - self.usd_refunded - self.usd_paid_out - self.escrow_usd) + abs(self.escrow_usd - bids)
        return tokens, usd

    def check_conservation(self, rel_tol: float = 1e-9) -> None:
        """Raise `InvariantError` if the escrow ledger leaks more than `rel_tol` of what passed through it."""
        tokens, usd = self.conservation_gap()
        scale = np.maximum(self.tokens_in, 1.0)
        if np.any(tokens > rel_tol * scale):
            k = int(np.argmax(tokens / scale))
            raise InvariantError(
                f"auction escrow: asset {k} leaks {tokens[k]!r} tokens of {self.tokens_in[k]!r} put up"
            )
        if usd > rel_tol * max(self.usd_in, 1.0):
            raise InvariantError(f"auction escrow: {usd!r} USD unaccounted for of {self.usd_in!r} paid in")
