"""Static against dynamic margin, paired on the same news: the seed-by-seed comparisons of the sweep of
experiments/dynamic_margin.toml that its generic report does not make.

    abm sweep experiments/dynamic_margin.toml --out results/dynamic_margin && abm report results/dynamic_margin
    python experiments/dynamic_margin.py [--sweep results/dynamic_margin]

Reads the sweep's rows (`abm.sweep.store.read_runs`), those of the sweeps of
experiments/dynamic_margin_instant.toml (`instant_cut/`) and experiments/dynamic_margin_feed.toml (`feed/`) inside
it, and the runs it kept (replicate 0 of the static, the one-minute and the one-minute realised-feed cases of
crash and black_thursday), and writes into `--sweep`, atomically: `paired.md` (per scenario and variant, the paired
difference in bad debt and in how many seeds the risk manager lowered it; the calm day's borrowing-capacity cost;
the timing of the manager's first change against the bad debt; which accounts make the bad debt) and
`paired/*.png`. Cases are named "<scenario>, static" and "<scenario>, steward <cadence>[, <variant>]", as in the
experiment files. A missing sweep directory is one line on stderr and exit status 2, with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from abm.analysis import style
from abm.errors import UserInputError
from abm.io import atomic_write_text
from abm.sweep.store import read_runs

DEFAULT_SWEEP = Path("results/dynamic_margin")
SCENARIOS = ("crash", "black_thursday")
CALM = "baseline"
STATIC = "static"
INSTANT = "instant_cut"  # the sweep of experiments/dynamic_margin_instant.toml, inside the main sweep's directory
FEED = "feed"  # the sweep of experiments/dynamic_margin_feed.toml, likewise
LTV_ONLY = "ltv_only"  # the sweep of experiments/dynamic_margin_ltv.toml, likewise
MINUTE = "steward 1 minute"  # the default manager: its own 5-minute feed of the market price
REALISED = "steward 1 minute, realised feed"  # the same manager reading the market's one-day EWMA
# the feed sweep's market-feed cases name the default explicitly: they repeat the main sweep's one-minute cases
MARKET_FEED = "steward 1 minute, market feed"
# the kept runs: (sweep subdirectory, run index) -> (scenario, case); see save_timeseries in the experiment file
KEPT = {("", 0): ("crash", STATIC), ("", 30): ("crash", MINUTE), ("", 40): ("crash", REALISED)}
KEPT |= {
    ("", 50): ("black_thursday", STATIC),
    ("", 80): ("black_thursday", MINUTE),
    ("", 90): ("black_thursday", REALISED),
}
SHOWN = (STATIC, REALISED, MINUTE)  # the runs of the timing table and the time-series figures
NAMES = {STATIC: "static", REALISED: "1 minute, one-day EWMA", MINUTE: "1 minute, own market feed"}
COLOURS = {STATIC: "tab:blue", REALISED: "tab:red", MINUTE: "tab:green"}
WINDOW = {"crash": (225, 330), "black_thursday": (225, 900)}  # steps shown in the time-series figures
VARIANTS = (
    "steward 3 days",
    "steward 1 hour",
    MINUTE,
    REALISED,
    "steward 1 minute, unbounded",
    "steward 1 minute, market feed 15 min",
    "steward 1 minute, oracle feed",
    "instant cut at the shock",
    "LTV cut at the shock",
)


def split_case(label: str) -> tuple[str, str]:
    """'crash, steward 1 hour' -> ('crash', 'steward 1 hour')."""
    scenario, variant = label.split(", ", 1)
    return scenario, variant


def drop_repeats(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop the feed sweep's market-feed cases, which name the default feed explicitly, once they are found to give
    seed by seed the bad debt of the main sweep's one-minute cases (the default manager); returns the runs and the
    scenarios checked. A case that differs is kept, so the tables show the difference."""
    checked = []
    for scenario in (*SCENARIOS, CALM):
        explicit = runs[runs["case"] == f"{scenario}, {MARKET_FEED}"].set_index("seed")["bad_debt_usd"]
        default = runs[runs["case"] == f"{scenario}, {MINUTE}"].set_index("seed")["bad_debt_usd"]
        if explicit.empty or default.empty or not explicit.sort_index().equals(default.sort_index()):
            continue
        runs = runs[runs["case"] != f"{scenario}, {MARKET_FEED}"]
        checked.append(scenario)
    return runs, checked


