"""`abm report SWEEP_DIR`: figures and report.md for a sweep directory, built from `SECTIONS`.

- grid sweeps: heatmaps of each key metric's mean over two grid parameters (one panel per value of a third),
  and line plots of each metric against the first parameter with 95% confidence intervals over replicates
  (seaborn, ``errorbar=("ci", 95)``);
- sampled designs: each metric against each sampled parameter (runs and binned means);
- Sobol designs: first-order (S1) and total (ST) Sobol indices with their 95% confidence intervals
  (`SALib.analyze.sobol`, on the mean over replicates of each design point);
- case designs: one row per case, mean ± sd over replicates of each metric (the report's metrics, then its
  `optional_metrics` that the runs have), and a dot plot of each metric by case;
- report.md ties them together with the numbers: marginal effects, the best and worst cells, rank correlations
  and, when both bad debt and amplification are reported, the trade-off between them.

Figures go to DIR/figures/. The report reads only runs.parquet and sweep.json, so it works on a partial sweep.
Formatting, figure style and saving come from `abm.analysis.style`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy.stats import spearmanr

from abm.analysis import style
from abm.analysis.style import Section, metric_label, num, p_value, short_name, slug
from abm.errors import UserInputError
from abm.io import atomic_write_text
from abm.sweep.store import read_runs


@dataclass
class SweepContext:
    """What the sections of a sweep report read: the sweep's metadata and rows, and where figures go."""

    directory: Path
    meta: dict[str, Any]
    runs: pd.DataFrame
    ok: pd.DataFrame  # the successful runs (`successful`), structured grid values as short labels
    params: list[str]
    metrics: list[str]  # metric columns shown
    fig_dir: Path
    figures: list[tuple[str, Path]] = field(default_factory=list)
    _sobol: dict[str, dict[str, np.ndarray]] | None = None

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def has_data(self) -> bool:
        return not self.ok.empty and bool(self.metrics)

    def plotted(self) -> list[str]:
        """The metrics with at least one defined value."""
        return [m for m in self.metrics if self.ok[m].notna().any()]


def load_sweep(sweep_dir: str | Path) -> SweepContext:
    """The report context of a sweep directory (raises `UserInputError` when it is not one)."""
    d = Path(sweep_dir)
    meta_path = d / "sweep.json"
    if not meta_path.exists():
        raise UserInputError(f"'{d}' holds no sweep.json: not a sweep directory (run `abm sweep ... --out {d}`)")
    meta = json.loads(meta_path.read_text())
    runs = read_runs(d)
    ok = successful(runs)
    for name, values in (meta.get("grid") or {}).items():  # lists and tables (stored as JSON) get short labels
        if any(isinstance(v, list | dict) for v in values):
            labels = {json.dumps(v, sort_keys=True): value_label(v) for v in values}
            ok[name] = ok[name].map(lambda text, labels=labels: labels.get(text, text))
    return SweepContext(d, meta, runs, ok, list(meta["parameters"]), _metrics(meta, ok), d / "figures")


