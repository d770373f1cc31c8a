"""The compiled passes over the account book (abm.lending.kernels) compute what the numpy formulas compute, bit for
bit, on books with empty, debt-free, long, short and mixed accounts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from abm.agents.book import RISK_CODE, _wake_alerted
from abm.agents.decisions import past_drawdown
from abm.lending.kernels import (
    account_equities,
    account_values,
    book_totals,
    finite_percentiles_histogram,
    health_factors,
    insolvent_rows,
    liquidation_plans,
    mark_positions,
    owner_equities,
    owner_minimum,
)
from abm.numerics import row_sums
from abm.protocol import health_factor


def random_book(n_accounts: int, n_assets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Collateral and scaled debt (tokens) with a share of empty rows, debt-free rows and zero entries."""
    rng = np.random.default_rng(seed)
    collateral = rng.lognormal(2.0, 2.0, (n_accounts, n_assets)) * (rng.random((n_accounts, n_assets)) < 0.6)
    scaled_debt = rng.lognormal(3.0, 2.0, (n_accounts, n_assets)) * (rng.random((n_accounts, n_assets)) < 0.4)
    scaled_debt[rng.random(n_accounts) < 0.2] = 0.0
    collateral[rng.random(n_accounts) < 0.05] = 0.0
    return collateral, scaled_debt


@pytest.mark.parametrize(("n_assets", "seed"), [(1, 0), (3, 1), (3, 2), (9, 3)])
def test_health_factors_equal_the_protocol_formula_along_every_path(n_assets: int, seed: int) -> None:
    collateral, scaled_debt = random_book(500, n_assets, seed)
    rng = np.random.default_rng(seed + 10)
    lt = rng.uniform(0.5, 0.95, n_assets)
    lt[0] = 0.0  # an asset that is not collateral
    paths = rng.lognormal(0.0, 1.0, (4, n_assets))
    borrow_index = rng.uniform(1.0, 1.2, n_assets)
    hf = health_factors(collateral, scaled_debt, lt, paths, borrow_index * paths)
    assert hf.shape == (4, 500)
    for k, prices in enumerate(paths):
        coll_usd = collateral * prices
        debt_usd = row_sums(scaled_debt * (borrow_index * prices))
        assert np.array_equal(hf[k], health_factor(coll_usd, lt, debt_usd, check=False))
    assert np.isinf(hf[:, ~scaled_debt.any(axis=1)]).all()


def test_account_values_and_equities_are_the_row_sums_of_the_usd_values() -> None:
    collateral, scaled_debt = random_book(300, 3, 5)
    prices, debt_prices = np.array([1.0, 3012.5, 61000.25]), np.array([1.01, 3050.75, 61100.5])
    coll, debt = account_values(collateral, scaled_debt, prices, debt_prices)
    assert np.array_equal(coll, row_sums(collateral * prices))
    assert np.array_equal(debt, row_sums(scaled_debt * debt_prices))
    equity = account_equities(collateral, scaled_debt, prices, debt_prices)
    assert np.array_equal(equity, row_sums(collateral * prices - scaled_debt * debt_prices))


@pytest.mark.parametrize("n_assets", [2, 3, 5])  # the usual three assets take a loop of their own
def test_owner_equities_add_each_owners_accounts_in_order_as_bincount_does(n_assets: int) -> None:
    collateral, scaled_debt = random_book(400, n_assets, 8)
    prices = np.array([1.0, 2950.5, 60500.75, 151.25, 0.5])[:n_assets]
    debt_prices = np.array([1.02, 3000.25, 60900.5, 152.0, 0.51])[:n_assets]
    owners = np.sort(np.random.default_rng(8).integers(0, 90, 400))  # owners 80..89 are beyond the range asked for
    equity = account_equities(collateral, scaled_debt, prices, debt_prices)
    expected = np.bincount(owners, weights=equity, minlength=80)[:80]
    assert np.array_equal(owner_equities(owners, collateral, scaled_debt, prices, debt_prices, 80), expected)
    assert (expected[np.setdiff1d(np.arange(80), owners)] == 0.0).all()  # an owner without accounts has 0


