"""Parameter sweeps, the one driver of many runs: experiment files (grids, sampled designs, case lists), a local
process-pool and a Dask backend, the runs.parquet store with per-run tables and named extra metrics ([outputs],
`abm.sweep.outputs`), and the sweep report.

    from abm.sweep import load_experiment, run_sweep, sweep_report
    run_sweep("experiments/leverage_vs_depth.toml", "results/leverage_vs_depth", workers=2)
    sweep_report("results/leverage_vs_depth")

The same from the command line: `abm sweep EXPERIMENT.toml --out DIR [--workers N | --scheduler ADDRESS]
[--resume]` and `abm report DIR`. See docs/sweeps.md.

Names are imported lazily, so a worker process that only needs `abm.sweep.worker` does not import the plotting
stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Experiment": "abm.sweep.experiment",
    "load_experiment": "abm.sweep.experiment",
    "parse_experiment": "abm.sweep.experiment",
    "seed_for": "abm.sweep.experiment",
    "sweep_report": "abm.sweep.report",
    "SweepError": "abm.sweep.runner",
    "SweepOutcome": "abm.sweep.runner",
    "run_sweep": "abm.sweep.runner",
    "read_runs": "abm.sweep.store",
    "read_table": "abm.sweep.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'abm.sweep' has no attribute {name!r}")
