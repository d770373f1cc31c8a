"""Matplotlib charts of the teaching page's panels, drawn from `Snapshot`s (no Solara here).

Each chart is built once per run (figure, axes, legend, empty artists) and then only updated: `update(snaps)` moves
the data into the existing artists and returns PNG bytes. Re-using the figure keeps matplotlib's text-layout cache
warm, which halves the cost of a frame compared with building a new figure each step. Figures are plain
`matplotlib.figure.Figure`s (no pyplot state, nothing to close); a chart must not be drawn from two threads at once
(`Charts` holds a lock). The time axis spans the whole run, so lines grow across a fixed frame.

`Charts` bundles the five panels of one simulation (seven when it runs the perpetual venue: `PERP_PANEL_KEYS`); the
module-level functions draw one frame from scratch (for notebooks and tests).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colorbar import Colorbar
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from abm.app.sim import Snapshot
from abm.contagion.cascade import cascade_graph, main_parent_forest

WIDTH_IN, HEIGHT_IN, DPI = 4.5, 2.45, 100
FONT = 8.5
RUN_COLOURS = ("tab:blue", "tab:red")
HF_BINS = np.geomspace(0.5, 5.0, 31)
MARGINS = {"left": 0.135, "right": 0.865, "bottom": 0.19, "top": 0.96}
PNG_OPTIONS = {"compress_level": 1}  # a local page: bigger files, much faster encoding
PANEL_KEYS = ("price", "liquidations", "pool", "hf", "cascade")
PERP_PANEL_KEYS = ("funding", "backstop")  # only for runs with the perpetual venue
PERP_HEIGHT_IN = 3.0  # the two perp panels share a grid row: both this tall (the funding panel has two plots)
# The cascade graph's dot colour: the share of a liquidation's damage that earlier liquidations' sales did, from grey
# (none) to red (all). Orange by a fifth, so a crash whose sales did 10-30% of the damage shows; red by a half, the
# default `contagion.endogenous_share`, from which a dot is joined to the liquidation that pushed it hardest.
SHARE_CMAP = LinearSegmentedColormap.from_list(
    "endogenous_share", [(0.0, "0.6"), (0.2, "#f39c12"), (0.5, "tab:red"), (1.0, "#6b0000")]
)
SHARE_LABEL = "share of its damage done by\nearlier liquidations' sales"


def share_text(share: float) -> str:
    """A share (fraction) as the page writes it: '11.8%', or '–' when there is none (NaN)."""
    return "–" if np.isnan(share) else f"{share:.1%}"


def panel_order(has_perps: bool) -> tuple[str, ...]:
    """The panels in the order the page shows them: the perp panels, when there are any, after the first row."""
    return (*PANEL_KEYS[:2], *PERP_PANEL_KEYS, *PANEL_KEYS[2:]) if has_perps else PANEL_KEYS


def _figure(ncols: int = 1, height_in: float = HEIGHT_IN) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(fig)  # a canvas of its own: savefig then re-uses one renderer (and its text-layout cache)
    axes = fig.subplots(1, ncols, sharey=True, squeeze=False)[0]
    fig.subplots_adjust(wspace=0.08, **_margins(height_in))
    for ax in axes:
        ax.tick_params(labelsize=FONT)
        ax.grid(True, lw=0.4, alpha=0.4)
    return fig, list(axes)


def _twin(ax: Axes) -> Axes:
    right = ax.twinx()
    right.tick_params(labelsize=FONT)
    return right


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs=PNG_OPTIONS)
    return buf.getvalue()


def _margins(height_in: float) -> dict[str, float]:
    """`MARGINS` for a figure `height_in` tall: the same space in inches below and above the plot."""
    scale = HEIGHT_IN / height_in
    return {**MARGINS, "bottom": MARGINS["bottom"] * scale, "top": 1.0 - (1.0 - MARGINS["top"]) * scale}


WINDOW_H = 24.0  # runs longer than this show a time axis that grows with the run (to 1.25 x the time so far)
NICE_BIN_MINUTES = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440)


def _hours_axis(ax: Axes, total_hours: float) -> None:
    ax.set_xlim(0.0, min(total_hours, WINDOW_H))
    ax.set_xlabel("time (hours)", fontsize=FONT)


def _follow_time(ax: Axes, snaps: Sequence[Snapshot]) -> None:
    """Keep the whole run in view for runs up to a day; for longer runs, widen the axis as the run goes on."""
    a = snaps[0]
    total = a.total_steps * a.step_seconds / 3600.0
    now = a.step * a.step_seconds / 3600.0
    ax.set_xlim(0.0, min(total, max(WINDOW_H, 1.25 * now)))


def bin_minutes(total_steps: int, step_seconds: float, n_bins: int = 150) -> int:
    """A round bin width (minutes) giving about `n_bins` bars over a run (10 min for a day of one-minute steps)."""
    wanted = total_steps * step_seconds / 60.0 / n_bins
    return next((m for m in NICE_BIN_MINUTES if m >= wanted), NICE_BIN_MINUTES[-1])


def _shade(ax: Axes, windows: Sequence[tuple[float, float]]) -> None:
    for start, end in windows:
        ax.axvspan(start, end, color="0.85", alpha=0.6, lw=0, zorder=0)


def _top(values: Sequence[np.ndarray], floor: float, scale: float = 1.0) -> float:
    peak = max((float(np.max(v, initial=0.0)) for v in values), default=0.0) * scale
    return max(floor, 1.15 * peak)


def _padded(lo: float, hi: float, frac: float = 0.06) -> tuple[float, float]:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return 0.0, 1.0
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.02
    return lo - frac * span, hi + frac * span


class Chart:
    """A figure built once and updated each frame."""

    fig: Figure

    def update(self, snaps: Sequence[Snapshot]) -> bytes:
        self._update(snaps)
        return _png(self.fig)

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        raise NotImplementedError


class PriceChart(Chart):
    """Market, fundamental and oracle price of one asset (run B: its market and fundamental price, red)."""

    def __init__(self, asset: str, labels: Sequence[str], total_hours: float, shocks: Sequence[tuple[float, float]]):
        self.asset = asset
        self.fig, (ax,) = _figure()
        self.ax = ax
        _shade(ax, shocks)
        compare = len(labels) > 1
        self.fundamental = [ax.plot([], [], color="0.3", ls="--", lw=1.1, label="fundamental")[0]]
        self.oracle: Line2D | None = None
        if not compare:
            self.oracle = ax.step([], [], where="post", color="tab:orange", lw=1.1, label="oracle")[0]
        self.market = [
            ax.plot([], [], color=RUN_COLOURS[0], lw=1.5, label=f"market{', ' + labels[0] if compare else ''}")[0]
        ]
        for label, colour in zip(labels[1:], RUN_COLOURS[1:], strict=False):
            self.fundamental.append(ax.plot([], [], color=colour, ls=":", lw=1.0, label=f"fund., {label}")[0])
            self.market.append(ax.plot([], [], color=colour, lw=1.5, label=f"market, {label}")[0])
        _hours_axis(ax, total_hours)
        ax.set_ylabel(f"{asset} price (USD)", fontsize=FONT)
        ax.legend(fontsize=FONT - 1, loc="upper right", framealpha=0.8)

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        a = self.asset
        lo, hi = np.inf, -np.inf
        for i, snap in enumerate(snaps):
            h = snap.hours
            for line, col in ((self.market[i], f"price_{a}"), (self.fundamental[i], f"fundamental_{a}")):
                y = snap.series.get(col, np.zeros(0))
                line.set_data(h[: len(y)], y)
                if len(y):
                    lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
        if self.oracle is not None:
            y = snaps[0].series.get(f"oracle_{a}", np.zeros(0))
            self.oracle.set_data(snaps[0].hours[: len(y)], y)
        self.ax.set_ylim(*_padded(lo, hi))
        _follow_time(self.ax, snaps)


class LiquidationChart(Chart):
    """Liquidations per time bin (bars, left axis) and cumulative bad debt in USD millions (lines, right axis).

    One-step bars would be thinner than a pixel over a whole run, so steps are summed in bins of about 1/150 of the
    run (10 steps for a one-day run of one-minute steps).
    """

    def __init__(
        self, labels: Sequence[str], total_steps: int, step_seconds: float, shocks: Sequence[tuple[float, float]]
    ):
        self.bin_steps = max(1, round(bin_minutes(total_steps, step_seconds) * 60.0 / step_seconds))
        self.hours_per_step = step_seconds / 3600.0
        self.fig, (ax,) = _figure()
        self.ax = ax
        _shade(ax, shocks)
        self.right = _twin(ax)
        compare = len(labels) > 1
        self.bars = []
        self.bad = []
        for i, label in enumerate(labels):
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            first = i == 0
            self.bars.append(
                ax.stairs([0.0], [0.0, 1e-9], fill=first, color=colour, alpha=0.55 if first else 0.9, lw=0.9)
            )
            suffix = f", {label}" if compare else ""
            self.bad.append(
                self.right.plot(
                    [],
                    [],
                    color="darkred" if first else colour,
                    lw=1.6,
                    ls="-" if first else "--",
                    label=f"bad debt{suffix}",
                )[0]
            )
        _hours_axis(ax, total_steps * self.hours_per_step)
        minutes = self.bin_steps * step_seconds / 60.0
        per = f"{minutes / 60:.0f} h" if minutes >= 60 else f"{minutes:.0f} min"
        ax.set_ylabel(f"liquidations per {per}", fontsize=FONT)
        self.right.set_ylabel("cumulative bad debt ($M)", fontsize=FONT)
        self.right.legend(fontsize=FONT - 1, loc="upper right", framealpha=0.8)

    def binned(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        """Liquidations summed per bin, and the bins' edges in hours."""
        counts = snap.series["n_liquidations"]
        starts = np.arange(0, len(counts), self.bin_steps)
        sums = np.add.reduceat(counts, starts) if len(counts) else np.zeros(0)
        edges = np.append(starts, starts[-1] + self.bin_steps) * self.hours_per_step if len(starts) else np.zeros(1)
        return sums, edges

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        peak = 0.0
        for bars, line, snap in zip(self.bars, self.bad, snaps, strict=False):
            sums, edges = self.binned(snap)
            if len(sums):
                bars.set_data(sums, edges)
                peak = max(peak, float(sums.max()))
            line.set_data(snap.hours, snap.series["bad_debt_usd"] / 1e6)
        self.ax.set_ylim(0, max(5.0, 1.15 * peak))
        self.right.set_ylim(0, _top([s.series["bad_debt_usd"] for s in snaps], 1.0, 1e-6))
        _follow_time(self.ax, snaps)


