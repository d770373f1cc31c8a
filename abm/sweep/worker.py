"""The pure function every backend runs: one configuration and one seed in, one flat row (and tables) out.

`execute(task)` never raises for a failing run: the row gets ``status = "error"`` and the exception's one-line
message, and the sweep goes on. It depends only on its argument (the configuration, the seed, the run length),
so the same task gives a bit-identical row in this process, in a process pool or on a Dask worker.

A task may name a counterfactual twin (`abm.run.TWINS`); the worker then calls the same `abm.run(..., twin=...)`
as the command line does, and the row holds the twin's measures too.

Besides every scalar of `RunResult.summary`, the row carries a few metrics derived here from the run's tables
(`derived_metrics`): how far below its fundamental the market overshot, and how late liquidations landed; and the
columns of the experiment's named extra metrics. The experiment's named per-run tables come back beside the row
(`RunOutput.tables`) for the sweep's store to keep (`abm.sweep.outputs`).
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from abm.config import NUMERAIRE, ModelConfig
from abm.recording.recorder import lending_events

ID_COLUMNS = ("run_index", "point", "replicate", "seed")
STATUS_COLUMNS = ("status", "error", "wall_seconds")
DROPPED_SUMMARY_KEYS = ("seed", "wall_seconds")  # already in the row's own columns


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep. `config` is a validated configuration as a plain dict (ModelConfig.model_dump);
    `params` are the point's varied values as they appear in runs.parquet; `save_dir` (absolute) receives the
    run's full tables (`RunResult.save`) when its time series is kept, else None."""

    run_index: int
    point: int
    replicate: int
    seed: int
    steps: int  # run length (steps)
    params: dict[str, Any]
    config: dict[str, Any]
    save_dir: str | None = None
    tables: tuple[str, ...] = ()  # names of per-run tables to return (abm.sweep.outputs.TABLES)
    metrics: tuple[str, ...] = ()  # names of extra metrics to add to the row (abm.sweep.outputs.METRICS)
    twin: str | None = None  # counterfactual twin run beside it (abm.run.TWINS), its measures in the row


@dataclass
class RunOutput:
    """What one run returns to the sweep: its flat row and its named per-run tables (empty for a failed run)."""

    row: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def execute(task: RunTask) -> RunOutput:
    """Run one task; return its flat row (ids, parameters, status, error, wall_seconds (s), metrics) and tables."""
    from abm.run import run
    from abm.sweep.outputs import METRICS, TABLES

    start = time.perf_counter()
    row: dict[str, Any] = {
        "run_index": task.run_index,
        "point": task.point,
        "replicate": task.replicate,
        "seed": task.seed,
        **task.params,
    }
    try:
        config = ModelConfig.model_validate(task.config)
        result = run(config, seed=task.seed, steps=task.steps, keep_model=False, twin=task.twin)
        metrics = {k: _scalar(v) for k, v in result.summary.items() if k not in DROPPED_SUMMARY_KEYS}
        metrics.update(derived_metrics(result.timeseries, lending_events(result.events), config.symbols[1:]))
        for name in task.metrics:
            metrics.update({k: _scalar(v) for k, v in METRICS[name](result).items()})
        tables = {name: TABLES[name](result) for name in task.tables}
        if task.save_dir is not None:
            result.save(task.save_dir, figures=False)
    except Exception as exc:  # a failing run is a row, not the end of the sweep
        row.update(status="error", error=_one_line(exc), wall_seconds=time.perf_counter() - start)
        return RunOutput(row)
    row.update(status="ok", error=None, wall_seconds=time.perf_counter() - start)
    row.update(metrics)
    return RunOutput(row, tables)


def derived_metrics(timeseries: pd.DataFrame, events: pd.DataFrame, risky: list[str]) -> dict[str, float]:
    """Metrics of one run computed from its tables (not in `RunResult.summary`).

    - ``price_overshoot_A``: the largest discount of asset A's market price to its fundamental over the run,
      ``max_t (1 - p_t / f_t)`` clipped at 0 (fraction): how far forced selling pushed the market past the value.
    - ``liquidation_hf_mean``: mean health factor of liquidated accounts just before liquidation, weighted by
      repaid USD (NaN with no liquidations). 1 = liquidated the moment HF crossed 1; lower = liquidated late.
    - ``liquidation_overshoot``: the same weighted mean of ``max(0, 1 - HF)``: how far past the threshold
      accounts fell before a liquidator reached them (fraction of their debt value that the threshold lost).
    - ``oracle_gap_at_liquidation``: mean of ``oracle / market - 1`` for the seized risky collateral at each
      liquidation, weighted by repaid USD (fraction; > 0: the oracle lagged above a falling market).
    """
    out: dict[str, float] = {}
    for s in risky:
        p = timeseries[f"price_{s}"].to_numpy(dtype=float)
        f = timeseries[f"fundamental_{s}"].to_numpy(dtype=float)
        out[f"price_overshoot_{s}"] = float(max(0.0, np.max(1.0 - p / f))) if len(p) else math.nan
    if len(events):
        w = events["repaid_usd"].to_numpy(dtype=float)
        hf = events["hf_before"].to_numpy(dtype=float)
        ok = np.isfinite(hf) & (w > 0)
        if ok.any():
            out["liquidation_hf_mean"] = float(np.average(hf[ok], weights=w[ok]))
            out["liquidation_overshoot"] = float(np.average(np.maximum(0.0, 1.0 - hf[ok]), weights=w[ok]))
        else:
            out["liquidation_hf_mean"] = out["liquidation_overshoot"] = math.nan
        risky_coll = (events["collateral_asset"] != NUMERAIRE).to_numpy() & (w > 0)
        if risky_coll.any():
            gap = events["price"].to_numpy(dtype=float) / events["market_price"].to_numpy(dtype=float) - 1.0
            out["oracle_gap_at_liquidation"] = float(np.average(gap[risky_coll], weights=w[risky_coll]))
        else:
            out["oracle_gap_at_liquidation"] = math.nan
    else:
        out["liquidation_hf_mean"] = out["liquidation_overshoot"] = out["oracle_gap_at_liquidation"] = math.nan
    return out


def metric_names(config: ModelConfig, extra: tuple[str, ...] = (), twin: str | None = None) -> list[str]:
    """The metric columns a run of `config` adds to its row (summary keys, with the `twin`'s when it has one,
    derived metrics and the columns of the named `extra` metrics), found by a tiny run (at most 10 traders, 3
    steps)."""
    from abm.run import run
    from abm.sweep.outputs import METRICS

    small = config.with_overrides({"traders.n_traders": min(config.traders.n_traders, 10), "steps": 3})
    result = run(small, seed=0, keep_model=False, twin=twin)
    names = [k for k in result.summary if k not in DROPPED_SUMMARY_KEYS]
    names += list(derived_metrics(result.timeseries, result.events, small.symbols[1:]))
    for name in extra:
        names += list(METRICS[name](result))
    return names


def _scalar(value: Any) -> Any:
    """A metric value for the row: numpy scalars as Python scalars, and an undefined value (None in the summary)
    as NaN, so that a metric no run of the sweep defines still has its (all-NaN) column in runs.parquet."""
    if value is None:
        return math.nan
    if isinstance(value, np.generic):
        return value.item()
    return value


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    loc = f" [{where.filename.rsplit('/', 1)[-1]}:{where.lineno}]" if where else ""
    return f"{type(exc).__name__}: {text}{loc}"[:2000]
