"""The Hawkes branching ratio of a run's liquidations, with a baseline driven by the exogenous path only
(docs/contagion.md, Hawkes check).

`fundamental_only_crossings` counts the accounts that the fundamental price path alone would push below health
factor 1 (positions frozen at step 0); `liquidation_covariates` turns those counts (and amplified variants, lags and
fundamental returns) into the covariates of `abm.contagion.hawkes.fit_hawkes_exogenous`;
`hawkes_branching_ratio` is the estimate every run summary reports.
"""

from __future__ import annotations

import numpy as np

from abm.contagion.hawkes import ExogenousHawkesFit, fit_hawkes_exogenous, lagged_covariates, step_counts


def fundamental_only_crossings(
    collateral_tokens: np.ndarray,
    debt_tokens: np.ndarray,
    liquidation_threshold: np.ndarray,
    fundamental_prices: np.ndarray,
    chunk: int = 2048,
) -> np.ndarray:
    """New health-factor crossings per step that the fundamental price path alone would cause.

    collateral_tokens, debt_tokens: (accounts, assets) positions (tokens) frozen at the start. liquidation_threshold:
    (assets,) fractions (0 for an asset that does not count as collateral). fundamental_prices: (steps, assets)
    USD per token, row t = the fundamental at step t. The health factor is the cross-margin one, HF_t = sum_k c_k
    p_tk LT_k / sum_k d_k p_tk (an isolated account is its own cross account; a portfolio-margined account is
    approximated by it). Returns (steps,) integer counts: entry t is the number of accounts whose HF is below 1
    for the first time at step t. Accounts already below 1 at step 0 are excluded (the path did not push them
    under); accounts without debt never cross. Vectorised in chunks of `chunk` accounts: memory O(chunk x steps).
    """
    c = np.asarray(collateral_tokens, dtype=float)
    d = np.asarray(debt_tokens, dtype=float)
    lt = np.asarray(liquidation_threshold, dtype=float)
    p = np.asarray(fundamental_prices, dtype=float)
    if c.ndim != 2 or d.shape != c.shape:
        raise ValueError(
            f"collateral_tokens and debt_tokens must be (accounts, assets) of one shape: {c.shape}, {d.shape}"
        )
    if lt.shape != (c.shape[1],) or p.ndim != 2 or p.shape[1] != c.shape[1]:
        raise ValueError(
            f"liquidation_threshold must be (assets,) and fundamental_prices (steps, assets) with {c.shape[1]} assets "
            f"(got {lt.shape} and {p.shape})"
        )
    for name, arr in (("collateral_tokens", c), ("debt_tokens", d), ("fundamental_prices", p)):
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


# Default design of `liquidation_covariates`. Amplifications: factors on the fundamental log move, since the market
# in this model overshoots its fundamental by a factor the econometrician does not know (impact of non-liquidation
# trading, thin books); the fit weighs the paths. Lags (steps): a crossing reaches a liquidation through the oracle
# (1 + latency steps) and the liquidators' scan, so 0..3. Longer free lags absorb offspring (which follow their
# parents by a few steps too): on simulated crashes with n = 0.5, lags 0..12 give n = 0.28-0.43, lags 0..3
# n = 0.47-0.54 (tests/test_branching.py).
AMPLIFICATIONS = (1.0, 1.5, 2.0, 3.0)
MAX_LAG_STEPS = 3
MIN_EVENTS = 30  # fewer liquidations than this: no fit (the default baseline alone has 1 + 4 x 4 + 1 coefficients)


def liquidation_covariates(
    fundamental_prices: np.ndarray,
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    amplifications: tuple[float, ...] = AMPLIFICATIONS,
    max_lag_steps: int = MAX_LAG_STEPS,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The exogenous covariates of a liquidation-count Hawkes, from the fundamental path and the starting positions
    only (nothing from the market path or the cascade attribution):

    - ``cross_k<a>_lag<l>``: `fundamental_only_crossings` along the amplified fundamental path p_0 (p_t / p_0)^a
      (a = 1: the fundamental itself), lagged l = 0..max_lag_steps steps;
    - ``abs_return_lag1``: |log return| of the fundamentals at the previous step (per step), averaged over assets
      weighted by the starting positions' gross exposure (collateral + debt, USD).

    fundamental_prices: (steps, assets) USD per token (the numeraire's column constant); start_collateral and
    start_debt: (accounts, assets) tokens; liquidation_threshold: (assets,). Returns ((steps, K) array, names).
    """
    p = np.asarray(fundamental_prices, dtype=float)
    if p.ndim != 2 or len(p) < 2 or np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("fundamental_prices must be (steps >= 2, assets), finite and > 0")
    if max_lag_steps < 0 or not amplifications or min(amplifications) <= 0:
        raise ValueError(f"need max_lag_steps >= 0 and amplifications > 0 (got {max_lag_steps}, {amplifications})")
    rel = p / p[0]
    crossings = np.column_stack(
        [
            fundamental_only_crossings(start_collateral, start_debt, liquidation_threshold, p[0] * rel**a)
            for a in amplifications
        ]
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
    event_steps: np.ndarray,
    n_steps: int,
    fundamental_prices: np.ndarray,
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    amplifications: tuple[float, ...] = AMPLIFICATIONS,
    max_lag_steps: int = MAX_LAG_STEPS,
) -> ExogenousHawkesFit:
    """`fit_hawkes_exogenous` of liquidation counts per step on `liquidation_covariates`.

    event_steps: the step of each liquidation (integers in [0, n_steps)); n_steps: steps observed, = rows of
    fundamental_prices (row t = the fundamental at the end of step t; for a model run, steps 0..T: T + 1 rows).
    """
    p = np.asarray(fundamental_prices, dtype=float)
    if p.ndim != 2 or len(p) != n_steps:
        raise ValueError(f"fundamental_prices must have n_steps = {n_steps} rows (got shape {p.shape})")
    steps = np.asarray(event_steps, dtype=np.int64)
    if np.any((steps < 0) | (steps >= n_steps)):
        raise ValueError(f"event_steps must lie in [0, {n_steps}) (got {steps.min()}..{steps.max()})")
    x, names = liquidation_covariates(
        p, start_collateral, start_debt, liquidation_threshold, amplifications, max_lag_steps
    )
    return fit_hawkes_exogenous(step_counts(steps, n_steps), x, names)


def hawkes_branching_ratio(
    event_steps: np.ndarray,
    n_steps: int,
    fundamental_prices: np.ndarray,
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    min_events: int = MIN_EVENTS,
) -> float:
    """The branching ratio n of liquidations estimated with an exogenous baseline (`fit_hawkes_liquidations`):
    the expected number of liquidations each liquidation triggers, through any channel. The cascade graph's
    `branching_ratio` counts only the direct one (a liquidation's sale moving a later account's health), so it is
    the smaller of the two wherever other traders react to liquidation-driven moves (docs/contagion.md, "Hawkes
    check"). NaN with fewer than `min_events` (default 30) liquidations. Arguments as in
    `fit_hawkes_liquidations`."""
    if len(np.asarray(event_steps)) < min_events:
        return float("nan")
    return fit_hawkes_liquidations(
        event_steps, n_steps, fundamental_prices, start_collateral, start_debt, liquidation_threshold
    ).n
