"""Drawing the population at scale: shared per-combination values and the assets' draw give what their
definitions say, row for row."""

from __future__ import annotations

import numpy as np
import pytest

from abm.agents.population import draw_assets, per_combination


@pytest.mark.parametrize("spread", [3, 10**6])  # few possible keys (counted) / far more keys than rows (sorted)
def test_per_combination_computes_each_key_once_at_its_first_row(spread: int) -> None:
    rng = np.random.default_rng(1)
    keys = np.column_stack([rng.integers(0, 2, 500), rng.choice([0, spread], 500), rng.integers(1, 4, 500)])
    calls: list[int] = []

    def value(i: int) -> float:
        calls.append(i)
        return float(keys[i] @ [1.0, 0.5, 0.25])

    out = per_combination(value, keys)
    np.testing.assert_array_equal(out, keys @ [1.0, 0.5, 0.25])  # every row gets its own key's value
    distinct, first = np.unique(keys, axis=0, return_index=True)
    assert sorted(calls) == sorted(first.tolist())  # once per key, at the first row that has it
    assert len(calls) == len(distinct)


@pytest.mark.parametrize("per_trader", [1, 2])
def test_draw_assets_is_the_start_of_a_random_permutation(per_trader: int) -> None:
    keys = np.random.default_rng(4).random((1000, 3))
    expected = np.sort(np.argsort(keys, axis=1, kind="stable")[:, :per_trader], axis=1) + 1
    np.testing.assert_array_equal(draw_assets(1000, 3, per_trader, np.random.default_rng(4)), expected)