class PoolChart(Chart):
    """Utilisation of the stablecoin reserve (left axis) and its borrow rate (right axis), in percent."""

    def __init__(self, usd: str, labels: Sequence[str], total_hours: float, kink: float | None):
        self.usd = usd
        self.fig, (ax,) = _figure()
        self.ax = ax
        self.right = _twin(ax)
        compare = len(labels) > 1
        self.util, self.rate = [], []
        for i, label in enumerate(labels):
            ls = "-" if i == 0 else "--"
            suffix = f", {label}" if compare else ""
            self.util.append(ax.plot([], [], color="tab:green", ls=ls, lw=1.5, label=f"utilisation{suffix}")[0])
            self.rate.append(
                self.right.plot([], [], color="tab:purple", ls=ls, lw=1.3, label=f"borrow rate{suffix}")[0]
            )
        if kink is not None:
            ax.axhline(100 * kink, color="tab:green", lw=0.8, ls=":", alpha=0.8)
            ax.text(
                0.01,
                100 * kink,
                " kink",
                color="tab:green",
                fontsize=FONT - 1,
                va="bottom",
                transform=ax.get_yaxis_transform(),
            )
        ax.set_ylim(0, 105)
        _hours_axis(ax, total_hours)
        ax.set_ylabel(f"{usd} lent out (%)", fontsize=FONT)
        self.right.set_ylabel("borrow rate (% per year)", fontsize=FONT)
        lines = self.util + self.rate
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=FONT - 1, loc="lower right", framealpha=0.8)

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        u, r = f"utilisation_{self.usd}", f"borrow_rate_{self.usd}"
        for util, rate, snap in zip(self.util, self.rate, snaps, strict=False):
            util.set_data(snap.hours, 100 * snap.series[u])
            rate.set_data(snap.hours, 100 * snap.series[r])
        self.right.set_ylim(0, _top([s.series[r] for s in snaps], 10.0, 100.0))
        _follow_time(self.ax, snaps)


