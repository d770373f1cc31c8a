"""Attribute an account's loss of health to the sources of the price moves behind it (docs/model.md, 4 Contagion
and reflexivity measurement).

When an account is liquidated, the health it lost since its owner last set its position (the health the owner
chose) is split over the log price moves of its assets, weighted by how sensitive its health factor is to each
asset, and each move is split by source: exogenous (fundamental moves and scenario shocks), each earlier
liquidation's sale (its impact, decayed to now), and the rest (discretionary trading and the decay of older
impact). The window is the whole fall from the chosen health, not only the step that crossed 1: a sale that gave
the last push to an account the shock was taking down anyway did not cause the liquidation on its own (a
last-step window credited sales with 0.17-0.18 of `crash`'s liquidations, where taking the sales' impact out of
the prices spares only 0.10 of them; docs/model.md, 4 Contagion and reflexivity measurement).

Perpetual positions are attributed the same way (`AttributionLedger.record_perp`): their margin, written as a
lending account (`PerpVenue.lending_equivalent`), has a health factor below 1 exactly when the venue liquidates,
and its log moves are the mark's. The mark is the index (the spot oracle) times the mark's basis: the index part
splits as a lending account's oracle move does (fundamental, spot liquidation sales, other), and the basis part
carries the perp book's liquidation closes (their impact on the book price, decayed, times the share of the book's
basis move that reached the mark), the rest of it being other.

`health_sensitivity` and `attribute` are the pure formulas; `AttributionLedger` is the per-step bookkeeping the
model owns: when each account was last healthy and when its owner last changed it, the logs of liquidation sales'
impacts, event ids (one sequence for both venues), and the attribution of each liquidation as it happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from abm.lending.kernels import mark_positions
from abm.lending.margin import LiquidationPlan

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


def health_sensitivity(coll_usd: np.ndarray, debt_usd: np.ndarray, liquidation_threshold: np.ndarray) -> np.ndarray:
    """d log HF / d log p_k per asset for an account with collateral and debt values (USD) per asset.

    w_k = c_k LT_k / sum_i c_i LT_i - d_k / sum_j d_j: a long's collateral asset has w > 0 (a fall hurts),
    a short's borrowed asset has w < 0 (a rise hurts).
    """
    weighted = coll_usd * liquidation_threshold
    total_w = weighted.sum()
    total_d = debt_usd.sum()
    w = np.zeros_like(coll_usd, dtype=float)
    if total_w > 0:
        w += weighted / total_w
    if total_d > 0:
        w -= debt_usd / total_d
    return w


@dataclass(frozen=True)
class Attribution:
    """How an account's loss of health splits by source (loss units: log HF, positive = health lost).

    exogenous: the part from fundamental moves and shocks; other: discretionary trading and older impact;
    event_ids / event_losses: each earlier liquidation whose sale moved prices in the window, and its part.
    """

    exogenous: float
    other: float
    event_ids: np.ndarray
    event_losses: np.ndarray

    @property
    def by_event(self) -> dict[int, float]:
        """Loss caused by each earlier liquidation event (event id -> log HF)."""
        return dict(zip(self.event_ids.tolist(), self.event_losses.tolist(), strict=True))

    @property
    def endogenous_share(self) -> float:
        """Share of the (positive) loss caused by liquidation sales, in [0, 1]; 0 when nothing was lost."""
        liq = float(self.event_losses[self.event_losses > 0].sum())
        total = max(self.exogenous, 0.0) + max(self.other, 0.0) + liq
        return liq / total if total > 0 else 0.0

    def parents(self) -> dict[int, float]:
        """Earlier liquidation events that caused part of the loss, with their share of the liquidation part."""
        pos = self.event_losses > 0
        total = float(self.event_losses[pos].sum())
        if not total > 0:
            return {}
        return dict(zip(self.event_ids[pos].tolist(), (self.event_losses[pos] / total).tolist(), strict=True))


def attribute(
    sensitivity: np.ndarray,
    total_move: np.ndarray,
    exogenous_move: np.ndarray,
    event_moves: Mapping[int, np.ndarray] | tuple[np.ndarray, np.ndarray],
) -> Attribution:
    """Split the loss -sum_k w_k dlogp_k into exogenous, per-event (liquidation sales) and other parts.

    sensitivity: w per asset (see `health_sensitivity`). total_move / exogenous_move: log price change per asset
    over the window. event_moves: each event's decayed log impact per asset inside the window, as a mapping
    event id -> move, or as (event ids, moves) with one row of `moves` per event.
    """
    if isinstance(event_moves, Mapping):
        ids = np.fromiter(event_moves.keys(), dtype=np.int64, count=len(event_moves))
        moves = np.array(list(event_moves.values()), dtype=float).reshape(len(ids), len(total_move))
    else:
        ids, moves = event_moves
    liq_total = column_sums(moves)
    return Attribution(
        exogenous=float(-(sensitivity * exogenous_move).sum()),
        other=float(-(sensitivity * (total_move - exogenous_move - liq_total)).sum()),
        event_ids=ids,
        event_losses=-(moves @ sensitivity),
    )


def column_sums(x: np.ndarray) -> np.ndarray:
    """`x.sum(axis=0)` of a 2-d array bit for bit: numpy adds the rows one after another, with an inner loop over a
    row's few numbers; this adds each column's numbers in the same order as one long running sum (much faster for
    many rows)."""
    if len(x) == 0:
        return np.zeros(x.shape[1])
    return np.add.accumulate(x, axis=0)[-1]


class ImpactLog:
    """The market's liquidation impacts (event id, step, asset, dm) as growing arrays, so a liquidation's
    attribution window is a pair of binary searches and array slices."""

    def __init__(self) -> None:
        self.n = 0
        self.event = np.zeros(256, dtype=np.int64)
        self.step = np.zeros(256, dtype=np.int64)
        self.asset = np.zeros(256, dtype=np.int64)
        self.dm = np.zeros(256)
        # `decayed_moves` results by window start, for the rows logged, window end, to_step and decay they were
        # made with: within a step every liquidation's window ends at the same step and most start at one of a few
        self._moves_key: tuple[int, int, int, bytes] = (-1, -1, -1, b"")
        self._moves: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def sync(self, impacts: list[tuple[int, int, int, float]], through_step: int | None = None) -> None:
        """Append the impacts the market recorded since the last call; with `through_step`, only if some of them
        are of that step or earlier (impacts come in step order, so later ones cannot be in a window ending there,
        and appending them in one go at a later call costs less than one at a time)."""
        if len(impacts) == self.n or (through_step is not None and impacts[self.n][1] > through_step):
            return
        new = impacts[self.n :]
        end = len(impacts)
        if end > len(self.dm):
            size = max(end, 2 * len(self.dm))
            for name in ("event", "step", "asset", "dm"):
                old = getattr(self, name)
                grown = np.zeros(size, dtype=old.dtype)
                grown[: self.n] = old[: self.n]
                setattr(self, name, grown)
        columns = np.array(new, dtype=float).T
        self.event[self.n : end], self.step[self.n : end], self.asset[self.n : end] = columns[:3].astype(np.int64)
        self.dm[self.n : end] = columns[3]
        self.n = end

    def window(self, start: int, end: int) -> slice:
        """Rows of the impacts of steps start < step <= end."""
        steps = self.step[: self.n]
        return slice(int(steps.searchsorted(start, side="right")), int(steps.searchsorted(end, side="right")))

    def moves(self, start: int, end: int, decay: np.ndarray, to_step: int) -> tuple[np.ndarray, np.ndarray]:
        """(event ids, moves) of the impacts of steps start < step <= end: per event, the sum per asset of its
        trades' dm decay^(to_step - step), in log order. Read-only arrays, kept for the next call with the same
        arguments and rows logged (logged rows never change)."""
        key = (self.n, end, to_step, decay.tobytes())
        if key != self._moves_key:
            self._moves_key, self._moves = key, {}
        found = self._moves.get(start)
        if found is not None:
            return found
        rows = self.window(start, end)
        event, asset, step, dm = self.event[rows], self.asset[rows], self.step[rows], self.dm[rows]
        ids, row = np.unique(event, return_inverse=True)
        moves = np.zeros((len(ids), len(decay)))
        np.add.at(moves, (row, asset), dm * decay[asset] ** (to_step - step))
        ids.flags.writeable = moves.flags.writeable = False  # shared by every caller asking for these rows
        self._moves[start] = ids, moves
        return ids, moves


def decayed_moves(
    log: ImpactLog, decay: np.ndarray, start: int, end: int, to_step: int, exclude: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """(event ids, moves): the log impact per asset of each logged liquidation trade of steps start < step <= end
    (other than event `exclude`), each decayed to `to_step` at the per-step `decay` (per asset): dm decay^(to - s).
    The arrays may be shared with other callers: read-only."""
    ids, moves = log.moves(start, end, decay, to_step)
    at = int(ids.searchsorted(exclude))
    if at < len(ids) and ids[at] == exclude:  # each event's row is its own trades' sum: dropping it leaves the rest
        return np.delete(ids, at), np.delete(moves, at, axis=0)
    return ids, moves


def merge_moves(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One (event ids, moves) from several: an event found in more than one part gets the sum of its rows."""
    ids = np.concatenate([p[0] for p in parts])
    moves = np.concatenate([p[1] for p in parts])
    out_ids, row = np.unique(ids, return_inverse=True)
    out = np.zeros((len(out_ids), moves.shape[1]))
    np.add.at(out, row, moves)
    return out_ids, out


