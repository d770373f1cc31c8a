"""Summary metrics of a run (docs/model.md, "Outputs"): drawdowns, losses, stylised facts of returns, and the
assembly of every summary key that comes from a run's tables (`summarise`), shock-window metrics included
(`abm.analysis.shock_window`).

Pure functions of the time-series and event tables and of the starting positions, so runs, saved runs, sweeps,
reports and tests compute them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from abm.analysis.shock_window import shock_window, shock_window_summary
from abm.config import NUMERAIRE

RETURNS_EVERY_STEPS = 5  # stylised facts on 5-minute returns: at one minute, single impact steps dominate


def max_drawdown(prices: np.ndarray) -> float:
    """Largest peak-to-trough fall of a price path, as a fraction in [0, 1)."""
    p = np.asarray(prices, dtype=float)
    if len(p) == 0:
        return float("nan")
    peak = np.maximum.accumulate(p)
    return float(np.max(1.0 - p / peak))


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


def autocorrelation(series: np.ndarray, lag: int = 1) -> float:
    """Sample autocorrelation of a series at `lag` (steps): sum of lagged products of deviations from the mean over
    their sum of squares. NaN for a constant series or one of `lag` + 2 values or fewer."""
    a = np.asarray(series, dtype=float)
    if len(a) <= lag + 2 or np.std(a) == 0:
        return float("nan")
    d = a - a.mean()
    return float((d[:-lag] * d[lag:]).sum() / (d**2).sum())


def abs_return_acf(returns: np.ndarray, lag: int = 1) -> float:
    """Autocorrelation of |returns| at `lag` (volatility clustering: > 0 in real markets)."""
    return autocorrelation(np.abs(np.asarray(returns, dtype=float)), lag)


def max_fourth_moment_share(returns: np.ndarray) -> float:
    """The largest single return's share of the sum of 4th powers of demeaned returns, max_i d_i^4 / sum_i d_i^4
    with d = r - mean(r) (in [1/n, 1]): near 1 when one return carries the kurtosis. NaN for fewer than 2
    returns or constant returns."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return float("nan")
    d4 = (r - r.mean()) ** 4
    total = d4.sum()
    return float(d4.max() / total) if total > 0 else float("nan")


def stylised_facts(prices: np.ndarray, prefix: str = "", every: int = RETURNS_EVERY_STEPS) -> dict[str, float]:
    """``return_kurtosis`` (excess), ``hill_tail_index`` and ``abs_return_acf`` (lag 1) of the log returns over
    `every` steps (non-overlapping, from step 0) of a price path, keys prefixed with `prefix`."""
    r = log_returns(prices, every)
    return {
        f"{prefix}return_kurtosis": excess_kurtosis(r),
        f"{prefix}hill_tail_index": hill_tail_index(r),
        f"{prefix}abs_return_acf": abs_return_acf(r),
    }


def price_matrix(timeseries: pd.DataFrame, risky: list[str], prefix: str) -> np.ndarray:
    """(steps + 1, assets) columns `<prefix><asset>` of the per-step table with the numeraire's column of ones
    first, then the risky assets in `risky` order (prefix "price_" for the market, "fundamental_" for the
    fundamental; USD/token)."""
    cols = [timeseries[f"{prefix}{a}"].to_numpy(dtype=float) for a in risky]
    return np.column_stack([np.ones(len(timeseries)), *cols])