@pytest.mark.parametrize("n_assets", [2, 3, 5])  # the usual three assets take a loop of their own
def test_insolvent_rows_are_the_indebted_accounts_with_collateral_under_the_dust_line(n_assets: int) -> None:
    collateral, scaled_debt = random_book(500, n_assets, 9)
    prices = np.array([1.0, 3100.0, 62000.0, 150.0, 0.5])[:n_assets]
    debt_prices = np.array([1.01, 3120.0, 62100.0, 151.0, 0.52])[:n_assets]
    coll, debt = row_sums(collateral * prices), row_sums(scaled_debt * debt_prices)
    for dust in (0.0, 1.0, 1e4):
        expected = np.flatnonzero((debt > 0) & (coll < dust))
        found = insolvent_rows(collateral, scaled_debt, prices, debt_prices, dust)
        assert found.dtype == np.int64 and np.array_equal(found, expected)
    assert len(insolvent_rows(collateral, scaled_debt, prices, debt_prices, 1e4)) > 0  # the case is exercised


def test_wake_alerted_is_the_numpy_rules_for_peaks_stops_and_prudent_buffers() -> None:
    """Peaks rise to the equity (NaN wins, as np.maximum), prudent traders under their buffer and stop-losses past
    their drawdown are woken at step + delay unless their clock fires sooner (np.minimum), others are untouched."""
    rng = np.random.default_rng(12)
    n, step, buffer, drawdown = 600, 50, 1.2, 0.3
    risk = rng.integers(0, len(RISK_CODE), n)
    worst_hf = rng.lognormal(0.3, 0.4, n)
    peak = rng.lognormal(10.0, 1.0, n)
    equity = peak * rng.uniform(0.4, 1.3, n)
    equity[[5, 77]] = np.nan
    next_decision = step + rng.exponential(30.0, n)
    delay = rng.lognormal(1.0, 0.5, n)
    expected_peak = np.maximum(peak, equity)
    alerted = ((risk == RISK_CODE["prudent"]) & (worst_hf < buffer)) | (
        (risk == RISK_CODE["stop_loss"]) & past_drawdown(equity, expected_peak, drawdown)
    )
    expected_next = np.minimum(next_decision, np.where(alerted, step + delay, np.inf))
    got_peak, got_next = peak.copy(), next_decision.copy()
    count = _wake_alerted(
        worst_hf,
        equity,
        risk,
        RISK_CODE["prudent"],
        RISK_CODE["stop_loss"],
        buffer,
        drawdown,
        got_peak,
        got_next,
        delay,
        step,
    )
    assert count == alerted.sum() > 0
    assert np.array_equal(got_peak, expected_peak, equal_nan=True)
    assert np.array_equal(got_next, expected_next)
    assert (got_next < next_decision).any() and (got_next == next_decision).any()


def test_mark_positions_is_the_numpy_bookkeeping_of_a_health_pass() -> None:
    collateral, scaled_debt = random_book(200, 3, 7)
    pass_collateral, pass_scaled_debt = collateral[:150].copy(), scaled_debt[:150].copy()
    collateral[[3, 40, 149], 1] += 1e-12 * collateral[[3, 40, 149], 1] + 1e-300  # the smallest changes count
    scaled_debt[[7, 40], 2] = 2.5
    collateral[199] += 1.0  # beyond the rows compared
    collateral[60, 0] = pass_collateral[60, 0] = np.nan  # NaN differs from itself: always copied again
    pass_scaled_debt[90, 0] = -0.0 if scaled_debt[90, 0] == 0.0 else scaled_debt[90, 0]  # -0.0 equals 0.0
    health = np.random.default_rng(8).uniform(0.6, 1.6, 200)
    health[[0, 1, 2]] = np.nan, 1.0, np.nextafter(1.0, 0.0)  # a NaN health is not healthy; HF 1 is
    healthy = health >= 1.0
    last_healthy, position = np.arange(200), np.arange(200) % 13
    # the numpy formulas
    changed = (collateral[:150] != pass_collateral).any(axis=1) | (scaled_debt[:150] != pass_scaled_debt).any(axis=1)
    assert np.flatnonzero(changed).tolist() == [3, 7, 40, 60, 149]
    expected_healthy, expected_position = last_healthy.copy(), position.copy()
    expected_healthy[healthy] = 41
    expected_position[:150][changed] = 41
    expected_collateral, expected_debt = pass_collateral.copy(), pass_scaled_debt.copy()
    expected_collateral[changed], expected_debt[changed] = collateral[:150][changed], scaled_debt[:150][changed]
    unhealthy = mark_positions(
        health, 41, collateral, scaled_debt, pass_collateral, pass_scaled_debt, last_healthy, position
    )
    assert unhealthy.tolist() == np.flatnonzero(~healthy).tolist() and unhealthy[:2].tolist() == [0, 2]
    assert np.array_equal(last_healthy, expected_healthy) and np.array_equal(position, expected_position)
    assert np.array_equal(pass_collateral, expected_collateral, equal_nan=True)
    assert np.array_equal(pass_scaled_debt.view(np.int64), expected_debt.view(np.int64))  # -0.0 kept: not changed


