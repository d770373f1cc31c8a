"""Summaries for benchmarks/batched_decisions.md: python benchmarks/batched_summaries.py OUT.json.

crash at 1,000 traders, seeds 0-9; black_thursday, perp_crash, lst_depeg, margin_mix at their preset sizes, seeds
0-4: amplification_ETH, n_liquidations, liquidation_volume_usd, bad_debt_usd, pre-shock liquidations and the
largest pre-shock gap between market and fundamental over the assets.
"""

from __future__ import annotations

import json
import sys

from abm.config import ModelConfig
from abm.run import run

KEYS = ("amplification_ETH", "n_liquidations", "liquidation_volume_usd", "bad_debt_usd", "pre_shock_liquidations")
jobs = [("crash", seed, 1000) for seed in range(10)]
jobs += [(p, seed, None) for p in ("black_thursday", "perp_crash", "lst_depeg", "margin_mix") for seed in range(5)]
out = {}
for preset, seed, n in jobs:
    config = ModelConfig.from_preset(preset, {"traders.n_traders": n} if n else {})
    summary = run(config, seed=seed, keep_model=False).summary
    row = {k: summary.get(k) for k in KEYS}
    gaps = [abs(v) for k, v in summary.items() if k.startswith("pre_shock_max_gap_") and v is not None]
    row["pre_shock_max_gap"] = max(gaps, default=None)
    out[f"{preset}:{seed}"] = row
    print(preset, seed, row, flush=True)
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
