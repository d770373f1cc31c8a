"""Lender: supplies the pool's reserves, chases the supply rate against an outside rate, and runs when frightened
(docs/model.md, 3.3 Submodels: Lenders).

Lenders start at parity: each reserve's supply is set so that its supply rate equals the lenders' outside rate
(`parity_supply`), so nobody moves funds on a calm day. A supply rate above the outside rate by more than a band
(`lenders.rate_gap_band`: moving funds has costs) draws the lenders' idle funds (their wallets) into the pool, one
below it by more than the band draws funds out to their wallets (`rate_chasing_move`). Fear of bad debt is a
stock that decays (`LenderSentiment`): lenders run while recent bad debt is large against the supply, and stop
as the news ages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import mesa
import numpy as np
from numba import njit

from abm.lending.pool import supply_tokens, withdraw_tokens
from abm.protocol import borrow_rate, supply_rate

if TYPE_CHECKING:
    from abm.lending.pool import LendingPool
    from abm.model import ReflexivityModel


class Lender(mesa.Agent):
    """One supplier of every reserve. `holder` is its wallet row; `supplier` its row in the pool's positions."""

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int, supplier: int) -> None:
        super().__init__(model)
        self.holder = holder
        self.supplier = supplier

    def step(self, view: LenderView) -> None:
        """Act on the pool as published at the start of the lenders' phase (`view`, the same for every lender)."""
        act_in_turn(self.model, [self], view)


def act_in_turn(model: ReflexivityModel, lenders: list[Lender], view: LenderView) -> None:
    """The lenders' phase: each of `lenders` in turn acts on the pool as published at the start of the phase
    (`view`). Where its reserve is in panic it withdraws `lenders.run_fraction` of its funds there; elsewhere it moves
    the view's share toward the better rate: a share of its funds in the pool plus its idle funds (its wallet)
    into the pool, or of its funds in the pool out to its wallet. Its funds are counted once, when its turn starts;
    a withdrawal is bounded by the reserve's cash (`LendingPool.withdraw`). One compiled pass over the lenders."""
    pool = model.pool
    changes = _act_in_turn(
        np.array([lender.supplier for lender in lenders], dtype=np.int64),
        np.array([lender.holder for lender in lenders], dtype=np.int64),
        view.panic,
        view.move,
        float(model.config.lenders.run_fraction),
        pool.cash,
        pool.scaled_supply,
        pool.supplier_scaled,
        pool.supply_index,
        pool.unmet_withdrawals,
        model.wallets.balances,
    )
    if changes:
        pool.touch()


@njit(cache=True, nogil=True)
def _act_in_turn(
    suppliers: np.ndarray,
    holders: np.ndarray,
    panic: np.ndarray,
    move: np.ndarray,
    run_fraction: float,
    cash: np.ndarray,
    scaled_supply: np.ndarray,
    supplier_scaled: np.ndarray,
    supply_index: np.ndarray,
    unmet_withdrawals: np.ndarray,
    balances: np.ndarray,
) -> int:
    """`act_in_turn` on the pool's and the wallets' arrays (updated in place); returns how many moves it made. The
    reserves in panic first, then the others, each in ascending order."""
    changes = 0
    n_assets = len(panic)
    for i in range(len(suppliers)):
        s, h = suppliers[i], holders[i]
        funds = supplier_scaled[s] * supply_index  # tokens in the pool per reserve, as its turn starts
        for a in range(n_assets):
            if panic[a] and funds[a] > 0:
                got = withdraw_tokens(
                    cash, scaled_supply, supplier_scaled, supply_index, unmet_withdrawals, s, a, run_fraction * funds[a]
                )
                if got > 0:
                    balances[h, a] += got
                    changes += 1
        for a in range(n_assets):
            if panic[a] or move[a] == 0:
                continue
            if move[a] > 0:  # the better rate draws the lender's idle funds back in
                idle = balances[h, a]
                wanted = move[a] * (funds[a] + idle)
                amount = idle if idle < wanted else wanted
                if amount > 0:
                    balances[h, a] = idle - amount  # at most the idle funds: never below 0
                    supply_tokens(cash, scaled_supply, supplier_scaled, supply_index, s, a, amount)
                    changes += 1
            elif funds[a] > 0:
                share = 1.0 if 1.0 < -move[a] else -move[a]
                got = withdraw_tokens(
                    cash, scaled_supply, supplier_scaled, supply_index, unmet_withdrawals, s, a, share * funds[a]
                )
                if got > 0:
                    balances[h, a] += got
                    changes += 1
    return changes


