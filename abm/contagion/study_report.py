"""The contagion study's report, from the sweep directories of `experiments/contagion_*.toml`.

    abm sweep experiments/contagion_shock.toml --out results/contagion/contagion_shock   # ... one per file
    abm report results/contagion                                                         # this report

`abm report` on a folder of sweep directories (a *collection*) writes each sweep's own report, then this one:
DIR/tables.md, DIR/figures/*.png, DIR/numbers.json (the means behind the tables) and DIR/hawkes_runs.csv. The
study is `STUDY`, a list of sections; each names the experiments (sweep names) it reads and is left out when they
are missing, so a partial study reports what it has. Per-run metrics come from the sweeps' rows (the summary, with
the distress metrics, and the `hawkes` / `endogenous_share` outputs); cascade sizes from their `cascades` tables;
cascade trees from runs saved with `save_timeseries`. The single-run illustration (exposure network, DebtRank) is
included when `experiments/contagion_illustrations.py` has written DIR/illustration/.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.analysis import style
from abm.analysis.style import Section
from abm.contagion.liquidation_hawkes import MIN_EVENTS  # "enough events" for a Hawkes estimate
from abm.io import atomic_write_text
from abm.sweep.report import SweepContext, load_sweep, successful
from abm.sweep.store import read_table

ILLUSTRATION_DIR = "illustration"
ILLUSTRATION_FILE = "illustration.json"


@dataclass
class StudyContext:
    """The sweeps of a collection by experiment name, and what the report collects while it renders."""

    directory: Path
    sweeps: dict[str, SweepContext]
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def fig_dir(self) -> Path:
        return self.directory / "figures"

    def has(self, *names: str) -> bool:
        return any(n in self.sweeps and not self.sweeps[n].ok.empty for n in names)

    def runs(self, name: str) -> pd.DataFrame:
        """The successful runs of sweep `name`, parameter values as stored (lists and tables as JSON text)."""
        return successful(self.sweeps[name].runs)

    def link(self, title: str, path: Path) -> str:
        return style.figure_link(title, path, self.directory)


def setting(ctx: SweepContext) -> str:
    """'preset crash, 400 traders, 480 steps, 10 seeds' from a sweep's metadata."""
    meta = ctx.meta
    parts = [str(meta["base"])]
    traders = meta.get("overrides", {}).get("traders.n_traders")
    if traders is not None:
        parts.append(f"{traders} traders")
    parts += [f"{meta['steps']} steps", f"{meta['replicates']} seeds"]
    return ", ".join(parts)


# --- derived columns -------------------------------------------------------------------------------------------


def shock_size(runs: pd.DataFrame, asset: str = "ETH") -> pd.Series:
    """The size of the scripted shock to `asset` in each run's `scenario.events` (a positive fraction)."""

    def size(text: str) -> float:
        events = json.loads(text)
        return next((-float(e["size"]) for e in events if e.get("kind") == "shock" and e["asset"] == asset), 0.0)

    return runs["scenario.events"].map(size)


def margin_mode(runs: pd.DataFrame) -> pd.Series:
    """'cross', 'isolated', 'portfolio' or 'mix' from each run's `traders.margin_mode_mix`."""

    def name(text: str) -> str:
        mix = json.loads(text)
        return "mix" if len(mix) > 1 else next(iter(mix))

    return runs["traders.margin_mode_mix"].map(name)


# --- one experiment: a table of mean ± sd and a figure ----------------------------------------------------------

DISTRESS = {
    "share_accounts_liquidated": "accounts liquidated",
    "share_accounts_wiped_out": "accounts wiped out",
    "share_traders_wiped_out": "traders wiped out",
    "share_equity_lost": "equity lost",
    "reflexivity_index": "reflexivity index",
    "branching_ratio": "branching ratio",
}
DISTRESS_FIGURE = {
    k: DISTRESS[k] for k in ("share_accounts_liquidated", "share_traders_wiped_out", "share_equity_lost")
}
# the branching ratio, not the reflexivity index: under the whole-fall attribution almost no liquidation in a
# one-asset crash has half its damage from earlier sales, so the index sits at 0 there while the share does not
DISTRESS_FIGURE["branching_ratio"] = DISTRESS["branching_ratio"]


