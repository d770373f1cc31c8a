"""Contagion figures (PNG): cascade trees, cascade-size CCDF, the exposure network coloured by liquidation, DebtRank
against size, and the contagion study's panels. Each function takes data and a path and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
import seaborn as sns

from abm.analysis import style
from abm.contagion.cascade import main_parent_forest
from abm.contagion.exposure import asset_node as asset_node_id

LIQUIDATED = "#c0392b"
SPARED = "#95a5a6"


# --- cascade trees ---------------------------------------------------------------------------------------------


def tree_layout(tree: nx.DiGraph, root: int) -> dict[int, tuple[float, float]]:
    """Tidy top-down layout of a tree: y = -depth, leaves spread evenly left to right, parents centred."""
    pos: dict[int, tuple[float, float]] = {}
    next_x = [0.0]

    def place(v: int, depth: int) -> float:
        kids = sorted(tree.successors(v))
        if not kids:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(k, depth + 1) for k in kids]
            x = (min(xs) + max(xs)) / 2.0
        pos[v] = (x, -float(depth))
        return x

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * tree.number_of_nodes() + 100))
    try:
        place(root, 0)
    finally:
        sys.setrecursionlimit(limit)
    return pos


def draw_cascade_trees(graph: nx.DiGraph, path: str | Path, n: int = 4, title: str = "") -> Path:
    """The `n` largest cascades (trees of the main-parent forest), one panel each: nodes are liquidations
    (size ~ sqrt(repaid USD), colour = endogenous share of the lost health), edges point from cause to effect."""
    forest = main_parent_forest(graph)
    roots = [v for v in forest.nodes if forest.in_degree(v) == 0]
    trees = sorted(((r, nx.descendants(forest, r) | {r}) for r in roots), key=lambda item: (-len(item[1]), item[0]))[:n]
    n_panels = max(len(trees), 1)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 4.2), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, (root, nodes) in zip(axes[0], trees, strict=False):
        tree = forest.subgraph(nodes).copy()
        pos = tree_layout(tree, root)
        repaid = np.array([tree.nodes[v].get("repaid_usd", 0.0) for v in tree.nodes])
        leaves = sum(1 for v in tree.nodes if tree.out_degree(v) == 0)
        shrink = min(1.0, 10.0 / max(leaves, 1))  # wide trees get smaller nodes
        size = shrink * (30 + 400 * np.sqrt(repaid / max(repaid.max(), 1e-9)))
        share = [float(tree.nodes[v].get("endogenous_share", 0.0)) for v in tree.nodes]
        nx.draw_networkx_edges(tree, pos, ax=ax, edge_color="#7f8c8d", arrows=True, arrowsize=8, width=0.8)
        nx.draw_networkx_nodes(
            tree, pos, ax=ax, node_size=size, node_color=share, cmap=cmap, vmin=0, vmax=1, edgecolors="k",
            linewidths=0.4,
        )  # fmt: skip
        steps = [tree.nodes[v].get("step", 0) for v in tree.nodes]
        depth = int(-min(y for _, y in pos.values()))
        ax.set_title(
            f"{len(nodes)} liquidations, depth {depth}\nsteps {min(steps)}-{max(steps)}, "
            f"${repaid.sum() / 1e6:.1f}M repaid",
            fontsize=9,
        )
        ax.set_axis_off()
    if not trees:
        axes[0][0].text(0.5, 0.5, "no liquidations", ha="center", va="center")
        axes[0][0].set_axis_off()
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[0].tolist(), shrink=0.7, label="endogenous share of lost health")
    default = "largest liquidation cascades (root at top; edges: sale -> liquidation it caused)"
    fig.suptitle(title or default, fontsize=style.FIGURE_TITLE_SIZE, y=1.06)
    return style.save(fig, path)


# --- cascade-size distribution ---------------------------------------------------------------------------------


def ccdf(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, P(X >= x)) at the distinct values of a sample."""
    v = np.sort(np.asarray(values, dtype=float))
    x, first = np.unique(v, return_index=True)
    return x, 1.0 - first / len(v)


