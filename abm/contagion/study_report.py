"""The contagion study's report: figures, tables, numbers.json and tables.md from the folders `abm.contagion.study`
wrote (`python -m abm.contagion.study --report`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.io import atomic_write_text

HAWKES_PRESETS = {
    "contagion_hawkes_baseline": "baseline",
    "contagion_hawkes_baseline_lev5": "baseline, leverage 5",
    "contagion_hawkes_crash": "crash",
    "contagion_hawkes_black_thursday": "black_thursday",
    "contagion_hawkes_contagion": "contagion",
}
HAWKES_ESTIMATES = {
    "hawkes_n_counts": "count variance (30-step windows)",
    "hawkes_n_mle": "MLE, continuous (jittered)",
    "hawkes_n_discrete": "MLE, discrete (lag >= 1 step)",
    "hawkes_n_regime": "MLE, discrete, regime baseline",
}
MIN_EVENTS = 30  # "enough events" for a Hawkes estimate


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table of a DataFrame (index included), numbers rounded."""
    df = frame.reset_index()

    def fmt(v: Any) -> str:
        if isinstance(v, float | np.floating):
            if math.isnan(v):
                return "-"
            if abs(v) >= 1e4:
                return f"{v:.3g}"
            return f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _load(out: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    d = out / name
    runs = pd.read_parquet(d / "runs.parquet") if (d / "runs.parquet").exists() else pd.DataFrame()
    casc = pd.read_parquet(d / "cascades.parquet") if (d / "cascades.parquet").exists() else pd.DataFrame()
    ev = pd.read_parquet(d / "events.parquet") if (d / "events.parquet").exists() else pd.DataFrame()
    if len(runs) and "status" in runs:
        runs = runs[runs["status"] == "ok"].copy()
    return runs, casc, ev


def _mean_sd(runs: pd.DataFrame, by: str | list[str], cols: dict[str, str]) -> pd.DataFrame:
    g = runs.groupby(by)[list(cols)]
    mean, sd = g.mean(), g.std()
    out = pd.DataFrame(index=mean.index)
    for c, label in cols.items():
        out[label] = [
            "-"
            if math.isnan(m)
            else (f"{m:.3g} ± {s:.2g}" if abs(m) >= 1e4 else f"{m:.3f} ± {0 if math.isnan(s) else s:.3f}")
            for m, s in zip(mean[c], sd[c], strict=True)
        ]
    out["runs"] = g.size() if hasattr(g, "size") else runs.groupby(by).size()
    return out


DISTRESS = {
    "share_accounts_liquidated": "accounts liquidated",
    "share_accounts_wiped_out": "accounts wiped out",
    "share_traders_wiped_out": "traders wiped out",
    "share_equity_lost": "equity lost",
    "reflexivity_index": "reflexivity index",
    "branching_ratio": "branching ratio",
}


def _distress_section(
    runs: pd.DataFrame,
    x: str,
    png: Path,
    sections: list[str],
    *,
    title: str,
    heading: str,
    tag: str,
    logx: bool = False,
) -> dict[str, Any]:
    """Distress against one varied parameter `x`: a line figure, a markdown section (appended to `sections`) and
    the mean distress per value of `x` (returned, for numbers.json)."""
    from abm.contagion.figures import plot_metric_lines

    shown = ("share_accounts_liquidated", "share_traders_wiped_out", "share_equity_lost", "reflexivity_index")
    plot_metric_lines(runs, x, {k: DISTRESS[k] for k in shown}, png, logx=logx, title=title)
    table = _mean_sd(runs, x, DISTRESS | {"bad_debt_usd": "bad debt (USD)"})
    sections.append(f"## {heading}\n\n" + markdown_table(table) + f"\n\n![{tag}]({png.name})\n")
    return runs.groupby(x)[list(DISTRESS)].mean().to_dict()


def make_report(out_dir: str | Path = "results/contagion") -> Path:
    """Figures (PNG), tables and report.md from the study's folders under `out_dir` (run `main` first)."""
    from abm.contagion.figures import (
        plot_cascade_ccdf,
        plot_hawkes_vs_truth,
        plot_metric_bars,
        plot_metric_lines,
    )

    out = Path(out_dir)
    sections: list[str] = []
    numbers: dict[str, Any] = {}

    # --- leverage --------------------------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_leverage")
    if len(runs):
        cols = {
            "n_liquidations": "liquidations",
            "reflexivity_index": "reflexivity index",
            "branching_ratio": "branching ratio",
            "mean_endogenous_share": "mean endogenous share",
            "largest_cascade": "largest cascade",
            "max_cascade_depth": "max depth",
        }
        table = _mean_sd(runs, "traders.max_leverage", cols)
        numbers["leverage"] = runs.groupby("traders.max_leverage")[list(cols)].mean().to_dict()
        plot_metric_lines(
            runs,
            "traders.max_leverage",
            {
                "reflexivity_index": "reflexivity index",
                "branching_ratio": "branching ratio",
                "n_liquidations": "liquidations",
            },
            out / "leverage.png",
            xlabel="traders.max_leverage",
            title="crash preset: reflexivity against leverage (mean, 95% CI over seeds)",
        )
        sections.append(
            "## Reflexivity against leverage (crash preset, 400 traders, 480 steps, 10 seeds)\n\n"
            "mean ± sd over seeds (`-`: no liquidation in any seed, the metric is undefined)\n\n"
            + markdown_table(table)
            + "\n\n![leverage](leverage.png)\n"
        )

    # --- Hawkes check --------------------------------------------------------------------------------------------
    frames = []
    sizes: dict[str, np.ndarray] = {}
    for name, label in HAWKES_PRESETS.items():
        runs, casc, _ = _load(out, name)
        if len(runs):
            frames.append(runs.assign(preset=label))
        if len(casc):
            sizes[label] = casc["size"].to_numpy()
    if frames:
        hk = pd.concat(frames, ignore_index=True)
        present = {k: v for k, v in HAWKES_ESTIMATES.items() if k in hk}
        rows = []
        for label, sub in hk.groupby("preset", sort=False):
            enough = sub[sub["n_liquidations"] >= MIN_EVENTS]
            row: dict[str, Any] = {
                "preset": label,
                "runs": len(sub),
                "events / run": sub["n_liquidations"].mean(),
                "runs with >= 30 events": len(enough),
                "truth: branching ratio": sub["branching_ratio"].mean(),
                "mean endogenous share": sub["mean_endogenous_share"].mean(),
            }
            for col, name in present.items():
                row[name] = enough[col].mean() if len(enough) else math.nan
                ok = (enough[col] - enough["branching_ratio"]).abs() <= 0.1
                row[f"{name}: runs within 0.1"] = f"{int(ok.sum())}/{len(enough)}" if len(enough) else "-"
            rows.append(row)
        table = pd.DataFrame(rows).set_index("preset")
        numbers["hawkes"] = table.to_dict()
        plot_hawkes_vs_truth(hk[hk["n_liquidations"] >= MIN_EVENTS], out / "hawkes_vs_truth.png", present)
        atomic_write_text(out / "hawkes_runs.csv", hk.to_csv(index=False))
        sections.append(
            "## Hawkes check: branching ratio from liquidation times alone vs the cascade graph "
            "(400 traders, 1440 steps, 10 seeds per preset)\n\n"
            "Estimates are means over runs with at least 30 liquidations; `within 0.1` counts runs whose estimate is "
            "within 0.1 of that run's ground truth.\n\n"
            + markdown_table(table.T)
            + "\n\n![hawkes](hawkes_vs_truth.png)\n"
        )
    if sizes:
        plot_cascade_ccdf(sizes, out / "cascade_ccdf.png")
        sections.append("## Cascade sizes\n\n![ccdf](cascade_ccdf.png)\n")

    # --- shock size, depth -------------------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_shock")
    if len(runs):
        runs["shock size (ETH)"] = -runs["shock_ETH"]
        numbers["shock"] = _distress_section(
            runs, "shock size (ETH)", out / "distress_vs_shock.png", sections,
            title="crash market: distress against the size of the shock (ETH s, BTC 0.6 s)",
            heading="Distress against shock size (crash market, 400 traders, 480 steps, 6 seeds)", tag="shock",
        )  # fmt: skip
    runs, _, _ = _load(out, "contagion_depth")
    if len(runs):
        numbers["depth"] = _distress_section(
            runs, "market.depth_scale", out / "distress_vs_depth.png", sections, logx=True,
            title="crash market: distress against market depth (every asset's depth x scale)",
            heading="Distress against market depth (crash preset's shock, 400 traders, 480 steps, 6 seeds)", tag="depth",
        )  # fmt: skip

    # --- diversification and leverage ----------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_diversification")
    if len(runs):
        plot_metric_lines(
            runs,
            "traders.assets_per_trader",
            {
                "share_accounts_liquidated": "accounts liquidated",
                "share_equity_lost": "equity lost",
                "reflexivity_index": "reflexivity index",
            },
            out / "diversification.png",
            hue="traders.max_leverage",
            xlabel="assets per trader",
            title="eight assets, SOL -35%: distress against diversification, by max leverage",
        )
        cols = {
            "share_accounts_liquidated": "accounts liquidated",
            "share_positions_liquidated": "positions liquidated",
            "share_equity_lost": "equity lost",
            "reflexivity_index": "reflexivity index",
            "branching_ratio": "branching ratio",
        }
        pivot = runs.pivot_table(
            index="traders.assets_per_trader", columns="traders.max_leverage", values="share_accounts_liquidated"
        )
        pivot.columns = [f"max leverage {c:g}" for c in pivot.columns]
        numbers["diversification"] = pivot.to_dict()
        table = _mean_sd(runs, ["traders.max_leverage", "traders.assets_per_trader"], cols)
        sections.append(
            "## Distress against diversification and leverage (contagion preset, hodl traders, 300 traders, "
            "480 steps, 5 seeds)\n\nShare of accounts liquidated (mean over seeds):\n\n"
            + markdown_table(pivot)
            + "\n\nAll metrics (mean ± sd):\n\n"
            + markdown_table(table)
            + "\n\n![diversification](diversification.png)\n"
        )

    # --- margin modes --------------------------------------------------------------------------------------------
    runs, _, _ = _load(out, "contagion_margin_modes")
    if len(runs):

        def mode_name(text: str) -> str:
            mix = json.loads(text)
            return "mix" if len(mix) > 1 else next(iter(mix))

        runs["mode"] = runs["traders.margin_mode_mix"].map(mode_name)
        cols = {
            "share_accounts_wiped_out": "accounts wiped out",
            "share_traders_wiped_out": "traders wiped out",
            "positions_liquidated": "positions liquidated",
            "share_positions_liquidated": "share of positions liquidated",
            "bad_debt_usd": "bad debt (USD)",
            "reflexivity_index": "reflexivity index",
        }
        plot_metric_bars(
            runs,
            "mode",
            {
                "share_traders_wiped_out": "traders wiped out",
                "share_positions_liquidated": "positions liquidated (share)",
                "bad_debt_usd": "bad debt (USD)",
                "reflexivity_index": "reflexivity index",
            },
            out / "margin_modes.png",
            hue="traders.max_leverage",
            logy=("bad_debt_usd",),
            title="cross vs isolated vs portfolio margin (eight assets, three per trader, SOL -35%)",
        )
        table = _mean_sd(runs, ["traders.max_leverage", "mode"], cols)
        by_mode = runs.groupby(["traders.max_leverage", "mode"])[list(cols)].mean()
        by_mode.index = [f"leverage {lev:g}, {mode}" for lev, mode in by_mode.index]
        numbers["margin_modes"] = by_mode.to_dict()
        sections.append(
            "## Cross vs isolated vs portfolio margin (margin_mix preset, 300 traders, 480 steps, 6 seeds)\n\n"
            + markdown_table(table)
            + "\n\n![margin modes](margin_modes.png)\n"
        )
    atomic_write_text(out / "numbers.json", json.dumps(numbers, indent=1, default=str) + "\n")
    path = out / "tables.md"
    atomic_write_text(path, "# Contagion study: tables\n\n" + "\n\n".join(sections) + "\n")
    return path
