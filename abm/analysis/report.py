"""`abm report RUN_DIR`: the standard figures and a short markdown summary of a saved run, built from `SECTIONS`
(formatting and figures from `abm.analysis.style`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abm.analysis import style
from abm.analysis.style import Section
from abm.io import atomic_write_text

if TYPE_CHECKING:
    from abm.config import ModelConfig
    from abm.run import RunResult

Formatter = Callable[[Any], str]


def small_percent(v: Any) -> str:
    """A percentage with two decimals (pre-shock gaps are fractions of a percent)."""
    return "n/a" if v is None else f"{float(v):.2%}"


# (summary key, label, formatter); {a} is each risky asset. Keys a run does not have (the twin's without a twin)
# are left out.
PER_ASSET: list[tuple[str, str, Formatter]] = [
    ("max_drawdown_{a}", "market drawdown of {a} (whole run)", style.percent),
    ("fundamental_drawdown_{a}", "fundamental drawdown of {a} (whole run)", style.percent),
    ("shock_drawdown_{a}", "market drawdown of {a} over the shock window", style.percent),
    ("fundamental_shock_drawdown_{a}", "fundamental drawdown of {a} over the shock window", style.percent),
    ("amplification_{a}", "amplification of {a} (market / fundamental drawdown over the shock window)", style.num),
    ("twin_shock_drawdown_{a}", "market drawdown of {a} over the shock window, unlevered twin", style.percent),
    (
        "forced_selling_drawdown_{a}",
        "drawdown of {a} caused by leverage and forced selling (minus the twin)",
        style.percent,
    ),
    ("pre_shock_max_gap_{a}", "largest pre-shock gap of {a}, abs log(market / fundamental)", small_percent),
    ("pre_shock_mean_gap_{a}", "mean pre-shock gap of {a}, abs log(market / fundamental)", small_percent),
]
TOTALS: list[tuple[str, str, Formatter]] = [
    ("shock_step", "shock onset (step)", style.num),
    ("pre_shock_liquidations", "liquidations before the shock", style.count),
    ("n_liquidations", "liquidations", style.count),
    ("n_accounts_liquidated", "accounts liquidated", style.count),
    ("liquidation_volume_usd", "liquidated volume (USD repaid)", style.usd),
    ("bad_debt_usd", "bad debt (USD)", style.usd),
    ("lender_loss_usd", "borne by lenders (USD)", style.usd),
    ("dilution_usd", "covered by dilution (USD)", style.usd),
    ("peak_utilisation", "peak utilisation", style.percent),
    ("max_borrow_rate", "highest borrow rate (per year)", style.percent),
    ("reflexivity_index", "reflexivity index (endogenous share of liquidated volume)", style.num),
    ("branching_ratio", "branching ratio of the cascade graph", style.num),
    ("hawkes_branching_ratio", "branching ratio from distress onsets (Hawkes, non-liquidation baseline)", style.num),
    ("largest_cascade", "largest cascade (events)", style.num),
    ("max_cascade_depth", "deepest cascade (generations)", style.num),
    ("return_kurtosis", "excess kurtosis of 5-minute market returns", style.num),
    ("fundamental_return_kurtosis", "excess kurtosis of 5-minute fundamental returns", style.num),
    ("max_fourth_moment_share", "largest 1-minute return's share of the 4th moment", style.num),
    ("hill_tail_index", "Hill tail index of abs 5-minute market returns", style.num),
    ("fundamental_hill_tail_index", "Hill tail index of abs 5-minute fundamental returns", style.num),
    ("abs_return_acf", "autocorrelation of abs 5-minute market returns (lag 1)", style.num),
    ("fundamental_abs_return_acf", "autocorrelation of abs 5-minute fundamental returns (lag 1)", style.num),
    # runs with the perpetual venue only (docs/perps.md)
    ("peak_abs_premium", "largest abs premium index of a perp", style.percent),
    ("funding_paid_usd", "funding paid over the run (USD, by the positions that paid)", style.usd),
    ("perp_liquidation_volume_usd", "liquidated perp volume (USD notional)", style.usd),
    ("insurance_fund_drawdown_usd", "largest drawdown of the perp insurance fund (USD)", style.usd),
    ("adl_count", "auto-deleveraging (ADL) fills", style.count),
    ("adl_volume_usd", "auto-deleveraged volume (USD at bankruptcy prices)", style.usd),
    ("perp_bad_debt_usd", "perp bad debt: losses no backstop covered (USD)", style.usd),
    (
        "cross_venue_share",
        "basis traders' share of the forced spot selling's price impact over the shock window",
        style.percent,
    ),
]
CAPTIONS = {
    "prices": "Market, fundamental and oracle prices.",
    "liquidations": "Liquidated volume per step and the number of liquidatable accounts.",
    "pool": "Utilisation and borrow rate of each reserve.",
    "health_factor": "Distribution of health factors over time; accounts below the dashed line are liquidatable.",
    "leverage": "Aggregate leverage and the number of traders with positions.",
    "bad_debt": "Cumulative bad debt, split by who bore it.",
    "perp_funding": "Perpetual futures: mark against index (start = 100) and the premium index, over the whole run and "
    "around the shock; below, the funding rate paid at the end of each funding period.",
    "perp_backstop": "The perp venue's loss waterfall: insurance fund, backstop vault equity and perp bad debt; "
    "liquidated perp volume per step and the cumulative auto-deleveraged volume (× marks steps with ADL fills).",
}


@dataclass
class RunContext:
    """What the sections of a run report read: the saved run and where its figures are."""

    directory: Path
    result: RunResult
    figures: list[Path] = field(default_factory=list)


def _header(ctx: RunContext) -> list[str]:
    r, cfg = ctx.result, ctx.result.config
    hours = r.steps * cfg.market.step_seconds / 3600
    return [
        f"# Run report: {cfg.name}",
        "",
        f"{cfg.description}".strip(),
        "",
        f"Seed {r.seed}, {r.steps} steps of {cfg.market.step_seconds:g} s ({hours:.1f} h), {cfg.traders.n_traders} "
        f"traders, max leverage {cfg.traders.max_leverage:g}, bad-debt policy `{cfg.pool.bad_debt_policy}`.",
        "",
        *_perp_setting(cfg),
    ]


def _perp_setting(cfg: ModelConfig) -> list[str]:
    """One line on the perpetual venue's setting, for runs that have it."""
    p = cfg.perps
    if not p.enabled:
        return []
    cap = "none" if not math.isfinite(p.funding_cap) else style.percent(p.funding_cap)
    return [
        f"Perpetual venue: {p.trader_share:.0%} of the leveraged traders in perps, {cfg.basis_traders.n_traders} "
        f"basis traders, insurance fund {style.usd(p.insurance_fund_usd)}, backstop vault "
        f"{style.usd(p.vault_capital_usd)}, funding cap per period {cap}.",
        "",
    ]


