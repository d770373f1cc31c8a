"""The Hawkes branching ratio of a run's liquidations, with a baseline driven by the path prices would have taken
without liquidation sales (docs/contagion.md, Hawkes check).

Two choices make the fit measure what the cascade graph's `branching_ratio` measures:

- **Events are distress onsets**, the step an account's health factor first showed below 1 (one per account and
  episode), not the steps liquidators executed. Liquidators work through a queue of liquidatable accounts at
  their own pace, and a queue's service bursts look like self-excitation to a fit of execution times (on `crash`
  at its defaults such a fit gives 0.42-0.53 where the attribution gives 0.17-0.19).
- **The baseline counts the live book's crossings along the non-liquidation price path**: at every step the model
  counts the lending accounts, with the positions they hold at that step, whose health factor at the oracle's
  prices less the decayed impact of liquidation sales the oracle shows is below 1 and was not at the previous step
  (the per-step columns `baseline_crossings_x<a>`, `abm.recording.baseline`). Health is measured at oracle prices,
  so the counts carry the oracle's delay (1 + latency steps; 21 steps in `black_thursday`'s congestion). Besides
  that path (a = 1) the model follows it amplified, p_0 (p_t / p_0)^a for a = 1.5 and 2, which lets the baseline
  anticipate crossings the path alone does not quite reach; the fit weighs the three. The graph's branching ratio
  counts as offspring only what liquidation sales caused; fundamental moves and other traders' trading are its
  exogenous part, so they belong in the baseline. A baseline from the fundamental path alone reads other traders'
  selling as self-excitation (on `contagion`, 0.87-1.0 against 0.36-0.39).
- **The positions are live**: positions opened or changed after step 0 are in the baseline. A baseline of positions
  frozen at step 0 (`health_crossings` along the same path) misses them, and the fit read their crossings as
  self-excitation: on `contagion` 0.46 against 0.22 for the cascade graph. `health_crossings` stays as a pure
  function of frozen positions, with which the tests build a known baseline for simulated onsets.

`liquidation_covariates` builds the baseline's covariates from those counts, `hawkes_branching_ratio` is the
estimate every run summary reports, and `pooled_hawkes_branching_ratio` fits one branching ratio to several runs
(one to two dozen active steps per run leave a single run's fit noisy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from abm.contagion.hawkes import ExogenousHawkesFit, fit_hawkes_exogenous, lagged_covariates, step_counts
from abm.recording.baseline import BASELINE_AMPLIFICATIONS


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


def distress_onsets(events: pd.DataFrame) -> np.ndarray:
    """The steps at which the lending pool's liquidated accounts entered distress, one per account and episode:
    the distinct (`account`, `distress_step`) pairs of a run's lending events (a partially liquidated account that
    stays below health factor 1 is liquidated again in the same episode; one that recovered and fell again starts
    a new one). Perp liquidations are left out: the baseline (the lending book's crossings) does not cover perp
    positions, so with the perpetual venue on the estimate is the pool's. Returns sorted steps."""
    from abm.recording.recorder import lending_events

    events = lending_events(events)
    if len(events) == 0:
        return np.zeros(0, dtype=np.int64)
    episodes = events[["account", "distress_step"]].drop_duplicates()
    return np.sort(episodes["distress_step"].to_numpy(dtype=np.int64))


# Default design of `liquidation_covariates`. Amplifications (`BASELINE_AMPLIFICATIONS`, the model's): factors on
# the baseline path's log move, which let the baseline anticipate crossings the path alone does not quite reach; the
# fit weighs the paths. Lags (steps) beyond the oracle's own delay (which the model's counts already include):
# updaters' jitter, the deviation threshold and the heartbeat delay a post further, so 0..3. Longer free lags absorb
# offspring (which follow their parents by a few steps too): on simulated crashes with n = 0.5, lags 0..12 give
# n = 0.28-0.43, lags 0..3 n = 0.47-0.54 (tests/test_branching.py).
AMPLIFICATIONS = BASELINE_AMPLIFICATIONS
MAX_LAG_STEPS = 3
MIN_EVENTS = (
    30  # fewer distress onsets than this: no single-run fit (the baseline alone has 1 + 3 x 4 + 1 coefficients)
)


def gross_exposure_weights(collateral_tokens: np.ndarray, debt_tokens: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """(assets,) each asset's share of the positions' gross exposure, sum over accounts of (collateral + debt)
    tokens times `prices` (USD per token, (assets,)); the shares sum to 1 (equal shares when there is no exposure).
    collateral_tokens, debt_tokens: (accounts, assets) tokens; for the Hawkes baseline, the positions at step 0."""
    c = np.asarray(collateral_tokens, dtype=float)
    d = np.asarray(debt_tokens, dtype=float)
    p = np.asarray(prices, dtype=float)
    if c.ndim != 2 or d.shape != c.shape or p.shape != (c.shape[1],):
        raise ValueError(
            f"need (accounts, assets) collateral and debt of one shape and (assets,) prices "
            f"(got {c.shape}, {d.shape}, {p.shape})"
        )
    exposure = ((c + d) * p).sum(axis=0)
    total = exposure.sum()
    return exposure / total if total > 0 else np.full(len(p), 1.0 / len(p))


def liquidation_covariates(
    crossings: np.ndarray,
    fundamental_prices: np.ndarray,
    exposure_weights: np.ndarray,
    max_lag_steps: int = MAX_LAG_STEPS,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The covariates of a distress-onset Hawkes baseline, from the book's crossings along prices no liquidation
    sale moved and from the fundamentals (nothing from the cascade attribution):

    - ``cross_x<a>_lag<l>``: the new health-factor crossings along the amplified non-liquidation path
      (`crossings` column i: amplification a = `AMPLIFICATIONS`[i]; for a model run, the per-step
      ``baseline_crossings_x<a>`` columns), lagged l = 0..max_lag_steps steps;
    - ``abs_return_lag1``: |log return| of the fundamentals at the previous step (per step), averaged over assets
      with `exposure_weights`.

    crossings: (steps, len(AMPLIFICATIONS)) counts per step, >= 0; fundamental_prices: (steps, assets) USD per
    token (the numeraire's column constant); exposure_weights: (assets,) >= 0, summing to 1
    (`gross_exposure_weights` of the step-0 positions). Returns ((steps, K) array, names).
    """
    x = np.asarray(crossings, dtype=float)
    p = np.asarray(fundamental_prices, dtype=float)
    w = np.asarray(exposure_weights, dtype=float)
    if p.ndim != 2 or len(p) < 2 or np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise ValueError(f"fundamental_prices must be (steps >= 2, assets), finite and > 0 (got shape {p.shape})")
    if x.shape != (len(p), len(AMPLIFICATIONS)) or np.any(~np.isfinite(x)) or np.any(x < 0):
        raise ValueError(
            f"crossings must be (steps = {len(p)}, {len(AMPLIFICATIONS)} amplifications), finite and >= 0 "
            f"(got shape {x.shape})"
        )
    if w.shape != (p.shape[1],) or np.any(~np.isfinite(w)) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"exposure_weights must be ({p.shape[1]},) weights >= 0 summing to 1 (got {w})")
    if max_lag_steps < 0:
        raise ValueError(f"max_lag_steps must be >= 0 (got {max_lag_steps})")
    lags = range(max_lag_steps + 1)
    names = [f"cross_x{a:g}_lag{lag}" for a in AMPLIFICATIONS for lag in lags]
    abs_ret = np.concatenate([[0.0], np.abs(np.diff(np.log(p), axis=0)) @ w])
    cols = np.column_stack([lagged_covariates(x, lags), lagged_covariates(abs_ret, [1])])
    return cols, (*names, "abs_return_lag1")


def fit_hawkes_liquidations(
    onset_steps: np.ndarray,
    crossings: np.ndarray,
    fundamental_prices: np.ndarray,
    exposure_weights: np.ndarray,
    max_lag_steps: int = MAX_LAG_STEPS,
) -> ExogenousHawkesFit:
    """`fit_hawkes_exogenous` of distress onsets per step on `liquidation_covariates`.

    onset_steps: the step of each distress onset (`distress_onsets`; integers in [0, steps)); crossings,
    fundamental_prices, exposure_weights: as in `liquidation_covariates`, one row per step observed (row t = the end
    of step t; for a model run, steps 0..T: T + 1 rows).
    """
    steps = np.asarray(onset_steps, dtype=np.int64)
    n_steps = len(np.asarray(crossings))
    if np.any((steps < 0) | (steps >= n_steps)):
        raise ValueError(f"onset_steps must lie in [0, {n_steps}) (got {steps.min()}..{steps.max()})")
    x, names = liquidation_covariates(crossings, fundamental_prices, exposure_weights, max_lag_steps)
    return fit_hawkes_exogenous(step_counts(steps, n_steps), x, names)


def hawkes_branching_ratio(
    onset_steps: np.ndarray,
    crossings: np.ndarray,
    fundamental_prices: np.ndarray,
    exposure_weights: np.ndarray,
    min_events: int = MIN_EVENTS,
) -> float:
    """The branching ratio n estimated from distress onsets with a non-liquidation baseline
    (`fit_hawkes_liquidations`): the expected number of distress episodes each one triggers through the impact of
    liquidation sales, the quantity the cascade graph's `branching_ratio` measures event by event. NaN with fewer
    than `min_events` (default 30) onsets. Arguments as in `fit_hawkes_liquidations`."""
    if len(np.asarray(onset_steps)) < min_events:
        return float("nan")
    return fit_hawkes_liquidations(onset_steps, crossings, fundamental_prices, exposure_weights).n


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