def hawkes_inputs(timeseries: pd.DataFrame, risky: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-step inputs of `abm.contagion.liquidation_hawkes.hawkes_branching_ratio` from a run's per-step
    table: (new baseline crossings, (steps + 1, amplifications) counts from the ``baseline_crossings_x<a>`` columns
    in `BASELINE_AMPLIFICATIONS` order; fundamental prices, (steps + 1, assets) USD/token, numeraire first). None
    for a table without the crossing columns (a run saved before the model counted them)."""
    from abm.recording.baseline import baseline_crossing_columns

    columns = baseline_crossing_columns()
    if not set(columns) <= set(timeseries.columns):
        return None
    return timeseries[columns].to_numpy(dtype=float), price_matrix(timeseries, risky, "fundamental_")


def hawkes_estimate(
    timeseries: pd.DataFrame,
    events: pd.DataFrame,
    risky: list[str],
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
) -> float:
    """The summary's ``hawkes_branching_ratio``: `hawkes_branching_ratio` of the lending pool's distress onsets on
    the run's recorded baseline crossings (`hawkes_inputs`), the fundamentals' |returns| weighted by the step-0
    positions' gross exposure at step-0 fundamental prices. start_collateral, start_debt: (accounts, assets) tokens
    at step 0, numeraire first. NaN for a run without the crossing columns or with too few onsets."""
    from abm.contagion.liquidation_hawkes import distress_onsets, gross_exposure_weights, hawkes_branching_ratio

    inputs = hawkes_inputs(timeseries, risky)
    if inputs is None:
        return float("nan")
    crossings, fundamental_prices = inputs
    weights = gross_exposure_weights(start_collateral, start_debt, fundamental_prices[0])
    return hawkes_branching_ratio(distress_onsets(events), crossings, fundamental_prices, weights)


def lender_supply_change(timeseries: pd.DataFrame, risky: list[str]) -> float:
    """Relative change of lenders' total supply over the run: sum over reserves of `supplied_R` at the last row
    over the same at step 0, each valued at step-0 prices (so a price move alone changes nothing), minus 1. NaN
    without supply at step 0."""
    first = timeseries.iloc[0]
    price0 = {NUMERAIRE: 1.0, **{a: float(first[f"price_{a}"]) for a in risky}}
    value = sum(timeseries[f"supplied_{r}"].to_numpy(dtype=float) * p for r, p in price0.items())
    return float(value[-1] / value[0] - 1.0) if value[0] > 0 else float("nan")


def summarise(
    timeseries: pd.DataFrame,
    events: pd.DataFrame,
    risky: list[str],
    *,
    shocks: Iterable[tuple[int, int]],
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
    optimal_utilisation: float | None = None,
    adl: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The scalar summary (docs/model.md, "Outputs") that comes from the tables (cascade and distress metrics are
    added by the caller). Undefined values are None.

    shocks: (start, duration) of each scripted shock (`abm.analysis.shock_window.scripted_shocks`);
    start_collateral, start_debt: (accounts, assets) tokens at step 0, assets numeraire first (they weigh the
    Hawkes baseline's fundamental returns, `hawkes_estimate`); optimal_utilisation: the numeraire reserve's U* (for
    ``utilisation_recovery_steps``; None leaves the key out); adl: the run's ADL table when it ran the perpetual
    venue (`perp_summary` adds its keys; None leaves them out).
    """
    shocks = list(shocks)  # read twice: the shock-window metrics and the perp metrics
    steps = timeseries["step"].to_numpy()
    if not np.array_equal(steps, np.arange(len(timeseries))):
        raise ValueError("timeseries must hold one row per step from step 0")
    out: dict[str, Any] = {}
    market = {s: timeseries[f"price_{s}"].to_numpy(dtype=float) for s in risky}
    fundamental = {s: timeseries[f"fundamental_{s}"].to_numpy(dtype=float) for s in risky}
    for s in risky:
        out[f"max_drawdown_{s}"] = max_drawdown(market[s])
        out[f"fundamental_drawdown_{s}"] = max_drawdown(fundamental[s])
    event_steps = events["step"].to_numpy(dtype=np.int64) if len(events) else np.zeros(0, dtype=np.int64)
    numeraire = f"utilisation_{NUMERAIRE}"
    out.update(
        shock_window_summary(
            market,
            fundamental,
            event_steps,
            shocks,
            last_step=len(timeseries) - 1,
            numeraire_utilisation=timeseries[numeraire].to_numpy() if numeraire in timeseries else None,
            optimal_utilisation=optimal_utilisation,
        )
    )
    out["lender_supply_change"] = lender_supply_change(timeseries, risky)
    out["liquidation_volume_usd"] = float(timeseries["liquidation_volume_usd"].sum())
    out["n_liquidations"] = len(events)
    # lending and perp account ids are separate numberings: count distinct (venue, account)
    keys = ["venue", "account"] if "venue" in events.columns else ["account"]
    out["n_accounts_liquidated"] = len(events[keys].drop_duplicates()) if len(events) else 0
    last = timeseries.iloc[-1]
    out["bad_debt_usd"] = float(last["bad_debt_usd"])
    out["lender_loss_usd"] = float(last["lender_loss_usd"])
    out["dilution_usd"] = float(last["dilution_usd"])
    util_cols = [c for c in timeseries.columns if c.startswith("utilisation_")]
    brate_cols = [c for c in timeseries.columns if c.startswith("borrow_rate_")]
    out["peak_utilisation"] = float(timeseries[util_cols].to_numpy().max())
    out["max_borrow_rate"] = float(timeseries[brate_cols].to_numpy().max())
    main = risky[0]
    out.update(stylised_facts(market[main]))
    out.update(stylised_facts(fundamental[main], prefix="fundamental_"))
    out["max_fourth_moment_share"] = max_fourth_moment_share(log_returns(market[main]))
    out["hawkes_branching_ratio"] = hawkes_estimate(timeseries, events, risky, start_collateral, start_debt)
    if adl is not None:
        out.update(perp_summary(timeseries, adl, risky, shocks))
    if "borrow_capacity_usd" in timeseries.columns:  # a run with the risk manager (its columns)
        out.update(risk_manager_summary(timeseries, risky))
    return undefined_as_none(out)


def half_life_steps(series: np.ndarray) -> float:
    """Half-life (steps) of an AR(1) reading of a series: log(1/2) / log(a), a its lag-1 `autocorrelation`; NaN
    when a is not in (0, 1) (no mean reversion to measure, or none at all)."""
    a = autocorrelation(series, 1)
    return float(np.log(0.5) / np.log(a)) if 0.0 < a < 1.0 else float("nan")


def perp_summary(
    timeseries: pd.DataFrame, adl: pd.DataFrame, risky: list[str], shocks: Iterable[tuple[int, int]]
) -> dict[str, Any]:
    """Summary keys of a run with the perpetual venue (docs/perps.md), from its per-step table (the columns of
    `abm.recording.recorder.perp_columns`) and its ADL table:

    - adl_count: ADL fills; adl_volume_usd: their size times price (the bankruptcy price), USD;
    - insurance_fund_drawdown_usd: the insurance fund's largest fall from a running peak, USD;
    - peak_abs_premium: the largest |premium index| of any asset at any step (dimensionless);
    - mean_abs_premium: the mean over steps of the first risky asset's |premium index| (dimensionless);
    - premium_half_life_steps: the first risky asset's premium's half-life of mean reversion, log(1/2) / log(a)
      with a its lag-1 autocorrelation (steps; None when a is not in (0, 1), e.g. a premium that never moved);
    - funding_paid_usd: gross funding paid over the run by the positions that paid (book and vault included), USD;
    - perp_bad_debt_usd: losses of bankrupt perp positions that neither the insurance fund, the vault nor ADL
      covered (closed into the book at a loss), USD, at the end of the run;
    - perp_liquidation_volume_usd: notional of perp positions closed by the venue's engine over the run, USD;
    - cross_venue_share: in the shock window (`abm.analysis.shock_window.shock_window`), the basis traders' share
      of the forced spot selling's price impact, summed over risky assets: sum of max(-basis_spot_dm, 0) over
      sum of max(-basis_spot_dm, 0) + max(-spot_liquidation_dm, 0), per step. The perp book is separate from the
      spot market, so basis traders' spot sales are the perp venue's only trading channel into the spot price
      (the other is the index, read from the spot oracle); the liquidators' spot sales are the lending pool's.
      Other traders' discretionary deleveraging is in neither term. None without a shock window or without
      forced spot selling in it.
    """
    fund = timeseries["insurance_fund_usd"].to_numpy(dtype=float)
    premium = timeseries[[f"premium_{a}" for a in risky]].to_numpy(dtype=float)
    out: dict[str, Any] = {
        "adl_count": len(adl),
        "adl_volume_usd": float((adl["size"].to_numpy(dtype=float) * adl["price"].to_numpy(dtype=float)).sum()),
        "insurance_fund_drawdown_usd": float(np.max(np.maximum.accumulate(fund) - fund)) if len(fund) else 0.0,
        "peak_abs_premium": float(np.abs(premium).max()) if premium.size else float("nan"),
        "mean_abs_premium": float(np.abs(premium[:, 0]).mean()) if premium.size else float("nan"),
        "premium_half_life_steps": half_life_steps(premium[:, 0]) if premium.size else float("nan"),
        "funding_paid_usd": float(timeseries["funding_paid_usd"].sum()),
        "perp_bad_debt_usd": float(timeseries["perp_bad_debt_usd"].iloc[-1]) if len(timeseries) else 0.0,
        "perp_liquidation_volume_usd": float(timeseries["perp_liquidation_volume_usd"].sum()),
    }
    window = shock_window(shocks, last_step=len(timeseries) - 1)
    share = float("nan")
    if window is not None:
        rows = slice(window.onset, window.stop)
        basis = sum(np.clip(-timeseries[f"basis_spot_dm_{a}"].to_numpy()[rows], 0.0, None).sum() for a in risky)
        liq = sum(np.clip(-timeseries[f"spot_liquidation_dm_{a}"].to_numpy()[rows], 0.0, None).sum() for a in risky)
        if basis + liq > 0:
            share = float(basis / (basis + liq))
    out["cross_venue_share"] = share
    return out


def risk_manager_summary(timeseries: pd.DataFrame, risky: list[str]) -> dict[str, Any]:
    """Summary keys of a run with the risk manager (docs/model.md, "Adaptive risk parameters"), from the columns of
    `abm.recording.recorder.risk_columns`:

    - mean_ltv_A, min_ltv_A, mean_liquidation_threshold_A, min_liquidation_threshold_A: over the run's steps
      (fractions);
    - risk_parameter_changes: reserve updates over the run (steps at which a reserve's LT changed, summed over
      reserves); first_risk_change_step: the step of the first (None without any);
    - borrow_capacity_cost: what the manager cost in borrowing capacity, 1 - sum_t capacity_t / sum_t
      static_capacity_t, capacity being the largest debt the book's collateral supports at the current LTVs and
      static capacity the same positions' at the LTVs the run started with (a fraction; 0: no cost, < 0: the
      manager raised capacity); borrow_headroom_cost: the same for the unborrowed part of it (each account's
      max(capacity - debt, 0)), the capacity the book could still draw on.
    """
    out: dict[str, Any] = {}
    changes = 0
    first = math.inf
    for a in risky:
        ltv = timeseries[f"ltv_{a}"].to_numpy(dtype=float)
        lt = timeseries[f"liquidation_threshold_{a}"].to_numpy(dtype=float)
        out[f"mean_ltv_{a}"], out[f"min_ltv_{a}"] = float(ltv.mean()), float(ltv.min())
        out[f"mean_liquidation_threshold_{a}"] = float(lt.mean())
        out[f"min_liquidation_threshold_{a}"] = float(lt.min())
        moved = np.flatnonzero(np.diff(lt) != 0) + 1
        changes += len(moved)
        if len(moved):
            first = min(first, int(timeseries["step"].iloc[moved[0]]))
    out["risk_parameter_changes"] = changes
    out["first_risk_change_step"] = first if math.isfinite(first) else None
    for name in ("capacity", "headroom"):
        static = float(timeseries[f"static_borrow_{name}_usd"].sum())
        now = float(timeseries[f"borrow_{name}_usd"].sum())
        out[f"borrow_{name}_cost"] = 1.0 - now / static if static > 0 else float("nan")
    return out


def undefined_as_none(values: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinite floats to None (one spelling of "undefined", the one summary.json keeps); numpy scalars
    to Python scalars."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out
