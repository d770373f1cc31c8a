"""Model against history: run the configurations closest to four historical episodes and tabulate the quantities
that docs/validation.md puts beside the sourced historical figures.

    python experiments/validation.py [--seeds 5] [--traders 1000] [--workers 1] [--out results/validation]

Writes `model_vs_history.md` (atomically) in `--out`: one table of model quantities per case (mean and range over
seeds) and one table per episode with the historical figure beside the model's. Dollar sizes in the model are a
free scale (`traders.total_equity_usd`), so every model quantity here is a ratio, a share or a shape. Same
arguments give the same file, in any process.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The busiest window compared with the 40-minute cascade of 10 October 2025 (Amberdata: 20:50-21:30 UTC).
CASCADE_WINDOW_STEPS = 40
# Utilisation read as "the pool ran dry": the default lenders' panic level (lenders.panic_utilisation).
FULL_UTILISATION = 0.97
# A run whose market fell this far below its fundamental before the shock cascaded on its own (the start-up
# transient of docs/model.md, section 8): its shock-window quantities do not describe a response to the shock, so it
# is left out of the statistics and counted instead.
PRE_SHOCK_CASCADE = -0.15


@dataclass(frozen=True)
class Case:
    """One model configuration: a preset, dotted overrides, and the episode it stands for."""

    name: str
    episode: str
    preset: str
    overrides: dict[str, Any]


def _shock(asset: str, size: float, start: int, duration: int) -> dict[str, Any]:
    return {"kind": "shock", "asset": asset, "size": size, "start": start, "duration": duration}


def _black_thursday_intact() -> dict[str, Any]:
    """`black_thursday`'s price path and oracle slowdown with liquidators at full capacity and ordinary gas."""
    from abm import ModelConfig

    events = [
        e.model_dump()
        for e in ModelConfig.from_preset("black_thursday").scenario.events
        if not (e.kind == "set" and e.parameter.startswith("liquidators."))
    ]
    return {"scenario.events": events, "liquidators.gas_cost_usd": 20.0}


# Shock sizes are the sourced moves of each episode (docs/validation.md gives the sources); durations are stylised.
CASES: dict[str, Callable[[], Case]] = {
    "black_thursday": lambda: Case("black_thursday", "Black Thursday, 12-13 Mar 2020", "black_thursday", {}),
    "black_thursday, liquidators intact": lambda: Case(
        "black_thursday, liquidators intact",
        "Black Thursday, 12-13 Mar 2020",
        "black_thursday",
        _black_thursday_intact(),
    ),
    "crash": lambda: Case("crash", "19 May 2021", "crash", {}),
    "crash, 19 May 2021 moves": lambda: Case(
        "crash, 19 May 2021 moves",
        "19 May 2021",
        "crash",
        {"scenario.events": [_shock("ETH", -0.40, 240, 120), _shock("BTC", -0.30, 240, 120)]},
    ),
    "baseline, FTX-week day": lambda: Case(
        "baseline, FTX-week day",
        "Aave ETH market, 8-10 Nov 2022",
        "baseline",
        {"steps": 1920, "scenario.events": [_shock("ETH", -0.14, 240, 1440), _shock("BTC", -0.12, 240, 1440)]},
    ),
    "crash, 10 Oct 2025 moves": lambda: Case(
        "crash, 10 Oct 2025 moves",
        "10-11 Oct 2025",
        "crash",
        {"scenario.events": [_shock("ETH", -0.16, 240, 40), _shock("BTC", -0.12, 240, 40)]},
    ),
}

