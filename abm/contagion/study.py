"""The contagion study's per-run metrics and its single-run illustrations.

The study itself is a set of ordinary experiment files (`experiments/contagion_*.toml`) run by `abm sweep` and
reported by `abm report` (see `abm.contagion.study_report`). What a sweep row does not hold by default comes from
the sweep's named outputs (`abm.sweep.outputs`), which call the functions here:

- `hawkes_metrics`: Hawkes estimates of the branching ratio from liquidation times alone (metric ``hawkes``);
- `mean_endogenous_share`: the cascade graph's soft attribution, averaged over liquidations (``endogenous_share``).

`illustrate` and `exposure_timing` are single runs, not sweeps: `experiments/contagion_illustrations.py` calls them.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.config import ModelConfig
from abm.contagion.hawkes import (
    branching_ratio_counts,
    fit_discrete_hawkes,
    fit_exponential_hawkes,
    jitter_steps,
    step_counts,
)
from abm.io import atomic_write_bytes, atomic_write_parquet
from abm.recording.recorder import lending_events

HAWKES_WINDOW_STEPS = 30  # count window of the variance estimator (steps): well above the model's trigger delays
HAWKES_MIN_EVENTS_FIT = 10  # fewer liquidations than this: no maximum-likelihood fit (NaN)


def scenario_breaks(config: ModelConfig, pad: int = 60) -> list[float]:
    """Steps where the exogenous regime changes, as an econometrician who knows the news would cut them: each
    shock's start, end and end + `pad` (the aftermath), and each `set` event's step."""
    out: set[float] = set()
    for ev in config.scenario.events:
        kind = getattr(ev, "kind", "")
        if kind == "shock":
            out |= {float(ev.start), float(ev.start + ev.duration), float(ev.start + ev.duration + pad)}
        elif kind == "set":
            out.add(float(ev.step))
    return sorted(out)


def hawkes_metrics(events: pd.DataFrame, steps: int, seed: int, breaks: list[float] | None = None) -> dict[str, float]:
    """Hawkes estimates of the branching ratio from liquidation times alone (event steps); NaN when undefined.

    - hawkes_n_counts: count-variance estimator, 30-step windows over the whole run (any events);
    - hawkes_n_mle, hawkes_beta_mle: continuous exponential-kernel MLE on the event steps jittered uniformly inside
      each step (jitter drawn from `seed`), with the kernel's decay rate (per step);
    - hawkes_n_discrete: discrete-time Hawkes (excitation from the next step on; a same-step batch is a common
      cause), constant baseline;
    - hawkes_n_regime: the same with one baseline per scenario regime (`breaks`, e.g. `scenario_breaks`).

    The fits need at least 10 events.
    """
    out = {
        "hawkes_n_counts": math.nan,
        "hawkes_n_mle": math.nan,
        "hawkes_beta_mle": math.nan,
        "hawkes_n_discrete": math.nan,
        "hawkes_n_regime": math.nan,
    }
    if len(events) == 0:
        return out
    t = events["step"].to_numpy(dtype=float)
    horizon = float(steps + 1)
    out["hawkes_n_counts"] = branching_ratio_counts(t, HAWKES_WINDOW_STEPS, 0.0, horizon)
    if len(t) >= HAWKES_MIN_EVENTS_FIT:
        fit = fit_exponential_hawkes(jitter_steps(t, np.random.default_rng(seed)), horizon)
        out["hawkes_n_mle"], out["hawkes_beta_mle"] = fit.n, fit.beta
        counts = step_counts(events["step"].to_numpy(), steps + 1)
        out["hawkes_n_discrete"] = fit_discrete_hawkes(counts).n
        out["hawkes_n_regime"] = fit_discrete_hawkes(counts, breaks).n if breaks else out["hawkes_n_discrete"]
    return {k: float(v) for k, v in out.items()}


def mean_endogenous_share(events: pd.DataFrame) -> float:
    """Mean over liquidations of the endogenous share of the lost health (fraction; NaN without liquidations)."""
    if len(events) == 0:
        return math.nan
    return float(events["endogenous_share"].to_numpy(dtype=float).mean())


# --- the illustrative run: exposure network, DebtRank, cascade trees --------------------------------------------

ILLUSTRATION = {
    "traders.n_traders": 300,
    "traders.strategy_mix": {"hodl": 1.0},
    "traders.reentry_delay_steps": 0,
}


def illustrate(out_dir: str | Path, seed: int = 7, steps: int = 480, shock_step: int = 240) -> dict[str, Any]:
    """One contagion run (eight assets, SOL -35% at step 240, hodl traders): the exposure graph and every account's
    DebtRank just before the shock, then who was liquidated by the end. Writes exposure_network.png,
    debtrank_vs_size.png, debtrank.parquet, exposure.graphml and cascade_trees_contagion.png; returns numbers."""
    import networkx as nx

    from abm.contagion.debtrank import account_debtrank
    from abm.contagion.exposure import exposure_arrays, exposure_graph
    from abm.contagion.figures import draw_cascade_trees, draw_exposure_network, plot_debtrank_vs_size
    from abm.model import ReflexivityModel
    from abm.run import collect_result

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig.from_preset("contagion", ILLUSTRATION)
    model = ReflexivityModel(cfg, rng=seed, steps=steps)
    for _ in range(shock_step - 1):
        model.step()
    t0 = time.perf_counter()
    graph = exposure_graph(model)
    graph_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = account_debtrank(exposure_arrays(model), k=cfg.contagion.k_strongest)
    debtrank_seconds = time.perf_counter() - t0
    for _ in range(shock_step - 1, steps):
        model.step()
    result = collect_result(model, 0.0)
    liquidated = set(lending_events(result.events)["account"].astype(int))
    table["liquidated"] = table["account"].isin(liquidated)
    atomic_write_parquet(table, out / "debtrank.parquet")
    graphml = io.BytesIO()
    nx.write_graphml(graph, graphml)
    atomic_write_bytes(out / "exposure.graphml", graphml.getvalue())
    draw_exposure_network(
        graph,
        out / "exposure_network.png",
        liquidated=liquidated,
        highlight_asset="SOL",
        title=f"exposure network before the SOL shock (contagion preset, 300 hodl traders, seed {seed}); "
        "red: liquidated afterwards",
    )
    plot_debtrank_vs_size(
        table,
        out / "debtrank_vs_size.png",
        title="DebtRank before the shock against size (red: liquidated afterwards)",
    )
    trees = out / "cascade_trees_contagion.png"
    draw_cascade_trees(result.cascade, trees, n=4, title="largest cascades, contagion run")
    pos = table[(table["gross_exposure_usd"] > 0) & (table["equity"] > 0)]
    return {
        "seed": seed,
        "accounts": len(table),
        "graph_seconds": graph_seconds,
        "debtrank_seconds": debtrank_seconds,
        "n_liquidated_accounts": len(liquidated),
        "spearman_size_debtrank": float(pos["gross_exposure_usd"].corr(pos["debtrank"], method="spearman")),
        "debtrank_mean_liquidated": float(pos.loc[pos["liquidated"], "debtrank"].mean()),
        "debtrank_mean_spared": float(pos.loc[~pos["liquidated"], "debtrank"].mean()),
        "summary": {k: result.summary[k] for k in ("reflexivity_index", "branching_ratio", "largest_cascade")},
    }


def exposure_timing(n_traders: int = 10_000, seed: int = 1) -> dict[str, float]:
    """Seconds to build the exposure graph (with its projection) and every account's DebtRank at ~n accounts."""
    from abm.contagion.debtrank import account_debtrank
    from abm.contagion.exposure import exposure_arrays, exposure_graph
    from abm.model import ReflexivityModel

    cfg = ModelConfig.from_preset(
        "contagion",
        {"traders.n_traders": n_traders, "traders.margin_mode_mix": {"cross": 0.6, "isolated": 0.3, "portfolio": 0.1}},
    )
    model = ReflexivityModel(cfg, rng=seed, steps=3)
    model.step()
    t0 = time.perf_counter()
    g = exposure_graph(model)
    t1 = time.perf_counter()
    table = account_debtrank(exposure_arrays(model), k=cfg.contagion.k_strongest, top=1000)
    t2 = time.perf_counter()
    n_overlap = sum(1 for *_, d in g.edges(data=True) if d["kind"] == "overlap")
    return {
        "accounts": float(model.engine.n),
        "nodes": float(g.number_of_nodes()),
        "edges": float(g.number_of_edges()),
        "overlap_edges": float(n_overlap),
        "graph_seconds": t1 - t0,
        "debtrank_seconds_top_1000": t2 - t1,
        "debtrank_max": float(table["debtrank"].max()),
    }