@pytest.mark.parametrize("n_accounts", [0, 1, 2, 5, 300])
def test_book_totals_owners_in_use_are_numpys_bincount_of_the_rows_in_use(n_accounts: int) -> None:
    collateral, scaled_debt = random_book(n_accounts, 3, n_accounts)
    if n_accounts:
        collateral[0, 1] = np.nan  # NaN counts as held
    owners = np.random.default_rng(4).integers(0, 60, n_accounts)  # 50..59 beyond the range asked for: left out
    in_use = (collateral != 0).any(axis=1) | (scaled_debt != 0).any(axis=1)
    expected = np.bincount(owners[in_use & (owners < 50)], minlength=50) > 0
    prices = np.ones(3)
    assert np.array_equal(book_totals(collateral, scaled_debt, prices, prices, owners, 50)[2], expected)


@pytest.mark.parametrize(
    "n_accounts", [0, 1, 2, 3, 42, 43, 44, 2730, 2731, 2732, 33334, 100_003, 1_000_000]
)  # around numpy's pairwise blocks (< 8, 128) and its old 8192-number buffer, flattened (n x 3)
def test_book_totals_are_numpys_sums_of_the_usd_values_bit_for_bit(n_accounts: int) -> None:
    collateral, scaled_debt = random_book(n_accounts, 3, n_accounts % 1000)
    prices, borrow_index = np.array([1.0, 3012.5, 61000.25]), np.array([1.01, 1.0125, 1.003])
    owners = np.zeros(n_accounts, dtype=np.int64)
    coll, debt, _ = book_totals(collateral, scaled_debt, prices, borrow_index * prices, owners, 1)
    assert coll == float((collateral * prices).sum())
    assert debt == float((scaled_debt * (borrow_index * prices)).sum())


@pytest.mark.parametrize("n_assets", [1, 2, 4, 9])
def test_book_totals_follow_the_flattened_order_with_any_number_of_assets(n_assets: int) -> None:
    rng = np.random.default_rng(n_assets)
    prices, debt_prices = rng.lognormal(0.0, 2.0, n_assets), rng.lognormal(0.0, 2.0, n_assets)
    for n_accounts in (1, 7, 40, 1000, 20_011):
        collateral, scaled_debt = random_book(n_accounts, n_assets, n_accounts)
        owners = np.zeros(n_accounts, dtype=np.int64)
        coll, debt, _ = book_totals(collateral, scaled_debt, prices, debt_prices, owners, 1)
        assert (coll, debt) == (float((collateral * prices).sum()), float((scaled_debt * debt_prices).sum()))
    empty = book_totals(
        np.full((9, n_assets), -0.0), np.zeros((9, n_assets)), prices, debt_prices, np.zeros(9, np.int64), 1
    )
    assert empty[:2] == (0.0, 0.0) and not empty[2][0]  # -0.0 is no collateral held


