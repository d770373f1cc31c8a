"""`abm report RUN_DIR`: the standard figures and a short markdown summary of a saved run."""

from __future__ import annotations

import math
from pathlib import Path

from abm.analysis.figures import run_figures
from abm.io import atomic_write_text

HEADLINE = [
    ("max_drawdown_{a}", "market drawdown of {a}", "{:.1%}"),
    ("fundamental_drawdown_{a}", "fundamental drawdown of {a}", "{:.1%}"),
    ("amplification_{a}", "amplification of {a} (market / fundamental drawdown)", "{:.3g}"),
]
TOTALS = [
    ("n_liquidations", "liquidations", "{:,}"),
    ("n_accounts_liquidated", "accounts liquidated", "{:,}"),
    ("liquidation_volume_usd", "liquidated volume (USD repaid)", "${:,.0f}"),
    ("bad_debt_usd", "bad debt (USD)", "${:,.0f}"),
    ("lender_loss_usd", "borne by lenders (USD)", "${:,.0f}"),
    ("dilution_usd", "covered by dilution (USD)", "${:,.0f}"),
    ("peak_utilisation", "peak utilisation", "{:.1%}"),
    ("max_borrow_rate", "highest borrow rate (per year)", "{:.1%}"),
    ("reflexivity_index", "reflexivity index (endogenous share of liquidated volume)", "{:.3g}"),
    ("branching_ratio", "branching ratio of the cascade graph", "{:.3g}"),
    ("largest_cascade", "largest cascade (events)", "{}"),
    ("max_cascade_depth", "deepest cascade (generations)", "{}"),
    ("return_kurtosis", "excess kurtosis of per-step returns", "{:.3g}"),
    ("hill_tail_index", "Hill tail index of |returns|", "{:.3g}"),
    ("abs_return_acf", "autocorrelation of |returns| (lag 1)", "{:.3g}"),
]


def _fmt(fmt: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def run_report(run_dir: str | Path) -> Path:
    """Re-draw the figures of a saved run and write report.md beside them; returns the report path."""
    from abm.run import RunResult

    d = Path(run_dir)
    result = RunResult.load(d)
    figs = run_figures(
        result.timeseries, result.events, result.write_offs, result.hf_histogram, result.config, d / "figures"
    )
    s = result.summary
    cfg = result.config
    lines = [
        f"# Run report: {cfg.name}",
        "",
        f"{cfg.description}".strip(),
        "",
        f"Seed {result.seed}, {result.steps} steps of {cfg.market.step_seconds:g} s "
        f"({result.steps * cfg.market.step_seconds / 3600:.1f} h), {cfg.traders.n_traders} traders, "
        f"max leverage {cfg.traders.max_leverage:g}, bad-debt policy `{cfg.pool.bad_debt_policy}`.",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    for asset in cfg.symbols[1:]:
        for key, label, fmt in HEADLINE:
            lines.append(f"| {label.format(a=asset)} | {_fmt(fmt, s.get(key.format(a=asset)))} |")
    for key, label, fmt in TOTALS:
        lines.append(f"| {label} | {_fmt(fmt, s.get(key))} |")
    lines += ["", "## Figures", ""]
    captions = {
        "prices": "Market, fundamental and oracle prices.",
        "liquidations": "Liquidated volume per step and the number of liquidatable accounts.",
        "pool": "Utilisation and borrow rate of each reserve.",
        "health_factor": "Distribution of health factors over time; accounts below the dashed line are liquidatable.",
        "leverage": "Aggregate leverage and the number of traders with positions.",
        "bad_debt": "Cumulative bad debt, split by who bore it.",
    }
    for fig in figs:
        lines += [f"![{fig.stem}](figures/{fig.name})", "", captions.get(fig.stem, ""), ""]
    path = d / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
