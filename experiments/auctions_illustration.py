"""The auctions experiment's time series: one seed (replicate 0) of every case of experiments/auctions.toml, run
again with its tables kept, to show where each mechanism's bad debt comes from and when.

    python experiments/auctions_illustration.py --out results/auctions

Writes OUT/illustration/: auctions_timeline.png (ETH price; bad debt written off and debt still in live auctions;
each auction's clearing price over the market price at settlement; the English case's lots per half hour by who
won them), auctions_<case>.parquet (the per-auction tables) and illustration.json (the numbers quoted in the
findings, with the English auctions' outcome by winner: zero-bid or default keepers, during the congestion or
after). With --long-steps N it also runs the english
case of the first --long-replicates seeds for N steps, so that the auctions a one-day run leaves live can finish:
their terminal bad debt goes into illustration.json ("long_english").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from abm.analysis import style
from abm.io import atomic_write_text
from abm.run import run
from abm.sweep.experiment import load_experiment


def live_debt(auctions: pd.DataFrame, steps: np.ndarray) -> np.ndarray:
    """Debt (USD, at the kick) of the auctions live at each step: kicked at or before it and not yet settled."""
    kick = auctions["kick_step"].to_numpy(float)
    settle = auctions["settle_step"].fillna(np.inf).to_numpy(float)
    debt = auctions["debt_usd"].to_numpy(float)
    return np.array([debt[(kick <= t) & (settle > t)].sum() for t in steps])


def by_winner(auctions: pd.DataFrame, n_keepers: int) -> dict[str, dict[str, float]]:
    """Settled auctions grouped by who won the lot (a zero-bid keeper: index >= n_keepers, or a default keeper) and
    when they settled (during the congestion, steps 240-719, or after): count, debt, bad debt, shortfall (USD)."""
    done = auctions[auctions["settle_step"].notna()]
    zero_keeper = done["winner"] >= n_keepers
    congested = (done["settle_step"] >= 240) & (done["settle_step"] < 720)
    out = {}
    for who, w in (("zero-bid keepers", zero_keeper), ("default keepers", ~zero_keeper)):
        for when, c in (("during congestion", congested), ("after", ~congested)):
            part = done[w & c]
            out[f"{who}, {when}"] = {
                "n": len(part),
                "zero_bids": int(part["zero_bid"].sum()),
                "debt_usd": float(part["debt_usd"].sum()),
                "bad_debt_usd": float(part["bad_debt_usd"].sum()),
                "shortfall_usd": float(part["shortfall_usd"].sum()),
            }
    return out


def long_english(exp, steps: int, replicates: int) -> list[dict[str, object]]:
    """The english case of the first `replicates` seeds run for `steps` steps: bad debt and the auctions' state at
    one day (step 1440) and at the end."""
    point = next(i for i in range(exp.n_points) if exp.points[i]["case"] == "english")
    rows = []
    for r in range(replicates):
        seed = exp.seed(point * exp.replicates + r)
        result = run(exp.point_config(point), seed=seed, steps=steps, keep_model=False)
        ts, auctions = result.timeseries, result.auctions
        s = result.summary
        settled_by_day = auctions["settle_step"].fillna(np.inf) <= 1440
        rows.append(
            {
                "seed": seed,
                "steps": steps,
                "bad_debt_usd_at_1440": float(ts.loc[ts["step"] == 1440, "bad_debt_usd"].iloc[0]),
                "bad_debt_usd": s["bad_debt_usd"],
                "auction_shortfall_usd": s["auction_shortfall_usd"],
                "auction_zero_bid_share": s["auction_zero_bid_share"],
                "n_auctions": s["n_auctions"],
                "settled_by_1440": int(settled_by_day.sum()),
                "auctions_live_at_end": s["auctions_live_at_end"],
                "auction_debt_live_usd": s["auction_debt_live_usd"],
                "auction_unbacked_live_usd": s["auction_unbacked_live_usd"],
                "last_settlement_step": float(auctions["settle_step"].max()) if len(auctions) else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", type=Path, default=Path("experiments/auctions.toml"))
    parser.add_argument("--out", type=Path, default=Path("results/auctions"))
    parser.add_argument("--replicate", type=int, default=0, help="the replicate whose seed is run")
    parser.add_argument("--long-steps", type=int, default=0, help="steps of the long english runs (0: none)")
    parser.add_argument("--long-replicates", type=int, default=3, help="how many seeds get a long english run")
    args = parser.parse_args(argv)
    exp = load_experiment(args.experiment)
    out = args.out / "illustration"
    out.mkdir(parents=True, exist_ok=True)
    style.theme()
    fig, axes = plt.subplots(4, 1, figsize=(9, 13), sharex=True)
    numbers: dict[str, dict[str, float]] = {}
    seed = None
    for point in range(exp.n_points):
        config = exp.point_config(point)
        label = str(exp.points[point]["case"])
        run_index = point * exp.replicates + args.replicate
        seed = exp.seed(run_index)
        result = run(config, seed=seed, keep_model=False)
        ts, auctions = result.timeseries, result.auctions
        auctions.to_parquet(out / f"auctions_{style.slug(label)}.parquet", index=False)
        steps = ts["step"].to_numpy()
        color = axes[0].plot(steps, ts["price_ETH"], label=label, lw=1.2)[0].get_color()  # one colour per case
        axes[1].plot(steps, ts["bad_debt_usd"] / 1e6, label=f"{label}: written off", lw=1.5, color=color)
        if len(auctions):
            axes[1].plot(steps, live_debt(auctions, steps) / 1e6, ls="--", color=color, lw=1.0)
            done = auctions[auctions["settle_step"].notna()]
            ratio = done["clearing_price"] / done["market_price"]
            size = 8 + 60 * done["debt_usd"] / 1e7
            axes[2].scatter(done["settle_step"], ratio, s=size, label=label, alpha=0.6, color=color)
        s = result.summary
        numbers[label] = {
            k: s[k]
            for k in (
                "bad_debt_usd",
                "n_liquidations",
                "n_auctions",
                "auctions_live_at_end",
                "auction_bad_debt_usd",
                "auction_shortfall_usd",
                "auction_discount_usd",
                "auction_zero_bid_share",
                "auction_debt_live_usd",
                "auction_unbacked_live_usd",
            )
        }
        if len(auctions):
            done = auctions[auctions["settle_step"].notna()]
            numbers[label]["first_settlement_step"] = float(done["settle_step"].min()) if len(done) else None
            numbers[label]["kicks_before_step_720"] = int((auctions["kick_step"] < 720).sum())
            numbers[label]["debt_kicked_usd"] = float(auctions["debt_usd"].sum())
            numbers[label]["raised_usd"] = float(auctions["raised"].sum())
            numbers[label]["by_winner"] = by_winner(auctions, config.auctions.n_keepers)  # type: ignore[assignment]
            zero = done[done["zero_bid"]]
            numbers[label]["first_zero_bid_settlement_step"] = float(zero["settle_step"].min()) if len(zero) else None
            numbers[label]["last_zero_bid_settlement_step"] = float(zero["settle_step"].max()) if len(zero) else None
        if label == "english" and len(auctions):  # the English lots per half hour, by who won them
            done = auctions[auctions["settle_step"].notna()]
            bins = np.arange(0, int(steps.max()) + 31, 30)
            zero_keeper = done["winner"] >= config.auctions.n_keepers
            for part, name, c in (
                (done[zero_keeper], "won by zero-bid keepers", "tab:red"),
                (done[~zero_keeper], "won by default keepers", "tab:blue"),
            ):
                axes[3].hist(
                    part["settle_step"], bins=bins, weights=part["debt_usd"] / 1e6, alpha=0.6, label=name, color=c
                )
    axes[0].plot(steps, ts["fundamental_ETH"], color="black", lw=0.8, ls=":", label="fundamental")
    axes[0].set_ylabel("ETH price (USD)")
    axes[0].legend(fontsize=7)
    axes[1].set_ylabel("USD millions")
    axes[1].set_title("bad debt written off (solid) and debt in live auctions (dashed)", fontsize=9)
    axes[1].legend(fontsize=7)
    axes[2].axhline(1.0, color="grey", lw=0.8)
    axes[2].set_ylabel("clearing / market price")
    axes[2].set_title("each settled auction (marker size: its debt)", fontsize=9)
    axes[2].legend(fontsize=7)
    axes[3].set_ylabel("debt settled, USD millions")
    axes[3].set_title("english: debt of the lots settled per half hour, by who won them", fontsize=9)
    axes[3].legend(fontsize=7)
    axes[3].set_xlabel("step (minutes)")
    for ax in axes:
        ax.axvspan(240, 720, color="grey", alpha=0.08)  # liquidators' and default keepers' block space gone
    fig.suptitle(f"black_thursday, seed {seed} (grey: no block space for liquidators and default keepers)", fontsize=11)
    style.save(fig, out / "auctions_timeline.png", tight_layout=True)
    plt.close(fig)
    info: dict[str, object] = {"seed": seed, "cases": numbers}
    if args.long_steps > 0:
        info["long_english"] = long_english(exp, args.long_steps, args.long_replicates)
    atomic_write_text(out / "illustration.json", json.dumps(info, indent=1) + "\n")
    print(out / "illustration.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
