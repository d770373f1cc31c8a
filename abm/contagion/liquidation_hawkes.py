"""The Hawkes branching ratio of a run's liquidations, with a baseline driven by the path prices would have taken
without liquidation sales (docs/contagion.md, Hawkes check).

Two choices make the fit measure what the cascade graph's `branching_ratio` measures:

- **Events are distress onsets**, the step an account's health factor first showed below 1 (one per account and
  episode), not the steps liquidators executed. Liquidators work through a queue of liquidatable accounts at
  their own pace, and a queue's service bursts look like self-excitation to a fit of execution times (on `crash`
  at its defaults such a fit gives 0.42-0.53 where the attribution gives 0.17-0.19).
- **The baseline follows the non-liquidation price path** (`non_liquidation_prices`: the market less the decayed
  impact of liquidation sales, which the market records), along which `health_crossings` counts the accounts
  (positions frozen at step 0) pushed below health factor 1, seen through the oracle's delay (`oracle_view`:
  health is measured at oracle prices, which show the market 1 + latency steps late; 21 steps in
  `black_thursday`'s congestion). The graph's branching ratio counts as offspring only
  what liquidation sales caused; fundamental moves and other traders' trading are its exogenous part, so they
  belong in the baseline. A baseline from the fundamental path alone reads other traders' selling as
  self-excitation (on `contagion`, 0.87-1.0 against 0.36-0.39).

`liquidation_covariates` builds the baseline's covariates, `hawkes_branching_ratio` is the estimate every run
summary reports, and `pooled_hawkes_branching_ratio` fits one branching ratio to several runs (one to two dozen
active steps per run leave a single run's fit noisy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from abm.contagion.hawkes import ExogenousHawkesFit, fit_hawkes_exogenous, lagged_covariates, step_counts


def health_crossings(
    collateral_tokens: np.ndarray,
    debt_tokens: np.ndarray,
    liquidation_threshold: np.ndarray,
    prices: np.ndarray,
    chunk: int = 2048,
) -> np.ndarray:
    """New health-factor crossings per step that a price path alone would cause to frozen positions.

    collateral_tokens, debt_tokens: (accounts, assets) positions (tokens) frozen at the start. liquidation_threshold:
    (assets,) fractions (0 for an asset that does not count as collateral). prices: (steps, assets) USD per token,
    row t = the prices at step t. The health factor is the cross-margin one, HF_t = sum_k c_k p_tk LT_k /
    sum_k d_k p_tk (an isolated account is its own cross account; a portfolio-margined account is approximated by
    it). Returns (steps,) integer counts: entry t is the number of accounts whose HF is below 1 for the first time
    at step t. Accounts already below 1 at step 0 are excluded (the path did not push them under); accounts without
    debt never cross. Vectorised in chunks of `chunk` accounts: memory O(chunk x steps).
    """
    c = np.asarray(collateral_tokens, dtype=float)
    d = np.asarray(debt_tokens, dtype=float)
    lt = np.asarray(liquidation_threshold, dtype=float)
    p = np.asarray(prices, dtype=float)
    if c.ndim != 2 or d.shape != c.shape:
        raise ValueError(
            f"collateral_tokens and debt_tokens must be (accounts, assets) of one shape: {c.shape}, {d.shape}"
        )
    if lt.shape != (c.shape[1],) or p.ndim != 2 or p.shape[1] != c.shape[1]:
        raise ValueError(
            f"liquidation_threshold must be (assets,) and prices (steps, assets) with {c.shape[1]} assets "
            f"(got {lt.shape} and {p.shape})"
        )
    for name, arr in (("collateral_tokens", c), ("debt_tokens", d), ("prices", p)):
        if np.any(~np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{name} must be finite and >= 0")
    steps = p.shape[0]
    out = np.zeros(steps, dtype=np.int64)
    weighted = c * lt  # LT-weighted collateral tokens
    for lo in range(0, len(c), chunk):
        hi = min(lo + chunk, len(c))
        below = (weighted[lo:hi] @ p.T) < (d[lo:hi] @ p.T)  # HF < 1 <=> LT-weighted collateral < debt (USD)
        first = np.argmax(below, axis=1)
        crossed = below.any(axis=1) & ~below[:, 0]
        out += np.bincount(first[crossed], minlength=steps)
    return out


def non_liquidation_prices(market_prices: np.ndarray, liquidation_impact: np.ndarray) -> np.ndarray:
    """The prices the market would show without the impact of liquidation sales still in them (USD per token):
    p_t exp(-L_t), with L_t the decayed log impact of the liquidation sales up to step t (the market's
    `liquidation_impact`, log units; 0 for the numeraire). Both arrays (steps, assets); the result has their shape."""
    p = np.asarray(market_prices, dtype=float)
    impact = np.asarray(liquidation_impact, dtype=float)
    if p.shape != impact.shape:
        raise ValueError(f"market_prices and liquidation_impact must have one shape (got {p.shape}, {impact.shape})")
    return p * np.exp(-impact)


def oracle_view(prices: np.ndarray, lag_steps: np.ndarray) -> np.ndarray:
    """The prices an oracle shows: row t is `prices` of step t - lag_t (the first row before the start), where
    lag_steps (steps, >= 0, one per row) is the oracle's delay behind the market. prices: (steps, assets)."""
    p = np.asarray(prices, dtype=float)
    lag = np.asarray(lag_steps, dtype=np.int64)
    if lag.shape != (len(p),) or np.any(lag < 0):
        raise ValueError(f"lag_steps must be one non-negative integer per row ({len(p)}), got shape {lag.shape}")
    return p[np.maximum(np.arange(len(p)) - lag, 0)]