def successful(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of successful runs, nullable integers (Int64) as plain floats (NaN where missing), as plots and
    statistics expect."""
    ok = runs[runs["status"] == "ok"].copy()
    for col in ok.columns:
        if isinstance(ok[col].dtype, pd.Int64Dtype):
            ok[col] = ok[col].astype("float64")
    return ok


def value_label(value: Any) -> str:
    """A short label of a structured grid value: scenario events as 'ETH -5% at 240', a table (e.g. a mix) as
    'cross 0.4, isolated 0.3', anything else through `num`."""
    if isinstance(value, dict):
        if value.get("kind") == "shock":
            return f"{value['asset']} {float(value['size']):+.0%} at {value['start']}"
        if "kind" in value:
            return str(value["kind"])
        return ", ".join(f"{k} {num(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " / ".join(value_label(v) for v in value)
    return num(value)


def sweep_report(sweep_dir: str | Path) -> Path:
    """Write DIR/figures/*.png and DIR/report.md for a sweep directory; return the report's path."""
    ctx = load_sweep(sweep_dir)
    style.clear_figures(ctx.fig_dir)
    style.theme()
    report = ctx.directory / "report.md"
    atomic_write_text(report, style.render_sections(SECTIONS, ctx))
    return report


# --- sections -----------------------------------------------------------------------------------------------------


def _metrics(meta: dict[str, Any], ok: pd.DataFrame) -> list[str]:
    rep = meta.get("report", {})
    wanted = rep.get("metrics")
    if not wanted:
        risky = meta.get("risky_assets") or ["ETH"]
        wanted = [f"amplification_{risky[0]}", "bad_debt_usd", "liquidation_volume_usd", "reflexivity_index"]
    wanted = [*wanted, *(m for m in rep.get("optional_metrics", []) if m not in wanted)]
    return [m for m in wanted if m in ok.columns]


def _axes(ctx: SweepContext) -> tuple[str, str | None, str | None]:
    rep = ctx.meta.get("report", {})
    params = ctx.params
    x = rep.get("x") or params[0]
    rest = [p for p in params if p != x]
    y = rep.get("y") or (rest[0] if rest else None)
    rest = [p for p in rest if p != y]
    multi = [p for p in rest if ctx.ok[p].nunique() > 1]
    facet = multi[0] if multi else None
    return x, y, facet


def _header(ctx: SweepContext) -> list[str]:
    meta, runs = ctx.meta, ctx.runs
    n_err = int((runs["status"] != "ok").sum())
    cpu = float(runs["wall_seconds"].sum(skipna=True))
    lines = [f"# Sweep report: {meta['name']}\n"]
    if meta.get("description"):
        lines.append(" ".join(str(meta["description"]).split()) + "\n")
    lines.append("| | |\n|---|---|")
    lines.append(f"| base | {meta['base']} |")
    lines.append(f"| design | {meta['kind']}: {meta['n_points']} points x {meta['replicates']} replicates |")
    if meta.get("grid"):
        for k, v in meta["grid"].items():
            lines.append(f"| `{k}` | {', '.join(value_label(x) for x in v)} |")
    if meta.get("design"):
        des = meta["design"]
        for k, (lo, hi) in des["bounds"].items():
            integer = " (integer)" if k in des.get("integer", []) else ""
            lines.append(f"| `{k}` | [{num(lo)}, {num(hi)}]{integer} |")
        lines.append(f"| samples | n = {des['n']}, seed {des['seed']} |")
    overrides = {k: v for k, v in meta.get("overrides", {}).items() if k != "steps"}
    if overrides:
        lines.append("| overrides | " + ", ".join(f"`{k}` = {num(v)}" for k, v in overrides.items()) + " |")
    if meta.get("cases"):
        lines.append("| steps per run | per case (below) |")
    else:
        lines.append(f"| steps per run | {meta['steps']} |")
    outputs = meta.get("outputs") or {}
    if outputs.get("tables") or outputs.get("metrics"):
        kept = [f"tables {', '.join(outputs['tables'])}" if outputs.get("tables") else ""]
        kept += [f"metrics {', '.join(outputs['metrics'])}" if outputs.get("metrics") else ""]
        lines.append(f"| kept per run | {'; '.join(k for k in kept if k)} |")
    lines.append(f"| runs | {len(runs)} of {meta['n_runs']} done, {n_err} failed |")
    lines.append(f"| compute | {cpu:.0f} s of worker time ({cpu / max(len(runs), 1):.1f} s per run) |")
    if meta.get("common_random_numbers"):
        lines.append(
            f"| seeds | SeedSequence({meta['base_seed']}), replicate r -> child r at every point "
            "(common random numbers: points compared on the same news) |\n"
        )
    else:
        lines.append(f"| seeds | SeedSequence({meta['base_seed']}), run i -> child i |\n")
    if meta.get("cases"):
        rows = [
            [
                label,
                spec["base"],
                str(spec["steps"]),
                ", ".join(f"`{k}` = {num(v)}" for k, v in spec["overrides"].items()),
            ]
            for label, spec in meta["cases"].items()
        ]
        lines.append(style.markdown_table(["case", "base", "steps", "overrides"], rows) + "\n")
    if len(runs) < meta["n_runs"]:
        lines.append(f"**Partial sweep**: {meta['n_runs'] - len(runs)} runs are missing (`abm sweep --resume`).\n")
    return lines


def _no_data(ctx: SweepContext) -> list[str]:
    return ["No successful runs yet: nothing to plot.\n"]


def _grid_findings(ctx: SweepContext) -> list[str]:
    ok, params, metrics = ctx.ok, ctx.params, ctx.metrics
    lines = ["## Findings\n"]
    cells = ok.groupby(params, dropna=False)[metrics].mean()
    for m in metrics:
        col = ok[m]
        if col.notna().sum() == 0:
            lines.append(f"- **{metric_label(m)}**: undefined in every run (NaN).")
            continue
        parts = []
        for p in params:
            marg = ok.groupby(p)[m].mean()
            if len(marg) < 2:
                continue
            rho, pval = _rho_p(ok[p], col)
            parts.append(
                f"with `{p}` from {num(marg.index[0])} to {num(marg.index[-1])} the mean goes "
                f"{num(marg.iloc[0])} -> {num(marg.iloc[-1])} (Spearman rho {num(rho, 2)}, p {p_value(pval)})"
            )
        c = cells[m].dropna()
        text = f"- **{metric_label(m)}** (mean over all runs {num(col.mean())}): " + "; ".join(parts) + "."
        if len(c) > 1 and c.nunique() == 1:
            text += " The same in every cell."
        elif len(c) > 1:
            text += f" Lowest {_extreme(c, params, c.min())}; highest {_extreme(c, params, c.max())}."
        lines.append(text)
    lines.append(
        "\n(rho and p: Spearman rank correlation of the parameter with the metric over all successful runs; "
        "p < 0.05 means the effect stands out from seed-to-seed noise.)"
    )
    lines += _tradeoff(ok, cells.reset_index(), params, metrics)
    lines.append("")
    return lines


def _best_cells(params: list[str], lo_bd: pd.Series, lo_amp: pd.Series, amp: str) -> str:
    if lo_bd.name == lo_amp.name:
        return (
            f"One cell, {_cell_name(params, lo_bd[params])}, has both the least bad debt "
            f"({num(lo_bd['bad_debt_usd'])}) and the mildest crash ({amp} {num(lo_bd[amp])})."
        )
    return (
        f"The cell with the least bad debt, {_cell_name(params, lo_bd[params])}, has bad debt "
        f"{num(lo_bd['bad_debt_usd'])} and {amp} {num(lo_bd[amp])}; the cell with the mildest crash, "
        f"{_cell_name(params, lo_amp[params])}, has {amp} {num(lo_amp[amp])} and bad debt "
        f"{num(lo_amp['bad_debt_usd'])}."
    )


def _extreme(c: pd.Series, params: list[str], value: float) -> str:
    at = c[c == value]
    if len(at) == 1:
        return f"cell: {_cell_name(params, at.index[0])} ({num(value)})"
    return f"{num(value)}, in {len(at)} cells (e.g. {_cell_name(params, at.index[0])})"


def _tradeoff(ok: pd.DataFrame, cells: pd.DataFrame, params: list[str], metrics: list[str]) -> list[str]:
    """Bad debt against amplification: does a parameter that lowers one raise the other (the seeds' paradox)?"""
    amp = next((m for m in metrics if m.startswith("amplification_")), None)
    if amp is None or "bad_debt_usd" not in metrics:
        return []
    lines = [
        "",
        "### Bad debt vs amplification\n",
        f"Per parameter: its rank correlation with bad debt and with {amp} over all runs. A parameter is a "
        "*paradox lever* when raising it moves the two in opposite directions, both beyond noise (p < 0.05).\n",
    ]
    rows = []
    levers = []
    for p in params:
        r_bd, p_bd = _rho_p(ok[p], ok["bad_debt_usd"])
        r_amp, p_amp = _rho_p(ok[p], ok[amp])
        sig_bd, sig_amp = p_bd < 0.05, p_amp < 0.05
        if sig_bd and sig_amp and r_bd * r_amp < 0:
            reading = "paradox lever: " + (
                "raising it cuts bad debt but deepens the crash"
                if r_bd < 0
                else "raising it softens the crash but adds bad debt"
            )
            levers.append(p)
        elif sig_bd and sig_amp:
            reading = "aligned: " + ("raising it worsens both" if r_bd > 0 else "raising it improves both")
        elif sig_bd:
            reading = "moves bad debt only (" + ("up" if r_bd > 0 else "down") + ")"
        elif sig_amp:
            reading = f"moves {amp} only (" + ("up" if r_amp > 0 else "down") + ")"
        else:
            reading = "no effect beyond seed noise"
        rows.append([f"`{p}`", f"{num(r_bd, 2)} ({p_value(p_bd)})", f"{num(r_amp, 2)} ({p_value(p_amp)})", reading])
    lines.append(style.markdown_table(["parameter", "bad debt: rho (p)", f"{amp}: rho (p)", "reading"], rows))
    c = cells[[*params, "bad_debt_usd", amp]].dropna()
    if len(c) >= 3:
        rho, pval = _rho_p(c["bad_debt_usd"], c[amp])
        lo_bd = c.loc[c["bad_debt_usd"].idxmin()]
        lo_amp = c.loc[c[amp].idxmin()]
        lines += [
            "",
            f"Across the {len(c)} cells, mean bad debt and mean {amp} have rank correlation {num(rho, 2)} "
            f"(p {p_value(pval)}); cell means share seed noise (a seed with a deeper crash has more of both), so "
            f"read this with the per-parameter table. " + _best_cells(params, lo_bd, lo_amp, amp),
        ]
    verdict = (
        f"**The paradox appears** through {', '.join(f'`{p}`' for p in levers)}."
        if levers
        else "**No paradox lever** in this grid: no parameter moves bad debt and the crash's depth in opposite "
        "directions beyond seed noise."
    )
    lines += ["", verdict]
    return lines


def _design_findings(ctx: SweepContext) -> list[str]:
    ok, params = ctx.ok, ctx.params
    lines = ["## Findings\n", "Spearman rank correlation of each metric with each sampled parameter (over runs):\n"]
    rows = [[m, *(num(_rho(ok[p], ok[m]), 2) for p in params)] for m in ctx.metrics]
    lines += [style.markdown_table(["metric", *(f"`{p}`" for p in params)], rows), ""]
    return lines


def _single_findings(ctx: SweepContext) -> list[str]:
    rows = []
    for m in ctx.metrics:
        v = ctx.ok[m].dropna()
        half = 1.96 * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan
        rows.append([m, num(v.mean()), num(half), str(len(v))])
    return ["## Findings\n", style.markdown_table(["metric", "mean", "95% CI half-width", "runs"], rows), ""]


def case_table(ctx: SweepContext) -> pd.DataFrame:
    """Mean ± sd over replicates of each shown metric, one row per case in the experiment's order."""
    order = list(ctx.meta.get("cases") or ctx.ok["case"].unique())
    table = style.mean_sd_table(ctx.ok, "case", {m: m for m in ctx.metrics}, order=order)
    return table.rename(columns={"runs": "seeds"})


def _case_findings(ctx: SweepContext) -> list[str]:
    return [
        f"## Cases: mean ± sd over {ctx.meta['replicates']} seeds\n",
        style.frame_table(case_table(ctx)),
        "\n(n/a: undefined in every run, e.g. a reflexivity index without liquidations.)\n",
    ]


def _cell_table(ctx: SweepContext) -> list[str]:
    cells = ctx.ok.groupby(ctx.params)[ctx.metrics].mean().reset_index()
    if len(cells) > 80:
        return []
    header = [*(f"`{p}`" for p in ctx.params), *ctx.metrics]
    rows = cells[[*ctx.params, *ctx.metrics]].itertuples(index=False, name=None)
    return ["## Cell means (over replicates)\n", style.markdown_table(header, rows), ""]


def _pre_shock_check(ctx: SweepContext) -> list[str]:
    """Runs that did not stay in equilibrium before their shock: liquidations before it, or the market more than
    3% from its fundamental. Their shock-window numbers mix the shock with a crash of their own."""
    if "pre_shock_liquidations" not in ctx.ok or ctx.ok["pre_shock_liquidations"].isna().all():
        return []
    gaps = [c for c in ctx.ok.columns if c.startswith("pre_shock_max_gap_")]
    liquidated = pd.to_numeric(ctx.ok["pre_shock_liquidations"], errors="coerce").fillna(0) > 0
    drifted = (ctx.ok[gaps].apply(pd.to_numeric, errors="coerce") > 0.03).any(axis=1) if gaps else liquidated & False
    lines = ["## Pre-shock check\n"]
    bad = ctx.ok[liquidated | drifted]
    if bad.empty:
        lines.append(
            f"All {len(ctx.ok)} runs stayed in equilibrium before the shock: no liquidation, and every market "
            "within 3% of its fundamental.\n"
        )
        return lines
    lines.append(
        f"**{len(bad)} of {len(ctx.ok)} runs left equilibrium before the shock** ({int(liquidated.sum())} with "
        f"liquidations before it, {int(drifted.sum())} with a market more than 3% from its fundamental); their "
        "shock-window numbers include a crash of their own. By cell:\n"
    )
    keys = [c for c in ("case", *ctx.params) if c in bad.columns]
    for values, group in bad.groupby(keys, sort=False) if keys else [((), bad)]:
        label = _cell_name(keys, values) if keys else "all runs"
        lines.append(
            f"- {label}: {len(group)} run{'s' if len(group) != 1 else ''}, "
            f"{int(pd.to_numeric(group['pre_shock_liquidations']).sum())} pre-shock "
            "liquidations"
        )
    lines.append("")
    return lines


def _failures(ctx: SweepContext) -> list[str]:
    bad = ctx.runs[ctx.runs["status"] != "ok"]
    if bad.empty:
        return []
    lines = [f"## Failed runs ({len(bad)})\n"]
    for msg, group in bad.groupby("error", dropna=False):
        idx = ", ".join(str(i) for i in group["run_index"].head(10))
        more = f" and {len(group) - 10} more" if len(group) > 10 else ""
        lines.append(f"- runs {idx}{more}: `{msg}`")
    lines.append("")
    return lines


def _figures(ctx: SweepContext) -> list[str]:
    """Draw the design kind's figures (`FIGURES`), then list them."""
    for draw in FIGURES.get(ctx.kind, []):
        ctx.figures += draw(ctx)
    if not ctx.figures:
        return []
    lines = ["## Figures\n"]
    if any(path.name.startswith("heatmap_") for _, path in ctx.figures):
        lines.append(
            "Heatmap cells are means over replicates; grey cells are undefined (the metric is NaN in every "
            "run of the cell, e.g. a reflexivity index without liquidations).\n"
        )
    lines += [style.figure_link(title, path, ctx.directory) for title, path in ctx.figures]
    return lines


# --- Sobol ------------------------------------------------------------------------------------------------------


# the confidence intervals' bootstrap: SALib seeds it only with a non-zero seed (0 would leave it to numpy's global
# random state, and the same runs would report different intervals)
SOBOL_BOOTSTRAP_SEED = 1


def _sobol_indices(ctx: SweepContext) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """Sobol indices of each metric (the mean over replicates at each design point) and notes on skipped ones;
    computed once per report."""
    from SALib.analyze import sobol

    des = ctx.meta["design"]
    params = ctx.params
    problem = {"num_vars": len(params), "names": params, "bounds": [des["bounds"][p] for p in params]}
    n_points = int(ctx.meta["n_points"])
    notes: list[str] = []
    results: dict[str, dict[str, np.ndarray]] = {}
    for m in ctx.metrics:
        y = ctx.ok.groupby("point")[m].mean().reindex(range(n_points))
        if y.isna().any():
            notes.append(f"- {m}: skipped ({int(y.isna().sum())} of {n_points} points have no finite value).")
            continue
        if float(y.std()) == 0.0:
            notes.append(f"- {m}: skipped (the same value at every point).")
            continue
        second_order = bool(des.get("calc_second_order", False))
        res = sobol.analyze(problem, y.to_numpy(), calc_second_order=second_order, seed=SOBOL_BOOTSTRAP_SEED)
        results[m] = {k: np.asarray(res[k]) for k in ("S1", "S1_conf", "ST", "ST_conf")}
    if ctx._sobol is None:
        ctx._sobol = results
    return notes, results


def _sobol_section(ctx: SweepContext) -> list[str]:
    notes, results = _sobol_indices(ctx)
    lines = ["## Sobol sensitivity\n", *notes]
    if not results:
        return [*lines, ""]
    des, params = ctx.meta["design"], ctx.params
    lines.append(
        f"Indices of the mean over {ctx.meta['replicates']} replicates at each of the {ctx.meta['n_points']} design "
        f"points (SALib base N = {des['n']}); ± is the 95% bootstrap confidence half-width. Seed noise that the "
        "replicates do not average away shows up as total effect; with a small N the intervals are wide.\n"
    )
    rows = []
    for m, r in results.items():
        order = np.argsort(-r["ST"])
        for j in order:
            rows.append(
                [
                    m,
                    f"`{params[j]}`",
                    f"{r['S1'][j]:.2f} ± {r['S1_conf'][j]:.2f}",
                    f"{r['ST'][j]:.2f} ± {r['ST_conf'][j]:.2f}",
                ]
            )
        top = params[order[0]]
        rows.append(["", f"*most influential for {m}: `{top}` (ST {r['ST'][order[0]]:.2f})*", "", ""])
    lines += [style.markdown_table(["metric", "parameter", "S1", "ST"], rows), ""]
    return lines


def _sobol_figure(ctx: SweepContext) -> list[tuple[str, Path]]:
    results = ctx._sobol if ctx._sobol is not None else _sobol_indices(ctx)[1]
    if not results:
        return []
    params = ctx.params
    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(max(6.0, 1.0 * len(params) + 3.0), 3.6 * n), squeeze=False)
    for ax, (m, r) in zip(axes[:, 0], results.items(), strict=True):
        pos = np.arange(len(params))
        w = 0.38
        ax.bar(pos - w / 2, r["S1"], w, yerr=r["S1_conf"], capsize=3, label="S1 (first order)", color="#4c72b0")
        ax.bar(pos + w / 2, r["ST"], w, yerr=r["ST_conf"], capsize=3, label="ST (total)", color="#dd8452")
        ax.set_xticks(pos)
        ax.set_xticklabels([short_name(p) for p in params], rotation=30, ha="right")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(metric_label(m))
        ax.set_ylabel("Sobol index")
        ax.legend(fontsize=8)
    path = style.save(fig, ctx.fig_dir / "sobol_indices.png", tight_layout=True)
    return [("Sobol indices (S1, ST) with 95% confidence intervals", path)]


# --- figures ----------------------------------------------------------------------------------------------------


def _grid_figures(ctx: SweepContext) -> list[tuple[str, Path]]:
    x, y, facet = _axes(ctx)
    out = []
    if y is not None:
        out += [(f"Mean {metric_label(m)} over {x} x {y}", _heatmap(ctx, m, x, y, facet)) for m in ctx.plotted()]
    out += [
        (f"{metric_label(m)} against {x} (95% CI over replicates)", _lines(ctx, m, x, y, facet)) for m in ctx.plotted()
    ]
    return out


def _design_figures(ctx: SweepContext) -> list[tuple[str, Path]]:
    return [(f"{metric_label(m)} against each sampled parameter", _scatter(ctx, m)) for m in ctx.plotted()]


def _heatmap(ctx: SweepContext, metric: str, x: str, y: str, facet: str | None) -> Path:
    ok = ctx.ok
    facet_vals = sorted(ok[facet].dropna().unique()) if facet else [None]
    means = ok.groupby([p for p in (facet, y, x) if p])[metric].mean()
    vmin, vmax = float(np.nanmin(means.to_numpy())), float(np.nanmax(means.to_numpy()))
    if not (math.isfinite(vmin) and math.isfinite(vmax)) or vmin == vmax:
        vmin, vmax = (vmin - 1, vmax + 1) if math.isfinite(vmin) else (0, 1)
    n = len(facet_vals)
    nx_, ny_ = ok[x].nunique(), ok[y].nunique()
    w = max(3.6, 0.75 * nx_ + 2.0)
    h = max(3.0, 0.45 * ny_ + 1.8)
    fig, axes = plt.subplots(1, n, figsize=(w * n + 0.8, h), squeeze=False)
    for k, (ax, fv) in enumerate(zip(axes[0], facet_vals, strict=True)):
        sub = ok if fv is None else ok[ok[facet] == fv]
        piv = (
            sub.groupby([y, x])[metric]
            .mean()
            .unstack(x)
            .reindex(index=sorted(ok[y].dropna().unique(), reverse=True), columns=sorted(ok[x].dropna().unique()))
        )
        ax.set_facecolor("#dddddd")  # undefined (NaN) cells
        ax.grid(False)
        annot = np.vectorize(lambda v: num(v))(piv.to_numpy())
        sns.heatmap(
            piv,
            ax=ax,
            annot=annot,
            fmt="",
            cmap="rocket_r",
            vmin=vmin,
            vmax=vmax,
            cbar=k == n - 1,
            cbar_kws={"label": metric_label(metric)} if k == n - 1 else None,
            annot_kws={"fontsize": 8},
            linewidths=0.5,
        )
        if k == n - 1 and ax.collections and ax.collections[0].colorbar is not None:
            style.axis_number_format(ax.collections[0].colorbar.ax.yaxis)
        ax.set_xticklabels([num(v) for v in piv.columns], rotation=0)
        ax.set_yticklabels([num(v) for v in piv.index], rotation=0)
        ax.set_xlabel(x)
        ax.set_ylabel(y if k == 0 else "")
        ax.set_title(f"{facet} = {num(fv)}" if facet else f"mean {metric_label(metric)}", fontsize=10)
    if facet:
        fig.suptitle(f"mean {metric_label(metric)}", fontsize=style.FIGURE_TITLE_SIZE)
    return style.save(fig, ctx.fig_dir / f"heatmap_{slug(metric)}.png", tight_layout=True)


def _lines(ctx: SweepContext, metric: str, x: str, hue: str | None, facet: str | None) -> Path:
    data = ctx.ok.copy()
    kwargs: dict[str, Any] = {}
    if hue is not None:
        order = sorted(data[hue].dropna().unique())
        hue_col = f"{hue} "  # a text copy of the parameter (categorical colours), titled like it in the legend
        data[hue_col] = data[hue].map(num)
        kwargs.update(hue=hue_col, hue_order=[num(v) for v in order], palette="viridis")
    if facet is not None:
        data["_col"] = data[facet].map(lambda v: f"{facet} = {num(v)}")
        kwargs.update(col="_col", col_order=[f"{facet} = {num(v)}" for v in sorted(data[facet].dropna().unique())])
    categorical = not pd.api.types.is_numeric_dtype(data[x])
    g = sns.relplot(
        data=data,
        x=x,
        y=metric,
        kind="line",
        errorbar=("ci", 95),
        marker="o",
        height=3.6,
        aspect=max(1.25, 0.3 * data[x].nunique()) if categorical else 1.25,
        seed=0,
        facet_kws={"sharey": True},
        **kwargs,
    )
    xs = data[x].dropna()
    if len(xs) and pd.api.types.is_numeric_dtype(xs) and (xs > 0).all() and xs.max() / xs.min() >= 8:
        g.set(xscale="log")
    g.set_axis_labels(x, metric_label(metric))
    for ax in g.axes.flat:
        style.axis_number_format(ax.yaxis)
        if categorical:  # long labels (e.g. scenario events) side by side would overlap
            ax.tick_params(axis="x", rotation=35)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
    if facet is not None:
        g.set_titles("{col_name}")
    g.figure.suptitle(f"{metric_label(metric)}: mean and 95% CI over replicates", y=1.02, fontsize=11)
    return style.save(g.figure, ctx.fig_dir / f"lines_{slug(metric)}.png")


def _scatter(ctx: SweepContext, metric: str) -> Path:
    ok, params = ctx.ok, ctx.params
    n = len(params)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False, sharey=True)
    for ax, p in zip(axes.flat, params, strict=False):
        sub = ok[[p, metric]].dropna()
        ax.scatter(sub[p], sub[metric], s=10, alpha=0.45, color="#4c72b0")
        if len(sub) >= 10 and sub[p].nunique() > 3:
            bins = pd.qcut(sub[p], q=min(8, sub[p].nunique()), duplicates="drop")
            binned = sub.groupby(bins, observed=True).agg(xm=(p, "mean"), ym=(metric, "mean"))
            ax.plot(binned["xm"], binned["ym"], color="#c44e52", lw=2, label="binned mean")
        ax.set_xlabel(short_name(p))
        ax.set_title(f"rho = {num(_rho(ok[p], ok[metric]), 2)}", fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(metric_label(metric))
        style.axis_number_format(row[0].yaxis)
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=8)
    return style.save(fig, ctx.fig_dir / f"design_{slug(metric)}.png", tight_layout=True)


def _case_figure(ctx: SweepContext) -> list[tuple[str, Path]]:
    """One panel per metric: each case's runs (dots) and their mean ± sd (bar), cases top to bottom."""
    metrics = ctx.plotted()
    order = [c for c in (ctx.meta.get("cases") or ctx.ok["case"].unique()) if c in set(ctx.ok["case"])]
    if not metrics or not order:
        return []
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    height = 0.32 * len(order) + 1.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols + 1.6, height * nrows), squeeze=False, sharey=True)
    for ax, m in zip(axes.flat, metrics, strict=False):
        sns.stripplot(data=ctx.ok, x=m, y="case", order=order, ax=ax, size=4, alpha=0.6, color="#4c72b0", jitter=0.15)
        sns.pointplot(
            data=ctx.ok, x=m, y="case", order=order, ax=ax, errorbar="sd", linestyle="none", color="#c44e52",
            markers="D", markersize=4, err_kws={"linewidth": 1.2},
        )  # fmt: skip
        ax.set_title(metric_label(m), fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("")
        style.axis_number_format(ax.xaxis)
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle("each case's runs (blue) and mean ± sd over seeds (red)", fontsize=style.FIGURE_TITLE_SIZE)
    # tight_layout ignores the suptitle: keep half an inch above the panels for it, whatever the figure's height
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    path = style.save(fig, ctx.fig_dir / "cases.png")
    return [("Metrics by case (runs, and mean ± sd over seeds)", path)]


FIGURES = {
    "grid": [_grid_figures],
    "latin_hypercube": [_design_figures],
    "sobol": [_sobol_figure, _design_figures],
    "cases": [_case_figure],
}


# --- numbers ----------------------------------------------------------------------------------------------------


def _rho(a: pd.Series, b: pd.Series) -> float:
    return _rho_p(a, b)[0]


def _rho_p(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Spearman rank correlation and its two-sided p-value (NaN, NaN when undefined)."""
    ab = pd.DataFrame({"a": pd.to_numeric(a, errors="coerce"), "b": pd.to_numeric(b, errors="coerce")}).dropna()
    if len(ab) < 3 or ab["a"].nunique() < 2 or ab["b"].nunique() < 2:
        return math.nan, math.nan
    res = spearmanr(ab["a"], ab["b"])
    return float(res.statistic), float(res.pvalue)


def _cell_name(params: list[str], values: Any) -> str:
    vals = tuple(values) if isinstance(values, tuple | list | pd.Series | np.ndarray) else (values,)
    return "(" + ", ".join(f"{short_name(p)}={num(v)}" for p, v in zip(params, vals, strict=True)) + ")"


# --- the report: its sections in order ---------------------------------------------------------------------------


def _is(*kinds: str) -> Any:
    return lambda ctx: ctx.has_data and ctx.kind in kinds


SECTIONS: list[Section[SweepContext]] = [
    Section("header", _header),
    Section("no data", _no_data, lambda ctx: not ctx.has_data),
    Section("grid findings", _grid_findings, _is("grid")),
    Section("design findings", _design_findings, _is("latin_hypercube", "sobol")),
    Section("sobol", _sobol_section, _is("sobol")),
    Section("cases", _case_findings, _is("cases")),
    Section("single", _single_findings, _is("single")),
    Section("figures", _figures, lambda ctx: ctx.has_data),
    Section("cell means", _cell_table, _is("grid")),
    Section("pre-shock check", _pre_shock_check, lambda ctx: not ctx.ok.empty),
    Section("failures", _failures),
]