HF_BINS = np.concatenate([[0.0], np.geomspace(0.5, 5.0, 24), [np.inf]])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 10, 11, 101, 1000, 1001, 50_000])
def test_finite_percentiles_and_histogram_are_numpys_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    deciles = np.array([10.0, 50.0, 90.0])
    books = [
        rng.lognormal(0.3, 1.0, n),  # health factors
        np.where(rng.random(n) < 0.3, np.inf, rng.lognormal(0.3, 1.0, n)),  # accounts without debt
        np.full(n, np.inf),  # no debt anywhere
        np.round(rng.lognormal(0.3, 1.0, n), 1),  # ties, and values on the bin edges
        np.where(rng.random(n) < 0.2, np.nan, rng.normal(1.0, 2.0, n)),  # NaN, negative values, zeros of each sign
        rng.integers(0, 3, n) * 1.0 - 0.0 * rng.integers(0, 2, n),
        np.full(n, 1.2726093),  # one value
        np.concatenate([np.full(n - n // 10, 1.5), rng.lognormal(0.0, 30.0, n // 10)]),  # a spike and huge spreads
    ]
    # and percentiles in any order, repeated, next to each other (order statistics in the same bucket)
    for values, q in itertools.product(books, (deciles, np.array([90.0, 10.0, 50.0, 50.1, 0.0, 100.0, 10.0, 49.9]))):
        finite = values[np.isfinite(values)]
        percentiles, histogram = finite_percentiles_histogram(values, q, HF_BINS)
        expected = np.percentile(finite, q) if len(finite) else np.full(len(q), np.nan)
        assert np.array_equal(percentiles, expected, equal_nan=True)
        assert np.array_equal(histogram, np.histogram(finite, bins=HF_BINS)[0])


def test_finite_histogram_closes_only_the_last_bin_and_leaves_out_values_outside() -> None:
    values = np.array([-1.0, 0.0, 1.0, 1.5, 2.0, 3.0, 3.5, np.inf, np.nan])
    bins = np.array([0.0, 1.0, 2.0, 3.0])
    percentiles, histogram = finite_percentiles_histogram(values, np.array([0.0, 100.0]), bins)
    assert histogram.tolist() == [1, 2, 2]  # [0, 1), [1, 2), [2, 3]: -1 and 3.5 are outside
    assert percentiles.tolist() == [-1.0, 3.5]


def test_owner_minimum_is_numpys_minimum_at_per_owner_nan_included() -> None:
    rng = np.random.default_rng(11)
    values = rng.lognormal(0.0, 1.0, 400)
    values[rng.random(400) < 0.1] = np.inf
    values[[17, 230]] = np.nan
    owners = rng.integers(0, 60, 400)  # owners 50..59 are beyond the range asked for: left out
    expected = np.full(50, np.inf)
    kept = owners < 50
    with np.errstate(invalid="ignore"):  # the NaNs
        np.minimum.at(expected, owners[kept], values[kept])
    assert np.array_equal(owner_minimum(values, owners, 50), expected, equal_nan=True)


def test_each_kernel_keeps_one_compiled_signature_whatever_the_book() -> None:
    """numba's on-disk cache numbers a function's specialisations as processes add them; two test or sweep workers
    adding different ones at once could cross them, so the kernels are never specialised per call."""
    for n_assets in (1, 3, 4, 9):
        collateral, scaled_debt = random_book(20, n_assets, n_assets)
        prices = np.ones((2, n_assets))
        health_factors(collateral, scaled_debt, np.full(n_assets, 0.8), prices, prices)
        account_values(collateral, scaled_debt, prices[0], prices[0])
        owner_equities(np.zeros(20, dtype=np.int64), collateral, scaled_debt, prices[0], prices[0], 1)
        insolvent_rows(collateral, scaled_debt, prices[0], prices[0], 1.0)
        ones, accounts, health = np.ones(n_assets), np.arange(20), np.full(20, 0.5)
        liquidation_plans(collateral, scaled_debt, accounts, ones, prices[0], ones, ones * 0.05, health, 0.5, 0.95)
    assert len(health_factors.signatures) == 1
    assert len(liquidation_plans.signatures) == 1
    assert len(account_values.signatures) == 1
    assert len(owner_equities.signatures) == 1
    assert len(insolvent_rows.signatures) == 1
