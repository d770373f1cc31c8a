"""The contagion study: runs the points of `experiments/contagion_*.toml` with contagion metrics per run.

The experiment files are ordinary SPEC 8 experiments (`abm sweep` runs them too: same points, same seeds,
`abm.sweep.experiment`). This runner adds what a sweep row does not hold: distress extent (share of accounts and
traders liquidated or wiped out, share of equity lost, positions liquidated), cascade-size lists, and the Hawkes
estimates of the branching ratio from liquidation times, next to the cascade graph's ground truth.

    python -m abm.contagion.study experiments/contagion_shock.toml [...] --out results/contagion --workers 2

writes OUT/<experiment name>/runs.parquet (one row per run), cascades.parquet (one row per cascade) and
events.parquet (one row per liquidation: step, account, endogenous share, ...).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.config import ModelConfig
from abm.contagion.cascade import cascade_table
from abm.contagion.hawkes import (
    branching_ratio_counts,
    fit_discrete_hawkes,
    fit_exponential_hawkes,
    jitter_steps,
    step_counts,
)
from abm.io import atomic_dir, atomic_write_bytes, atomic_write_parquet

HAWKES_WINDOW_STEPS = 30  # count window of the variance estimator (steps): well above the model's trigger delays


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
    """Hawkes estimates of the branching ratio from liquidation times alone (event steps), and the soft truth.

    - hawkes_n_counts: count-variance estimator, 30-step windows over the whole run;
    - hawkes_n_mle: continuous exponential-kernel MLE on the event steps jittered uniformly inside each step;
    - hawkes_n_discrete: discrete-time Hawkes (excitation from the next step on; a same-step batch is a common
      cause), constant baseline;
    - hawkes_n_regime: the same with one baseline per scenario regime (`scenario_breaks`);
    - mean_endogenous_share: mean attributed share of liquidation sales in the lost health (soft truth).
    """
    out = {
        "n_events": float(len(events)),
        "hawkes_n_counts": math.nan,
        "hawkes_n_mle": math.nan,
        "hawkes_beta_mle": math.nan,
        "hawkes_n_discrete": math.nan,
        "hawkes_n_regime": math.nan,
        "mean_endogenous_share": math.nan,
    }
    if len(events) == 0:
        return out
    t = events["step"].to_numpy(dtype=float)
    horizon = float(steps + 1)
    out["hawkes_n_counts"] = branching_ratio_counts(t, HAWKES_WINDOW_STEPS, 0.0, horizon)
    if len(t) >= 10:
        fit = fit_exponential_hawkes(jitter_steps(t, np.random.default_rng(seed)), horizon)
        out["hawkes_n_mle"], out["hawkes_beta_mle"] = fit.n, fit.beta
        counts = step_counts(events["step"].to_numpy(), steps + 1)
        out["hawkes_n_discrete"] = fit_discrete_hawkes(counts).n
        out["hawkes_n_regime"] = fit_discrete_hawkes(counts, breaks).n if breaks else out["hawkes_n_discrete"]
    out["mean_endogenous_share"] = float(events["endogenous_share"].mean())
    return out


EVENT_KEEP = ("step", "event_id", "account", "owner", "repaid_usd", "endogenous", "endogenous_share", "hf_before")


def run_task_full(
    config: dict[str, Any], seed: int, steps: int, labels: dict[str, Any]
) -> tuple[dict, list[dict], list[dict]]:
    """One run: its RunResult, then the Hawkes metrics.

    Returns (row, cascades, events): the row holds labels, summary scalars (distress metrics among them) and Hawkes
    metrics; cascades has one dict (size, depth, volume) per cascade tree of the main-parent forest; events the
    run's liquidations (a few columns) for later analyses.
    """
    from abm.run import run

    row: dict[str, Any] = {**labels, "seed": seed}
    try:
        cfg = ModelConfig.model_validate(config)
        result = run(cfg, seed=seed, steps=steps, keep_model=False)
    except Exception as exc:  # a failing run is a row, not the end of the study
        row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
        return row, [], []
    row.update({k: v for k, v in result.summary.items() if k not in ("seed",)})  # distress metrics included
    row.update(hawkes_metrics(result.events, result.steps, seed, scenario_breaks(cfg)))
    row["status"] = "ok"
    row["error"] = None
    cascades = [{**labels, "seed": seed, **rec} for rec in cascade_table(result.cascade).to_dict("records")]
    keep = [c for c in EVENT_KEEP if c in result.events.columns]
    events = [{"run_index": labels.get("run_index", -1), **rec} for rec in result.events[keep].to_dict("records")]
    return row, cascades, events


def run_task(config: dict[str, Any], seed: int, steps: int, labels: dict[str, Any]) -> tuple[dict, list[dict]]:
    """`run_task_full` without the events."""
    row, cascades, _ = run_task_full(config, seed, steps, labels)
    return row, cascades


# --- labels: readable columns for grid values that are lists or tables --------------------------------------------


def point_labels(point: dict[str, Any]) -> dict[str, Any]:
    """The point's parameters as columns; shock lists become `shock_<asset>` sizes, mixes `mix_<key>` shares."""
    out: dict[str, Any] = {}
    for name, value in point.items():
        if name == "scenario.events" and isinstance(value, list):
            for ev in value:
                if isinstance(ev, dict) and ev.get("kind") == "shock":
                    out[f"shock_{ev['asset']}"] = float(ev["size"])
            out[name] = json.dumps(value, sort_keys=True)
        elif isinstance(value, dict):
            total = sum(float(v) for v in value.values()) or 1.0
            short = name.rsplit(".", 1)[-1]
            for key, v in value.items():
                out[f"{short}_{key}"] = float(v) / total
            out[name] = json.dumps(value, sort_keys=True)
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def run_study(
    experiment: str | Path, out_dir: str | Path, workers: int = 2, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every point x replicate of an experiment file; write OUT/<name>/runs.parquet and cascades.parquet."""
    from abm.sweep.experiment import load_experiment

    exp = load_experiment(experiment)
    target = Path(out_dir) / exp.name
    target.mkdir(parents=True, exist_ok=True)
    tasks = []
    for i in range(exp.n_runs):
        point, replicate = exp.run_point(i)
        cfg = exp.point_config(point)
        labels = {"run_index": i, "point": point, "replicate": replicate, **point_labels(exp.points[point])}
        tasks.append((cfg.model_dump(mode="python"), exp.seed(i), int(cfg.steps), labels))
    rows, cascades, events = _execute(tasks, workers, exp.name if progress else None)
    runs = pd.DataFrame(rows).sort_values("run_index").reset_index(drop=True)
    casc = pd.DataFrame(cascades)
    with atomic_dir(target) as tmp:  # the experiment's tables appear together or not at all
        runs.to_parquet(tmp / "runs.parquet", index=False)
        casc.to_parquet(tmp / "cascades.parquet", index=False)
        pd.DataFrame(events).to_parquet(tmp / "events.parquet", index=False)
        (tmp / "experiment.toml").write_text(Path(experiment).read_text())
    return runs, casc


def _execute(tasks: list[tuple], workers: int, name: str | None) -> tuple[list[dict], list[dict], list[dict]]:
    rows: list[dict] = []
    cascades: list[dict] = []
    events: list[dict] = []
    start = time.perf_counter()
    if workers <= 1:
        results: Iterable = (run_task_full(*t) for t in tasks)
        for k, (row, casc, ev) in enumerate(results, start=1):
            rows.append(row)
            cascades.extend(casc)
            events.extend(ev)
            _say(name, k, len(tasks), start)
        return rows, cascades, events
    from abm.sweep.runner import worker_pool

    pool, _ = worker_pool(workers)
    clean = False
    try:
        futures = [pool.submit(run_task_full, *t) for t in tasks]
        for k, fut in enumerate(as_completed(futures), start=1):
            row, casc, ev = fut.result()
            rows.append(row)
            cascades.extend(casc)
            events.extend(ev)
            _say(name, k, len(tasks), start)
        clean = True
    finally:
        pool.shutdown(wait=clean, cancel_futures=True)  # on an error or Ctrl-C, do not run the rest
    return rows, cascades, events


def _say(name: str | None, k: int, n: int, start: float) -> None:
    if name is not None and (k == n or k % max(1, n // 10) == 0):
        print(f"  {name}: {k}/{n} runs, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiments", nargs="*", help="experiment TOML files")
    parser.add_argument("--out", default="results/contagion", help="output folder (one subfolder per experiment)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--report", action="store_true", help="only (re)build figures and tables from OUT")
    args = parser.parse_args(argv)
    if args.report:
        from abm.contagion.study_report import make_report

        print(make_report(args.out), file=sys.stderr)
        return 0
    for path in args.experiments:
        t0 = time.perf_counter()
        runs, _ = run_study(path, args.out, workers=args.workers)
        bad = int((runs["status"] != "ok").sum())
        print(f"{path}: {len(runs)} runs ({bad} failed) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


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
    liquidated = set(result.events["account"].astype(int))
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


def black_thursday_trees(out_dir: str | Path, seed: int = 3) -> Path:
    """Cascade trees of one black_thursday run (400 traders, full day)."""
    from abm.contagion.figures import draw_cascade_trees
    from abm.run import run

    result = run(ModelConfig.from_preset("black_thursday", {"traders.n_traders": 400}), seed=seed, keep_model=False)
    path = Path(out_dir) / "cascade_trees_black_thursday.png"
    return draw_cascade_trees(result.cascade, path, n=4, title="largest cascades, black_thursday")


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


if __name__ == "__main__":
    raise SystemExit(main())
