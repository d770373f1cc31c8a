"""Seed-by-seed summaries of the shipped presets before and after a change (run on demand, not a test).

    PYTHONPATH=<checkout> python benchmarks/preset_summaries.py OUT.json     # once per checkout
    python benchmarks/preset_summaries.py BEFORE.json AFTER.json             # the before/after table

crash at 1,000 traders, seeds 0-9; black_thursday, perp_crash, lst_depeg, margin_mix at their preset sizes, seeds
0-4: the headline metrics of `compare_results.METRICS` and the largest pre-shock gap between market and
fundamental over the risky assets (`pre_shock_max_gap`). The table takes the keys both files have, so files written
with fewer keys still compare. Used for benchmarks/batched_decisions.md and benchmarks/genesis_one_pass.md.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from compare_results import METRICS

JOBS = [("crash", seed, 1000) for seed in range(10)]
JOBS += [(p, seed, None) for p in ("black_thursday", "perp_crash", "lst_depeg", "margin_mix") for seed in range(5)]


def collect(path: str) -> None:
    from abm.config import ModelConfig
    from abm.run import run

    out = {}
    for preset, seed, n in JOBS:
        config = ModelConfig.from_preset(preset, {"traders.n_traders": n} if n else {})
        summary = run(config, seed=seed, keep_model=False).summary
        row = {k: summary.get(k) for k in METRICS}
        gaps = [abs(v) for k, v in summary.items() if k.startswith("pre_shock_max_gap_") and v is not None]
        row["pre_shock_max_gap"] = max(gaps, default=None)
        out[f"{preset}:{seed}"] = row
        print(preset, seed, row, flush=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


def table(before_path: str, after_path: str) -> None:
    with open(before_path) as f:
        before = json.load(f)
    with open(after_path) as f:
        after = json.load(f)
    first = next(iter(before.values()))
    keys = [k for k in first if k in next(iter(after.values()))]
    print("| preset | key | before mean (sd) | after mean (sd) | per-seed difference: max abs |")
    print("|---|---|---|---|---|")
    for preset in dict.fromkeys(p for p, _, _ in JOBS):
        runs = [k for k in before if k.startswith(preset + ":")]
        for key in keys:
            b = np.array([np.nan if before[r][key] is None else before[r][key] for r in runs], dtype=float)
            a = np.array([np.nan if after[r][key] is None else after[r][key] for r in runs], dtype=float)
            diff = np.nanmax(np.abs(a - b)) if np.isfinite(a - b).any() else 0.0
            print(
                f"| {preset} | {key} | {np.nanmean(b):.4g} ({np.nanstd(b, ddof=1):.3g}) | "
                f"{np.nanmean(a):.4g} ({np.nanstd(a, ddof=1):.3g}) | {diff:.3g} |"
            )


if __name__ == "__main__":
    collect(sys.argv[1]) if len(sys.argv) == 2 else table(sys.argv[1], sys.argv[2])