@dataclass(frozen=True)
class Panel:
    """A section on one experiment: mean ± sd over seeds of `table` columns grouped by `by` (default: hue, x), and a
    figure of `figure` metrics against `x` (lines, or bars for a categorical x), coloured by `hue`."""

    experiment: str
    heading: str
    x: str
    table: Mapping[str, str]
    figure: Mapping[str, str]
    png: str
    title: str
    kind: str = "lines"  # or "bars"
    hue: str | None = None
    logx: bool = False
    logy: tuple[str, ...] = ()
    xlabel: str | None = None
    note: str = ""
    numbers: str = ""  # key of the means in numbers.json (default: the experiment's name)
    derive: Mapping[str, Callable[[pd.DataFrame], pd.Series]] = field(default_factory=dict)  # new columns
    pivot: str | None = None  # also: this metric's mean by x (rows) and hue (columns)

    def render(self, ctx: StudyContext) -> list[str]:
        from abm.contagion.figures import plot_metric_bars, plot_metric_lines

        runs = ctx.runs(self.experiment)
        for column, fn in self.derive.items():
            runs[column] = fn(runs)
        by = [self.hue, self.x] if self.hue else self.x
        png = ctx.fig_dir / self.png
        present = {k: v for k, v in self.figure.items() if k in runs.columns}
        if self.kind == "bars":
            plot_metric_bars(runs, self.x, present, png, hue=self.hue, logy=self.logy, title=self.title)
        else:
            plot_metric_lines(
                runs, self.x, present, png, hue=self.hue, logx=self.logx, xlabel=self.xlabel, title=self.title
            )
        table_cols = {k: v for k, v in self.table.items() if k in runs.columns}
        ctx.numbers[self.numbers or self.experiment] = _means(runs, by, table_cols)
        lines = [f"## {self.heading} ({setting(ctx.sweeps[self.experiment])})\n"]
        if self.note:
            lines.append(self.note + "\n")
        if self.pivot and self.pivot in runs.columns and self.hue:
            pivot = runs.pivot_table(index=self.x, columns=self.hue, values=self.pivot)
            pivot.columns = [f"{self.hue} = {style.num(c)}" for c in pivot.columns]
            lines += [f"{style.metric_label(self.pivot)}, mean over seeds:\n", style.frame_table(pivot), ""]
            lines.append("All metrics (mean ± sd over seeds):\n")
        lines += [style.frame_table(style.mean_sd_table(runs, by, table_cols)), "", ctx.link(self.title, png)]
        return lines


def _means(runs: pd.DataFrame, by: str | list[str], columns: Mapping[str, str]) -> dict[str, Any]:
    """Mean of each column per group (for numbers.json), keyed by the column's label and the group's name."""
    means = runs.groupby(by)[list(columns)].mean()
    means.index = [
        ", ".join(style.num(v) for v in key) if isinstance(key, tuple) else style.num(key) for key in means.index
    ]
    return {columns[c]: {k: (None if math.isnan(v) else float(v)) for k, v in means[c].items()} for c in columns}


def _panel(p: Panel) -> Section[StudyContext]:
    return Section(p.experiment, p.render, lambda ctx: ctx.has(p.experiment))


# --- pooled over experiments: the Hawkes check, cascade sizes ----------------------------------------------------

HAWKES_EXPERIMENTS = {
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
    "hawkes_branching_ratio": "MLE, distress onsets, non-liquidation baseline (the summary's)",
}
POOLED_LABEL = "the same, one fit pooled over the runs"


def _hawkes_runs(ctx: StudyContext) -> pd.DataFrame:
    frames = [ctx.runs(name).assign(preset=label) for name, label in HAWKES_EXPERIMENTS.items() if ctx.has(name)]
    return pd.concat(frames, ignore_index=True)


