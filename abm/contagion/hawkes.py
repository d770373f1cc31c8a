"""Hawkes-process check of the cascade graph: estimate the branching ratio from liquidation times alone.

A self-exciting (Hawkes) process has intensity lambda(t) = mu + sum_{t_i < t} phi(t - t_i); the branching ratio
n = integral of phi is the mean number of events each event triggers (the share of events that are offspring).
The cascade graph measures that share directly (`cascade_metrics`'s branching_ratio); here it is estimated
blind, as one would from market data (Filimonov and Sornette 2012; Hardiman, Bercot and Bouchaud 2013):

- `branching_ratio_counts`: counts in windows much longer than the kernel have variance / mean -> 1 / (1 - n)^2
  for a stationary Hawkes process, so n = 1 - sqrt(mean / variance).
- `fit_exponential_hawkes`: maximum likelihood of an exponential-kernel Hawkes, phi(t) = n beta exp(-beta t),
  with scipy.optimize (constant baseline mu).

Both assume a stationary baseline: a scripted shock (a burst of exogenous events) inflates the estimate,
because count clustering due to a varying exogenous rate is read as self-excitation.
`simulate_hawkes` draws a Hawkes process by its cluster (branching) construction from a seeded numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize


def simulate_hawkes(
    mu: float,
    n: float,
    beta: float,
    horizon: float,
    rng: np.random.Generator,
    burn_in: float | None = None,
) -> np.ndarray:
    """Event times in [0, horizon) of a Hawkes process with baseline mu, branching ratio n (< 1) and exponential
    kernel of rate beta (mean delay 1 / beta), by the cluster construction: immigrants are a Poisson process,
    each event has Poisson(n) children after Exp(beta) delays. A burn-in (default 20 / (beta (1 - n))) before 0
    makes the process start stationary."""
    if not 0 <= n < 1:
        raise ValueError(f"branching ratio n must be in [0, 1) (got {n})")
    if mu <= 0 or beta <= 0 or horizon <= 0:
        raise ValueError("mu, beta and horizon must be > 0")
    burn = 20.0 / (beta * (1.0 - n)) if burn_in is None else burn_in
    start, end = -burn, horizon
    gen = start + (end - start) * rng.random(rng.poisson(mu * (end - start)))
    out = [gen]
    while len(gen):
        kids = rng.poisson(n, len(gen))
        parents = np.repeat(gen, kids)
        gen = parents + rng.exponential(1.0 / beta, len(parents))
        gen = gen[gen < end]
        out.append(gen)
    times = np.sort(np.concatenate(out))
    return times[times >= 0.0]


def window_counts(times: np.ndarray, window: float, t_start: float, t_end: float) -> np.ndarray:
    """Event counts in consecutive windows of length `window` covering [t_start, t_end) (a partial last one dropped)."""
    n_win = int(np.floor((t_end - t_start) / window))
    if n_win < 1:
        return np.empty(0, dtype=np.int64)
    edges = t_start + window * np.arange(n_win + 1)
    return np.histogram(np.asarray(times, dtype=float), bins=edges)[0]


def branching_ratio_counts(
    times: np.ndarray, window: float, t_start: float | None = None, t_end: float | None = None
) -> float:
    """n = 1 - sqrt(mean / variance) of window counts, clipped to [0, 1); NaN with fewer than 2 windows or no events.

    The window must be much longer than the kernel (else n is underestimated) and there must be many windows.
    """
    t = np.asarray(times, dtype=float)
    if len(t) == 0:
        return float("nan")
    lo = float(t.min()) if t_start is None else t_start
    hi = float(t.max()) + 1e-9 if t_end is None else t_end
    counts = window_counts(t, window, lo, hi)
    if len(counts) < 2 or counts.sum() == 0:
        return float("nan")
    mean, var = counts.mean(), counts.var(ddof=1)
    if var <= mean:
        return 0.0
    return float(1.0 - np.sqrt(mean / var))


@dataclass
class HawkesFit:
    """Maximum-likelihood exponential-kernel Hawkes: baseline mu (events per unit time), branching ratio n,
    kernel rate beta (1 / mean delay), log-likelihood, and the number of events used."""

    mu: float
    n: float
    beta: float
    log_likelihood: float
    n_events: int
    success: bool


def _excitation(times: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """A_i = sum_{j < i} exp(-beta (t_i - t_j)) and B_i = sum_{j < i} (t_i - t_j) exp(-beta (t_i - t_j)) (= -dA/dbeta),
    for sorted times, vectorised in log space (no overflow, no loop):

    A_i = exp(logcumsumexp_{j < i}(beta t_j) - beta t_i); B solves B_i = exp(-beta dt_i) (B_{i-1} + dt_i (1 + A_{i-1})),
    a linear recursion with non-negative terms: B_i = exp(logcumsumexp_{l <= i}(beta t_{l-1} + log dt_l
    + log(1 + A_{l-1})) - beta t_i).
    """
    t = np.asarray(times, dtype=float)
    n = len(t)
    a = np.zeros(n)
    b = np.zeros(n)
    if n < 2:
        return a, b
    t = t - t[0]
    x = beta * t
    cum = np.logaddexp.accumulate(x)
    a[1:] = np.exp(cum[:-1] - x[1:])
    dt = np.diff(t)
    with np.errstate(divide="ignore"):
        y = x[:-1] + np.log(dt) + np.log1p(a[:-1])
    b[1:] = np.exp(np.logaddexp.accumulate(y) - x[1:])
    return a, b


def hawkes_log_likelihood(times: np.ndarray, horizon: float, mu: float, n: float, beta: float) -> float:
    """Log-likelihood of sorted event times in [0, horizon) under an exponential-kernel Hawkes (mu, n, beta)."""
    return _log_likelihood_and_gradient(np.asarray(times, dtype=float), horizon, mu, n, beta)[0]


def _log_likelihood_and_gradient(
    t: np.ndarray, horizon: float, mu: float, n: float, beta: float
) -> tuple[float, np.ndarray]:
    """Log-likelihood and its gradient in (mu, n, beta).

    LL = sum log(lambda_i) - mu T - n sum (1 - exp(-beta (T - t_i))), lambda_i = mu + n beta A_i.
    """
    a, b = _excitation(t, beta)
    lam = mu + n * beta * a
    tail = np.exp(-beta * (horizon - t))
    ll = float(np.sum(np.log(lam)) - mu * horizon - n * np.sum(1.0 - tail))
    inv = 1.0 / lam
    d_mu = float(inv.sum() - horizon)
    d_n = float(beta * (a * inv).sum() - np.sum(1.0 - tail))
    d_beta = float(n * ((a - beta * b) * inv).sum() - n * np.sum((horizon - t) * tail))
    return ll, np.array([d_mu, d_n, d_beta])


def fit_exponential_hawkes(
    times: np.ndarray, horizon: float | None = None, beta_bounds: tuple[float, float] = (1e-3, 1e3)
) -> HawkesFit:
    """Maximum-likelihood fit of (mu, n, beta) to event times in [0, horizon) (L-BFGS-B with the analytic
    gradient, from a few starting points; parameters on log / logit scales).

    Ties (several events at one time) make the likelihood degenerate; jitter integer steps first (`jitter_steps`).
    """
    t = np.sort(np.asarray(times, dtype=float))
    m = len(t)
    if m < 3:
        return HawkesFit(float("nan"), float("nan"), float("nan"), float("nan"), m, False)
    t = t - min(0.0, float(t[0]))
    horizon = float(t[-1]) + 1e-9 if horizon is None else float(horizon)
    rate = m / horizon

    def nll(x: np.ndarray) -> tuple[float, np.ndarray]:
        mu, n, beta = np.exp(x[0]), 1.0 / (1.0 + np.exp(-x[1])), np.exp(x[2])
        ll, grad = _log_likelihood_and_gradient(t, horizon, mu, n, beta)
        if not np.isfinite(ll):
            return 1e300, np.zeros(3)
        chain = np.array([mu, n * (1.0 - n), beta])
        return -ll, -grad * chain

    bounds = [(np.log(rate) - 12, np.log(rate) + 3), (-12.0, 12.0), (np.log(beta_bounds[0]), np.log(beta_bounds[1]))]
    gaps = np.diff(t)
    typical_gap = float(np.median(gaps[gaps > 0])) if np.any(gaps > 0) else 1.0 / rate
    best = None
    for n0 in (0.3, 0.7):
        for beta0 in (1.0 / typical_gap, 0.1 / typical_gap):
            b0 = float(np.clip(beta0, beta_bounds[0], beta_bounds[1]))
            x0 = np.array([np.log(rate * (1 - n0)), np.log(n0 / (1 - n0)), np.log(b0)])
            res = optimize.minimize(nll, x0, method="L-BFGS-B", jac=True, bounds=bounds)
            if best is None or res.fun < best.fun:
                best = res
    assert best is not None
    mu, n, beta = np.exp(best.x[0]), 1.0 / (1.0 + np.exp(-best.x[1])), np.exp(best.x[2])
    return HawkesFit(float(mu), float(n), float(beta), float(-best.fun), m, bool(best.success))


def jitter_steps(steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer step times to continuous times: each event uniformly inside its step, sorted."""
    s = np.asarray(steps, dtype=float)
    return np.sort(s + rng.random(len(s)))
