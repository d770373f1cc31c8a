"""The adversaries' price paths (not a sweep): why the hunter profits, and how the oracle attacker moves the oracle
through the thin venue while the deep market stays put, from the time series of one replicate of each experiment.

    python experiments/adversary_paths.py

Writes results/liquidation_hunt/paths/paths.png (the ETH market and oracle price with the hunter, beside its twin
without it, in replicate 0 of experiments/liquidation_hunt.toml) and results/oracle_attack/paths/paths.png (the ETH
deep market, thin venue and oracle price with three updaters at TWAP windows of 1, 15 and 30 steps in replicate 0
of experiments/oracle_attack.toml, with the attacker's priced gain and cost, its target, the step its push landed
and the liquidations per step), and paths.json beside each (the numbers the figures show); and results/oracle_attack/breakeven.md, the
break-even table of that sweep (the attacker's profit, cost and gain per defence, measured and priced).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import abm
from abm.agents.oracle_attacker import CORRUPT, MARKET, NONE, VENUE, attack_route
from abm.analysis import style
from abm.io import atomic_write_text
from abm.run import twin_config
from abm.sweep.experiment import load_experiment

ROOT = Path(__file__).resolve().parent.parent


def hunt_paths(out: Path) -> dict[str, float]:
    import matplotlib.pyplot as plt

    exp = load_experiment(ROOT / "experiments" / "liquidation_hunt.toml")
    seed = exp.seed(0)  # replicate 0 (common random numbers: every point's)
    config = exp.point_config(0)  # positions visible
    assert config.hunters.positions_visible
    hunted = abm.run(config, seed=seed, steps=exp.steps)
    twin = abm.run(twin_config(config, "unhunted"), seed=seed, steps=exp.steps, keep_model=False)
    style.theme()
    fig, (ax, low) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ts, tw = hunted.timeseries, twin.timeseries
    ax.plot(ts["step"], ts["price_ETH"], label="market, with the hunter", color="C3")
    ax.plot(ts["step"], ts["oracle_ETH"], label="oracle, with the hunter", color="C3", ls="--", lw=1)
    ax.plot(tw["step"], tw["price_ETH"], label="market, twin without it", color="C0")
    ax.plot(ts["step"], ts["fundamental_ETH"], label="fundamental (both)", color="grey", lw=1)
    ax.set_ylabel("ETH (USD)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"liquidation_hunt, seed {seed}: the hunter's pushes and the cascades they set off", fontsize=10)
    low.plot(ts["step"], ts["n_liquidations"], color="C3", lw=1.2, drawstyle="steps-mid", label="with the hunter")
    low.plot(tw["step"], tw["n_liquidations"], color="C0", lw=1.2, drawstyle="steps-mid", label="twin without it")
    low.set_ylabel("liquidations\nper step")
    low.set_xlabel("step (minutes)")
    low.legend(loc="upper right", fontsize=8)
    out.mkdir(parents=True, exist_ok=True)
    style.save(fig, out / "paths.png", tight_layout=True)
    numbers = {
        "seed": seed,
        "hunter_profit_usd": hunted.summary["hunter_profit_usd"],
        "hunter_hunts": hunted.summary["hunter_hunts"],
        "n_liquidations": hunted.summary["n_liquidations"],
        "twin_n_liquidations": twin.summary["n_liquidations"],
        "min_price_ETH": float(ts["price_ETH"].min()),
        "twin_min_price_ETH": float(tw["price_ETH"].min()),
    }
    atomic_write_text(out / "paths.json", json.dumps(numbers, indent=2))
    return numbers


def attack_paths(out: Path, windows: tuple[int, ...] = (1, 15, 30)) -> dict[str, dict[str, float]]:
    import matplotlib.pyplot as plt
    import numpy as np

    exp = load_experiment(ROOT / "experiments" / "oracle_attack.toml")
    seed = exp.seed(0)
    configs = {
        c.oracles.twap_window_steps: c
        for c in map(exp.point_config, range(exp.n_points))
        if c.oracles.n_updaters == 3 and c.oracles.twap_window_steps in windows
    }
    style.theme()
    fig, axes = plt.subplots(
        2, len(windows), figsize=(4 * len(windows), 4.6), sharex=True, sharey="row", height_ratios=[3, 1]
    )
    numbers: dict[str, dict[str, float]] = {}
    for col, window in enumerate(windows):
        ax, low = axes[0, col], axes[1, col]
        config = configs[window]
        result = abm.run(config, seed=seed, steps=exp.steps)
        model = result.model
        attacker = model.attackers[0]
        ts = result.timeseries[result.timeseries["step"] <= 160]
        steps = ts["step"].to_numpy()
        venue = np.exp(model.oracle_venue.history.recorded_market[steps, attacker.asset])
        ax.plot(steps, ts["price_ETH"], label="deep market", color="C3")
        ax.plot(steps, venue, label="thin venue", color="C1", lw=1)
        ax.plot(steps, ts["oracle_ETH"], label="oracle (median)", color="C0", ls="--")
        ax.axhline(attacker.target, color="k", lw=0.8, ls=":", label="attacker's target")
        ax.axvline(config.attacker.start_step, color="grey", lw=0.8)
        if attacker.landed_step >= 0:
            ax.axvline(attacker.landed_step, color="C2", lw=0.8, label="oracle reaches the target")
        gain, cost = attacker.expected_gain_usd / 1e6, attacker.expected_cost_usd / 1e6
        verdict = f"profit {attacker.profit_usd() / 1e6:.1f}M" if attacker.attacked else "stands down"
        ax.set_title(f"TWAP {window}: priced gain {gain:.1f}M, cost {cost:.1f}M;\n{verdict}", fontsize=10)
        low.plot(steps, ts["n_liquidations"], color="C3", lw=1.2, drawstyle="steps-mid")
        low.set_xlabel("step (minutes)")
        numbers[f"twap_{window}"] = {
            "attacked": int(attacker.attacked),
            "profit_usd": attacker.profit_usd(),
            "cost_usd": attacker.cost_usd,
            "gain_usd": attacker.gain_usd,
            "expected_cost_usd": attacker.expected_cost_usd,
            "expected_gain_usd": attacker.expected_gain_usd,
            "landed_step": attacker.landed_step,
            "target": attacker.target,
            "min_price_ETH": float(result.timeseries["price_ETH"].min()),
            "min_venue_ETH": float(np.exp(model.oracle_venue.history.recorded_market[:, attacker.asset]).min()),
            "min_oracle_ETH": float(result.timeseries["oracle_ETH"].min()),
            "attacker_liquidations": attacker.n_liquidations,
            "n_liquidations": result.summary["n_liquidations"],
        }
    axes[0, 0].set_ylabel("ETH (USD)")
    axes[1, 0].set_ylabel("liquidations\nper step")
    axes[0, 0].legend(loc="lower left", fontsize=7)
    fig.suptitle(f"oracle_attack, three updaters (one corrupted, one reading the thin venue), seed {seed}", fontsize=11)
    out.mkdir(parents=True, exist_ok=True)
    style.save(fig, out / "paths.png", tight_layout=True)
    atomic_write_text(out / "paths.json", json.dumps({"seed": seed, **numbers}, indent=2))
    return numbers


def attack_breakeven(sweep: Path) -> str:
    """The break-even table of the oracle_attack sweep in `sweep` (its runs.parquet), written to breakeven.md there:
    per defence (TWAP window x number of updaters), the attacker's measured profit, cost and gain, and the cost,
    gain and capital the formulas price at its start; the break-even attack cost of a defence is the priced cost."""
    import pandas as pd

    exp = load_experiment(ROOT / "experiments" / "oracle_attack.toml")
    base = exp.point_config(0)
    readers = base.oracle_venue.readers if base.oracle_venue.enabled else None
    routes = {
        CORRUPT: "corrupted updater",
        VENUE: "thin venue",
        MARKET: "deep market",
        NONE: "none (the deep market's readers outvote it)",
    }
    runs = pd.read_parquet(sweep / "runs.parquet")
    keys = ["oracles.n_updaters", "oracles.twap_window_steps"]
    rows = [
        "| updaters | TWAP (steps) | route | attacked (seeds) | profit, mean ± sd (M$) | seeds > 0 | "
        "break-even cost priced (M$) | gain priced (M$) | capital priced (M$) | "
        "attacks: cost priced / measured (M$) | attacks: gain priced / measured (M$) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n, window), cell in runs.groupby(keys):
        route = routes[attack_route(int(n), base.attacker.corrupt_updaters, readers)]
        m = cell.mean(numeric_only=True) / 1e6
        sd = cell["attacker_profit_usd"].std() / 1e6
        attacks = cell[cell["attacker_attacked"] == 1]
        a = attacks.mean(numeric_only=True) / 1e6 if len(attacks) else None

        def pair(priced: str, measured: str, a: pd.Series | None = a) -> str:
            return "–" if a is None else f"{a[priced]:.2f} / {a[measured]:.2f}"

        rows.append(
            f"| {n} | {window} | {route} | {len(attacks)}/{len(cell)} | "
            f"{m['attacker_profit_usd']:.2f} ± {sd:.2f} | {int((cell['attacker_profit_usd'] > 0).sum())}/{len(cell)} | "
            f"{m['attacker_expected_cost_usd']:.2f} | {m['attacker_expected_gain_usd']:.2f} | "
            f"{m['attacker_expected_capital_usd']:.1f} | "
            f"{pair('attacker_expected_cost_usd', 'attacker_cost_usd')} | "
            f"{pair('attacker_expected_gain_usd', 'attacker_gain_usd')} |"
        )
    text = (
        "# Break-even attack cost per defence (generated by experiments/adversary_paths.py)\n\n"
        "Means over the replicates of each cell of this sweep (the last two columns: over the seeds it attacked in,\n"
        "the attack as priced at its start against what it measured). The break-even cost of a defence is what the\n"
        "formulas price the attack's cost at, at its start (`attacker_expected_cost_usd`: `venue_hold_cost` on the\n"
        "thin venue, 0 through a lone corrupted updater, `hold_cost` of the deep market where the median follows\n"
        "it); the gain priced is what liquidating the accounts exposed between the oracle price and the target\n"
        "would gain (`attacker_expected_gain_usd`, from the visible positions). The attacker is rational\n"
        f"(`attacker.rational`, `attacker.min_edge` = {base.attacker.min_edge:g}): it attacks only where its route can\n"
        "move the median and the gain priced exceeds the cost priced by its edge (`protocol.attack_pays`); a seed\n"
        "where it stands down counts 0 in its profit.\n\n" + "\n".join(rows) + "\n"
    )
    atomic_write_text(sweep / "breakeven.md", text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="the results folder")
    parser.add_argument("--only", choices=["hunt", "attack"], help="draw only one of the two figures")
    args = parser.parse_args(argv)
    if args.only != "attack":
        print(json.dumps(hunt_paths(args.results / "liquidation_hunt" / "paths"), indent=2))
    if args.only == "hunt":
        return 0
    print(json.dumps(attack_paths(args.results / "oracle_attack" / "paths"), indent=2))
    print(attack_breakeven(args.results / "oracle_attack"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
