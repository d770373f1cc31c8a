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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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


def hawkes_metric(result: RunResult) -> dict[str, Any]:
    """Hawkes estimates of the branching ratio from liquidation times alone (`abm.contagion.study.hawkes_metrics`)."""
    from abm.contagion.study import hawkes_metrics, scenario_breaks

    return hawkes_metrics(result.events, result.steps, result.seed, scenario_breaks(result.config))


def endogenous_share_metric(result: RunResult) -> dict[str, Any]:
    """``mean_endogenous_share``: mean over liquidations of the share of the lost health that earlier liquidation
    sales caused (the cascade graph's soft attribution; NaN without liquidations)."""
    from abm.contagion.study import mean_endogenous_share

    return {"mean_endogenous_share": mean_endogenous_share(result.events)}


TABLES: dict[str, TableFunction] = {
    "events": events_table,
    "cascades": cascades_table,
    "write_offs": write_offs_table,
}
METRICS: dict[str, MetricFunction] = {
    "hawkes": hawkes_metric,
    "endogenous_share": endogenous_share_metric,
}