# (column, header, format); every quantity is defined in `measure`.
COLUMNS: list[tuple[str, str, str]] = [
    ("pre_shock_liquidations", "liquidations before the shock", "count"),
    ("fundamental_fall", "ETH fundamental fall in the shock window", "pct"),
    ("market_fall", "ETH market fall in the shock window", "pct"),
    ("window_amplification", "market fall / fundamental fall", "ratio"),
    ("max_discount", "largest market discount to fundamental", "pct"),
    ("collateral_liquidated_share", "collateral liquidated / collateral at shock start", "pct"),
    ("debt_repaid_share", "debt repaid by liquidators / debt at shock start", "pct"),
    ("bad_debt_share", "bad debt / debt at shock start", "pct"),
    ("accounts_liquidated_share", "accounts liquidated", "pct"),
    ("utilisation_start", "USD utilisation at shock start", "pct"),
    ("utilisation_peak", "USD utilisation, peak after shock", "pct"),
    ("borrow_rate_start", "USD borrow rate at shock start", "pct"),
    ("borrow_rate_peak", "USD borrow rate, peak after shock", "pct"),
    ("minutes_to_full_utilisation", "minutes from shock start to USD utilisation >= 97% (a lender run)", "min"),
    ("busiest_minute_share", "liquidated collateral in the busiest minute", "pct"),
    ("busiest_window_share", f"liquidated collateral in the busiest {CASCADE_WINDOW_STEPS} minutes", "pct"),
    ("minutes_to_first", "minutes from shock start to first liquidation", "min"),
    ("minutes_to_90pct", "minutes from shock start to 90% of liquidated collateral", "min"),
]


def shock_start(config: Any) -> int:
    """The first step of the earliest scripted shock (the episode's t = 0)."""
    starts = [e.start for e in config.scenario.events if e.kind == "shock"]
    if not starts:
        raise ValueError(f"configuration '{config.name}' has no shock event")
    return min(starts)


def measure(ts: pd.DataFrame, events: pd.DataFrame, start: int, asset: str = "ETH") -> dict[str, float]:
    """The comparison quantities of one run, all dimensionless (shares, ratios) or in minutes (one step = 1 min).

    `start` is the shock's first step. "At shock start" means the row of step `start - 1`, the state the shock met.
    """
    ts = ts.set_index("step")
    before = ts.loc[: start - 1]
    after = ts.loc[start:]
    at_start = ts.loc[start - 1]
    price, fundamental = ts[f"price_{asset}"], ts[f"fundamental_{asset}"]
    ratio = price / fundamental

    out: dict[str, float] = {}
    out["pre_shock_gap"] = float(ratio.loc[: start - 1].min() - 1.0)
    out["pre_shock_liquidations"] = float((events["step"] < start).sum()) if len(events) else 0.0
    events = events[events["step"] >= start] if len(events) else events  # from here on: the shock's liquidations
    out["fundamental_fall"] = float(1.0 - fundamental.loc[start:].min() / fundamental.loc[start - 1])
    out["market_fall"] = float(1.0 - price.loc[start:].min() / price.loc[start - 1])
    out["window_amplification"] = (
        out["market_fall"] / out["fundamental_fall"] if out["fundamental_fall"] >= 0.01 else math.nan
    )
    out["max_discount"] = float(max(0.0, 1.0 - ratio.loc[start:].min()))

    collateral0 = float(at_start["total_collateral_usd"])
    debt0 = float(at_start["total_debt_usd"])
    seized = float(events["seized_usd"].sum()) if len(events) else 0.0
    repaid = float(events["repaid_usd"].sum()) if len(events) else 0.0
    out["collateral_liquidated_share"] = seized / collateral0 if collateral0 > 0 else math.nan
    out["debt_repaid_share"] = repaid / debt0 if debt0 > 0 else math.nan
    out["bad_debt_share"] = (
        float(ts["bad_debt_usd"].iloc[-1] - before["bad_debt_usd"].iloc[-1]) / debt0 if debt0 > 0 else math.nan
    )
    n_accounts = int(before["n_active_traders"].iloc[0]) if len(before) else 0
    out["accounts_liquidated_share"] = (
        events["account"].nunique() / n_accounts if n_accounts > 0 and len(events) else 0.0
    )

    out["utilisation_start"] = float(at_start["utilisation_USD"])
    out["utilisation_peak"] = float(after["utilisation_USD"].max())
    out["borrow_rate_start"] = float(at_start["borrow_rate_USD"])
    out["borrow_rate_peak"] = float(after["borrow_rate_USD"].max())
    full = after.index[after["utilisation_USD"] >= FULL_UTILISATION]
    out["minutes_to_full_utilisation"] = float(full.min() - start) if len(full) else math.nan

    # Timing and clustering, measured on collateral seized (the historical figures count liquidated collateral).
    per_step = (
        events.groupby("step")["seized_usd"].sum().reindex(ts.index, fill_value=0.0)
        if len(events)
        else pd.Series(0.0, index=ts.index)
    )
    total = float(per_step.sum())
    if total > 0:
        out["busiest_minute_share"] = float(per_step.max() / total)
        window = per_step.rolling(CASCADE_WINDOW_STEPS, min_periods=1).sum()
        out["busiest_window_share"] = float(window.max() / total)
        first = int(per_step[per_step > 0].index.min())
        out["minutes_to_first"] = float(first - start)
        cumulative = per_step.cumsum() / total
        out["minutes_to_90pct"] = float(int(cumulative[cumulative >= 0.9].index.min()) - start)
    else:
        for key in ("busiest_minute_share", "busiest_window_share", "minutes_to_first", "minutes_to_90pct"):
            out[key] = math.nan
    return out


