"""The attribution's window of liquidation impacts (abm.recording.attribution): `decayed_moves` against the sums
written out by hand on a log with an event that traded in several steps (an auction's lots), windows asked for
again (kept results) and with an event left out; `column_sums` against numpy's own sum over rows, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from abm.recording.attribution import ImpactLog, column_sums, decayed_moves

DECAY = np.array([1.0, 0.9, 0.5])  # per step, per asset (USD never trades)
# (event id, step, asset, dm): event 7 is an auction selling asset 1 at steps 1, 2 and 4 and asset 2 at step 2;
# events 3 and 5 are one-trade liquidations (ids need not follow the log's order)
IMPACTS = [(7, 1, 1, -0.02), (3, 2, 2, -0.01), (7, 2, 1, -0.03), (7, 2, 2, -0.04), (5, 3, 1, -0.05), (7, 4, 1, -0.06)]


def by_hand(start: int, end: int, to_step: int, exclude: int = -1) -> dict[int, list[float]]:
    """Per event, dm decay^(to_step - step) summed per asset over the trades of steps start < step <= end."""
    out: dict[int, list[float]] = {}
    for event, step, asset, dm in IMPACTS:
        if start < step <= end and event != exclude:
            row = out.setdefault(event, [0.0, 0.0, 0.0])
            row[asset] += dm * DECAY[asset] ** (to_step - step)
    return out


@pytest.mark.parametrize(("start", "end", "exclude"), [(0, 4, -1), (1, 4, -1), (0, 4, 7), (2, 3, 5), (0, 2, 7)])
def test_decayed_moves_are_the_sums_by_hand(start: int, end: int, exclude: int) -> None:
    log = ImpactLog()
    log.sync(IMPACTS)
    expected = by_hand(start, end, to_step=5, exclude=exclude)
    for _ in range(2):  # the second call gets the kept result (less the excluded event)
        ids, moves = decayed_moves(log, DECAY, start, end, 5, exclude)
        assert ids.tolist() == sorted(expected)
        want = np.array([expected[e] for e in sorted(expected)]).reshape(-1, 3)
        np.testing.assert_allclose(moves, want, rtol=1e-14, atol=0)
    # the kept result is not changed by a call that leaves an event out, and cannot be changed by a caller
    ids, moves = decayed_moves(log, DECAY, start, end, 5)
    assert ids.tolist() == sorted(by_hand(start, end, to_step=5))
    with pytest.raises(ValueError):
        moves[...] = 0.0


def test_sync_through_a_step_waits_for_rows_a_window_can_reach() -> None:
    log = ImpactLog()
    log.sync(IMPACTS[:4], through_step=1)
    assert log.n == 4  # the first new row is of step 1: everything new is appended
    log.sync(IMPACTS, through_step=2)
    assert log.n == 4  # the new rows are of steps 3 and 4: not yet
    log.sync(IMPACTS, through_step=3)
    assert log.n == len(IMPACTS)
    assert decayed_moves(log, DECAY, 0, 4, 5)[0].tolist() == [3, 5, 7]


@pytest.mark.parametrize("rows", [0, 1, 2, 7, 8, 9, 100, 1000])
def test_column_sums_are_numpys_sum_over_rows_bit_for_bit(rows: int) -> None:
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 3)) * 10.0 ** rng.integers(-12, 12, size=(rows, 3))
    assert column_sums(x).tobytes() == x.sum(axis=0).tobytes()