def paired_table(runs: pd.DataFrame, scenario: str) -> tuple[list[str], list[list[str]]]:
    """One row per risk-manager case of `scenario` against its static case, paired by seed."""
    static = runs[runs["case"] == f"{scenario}, {STATIC}"].set_index("seed")
    header = [
        "risk manager",
        "bad debt, static",
        "bad debt, dynamic",
        "paired difference",
        "seeds with less bad debt",
        "liquidations, static → dynamic",
        "ETH amplification, static → dynamic",
        "crash-day capacity cost",
        "first change (step)",
        "lowest ETH LT",
    ]
    rows = []
    for label in sorted(set(runs["case"])):
        sc, variant = split_case(label)
        if sc != scenario or variant == STATIC:
            continue
        dyn = runs[runs["case"] == label].set_index("seed")
        seeds = static.index.intersection(dyn.index)
        diff = dyn.loc[seeds, "bad_debt_usd"] - static.loc[seeds, "bad_debt_usd"]
        rows.append(
            [
                variant,
                style.mean_sd(static.loc[seeds, "bad_debt_usd"]),
                style.mean_sd(dyn.loc[seeds, "bad_debt_usd"]),
                f"{style.mean_sd(diff)} ({style.num(diff.mean() / static.loc[seeds, 'bad_debt_usd'].mean() * 100, 2)}%)",
                f"{int((diff < 0).sum())} of {len(seeds)}",
                f"{style.num(static.loc[seeds, 'n_liquidations'].mean())} → {style.num(dyn.loc[seeds, 'n_liquidations'].mean())}",
                f"{style.num(static.loc[seeds, 'amplification_ETH'].mean())} → "
                f"{style.num(dyn.loc[seeds, 'amplification_ETH'].mean())}",
                style.mean_sd(dyn.loc[seeds, "borrow_capacity_cost"]),
                style.mean_sd(dyn.loc[seeds, "first_risk_change_step"]),
                style.mean_sd(dyn.loc[seeds, "min_liquidation_threshold_ETH"]),
            ]
        )
    rows.sort(key=lambda r: VARIANTS.index(r[0]) if r[0] in VARIANTS else len(VARIANTS))
    return header, rows


