"""Attribute an account's loss of health to the sources of the price moves behind it (SPEC 4.2).

When an account is liquidated, the health it lost since it was last healthy is split over the log price moves of
its assets, weighted by how sensitive its health factor is to each asset, and each move is split by source:
exogenous (fundamental moves and scenario shocks), each earlier liquidation's sale (its impact, decayed to now),
and the rest (discretionary trading and the decay of older impact). Pure functions: the model calls them.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field

import numpy as np


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


@dataclass
class Attribution:
    """How an account's loss of health splits by source (loss units: log HF, positive = health lost)."""

    exogenous: float
    other: float
    by_event: dict[int, float] = field(default_factory=dict)

    @property
    def endogenous_share(self) -> float:
        """Share of the (positive) loss caused by liquidation sales, in [0, 1]; 0 when nothing was lost."""
        liq = sum(max(v, 0.0) for v in self.by_event.values())
        total = max(self.exogenous, 0.0) + max(self.other, 0.0) + liq
        return liq / total if total > 0 else 0.0

    def parents(self) -> dict[int, float]:
        """Earlier liquidation events that caused part of the loss, with their share of the liquidation part."""
        pos = {e: v for e, v in self.by_event.items() if v > 0}
        total = sum(pos.values())
        return {e: v / total for e, v in pos.items()} if total > 0 else {}


class EventLosses(Mapping[int, float]):
    """`Attribution.by_event` kept as two arrays: event ids (in the order the window first saw them) and their
    losses. Reading it as a mapping works as with the dict; the dict itself is built only when a reader asks."""

    __slots__ = ("_dict", "ids", "losses")

    def __init__(self, ids: np.ndarray, losses: np.ndarray) -> None:
        self.ids = ids
        self.losses = losses
        self._dict: dict[int, float] | None = None

    def as_dict(self) -> dict[int, float]:
        if self._dict is None:
            self._dict = dict(zip(self.ids.tolist(), self.losses.tolist(), strict=True))
        return self._dict

    def __getitem__(self, event: int) -> float:
        return self.as_dict()[event]

    def __iter__(self) -> Iterator[int]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.ids)

    def items(self) -> ItemsView[int, float]:
        return self.as_dict().items()

    def values(self) -> ValuesView[float]:
        return self.as_dict().values()


class WindowAttribution(Attribution):
    """An `Attribution` whose `by_event` is an `EventLosses` (what the model builds for a liquidation's window):
    `endogenous_share` and `parents` are computed from its arrays, a window of thousands of events at C speed. They are Attribution's own formulas on the same
    floats in the same order, summed by Python's `sum` as there; only terms that are exactly zero there are left
    out (max(v, 0.0) of a v <= 0), which changes no sum. So the values are identical."""

    by_event: EventLosses  # type: ignore[assignment]

    @property
    def endogenous_share(self) -> float:
        losses = self.by_event.losses
        liq = sum(losses[~(losses <= 0.0)].tolist())  # v > 0 (and NaN, as max(v, 0.0) keeps it)
        total = max(self.exogenous, 0.0) + max(self.other, 0.0) + liq
        return liq / total if total > 0 else 0.0

    def parents(self) -> dict[int, float]:
        losses = self.by_event.losses
        pos = losses > 0
        values = losses[pos]
        total = sum(values.tolist())
        if not total > 0:
            return {}
        return dict(zip(self.by_event.ids[pos].tolist(), (values / total).tolist(), strict=True))


def attribute(
    sensitivity: np.ndarray,
    total_move: np.ndarray,
    exogenous_move: np.ndarray,
    event_moves: dict[int, np.ndarray],
) -> Attribution:
    """Split the loss -sum_k w_k dlogp_k into exogenous, per-event (liquidation sales) and other parts.

    sensitivity: w per asset (see `health_sensitivity`). total_move / exogenous_move: log price change per asset
    over the window. event_moves: event id -> its decayed log impact per asset inside the window.
    """
    liq_total = np.zeros_like(total_move)
    by_event: dict[int, float] = {}
    for event, move in event_moves.items():
        liq_total += move
        by_event[event] = float(-(sensitivity * move).sum())
    exo = float(-(sensitivity * exogenous_move).sum())
    other = float(-(sensitivity * (total_move - exogenous_move - liq_total)).sum())
    return Attribution(exogenous=exo, other=other, by_event=by_event)
