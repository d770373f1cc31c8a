"""Summary metrics of a run (SPEC 5): drawdowns and amplification, losses, stylised facts of returns.

Pure functions of the time-series and event tables, so sweeps, reports and tests compute them the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MIN_FUNDAMENTAL_DRAWDOWN = 0.01  # below a 1% fall amplification is undefined (NaN)


def max_drawdown(prices: np.ndarray) -> float:
    """Largest peak-to-trough fall of a price path, as a fraction in [0, 1)."""
    p = np.asarray(prices, dtype=float)
    if len(p) == 0:
        return float("nan")
    peak = np.maximum.accumulate(p)
    return float(np.max(1.0 - p / peak))


def amplification(market: np.ndarray, fundamental: np.ndarray) -> float:
    """Market drawdown over fundamental drawdown; NaN where the fundamental fell less than 1%.

    Above 1: trading (forced selling above all) deepened the fall beyond the exogenous move.
    """
    fd = max_drawdown(fundamental)
    if not fd >= MIN_FUNDAMENTAL_DRAWDOWN:
        return float("nan")
    return max_drawdown(market) / fd


def log_returns(prices: np.ndarray, every: int = 1) -> np.ndarray:
    """Log returns over `every` steps (non-overlapping)."""
    p = np.asarray(prices, dtype=float)[::every]
    return np.diff(np.log(p))


def excess_kurtosis(returns: np.ndarray) -> float:
    """Fisher (excess) kurtosis of returns: 0 for a Gaussian; fat tails > 0. NaN for fewer than 4 returns."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 4 or np.std(r) == 0:
        return float("nan")
    n = len(r)
    d = r - r.mean()
    m2, m4 = (d**2).mean(), (d**4).mean()
    g2 = m4 / m2**2 - 3.0
    # the bias-corrected sample estimator (scipy.stats.kurtosis with bias=False)
    return float((n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0))


def hill_tail_index(returns: np.ndarray, tail_fraction: float = 0.05) -> float:
    """Hill estimator of the tail index of |returns| over the largest `tail_fraction` (lower = fatter tail)."""
    x = np.sort(np.abs(np.asarray(returns, dtype=float)))[::-1]
    x = x[x > 0]
    k = int(len(x) * tail_fraction)
    if k < 5:
        return float("nan")
    logs = np.log(x[:k]) - np.log(x[k])
    mean = logs.mean()
    return float(1.0 / mean) if mean > 0 else float("nan")


def abs_return_acf(returns: np.ndarray, lag: int = 1) -> float:
    """Autocorrelation of |returns| at `lag` (volatility clustering: > 0 in real markets)."""
    a = np.abs(np.asarray(returns, dtype=float))
    if len(a) <= lag + 2 or np.std(a) == 0:
        return float("nan")
    x, y = a[:-lag] - a.mean(), a[lag:] - a.mean()
    return float((x * y).sum() / ((a - a.mean()) ** 2).sum())


def summarise(timeseries: pd.DataFrame, events: pd.DataFrame, risky: list[str], returns_every: int = 1) -> dict:
    """The scalar summary of SPEC 5 that comes from the tables (cascade metrics are added by the caller)."""
    out: dict[str, float] = {}
    for s in risky:
        out[f"max_drawdown_{s}"] = max_drawdown(timeseries[f"price_{s}"].to_numpy())
        out[f"fundamental_drawdown_{s}"] = max_drawdown(timeseries[f"fundamental_{s}"].to_numpy())
        out[f"amplification_{s}"] = amplification(
            timeseries[f"price_{s}"].to_numpy(), timeseries[f"fundamental_{s}"].to_numpy()
        )
    out["liquidation_volume_usd"] = float(timeseries["liquidation_volume_usd"].sum())
    out["n_liquidations"] = len(events)
    out["n_accounts_liquidated"] = int(events["account"].nunique()) if len(events) else 0
    last = timeseries.iloc[-1]
    out["bad_debt_usd"] = float(last["bad_debt_usd"])
    out["lender_loss_usd"] = float(last["lender_loss_usd"])
    out["dilution_usd"] = float(last["dilution_usd"])
    util_cols = [c for c in timeseries.columns if c.startswith("utilisation_")]
    brate_cols = [c for c in timeseries.columns if c.startswith("borrow_rate_")]
    out["peak_utilisation"] = float(timeseries[util_cols].to_numpy().max())
    out["max_borrow_rate"] = float(timeseries[brate_cols].to_numpy().max())
    r = log_returns(timeseries[f"price_{risky[0]}"].to_numpy(), returns_every)
    out["return_kurtosis"] = excess_kurtosis(r)
    out["hill_tail_index"] = hill_tail_index(r)
    out["abs_return_acf"] = abs_return_acf(r)
    return {k: (float(v) if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
