"""The pieces of the perpetual venue's liquidation waterfall that need no venue state (docs/perps.md, "The
liquidation waterfall"): the event records, the auto-deleveraging allocation and the search for the largest
quantity a stage can absorb.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

# Stages of the waterfall, in order; a liquidation event names the stage that filled it.
STAGES = ("book", "vault", "insurance", "adl", "bad_debt")


@dataclass(frozen=True)
class Fill:
    """One trade of an account against its perp book. `size` is the signed quantity filled (tokens; + bought),
    `price` the average fill price (USD/token), `fee` the taker fee charged (USD); `size` is 0 and `reason` says
    why when the trade was refused."""

    account: int
    asset: int
    size: float
    price: float
    fee: float
    reason: str = ""


@dataclass(frozen=True)
class LiquidationEvent:
    """One fill of a liquidated position, by waterfall stage. size: tokens closed (> 0); side: +1 the position was
    long, -1 short; price: USD/token (the book's average fill, or the bankruptcy price for vault and ADL fills);
    fee: liquidation fee charged on this fill (USD, settled from what margin is left when the account's
    liquidation ends); shortfall: loss beyond the bankruptcy price that the insurance fund paid ('insurance') or
    nobody could ('bad_debt'), USD."""

    step: int
    event_id: int
    account: int
    owner: int
    asset: int
    side: int
    size: float
    price: float
    bankruptcy_price: float
    fee: float
    shortfall: float
    stage: str

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class AdlEvent:
    """One auto-deleveraging fill: `account` (an opposite-side position) is closed by `size` tokens at the bankrupt
    position's bankruptcy `price` (USD/token). side: the ADL'd position's side; rank: its `adl_rank` when chosen;
    liquidated_account: the bankrupt account it covered. insurance_fund_usd: the fund's balance when the queue was
    reached (USD); vault_room: tokens the backstop vault could still have taken over at this bankruptcy price then
    (both ~0: auto-deleveraging comes only after the fund and the vault are exhausted)."""

    step: int
    event_id: int
    account: int
    owner: int
    asset: int
    side: int
    size: float
    price: float
    rank: float
    liquidated_account: int
    insurance_fund_usd: float = float("nan")
    vault_room: float = float("nan")

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def adl_allocation(ranks: np.ndarray, available: np.ndarray, needed: float) -> np.ndarray:
    """Quantities (tokens) to close from each candidate so that `needed` tokens are covered: highest rank first
    (ties: lower index first), each at most its `available` size (BitMEX, "Auto-Deleveraging": the top of the queue
    is closed in full before the next is touched). The sum is min(needed, sum of available)."""
    order = np.lexsort((np.arange(len(ranks)), -np.asarray(ranks, dtype=float)))
    take = np.zeros(len(ranks))
    left = float(needed)
    for j in order:
        if left <= 0:
            break
        take[j] = min(left, float(available[j]))
        left -= take[j]
    return take


def largest_quantity(feasible: Callable[[float], bool], upper: float, iterations: int = 60) -> float:
    """The largest x in [0, upper] with feasible(x), by bisection, for a condition that holds at 0 and, once it
    fails, keeps failing as x grows (a stage's capacity: fills get worse and losses larger with size)."""
    if upper <= 0 or feasible(upper):
        return max(upper, 0.0)
    lo, hi = 0.0, upper
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return lo
