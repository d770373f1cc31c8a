"""The contagion study's single-run illustrations (not a sweep): the exposure network and every account's DebtRank
just before the SOL shock of one contagion run, its largest cascades, and how long the exposure graph and DebtRank
take at 10,000 traders.

    python experiments/contagion_illustrations.py --out results/contagion
    abm report results/contagion        # includes them (OUT/illustration/) in tables.md

Writes OUT/illustration/: exposure_network.png, debtrank_vs_size.png, cascade_trees_contagion.png,
debtrank.parquet, exposure.graphml and illustration.json (the numbers).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from abm.contagion.study import exposure_timing, illustrate
from abm.contagion.study_report import ILLUSTRATION_DIR, ILLUSTRATION_FILE
from abm.io import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/contagion"), help="the study's folder")
    parser.add_argument("--seed", type=int, default=7, help="seed of the illustrative run")
    parser.add_argument(
        "--timing-traders", type=int, default=10_000, help="traders in the timing run (0: skip the timing)"
    )
    args = parser.parse_args(argv)
    if args.timing_traders < 0:
        parser.error(f"--timing-traders {args.timing_traders}: must be >= 0")
    out = args.out / ILLUSTRATION_DIR
    info = {"illustrate": illustrate(out, seed=args.seed)}
    if args.timing_traders:
        info["timing"] = exposure_timing(args.timing_traders)
    atomic_write_text(out / ILLUSTRATION_FILE, json.dumps(info, indent=1) + "\n")
    print(out / ILLUSTRATION_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
