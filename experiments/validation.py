"""Model against history: tabulate the sweep of experiments/validation.toml beside the sourced historical figures.

    abm sweep experiments/validation.toml --out results/validation/runs --workers 2
    python experiments/validation.py [--runs results/validation/runs] [--out results/validation]

Reads the sweep's rows (`abm.sweep.store.read_runs`) and writes `model_vs_history.md` (atomically) in `--out`:
one table of model quantities per case (mean and range over the replicates) and one table per episode with the
historical figure beside the model's. Every model quantity is a ratio, a share or a time, because dollar sizes in
the model are a free scale (`traders.total_equity_usd`). The per-run quantities are summary keys of each run and
the columns of the registered metric "validation" (`abm.sweep.outputs.validation_metric`); docs/validation.md
explains every row. The same sweep gives the same file. A missing or wrong sweep directory is one line on stderr
and exit status 2, with nothing written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.errors import UserInputError
from abm.io import atomic_write_text
from abm.sweep.outputs import CASCADE_WINDOW_STEPS, FULL_UTILISATION
from abm.sweep.store import read_runs

DEFAULT_RUNS = Path("results/validation/runs")
DEFAULT_OUT = Path("results/validation")
OUTPUT_FILE = "model_vs_history.md"
SWEEP_COMMAND = "abm sweep experiments/validation.toml --out {runs}"

# (runs.parquet column, row header, format). Summary keys (shock window, pre-shock checks, reflexivity), a derived
# sweep metric (`price_overshoot_ETH`) and the columns of the "validation" metric.
COLUMNS: list[tuple[str, str, str]] = [
    ("pre_shock_liquidations", "liquidations before the shock", "count"),
    ("pre_shock_max_gap_ETH", "largest ETH market-fundamental gap before the shock, abs(log)", "pct"),
    ("fundamental_shock_drawdown_ETH", "ETH fundamental fall in the shock window", "pct"),
    ("shock_drawdown_ETH", "ETH market fall in the shock window", "pct"),
    ("amplification_ETH", "market fall / fundamental fall (`amplification_ETH`)", "ratio"),
    ("price_overshoot_ETH", "largest market discount to fundamental", "pct"),
    ("collateral_liquidated_share", "collateral liquidated / collateral at shock start", "pct"),
    ("debt_repaid_share", "debt repaid by liquidators / debt at shock start", "pct"),
    ("bad_debt_share", "bad debt / debt at shock start", "pct"),
    ("accounts_liquidated_share", "accounts liquidated", "pct"),
    ("reflexivity_index", "liquidated volume caused by earlier liquidations (`reflexivity_index`)", "pct"),
    ("utilisation_start_USD", "USD utilisation at shock start", "pct"),
    ("utilisation_peak_USD", "USD utilisation, peak after shock", "pct"),
    ("borrow_rate_start_USD", "USD borrow rate at shock start", "pct"),
    ("borrow_rate_peak_USD", "USD borrow rate, peak after shock", "pct"),
    (
        "minutes_to_full_utilisation",
        f"minutes from shock start to USD utilisation >= {FULL_UTILISATION:.0%} (runs that got there)",
        "min",
    ),
    ("busiest_minute_share", "liquidated collateral in the busiest minute", "pct"),
    ("busiest_window_share", f"liquidated collateral in the busiest {CASCADE_WINDOW_STEPS} minutes", "pct"),
    ("minutes_to_first_liquidation", "minutes from shock start to first liquidation", "min"),
    ("minutes_to_90pct_liquidated", "minutes from shock start to 90% of liquidated collateral", "min"),
]
# The columns the "validation" metric adds: a sweep without them did not name it in its [outputs] metrics.
VALIDATION_COLUMNS = ("collateral_liquidated_share", "bad_debt_share", "busiest_window_share")

# Historical side: (episode, quantity, historical figure with its source tags, model column, model case). The
# source tags are the numbered references of docs/validation.md.
HISTORY: list[tuple[str, str, str, str, str]] = [
    ("Black Thursday, 12-13 Mar 2020", "ETH fall", "about 50% intraday [1, 2]", "shock_drawdown_ETH", "black_thursday"),
    (
        "Black Thursday, 12-13 Mar 2020",
        "bad debt",
        "5.67M DAI left uncovered [3] (about 4.3M DAI raised by minting MKR [4]); $8.32M of ETH sold for zero bids, "
        "36% of liquidations [3]",
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
        "shock_drawdown_ETH",
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
        "19 May 2021",
        "USD utilisation, peak",
        "no run on stablecoin reserves reported in [5, 6]; no sourced utilisation figure found",
        "utilisation_peak_USD",
        "crash, 19 May 2021 moves",
    ),
    (
        "Aave ETH market, 8-10 Nov 2022",
        "ETH fall",
        "13.75% in 24 h, 25.5% in 7 days [9]",
        "shock_drawdown_ETH",
        "baseline, FTX-week day",
    ),
    (
        "Aave ETH market, 8-10 Nov 2022",
        "collateral liquidated",
        "about $28.6M ($20.7M repaid) [8], a fraction of a percent of Aave's collateral (order of magnitude) [18]; "
        "13% of Gauntlet's simulated LaR [8]",
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
        "utilisation_peak_USD",
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
    ("10-11 Oct 2025", "ETH fall", "about 16%; BTC 12-16% [12, 13]", "shock_drawdown_ETH", "crash, 10 Oct 2025 moves"),
]


def load_sweep(runs_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows of a validation sweep (all runs, in run order) and its sweep.json metadata.

    Raises `UserInputError` (one line naming the directory and what is wrong) for a missing directory, one that
    holds no sweep, a sweep that is not a case design or did not compute the "validation" metric."""
    hint = f"run `{SWEEP_COMMAND.format(runs=runs_dir)}` first"
    if not runs_dir.exists():
        raise UserInputError(f"--runs {runs_dir}: no such directory; {hint}")
    if not runs_dir.is_dir():
        raise UserInputError(f"--runs {runs_dir}: is a file, not a sweep directory")
    meta_path = runs_dir / "sweep.json"
    if not meta_path.is_file():
        raise UserInputError(f"--runs {runs_dir}: not a sweep directory (no sweep.json); {hint}")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        raise UserInputError(f"--runs {runs_dir}: sweep.json is unreadable; {hint}") from None
    if not isinstance(meta, dict) or meta.get("kind") != "cases":
        kind = meta.get("kind") if isinstance(meta, dict) else None
        raise UserInputError(f"--runs {runs_dir}: holds a '{kind}' sweep; the validation needs a [cases] design")
    if "validation" not in (meta.get("outputs") or {}).get("metrics", []):
        raise UserInputError(
            f"--runs {runs_dir}: sweep '{meta.get('name')}' did not compute the metric 'validation' "
            '(name it in the experiment\'s [outputs] metrics = ["validation"])'
        )
    rows = read_runs(runs_dir)
    if rows.empty:
        raise UserInputError(f"--runs {runs_dir}: holds no finished runs yet; {hint}")
    ok = rows["status"] == "ok"
    if not ok.any():
        first = rows["error"].iloc[0]
        raise UserInputError(f"--runs {runs_dir}: none of its {len(rows)} runs finished (first error: {first})")
    missing = [c for c in ("case", *VALIDATION_COLUMNS) if c not in rows.columns]
    if missing:
        raise UserInputError(f"--runs {runs_dir}: its runs have no column '{missing[0]}'; {hint}")
    return rows.sort_values("run_index", kind="stable").reset_index(drop=True), meta