def calm_table(runs: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The calm day's borrowing-capacity cost per risk-manager case, and what the manager did."""
    header = ["risk manager", "borrow_capacity_cost", "borrow_headroom_cost", "parameter changes", "bad debt"]
    rows = []
    for label in sorted(set(runs["case"])):
        sc, variant = split_case(label)
        if sc != CALM or variant == STATIC:
            continue
        r = runs[runs["case"] == label]
        rows.append(
            [
                variant,
                f"{style.mean_sd(r['borrow_capacity_cost'])} (max {style.num(r['borrow_capacity_cost'].max())})",
                f"{style.mean_sd(r['borrow_headroom_cost'])} (max {style.num(r['borrow_headroom_cost'].max())})",
                style.mean_sd(r["risk_parameter_changes"]),
                style.mean_sd(r["bad_debt_usd"]),
            ]
        )
    return header, rows


def kept_tables(sweep: Path, table: str = "timeseries") -> dict[tuple[str, str], pd.DataFrame]:
    """One table ("timeseries", "events", "write_offs") of each run the sweeps kept, by (scenario, case variant)."""
    out = {}
    for (sub, index), key in KEPT.items():
        path = sweep / sub / "runs" / f"run-{index:06d}" / f"{table}.parquet"
        if path.is_file():
            out[key] = pd.read_parquet(path)
    return out


def anatomy_rows(sweep: Path) -> tuple[list[str], list[list[str]]]:
    """Which accounts make the bad debt (replicate 0): every account written off, by its health factor when first
    liquidated; how long it waited below HF 1 before that (steps from its distress step); and the oracle's premium
    over the market while it waited (a liquidator is paid the bonus at the oracle price and sells at the market,
    so above the bonus a liquidation loses money)."""
    series, events, write_offs = kept_tables(sweep), kept_tables(sweep, "events"), kept_tables(sweep, "write_offs")
    header = [
        "run (replicate 0)",
        "bad debt",
        "accounts written off",
        "of it: first liquidated at HF < 0.87",
        "0.87-0.95",
        "≥ 0.95",
        "steps below HF 1 before the first liquidation (median)",
        "oracle over market while they waited (mean)",
        "most liquidations in one step",
    ]
    rows = []
    for scenario in SCENARIOS:
        for variant in SHOWN:
            key = (scenario, variant)
            if key not in series or key not in events or key not in write_offs:
                continue
            ts, ev, wo = series[key], events[key], write_offs[key]
            ev = ev[ev["venue"] == "lending"] if "venue" in ev else ev
            lost = wo.groupby("account")["amount_usd"].sum()
            first = ev.sort_values("step").groupby("account").first()
            acc = pd.DataFrame({"usd": lost}).join(first[["step", "distress_step", "hf_before"]], how="left")
            total = float(acc["usd"].sum())
            bands = [
                acc["hf_before"] < 0.87,
                acc["hf_before"].between(0.87, 0.95, inclusive="left"),
                acc["hf_before"] >= 0.95,
            ]
            share = [f"{style.num(acc.loc[b, 'usd'].sum() / total * 100 if total else 0.0, 2)}%" for b in bands]
            premium = (ts["oracle_ETH"] / ts["price_ETH"] - 1.0).to_numpy()
            waits = [
                premium[int(d) : int(s) + 1].mean()
                for d, s in zip(acc["distress_step"], acc["step"], strict=True)
                if s == s
            ]
            rows.append(
                [
                    f"{scenario}, {variant}",
                    style.num(total),
                    style.num(len(acc)),
                    *share,
                    style.num(float((acc["step"] - acc["distress_step"]).median()) if len(acc) else None),
                    f"{style.num(float(np.mean(waits)) * 100 if waits else 0.0, 2)}%",
                    style.num(int(ev.groupby("step").size().max()) if len(ev) else 0),
                ]
            )
    return header, rows


def distress_figure(sweep: Path, scenario: str, path: Path) -> Path | None:
    """Bad debt by the step its account first fell below HF 1 (replicate 0), static against the risk managers,
    over the oracle's premium over the market: the accounts that cross HF 1 once the premium exceeds the bonus
    wait, unliquidated, until the fall stops."""
    import matplotlib.pyplot as plt

    series, events, write_offs = kept_tables(sweep), kept_tables(sweep, "events"), kept_tables(sweep, "write_offs")
    if (scenario, STATIC) not in series:
        return None
    style.theme()
    lo, hi = WINDOW[scenario]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for variant in SHOWN:
        key = (scenario, variant)
        if key not in events or key not in write_offs:
            continue
        ev, wo = events[key], write_offs[key]
        distress = ev.sort_values("step").groupby("account")["distress_step"].first()
        lost = wo.groupby("account")["amount_usd"].sum()
        by_step = pd.DataFrame({"usd": lost, "distress": distress}).dropna().groupby("distress")["usd"].sum()
        steps = np.arange(lo, hi)
        cumulative = by_step.reindex(steps, fill_value=0.0).cumsum().to_numpy() / 1e6
        top.step(steps, cumulative, where="post", color=COLOURS[variant], label=NAMES[variant])
        ts = series[key].iloc[lo:hi]
        premium = (ts["oracle_ETH"] / ts["price_ETH"] - 1.0) * 100
        bottom.plot(ts["step"], premium, color=COLOURS[variant], label=NAMES[variant])
    bottom.axhline(5.0, color="black", ls=":", lw=1, label="ETH liquidation bonus (5%)")
    top.set_ylabel("bad debt of accounts below\nHF 1 by then ($M)")
    bottom.set_ylabel("ETH oracle over market (%)")
    bottom.set_xlabel("step (minutes; the shock starts at 240)")
    top.set_xlim(lo, min(hi, lo + 80) if scenario == "crash" else hi)
    top.legend(fontsize=7)
    bottom.legend(fontsize=7)
    fig.suptitle(f"{scenario}, replicate 0: when the accounts that made the bad debt fell below HF 1", fontsize=11)
    return style.save(fig, path, tight_layout=True)


def timing_rows(series: dict[tuple[str, str], pd.DataFrame]) -> tuple[list[str], list[list[str]]]:
    """When the risk manager first acts against when bad debt is written off (replicate 0)."""
    header = [
        "run (replicate 0)",
        "shock starts",
        "first LT change",
        "first bad debt",
        "90% of bad debt by",
        "LT then",
        "account-steps liquidatable in the window / liquidations",
    ]
    rows = []
    for scenario in SCENARIOS:
        for variant in SHOWN:
            ts = series.get((scenario, variant))
            if ts is None:
                continue
            bad = ts["bad_debt_usd"].to_numpy()
            first_bad = int(np.argmax(bad > 0)) if bad[-1] > 0 else None
            most = int(np.argmax(bad >= 0.9 * bad[-1])) if bad[-1] > 0 else None
            lt = ts.get("liquidation_threshold_ETH")
            first_change = None
            if lt is not None:
                moved = np.flatnonzero(np.diff(lt.to_numpy()) != 0)
                first_change = int(moved[0] + 1) if len(moved) else None
            lo, hi = WINDOW[scenario]
            window = ts.iloc[lo:hi]
            rows.append(
                [
                    f"{scenario}, {variant}",
                    "240",
                    style.num(first_change),
                    style.num(first_bad),
                    style.num(most),
                    style.num(float(lt.iloc[most])) if lt is not None and most is not None else "0.825",
                    f"{style.num(window['n_liquidatable'].sum())} / {style.num(window['n_liquidations'].sum())}",
                ]
            )
    return header, rows


def timeseries_figure(series: dict[tuple[str, str], pd.DataFrame], scenario: str, path: Path) -> Path | None:
    """ETH market and oracle price, ETH liquidation threshold, cumulative bad debt and accounts waiting below
    HF 1, static against the one-minute risk managers (the market's one-day EWMA; its own market feed),
    replicate 0."""
    import matplotlib.pyplot as plt

    if (scenario, STATIC) not in series:
        return None
    style.theme()
    lo, hi = WINDOW[scenario]
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    for variant in SHOWN:
        ts = series.get((scenario, variant))
        if ts is None:
            continue
        name, colour = NAMES[variant], COLOURS[variant]
        w = ts.iloc[lo:hi]
        axes[0].plot(w["step"], w["price_ETH"], color=colour, label=f"{name}: market")
        axes[0].plot(w["step"], w["oracle_ETH"], color=colour, ls=":", label=f"{name}: oracle")
        lt = w["liquidation_threshold_ETH"] if "liquidation_threshold_ETH" in w else pd.Series(0.825, index=w.index)
        axes[1].plot(w["step"], lt, color=colour, label=name)
        axes[2].plot(w["step"], w["bad_debt_usd"] / 1e6, color=colour, label=name)
        axes[3].plot(w["step"], w["n_liquidatable"], color=colour, label=f"{name}: below HF 1")
        axes[3].plot(w["step"], w["n_liquidations"], color=colour, ls=":", label=f"{name}: liquidated")
    axes[0].set_ylabel("ETH (USD)")
    axes[1].set_ylabel("ETH liq. threshold")
    axes[2].set_ylabel("bad debt ($M)")
    axes[3].set_ylabel("accounts per step")
    axes[3].set_xlabel("step (minutes; the shock starts at 240)")
    for ax in axes:
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{scenario}, replicate 0: static parameters against the one-minute risk managers", fontsize=11)
    return style.save(fig, path, tight_layout=True)


def paired_figure(runs: pd.DataFrame, path: Path) -> Path:
    """Per seed, bad debt with the risk manager minus without it, by scenario and cadence."""
    import matplotlib.pyplot as plt

    style.theme()
    fig, axes = plt.subplots(len(SCENARIOS), 1, figsize=(11, 7), sharey=False)
    for ax, scenario in zip(axes, SCENARIOS, strict=True):
        static = runs[runs["case"] == f"{scenario}, {STATIC}"].set_index("seed")["bad_debt_usd"]
        labels, diffs = [], []
        for variant in VARIANTS:
            dyn = runs[runs["case"] == f"{scenario}, {variant}"].set_index("seed")["bad_debt_usd"]
            if dyn.empty:
                continue
            seeds = static.index.intersection(dyn.index)
            label = variant.removeprefix("steward ").replace(" at the shock", "").replace(", ", "\n")
            labels.append(label.replace(" feed ", " feed\n"))
            diffs.append(((dyn.loc[seeds] - static.loc[seeds]) / 1e6).to_numpy())
        for i, d in enumerate(diffs):
            ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d, s=14)
            ax.hlines(d.mean(), i - 0.25, i + 0.25, color="black")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(scenario, fontsize=10)
    axes[0].set_ylabel("bad debt, dynamic − static ($M)")
    fig.supxlabel("least time between changes (instant cut: all 10 points at step 240, scripted)", fontsize=10)
    fig.suptitle("Paired by seed (same news): below 0 the risk manager lowered bad debt; bar: mean", fontsize=11)
    return style.save(fig, path, tight_layout=True)


