"""Figures of one run (seaborn/matplotlib; style and saving from `abm.analysis.style`): six standard figures, and
two more for runs with the perpetual venue (docs/perps.md)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn  # noqa: F401  (registers the seaborn colormaps used by name, e.g. "mako_r")

from abm.analysis import style
from abm.analysis.shock_window import scripted_shocks, shock_window
from abm.config import ModelConfig
from abm.recording.recorder import HF_BIN_EDGES

# The perp figures' second column zooms on the shock: from this many steps before the first shock to this many
# after the last one ends (liquidations, the backstops and ADL play out within minutes of the drop)
ZOOM_BEFORE_STEPS = 30
ZOOM_AFTER_STEPS = 120


def _hours(ts: pd.DataFrame, config: ModelConfig) -> pd.Series:
    return ts["step"] * config.market.step_seconds / 3600.0


def _save(fig: plt.Figure, path: Path) -> Path:
    return style.save(fig, path, tight_layout=True)


def run_figures(
    ts: pd.DataFrame,
    events: pd.DataFrame,
    write_offs: pd.DataFrame,
    hf_histogram: np.ndarray,
    config: ModelConfig,
    out_dir: Path,
) -> list[Path]:
    """Write the six standard figures of a run into `out_dir`, and with the perpetual venue (`perps.enabled`)
    `perp_funding.png` and `perp_backstop.png`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    style.theme()
    hours = _hours(ts, config)
    risky = config.symbols[1:]
    paths = [
        prices_figure(ts, hours, risky, out_dir / "prices.png"),
        liquidations_figure(ts, hours, out_dir / "liquidations.png"),
        pool_figure(ts, hours, config.symbols, out_dir / "pool.png"),
        health_figure(hf_histogram, hours, out_dir / "health_factor.png"),
        leverage_figure(ts, hours, out_dir / "leverage.png"),
        bad_debt_figure(ts, write_offs, hours, config, out_dir / "bad_debt.png"),
    ]
    if config.perps.enabled:
        paths += [
            perp_funding_figure(ts, hours, config, out_dir / "perp_funding.png"),
            perp_backstop_figure(ts, hours, config, out_dir / "perp_backstop.png"),
        ]
    return paths


def prices_figure(ts: pd.DataFrame, hours: pd.Series, risky: list[str], path: Path) -> Path:
    shown = risky[:4]
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.8 * len(shown) + 0.6), sharex=True, squeeze=False)
    for ax, s in zip(axes[:, 0], shown, strict=True):
        ax.plot(hours, ts[f"fundamental_{s}"], color="0.55", lw=1.2, ls="--", label="fundamental")
        ax.plot(hours, ts[f"price_{s}"], color="C3", lw=1.4, label="market")
        ax.plot(hours, ts[f"oracle_{s}"], color="C0", lw=1.0, drawstyle="steps-post", label="oracle")
        ax.set_ylabel(f"{s} (USD)")
        ax.legend(loc="best", fontsize=8)
    axes[0, 0].set_title("Market price vs fundamental vs oracle: the gap below the fundamental is forced selling")
    axes[-1, 0].set_xlabel("time (hours)")
    return _save(fig, path)


def liquidations_figure(ts: pd.DataFrame, hours: pd.Series, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.fill_between(hours, ts["liquidation_volume_usd"] / 1e6, step="post", color="C3", alpha=0.8)
    ax.set_ylabel("liquidated per step ($M repaid)")
    ax.set_xlabel("time (hours)")
    ax2 = ax.twinx()
    ax2.plot(hours, ts["n_liquidatable"], color="0.3", lw=1.0, label="liquidatable accounts")
    ax2.set_ylabel("liquidatable accounts")
    ax2.grid(False)
    ax2.legend(loc="upper right", fontsize=8)
    ax.set_title(
        f"Liquidations: {int(ts['n_liquidations'].sum())} events, ${ts['liquidation_volume_usd'].sum() / 1e6:,.1f}M repaid"
    )
    return _save(fig, path)


def pool_figure(ts: pd.DataFrame, hours: pd.Series, symbols: list[str], path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.6), sharex=True)
    for i, s in enumerate(symbols[:5]):
        ax1.plot(hours, ts[f"utilisation_{s}"], color=f"C{i}", label=s)
        ax2.plot(hours, 100 * ts[f"borrow_rate_{s}"], color=f"C{i}", label=s)
    ax1.set_ylabel("utilisation")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(loc="best", fontsize=8)
    ax1.set_title("Lending pool: utilisation and the kinked borrow rate it drives")
    ax2.set_ylabel("borrow rate (%/yr)")
    ax2.set_xlabel("time (hours)")
    return _save(fig, path)