def plot_cascade_ccdf(sizes: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Log-log CCDF P(size >= s) of cascade sizes (events per tree), one line per group (e.g. preset)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    palette = sns.color_palette("colorblind", len(sizes))
    for color, (label, vals) in zip(palette, sizes.items(), strict=True):
        vals = np.asarray(vals, dtype=float)
        if len(vals) == 0:
            continue
        x, p = ccdf(vals)
        ax.step(x, p, where="post", color=color, lw=1.6, label=f"{label} ({len(vals)} cascades, max {int(vals.max())})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cascade size s (liquidations in the tree)")
    ax.set_ylabel("P(size >= s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "cascade-size distribution (CCDF, pooled over seeds)")
    return style.save(fig, path)


# --- exposure network ------------------------------------------------------------------------------------------


def draw_exposure_network(
    graph: nx.Graph,
    path: str | Path,
    liquidated: set[int] | None = None,
    max_accounts: int = 250,
    seed: int = 0,
    title: str = "",
    highlight_asset: str | None = None,
) -> Path:
    """Two panels: (a) accounts and the risky assets they hold (edge width ~ exposure), (b) the sparse account
    projection (overlap edges). Accounts are red if liquidated (by `liquidated` account ids, default the graph's
    `liquidated` flags), size ~ sqrt(equity). At most `max_accounts` accounts (the largest by exposure).
    highlight_asset: a symbol whose holdings are drawn in orange (e.g. the shocked asset)."""
    accounts = [
        v for v, d in graph.nodes(data=True) if d.get("kind") == "account" and d.get("gross_exposure_usd", 0.0) > 0
    ]
    accounts.sort(key=lambda v: -graph.nodes[v]["gross_exposure_usd"])
    accounts = accounts[:max_accounts]
    keep = set(accounts)
    if liquidated is None:
        flagged = {v for v in accounts if graph.nodes[v].get("liquidated")}
    else:
        flagged = {v for v in accounts if graph.nodes[v].get("account") in liquidated}
    assets = [v for v, d in graph.nodes(data=True) if d.get("kind") == "asset" and d.get("symbol") != "USD"]
    bip = nx.Graph()
    bip.add_nodes_from(accounts + assets)
    for u, v, d in graph.edges(data=True):
        if d.get("kind") == "exposure":
            a, b = (u, v) if u in keep else (v, u)
            if a in keep and b in assets:
                bip.add_edge(a, b, weight=d["weight"])
    proj = nx.Graph()
    proj.add_nodes_from(accounts)
    proj.add_edges_from(
        (u, v, d) for u, v, d in graph.edges(data=True) if d.get("kind") == "overlap" and u in keep and v in keep
    )
    equity = np.array([max(graph.nodes[v].get("equity", 0.0), 0.0) for v in accounts])
    size = 8 + 140 * np.sqrt(equity / max(equity.max(), 1e-9))
    colors = [LIQUIDATED if v in flagged else SPARED for v in accounts]
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    # (a) bipartite
    init = {a: (np.cos(2 * np.pi * i / len(assets)), np.sin(2 * np.pi * i / len(assets))) for i, a in enumerate(assets)}
    pos = nx.spring_layout(bip, pos=init or None, fixed=assets or None, seed=seed, weight=None, k=0.25)
    ax = axes[0]
    widths = np.array([d["weight"] for *_, d in bip.edges(data=True)])
    widths = 0.2 + 2.0 * np.sqrt(widths / max(widths.max(), 1e-9)) if len(widths) else widths
    hot = asset_node_id(highlight_asset) if highlight_asset else None
    edge_colors = ["#e67e22" if hot in (u, v) else "#bdc3c7" for u, v in bip.edges()]
    nx.draw_networkx_edges(bip, pos, ax=ax, width=widths, edge_color=edge_colors, alpha=0.6)
    nx.draw_networkx_nodes(bip, pos, nodelist=accounts, node_size=size, node_color=colors, ax=ax, linewidths=0)
    nx.draw_networkx_nodes(bip, pos, nodelist=assets, node_shape="s", node_size=500, node_color="#2c3e50", ax=ax)
    nx.draw_networkx_labels(
        bip, pos, labels={a: graph.nodes[a]["symbol"] for a in assets}, font_color="white", font_size=7, ax=ax
    )
    hold = f"; orange: holdings of {highlight_asset}" if highlight_asset else ""
    ax.set_title(f"(a) accounts and the assets they hold{hold}", fontsize=10)
    ax.set_axis_off()
    # (b) projection
    ax = axes[1]
    pos2 = nx.kamada_kawai_layout(proj, weight=None) if proj.number_of_edges() else nx.circular_layout(proj)
    ow = np.array([d.get("overlap_usd", 0.0) for *_, d in proj.edges(data=True)])
    ow = 0.2 + 1.5 * np.sqrt(ow / max(ow.max(), 1e-9)) if len(ow) else ow
    nx.draw_networkx_edges(proj, pos2, ax=ax, width=ow, edge_color="#bdc3c7", alpha=0.5)
    nx.draw_networkx_nodes(proj, pos2, nodelist=accounts, node_size=size, node_color=colors, ax=ax, linewidths=0)
    ax.set_title(f"(b) account projection: k = {graph.graph.get('k', '?')} strongest overlaps each", fontsize=10)
    ax.set_axis_off()
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", color=LIQUIDATED, label=f"liquidated ({len(flagged)})"),
        Line2D([], [], marker="o", ls="", color=SPARED, label=f"not liquidated ({len(accounts) - len(flagged)})"),
        Line2D([], [], marker="s", ls="", color="#2c3e50", label="asset"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(title or "exposure network (size ~ sqrt(equity))", fontsize=style.FIGURE_TITLE_SIZE)
    return style.save(fig, path)


# --- DebtRank against size ---------------------------------------------------------------------------------------


def plot_debtrank_vs_size(
    table: pd.DataFrame, path: str | Path, liquidated: str = "liquidated", title: str = ""
) -> Path:
    """Each account's DebtRank (share of the others' equity its default would destroy) against its gross risky
    exposure, coloured by whether it was liquidated."""
    t = table[(table["gross_exposure_usd"] > 0) & (table["equity"] > 0)].copy()
    floor = 1e-7
    t["debtrank_plot"] = t["debtrank"].clip(lower=floor)
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for flag, color, label in ((False, SPARED, "not liquidated"), (True, LIQUIDATED, "liquidated")):
        sub = t[t[liquidated].astype(bool) == flag]
        ax.scatter(
            sub["gross_exposure_usd"], sub["debtrank_plot"], s=14, c=color, alpha=0.75, label=f"{label} ({len(sub)})",
            edgecolors="none",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gross risky exposure of the account (USD)")
    ax.set_ylabel(f"DebtRank (clipped at {floor:g})")
    if len(t) > 2:
        rho = t["gross_exposure_usd"].corr(t["debtrank"], method="spearman")
        ax.text(0.02, 0.97, f"Spearman rho = {rho:.2f}", transform=ax.transAxes, va="top", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "systemic importance (DebtRank) against size", fontsize=style.FIGURE_TITLE_SIZE)
    return style.save(fig, path)


# --- study panels -------------------------------------------------------------------------------------------------


def plot_metric_lines(
    runs: pd.DataFrame,
    x: str,
    metrics: Mapping[str, str],
    path: str | Path,
    hue: str | None = None,
    logx: bool = False,
    xlabel: str | None = None,
    title: str = "",
) -> Path:
    """One panel per metric: mean over seeds with a 95% bootstrap band against `x` (lines by `hue`)."""
    n = len(metrics)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.5), squeeze=False)
    for ax, (col, label) in zip(axes[0], metrics.items(), strict=True):
        sns.lineplot(
            data=runs, x=x, y=col, hue=hue, marker="o", ax=ax, errorbar=("ci", 95), n_boot=300, seed=0,
            palette="viridis" if hue else None, legend=ax is axes[0][0],
        )  # fmt: skip
        ax.set_ylabel(label)
        ax.set_xlabel(xlabel or x)
        if logx:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=style.FIGURE_TITLE_SIZE)
    fig.tight_layout()
    return style.save(fig, path)


def plot_metric_bars(
    runs: pd.DataFrame,
    x: str,
    metrics: Mapping[str, str],
    path: str | Path,
    hue: str | None = None,
    title: str = "",
    logy: Sequence[str] = (),
) -> Path:
    """One panel per metric: mean over seeds with 95% bootstrap error bars, bars by `x` (and `hue`); metrics in
    `logy` on a log axis."""
    n = len(metrics)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.6), squeeze=False)
    for ax, (col, label) in zip(axes[0], metrics.items(), strict=True):
        sns.barplot(
            data=runs, x=x, y=col, hue=hue, ax=ax, errorbar=("ci", 95), n_boot=300, seed=0, palette="Set2",
            legend=ax is axes[0][0],
        )  # fmt: skip
        ax.set_ylabel(label)
        ax.set_xlabel("")
        if col in logy:
            ax.set_yscale("log")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(True, axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=style.FIGURE_TITLE_SIZE)
    fig.tight_layout()
    return style.save(fig, path)


def plot_hawkes_vs_truth(table: pd.DataFrame, path: str | Path, estimates: Mapping[str, str]) -> Path:
    """Hawkes estimates (y) against the cascade graph's branching ratio (x), one panel per estimator, coloured by
    preset; the band is |estimate - truth| <= 0.1."""
    n = len(estimates)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    grid = np.linspace(0, 1, 50)
    for ax, (col, label) in zip(axes[0], estimates.items(), strict=True):
        ax.fill_between(grid, grid - 0.1, grid + 0.1, color="#2ecc71", alpha=0.15, label="within 0.1")
        ax.plot(grid, grid, color="k", lw=0.8)
        sns.scatterplot(data=table, x="branching_ratio", y=col, hue="preset", ax=ax, s=35, palette="colorblind")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("branching ratio from the cascade graph (truth)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        legend = ax.get_legend()
        if ax is not axes[0][0] and legend is not None:
            legend.remove()
    fig.suptitle(
        "Hawkes branching ratio from liquidation times alone vs the cascade graph", fontsize=style.FIGURE_TITLE_SIZE
    )
    fig.tight_layout()
    return style.save(fig, path)
