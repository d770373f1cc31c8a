"""`abm report SWEEP_DIR`: figures and report.md for a sweep directory.

- grid sweeps: heatmaps of each key metric's mean over two grid parameters (one panel per value of a third),
  and line plots of each metric against the first parameter with 95% confidence intervals over replicates
  (seaborn, ``errorbar=("ci", 95)``);
- sampled designs: each metric against each sampled parameter (runs and binned means);
- Sobol designs: first-order (S1) and total (ST) Sobol indices with their 95% confidence intervals
  (`SALib.analyze.sobol`, on the mean over replicates of each design point);
- report.md ties them together with the numbers: marginal effects, the best and worst cells, rank correlations
  and, when both bad debt and amplification are reported, the trade-off between them.

Figures go to DIR/figures/. The report reads only runs.parquet and sweep.json, so it works on a partial sweep.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter
from scipy.stats import spearmanr

from abm.errors import UserInputError
from abm.io import atomic_write_text, save_figure
from abm.sweep.store import read_runs

DPI = 110
METRIC_LABELS = {
    "bad_debt_usd": "bad debt (USD)",
    "liquidation_volume_usd": "liquidation volume (USD)",
    "n_liquidations": "liquidations (count)",
    "reflexivity_index": "reflexivity index",
    "lender_loss_usd": "lender loss (USD)",
    "liquidation_overshoot": "liquidation overshoot (1 - HF)",
    "liquidation_hf_mean": "HF at liquidation",
    "oracle_gap_at_liquidation": "oracle / market - 1 at liquidation",
    "peak_utilisation": "peak utilisation",
}


def sweep_report(sweep_dir: str | Path) -> Path:
    """Write DIR/figures/*.png and DIR/report.md for a sweep directory; return the report's path."""
    d = Path(sweep_dir)
    meta_path = d / "sweep.json"
    if not meta_path.exists():
        raise UserInputError(f"'{d}' holds no sweep.json: not a sweep directory (run `abm sweep ... --out {d}`)")
    meta = json.loads(meta_path.read_text())
    runs = read_runs(d)
    fig_dir = d / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()
    sns.set_theme(style="whitegrid", context="notebook")

    params: list[str] = list(meta["parameters"])
    ok = runs[runs["status"] == "ok"].copy()
    metrics = _metrics(meta, ok)
    lines = _header(meta, runs, ok)
    figures: list[tuple[str, Path]] = []
    if ok.empty or not metrics:
        lines.append("No successful runs yet: nothing to plot.\n")
    elif meta["kind"] == "grid":
        x, y, facet = _axes(meta, params, ok)
        lines += _grid_findings(ok, params, metrics, x, y, facet)
        for m in metrics:
            if y is not None and ok[m].notna().any():
                figures.append((f"Mean {_label(m)} over {x} x {y}", _heatmap(ok, m, x, y, facet, fig_dir)))
        for m in metrics:
            if ok[m].notna().any():
                figures.append(
                    (f"{_label(m)} against {x} (95% CI over replicates)", _lines(ok, m, x, y, facet, fig_dir))
                )
        lines += _cell_table(ok, params, metrics)
    elif meta["kind"] in ("latin_hypercube", "sobol"):
        lines += _design_findings(ok, params, metrics)
        for m in metrics:
            if ok[m].notna().any():
                figures.append((f"{_label(m)} against each sampled parameter", _scatter(ok, m, params, fig_dir)))
        if meta["kind"] == "sobol":
            sobol_lines, path = _sobol(meta, runs, params, metrics, fig_dir)
            lines += sobol_lines
            if path is not None:
                figures.insert(0, ("Sobol indices (S1, ST) with 95% confidence intervals", path))
    else:  # a single point: replicates only
        lines += _single_findings(ok, metrics)
    if figures:
        lines.append("## Figures\n")
        if any(path.name.startswith("heatmap_") for _, path in figures):
            lines.append(
                "Heatmap cells are means over replicates; grey cells are undefined (the metric is NaN in every "
                "run of the cell, e.g. a reflexivity index without liquidations).\n"
            )
        for title, path in figures:
            lines.append(f"**{title}**\n\n![{title}](figures/{path.name})\n")
    lines += _failures(runs)
    report = d / "report.md"
    atomic_write_text(report, "\n".join(lines).rstrip() + "\n")
    return report


# --- pieces of the report ---------------------------------------------------------------------------------------


def _metrics(meta: dict[str, Any], ok: pd.DataFrame) -> list[str]:
    wanted = meta.get("report", {}).get("metrics")
    if not wanted:
        risky = meta.get("risky_assets") or ["ETH"]
        wanted = [f"amplification_{risky[0]}", "bad_debt_usd", "liquidation_volume_usd", "reflexivity_index"]
    return [m for m in wanted if m in ok.columns]


def _axes(meta: dict[str, Any], params: list[str], ok: pd.DataFrame) -> tuple[str, str | None, str | None]:
    rep = meta.get("report", {})
    x = rep.get("x") or params[0]
    rest = [p for p in params if p != x]
    y = rep.get("y") or (rest[0] if rest else None)
    rest = [p for p in rest if p != y]
    multi = [p for p in rest if ok[p].nunique() > 1]
    facet = multi[0] if multi else None
    return x, y, facet


def _header(meta: dict[str, Any], runs: pd.DataFrame, ok: pd.DataFrame) -> list[str]:
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
            lines.append(f"| `{k}` | {', '.join(_num(x) for x in v)} |")
    if meta.get("design"):
        des = meta["design"]
        for k, (lo, hi) in des["bounds"].items():
            integer = " (integer)" if k in des.get("integer", []) else ""
            lines.append(f"| `{k}` | [{_num(lo)}, {_num(hi)}]{integer} |")
        lines.append(f"| samples | n = {des['n']}, seed {des['seed']} |")
    overrides = {k: v for k, v in meta.get("overrides", {}).items() if k != "steps"}
    if overrides:
        lines.append("| overrides | " + ", ".join(f"`{k}` = {_num(v)}" for k, v in overrides.items()) + " |")
    lines.append(f"| steps per run | {meta['steps']} |")
    lines.append(f"| runs | {len(runs)} of {meta['n_runs']} done, {n_err} failed |")
    lines.append(f"| compute | {cpu:.0f} s of worker time ({cpu / max(len(runs), 1):.1f} s per run) |")
    lines.append(f"| seeds | SeedSequence({meta['base_seed']}), run i -> child i |\n")
    if len(runs) < meta["n_runs"]:
        lines.append(f"**Partial sweep**: {meta['n_runs'] - len(runs)} runs are missing (`abm sweep --resume`).\n")
    return lines


def _grid_findings(
    ok: pd.DataFrame, params: list[str], metrics: list[str], x: str, y: str | None, facet: str | None
) -> list[str]:
    lines = ["## Findings\n"]
    cells = ok.groupby(params, dropna=False)[metrics].mean()
    for m in metrics:
        col = ok[m]
        if col.notna().sum() == 0:
            lines.append(f"- **{_label(m)}**: undefined in every run (NaN).")
            continue
        parts = []
        for p in params:
            marg = ok.groupby(p)[m].mean()
            if len(marg) < 2:
                continue
            rho, pval = _rho_p(ok[p], col)
            parts.append(
                f"with `{p}` from {_num(marg.index[0])} to {_num(marg.index[-1])} the mean goes "
                f"{_num(marg.iloc[0])} -> {_num(marg.iloc[-1])} (Spearman rho {_num(rho, 2)}, p {_p(pval)})"
            )
        c = cells[m].dropna()
        text = f"- **{_label(m)}** (mean over all runs {_num(col.mean())}): " + "; ".join(parts) + "."
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
            f"({_num(lo_bd['bad_debt_usd'])}) and the mildest crash ({amp} {_num(lo_bd[amp])})."
        )
    return (
        f"The cell with the least bad debt, {_cell_name(params, lo_bd[params])}, has bad debt "
        f"{_num(lo_bd['bad_debt_usd'])} and {amp} {_num(lo_bd[amp])}; the cell with the mildest crash, "
        f"{_cell_name(params, lo_amp[params])}, has {amp} {_num(lo_amp[amp])} and bad debt "
        f"{_num(lo_amp['bad_debt_usd'])}."
    )


def _extreme(c: pd.Series, params: list[str], value: float) -> str:
    at = c[c == value]
    if len(at) == 1:
        return f"cell: {_cell_name(params, at.index[0])} ({_num(value)})"
    return f"{_num(value)}, in {len(at)} cells (e.g. {_cell_name(params, at.index[0])})"


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
        f"| parameter | bad debt: rho (p) | {amp}: rho (p) | reading |",
        "|---|---|---|---|",
    ]
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
        lines.append(f"| `{p}` | {_num(r_bd, 2)} ({_p(p_bd)}) | {_num(r_amp, 2)} ({_p(p_amp)}) | {reading} |")
    c = cells[[*params, "bad_debt_usd", amp]].dropna()
    if len(c) >= 3:
        rho, pval = _rho_p(c["bad_debt_usd"], c[amp])
        lo_bd = c.loc[c["bad_debt_usd"].idxmin()]
        lo_amp = c.loc[c[amp].idxmin()]
        lines += [
            "",
            f"Across the {len(c)} cells, mean bad debt and mean {amp} have rank correlation {_num(rho, 2)} "
            f"(p {_p(pval)}); cell means share seed noise (a seed with a deeper crash has more of both), so read "
            f"this with the per-parameter table. " + _best_cells(params, lo_bd, lo_amp, amp),
        ]
    verdict = (
        f"**The paradox appears** through {', '.join(f'`{p}`' for p in levers)}."
        if levers
        else "**No paradox lever** in this grid: no parameter moves bad debt and the crash's depth in opposite "
        "directions beyond seed noise."
    )
    lines += ["", verdict]
    return lines


def _design_findings(ok: pd.DataFrame, params: list[str], metrics: list[str]) -> list[str]:
    lines = ["## Findings\n", "Spearman rank correlation of each metric with each sampled parameter (over runs):\n"]
    lines.append("| metric | " + " | ".join(f"`{p}`" for p in params) + " |")
    lines.append("|---|" + "---|" * len(params))
    for m in metrics:
        lines.append(f"| {m} | " + " | ".join(_num(_rho(ok[p], ok[m]), 2) for p in params) + " |")
    lines.append("")
    return lines


def _single_findings(ok: pd.DataFrame, metrics: list[str]) -> list[str]:
    lines = ["## Findings\n", "| metric | mean | 95% CI half-width | runs |", "|---|---|---|---|"]
    for m in metrics:
        v = ok[m].dropna()
        half = 1.96 * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan
        lines.append(f"| {m} | {_num(v.mean())} | {_num(half)} | {len(v)} |")
    lines.append("")
    return lines


def _cell_table(ok: pd.DataFrame, params: list[str], metrics: list[str]) -> list[str]:
    cells = ok.groupby(params)[metrics].mean().reset_index()
    if len(cells) > 80:
        return []
    lines = ["## Cell means (over replicates)\n", "| " + " | ".join(f"`{p}`" for p in params) + " | "]
    lines[-1] += " | ".join(metrics) + " |"
    lines.append("|" + "---|" * (len(params) + len(metrics)))
    for _, r in cells.iterrows():
        lines.append("| " + " | ".join(_num(r[c]) for c in [*params, *metrics]) + " |")
    lines.append("")
    return lines


def _failures(runs: pd.DataFrame) -> list[str]:
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return []
    lines = [f"## Failed runs ({len(bad)})\n"]
    for msg, group in bad.groupby("error", dropna=False):
        idx = ", ".join(str(i) for i in group["run_index"].head(10))
        more = f" and {len(group) - 10} more" if len(group) > 10 else ""
        lines.append(f"- runs {idx}{more}: `{msg}`")
    lines.append("")
    return lines


# --- Sobol ------------------------------------------------------------------------------------------------------


def _sobol(
    meta: dict[str, Any], runs: pd.DataFrame, params: list[str], metrics: list[str], fig_dir: Path
) -> tuple[list[str], Path | None]:
    from SALib.analyze import sobol

    des = meta["design"]
    problem = {"num_vars": len(params), "names": params, "bounds": [des["bounds"][p] for p in params]}
    lines = ["## Sobol sensitivity\n"]
    n_points = int(meta["n_points"])
    ok = runs[runs["status"] == "ok"]
    results: dict[str, dict[str, np.ndarray]] = {}
    for m in metrics:
        y = ok.groupby("point")[m].mean().reindex(range(n_points))
        if y.isna().any():
            lines.append(f"- {m}: skipped ({int(y.isna().sum())} of {n_points} points have no finite value).")
            continue
        if float(y.std()) == 0.0:
            lines.append(f"- {m}: skipped (the same value at every point).")
            continue
        res = sobol.analyze(problem, y.to_numpy(), calc_second_order=bool(des.get("calc_second_order", False)), seed=0)
        results[m] = {k: np.asarray(res[k]) for k in ("S1", "S1_conf", "ST", "ST_conf")}
    if not results:
        return [*lines, ""], None
    lines.append(
        f"Indices of the mean over {meta['replicates']} replicates at each of the {n_points} design points "
        f"(SALib base N = {des['n']}); ± is the 95% bootstrap confidence half-width. Seed noise that the "
        "replicates do not average away shows up as total effect; with a small N the intervals are wide.\n"
    )
    lines.append("| metric | parameter | S1 | ST |\n|---|---|---|---|")
    for m, r in results.items():
        order = np.argsort(-r["ST"])
        for j in order:
            lines.append(
                f"| {m} | `{params[j]}` | {r['S1'][j]:.2f} ± {r['S1_conf'][j]:.2f} | "
                f"{r['ST'][j]:.2f} ± {r['ST_conf'][j]:.2f} |"
            )
        top = params[order[0]]
        lines.append(f"| | *most influential for {m}: `{top}` (ST {r['ST'][order[0]]:.2f})* | | |")
    lines.append("")

    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(max(6.0, 1.0 * len(params) + 3.0), 3.6 * n), squeeze=False)
    for ax, (m, r) in zip(axes[:, 0], results.items(), strict=True):
        pos = np.arange(len(params))
        w = 0.38
        ax.bar(pos - w / 2, r["S1"], w, yerr=r["S1_conf"], capsize=3, label="S1 (first order)", color="#4c72b0")
        ax.bar(pos + w / 2, r["ST"], w, yerr=r["ST_conf"], capsize=3, label="ST (total)", color="#dd8452")
        ax.set_xticks(pos)
        ax.set_xticklabels([_short_name(p) for p in params], rotation=30, ha="right")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(_label(m))
        ax.set_ylabel("Sobol index")
        ax.legend(fontsize=8)
    return lines, _save(fig, fig_dir / "sobol_indices.png")


# --- figures ----------------------------------------------------------------------------------------------------


def _heatmap(ok: pd.DataFrame, metric: str, x: str, y: str, facet: str | None, fig_dir: Path) -> Path:
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
        annot = np.vectorize(lambda v: _num(v))(piv.to_numpy())
        sns.heatmap(
            piv,
            ax=ax,
            annot=annot,
            fmt="",
            cmap="rocket_r",
            vmin=vmin,
            vmax=vmax,
            cbar=k == n - 1,
            cbar_kws={"label": _label(metric)} if k == n - 1 else None,
            annot_kws={"fontsize": 8},
            linewidths=0.5,
        )
        if k == n - 1 and ax.collections and ax.collections[0].colorbar is not None:
            ax.collections[0].colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _num(v)))
        ax.set_xticklabels([_num(v) for v in piv.columns], rotation=0)
        ax.set_yticklabels([_num(v) for v in piv.index], rotation=0)
        ax.set_xlabel(x)
        ax.set_ylabel(y if k == 0 else "")
        ax.set_title(f"{facet} = {_num(fv)}" if facet else f"mean {_label(metric)}", fontsize=10)
    if facet:
        fig.suptitle(f"mean {_label(metric)}", fontsize=11)
    return _save(fig, fig_dir / f"heatmap_{_slug(metric)}.png")


def _lines(ok: pd.DataFrame, metric: str, x: str, hue: str | None, facet: str | None, fig_dir: Path) -> Path:
    data = ok.copy()
    kwargs: dict[str, Any] = {}
    if hue is not None:
        order = sorted(data[hue].dropna().unique())
        hue_col = f"{hue} "  # a text copy of the parameter (categorical colours), titled like it in the legend
        data[hue_col] = data[hue].map(_num)
        kwargs.update(hue=hue_col, hue_order=[_num(v) for v in order], palette="viridis")
    if facet is not None:
        data["_col"] = data[facet].map(lambda v: f"{facet} = {_num(v)}")
        kwargs.update(col="_col", col_order=[f"{facet} = {_num(v)}" for v in sorted(data[facet].dropna().unique())])
    g = sns.relplot(
        data=data,
        x=x,
        y=metric,
        kind="line",
        errorbar=("ci", 95),
        marker="o",
        height=3.6,
        aspect=1.25,
        seed=0,
        facet_kws={"sharey": True},
        **kwargs,
    )
    xs = data[x].dropna()
    if len(xs) and pd.api.types.is_numeric_dtype(xs) and (xs > 0).all() and xs.max() / xs.min() >= 8:
        g.set(xscale="log")
    g.set_axis_labels(x, _label(metric))
    for ax in g.axes.flat:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _num(v)))
    if facet is not None:
        g.set_titles("{col_name}")
    g.figure.suptitle(f"{_label(metric)}: mean and 95% CI over replicates", y=1.02, fontsize=11)
    return save_figure(g.figure, fig_dir / f"lines_{_slug(metric)}.png", DPI, trim=True)


def _scatter(ok: pd.DataFrame, metric: str, params: list[str], fig_dir: Path) -> Path:
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
        ax.set_xlabel(_short_name(p))
        ax.set_title(f"rho = {_num(_rho(ok[p], ok[metric]), 2)}", fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(_label(metric))
        row[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: _num(v)))
    axes.flat[0].legend(fontsize=8) if axes.flat[0].get_legend_handles_labels()[0] else None
    return _save(fig, fig_dir / f"design_{_slug(metric)}.png")


def _save(fig: plt.Figure, path: Path) -> Path:
    return save_figure(fig, path, DPI, tight_layout=True, trim=True)


# --- formatting -------------------------------------------------------------------------------------------------


def _rho(a: pd.Series, b: pd.Series) -> float:
    return _rho_p(a, b)[0]


def _rho_p(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Spearman rank correlation and its two-sided p-value (NaN, NaN when undefined)."""
    ab = pd.DataFrame({"a": pd.to_numeric(a, errors="coerce"), "b": pd.to_numeric(b, errors="coerce")}).dropna()
    if len(ab) < 3 or ab["a"].nunique() < 2 or ab["b"].nunique() < 2:
        return math.nan, math.nan
    res = spearmanr(ab["a"], ab["b"])
    return float(res.statistic), float(res.pvalue)


def _p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def _num(v: Any, digits: int = 3) -> str:
    """Compact number: 3 significant digits, k/M/B suffixes for large magnitudes."""
    if v is None or v is pd.NA:
        return "n/a"
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if not isinstance(v, int | float | np.number):
        text = str(v)
        return text if len(text) <= 40 else text[:37] + "..."
    v = float(v)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{v / scale:.{digits}g}{suffix}"
    if v == int(v) and a < 1e3:
        return str(int(v))
    return f"{v:.{digits}g}"


def _label(metric: str) -> str:
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    for prefix, text in (
        ("amplification_", "amplification"),
        ("max_drawdown_", "max drawdown"),
        ("price_overshoot_", "price overshoot"),
    ):
        if metric.startswith(prefix):
            return f"{text} {metric.removeprefix(prefix)}"
    return metric


def _short_name(param: str) -> str:
    parts = param.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else param


def _cell_name(params: list[str], values: Any) -> str:
    vals = values if isinstance(values, tuple) else (values,) if len(params) == 1 else tuple(values)
    return "(" + ", ".join(f"{_short_name(p)}={_num(v)}" for p, v in zip(params, vals, strict=True)) + ")"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