def _pre_shock(ctx: RunContext) -> list[str]:
    """The pre-shock check: did the run start calm? (the main risky asset; a warning line when not)."""
    from abm.analysis.shock_window import PRE_SHOCK_GAP_WARNING, pre_shock_warning

    s, asset = ctx.result.summary, ctx.result.config.symbols[1]
    lines = [
        "## Pre-shock check",
        "",
        f"Before the shock (steps 0-{s['shock_step'] - 1}): {style.count(s.get('pre_shock_liquidations'))} "
        f"liquidations; {asset}'s market within {small_percent(s.get(f'pre_shock_max_gap_{asset}'))} of its "
        f"fundamental (largest abs log gap; mean {small_percent(s.get(f'pre_shock_mean_gap_{asset}'))}). A calm start "
        f"has no liquidations and gaps under {PRE_SHOCK_GAP_WARNING:.0%}.",
        "",
    ]
    warning = pre_shock_warning(s, asset)
    if warning:
        lines += [f"**{warning[0].upper()}{warning[1:]}**", ""]
    return lines


def _measures(ctx: RunContext) -> list[str]:
    s = ctx.result.summary
    rows = [
        [label.format(a=a), fmt(s.get(key.format(a=a)))]
        for a in ctx.result.config.symbols[1:]
        for key, label, fmt in PER_ASSET
        if key.format(a=a) in s
    ]
    rows += [[label, fmt(s.get(key))] for key, label, fmt in TOTALS if key in s]
    return [style.markdown_table(["measure", "value"], rows), ""]


def _figures(ctx: RunContext) -> list[str]:
    lines = ["## Figures", ""]
    for fig in ctx.figures:
        lines += [f"![{fig.stem}](figures/{fig.name})", "", CAPTIONS.get(fig.stem, ""), ""]
    return lines


SECTIONS: list[Section[RunContext]] = [
    Section("header", _header),
    Section("pre-shock check", _pre_shock, lambda ctx: ctx.result.summary.get("shock_step") is not None),
    Section("measures", _measures),
    Section("figures", _figures, lambda ctx: bool(ctx.figures)),
]


def run_report(run_dir: str | Path) -> Path:
    """Re-draw the figures of a saved run and write report.md beside them; returns the report path."""
    from abm.analysis.figures import run_figures
    from abm.run import RunResult

    d = Path(run_dir)
    result = RunResult.load(d)
    figures = run_figures(
        result.timeseries, result.events, result.write_offs, result.hf_histogram, result.config, d / "figures"
    )
    path = d / "report.md"
    atomic_write_text(path, style.render_sections(SECTIONS, RunContext(d, result, figures)))
    return path