class LenderSentiment:
    """Lenders' fear of bad debt per reserve: the share of the supply lost to bad debt recently, a stock that
    decays with a half-life of `lenders.panic_half_life_steps`; they panic while it exceeds
    `lenders.panic_bad_debt_ratio`. Each loss counts against the supply when it happened, so the fear does not
    grow as lenders leave."""

    def __init__(self, n_assets: int) -> None:
        self.fear = np.zeros(n_assets)
        self.seen_bad_debt = np.zeros(n_assets)
        self.seen_write_offs = 0  # the pool's write-offs counted in `seen_bad_debt`

    def update(self, pool: LendingPool, half_life_steps: float) -> np.ndarray:
        """Age the fear by one step and add the bad debt written off since the last update, as a share of the
        supply then (per reserve, dimensionless); return the fear."""
        decay = 0.5 ** (1.0 / half_life_steps)
        if len(pool.write_offs) == self.seen_write_offs:  # nothing written off since: the new share would be 0
            self.fear = self.fear * decay
            return self.fear
        self.seen_write_offs = len(pool.write_offs)
        new = pool.bad_debt_tokens - self.seen_bad_debt
        self.seen_bad_debt = pool.bad_debt_tokens.copy()
        total = pool.supplied + new
        self.fear = self.fear * decay + np.divide(new, total, out=np.zeros_like(total), where=total > 0)
        return self.fear


@dataclass(frozen=True)
class LenderView:
    """What every lender sees at the start of its phase, per reserve: panic flags and the share of funds to move
    toward the better rate this step (signed)."""

    panic: np.ndarray
    move: np.ndarray

    @classmethod
    def of(cls, model: ReflexivityModel, fear: np.ndarray) -> LenderView:
        """The view at the start of the lenders' phase, given their fear (`LenderSentiment.update`, per reserve)."""
        cfg = model.config.lenders
        pool = model.pool
        move = rate_chasing_move(
            pool.supply_rates(),
            model.outside_rates,
            cfg.rate_sensitivity,
            cfg.rate_gap_band,
            model.config.market.step_seconds,
        )
        return cls(panic=fear > cfg.panic_bad_debt_ratio, move=move)


def rate_chasing_move(
    supply_rate: np.ndarray, outside_rate: np.ndarray, sensitivity: float, band: float, step_seconds: float
) -> np.ndarray:
    """Share of their funds lenders move into (+) or out of (-) each reserve in one step of `step_seconds`.

    Rates are per year. Only the part of the gap |supply - outside| beyond `band` counts (moving funds has costs,
    so a gap within the band moves nothing), and `sensitivity` is the share moved per day per 1%/yr of that part.
    """
    moves = []
    # per reserve in Python floats (a few reserves: numpy's per-call cost would be most of the time); the same
    # IEEE operations as numpy's sign(gap) * maximum(|gap| - band, 0), then the same products left to right
    for supply, outside in zip(supply_rate.tolist(), outside_rate.tolist(), strict=True):
        gap = supply - outside
        beyond = ((gap > 0) - (gap < 0)) * max(abs(gap) - band, 0.0)
        moves.append(sensitivity * beyond * 100.0 * step_seconds / 86400.0)
    return np.array(moves)


def parity_supply(pool: LendingPool, outside_rate: np.ndarray) -> np.ndarray:
    """Supply (tokens per reserve) at which each reserve's supply rate equals the lenders' outside rate (per year),
    given its current borrows: borrows / U_p, where U_p solves supply_rate(U) = outside_rate. NaN where no such
    utilisation exists (an outside rate of 0, or above the rate at full utilisation)."""
    lo, hi = np.zeros_like(outside_rate), np.ones_like(outside_rate)
    for _ in range(60):  # bisection: the supply rate rises with utilisation
        mid = 0.5 * (lo + hi)
        rate = supply_rate(
            borrow_rate(mid, pool.base_rate, pool.slope1, pool.slope2, pool.optimal), mid, pool.reserve_factor
        )
        below = rate < outside_rate
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    reachable = (outside_rate > 0) & (hi < 1.0 - 1e-9)
    return np.where(reachable, pool.borrows / np.where(reachable, hi, 1.0), np.nan)