def traders_per_case(runs_dir: Path, meta: dict[str, Any]) -> dict[str, int]:
    """Number of traders of each case: its own override, else the sweep's, else its resolved base configuration."""
    out: dict[str, int] = {}
    overrides = meta.get("overrides") or {}
    for i, (label, case) in enumerate((meta.get("cases") or {}).items()):
        n = (case.get("overrides") or {}).get("traders.n_traders", overrides.get("traders.n_traders"))
        if n is None:  # the case's resolved base configuration (written by the sweep, one file per case)
            config = tomllib.loads((runs_dir / "case_configs" / f"case-{i:03d}.toml").read_text())
            n = config["traders"]["n_traders"]
        out[label] = int(n)
    return out


def _fmt(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%" if abs(value) >= 0.001 or value == 0 else f"{100 * value:.2g}%"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "count":
        return f"{value:.0f}" if value == round(value) else f"{value:.1f}"
    return f"{value:.0f}"


def cell(values: pd.Series, kind: str) -> str:
    """Mean over the runs that define the quantity, with the range in brackets when it is not a single value;
    `(k of n)` after it when only k of the n runs define it (e.g. minutes to full utilisation)."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    arr = numbers[np.isfinite(numbers)]
    if len(arr) == 0:
        return "n/a"
    mean = _fmt(float(arr.mean()), kind)
    lo, hi = _fmt(float(arr.min()), kind), _fmt(float(arr.max()), kind)
    text = mean if lo == hi else f"{mean} ({lo} to {hi})"
    return text if len(arr) == len(numbers) else f"{text} [{len(arr)} of {len(numbers)} runs]"


def render(rows: pd.DataFrame, meta: dict[str, Any], traders: dict[str, int], runs_dir: Path) -> str:
    """The markdown file: the per-case table, then the history-beside-model table (cases in the sweep's order)."""
    order = rows.drop_duplicates("case")["case"].tolist()
    ok = rows[rows["status"] == "ok"]
    by_case = {c: ok[ok["case"] == c] for c in order}
    sizes = sorted({traders[c] for c in order if c in traders})
    size_text = " or ".join(f"{n:,}" for n in sizes) if sizes else "?"
    lines = [
        "# Model against history",
        "",
        f"Produced by `{SWEEP_COMMAND.format(runs=runs_dir)}` and `python experiments/validation.py` (sweep "
        f"'{meta.get('name')}', {size_text} traders, {meta.get('replicates')} replicates per case, base seed "
        f"{meta.get('base_seed')}). Each cell is the mean over the case's runs with the range in brackets. The "
        "model starts in equilibrium (docs/model.md, section 8), so the first two rows should show no liquidation "
        "and a gap of about a percent or less; t = 0 is the first scripted shock and the shock window runs to 4 "
        "hours after it ends. The historical figures and "
        "their sources are in [docs/validation.md](../../docs/validation.md), which explains every row.",
        "",
        "## Model quantities per case",
        "",
        "| quantity | " + " | ".join(order) + " |",
        "|---|" + "---|" * len(order),
        "| runs finished (of those run) | "
        + " | ".join(f"{len(by_case[c])} of {int((rows['case'] == c).sum())}" for c in order)
        + " |",
    ]
    for key, header, kind in COLUMNS:
        cells = [cell(by_case[c][key], kind) if key in ok.columns else "n/a" for c in order]
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
        if case in by_case:
            model = cell(by_case[case][key], kinds[key]) if key in ok.columns else "n/a"
            lines.append(f"| {episode} | {quantity} | {history} | {model} | `{case}` |")
    return "\n".join(lines) + "\n"


def write_report(runs_dir: Path, out_dir: Path) -> Path:
    """Read the sweep in `runs_dir`, write `out_dir/model_vs_history.md` atomically, return its path."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"--out {out_dir}: is a file, not a directory")
    rows, meta = load_sweep(runs_dir)
    path = out_dir / OUTPUT_FILE
    atomic_write_text(path, render(rows, meta, traders_per_case(runs_dir, meta), runs_dir))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help=f"the sweep directory (default {DEFAULT_RUNS})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"where {OUTPUT_FILE} goes (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    try:
        path = write_report(args.runs, args.out)
    except UserInputError as exc:
        print(f"validation: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