def run_case(args: tuple[str, int, int]) -> tuple[str, int, dict[str, float]]:
    """Run one case for one seed (a top-level function so a process pool can pickle it)."""
    import abm

    name, seed, n_traders = args
    case = CASES[name]()
    config = abm.ModelConfig.from_preset(case.preset, {**case.overrides, "traders.n_traders": n_traders})
    result = abm.run(config, seed=seed, keep_model=False)
    return name, seed, measure(result.timeseries, result.events, shock_start(config))


def _fmt(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%" if abs(value) >= 0.001 or value == 0 else f"{100 * value:.2g}%"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "count":
        return f"{value:.1f}" if value != round(value) else f"{value:.0f}"
    return f"{value:.0f}"


def _cell(values: list[float], kind: str) -> str:
    """Mean over seeds, with the range over seeds when it is not a single value."""
    arr = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return "n/a"
    mean = _fmt(float(arr.mean()), kind)
    lo, hi = _fmt(float(arr.min()), kind), _fmt(float(arr.max()), kind)
    return mean if lo == hi else f"{mean} ({lo} to {hi})"


# Historical side: (episode, quantity, historical figure with its source tag, model column, model case). The
# source tags are the numbered references of docs/validation.md.
HISTORY: list[tuple[str, str, str, str, str]] = [
    (
        "Black Thursday, 12-13 Mar 2020",
        "ETH fall",
        "about 50% intraday [1, 2]",
        "market_fall",
        "black_thursday",
    ),
    (
        "Black Thursday, 12-13 Mar 2020",
        "bad debt",
        "5.67M DAI left uncovered [3] (about 4.3M DAI raised by minting MKR [4]); $8.32M of ETH sold for zero bids, 36% of liquidations [3]",
        "bad_debt_share",
        "black_thursday",
    ),
    (
        "Black Thursday, 12-13 Mar 2020",
        "bad debt with liquidators intact",
        "not observed (counterfactual)",
        "bad_debt_share",
        "black_thursday, liquidators intact",
    ),
    (
        "19 May 2021",
        "ETH fall",
        "ETH over 40%, BTC about 30% intraday; the average coin about 41% open to low [19]",
        "market_fall",
        "crash, 19 May 2021 moves",
    ),
    (
        "19 May 2021",
        "collateral liquidated",
        "$377M in one day on Aave, Compound and Maker [5]; Aave's $170M was about 1.5% of its ~$11.4B deposits [5, 7]",
        "collateral_liquidated_share",
        "crash, 19 May 2021 moves",
    ),
    (
        "19 May 2021",
        "bad debt",
        'no large bad debt reported; lending protocols "fared well" [6]',
        "bad_debt_share",
        "crash, 19 May 2021 moves",
    ),
    (
        "Aave ETH market, 8-10 Nov 2022",
        "ETH fall",
        "13.75% in 24 h, 25.5% in 7 days [9]",
        "market_fall",
        "baseline, FTX-week day",
    ),
    (
        "Aave ETH market, 8-10 Nov 2022",
        "collateral liquidated",
        "about $28.6M ($20.7M repaid) [8], a fraction of a percent of Aave's collateral (order of magnitude) [18]; 13% of Gauntlet's simulated LaR [8]",
        "collateral_liquidated_share",
        "baseline, FTX-week day",
    ),
    (
        "Aave ETH market, 8-10 Nov 2022",
        "bad debt",
        "no large insolvency [8]",
        "bad_debt_share",
        "baseline, FTX-week day",
    ),
    (
        "Aave ETH market, 8-10 Nov 2022",
        "USD utilisation, peak",
        "no sourced figure found; Aave v2 WETH utilisation's all-time high was 52% (Aug 2022) [10]",
        "utilisation_peak",
        "baseline, FTX-week day",
    ),
    (
        "10-11 Oct 2025",
        "liquidations in the busiest minute",
        "$3.21B of $9.89B tracked (32%) at 21:15 UTC [11]",
        "busiest_minute_share",
        "crash, 10 Oct 2025 moves",
    ),
    (
        "10-11 Oct 2025",
        f"liquidations in the busiest {CASCADE_WINDOW_STEPS} minutes",
        "$6.93B of $9.89B (70%), 20:50-21:30 UTC [11]",
        "busiest_window_share",
        "crash, 10 Oct 2025 moves",
    ),
    (
        "10-11 Oct 2025",
        "leveraged positions closed",
        "BTC futures open interest down 22% in under 12 h [13]",
        "debt_repaid_share",
        "crash, 10 Oct 2025 moves",
    ),
    (
        "10-11 Oct 2025",
        "ETH fall",
        "about 16%; BTC 12-16% [12, 13]",
        "market_fall",
        "crash, 10 Oct 2025 moves",
    ),
]


def kept(runs: list[dict[str, float]]) -> list[dict[str, float]]:
    """The runs that met the shock in a calm market (no cascade of their own before it)."""
    return [r for r in runs if r["pre_shock_gap"] >= PRE_SHOCK_CASCADE]


def render(rows: dict[str, list[dict[str, float]]], n_seeds: int, n_traders: int) -> str:
    """The markdown file: the model table, then the side-by-side table."""
    cases = [c for c in CASES if c in rows]
    lines = [
        "# Model against history",
        "",
        "Numbers in this table are produced by `python experiments/validation.py`"
        f" ({n_traders:,} traders, seeds 1 to {n_seeds}; mean over the seeds kept, range in brackets). A seed is "
        f"left out when its ETH market fell more than {-100 * PRE_SHOCK_CASCADE:.0f}% below the fundamental before "
        "the shock, i.e. it cascaded on its own in the start-up transient (docs/model.md, section 8). The historical "
        "figures and their sources are in [docs/validation.md](../../docs/validation.md), which explains every row.",
        "",
        "## Model quantities per case",
        "",
        "| quantity | " + " | ".join(cases) + " |",
        "|---|" + "---|" * len(cases),
        "| seeds kept (of those run) | " + " | ".join(f"{len(kept(rows[c]))} of {len(rows[c])}" for c in cases) + " |",
        "| ETH market vs fundamental before the shock, lowest (all seeds) | "
        + " | ".join(_cell([r["pre_shock_gap"] for r in rows[c]], "pct") for c in cases)
        + " |",
    ]
    for key, header, kind in COLUMNS:
        cells = [_cell([r[key] for r in kept(rows[c])], kind) for c in cases]
        lines.append(f"| {header} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Beside the historical figures",
        "",
        "| episode | quantity | history [ref] | model | model case |",
        "|---|---|---|---|---|",
    ]
    kinds = {key: kind for key, _header, kind in COLUMNS}
    for episode, quantity, history, key, case in HISTORY:
        if case in rows:
            model = _cell([r[key] for r in kept(rows[case])], kinds[key])
            lines.append(f"| {episode} | {quantity} | {history} | {model} | `{case}` |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from abm.io import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N per case (default 5)")
    parser.add_argument("--traders", type=int, default=1000, help="traders per run (default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--out", type=Path, default=Path("results/validation"))
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES), metavar="CASE")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.exit(2, f"--seeds = {args.seeds}: must be >= 1\n")
    if args.traders < 1:
        parser.exit(2, f"--traders = {args.traders}: must be >= 1\n")
    if args.workers < 1:
        parser.exit(2, f"--workers = {args.workers}: must be >= 1\n")

    jobs = [(name, seed, args.traders) for name in args.cases for seed in range(1, args.seeds + 1)]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in args.cases}
    with contextlib.ExitStack() as stack:
        if args.workers == 1:
            results = map(run_case, jobs)
        else:
            results = stack.enter_context(ProcessPoolExecutor(max_workers=args.workers)).map(run_case, jobs)
        for name, seed, metrics in results:  # in job order, so the table does not depend on the workers
            rows[name].append(metrics)
            print(f"{name} seed {seed}: done", flush=True)
    text = render(rows, args.seeds, args.traders)
    atomic_write_text(args.out / "model_vs_history.md", text)
    print(text)


if __name__ == "__main__":
    main()
