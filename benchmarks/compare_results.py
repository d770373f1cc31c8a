"""Before/after table of two results trees, for a change that moves results (run on demand, not a test).

    python benchmarks/compare_results.py BEFORE AFTER [--out FILE.md]

BEFORE and AFTER are `results/` directories (for instance `git archive` of the commit before the change, and the
regenerated tree). Every sweep's `runs.parquet` found in AFTER is matched with the same file in BEFORE. Runs are
grouped by their parameter point (and case, where the sweep has cases); both trees use the same seeds per point
(common random numbers), so a point's runs pair seed by seed. Per group and headline metric the table gives the
mean before and after, the seed spread (the standard deviation across the group's runs, before), and the shift in
units of that spread. A sweep with one run per point (a Sobol design) is compared over all its runs at once, paired
by run index.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = (
    "amplification_ETH",
    "n_liquidations",
    "liquidation_volume_usd",
    "bad_debt_usd",
    "pre_shock_liquidations",
    "pre_shock_max_gap_ETH",
)


def groups(runs: pd.DataFrame) -> list[str]:
    keys = ["point"]
    if "case" in runs.columns and runs["case"].nunique() > 1:
        keys.append("case")
    return keys


def compare(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, metric): means, the seed spread and the shift in units of it."""
    metrics = [m for m in METRICS if m in after.columns and m in before.columns]
    keys = groups(after)
    per_point = after.groupby(keys).size().max() > 1
    if not per_point:  # one run per point: the whole design is the group
        keys = []
    rows = []
    grouped_after = after.groupby(keys) if keys else [((), after)]
    for key, a in grouped_after:
        b = before
        for k, v in zip(keys, key if isinstance(key, tuple) else (key,), strict=True):
            b = b[b[k] == v]
        paired = a.merge(b, on="run_index", suffixes=("_after", "_before"))
        for metric in metrics:
            xa, xb = paired[f"{metric}_after"].astype(float), paired[f"{metric}_before"].astype(float)
            ok = np.isfinite(xa) & np.isfinite(xb)
            if not ok.any():
                continue
            spread = float(xb[ok].std(ddof=1)) if ok.sum() > 1 else float("nan")
            diff = float((xa[ok] - xb[ok]).mean())
            rows.append(
                {
                    "group": ", ".join(f"{k} {v}" for k, v in zip(keys, np.atleast_1d(key), strict=True)) or "all runs",
                    "metric": metric,
                    "runs": int(ok.sum()),
                    "before": float(xb[ok].mean()),
                    "after": float(xa[ok].mean()),
                    "seed_sd": spread,
                    "shift_in_sd": diff / spread if spread > 0 else (0.0 if diff == 0 else float("inf")),
                }
            )
    return pd.DataFrame(rows)


def fmt(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f}M"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.4g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines = [
        "| experiment | groups x metrics | within 1 seed sd | within 2 | largest shift (sd) at |",
        "|---|---:|---:|---:|---|",
    ]
    detail: list[str] = []
    for path in sorted(args.after.rglob("runs.parquet")):
        rel = path.relative_to(args.after)
        old = args.before / rel
        if not old.exists():
            lines.append(f"| {rel.parent} | new | | | |")
            continue
        table = compare(pd.read_parquet(old), pd.read_parquet(path))
        if table.empty:
            continue
        shift = table["shift_in_sd"].abs().replace(np.inf, np.nan)
        worst = table.loc[shift.idxmax()] if shift.notna().any() else table.iloc[0]
        lines.append(
            f"| {rel.parent} | {len(table)} | {(shift <= 1).mean():.0%} | {(shift <= 2).mean():.0%} | "
            f"{worst['shift_in_sd']:+.2f} ({worst['metric']}, {worst['group']}) |"
        )
        detail.append(f"\n### {rel.parent}\n")
        detail.append("| group | metric | runs | before | after | seed sd | shift (sd) |")
        detail.append("|---|---|---:|---:|---:|---:|---:|")
        for r in table.itertuples():
            detail.append(
                f"| {r.group} | {r.metric} | {r.runs} | {fmt(r.before)} | {fmt(r.after)} | {fmt(r.seed_sd)} | "
                f"{r.shift_in_sd:+.2f} |"
            )
    text = "\n".join([*lines, "", "## Per group", *detail]) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