def distress_onsets(events: pd.DataFrame) -> np.ndarray:
    """The steps at which the lending pool's liquidated accounts entered distress, one per account and episode:
    the distinct (`account`, `distress_step`) pairs of a run's lending events (a partially liquidated account that
    stays below health factor 1 is liquidated again in the same episode; one that recovered and fell again starts
    a new one). Perp liquidations are left out: the baseline (`health_crossings` of the step-0 pool positions) does
    not cover perp positions, so with the perpetual venue on the estimate is the pool's. Returns sorted steps."""
    from abm.recording.recorder import lending_events

    events = lending_events(events)
    if len(events) == 0:
        return np.zeros(0, dtype=np.int64)
    episodes = events[["account", "distress_step"]].drop_duplicates()
    return np.sort(episodes["distress_step"].to_numpy(dtype=np.int64))


# Default design of `liquidation_covariates`. Amplifications: factors on the baseline path's log move, since the
# positions frozen at step 0 are not those the path meets (traders re-lever and de-lever), and the fit weighs the
# paths. Lags (steps) beyond the oracle's own delay (which the caller removes with `oracle_view`): updaters' jitter,
# the deviation threshold and the heartbeat delay a post further, so 0..3. Longer free lags absorb offspring (which follow their parents by a few steps
# too): on simulated crashes with n = 0.5, lags 0..12 give n = 0.28-0.43, lags 0..3 n = 0.47-0.54
# (tests/test_branching.py).
AMPLIFICATIONS = (1.0, 1.5, 2.0)
MAX_LAG_STEPS = 3
MIN_EVENTS = (
    30  # fewer distress onsets than this: no single-run fit (the baseline alone has 1 + 3 x 4 + 1 coefficients)
)