def _pooled_hawkes(ctx: StudyContext) -> dict[str, float]:
    """Per preset, the branching ratio of one Hawkes fit to all its runs' distress onsets (`hawkes_inputs` tables;
    `abm.contagion.liquidation_hawkes.pooled_hawkes_branching_ratio`), where the experiment kept them."""
    from abm.contagion.liquidation_hawkes import pooled_hawkes_branching_ratio

    out = {}
    for name, label in HAWKES_EXPERIMENTS.items():
        sweep = ctx.sweeps.get(name)
        if sweep is None or "hawkes_inputs" not in (sweep.meta.get("outputs") or {}).get("tables", []):
            continue
        table = read_table(sweep.directory, "hawkes_inputs")
        if table.empty or table["onsets"].sum() < MIN_EVENTS:
            continue
        covariates = [c for c in table.columns if c not in ("run_index", "step", "onsets")]
        runs = [g.sort_values("step") for _, g in table.groupby("run_index", sort=True)]
        fit = pooled_hawkes_branching_ratio(
            [g["onsets"].to_numpy() for g in runs], [g[covariates].to_numpy() for g in runs]
        )
        out[label] = fit.n
    return out


def _hawkes(ctx: StudyContext) -> list[str]:
    from abm.contagion.figures import plot_hawkes_vs_truth

    hk = _hawkes_runs(ctx)
    pooled = _pooled_hawkes(ctx)
    present = {k: v for k, v in HAWKES_ESTIMATES.items() if k in hk.columns}
    rows = []
    for label, sub in hk.groupby("preset", sort=False):
        enough = sub[sub["n_liquidations"] >= MIN_EVENTS]
        row: dict[str, Any] = {
            "preset": label,
            "runs": len(sub),
            "events / run": sub["n_liquidations"].mean(),
            f"runs with >= {MIN_EVENTS} events": len(enough),
            "truth: branching ratio": sub["branching_ratio"].mean(),
        }
        if "mean_endogenous_share" in sub.columns:
            row["mean endogenous share"] = sub["mean_endogenous_share"].mean()
        for col, name in present.items():
            row[name] = enough[col].mean() if len(enough) else math.nan
            within = (enough[col] - enough["branching_ratio"]).abs() <= 0.1
            row[f"{name}: runs within 0.1"] = f"{int(within.sum())}/{len(enough)}" if len(enough) else "-"
        row[POOLED_LABEL] = pooled.get(label, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("preset")
    ctx.numbers["hawkes"] = json.loads(table.to_json())
    png = plot_hawkes_vs_truth(hk[hk["n_liquidations"] >= MIN_EVENTS], ctx.fig_dir / "hawkes_vs_truth.png", present)
    atomic_write_text(ctx.directory / "hawkes_runs.csv", hk.to_csv(index=False))
    first = next(n for n in HAWKES_EXPERIMENTS if ctx.has(n))
    return [
        "## Hawkes check: branching ratio from liquidation times alone vs the cascade graph "
        f"({setting(ctx.sweeps[first])} per preset)\n",
        f"Estimates are means over runs with at least {MIN_EVENTS} liquidations; `within 0.1` counts runs whose "
        "estimate is within 0.1 of that run's ground truth. The classic estimators fit liquidation times with a "
        "constant or regime baseline; the summary's fits distress onsets (the step each liquidated account first "
        "showed a health factor below 1) with a baseline driven by the prices the market would have shown without "
        "liquidation sales (docs/contagion.md, Hawkes check); the pooled row fits that model once to every run of "
        "the preset.\n",
        style.frame_table(table.T),
        "",
        ctx.link("Hawkes estimates against the cascade graph's branching ratio", png),
    ]


def _cascade_sizes(ctx: StudyContext) -> dict[str, np.ndarray]:
    sizes = {}
    for name, label in HAWKES_EXPERIMENTS.items():
        sweep = ctx.sweeps.get(name)
        if sweep is not None and "cascades" in (sweep.meta.get("outputs") or {}).get("tables", []):
            sizes[label] = read_table(sweep.directory, "cascades")["size"].to_numpy()
    return {k: v for k, v in sizes.items() if len(v)}


def _ccdf(ctx: StudyContext) -> list[str]:
    from abm.contagion.figures import plot_cascade_ccdf

    png = plot_cascade_ccdf(_cascade_sizes(ctx), ctx.fig_dir / "cascade_ccdf.png")
    return ["## Cascade sizes\n", ctx.link("Cascade-size distribution (CCDF, pooled over seeds)", png)]


# --- saved runs and the illustration ------------------------------------------------------------------------------

TREE_EXPERIMENTS = {"contagion_hawkes_black_thursday": "black_thursday"}


def _saved_run(ctx: StudyContext, name: str) -> Path | None:
    runs_dir = ctx.sweeps[name].directory / "runs"
    saved = sorted(runs_dir.glob("run-*/cascade.graphml")) if runs_dir.is_dir() else []
    return saved[0].parent if saved else None


def _trees(ctx: StudyContext) -> list[str]:
    import networkx as nx

    from abm.contagion.figures import draw_cascade_trees

    lines = ["## Largest cascades\n"]
    for name, label in TREE_EXPERIMENTS.items():
        run_dir = _saved_run(ctx, name) if name in ctx.sweeps else None
        if run_dir is None:
            continue
        graph = nx.read_graphml(run_dir / "cascade.graphml", node_type=int)
        png = draw_cascade_trees(graph, ctx.fig_dir / f"cascade_trees_{label}.png", title=f"largest cascades, {label}")
        lines.append(ctx.link(f"{label}: the largest cascades of {run_dir.name} of {name}", png))
    return lines


def _has_trees(ctx: StudyContext) -> bool:
    return any(name in ctx.sweeps and _saved_run(ctx, name) is not None for name in TREE_EXPERIMENTS)


def _illustration(ctx: StudyContext) -> list[str]:
    d = ctx.directory / ILLUSTRATION_DIR
    info = json.loads((d / ILLUSTRATION_FILE).read_text())
    ctx.numbers["illustration"] = info
    ill = info["illustrate"]
    rows = [
        ["accounts", ill["accounts"]],
        ["accounts liquidated", ill["n_liquidated_accounts"]],
        ["Spearman rho, gross exposure vs DebtRank", ill["spearman_size_debtrank"]],
        ["mean DebtRank, liquidated accounts", ill["debtrank_mean_liquidated"]],
        ["mean DebtRank, spared accounts", ill["debtrank_mean_spared"]],
        *([k.replace("_", " "), v] for k, v in ill["summary"].items()),
    ]
    lines = [
        f"## Exposure network and DebtRank (contagion preset, 300 hodl traders, seed {ill['seed']}, just before "
        "the SOL shock)\n",
        style.markdown_table(["measure", "value"], rows),
        "",
    ]
    for png, title in (
        ("exposure_network.png", "Exposure network before the shock"),
        ("debtrank_vs_size.png", "DebtRank against size"),
        ("cascade_trees_contagion.png", "Largest cascades of the illustrative run"),
    ):
        if (d / png).exists():
            lines.append(ctx.link(title, d / png))
    if "timing" in info:
        t = info["timing"]
        lines.append(
            f"Exposure graph of {style.num(t['accounts'])} accounts ({style.num(t['edges'])} edges) built in "
            f"{t['graph_seconds']:.2f} s; DebtRank of the 1,000 largest in {t['debtrank_seconds_top_1000']:.2f} s.\n"
        )
    return lines


# --- the study ----------------------------------------------------------------------------------------------------

STUDY: list[Section[StudyContext]] = [
    Section("title", lambda ctx: ["# Contagion study: tables\n"]),
    _panel(
        Panel(
            experiment="contagion_leverage",
            heading="Reflexivity against leverage",
            x="traders.max_leverage",
            table={
                "n_liquidations": "liquidations",
                "reflexivity_index": "reflexivity index",
                "branching_ratio": "branching ratio",
                "mean_endogenous_share": "mean endogenous share",
                "largest_cascade": "largest cascade",
                "max_cascade_depth": "max depth",
            },
            figure={
                "reflexivity_index": "reflexivity index",
                "branching_ratio": "branching ratio",
                "n_liquidations": "liquidations",
            },
            png="leverage.png",
            title="crash preset: reflexivity against leverage (mean, 95% CI over seeds)",
            note="mean ± sd over seeds (`n/a`: no liquidation in any seed, the metric is undefined)",
            numbers="leverage",
        )
    ),
    Section("hawkes", _hawkes, lambda ctx: ctx.has(*HAWKES_EXPERIMENTS)),
    Section("cascade sizes", _ccdf, lambda ctx: bool(_cascade_sizes(ctx))),
    Section("cascade trees", _trees, _has_trees),
    _panel(
        Panel(
            experiment="contagion_shock",
            heading="Distress against shock size",
            x="shock size (ETH)",
            derive={"shock size (ETH)": shock_size},
            table=DISTRESS | {"bad_debt_usd": "bad debt (USD)"},
            figure=DISTRESS_FIGURE,
            png="distress_vs_shock.png",
            title="crash market: distress against the size of the shock (ETH s, BTC 0.6 s)",
            numbers="shock",
        )
    ),
    _panel(
        Panel(
            experiment="contagion_depth",
            heading="Distress against market depth",
            x="market.depth_scale",
            logx=True,
            table=DISTRESS | {"bad_debt_usd": "bad debt (USD)"},
            figure=DISTRESS_FIGURE,
            png="distress_vs_depth.png",
            title="crash market: distress against market depth (every asset's depth x scale)",
            numbers="depth",
        )
    ),
    _panel(
        Panel(
            experiment="contagion_diversification",
            heading="Distress against diversification and leverage",
            x="traders.assets_per_trader",
            hue="traders.max_leverage",
            xlabel="assets per trader",
            table={
                "share_accounts_liquidated": "accounts liquidated",
                "share_positions_liquidated": "positions liquidated",
                "share_equity_lost": "equity lost",
                "reflexivity_index": "reflexivity index",
                "branching_ratio": "branching ratio",
            },
            figure={
                "share_accounts_liquidated": "accounts liquidated",
                "share_equity_lost": "equity lost",
                "reflexivity_index": "reflexivity index",
            },
            pivot="share_accounts_liquidated",
            png="diversification.png",
            title="eight assets, SOL -35%: distress against diversification, by max leverage",
            numbers="diversification",
        )
    ),
    _panel(
        Panel(
            experiment="contagion_margin_modes",
            heading="Cross vs isolated vs portfolio margin",
            x="mode",
            derive={"mode": margin_mode},
            hue="traders.max_leverage",
            kind="bars",
            logy=("bad_debt_usd",),
            table={
                "share_accounts_wiped_out": "accounts wiped out",
                "share_traders_wiped_out": "traders wiped out",
                "positions_liquidated": "positions liquidated",
                "share_positions_liquidated": "share of positions liquidated",
                "bad_debt_usd": "bad debt (USD)",
                "reflexivity_index": "reflexivity index",
            },
            figure={
                "share_traders_wiped_out": "traders wiped out",
                "share_positions_liquidated": "positions liquidated (share)",
                "bad_debt_usd": "bad debt (USD)",
                "reflexivity_index": "reflexivity index",
            },
            png="margin_modes.png",
            title="cross vs isolated vs portfolio margin (eight assets, three per trader, SOL -35%)",
            numbers="margin_modes",
        )
    ),
    Section(
        "illustration",
        _illustration,
        lambda ctx: (ctx.directory / ILLUSTRATION_DIR / ILLUSTRATION_FILE).exists(),
    ),
]


def sweep_dirs(directory: Path) -> list[Path]:
    """The sweep directories (holding sweep.json) directly inside `directory`, by name."""
    return sorted(p for p in directory.iterdir() if p.is_dir() and (p / "sweep.json").exists())


def collection_report(directory: str | Path) -> Path:
    """Report every sweep directory inside `directory` (its own report.md), then the study: DIR/tables.md,
    DIR/figures/*.png, DIR/numbers.json, DIR/hawkes_runs.csv. Returns the path of tables.md."""
    from abm.sweep.report import sweep_report

    d = Path(directory)
    sweeps: dict[str, SweepContext] = {}
    for sub in sweep_dirs(d):
        sweep_report(sub)
        ctx = load_sweep(sub)
        sweeps[str(ctx.meta["name"])] = ctx
    study = StudyContext(d, sweeps)
    style.clear_figures(study.fig_dir)
    style.theme()
    path = d / "tables.md"
    atomic_write_text(path, style.render_sections(STUDY, study))
    atomic_write_text(d / "numbers.json", json.dumps(study.numbers, indent=1, default=str) + "\n")
    return path
