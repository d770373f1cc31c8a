"""Figures of one run (seaborn/matplotlib; style and saving from `abm.analysis.style`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn  # noqa: F401  (registers the seaborn colormaps used by name, e.g. "mako_r")

from abm.analysis import style
from abm.config import ModelConfig
from abm.recording.recorder import HF_BIN_EDGES


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
    """Write the six standard figures of a run into `out_dir`; return their paths."""
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