class HealthChart(Chart):
    """Histogram of the health factors of accounts that owe something, with the liquidation line at 1."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.fig, (ax,) = _figure()
        self.ax = ax
        ax.axvspan(HF_BINS[0], 1.0, color="tab:red", alpha=0.08, lw=0)
        compare = len(labels) > 1
        self.hists = []
        for i, label in enumerate(labels):
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            first = i == 0
            self.hists.append(
                ax.stairs(
                    np.zeros(len(HF_BINS) - 1),
                    HF_BINS,
                    fill=first,
                    color=colour,
                    alpha=0.6 if first else 1.0,
                    lw=1.4,
                    label=label if compare else None,
                )
            )
        ax.axvline(1.0, color="tab:red", lw=1.8)
        ax.text(
            1.02,
            0.97,
            "liquidation line (HF = 1)",
            color="tab:red",
            fontsize=FONT - 0.5,
            va="top",
            transform=ax.get_xaxis_transform(),
        )
        self.note = ax.text(0.02, 0.86, "", ha="left", va="top", transform=ax.transAxes, fontsize=FONT, color="darkred")
        ax.set_xscale("log")
        ax.set_xlim(HF_BINS[0], HF_BINS[-1])
        ax.set_xticks([0.5, 0.75, 1, 1.5, 2, 3, 5], labels=["0.5", "0.75", "1", "1.5", "2", "3", "≥5"])
        ax.minorticks_off()
        ax.set_xlabel("health factor (collateral × threshold ÷ debt)", fontsize=FONT)
        ax.set_ylabel("accounts", fontsize=FONT)
        if compare:
            ax.legend(fontsize=FONT - 1, loc="center right", framealpha=0.8)

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        notes, peak = [], 0
        for hist, snap, label in zip(self.hists, snaps, self.labels, strict=False):
            counts, _ = np.histogram(np.clip(snap.hf, HF_BINS[0], HF_BINS[-1] * 0.999), bins=HF_BINS)
            hist.set_data(counts)
            peak = max(peak, int(counts.max(initial=0)))
            below = int(np.count_nonzero(snap.hf < 1.0))
            head = f"{label.split(' ')[0]}: " if len(self.labels) > 1 else ""
            notes.append(f"{head}{below} below 1")
        self.note.set_text("\n".join(notes))
        self.ax.set_ylim(0, max(5.0, 1.12 * peak))


def cascade_layout(snap: Snapshot) -> tuple[nx.DiGraph, nx.DiGraph, dict[int, tuple[float, float]], dict[int, int]]:
    """The cascade graph of a snapshot, its main-parent forest, node positions and generations.

    x = when the liquidation happened (hours); y = its generation: 0 if the market moved the account under on its
    own, else one more than the liquidation that pushed it hardest (its main parent). A small deterministic jitter
    separates events of the same step and generation.
    """
    events = pd.DataFrame(snap.events) if snap.events else pd.DataFrame({"event_id": []})
    g = cascade_graph(events, snap.edges)
    forest = main_parent_forest(g)
    generation: dict[int, int] = {}
    for node in sorted(forest.nodes):  # parents always have smaller ids (they happened earlier)
        parents = list(forest.predecessors(node))
        generation[node] = generation.get(parents[0], 0) + 1 if parents else 0
    hours_per_step = snap.step_seconds / 3600.0
    pos = {}
    for node, data in g.nodes(data=True):
        jitter = ((node * 2654435761) % 1000) / 1000.0 - 0.5  # Knuth's multiplicative hash: stable, spread out
        pos[node] = (float(data["step"]) * hours_per_step, generation[node] + 0.6 * jitter)
    return g, forest, pos, generation


class CascadeChart(Chart):
    """The cascade graph as it grows: dots are liquidations, coloured by the share of the account's damage that
    earlier liquidations' sales did (`SHARE_CMAP`); lines join each dot whose share reached
    `contagion.endogenous_share` to the liquidation that pushed it hardest.

    Drawn with networkx onto the chart's axes; the x range follows the liquidations (not the clock), so the figure
    only changes when a liquidation happens.
    """

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.fig, self.axes = _figure(len(labels))
        self.axes[0].set_ylabel("generation", fontsize=FONT)
        self.axes[0].yaxis.get_major_locator().set_params(integer=True)
        for ax in self.axes:
            ax.set_xlabel("time (hours)", fontsize=FONT)
        # the colour key in the right margin (where the other panels keep their right-hand axis), widened a little
        # so the key's two-line label fits
        right = MARGINS["right"] - 0.035
        self.fig.subplots_adjust(right=right)
        bottom, top = self.axes[0].get_position().y0, self.axes[0].get_position().y1
        key = Colorbar(
            self.fig.add_axes((right + 0.02, bottom, 0.018, top - bottom)), cmap=SHARE_CMAP, norm=Normalize(0, 1)
        )
        key.set_ticks([0.0, 0.5, 1.0], labels=["0%", "50%", "100%"])
        key.ax.tick_params(labelsize=FONT - 2, length=2, pad=1)
        key.set_label(SHARE_LABEL, fontsize=FONT - 2, labelpad=2)
        self.key: tuple[int, ...] | None = None
        self.png = b""

    def update(self, snaps: Sequence[Snapshot]) -> bytes:
        key = tuple(x for s in snaps for x in (len(s.events), len(s.edges)))
        if key != self.key:
            self._update(snaps)
            self.png = _png(self.fig)
            self.key = key
        return self.png

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        layouts = [cascade_layout(s) for s in snaps]
        max_gen = max((max(gen.values(), default=0) for *_, gen in layouts), default=0)
        times = [p[0] for *_, pos, _ in layouts for p in pos.values()]
        if times:
            first, last = min(times), max(times)
            xlim = _padded(first, max(last, first + 0.5), 0.05)
        else:
            xlim = (0.0, 1.0)
        for ax, label, snap, (g, forest, pos, _gen) in zip(self.axes, self.labels, snaps, layouts, strict=False):
            for artist in [*ax.collections, *ax.texts]:
                artist.remove()
            head = f"{label}\n" if len(self.labels) > 1 else ""
            if g.number_of_nodes() == 0:
                ax.text(
                    0.5,
                    0.5,
                    f"{head}no liquidations yet",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=FONT + 1,
                    color="0.4",
                )
            else:
                # the larger shares drawn last, so grey dots never hide them
                nodes = sorted(g.nodes, key=lambda v: (float(g.nodes[v].get("endogenous_share", 0.0)), v))
                shares = np.array([float(g.nodes[v].get("endogenous_share", 0.0)) for v in nodes])
                repaid = np.array([float(g.nodes[v].get("repaid_usd", 0.0)) for v in nodes])
                sizes = 6 + 60 * np.sqrt(repaid / max(float(repaid.max()), 1.0))
                if forest.number_of_edges():
                    segments = [(pos[u], pos[v]) for u, v in forest.edges]
                    ax.add_collection(LineCollection(segments, colors="0.55", linewidths=0.6, alpha=0.7))
                nx.draw_networkx_nodes(
                    g,
                    pos,
                    nodelist=nodes,
                    ax=ax,
                    node_size=sizes,
                    linewidths=0,
                    node_color=shares,
                    cmap=SHARE_CMAP,
                    vmin=0.0,
                    vmax=1.0,
                )
                share = share_text(snap.mean_endogenous_share)
                n, k = len(nodes), snap.n_endogenous
                if len(self.labels) > 1:  # half-width axes: shorter lines
                    detail = (
                        f"{n} liquidations, {k} mostly\ncaused by earlier ones;\ntheir sales did {share}\nof the damage"
                    )
                else:
                    detail = (
                        f"{n} liquidations, {k} mostly caused by earlier ones;\n"
                        f"earlier liquidations' sales did {share} of the damage"
                    )
                ax.text(
                    0.02,
                    0.98,
                    f"{label}\n{detail}" if len(self.labels) > 1 else detail,
                    transform=ax.transAxes,
                    fontsize=FONT - 1.5 if len(self.labels) > 1 else FONT - 0.5,
                    va="top",
                )
            ax.tick_params(axis="both", which="both", bottom=True, left=True, labelbottom=True, labelleft=True)
            ax.set_xlim(*xlim)
            ax.set_ylim(-0.6, max(3.0, max_gen + 0.9))


def _percent_axis(ax: Axes, snaps: Sequence[Snapshot], columns: Sequence[str], floor: float) -> None:
    """Y limits (in percent) holding 0 and every value of `columns` in every run, at least ±`floor` percent."""
    lo, hi = -floor, floor
    for snap in snaps:
        for col in columns:
            y = snap.series.get(col, np.zeros(0))
            if len(y):
                lo, hi = min(lo, 100 * float(y.min())), max(hi, 100 * float(y.max()))
    ax.set_ylim(*_padded(lo, hi))


class FundingChart(Chart):
    """The perp market of one asset: mark and index price (top), the premium and the funding rate paid per
    funding period, in percent (bottom). Run B: the same lines in red, its index dotted and funding dash-dotted.
    With basis traders, a note above says what share of the forced spot selling's price impact was theirs."""

    def __init__(
        self,
        asset: str,
        labels: Sequence[str],
        total_hours: float,
        shocks: Sequence[tuple[float, float]],
        funding_period: str,
        basis_note: bool,
    ):
        self.asset = asset
        self.labels = list(labels)
        self.basis_note = basis_note
        self.fig = Figure(figsize=(WIDTH_IN, PERP_HEIGHT_IN), dpi=DPI)
        FigureCanvasAgg(self.fig)
        self.top, self.bottom = self.fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (1.0, 1.15)})
        # no right-hand axis here: the plots use that margin too
        self.fig.subplots_adjust(hspace=0.12, **{**_margins(PERP_HEIGHT_IN), "top": 0.9, "right": 0.96})
        compare = len(labels) > 1
        self.mark, self.index, self.premium, self.funding = [], [], [], []
        for i, label in enumerate(labels):
            suffix = f", {label.split(' ')[0]}" if compare else ""
            colours = (RUN_COLOURS[i],) * 2 if compare else ("tab:purple", "tab:orange")
            self.index.append(
                self.top.plot([], [], color=colours[1], ls="--" if i == 0 else ":", lw=1.1, label=f"index{suffix}")[0]
            )
            self.mark.append(self.top.plot([], [], color=colours[0], lw=1.4, label=f"mark{suffix}")[0])
            self.premium.append(self.bottom.plot([], [], color=colours[0], lw=1.3, label=f"premium{suffix}")[0])
            self.funding.append(
                self.bottom.step(
                    [],
                    [],
                    where="post",
                    color=colours[0] if compare else "tab:brown",
                    ls="--" if i == 0 else "-.",
                    lw=1.5,
                    label=f"funding, per {funding_period}{suffix}",
                )[0]
            )
        for ax in (self.top, self.bottom):
            ax.tick_params(labelsize=FONT)
            ax.grid(True, lw=0.4, alpha=0.4)
            _shade(ax, shocks)
        self.bottom.axhline(0.0, color="0.3", lw=0.7)
        _hours_axis(self.bottom, total_hours)
        self.top.set_ylabel(f"{asset} perp (USD)", fontsize=FONT)
        self.bottom.set_ylabel("premium, funding (%)", fontsize=FONT)
        legend = {"fontsize": FONT - 1.5, "framealpha": 0.8, "ncol": 2 if compare else 1}
        self.top.legend(loc="lower left", **legend)
        self.bottom.legend(loc="lower left", **legend)

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        a = self.asset
        lo, hi = np.inf, -np.inf
        for i, snap in enumerate(snaps):
            h = snap.hours
            for line, col, scale in (
                (self.mark[i], f"mark_{a}", 1.0),
                (self.index[i], f"index_{a}", 1.0),
                (self.premium[i], f"premium_{a}", 100.0),
                (self.funding[i], f"funding_rate_{a}", 100.0),
            ):
                y = snap.series.get(col, np.zeros(0))
                line.set_data(h[: len(y)], scale * y)
                if scale == 1.0 and len(y):
                    lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
        self.top.set_ylim(*_padded(lo, hi))
        _percent_axis(self.bottom, snaps, [f"premium_{a}", f"funding_rate_{a}"], floor=0.5)
        _follow_time(self.bottom, snaps)
        if self.basis_note:
            shares = []
            for snap in snaps:
                share = snap.basis_selling_share
                head = f"{snap.label.split(' ')[0]} " if len(snaps) > 1 else ""
                shares.append(f"{head}{'none yet' if np.isnan(share) else f'{share:.0%}'}")
            self.top.set_title(
                "basis traders' share of the forced spot selling's price impact: " + ", ".join(shares),
                fontsize=FONT - 1,
                loc="left",
            )


