"""The contagion study: runs the points of `experiments/contagion_*.toml` with contagion metrics per run.

The experiment files are ordinary SPEC 8 experiments (`abm sweep` runs them too: same points, same seeds,
`abm.sweep.experiment`). This runner adds what a sweep row does not hold: distress extent (share of accounts and
traders liquidated or wiped out, share of equity lost, positions liquidated), cascade-size lists, and the Hawkes
estimates of the branching ratio from liquidation times, next to the cascade graph's ground truth.

    python -m abm.contagion.study experiments/contagion_shock.toml [...] --out results/contagion --workers 2

writes OUT/<experiment name>/runs.parquet (one row per run) and cascades.parquet (one row per cascade).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.config import ModelConfig
from abm.contagion.cascade import cascade_table
from abm.contagion.hawkes import branching_ratio_counts, fit_exponential_hawkes, jitter_steps

HAWKES_WINDOW_STEPS = 30  # count window of the variance estimator (steps): well above the model's trigger delays
WIPED_OUT = 0.05  # an account (trader) is wiped out when it ends with less than 5% of its initial equity


@dataclass
class Snapshot:
    """Per-account and per-trader state at one step (market prices), for distress measures."""

    account_equity: np.ndarray
    positions: np.ndarray  # (accounts, risky assets) bool: holds collateral or debt of the asset
    has_debt: np.ndarray
    trader_equity: np.ndarray


def snapshot(model: Any) -> Snapshot:
    """Equity of every account and trader (collateral - debt, plus wallets for traders) at market prices."""
    engine = model.engine
    prices = model.market.prices
    coll, debt = engine.values(prices)
    acct_eq = coll.sum(axis=1) - debt.sum(axis=1)
    n_traders = len(model.traders)
    owners = engine.owner[: engine.n]
    trader_eq = np.bincount(owners, weights=acct_eq, minlength=n_traders)[:n_traders]
    trader_eq = trader_eq + model.wallets.balances[:n_traders] @ prices
    positions = (coll[:, 1:] > 0) | (debt[:, 1:] > 0)
    return Snapshot(acct_eq, positions, debt.sum(axis=1) > 0, trader_eq)


def distress_metrics(start: Snapshot, end: Snapshot, events: pd.DataFrame, symbols: list[str]) -> dict[str, float]:
    """Distress extent of one run (all shares are fractions in [0, 1]).

    - share_accounts_liquidated: accounts with debt at the start that were liquidated at least once.
    - share_accounts_wiped_out: accounts ending with < 5% of their initial equity (or negative).
    - share_traders_wiped_out: the same for traders' total equity (accounts plus wallet).
    - share_equity_lost: 1 - traders' final equity / initial equity (market prices; includes the direct loss from
      the price move, not only liquidation losses); clipped at 0 below.
    - positions_liquidated / share_positions_liquidated: (account, risky asset) positions held at the start whose
      collateral was seized, or whose borrowed asset was repaid, by a liquidator.
    """
    base = start.has_debt
    n_acc = int(base.sum())
    liq = np.zeros(len(start.account_equity), dtype=bool)
    if len(events):
        ids = events["account"].to_numpy(dtype=np.int64)
        liq[ids[ids < len(liq)]] = True
    eq0 = start.account_equity
    n_end = len(end.account_equity)
    eq1 = end.account_equity[: len(eq0)] if n_end >= len(eq0) else np.pad(end.account_equity, (0, len(eq0) - n_end))
    wiped = base & (eq1 < WIPED_OUT * np.maximum(eq0, 0.0))
    t0, t1 = start.trader_equity, end.trader_equity
    traders = t0 > 0
    positions = start.positions
    touched = np.zeros_like(positions)
    if len(events):
        index = {s: k - 1 for k, s in enumerate(symbols) if k > 0}
        for col in ("collateral_asset", "debt_asset"):
            risky = events[col].isin(list(index))
            ids = events.loc[risky, "account"].to_numpy(dtype=np.int64)
            assets = events.loc[risky, col].map(index).to_numpy(dtype=np.int64)
            ok = ids < len(touched)
            touched[ids[ok], assets[ok]] = True
    pos_liq = int((touched & positions).sum())
    n_pos = int(positions.sum())
    return {
        "n_accounts_with_debt": n_acc,
        "share_accounts_liquidated": float((liq & base).sum() / n_acc) if n_acc else math.nan,
        "share_accounts_wiped_out": float(wiped.sum() / n_acc) if n_acc else math.nan,
        "share_traders_wiped_out": float((traders & (t1 < WIPED_OUT * t0)).sum() / traders.sum())
        if traders.any()
        else math.nan,
        "share_equity_lost": float(max(0.0, 1.0 - t1[traders].sum() / t0[traders].sum()))
        if traders.any()
        else math.nan,
        "positions_liquidated": pos_liq,
        "share_positions_liquidated": float(pos_liq / n_pos) if n_pos else math.nan,
    }


def hawkes_metrics(events: pd.DataFrame, steps: int, seed: int) -> dict[str, float]:
    """Hawkes estimates of the branching ratio from liquidation times alone (event steps), and the soft truth.

    hawkes_n_counts: count-variance estimator over 30-step windows of the whole run; hawkes_n_mle: exponential
    kernel MLE on the event steps jittered uniformly inside each step; hawkes_n_mle_first: the MLE on the first
    liquidation of each account only (drops the repeated partial liquidations of one account, which cluster in
    time without being contagion); mean_endogenous_share: mean attributed share of liquidation sales (soft truth).
    """
    out = {
        "hawkes_n_counts": math.nan,
        "hawkes_n_mle": math.nan,
        "hawkes_beta_mle": math.nan,
        "hawkes_n_mle_first": math.nan,
        "mean_endogenous_share": math.nan,
        "first_event_share_endogenous": math.nan,
    }
    if len(events) == 0:
        return out
    t = events["step"].to_numpy(dtype=float)
    out["hawkes_n_counts"] = branching_ratio_counts(t, HAWKES_WINDOW_STEPS, 0.0, float(steps + 1))
    rng = np.random.default_rng(seed)
    if len(t) >= 10:
        fit = fit_exponential_hawkes(jitter_steps(t, rng), float(steps + 1))
        out["hawkes_n_mle"], out["hawkes_beta_mle"] = fit.n, fit.beta
    first = events.sort_values("event_id").drop_duplicates("account")
    if len(first) >= 10:
        out["hawkes_n_mle_first"] = fit_exponential_hawkes(
            jitter_steps(first["step"].to_numpy(dtype=float), rng), float(steps + 1)
        ).n
    out["mean_endogenous_share"] = float(events["endogenous_share"].mean())
    out["first_event_share_endogenous"] = float(first["endogenous"].mean())
    return out


def run_task(config: dict[str, Any], seed: int, steps: int, labels: dict[str, Any]) -> tuple[dict, list[dict]]:
    """One run: the model stepped by hand (snapshots at start and end), then the RunResult and the metrics.

    Returns (row, cascades): the row holds labels, summary scalars, distress and Hawkes metrics; cascades has
    one dict (size, depth, volume) per cascade tree of the main-parent forest.
    """
    from abm.model import ReflexivityModel
    from abm.run import collect_result

    start_time = time.perf_counter()
    row: dict[str, Any] = {**labels, "seed": seed}
    try:
        cfg = ModelConfig.model_validate(config)
        model = ReflexivityModel(cfg, rng=seed, steps=steps)
        first = snapshot(model)
        for _ in range(model.total_steps):
            model.step()
        last = snapshot(model)
        result = collect_result(model, time.perf_counter() - start_time, keep_model=False)
    except Exception as exc:  # a failing run is a row, not the end of the study
        row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
        return row, []
    row.update({k: v for k, v in result.summary.items() if k not in ("seed",)})
    row.update(distress_metrics(first, last, result.events, cfg.symbols))
    row.update(hawkes_metrics(result.events, result.steps, seed))
    row["status"] = "ok"
    row["error"] = None
    cascades = [{**labels, "seed": seed, **rec} for rec in cascade_table(result.cascade).to_dict("records")]
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
    rows, cascades = _execute(tasks, workers, exp.name if progress else None)
    runs = pd.DataFrame(rows).sort_values("run_index").reset_index(drop=True)
    casc = pd.DataFrame(cascades)
    runs.to_parquet(target / "runs.parquet", index=False)
    casc.to_parquet(target / "cascades.parquet", index=False)
    (target / "experiment.toml").write_text(Path(experiment).read_text())
    return runs, casc


def _execute(tasks: list[tuple], workers: int, name: str | None) -> tuple[list[dict], list[dict]]:
    rows: list[dict] = []
    cascades: list[dict] = []
    start = time.perf_counter()
    if workers <= 1:
        results: Iterable = (run_task(*t) for t in tasks)
        for k, (row, casc) in enumerate(results, start=1):
            rows.append(row)
            cascades.extend(casc)
            _say(name, k, len(tasks), start)
        return rows, cascades
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_task, *t) for t in tasks]
        for k, fut in enumerate(as_completed(futures), start=1):
            row, casc = fut.result()
            rows.append(row)
            cascades.extend(casc)
            _say(name, k, len(tasks), start)
    return rows, cascades


def _say(name: str | None, k: int, n: int, start: float) -> None:
    if name is not None and (k == n or k % max(1, n // 10) == 0):
        print(f"  {name}: {k}/{n} runs, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiments", nargs="+", help="experiment TOML files")
    parser.add_argument("--out", default="results/contagion", help="output folder (one subfolder per experiment)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    for path in args.experiments:
        t0 = time.perf_counter()
        runs, _ = run_study(path, args.out, workers=args.workers)
        bad = int((runs["status"] != "ok").sum())
        print(f"{path}: {len(runs)} runs ({bad} failed) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