def basis_pass_through(log_prices_begin: np.ndarray, log_prices_end: np.ndarray, mark_is_book: bool) -> np.ndarray:
    """Per asset, the share phi in [0, 1] of the perp book's basis move that reached the mark between two margin
    passes; log prices are (3, assets) rows mark, book, index (`PerpVenue.pass_prices`).

    phi = 1 when the mark is the book price; for the median mark, phi = d log(mark / index) / d log(book / index)
    over the window, clipped to [0, 1], and 0 where the book's basis did not move (a book dislocation reaches the
    median mark through the moving basis, late and partly, or not at all while the mark sits on another leg)."""
    if mark_is_book:
        return np.ones(log_prices_end.shape[1])
    change = log_prices_end - log_prices_begin
    mark_basis, book_basis = change[0] - change[2], change[1] - change[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(book_basis != 0, mark_basis / np.where(book_basis != 0, book_basis, 1.0), 0.0)
    return np.clip(phi, 0.0, 1.0)


class AttributionLedger:
    """The model's liquidation bookkeeping: event ids, when each account was last healthy, the impact logs (spot
    market and perp books), and the attribution of each liquidation (lending, and perp through the venue's
    `on_liquidation` hook), handed to the step recorder as an event."""

    def __init__(self, model: ReflexivityModel) -> None:
        self.model = model
        self.last_healthy_step = np.zeros(model.engine.n, dtype=np.int64)
        # the health pass that first saw each account as its owner last set it, and the positions (collateral and
        # scaled debt tokens) the last pass saw; liquidations refresh their account's copy (not the owner's choice)
        self.position_step = np.zeros(model.engine.n, dtype=np.int64)
        self.pass_collateral = model.engine.collateral[: model.engine.n].copy()
        self.pass_scaled_debt = model.engine.scaled_debt[: model.engine.n].copy()
        self.impacts = ImpactLog()
        self.book_impacts = ImpactLog()  # the perp books' liquidation closes
        self.n_events = 0
        venue = model.perps
        if venue is not None:  # one id sequence for both venues; the venue reports each liquidation before closing
            venue.use_event_ids(self.next_event_id)
            venue.on_liquidation = self.record_perp

    def next_event_id(self) -> int:
        self.n_events += 1
        return self.n_events - 1

    def mark_health(self, health: np.ndarray, step: int) -> np.ndarray:
        """Note which accounts (all of them, in order, by health factor) are healthy (HF >= 1) at `step`, and which
        ones their owners changed since the last pass; new accounts start healthy, and set, now. Returns the
        accounts not healthy (a NaN health among them), ascending."""
        n = len(health)
        known = len(self.position_step)
        if len(self.last_healthy_step) < n:
            grown = np.full(n, step, dtype=np.int64)
            grown[: len(self.last_healthy_step)] = self.last_healthy_step
            self.last_healthy_step = grown
        if known < n:
            self.position_step = np.concatenate([self.position_step, np.full(n - known, step, dtype=np.int64)])
        engine = self.model.engine
        collateral, scaled_debt = engine.collateral[:n], engine.scaled_debt[:n]
        unhealthy = mark_positions(
            health,
            step,
            collateral,
            scaled_debt,
            self.pass_collateral,
            self.pass_scaled_debt,
            self.last_healthy_step,
            self.position_step,
        )
        if known < n:  # the copies grow with the book
            self.pass_collateral = collateral.copy()
            self.pass_scaled_debt = scaled_debt.copy()
        return unhealthy

    def record(self, event_id: int, acct: int, liquidator: int, plan: LiquidationPlan) -> None:
        """Attribute the liquidation `plan` of account `acct` (just executed) and record it as an event."""
        m = self.model
        oracle = m.oracle.prices
        # the account's exposure before this liquidation: add back what was just repaid and seized
        coll = m.engine.collateral[acct].copy()
        coll[plan.collateral_asset] += plan.seize
        debt = m.engine.debt_tokens(acct).copy()
        debt[plan.debt_asset] += plan.repay
        w = health_sensitivity(coll * oracle, debt * oracle, m.pool.liquidation_threshold)
        # health is measured at oracle prices, which show the market `lag` steps late: the window of market
        # moves behind the lost health runs from what the oracle showed when the owner last set the position to
        # what it shows now (sales not yet seen by the oracle cannot have caused this liquidation)
        lag = 1 + int(m.config.oracles.latency_steps)
        begin, end = max(int(self.position_step[acct]) - lag, 0), max(m.steps - lag, 0)
        total = m.history.log_market(end) - m.history.log_market(begin)
        exo = m.history.log_fundamental(end) - m.history.log_fundamental(begin)
        attribution = attribute(w, total, exo, self.event_moves(begin, end, exclude=event_id))
        owner = int(m.engine.owner[acct])
        distress_step = int(self.last_healthy_step[acct]) + 1
        m.recorder.add_event(event_id, acct, owner, liquidator, plan, attribution, distress_step)
        if acct < len(self.pass_collateral):  # the liquidation changed the position, its owner did not
            self.pass_collateral[acct] = m.engine.collateral[acct]
            self.pass_scaled_debt[acct] = m.engine.scaled_debt[acct]

    def event_moves(self, start: int, end: int, exclude: int) -> tuple[np.ndarray, np.ndarray]:
        """(event ids, moves): the log impact per asset of each liquidation sale of steps start < step <= end
        (other than event `exclude`), each decayed to `end` at the market's current per-step decay."""
        self.impacts.sync(self.model.market.liq_impacts, through_step=end)
        return decayed_moves(self.impacts, self.model.market.decay, start, end, end, exclude)

    def record_perp(self, event_id: int, acct: int, k: int, t: int) -> None:
        """Attribute the liquidation of perp position (acct, k), found below maintenance by the margin pass of step
        t and not yet closed, and record it as an event (the venue's `on_liquidation` hook).

        Window: from the pass of step b (the first to see the position as its owner last set it) to the pass of
        step t. Loss: the lost log
        health factor of `PerpVenue.lending_equivalent`, -sum_j w_j d log mark_j. d log mark = d log index +
        d log(mark / index): the index is the oracle, which shows the spot market `lag` steps late, so its part
        splits as a lending account's does (fundamental move and spot liquidation sales over the lagged window,
        steps b - lag .. t - lag); the basis part carries each perp book liquidation close of steps b .. t - 1 (the
        pass of step t read the mark before this step's closes), its impact decayed to t, times the book's
        pass-through to the mark (`basis_pass_through`). What is left is other."""
        m = self.model
        venue = m.perps
        assert venue is not None
        coll, debt, threshold = venue.lending_equivalent(acct, k)
        w = health_sensitivity(coll, debt, threshold)
        begin = int(venue.position_step[acct, k])
        prices_begin, prices_end = venue.pass_prices(begin), venue.pass_prices(t)
        total = prices_end[0] - prices_begin[0]
        lag = 1 + int(m.config.oracles.latency_steps)
        spot_begin, spot_end = max(begin - lag, 0), max(t - lag, 0)
        exo = m.history.log_fundamental(spot_end) - m.history.log_fundamental(spot_begin)
        spot = self.event_moves(spot_begin, spot_end, exclude=event_id)
        self.book_impacts.sync(venue.book.liq_impacts)
        book_ids, book_moves = decayed_moves(self.book_impacts, venue.book.decay, begin - 1, t - 1, t, event_id)
        book_moves = book_moves * basis_pass_through(prices_begin, prices_end, venue.config.mark_price == "book")
        attribution = attribute(w, total, exo, merge_moves(spot, (book_ids, book_moves)))
        m.recorder.add_perp_event(
            event_id,
            acct,
            int(venue.owner[acct]),
            k,
            attribution,
            distress_step=int(venue.last_healthy_step[acct, k]) + 1,
            hf_before=venue.margin_ratio(acct, k),
        )
