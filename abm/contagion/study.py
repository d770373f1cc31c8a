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
from abm.io import atomic_dir, atomic_write_bytes, atomic_write_parquet, atomic_write_text

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


# --- the report: figures, tables, report.md ------------------------------------------------------------------------

HAWKES_PRESETS = {
    "contagion_hawkes_baseline": "baseline",
    "contagion_hawkes_baseline_lev5": "baseline, leverage 5",
    "contagion_hawkes_crash": "crash",
    "contagion_hawkes_black_thursday": "black_thursday",
    "contagion_hawkes_contagion": "contagion",
}
HAWKES_ESTIMATES = {
    "hawkes_n_counts": "count variance (30-step windows)",
    "hawkes_n_mle": "MLE, continuous (jittered)",
    "hawkes_n_discrete": "MLE, discrete (lag >= 1 step)",
    "hawkes_n_regime": "MLE, discrete, regime baseline",
}
MIN_EVENTS = 30  # "enough events" for a Hawkes estimate


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table of a DataFrame (index included), numbers rounded."""
    df = frame.reset_index()

    def fmt(v: Any) -> str:
        if isinstance(v, float | np.floating):
            if math.isnan(v):
                return "-"
            if abs(v) >= 1e4:
                return f"{v:.3g}"
            return f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _load(out: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    d = out / name
    runs = pd.read_parquet(d / "runs.parquet") if (d / "runs.parquet").exists() else pd.DataFrame()
    casc = pd.read_parquet(d / "cascades.parquet") if (d / "cascades.parquet").exists() else pd.DataFrame()
    ev = pd.read_parquet(d / "events.parquet") if (d / "events.parquet").exists() else pd.DataFrame()
    if len(runs) and "status" in runs:
        runs = runs[runs["status"] == "ok"].copy()
    return runs, casc, ev


def _mean_sd(runs: pd.DataFrame, by: str | list[str], cols: dict[str, str]) -> pd.DataFrame:
    g = runs.groupby(by)[list(cols)]
    mean, sd = g.mean(), g.std()
    out = pd.DataFrame(index=mean.index)
    for c, label in cols.items():
        out[label] = [
            "-"
            if math.isnan(m)
            else (f"{m:.3g} ± {s:.2g}" if abs(m) >= 1e4 else f"{m:.3f} ± {0 if math.isnan(s) else s:.3f}")
            for m, s in zip(mean[c], sd[c], strict=True)
        ]
    out["runs"] = g.size() if hasattr(g, "size") else runs.groupby(by).size()
    return out


DISTRESS = {
    "share_accounts_liquidated": "accounts liquidated",
    "share_accounts_wiped_out": "accounts wiped out",
    "share_traders_wiped_out": "traders wiped out",
    "share_equity_lost": "equity lost",
    "reflexivity_index": "reflexivity index",
    "branching_ratio": "branching ratio",
}


def make_report(out_dir: str | Path = "results/contagion") -> Path:
    """Figures (PNG), tables and report.md from the study's folders under `out_dir` (run `main` first)."""
    from abm.contagion.figures import (
        plot_cascade_ccdf,
        plot_hawkes_vs_truth,
        plot_metric_bars,
        plot_metric_lines,
    )

    out = Path(out_dir)
    sections: list[str] = []
    numbers: dict[str, Any] = {}

    # --- leverage --------------------------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_leverage")
    if len(runs):
        cols = {
            "n_liquidations": "liquidations",
            "reflexivity_index": "reflexivity index",
            "branching_ratio": "branching ratio",
            "mean_endogenous_share": "mean endogenous share",
            "largest_cascade": "largest cascade",
            "max_cascade_depth": "max depth",
        }
        table = _mean_sd(runs, "traders.max_leverage", cols)
        numbers["leverage"] = runs.groupby("traders.max_leverage")[list(cols)].mean().to_dict()
        plot_metric_lines(
            runs,
            "traders.max_leverage",
            {
                "reflexivity_index": "reflexivity index",
                "branching_ratio": "branching ratio",
                "n_liquidations": "liquidations",
            },
            out / "leverage.png",
            xlabel="traders.max_leverage",
            title="crash preset: reflexivity against leverage (mean, 95% CI over seeds)",
        )
        sections.append(
            "## Reflexivity against leverage (crash preset, 400 traders, 480 steps, 10 seeds)\n\n"
            "mean ± sd over seeds (`-`: no liquidation in any seed, the metric is undefined)\n\n"
            + markdown_table(table)
            + "\n\n![leverage](leverage.png)\n"
        )

    # --- Hawkes check --------------------------------------------------------------------------------------------
    frames = []
    sizes: dict[str, np.ndarray] = {}
    for name, label in HAWKES_PRESETS.items():
        runs, casc, _ = _load(out, name)
        if len(runs):
            frames.append(runs.assign(preset=label))
        if len(casc):
            sizes[label] = casc["size"].to_numpy()
    if frames:
        hk = pd.concat(frames, ignore_index=True)
        present = {k: v for k, v in HAWKES_ESTIMATES.items() if k in hk}
        rows = []
        for label, sub in hk.groupby("preset", sort=False):
            enough = sub[sub["n_liquidations"] >= MIN_EVENTS]
            row: dict[str, Any] = {
                "preset": label,
                "runs": len(sub),
                "events / run": sub["n_liquidations"].mean(),
                "runs with >= 30 events": len(enough),
                "truth: branching ratio": sub["branching_ratio"].mean(),
                "mean endogenous share": sub["mean_endogenous_share"].mean(),
            }
            for col, name in present.items():
                row[name] = enough[col].mean() if len(enough) else math.nan
                ok = (enough[col] - enough["branching_ratio"]).abs() <= 0.1
                row[f"{name}: runs within 0.1"] = f"{int(ok.sum())}/{len(enough)}" if len(enough) else "-"
            rows.append(row)
        table = pd.DataFrame(rows).set_index("preset")
        numbers["hawkes"] = table.to_dict()
        plot_hawkes_vs_truth(hk[hk["n_liquidations"] >= MIN_EVENTS], out / "hawkes_vs_truth.png", present)
        atomic_write_text(out / "hawkes_runs.csv", hk.to_csv(index=False))
        sections.append(
            "## Hawkes check: branching ratio from liquidation times alone vs the cascade graph "
            "(400 traders, 1440 steps, 10 seeds per preset)\n\n"
            "Estimates are means over runs with at least 30 liquidations; `within 0.1` counts runs whose estimate is "
            "within 0.1 of that run's ground truth.\n\n"
            + markdown_table(table.T)
            + "\n\n![hawkes](hawkes_vs_truth.png)\n"
        )
    if sizes:
        plot_cascade_ccdf(sizes, out / "cascade_ccdf.png")
        sections.append("## Cascade sizes\n\n![ccdf](cascade_ccdf.png)\n")

    # --- shock size, depth -------------------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_shock")
    if len(runs):
        runs["shock size (ETH)"] = -runs["shock_ETH"]
        plot_metric_lines(
            runs,
            "shock size (ETH)",
            {k: DISTRESS[k] for k in ("share_accounts_liquidated", "share_traders_wiped_out", "share_equity_lost",
                                      "reflexivity_index")},
            out / "distress_vs_shock.png",
            title="crash market: distress against the size of the shock (ETH s, BTC 0.6 s)",
        )  # fmt: skip
        table = _mean_sd(runs, "shock size (ETH)", DISTRESS | {"bad_debt_usd": "bad debt (USD)"})
        numbers["shock"] = runs.groupby("shock size (ETH)")[list(DISTRESS)].mean().to_dict()
        sections.append(
            "## Distress against shock size (crash market, 400 traders, 480 steps, 6 seeds)\n\n"
            + markdown_table(table)
            + "\n\n![shock](distress_vs_shock.png)\n"
        )
    runs, _, _ = _load(out, "contagion_depth")
    if len(runs):
        plot_metric_lines(
            runs,
            "market.depth_scale",
            {k: DISTRESS[k] for k in ("share_accounts_liquidated", "share_traders_wiped_out", "share_equity_lost",
                                      "reflexivity_index")},
            out / "distress_vs_depth.png",
            logx=True,
            title="crash market: distress against market depth (every asset's depth x scale)",
        )  # fmt: skip
        table = _mean_sd(runs, "market.depth_scale", DISTRESS | {"bad_debt_usd": "bad debt (USD)"})
        numbers["depth"] = runs.groupby("market.depth_scale")[list(DISTRESS)].mean().to_dict()
        sections.append(
            "## Distress against market depth (crash preset's shock, 400 traders, 480 steps, 6 seeds)\n\n"
            + markdown_table(table)
            + "\n\n![depth](distress_vs_depth.png)\n"
        )

    # --- diversification and leverage ----------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_diversification")
    if len(runs):
        plot_metric_lines(
            runs,
            "traders.assets_per_trader",
            {
                "share_accounts_liquidated": "accounts liquidated",
                "share_equity_lost": "equity lost",
                "reflexivity_index": "reflexivity index",
            },
            out / "diversification.png",
            hue="traders.max_leverage",
            xlabel="assets per trader",
            title="eight assets, SOL -35%: distress against diversification, by max leverage",
        )
        cols = {
            "share_accounts_liquidated": "accounts liquidated",
            "share_positions_liquidated": "positions liquidated",
            "share_equity_lost": "equity lost",
            "reflexivity_index": "reflexivity index",
            "branching_ratio": "branching ratio",
        }
        pivot = runs.pivot_table(
            index="traders.assets_per_trader", columns="traders.max_leverage", values="share_accounts_liquidated"
        )
        pivot.columns = [f"max leverage {c:g}" for c in pivot.columns]
        numbers["diversification"] = pivot.to_dict()
        table = _mean_sd(runs, ["traders.max_leverage", "traders.assets_per_trader"], cols)
        sections.append(
            "## Distress against diversification and leverage (contagion preset, hodl traders, 300 traders, "
            "480 steps, 5 seeds)\n\nShare of accounts liquidated (mean over seeds):\n\n"
            + markdown_table(pivot)
            + "\n\nAll metrics (mean ± sd):\n\n"
            + markdown_table(table)
            + "\n\n![diversification](diversification.png)\n"
        )

    # --- margin modes --------------------------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_margin_modes")
    if len(runs):

        def mode_name(text: str) -> str:
            mix = json.loads(text)
            return "mix" if len(mix) > 1 else next(iter(mix))

        runs["mode"] = runs["traders.margin_mode_mix"].map(mode_name)
        cols = {
            "share_accounts_wiped_out": "accounts wiped out",
            "share_traders_wiped_out": "traders wiped out",
            "positions_liquidated": "positions liquidated",
            "share_positions_liquidated": "share of positions liquidated",
            "bad_debt_usd": "bad debt (USD)",
            "reflexivity_index": "reflexivity index",
        }
        plot_metric_bars(
            runs,
            "mode",
            {
                "share_traders_wiped_out": "traders wiped out",
                "share_positions_liquidated": "positions liquidated (share)",
                "bad_debt_usd": "bad debt (USD)",
                "reflexivity_index": "reflexivity index",
            },
            out / "margin_modes.png",
            hue="traders.max_leverage",
            logy=("bad_debt_usd",),
            title="cross vs isolated vs portfolio margin (eight assets, three per trader, SOL -35%)",
        )
        table = _mean_sd(runs, ["traders.max_leverage", "mode"], cols)
        by_mode = runs.groupby(["traders.max_leverage", "mode"])[list(cols)].mean()
        by_mode.index = [f"leverage {lev:g}, {mode}" for lev, mode in by_mode.index]
        numbers["margin_modes"] = by_mode.to_dict()
        sections.append(
            "## Cross vs isolated vs portfolio margin (margin_mix preset, 300 traders, 480 steps, 6 seeds)\n\n"
            + markdown_table(table)
            + "\n\n![margin modes](margin_modes.png)\n"
        )
    atomic_write_text(out / "numbers.json", json.dumps(numbers, indent=1, default=str) + "\n")
    path = out / "tables.md"
    atomic_write_text(path, "# Contagion study: tables\n\n" + "\n\n".join(sections) + "\n")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