def write(sweep: Path) -> Path:
    if not (sweep / "runs.parquet").is_file():
        raise UserInputError(
            f"'{sweep}' holds no sweep (no runs.parquet): run abm sweep experiments/dynamic_margin.toml first"
        )
    runs = read_runs(sweep)
    # the upper bound (the whole cut at the shock's first minute); the managers' own feeds; LTV alone
    for sub in (INSTANT, FEED, LTV_ONLY):
        if (sweep / sub / "runs.parquet").is_file():
            runs = pd.concat([runs, read_runs(sweep / sub)], ignore_index=True)
    runs = runs[runs["status"] == "ok"]
    runs, repeated = drop_repeats(runs)
    fig_dir = sweep / "paired"
    style.clear_figures(fig_dir)
    series = kept_tables(sweep)
    lines = [
        "# Dynamic margin: paired comparisons",
        "",
        "Written by `python experiments/dynamic_margin.py` from the sweep of `experiments/dynamic_margin.toml`",
        "(report: [report.md](report.md)). Every case's replicate r has the same seed, so each row compares the",
        "risk manager with static parameters on the same news, seed by seed. Bad debt in USD, mean ± sd over seeds;",
        "the paired difference is dynamic − static (< 0: the manager lowered bad debt). Two bounds come from",
        "`experiments/dynamic_margin_instant.toml` (its sweep is in `instant_cut/`): 'unbounded', the one-minute",
        "manager allowed its whole 10-point range in one update (it follows the volatility target at once); and",
        "'instant cut at the shock', ETH's and BTC's LTV and threshold cut by the whole 10 points in the shock's",
        "first minute (scripted: no delay, no bound, no wait for volatility to show). The feed variants come from",
        "`experiments/dynamic_margin_feed.toml` (`feed/`): the one-minute manager reading its own EWMA of",
        "one-minute log returns of the market price with a 15-minute half-life instead of 5 ('market feed 15 min'),",
        "or of the oracle price ('oracle feed'). The managers without a feed in their name read the default, their",
        "own 5-minute EWMA of the market price; 'realised feed' reads instead the market's one-day EWMA (the",
        "traders' estimate). 'LTV cut at the shock' (`experiments/dynamic_margin_ltv.toml`, `ltv_only/`) cuts only",
        "the LTVs, by 10 points at step 240.",
        "",
    ]
    if repeated:
        lines += [
            f"The feed sweep's 'market feed' cases ({', '.join(repeated)}), which name the default feed explicitly,",
            "give seed by seed the same bad debt as the one-minute cases here, so they are not listed again.",
            "",
        ]
    for scenario in SCENARIOS:
        header, rows = paired_table(runs, scenario)
        lines += [f"## {scenario}", "", style.markdown_table(header, rows), ""]
    header, rows = calm_table(runs)
    lines += [
        "## Calm day: the borrowing-capacity cost",
        "",
        "`borrow_capacity_cost` = 1 − Σ_t capacity_t / Σ_t static capacity_t, capacity being the largest debt the",
        "book's collateral supports at the current LTVs (Σ c·o·LTV) and static capacity the same positions' under",
        "the configured LTVs; `borrow_headroom_cost` the same for the part not yet borrowed (docs/model.md,",
        "Adaptive risk parameters).",
        "",
        style.markdown_table(header, rows),
        "",
    ]
    header, rows = timing_rows(series)
    lines += [
        "## Timing (replicate 0)",
        "",
        "When the manager first cuts ETH's liquidation threshold against when the bad debt is written off; and,",
        "over the window of the figures below, how many account-steps were below HF 1 against how many",
        "liquidations were made (accounts waiting below 1 are liquidatable already: a lower threshold adds to",
        "the queue, not to what liquidators can clear).",
        "",
        style.markdown_table(header, rows),
        "",
    ]
    header, rows = anatomy_rows(sweep)
    lines += [
        "## Which accounts make the bad debt (replicate 0)",
        "",
        "Every account written off, by its health factor when first liquidated (an account liquidated below",
        "HF = LT·(1 + bonus) ≈ 0.87 no longer covers its debt plus the bonus, and is left with bad debt); the steps",
        "it waited below HF 1 before that; and the oracle's premium over the market while it waited. A liquidator",
        "repays at the oracle price, seizes the bonus and sells at the market: while the oracle, one update behind,",
        "stands more than the bonus above the market, liquidating loses money and nobody does it. In `crash` the",
        "liquidators' capacity (5 × 20 a step) is never the limit; in `black_thursday` it is (0 from step 240 to",
        "720, then 5 × 2 a step).",
        "",
        style.markdown_table(header, rows),
        "",
        "## Figures",
        "",
    ]
    figures = [
        ("Per seed: bad debt with the risk manager minus without", paired_figure(runs, fig_dir / "bad_debt_paired.png"))
    ]
    for scenario in SCENARIOS:
        path = timeseries_figure(series, scenario, fig_dir / f"timeseries_{scenario}.png")
        if path is not None:
            figures.append((f"{scenario}, replicate 0: prices, ETH threshold, bad debt, accounts below HF 1", path))
        path = distress_figure(sweep, scenario, fig_dir / f"distress_{scenario}.png")
        if path is not None:
            figures.append((f"{scenario}, replicate 0: bad debt by the step its account fell below HF 1", path))
    for title, path in figures:
        lines += [style.figure_link(title, path, sweep), ""]
    out = sweep / "paired.md"
    atomic_write_text(out, "\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=DEFAULT_SWEEP)
    args = parser.parse_args(argv)
    try:
        print(write(args.sweep))
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
