"""The hot paths' shortcuts compute exactly what the general functions compute (bit for bit)."""

from __future__ import annotations

import numpy as np

from abm.protocol import borrow_rate, supply_rate, utilisation
from abm.recording.recorder import sorted_percentiles


def test_sorted_percentiles_equal_numpys_linear_percentiles_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    for n in [1, 2, 3, 4, 9, 10, 11, 20, 101, 1000, 1001]:
        for values in (rng.lognormal(0.0, 1.0, n), rng.integers(0, 3, n).astype(float)):
            x = np.sort(values)
            expected = np.percentile(x, [10, 50, 90])
            assert sorted_percentiles(x, (10, 50, 90)) == [float(v) for v in expected]


def test_unchecked_rate_formulas_equal_the_checked_ones() -> None:
    cash, borrows = np.array([3.0e6, 0.0, 120.5]), np.array([1.0e6, 0.0, 80.25])
    base, s1, s2, opt = np.array([0.0, 0.01, 0.0]), np.array([0.04, 0.07, 0.03]), np.array([0.6, 3.0, 0.8]), 0.8
    u = utilisation(cash, borrows)
    assert np.array_equal(u, utilisation(cash, borrows, check=False))
    br = borrow_rate(u, base, s1, s2, np.full(3, opt))
    assert np.array_equal(br, borrow_rate(u, base, s1, s2, np.full(3, opt), check=False))
    rf = np.array([0.1, 0.2, 0.15])
    assert np.array_equal(supply_rate(br, u, rf), supply_rate(br, u, rf, check=False))


def test_owner_index_finds_what_a_scan_finds_and_follows_new_accounts() -> None:
    from abm.agents.book import OwnerIndex

    rng = np.random.default_rng(3)
    owners = rng.integers(0, 40, 500)
    index = OwnerIndex()
    for owner in range(-1, 42):
        assert np.array_equal(index.of(owners, owner), np.flatnonzero(owners == owner))
    owners = np.concatenate([owners, [41, 3]])  # accounts opened later
    assert np.array_equal(index.of(owners, 41), np.flatnonzero(owners == 41))
    assert np.array_equal(index.of(owners, 3), np.flatnonzero(owners == 3))


def test_left_sum_is_numpys_sum_below_eight_numbers() -> None:
    from abm.numerics import SEQUENTIAL_SUM_MAX, left_sum

    rng = np.random.default_rng(5)
    for k in range(1, SEQUENTIAL_SUM_MAX):
        for _ in range(300):
            x = rng.lognormal(0.0, 3.0, k) * rng.choice([-1.0, 1.0], k)
            assert left_sum(x.tolist()) == float(np.sum(x))