class BackstopChart(Chart):
    """The perp venue's backstops: insurance fund and backstop vault equity ($M, left axis), and the ADL volume so
    far ($M, right axis) with × at every step that had ADL fills. Run B: dashed."""

    def __init__(self, labels: Sequence[str], total_hours: float, shocks: Sequence[tuple[float, float]]):
        self.fig, (ax,) = _figure(height_in=PERP_HEIGHT_IN)
        self.ax = ax
        _shade(ax, shocks)
        self.right = _twin(ax)
        compare = len(labels) > 1
        self.fund, self.vault, self.adl = [], [], []
        for i, label in enumerate(labels):
            ls = "-" if i == 0 else "--"
            suffix = f", {label.split(' ')[0]}" if compare else ""
            self.fund.append(ax.plot([], [], color="tab:green", ls=ls, lw=1.5, label=f"insurance fund{suffix}")[0])
            self.vault.append(ax.plot([], [], color="tab:cyan", ls=ls, lw=1.3, label=f"vault equity{suffix}")[0])
            self.adl.append(
                self.right.plot(
                    [],
                    [],
                    color="tab:red",
                    ls=ls,
                    lw=1.3,
                    marker="x",
                    markersize=5,
                    markevery=[],
                    drawstyle="steps-post",
                    label=f"ADL so far{suffix}",
                )[0]
            )
        ax.axhline(0.0, color="0.3", lw=0.7)
        _hours_axis(ax, total_hours)
        ax.set_ylabel("fund and vault ($M)", fontsize=FONT)
        self.right.set_ylabel("ADL volume so far ($M)", fontsize=FONT)
        # above the plot: the lines can cross any corner of it (the vault's equity may fall far below zero)
        self.fig.subplots_adjust(top=0.86 if compare else 0.9)
        lines = self.fund + self.vault + self.adl  # the legend fills columns first: one row per run
        ax.legend(
            lines,
            [ln.get_label() for ln in lines],
            fontsize=FONT - 1.5,
            loc="lower left",
            bbox_to_anchor=(0.0, 1.0),
            borderaxespad=0.2,
            frameon=False,
            ncol=3,
            handlelength=1.6,
            columnspacing=1.0,
        )

    def _update(self, snaps: Sequence[Snapshot]) -> None:
        lo, hi = 0.0, 0.0
        for fund, vault, adl, snap in zip(self.fund, self.vault, self.adl, snaps, strict=False):
            h = snap.hours
            for line, col in ((fund, "insurance_fund_usd"), (vault, "vault_equity_usd")):
                y = snap.series[col] / 1e6
                line.set_data(h, y)
                if len(y):
                    lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
            adl.set_data(h, np.cumsum(snap.series["adl_volume_usd"]) / 1e6)
            adl.set_markevery(np.flatnonzero(snap.series["n_adl"] > 0).tolist())
        self.ax.set_ylim(*_padded(lo, hi))
        self.right.set_ylim(0, _top([np.cumsum(s.series["adl_volume_usd"]) for s in snaps], 1.0, 1e-6))
        _follow_time(self.ax, snaps)


