"""What a sweep keeps of each run beyond its row: named per-run tables and named extra metrics.

An experiment file chooses them in its `[outputs]` table::

    [outputs]
    tables = ["events", "cascades"]        # per-run tables, stored as OUT/<name>.parquet (one row set per run)
    metrics = ["hawkes", "endogenous_share"]  # extra columns of runs.parquet

Every entry is a function of a `RunResult`: a table function returns a DataFrame (the store adds `run_index`), a
metric function a dict of scalar columns. Both run inside the sweep worker, so they are computed the same way in
every process and on every backend. Register a new one by adding it to `TABLES` or `METRICS`; the experiment file
is validated against these names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from abm.run import RunResult

TableFunction = Callable[["RunResult"], pd.DataFrame]
MetricFunction = Callable[["RunResult"], dict[str, Any]]


def events_table(result: RunResult) -> pd.DataFrame:
    """One row per liquidation (`RunResult.events`: step, account, repaid, seized, HF before, endogenous share...)."""
    return result.events


def cascades_table(result: RunResult) -> pd.DataFrame:
    """One row per cascade tree of the main-parent forest: root event, size (events), depth, volume (USD), steps."""
    from abm.contagion.cascade import cascade_table

    return cascade_table(result.cascade)


def write_offs_table(result: RunResult) -> pd.DataFrame:
    """One row per bad-debt write-off and who bore it (reserves, lenders, dilution; USD)."""
    return result.write_offs


def auctions_table(result: RunResult) -> pd.DataFrame:
    """One row per liquidation auction (`RunResult.auctions`: kick and settle steps, tab, raised, lot, sold,
    clearing and market price, bad debt, shortfall; empty with liquidators.mechanism = "keeper")."""
    return result.auctions


def hawkes_inputs_table(result: RunResult) -> pd.DataFrame:
    """One row per step: ``step``, ``onsets`` (distress onsets, `abm.contagion.liquidation_hawkes.distress_onsets`)
    and the covariates of the summary's Hawkes baseline (`liquidation_covariates` of the run's recorded baseline
    crossings, one column each), so that runs can be fitted together (`pooled_hawkes_branching_ratio`). Empty for a
    run without starting positions or without the baseline crossing columns (one saved before they were kept)."""
    from abm.analysis.metrics import hawkes_inputs
    from abm.contagion.hawkes import step_counts
    from abm.contagion.liquidation_hawkes import distress_onsets, gross_exposure_weights, liquidation_covariates

    ts = result.timeseries
    inputs = hawkes_inputs(ts, result.config.symbols[1:])
    if result.start_collateral is None or result.start_debt is None or inputs is None:
        return pd.DataFrame()
    crossings, fundamental_prices = inputs
    weights = gross_exposure_weights(result.start_collateral, result.start_debt, fundamental_prices[0])
    x, names = liquidation_covariates(crossings, fundamental_prices, weights)
    table = pd.DataFrame(x, columns=list(names))
    table.insert(0, "onsets", step_counts(distress_onsets(result.events), len(ts)))
    table.insert(0, "step", ts["step"].to_numpy())
    return table


def hawkes_metric(result: RunResult) -> dict[str, Any]:
    """Hawkes estimates of the branching ratio from liquidation times alone (`abm.contagion.study.hawkes_metrics`)."""
    from abm.contagion.study import hawkes_metrics, scenario_breaks

    return hawkes_metrics(result.events, result.steps, result.seed, scenario_breaks(result.config))


def endogenous_share_metric(result: RunResult) -> dict[str, Any]:
    """``mean_endogenous_share``: mean over liquidations of the share of the lost health that earlier liquidation
    sales caused (the cascade graph's soft attribution; NaN without liquidations)."""
    from abm.contagion.study import mean_endogenous_share

    return {"mean_endogenous_share": mean_endogenous_share(result.events)}


def lst_channel_metric(result: RunResult) -> dict[str, Any]:
    """Staking collateral's contagion channel in the ex-ante exposure structure at step 0 (re-built from the run's
    configuration and seed; `abm.contagion.staking_channel.staking_channel`): ``lst_impact_share``,
    ``depeg_debtrank``, ``depeg_distress_looped``, ``depeg_distress_unlooped``. Needs `lst.enabled`."""
    from abm.contagion.staking_channel import staking_channel
    from abm.model import ReflexivityModel

    return staking_channel(ReflexivityModel(result.config, rng=result.seed, steps=result.steps))


# The busiest window compared with the 40-minute cascade of 10 October 2025 (Amberdata: 20:50-21:30 UTC), steps.
CASCADE_WINDOW_STEPS = 40
# USD utilisation read as "the pool ran dry": within 3 points of full, lenders can withdraw almost nothing.
FULL_UTILISATION = 0.97


def validation_metric(result: RunResult) -> dict[str, Any]:
    """The per-run quantities docs/validation.md puts beside historical figures, all dimensionless or in minutes
    (one step = one minute). t = 0 is the first scripted shock's onset (`summary["shock_step"]`); "at shock start"
    is the row of step t - 1, the state the shock met; liquidation quantities count the liquidations from t = 0 to
    the end of the run (a liquidator outage may hold them back past the shock window). NaN without a shock.

    - ``collateral_liquidated_share``: collateral seized (USD at the oracle) / total collateral at shock start;
    - ``debt_repaid_share``: debt repaid by liquidators / total debt at shock start;
    - ``bad_debt_share``: bad debt written off from t = 0 on / total debt at shock start;
    - ``accounts_liquidated_share``: accounts liquidated at least once / active traders at step 0;
    - ``utilisation_start_USD``, ``utilisation_peak_USD``, ``borrow_rate_start_USD``, ``borrow_rate_peak_USD``:
      the USD reserve's utilisation and annual borrow rate at shock start and their peaks from t = 0 on;
    - ``minutes_to_full_utilisation``: from t = 0 to USD utilisation >= `FULL_UTILISATION` (NaN if never);
    - ``busiest_minute_share``, ``busiest_window_share``: share of the seized collateral (USD) in the busiest step
      and in the busiest `CASCADE_WINDOW_STEPS` consecutive steps;
    - ``minutes_to_first_liquidation``, ``minutes_to_90pct_liquidated``: from t = 0 to the first liquidation and
      to the step by which 90% of the seized collateral (USD) was seized.
    """
    from abm.config import NUMERAIRE
    from abm.recording.recorder import lending_events

    keys = (
        "collateral_liquidated_share",
        "debt_repaid_share",
        "bad_debt_share",
        "accounts_liquidated_share",
        f"utilisation_start_{NUMERAIRE}",
        f"utilisation_peak_{NUMERAIRE}",
        f"borrow_rate_start_{NUMERAIRE}",
        f"borrow_rate_peak_{NUMERAIRE}",
        "minutes_to_full_utilisation",
        "busiest_minute_share",
        "busiest_window_share",
        "minutes_to_first_liquidation",
        "minutes_to_90pct_liquidated",
    )
    out: dict[str, Any] = dict.fromkeys(keys, math.nan)
    onset = result.summary.get("shock_step")
    ts = result.timeseries.set_index("step")
    if onset is None or onset < 1 or onset > ts.index.max():
        return out
    at_start = ts.loc[onset - 1]
    after = ts.loc[onset:]
    events = lending_events(result.events)  # the pool's liquidations: seized collateral and repaid debt
    events = events[events["step"] >= onset] if len(events) else events

    collateral0 = float(at_start["total_collateral_usd"])
    debt0 = float(at_start["total_debt_usd"])
    seized = float(events["seized_usd"].sum()) if len(events) else 0.0
    repaid = float(events["repaid_usd"].sum()) if len(events) else 0.0
    bad_debt = float(ts["bad_debt_usd"].iloc[-1] - at_start["bad_debt_usd"])  # a cumulative column
    if collateral0 > 0:
        out["collateral_liquidated_share"] = seized / collateral0
    if debt0 > 0:
        out["debt_repaid_share"] = repaid / debt0
        out["bad_debt_share"] = bad_debt / debt0
    n_accounts = int(ts["n_active_traders"].iloc[0])
    if n_accounts > 0:
        out["accounts_liquidated_share"] = (events["account"].nunique() if len(events) else 0) / n_accounts

    utilisation, rate = f"utilisation_{NUMERAIRE}", f"borrow_rate_{NUMERAIRE}"
    out[f"utilisation_start_{NUMERAIRE}"] = float(at_start[utilisation])
    out[f"utilisation_peak_{NUMERAIRE}"] = float(after[utilisation].max())
    out[f"borrow_rate_start_{NUMERAIRE}"] = float(at_start[rate])
    out[f"borrow_rate_peak_{NUMERAIRE}"] = float(after[rate].max())
    full = after.index[after[utilisation].to_numpy() >= FULL_UTILISATION]
    if len(full):
        out["minutes_to_full_utilisation"] = float(full.min() - onset)

    # timing and clustering on seized collateral: the historical figures count liquidated collateral
    if seized > 0:
        per_step = events.groupby("step")["seized_usd"].sum().reindex(after.index, fill_value=0.0).to_numpy()
        steps = after.index.to_numpy()
        out["busiest_minute_share"] = float(per_step.max() / seized)
        window = np.convolve(per_step, np.ones(CASCADE_WINDOW_STEPS))[: len(per_step)]  # trailing sums
        out["busiest_window_share"] = float(window.max() / seized)
        out["minutes_to_first_liquidation"] = float(steps[np.argmax(per_step > 0)] - onset)
        cumulative = np.cumsum(per_step) / seized
        out["minutes_to_90pct_liquidated"] = float(steps[np.argmax(cumulative >= 0.9 - 1e-12)] - onset)
    return out


TABLES: dict[str, TableFunction] = {
    "events": events_table,
    "cascades": cascades_table,
    "write_offs": write_offs_table,
    "auctions": auctions_table,
    "hawkes_inputs": hawkes_inputs_table,
}
METRICS: dict[str, MetricFunction] = {
    "hawkes": hawkes_metric,
    "endogenous_share": endogenous_share_metric,
    "validation": validation_metric,
    "lst_channel": lst_channel_metric,
}