def health_figure(hf_histogram: np.ndarray, hours: pd.Series, path: Path) -> Path:
    """Share of indebted accounts per health-factor bin over time (heatmap), with the liquidation line at 1."""
    hist = np.asarray(hf_histogram, dtype=float)
    edges = np.concatenate([[0.0], HF_BIN_EDGES[:-1], [HF_BIN_EDGES[-2] * 1.1]])
    totals = hist.sum(axis=1, keepdims=True)
    share = np.divide(hist, totals, out=np.zeros_like(hist), where=totals > 0)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    y = np.clip(edges, 0.4, None)
    mesh = ax.pcolormesh(
        np.concatenate([hours.to_numpy(), [hours.iloc[-1] + (hours.iloc[1] - hours.iloc[0] if len(hours) > 1 else 1)]]),
        y,
        share.T,
        cmap="mako_r",
        shading="flat",
        vmin=0,
        vmax=max(float(share.max()), 1e-9),
    )
    ax.set_yscale("log")
    ticks = [0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks[:-1]] + ["≥5"])
    ax.minorticks_off()
    ax.axhline(1.0, color="C3", lw=1.5, ls="--", label="HF = 1: liquidatable below")
    ax.set_ylabel("health factor")
    ax.set_xlabel("time (hours)")
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(mesh, ax=ax, label="share of indebted accounts")
    ax.set_title("Health-factor distribution over time")
    return _save(fig, path)