@dataclass(frozen=True)
class PerpSetting:
    """What the perp panels need from a run's configuration: the funding period in words (e.g. '8 h') and
    whether the run has basis traders."""

    funding_period: str
    basis_traders: bool


class Charts:
    """The panels of one simulation (built on first use, updated each frame, one frame at a time): `PANEL_KEYS`,
    and `PERP_PANEL_KEYS` when `perps` is given."""

    def __init__(
        self,
        labels: Sequence[str],
        asset: str,
        usd: str,
        total_steps: int,
        step_seconds: float,
        shocks: Sequence[tuple[str, float, float]],
        kink: float | None,
        perps: PerpSetting | None = None,
    ) -> None:
        total_hours = total_steps * step_seconds / 3600.0
        all_windows = [(s, e) for _, s, e in shocks]
        self.charts: dict[str, Chart] = {
            "price": PriceChart(asset, labels, total_hours, [(s, e) for a, s, e in shocks if a == asset]),
            "liquidations": LiquidationChart(labels, total_steps, step_seconds, all_windows),
            "pool": PoolChart(usd, labels, total_hours, kink),
            "hf": HealthChart(labels),
            "cascade": CascadeChart(labels),
        }
        if perps is not None:
            shown = [(s, e) for a, s, e in shocks if a == asset]
            self.charts["funding"] = FundingChart(
                asset, labels, total_hours, shown, perps.funding_period, perps.basis_traders
            )
            self.charts["backstop"] = BackstopChart(labels, total_hours, all_windows)
        self.lock = threading.Lock()

    def draw(self, snaps: Sequence[Snapshot]) -> dict[str, bytes]:
        """PNG bytes of every panel for these snapshots."""
        with self.lock:
            return {key: chart.update(snaps) for key, chart in self.charts.items()}


def draw_all(
    snaps: Sequence[Snapshot],
    asset: str,
    shocks: Sequence[tuple[str, float, float]] = (),
    kink: float | None = None,
    perps: PerpSetting | None = None,
) -> dict[str, bytes]:
    """Every panel of one frame, from scratch (notebooks, tests)."""
    a = snaps[0]
    charts = Charts([s.label for s in snaps], asset, a.symbols[0], a.total_steps, a.step_seconds, shocks, kink, perps)
    return charts.draw(snaps)
