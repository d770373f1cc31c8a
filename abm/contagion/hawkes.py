"""Hawkes-process check of the cascade graph: estimate the branching ratio from liquidation times alone.

A self-exciting (Hawkes) process has intensity lambda(t) = mu + sum_{t_i < t} phi(t - t_i); the branching ratio
n = integral of phi is the mean number of events each event triggers (the share of events that are offspring).
The cascade graph measures that share directly (`cascade_metrics`'s branching_ratio); here it is estimated
blind, as one would from market data (Filimonov and Sornette 2012; Hardiman, Bercot and Bouchaud 2013):

- `branching_ratio_counts`: counts in windows much longer than the kernel have variance / mean -> 1 / (1 - n)^2
  for a stationary Hawkes process, so n = 1 - sqrt(mean / variance).
- `fit_exponential_hawkes`: maximum likelihood of an exponential-kernel Hawkes, phi(t) = n beta exp(-beta t)
  (constant baseline mu, or one per regime); `fit_discrete_hawkes`: the same on counts per step.
- `fit_hawkes_exogenous`: a discrete-time Hawkes whose baseline follows exogenous covariates; for liquidations,
  `abm.contagion.liquidation_hawkes.hawkes_branching_ratio` builds them from the live lending book's crossings
  of health factor 1 along the prices without liquidation sales' impact, which the model records per step.

A constant baseline reads any time variation of the exogenous rate (a scripted shock, a burst of news) as
self-excitation and overstates n, towards apparent criticality (Filimonov and Sornette 2015); the covariate
baseline removes the part of that clustering that the exogenous path explains.
`simulate_hawkes` and `simulate_discrete_hawkes` draw Hawkes processes from a seeded numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import optimize


def simulate_hawkes(
    mu: float | np.ndarray | list[float],
    n: float,
    beta: float,
    horizon: float,
    rng: np.random.Generator,
    burn_in: float | None = None,
    breaks: np.ndarray | list[float] | None = None,
) -> np.ndarray:
    """Event times in [0, horizon) of a Hawkes process with baseline mu, branching ratio n (< 1) and exponential
    kernel of rate beta (mean delay 1 / beta), by the cluster construction: immigrants are a Poisson process,
    each event has Poisson(n) children after Exp(beta) delays. A burn-in (default 20 / (beta (1 - n))) before 0,
    at the first baseline, makes the process start stationary. With `breaks`, mu is one baseline per segment of
    [0, horizon) cut at the breaks (a non-stationary exogenous rate, e.g. a burst of news)."""
    if not 0 <= n < 1:
        raise ValueError(f"branching ratio n must be in [0, 1) (got {n})")
    mus = np.atleast_1d(np.asarray(mu, dtype=float))
    cuts = np.asarray([] if breaks is None else breaks, dtype=float)
    if len(mus) != len(cuts) + 1:
        raise ValueError(f"need one baseline per segment: {len(cuts) + 1} (got {len(mus)})")
    if (mus <= 0).any() or beta <= 0 or horizon <= 0:
        raise ValueError("mu, beta and horizon must be > 0")
    burn = 20.0 / (beta * (1.0 - n)) if burn_in is None else burn_in
    edges = np.concatenate([[-burn], cuts, [horizon]])
    parts = []
    for lo, hi, rate in zip(edges[:-1], edges[1:], mus, strict=True):
        parts.append(lo + (hi - lo) * rng.random(rng.poisson(rate * (hi - lo))))
    gen = np.concatenate(parts)
    end = horizon
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


def _segments(t: np.ndarray, horizon: float, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment index of each event and the length of each segment of [0, horizon) cut at `breaks`."""
    edges = np.concatenate([[0.0], breaks, [horizon]])
    return np.searchsorted(breaks, t, side="right"), np.diff(edges)