def liquidation_covariates(
    baseline_prices: np.ndarray,
    fundamental_prices: np.ndarray,
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    amplifications: tuple[float, ...] = AMPLIFICATIONS,
    max_lag_steps: int = MAX_LAG_STEPS,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The covariates of a distress-onset Hawkes baseline, from prices no liquidation sale moved and the starting
    positions (nothing from the cascade attribution):

    - ``cross_k<a>_lag<l>``: `health_crossings` along the amplified baseline path p_0 (p_t / p_0)^a (a = 1: the path
      itself; `non_liquidation_prices` for a model run), lagged l = 0..max_lag_steps steps;
    - ``abs_return_lag1``: |log return| of the fundamentals at the previous step (per step), averaged over assets
      weighted by the starting positions' gross exposure (collateral + debt, USD).

    baseline_prices, fundamental_prices: (steps, assets) USD per token (the numeraire's column constant);
    start_collateral and start_debt: (accounts, assets) tokens; liquidation_threshold: (assets,). Returns
    ((steps, K) array, names).
    """
    b = np.asarray(baseline_prices, dtype=float)
    p = np.asarray(fundamental_prices, dtype=float)
    for name, arr in (("baseline_prices", b), ("fundamental_prices", p)):
        if arr.ndim != 2 or len(arr) < 2 or np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{name} must be (steps >= 2, assets), finite and > 0")
    if b.shape != p.shape:
        raise ValueError(f"baseline_prices and fundamental_prices must have one shape (got {b.shape}, {p.shape})")
    if max_lag_steps < 0 or not amplifications or min(amplifications) <= 0:
        raise ValueError(f"need max_lag_steps >= 0 and amplifications > 0 (got {max_lag_steps}, {amplifications})")
    rel = b / b[0]
    crossings = np.column_stack(
        [health_crossings(start_collateral, start_debt, liquidation_threshold, b[0] * rel**a) for a in amplifications]
    ).astype(float)
    lags = range(max_lag_steps + 1)
    cross_cols = lagged_covariates(crossings, lags)
    names = [f"cross_k{a:g}_lag{lag}" for a in amplifications for lag in lags]
    coll = np.asarray(start_collateral, dtype=float)
    debt = np.asarray(start_debt, dtype=float)
    exposure = ((coll + debt) * p[0]).sum(axis=0)
    weights = exposure / exposure.sum() if exposure.sum() > 0 else np.full(p.shape[1], 1.0 / p.shape[1])
    abs_ret = np.concatenate([[0.0], np.abs(np.diff(np.log(p), axis=0)) @ weights])
    cols = np.column_stack([cross_cols, lagged_covariates(abs_ret, [1])])
    return cols, (*names, "abs_return_lag1")


def fit_hawkes_liquidations(
    onset_steps: np.ndarray,
    n_steps: int,
    baseline_prices: np.ndarray,
    fundamental_prices: np.ndarray,
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    amplifications: tuple[float, ...] = AMPLIFICATIONS,
    max_lag_steps: int = MAX_LAG_STEPS,
) -> ExogenousHawkesFit:
    """`fit_hawkes_exogenous` of distress onsets per step on `liquidation_covariates`.

    onset_steps: the step of each distress onset (`distress_onsets`; integers in [0, n_steps)); n_steps: steps
    observed, = rows of the price arrays (row t = prices at the end of step t; for a model run, steps 0..T: T + 1 rows).
    """
    steps = np.asarray(onset_steps, dtype=np.int64)
    for name, arr in (("baseline_prices", baseline_prices), ("fundamental_prices", fundamental_prices)):
        if np.ndim(arr) != 2 or len(arr) != n_steps:
            raise ValueError(f"{name} must have n_steps = {n_steps} rows (got shape {np.shape(arr)})")
    if np.any((steps < 0) | (steps >= n_steps)):
        raise ValueError(f"onset_steps must lie in [0, {n_steps}) (got {steps.min()}..{steps.max()})")
    x, names = liquidation_covariates(
        baseline_prices,
        fundamental_prices,
        start_collateral,
        start_debt,
        liquidation_threshold,
        amplifications,
        max_lag_steps,
    )
    return fit_hawkes_exogenous(step_counts(steps, n_steps), x, names)


def hawkes_branching_ratio(
    onset_steps: np.ndarray,
    n_steps: int,
    baseline_prices: np.ndarray,
    fundamental_prices: np.ndarray,
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    min_events: int = MIN_EVENTS,
) -> float:
    """The branching ratio n estimated from distress onsets with a non-liquidation baseline
    (`fit_hawkes_liquidations`): the expected number of distress episodes each one triggers through the impact of
    liquidation sales, the quantity the cascade graph's `branching_ratio` measures event by event. NaN with fewer
    than `min_events` (default 30) onsets. Arguments as in `fit_hawkes_liquidations`."""
    if len(np.asarray(onset_steps)) < min_events:
        return float("nan")
    return fit_hawkes_liquidations(
        onset_steps,
        n_steps,
        baseline_prices,
        fundamental_prices,
        start_collateral,
        start_debt,
        liquidation_threshold,
    ).n


def pooled_hawkes_branching_ratio(counts: Sequence[np.ndarray], covariates: Sequence[np.ndarray]) -> ExogenousHawkesFit:
    """One discrete-time Hawkes fit to several runs: one branching ratio, kernel and baseline coefficients shared,
    each run's own counts per step (T_i,) and covariates (T_i, K). Runs are laid end to end with an empty gap as
    long as the longest run between them, so that no run's events excite the next (the kernel's longest mean
    delay is a twentieth of the series). Returns the fit (`.n` is the pooled estimate)."""
    if len(counts) == 0 or len(counts) != len(covariates):
        raise ValueError(
            f"need one covariate array per run and at least one run (got {len(counts)}, {len(covariates)})"
        )
    xs = [np.asarray(x, dtype=float) for x in covariates]
    ys = [np.asarray(y, dtype=float) for y in counts]
    k = xs[0].shape[1]
    if any(x.ndim != 2 or x.shape[1] != k or len(x) != len(y) for x, y in zip(xs, ys, strict=True)):
        raise ValueError("every run needs (T_i, K) covariates with one row per count and the same K")
    gap = max(len(y) for y in ys)
    y_all = np.concatenate([part for y in ys for part in (y, np.zeros(gap))])
    x_all = np.concatenate([part for x in xs for part in (x, np.zeros((gap, k)))])
    return fit_hawkes_exogenous(y_all, x_all)