def leverage_figure(ts: pd.DataFrame, hours: pd.Series, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.plot(hours, ts["aggregate_leverage"], color="C2")
    ax.set_ylabel("collateral / equity")
    ax.set_xlabel("time (hours)")
    ax2 = ax.twinx()
    ax2.plot(hours, ts["n_active_traders"], color="0.5", lw=1.0, ls=":", label="traders with positions")
    ax2.set_ylabel("traders with positions")
    ax2.grid(False)
    ax2.legend(loc="lower left", fontsize=8)
    ax.set_title("Aggregate leverage of all accounts (at oracle prices)")
    return _save(fig, path)


def bad_debt_figure(
    ts: pd.DataFrame, write_offs: pd.DataFrame, hours: pd.Series, config: ModelConfig, path: Path
) -> Path:
    fig, ax = plt.subplots(figsize=(10, 3.6))
    steps = ts["step"].to_numpy()
    bearers = {
        "reserves_usd": "protocol reserves",
        "lenders_usd": "lenders (socialised)",
        "dilution_usd": "dilution (minted)",
    }
    stacks = []
    for col in bearers:
        per_step = write_offs.groupby("step")[col].sum() if len(write_offs) else pd.Series(dtype=float)
        stacks.append(per_step.reindex(steps, fill_value=0.0).cumsum().to_numpy() / 1e6)
    ax.stackplot(hours, *stacks, labels=list(bearers.values()), colors=["C0", "C3", "C4"], alpha=0.85)
    ax.set_ylabel("cumulative bad debt ($M)")
    ax.set_xlabel("time (hours)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(
        f"Bad debt and who bore it (policy: {config.pool.bad_debt_policy}): ${ts['bad_debt_usd'].iloc[-1] / 1e6:,.2f}M"
    )
    return _save(fig, path)


def zoom_hours(ts: pd.DataFrame, config: ModelConfig) -> tuple[float, float] | None:
    """The time range (hours) of the perp figures' zoom column: `ZOOM_BEFORE_STEPS` before the first scripted shock
    to `ZOOM_AFTER_STEPS` after the last one ends, clipped to the run; None without a shock in the run."""
    last = int(ts["step"].iloc[-1]) if len(ts) else 0
    window = shock_window(scripted_shocks(config.scenario.events), last_step=last)
    if window is None:
        return None
    hours_per_step = config.market.step_seconds / 3600.0
    start = max(0, window.onset - ZOOM_BEFORE_STEPS)
    stop = min(last, window.end + ZOOM_AFTER_STEPS)
    return start * hours_per_step, stop * hours_per_step


def _columns(n_rows: int, zoom: tuple[float, float] | None, height: float) -> tuple[plt.Figure, np.ndarray]:
    """Rows of axes in one column (the whole run), or two (the whole run, then the zoom on the shock)."""
    ncols = 1 if zoom is None else 2
    fig, axes = plt.subplots(
        n_rows,
        ncols,
        figsize=(10 if zoom is None else 13, height),
        sharex="col",
        squeeze=False,
        gridspec_kw={"width_ratios": (1.0,) if zoom is None else (1.25, 1.0)},
    )
    axes[0, 0].set_title("whole run", fontsize=10, loc="left")
    if zoom is not None:
        axes[0, 1].set_title(f"around the shock ({zoom[0]:.1f}-{zoom[1]:.1f} h)", fontsize=10, loc="left")
        for ax in axes[:, 1]:
            ax.set_xlim(*zoom)
    for ax in axes[-1, :]:
        ax.set_xlabel("time (hours)")
    return fig, axes


def _shock_bands(axes: np.ndarray, config: ModelConfig) -> None:
    hours_per_step = config.market.step_seconds / 3600.0
    for start, duration in scripted_shocks(config.scenario.events):
        for ax in axes.flat:
            ax.axvspan(start * hours_per_step, (start + duration) * hours_per_step, color="0.85", alpha=0.5, lw=0)


def perp_funding_figure(ts: pd.DataFrame, hours: pd.Series, config: ModelConfig, path: Path) -> Path:
    """Per risky asset (up to four): the perp's mark and index price (start = 100) and the premium index (percent),
    over the whole run and zoomed on the shock; below, across the width, the funding rate paid per funding period
    (percent; it changes only at the end of a period, so a zoom would show one flat step)."""
    shown = config.symbols[1:5]
    zoom = zoom_hours(ts, config)
    ncols = 1 if zoom is None else 2
    # constrained layout: the rows need different gaps (the full-width row below has its own title)
    fig = plt.figure(figsize=(10 if zoom is None else 13, 9.0), layout="constrained")
    grid = fig.add_gridspec(3, ncols, width_ratios=(1.0,) if zoom is None else (1.25, 1.0))
    funding_ax = fig.add_subplot(grid[2, :])
    axes = np.empty((2, ncols), dtype=object)
    for col in range(ncols):
        axes[0, col] = fig.add_subplot(grid[0, col], sharex=funding_ax if col == 0 else None)
        axes[1, col] = fig.add_subplot(grid[1, col], sharex=axes[0, col])
        axes[0, col].tick_params(labelbottom=False)
    axes[0, 0].set_title("whole run", fontsize=10, loc="left")
    if zoom is not None:
        axes[0, 1].set_title(f"around the shock ({zoom[0]:.1f}-{zoom[1]:.1f} h)", fontsize=10, loc="left")
        axes[1, 1].set_xlim(*zoom)
        axes[1, 1].set_xlabel("time (hours)")
    _shock_bands(np.append(axes.ravel(), funding_ax), config)
    for col in range(ncols):
        price_ax, premium_ax = axes[:, col]
        for i, s in enumerate(shown):
            base = float(ts[f"index_{s}"].iloc[0])
            price_ax.plot(hours, 100 * ts[f"index_{s}"] / base, color=f"C{i}", lw=1.0, ls="--", label=f"{s} index")
            price_ax.plot(hours, 100 * ts[f"mark_{s}"] / base, color=f"C{i}", lw=1.4, label=f"{s} mark")
            premium_ax.plot(hours, 100 * ts[f"premium_{s}"], color=f"C{i}", lw=1.3, label=s)
        premium_ax.axhline(0.0, color="0.3", lw=0.8)
    for i, s in enumerate(shown):
        funding_ax.plot(hours, 100 * ts[f"funding_rate_{s}"], color=f"C{i}", lw=1.5, drawstyle="steps-post", label=s)
    funding_ax.axhline(0.0, color="0.3", lw=0.8)
    period_h = config.perps.funding_interval_steps * config.market.step_seconds / 3600.0
    axes[0, 0].set_ylabel("price (index at start = 100)")
    axes[1, 0].set_ylabel("premium index (%)")
    funding_ax.set_ylabel(f"funding rate paid\n(% per {period_h:g} h period)")
    funding_ax.set_xlabel("time (hours)")
    funding_ax.set_title("funding rate paid at each period's end (whole run)", fontsize=10, loc="left")
    axes[0, -1].legend(loc="best", fontsize=8, ncol=len(shown))
    funding_ax.legend(loc="best", fontsize=8)
    peak = 100 * max(float(ts[f"premium_{s}"].abs().max()) for s in shown)
    fig.suptitle(
        f"Perpetual futures: the mark against the index, the premium (largest |premium| {peak:.1f}%) and the "
        "funding it sets (> 0: longs pay shorts)",
        fontsize=style.FIGURE_TITLE_SIZE,
    )
    return style.save(fig, path)


def perp_backstop_figure(ts: pd.DataFrame, hours: pd.Series, config: ModelConfig, path: Path) -> Path:
    """The perp venue's loss waterfall over time: insurance fund, backstop vault equity and cumulative perp bad debt
    ($M, top); liquidated perp volume per step ($M, bars) and the cumulative ADL volume ($M, steps, × at every
    step with ADL fills; bottom). The whole run, and a zoom on the shock."""
    zoom = zoom_hours(ts, config)
    fig, axes = _columns(2, zoom, 7.0)
    _shock_bands(axes, config)
    adl_cum = ts["adl_volume_usd"].cumsum() / 1e6
    adl_steps = np.flatnonzero(ts["n_adl"].to_numpy() > 0).tolist()
    width = config.market.step_seconds / 3600.0
    for col in range(axes.shape[1]):
        top, bottom = axes[:, col]
        top.plot(hours, ts["insurance_fund_usd"] / 1e6, color="C2", lw=1.6, label="insurance fund")
        top.plot(hours, ts["vault_equity_usd"] / 1e6, color="C9", lw=1.4, label="backstop vault equity")
        top.plot(hours, ts["perp_bad_debt_usd"] / 1e6, color="C3", lw=1.4, ls="--", label="perp bad debt so far")
        top.axhline(0.0, color="0.3", lw=0.8)
        bottom.bar(
            hours,
            ts["perp_liquidation_volume_usd"] / 1e6,
            width=width,
            align="edge",
            color="0.35",
            linewidth=0,  # the theme's white bar edges would hide one-step bars over a whole run
            label="liquidated perp volume per step",
        )
        right = bottom.twinx()
        right.grid(False)
        right.plot(
            hours,
            adl_cum,
            color="C3",
            lw=1.5,
            drawstyle="steps-post",
            marker="x",
            markevery=adl_steps,
            label="ADL volume so far (× a step with ADL fills)",
        )
        right.set_ylim(0, max(1.0, 1.15 * float(adl_cum.iloc[-1])) if len(adl_cum) else 1.0)
        if col == axes.shape[1] - 1:
            right.set_ylabel("ADL volume so far ($M)")
            handles = bottom.get_legend_handles_labels()
            extra = right.get_legend_handles_labels()
            bottom.legend(handles[0] + extra[0], handles[1] + extra[1], loc="center right", fontsize=8)
    axes[0, 0].set_ylabel("$M")
    axes[1, 0].set_ylabel("liquidated per step ($M)")
    axes[0, -1].legend(loc="best", fontsize=8)
    fund = ts["insurance_fund_usd"].to_numpy(dtype=float)
    drawdown = float(np.max(np.maximum.accumulate(fund) - fund)) if len(fund) else 0.0
    fig.suptitle(
        f"Who paid for perp losses: insurance fund drawdown ${drawdown / 1e6:,.2f}M; {int(ts['n_adl'].sum())} ADL "
        f"fills, ${ts['adl_volume_usd'].sum() / 1e6:,.1f}M; perp bad debt ${ts['perp_bad_debt_usd'].iloc[-1] / 1e6:,.2f}M",
        fontsize=style.FIGURE_TITLE_SIZE,
    )
    return _save(fig, path)