def _log_likelihood_and_gradient(
    t: np.ndarray, horizon: float, mu: float | np.ndarray, n: float, beta: float, breaks: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Log-likelihood and its gradient in (mu_1..mu_J, n, beta); mu piecewise constant between `breaks`.

    LL = sum log(lambda_i) - sum_j mu_j L_j - n sum (1 - exp(-beta (T - t_i))), lambda_i = mu_seg(i) + n beta A_i.
    """
    b_arr = np.empty(0) if breaks is None else np.asarray(breaks, dtype=float)
    seg, lengths = _segments(t, horizon, b_arr)
    mu_v = np.atleast_1d(np.asarray(mu, dtype=float))
    a, b = _excitation(t, beta)
    lam = mu_v[seg] + n * beta * a
    tail = np.exp(-beta * (horizon - t))
    ll = float(np.sum(np.log(lam)) - mu_v @ lengths - n * np.sum(1.0 - tail))
    inv = 1.0 / lam
    d_mu = np.bincount(seg, weights=inv, minlength=len(lengths)) - lengths
    d_n = float(beta * (a * inv).sum() - np.sum(1.0 - tail))
    d_beta = float(n * ((a - beta * b) * inv).sum() - n * np.sum((horizon - t) * tail))
    return ll, np.concatenate([d_mu, [d_n, d_beta]])


def _maximize_log_linear(
    x_feat: np.ndarray,
    w: np.ndarray,
    c: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    x0: np.ndarray,
    em_iterations: int = 200,
) -> tuple[float, np.ndarray]:
    """Maximise the concave f(x) = sum_i w_i log(X_i . x) - c . x over the box [lower, upper] (X >= 0, c >= 0,
    lower of the baseline entries > 0 so that X x > 0). Returns (f, x).

    First EM steps (the multiplicative update x_j <- x_j sum_i w_i X_ij / (X_i . x) / c_j, clipped to the box: each
    raises f, whatever the conditioning, so nearly collinear features such as lagged covariates cannot stall it),
    then damped projected Newton steps with backtracking for a fast finish (Levenberg-Marquardt damping grows
    when a step fails). Compiled (`_maximize_compiled`): a fit profiles 24 or more decays, each a few hundred
    small steps, where numpy's cost per call was the time; no BLAS-threaded optimiser, whose thread spinning can
    cost 40x on a busy machine.
    """
    f, x = _maximize_compiled(
        np.ascontiguousarray(x_feat, dtype=np.float64),
        np.ascontiguousarray(w, dtype=np.float64),
        np.ascontiguousarray(c, dtype=np.float64),
        np.ascontiguousarray(lower, dtype=np.float64),
        np.ascontiguousarray(upper, dtype=np.float64),
        np.ascontiguousarray(x0, dtype=np.float64),
        int(em_iterations),
    )
    return float(f), x


@njit(cache=True, nogil=True)
def _log_linear_value(x_feat: np.ndarray, w: np.ndarray, c: np.ndarray, v: np.ndarray, lam: np.ndarray) -> float:
    """f(v) = sum_i w_i log(X_i . v) - c . v, writing the intensities X v into `lam`; -inf where an intensity is not
    positive (outside the domain)."""
    n, n_features = x_feat.shape
    f = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n_features):
            s += x_feat[i, j] * v[j]
        lam[i] = s
        if not s > 0.0:
            return -np.inf
        f += w[i] * np.log(s)
    for j in range(n_features):
        f -= c[j] * v[j]
    return f


@njit(cache=True, nogil=True)
def _maximize_compiled(
    x_feat: np.ndarray,
    w: np.ndarray,
    c: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    x0: np.ndarray,
    em_iterations: int,
) -> tuple[float, np.ndarray]:
    """`_maximize_log_linear`'s search, compiled."""
    n, n_features = x_feat.shape
    x = np.minimum(np.maximum(x0, lower), upper)
    lam, lam_trial = np.empty(n), np.empty(n)
    trial, grad = np.empty(n_features), np.empty(n_features)
    f = _log_linear_value(x_feat, w, c, x, lam)  # lam: X x of the current x throughout
    for _ in range(em_iterations):
        for j in range(n_features):
            if c[j] > 0.0:
                s = 0.0
                for i in range(n):
                    s += x_feat[i, j] * (w[i] / lam[i])
                trial[j] = min(max(x[j] * s / c[j], lower[j]), upper[j])
            else:
                trial[j] = min(max(x[j], lower[j]), upper[j])
        ft = _log_linear_value(x_feat, w, c, trial, lam_trial)
        if not ft >= f:
            break
        gain = ft - f
        x[:] = trial
        f = ft
        lam, lam_trial = lam_trial, lam
        if gain <= 1e-9 * max(abs(f), 1.0):
            break
    damping = 1e-6
    hess = np.empty((n_features, n_features))
    for _ in range(200):
        # gradient and minus the Hessian (positive semi-definite): X^T (w / lam) - c and X^T diag(w / lam^2) X
        hess[:] = 0.0
        for j in range(n_features):
            grad[j] = -c[j]
        for i in range(n):
            r = w[i] / lam[i]
            q = r / lam[i]
            for j in range(n_features):
                grad[j] += x_feat[i, j] * r
                xq = x_feat[i, j] * q
                for k in range(j + 1):
                    hess[j, k] += xq * x_feat[i, k]
        free = np.empty(n_features, dtype=np.bool_)
        worst = 0.0
        for j in range(n_features):
            free[j] = not ((x[j] <= lower[j] and grad[j] < 0.0) or (x[j] >= upper[j] and grad[j] > 0.0))
            if free[j]:
                worst = max(worst, abs(grad[j]) * max(abs(x[j]), 1e-12))
        rows = np.flatnonzero(free)
        m = len(rows)
        if m == 0 or worst < 1e-10 * max(abs(f), 1.0):
            break
        system = np.empty((m, m))
        diag = np.empty(m)
        for a in range(m):
            diag[a] = max(hess[rows[a], rows[a]], 1e-12)
            for b in range(m):
                ja, jb = rows[a], rows[b]
                system[a, b] = hess[ja, jb] if ja >= jb else hess[jb, ja]
            system[a, a] += damping * diag[a]
        step = np.zeros(n_features)
        try:
            solved = np.linalg.solve(system, grad[rows])
        except Exception:  # singular: a gradient step scaled by the curvature
            solved = grad[rows] / diag
        for a in range(m):
            step[rows[a]] = solved[a]
        t = 1.0
        ft = -np.inf
        while t > 1e-8:
            for j in range(n_features):
                trial[j] = min(max(x[j] + t * step[j], lower[j]), upper[j])
            ft = _log_linear_value(x_feat, w, c, trial, lam_trial)
            if ft > f:
                break
            t *= 0.5
        if not ft > f:  # no ascent along this step: damp towards a gradient step, stop when even that fails
            if damping > 1e6:
                break
            damping *= 100.0
            continue
        gain = ft - f
        x[:] = trial
        f = ft
        lam, lam_trial = lam_trial, lam
        damping = max(damping / 10.0, 1e-9) if t == 1.0 else damping
        if gain <= 1e-12 * max(abs(f), 1.0):
            break
    return f, x


def _profile(
    t: np.ndarray, horizon: float, beta: float, rate: float, seg: np.ndarray, lengths: np.ndarray
) -> tuple[float, np.ndarray, float]:
    """max over (mu_1..mu_J, n) of the log-likelihood at fixed beta: concave (log of a linear intensity minus a
    linear compensator), solved by Newton steps. Returns (log-likelihood, mu, n)."""
    a, _ = _excitation(t, beta)
    j = len(lengths)
    feat = np.zeros((len(t), j + 1))
    feat[np.arange(len(t)), seg] = 1.0
    feat[:, j] = beta * a
    c = np.concatenate([lengths, [float(np.sum(1.0 - np.exp(-beta * (horizon - t))))]])
    lower = np.concatenate([np.full(j, 1e-9 * rate), [0.0]])
    upper = np.concatenate([np.full(j, 100 * rate), [0.999]])
    f, x = _maximize_log_linear(feat, np.ones(len(t)), c, lower, upper, np.concatenate([np.full(j, 0.5 * rate), [0.5]]))
    return f, x[:j].copy(), float(x[j])


def fit_exponential_hawkes(
    times: np.ndarray,
    horizon: float | None = None,
    beta_bounds: tuple[float, float] | None = None,
    breaks: np.ndarray | list[float] | None = None,
) -> HawkesFit:
    """Maximum-likelihood fit of (mu, n, beta) to event times in [0, horizon).

    breaks: optional times cutting [0, horizon) into segments with their own constant baseline mu_j (a regime-
    aware fit: e.g. the known start and end of a scenario shock); `HawkesFit.mu` is then the time-averaged baseline.
    The log-likelihood is concave in (mu, n) at fixed beta, so beta is profiled over a log grid (each point a
    concave search), then all parameters are polished together (L-BFGS-B, analytic gradient).
    Ties (several events at one time) make the likelihood degenerate; jitter integer steps first (`jitter_steps`).
    beta_bounds: default (20 / horizon, 1000 x mean rate): a kernel longer than a twentieth of the observation
    window cannot be told from a drifting baseline (n is not identified; the fit runs to n -> 1, beta -> 0).
    """
    t = np.sort(np.asarray(times, dtype=float))
    m = len(t)
    if m < 3:
        return HawkesFit(float("nan"), float("nan"), float("nan"), float("nan"), m, False)
    t = t - min(0.0, float(t[0]))
    horizon = float(t[-1]) + 1e-9 if horizon is None else float(horizon)
    cuts = np.unique(np.asarray([] if breaks is None else breaks, dtype=float))
    cuts = cuts[(cuts > 0) & (cuts < horizon)]
    seg, lengths = _segments(t, horizon, cuts)
    j = len(lengths)
    rate = m / horizon
    lo, hi = beta_bounds if beta_bounds is not None else (20.0 / horizon, 1000.0 * rate)
    grid = np.geomspace(lo, hi, 16)
    profile = [_profile(t, horizon, b, rate, seg, lengths) for b in grid]
    k = int(np.argmax([p[0] for p in profile]))
    ll0, mu0, n0 = profile[k]

    def nll(x: np.ndarray) -> tuple[float, np.ndarray]:
        mu, n, beta = np.exp(x[:j]), 1.0 / (1.0 + np.exp(-x[j])), np.exp(x[j + 1])
        ll, grad = _log_likelihood_and_gradient(t, horizon, mu, n, beta, cuts)
        if not np.isfinite(ll):
            return 1e300, np.zeros(j + 2)
        chain = np.concatenate([mu, [n * (1.0 - n), beta]])
        return -ll, -grad * chain

    n_start = float(np.clip(n0, 1e-4, 0.999))
    x0 = np.concatenate([np.log(np.maximum(mu0, 1e-9 * rate)), [np.log(n_start / (1 - n_start)), np.log(grid[k])]])
    bounds = [(np.log(rate) - 25, np.log(rate) + 5)] * j + [(-12.0, 12.0), (np.log(lo), np.log(hi))]
    res = optimize.minimize(nll, x0, method="L-BFGS-B", jac=True, bounds=bounds)
    if np.isfinite(res.fun) and -res.fun >= ll0:
        mu, n, beta, ll = np.exp(res.x[:j]), 1.0 / (1.0 + np.exp(-res.x[j])), np.exp(res.x[j + 1]), -float(res.fun)
    else:
        mu, n, beta, ll = mu0, n0, float(grid[k]), ll0
    mean_mu = float(mu @ lengths / horizon)
    return HawkesFit(mean_mu, float(n), float(beta), float(ll), m, True)


def _fit_poisson_hawkes(
    y: np.ndarray, base: np.ndarray, lower: np.ndarray, upper: np.ndarray, q_grid: int
) -> tuple[float, np.ndarray, float, float]:
    """Maximum likelihood of N_t ~ Poisson(base_t . c + n sum_{s >= 1} (1 - q) q^(s-1) N_{t-s}) over (c, n, q).

    y: counts per step (T,). base: (T, J) non-negative baseline features; c is bounded by [lower, upper] (J
    entries) and n by [0, 0.999]. Concave in (c, n) at fixed q, so q is profiled over `q_grid` mean delays from
    ~1 step to T / 20 steps, then refined between the best point's neighbours. Returns (log-likelihood without
    the log(N_t!) constant, c, n, q).
    """
    from scipy.signal import lfilter

    horizon = len(y)
    j = base.shape[1]
    ok = y > 0
    lo = np.concatenate([lower, [0.0]])
    hi = np.concatenate([upper, [0.999]])
    x0 = np.concatenate([np.clip(0.5 * upper / 1e3, lower, upper), [0.5]])
    base_ok, base_sum = base[ok], base.sum(axis=0)

    fitted: dict[float, tuple[float, np.ndarray, float]] = {}  # by q: the refinement's best q was fitted in it

    def fit_at(q: float) -> tuple[float, np.ndarray, float]:
        if q not in fitted:
            e = lfilter([0.0, 1.0 - q], [1.0, -q], y)  # e_t = q e_{t-1} + (1 - q) y_{t-1}
            feat = np.column_stack([base_ok, e[ok]])
            f, x = _maximize_log_linear(feat, y[ok], np.concatenate([base_sum, [float(e.sum())]]), lo, hi, x0)
            fitted[q] = (f, x[:j].copy(), float(x[j]))
        return fitted[q]

    qs = 1.0 - np.geomspace(0.95, 20.0 / horizon, q_grid)  # mean delays 1 / (1 - q) from ~1 step to horizon / 20
    fits = [fit_at(float(q)) for q in qs]
    k = int(np.argmax([f[0] for f in fits]))
    q_best, best = float(qs[k]), fits[k]
    if 0 < k < len(qs) - 1:  # refine q between its grid neighbours
        res = optimize.minimize_scalar(
            lambda q: -fit_at(q)[0], bounds=(float(qs[k - 1]), float(qs[k + 1])), method="bounded"
        )
        refined = fit_at(float(res.x))
        if refined[0] >= best[0]:
            q_best, best = float(res.x), refined
    ll, c, n = best
    return ll, c, n, q_best


def fit_discrete_hawkes(
    counts: np.ndarray, breaks: np.ndarray | list[float] | None = None, q_grid: int = 24
) -> HawkesFit:
    """Maximum likelihood of a discrete-time Hawkes (Poisson autoregression) on event counts per step:

        N_t ~ Poisson(mu_seg(t) + n sum_{s >= 1} (1 - q) q^(s-1) N_{t-s})

    Excitation acts from the next step on, never within a step: a batch of events in one step is read as a
    common cause (immigrants), not as events triggering each other. That is the model's timing: a liquidation's
    sale reaches the oracle, hence other accounts' health, one step later at the earliest. Returns a `HawkesFit`
    whose beta is -log(q) (per step) and mu the time-averaged baseline (events per step); `breaks` (steps) cut
    the baseline into regimes as in `fit_exponential_hawkes`. Concave in (mu, n) at fixed q: q is profiled.
    """
    y = np.asarray(counts, dtype=float)
    horizon = len(y)
    m = float(y.sum())
    if horizon < 3 or m < 3:
        return HawkesFit(float("nan"), float("nan"), float("nan"), float("nan"), int(m), False)
    cuts = np.unique(np.asarray([] if breaks is None else breaks, dtype=float))
    cuts = cuts[(cuts > 0) & (cuts < horizon)]
    seg, lengths = _segments(np.arange(horizon, dtype=float), float(horizon), cuts)
    j = len(lengths)
    rate = m / horizon
    base = np.zeros((horizon, j))
    base[np.arange(horizon), seg] = 1.0
    ll, mu, n, q = _fit_poisson_hawkes(y, base, np.full(j, 1e-9 * rate), np.full(j, 1e3 * rate), q_grid)
    return HawkesFit(float(mu @ lengths / horizon), float(n), float(-np.log(q)), float(ll), int(m), True)


@dataclass(frozen=True)
class ExogenousHawkesFit:
    """Discrete-time Hawkes with a covariate-driven baseline (`fit_hawkes_exogenous`).

    n: branching ratio (expected offspring per event). intercept: c0 (events per step). coefficients: c_k (events
    per step per unit of covariate k), all >= 0, named by covariate_names. decay: q of the geometric kernel
    g(s) = (1 - q) q^(s-1), s >= 1 steps. log_likelihood: Poisson log-likelihood without the log(N_t!) constant.
    expected_exogenous: sum over steps of the fitted baseline (expected immigrants). n_events: events fitted.
    success: False when there were too few events or steps to fit (every number NaN).
    """

    n: float
    intercept: float
    coefficients: np.ndarray
    covariate_names: tuple[str, ...]
    decay: float
    log_likelihood: float
    expected_exogenous: float
    n_events: int
    success: bool

    @property
    def mean_delay_steps(self) -> float:
        """Mean delay between a parent and its offspring (steps): 1 / (1 - q)."""
        return 1.0 / (1.0 - self.decay)


def fit_hawkes_exogenous(
    counts: np.ndarray,
    covariates: np.ndarray | None = None,
    names: tuple[str, ...] | list[str] | None = None,
    q_grid: int = 24,
) -> ExogenousHawkesFit:
    """Maximum likelihood of a discrete-time Hawkes whose baseline follows exogenous covariates:

        N_t ~ Poisson(lambda_t),  lambda_t = mu_t + n sum_{s >= 1} (1 - q) q^(s-1) N_{t-s},
        mu_t = c0 + sum_k c_k X_{t,k},  c0 > 0, c_k >= 0, 0 <= n <= 0.999.

    counts: events per step (T,). covariates: (T, K) non-negative, row t known at step t (lag them beforehand:
    `lagged_covariates`); None fits a constant baseline (the classic fit, which reads any time variation of the
    exogenous rate as self-excitation: Filimonov and Sornette 2015). Excitation starts one step after an event,
    so a same-step batch is a common cause. The log-likelihood is concave in (c, n) at fixed q: q is profiled
    (mean delays ~1 step to T / 20 steps) and each point solved by projected Newton steps. Covariates are scaled
    to mean 1 inside the fit (the coefficients returned are in the caller's units); an all-zero covariate gets
    coefficient 0. Fewer than 3 events or steps: success False and NaN.
    """
    y = np.asarray(counts, dtype=float)
    if y.ndim != 1 or np.any(~np.isfinite(y)) or np.any(y < 0):
        raise ValueError("counts must be a 1-d array of finite counts >= 0")
    horizon = len(y)
    x = np.zeros((horizon, 0)) if covariates is None else np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != horizon:
        raise ValueError(f"covariates must have one row per step ({horizon}), got shape {x.shape}")
    if np.any(~np.isfinite(x)) or np.any(x < 0):
        raise ValueError("covariates must be finite and >= 0")
    k = x.shape[1]
    labels = tuple(names) if names is not None else tuple(f"x{i}" for i in range(k))
    if len(labels) != k:
        raise ValueError(f"names must name each of the {k} covariates (got {len(labels)})")
    m = float(y.sum())
    if horizon < 3 or m < 3:
        nan = float("nan")
        return ExogenousHawkesFit(nan, nan, np.full(k, nan), labels, nan, nan, nan, int(m), False)
    rate = m / horizon
    scale = x.mean(axis=0)
    active = scale > 0
    base = np.column_stack([np.ones(horizon), x / np.where(active, scale, 1.0)])
    lower = np.concatenate([[1e-9 * rate], np.zeros(k)])
    upper = np.concatenate([[1e3 * rate], np.where(active, 1e3 * rate, 0.0)])
    ll, c, n, q = _fit_poisson_hawkes(y, base, lower, upper, q_grid)
    coef = np.where(active, c[1:] / np.where(active, scale, 1.0), 0.0)
    return ExogenousHawkesFit(
        n=float(n),
        intercept=float(c[0]),
        coefficients=coef,
        covariate_names=labels,
        decay=float(q),
        log_likelihood=float(ll),
        expected_exogenous=float((base @ c).sum()),
        n_events=int(m),
        success=True,
    )


def lagged_covariates(x: np.ndarray, lags: range | list[int]) -> np.ndarray:
    """Columns x_{t-l} for each lag l (steps, >= 0) of each column of x (T, K) -> (T, K * len(lags)), zero
    before the start. Column order: covariate-major (all lags of covariate 0, then of covariate 1, ...)."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    cols = []
    for j in range(a.shape[1]):
        for lag in lags:
            if lag < 0:
                raise ValueError(f"lags must be >= 0 (got {lag})")
            col = np.zeros(len(a))
            if lag < len(a):
                col[lag:] = a[: len(a) - lag, j]
            cols.append(col)
    return np.column_stack(cols) if cols else np.zeros((len(a), 0))


def simulate_discrete_hawkes(baseline: np.ndarray, n: float, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Counts per step of the discrete-time Hawkes that `fit_hawkes_exogenous` fits: N_t ~ Poisson(mu_t + n sum_{s>=1}
    (1 - q) q^(s-1) N_{t-s}), with baseline mu_t (events per step, >= 0), branching ratio n in [0, 1) and kernel
    decay q in [0, 1) (mean delay 1 / (1 - q) steps), drawn from a seeded numpy Generator."""
    mu = np.asarray(baseline, dtype=float)
    if mu.ndim != 1 or np.any(~np.isfinite(mu)) or np.any(mu < 0):
        raise ValueError("baseline must be a 1-d array of finite rates >= 0")
    if not 0 <= n < 1 or not 0 <= decay < 1:
        raise ValueError(f"need 0 <= n < 1 and 0 <= decay < 1 (got n={n}, decay={decay})")
    counts = np.zeros(len(mu))
    excitation = 0.0  # sum_{s >= 1} (1 - q) q^(s-1) N_{t-s}
    for t in range(len(mu)):
        counts[t] = rng.poisson(mu[t] + n * excitation)
        excitation = decay * excitation + (1.0 - decay) * counts[t]
    return counts


def step_counts(steps: np.ndarray, n_steps: int) -> np.ndarray:
    """Events per step 0..n_steps - 1 from integer event steps."""
    s = np.asarray(steps, dtype=np.int64)
    return np.bincount(s[(s >= 0) & (s < n_steps)], minlength=n_steps).astype(float)


def jitter_steps(steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer step times to continuous times: each event uniformly inside its step, sorted."""
    s = np.asarray(steps, dtype=float)
    return np.sort(s + rng.random(len(s)))
