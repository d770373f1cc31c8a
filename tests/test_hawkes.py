"""Hawkes check: the estimators recover a known branching ratio on simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from abm.contagion.hawkes import (
    branching_ratio_counts,
    fit_discrete_hawkes,
    fit_exponential_hawkes,
    fit_hawkes_exogenous,
    hawkes_log_likelihood,
    jitter_steps,
    lagged_covariates,
    simulate_discrete_hawkes,
    simulate_hawkes,
    step_counts,
    window_counts,
)


@pytest.mark.parametrize("n", [0.3, 0.7])
def test_count_variance_estimator_recovers_branching_ratio(n: float) -> None:
    rng = np.random.default_rng(20240312)
    horizon = 20_000.0
    times = simulate_hawkes(1.0, n, 1.0, horizon, rng)
    # mean rate mu / (1 - n)
    assert len(times) / horizon == pytest.approx(1.0 / (1.0 - n), rel=0.06)
    est = branching_ratio_counts(times, window=50.0, t_start=0.0, t_end=horizon)
    assert est == pytest.approx(n, abs=0.06)


@pytest.mark.parametrize("n", [0.3, 0.7])
def test_mle_recovers_parameters(n: float) -> None:
    rng = np.random.default_rng(7)
    horizon = 2000.0
    times = simulate_hawkes(0.5, n, 2.0, horizon, rng)
    fit = fit_exponential_hawkes(times, horizon)
    assert fit.success
    assert fit.n == pytest.approx(n, abs=0.06)
    assert fit.mu == pytest.approx(0.5, rel=0.15)
    assert fit.beta == pytest.approx(2.0, rel=0.25)
    # the fit is a maximum: moving n either way lowers the likelihood
    for dn in (-0.05, 0.05):
        assert hawkes_log_likelihood(times, horizon, fit.mu, fit.n + dn, fit.beta) < fit.log_likelihood


def test_poisson_gives_zero() -> None:
    rng = np.random.default_rng(1)
    times = np.sort(rng.random(20_000) * 10_000.0)
    assert branching_ratio_counts(times, 50.0, 0.0, 10_000.0) < 0.05
    # the MLE can mistake slow rate fluctuations for a slow kernel (small positive bias), but stays small
    assert fit_exponential_hawkes(times[:1000], float(times[999]) + 1e-9).n < 0.15


def test_simulation_is_seeded_and_stationary() -> None:
    a = simulate_hawkes(1.0, 0.5, 1.0, 500.0, np.random.default_rng(5))
    b = simulate_hawkes(1.0, 0.5, 1.0, 500.0, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(a) >= 0) and a.min() >= 0 and a.max() < 500.0
    # burn-in: the first and second halves have similar rates
    first, second = (a < 250).sum(), (a >= 250).sum()
    assert abs(first - second) < 0.25 * len(a)


def test_log_likelihood_matches_direct_sum() -> None:
    rng = np.random.default_rng(2)
    t = np.sort(rng.random(200) * 50.0)
    mu, n, beta, horizon = 1.5, 0.4, 3.0, 50.0
    lam = [mu + n * beta * np.exp(-beta * (t[i] - t[:i])).sum() for i in range(len(t))]
    direct = np.log(lam).sum() - mu * horizon - n * (1 - np.exp(-beta * (horizon - t))).sum()
    assert hawkes_log_likelihood(t, horizon, mu, n, beta) == pytest.approx(direct, rel=1e-10)


def test_window_counts_and_jitter() -> None:
    counts = window_counts(np.array([0.5, 1.5, 1.6, 9.9]), 2.0, 0.0, 10.0)
    np.testing.assert_array_equal(counts, [3, 0, 0, 0, 1])
    j = jitter_steps(np.array([3, 1, 1]), np.random.default_rng(0))
    assert np.all(np.diff(j) >= 0)
    assert np.all((j >= 1) & (j < 4))
    assert np.isnan(branching_ratio_counts(np.array([]), 10.0))


def test_a_burst_of_exogenous_events_inflates_n_unless_the_baseline_knows_it() -> None:
    # n = 0.3 with a baseline that jumps 20-fold for a while (a scripted shock): the stationary estimators read
    # the burst as self-excitation; a fit with one baseline per regime recovers n
    rng = np.random.default_rng(11)
    horizon, breaks = 1500.0, [500.0, 650.0]
    times = simulate_hawkes([0.3, 6.0, 0.3], 0.3, 2.0, horizon, rng, breaks=breaks)
    naive = fit_exponential_hawkes(times, horizon)
    aware = fit_exponential_hawkes(times, horizon, breaks=breaks)
    assert naive.n > 0.5
    assert branching_ratio_counts(times, 50.0, 0.0, horizon) > 0.5
    assert aware.n == pytest.approx(0.3, abs=0.08)
    assert aware.log_likelihood > naive.log_likelihood


def test_discrete_hawkes_on_binned_events() -> None:
    # a continuous Hawkes with a mean delay of 4 steps, counted per step: excitation acts across steps
    times = simulate_hawkes(0.3, 0.5, 0.25, 2000.0, np.random.default_rng(4))
    fit = fit_discrete_hawkes(step_counts(np.floor(times), 2000), q_grid=16)
    assert fit.n == pytest.approx(0.5, abs=0.08)
    assert fit.beta == pytest.approx(0.25, rel=0.4)
    # a same-step batch is a common cause, not excitation: batches at random steps give a small n (a slow
    # kernel partly mimics their overdispersion), where the jittered continuous fit reads them as near-critical
    rng = np.random.default_rng(5)
    batches = np.zeros(2000)
    batches[rng.choice(2000, 40, replace=False)] = rng.integers(5, 30, 40)
    assert fit_discrete_hawkes(batches, q_grid=16).n < 0.25
    steps = np.repeat(np.arange(2000.0), batches.astype(int))
    assert fit_exponential_hawkes(jitter_steps(steps, rng), 2000.0).n > 0.8


# --- discrete-time Hawkes with an exogenous (covariate-driven) baseline ------------------------------------------


def crash_driver(horizon: int = 3000, starts: tuple[int, ...] = (500, 1400, 2300)) -> np.ndarray:
    """An exogenous driver shaped like scripted crashes: zero, with a 30-step triangle at each start (units:
    arbitrary, >= 0)."""
    x = np.zeros(horizon)
    for start in starts:
        x[start : start + 30] = np.concatenate([np.arange(1, 16), np.arange(15, 0, -1)])
    return x


@pytest.mark.parametrize(("n", "seed"), [(0.3, 1), (0.3, 2), (0.6, 3)])
def test_exogenous_baseline_recovers_n_that_a_constant_baseline_overstates(n: float, seed: int) -> None:
    # immigrants at 0.05 per step plus crashes that bring ~1,400 more: a constant baseline must read the crashes'
    # clusters as self-excitation; a baseline that follows the driver recovers n
    x = crash_driver()
    counts = simulate_discrete_hawkes(0.05 + 2.0 * x, n, 0.5, np.random.default_rng(seed))
    constant = fit_hawkes_exogenous(counts)
    exogenous = fit_hawkes_exogenous(counts, x[:, None], ["crash"])
    assert constant.n > 0.9
    assert exogenous.n == pytest.approx(n, abs=0.08)
    assert exogenous.coefficients[0] == pytest.approx(2.0, rel=0.25)
    assert exogenous.intercept == pytest.approx(0.05, rel=0.5)
    assert exogenous.mean_delay_steps == pytest.approx(2.0, rel=0.3)
    assert exogenous.log_likelihood > constant.log_likelihood
    # the fitted baseline accounts for the immigrants: expected immigrants ~ events x (1 - n)
    assert exogenous.expected_exogenous == pytest.approx(counts.sum() * (1 - exogenous.n), rel=0.05)


def test_extra_lags_of_the_driver_do_not_absorb_the_excitation() -> None:
    # the driver is felt 2-4 steps late; the fit is given lags 0..12, most of them useless, and still finds n
    x = crash_driver()
    felt = lagged_covariates(x, [2, 3, 4]) @ np.array([0.5, 1.0, 0.5])
    counts = simulate_discrete_hawkes(0.05 + felt, 0.4, 0.6, np.random.default_rng(9))
    fit = fit_hawkes_exogenous(counts, lagged_covariates(x, range(13)))
    assert fit.n == pytest.approx(0.4, abs=0.08)
    assert fit.coefficients[2:6].sum() > 0.85 * fit.coefficients.sum()  # the weight sits on the lags that matter
    assert fit.mean_delay_steps == pytest.approx(2.5, rel=0.3)


def test_pure_exogenous_clusters_give_a_small_n() -> None:
    counts = simulate_discrete_hawkes(0.05 + 2.0 * crash_driver(), 0.0, 0.5, np.random.default_rng(4))
    assert fit_hawkes_exogenous(counts, crash_driver()[:, None]).n < 0.05
    assert fit_hawkes_exogenous(counts).n > 0.5


def test_exogenous_fit_edge_cases() -> None:
    none = fit_hawkes_exogenous(np.zeros(100), np.ones((100, 2)))
    assert not none.success and np.isnan(none.n) and none.n_events == 0 and none.covariate_names == ("x0", "x1")
    # a covariate that is zero throughout gets coefficient 0 (it cannot be told apart)
    counts = simulate_discrete_hawkes(np.full(500, 0.5), 0.2, 0.5, np.random.default_rng(3))
    fit = fit_hawkes_exogenous(counts, np.column_stack([np.zeros(500), np.ones(500)]), ["zero", "one"])
    assert fit.success and fit.coefficients[0] == 0.0 and fit.covariate_names == ("zero", "one")
    with pytest.raises(ValueError, match="covariates must be finite and >= 0"):
        fit_hawkes_exogenous(counts, -np.ones(500))
    with pytest.raises(ValueError, match="one row per step"):
        fit_hawkes_exogenous(counts, np.ones((499, 1)))
    with pytest.raises(ValueError, match="names must name each"):
        fit_hawkes_exogenous(counts, np.ones((500, 2)), ["a"])


def test_discrete_simulation_and_lags() -> None:
    a = simulate_discrete_hawkes(np.full(300, 0.2), 0.5, 0.3, np.random.default_rng(2))
    b = simulate_discrete_hawkes(np.full(300, 0.2), 0.5, 0.3, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert simulate_discrete_hawkes(np.zeros(50), 0.5, 0.3, np.random.default_rng(0)).sum() == 0  # no immigrants
    with pytest.raises(ValueError, match="0 <= n < 1"):
        simulate_discrete_hawkes(np.ones(5), 1.0, 0.3, np.random.default_rng(0))
    lagged = lagged_covariates(np.column_stack([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), [0, 2])
    np.testing.assert_array_equal(lagged, [[1, 0, 4, 0], [2, 0, 5, 0], [3, 1, 6, 4]])
