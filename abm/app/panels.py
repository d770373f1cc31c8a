"""Solara components that show a run: the status line, the live panels (five, seven with the perpetual venue) and
the comparison table."""

from __future__ import annotations

import time
from collections.abc import Sequence

import solara

from abm.app import figures, text
from abm.app.sim import COMPARISONS, Simulation, Snapshot, clock, shock_events


def _money(usd: float) -> str:
    if abs(usd) >= 1e9:
        return f"${usd / 1e9:.2f}B"
    return f"${usd / 1e6:.1f}M"


def _change(series: Sequence[float]) -> float:
    return float(series[-1] / series[0] - 1.0) if len(series) and series[0] else float("nan")


def duration_words(seconds: float) -> str:
    """A duration as the page writes it: '8 h', '1 h', '30 min'."""
    minutes = seconds / 60.0
    return f"{minutes / 60:g} h" if minutes >= 60 else f"{minutes:g} min"


def make_charts(sim: Simulation, asset: str) -> figures.Charts:
    """The panels' charts for a simulation, with the scripted shocks shaded."""
    config = sim.config
    hours = config.market.step_seconds / 3600.0
    shocks = [(ev.asset, ev.start * hours, (ev.start + ev.duration) * hours) for ev in shock_events(config)]
    perps = None
    if sim.has_perps:
        period = duration_words(config.perps.funding_interval_steps * config.market.step_seconds)
        perps = figures.PerpSetting(period, config.basis_traders.n_traders > 0)
    return figures.Charts(
        sim.labels,
        asset,
        config.symbols[0],
        sim.total_steps,
        config.market.step_seconds,
        shocks,
        config.reserve(config.symbols[0]).optimal_utilisation,
        perps,
    )


@solara.component
def Panel(key: str, image: bytes) -> None:
    """One live panel: a title, the figure and a caption for students."""
    title, caption = text.PANELS[key]
    with solara.Div(classes=["abm-panel", f"abm-panel-{key}"]):
        solara.HTML(tag="div", unsafe_innerHTML=title, classes=["abm-panel-title"])
        solara.Image(image, width="100%", classes=["abm-figure"])
        solara.HTML(tag="div", unsafe_innerHTML=caption, classes=["abm-caption"])


@solara.component
def StatusLine(snaps: list[Snapshot], asset: str, frame_seconds: float) -> None:
    """Step counter and the headline numbers of each run."""
    a = snaps[0]
    with solara.Div(classes=["abm-status"]):
        solara.HTML(
            tag="span",
            unsafe_innerHTML=f"Step {a.step} / {a.total_steps} · {clock(a.step, a.step_seconds)}",
            classes=["abm-step-counter"],
        )
        for snap in snaps:
            market = snap.series.get(f"price_{asset}", [])
            fundamental = snap.series.get(f"fundamental_{asset}", [])
            head = f"<b>{snap.label}</b>: " if len(snaps) > 1 else ""
            perps = ""
            if snap.has_perps:
                perps = (
                    f" · {snap.total('n_perp_liquidations'):.0f} perp liquidations · "
                    f"{snap.total('n_adl'):.0f} ADL fills"
                )
            solara.HTML(
                tag="span",
                unsafe_innerHTML=(
                    f"{head}{asset} market {_change(market):+.1%} (fundamental {_change(fundamental):+.1%}) · "
                    f"{snap.n_liquidations} liquidations · bad debt {_money(snap.last('bad_debt_usd'))}{perps}"
                ),
                classes=["abm-status-run"],
            )
        solara.HTML(tag="span", unsafe_innerHTML=f"frame {frame_seconds:.2f} s", classes=["abm-frame-time"])


def comparison_rows(sim: Simulation, snaps: Sequence[Snapshot], asset: str) -> list[tuple[str, list[str]]]:
    """The comparison table's rows: a name and one cell per run (`asset`: the coin the page follows)."""
    rows: list[tuple[str, list[str]]] = [
        ("starting leverage (all accounts)", [f"{s.initial_leverage:.2f}×" for s in snaps]),
        (f"{asset} market vs start", [f"{_change(s.series.get(f'price_{asset}', [])):+.1%}" for s in snaps]),
        (
            f"lowest {asset} market ÷ fundamental",
            [
                f"{min(s.series[f'price_{asset}'] / s.series[f'fundamental_{asset}']):.3f}"
                if f"price_{asset}" in s.series
                else "-"
                for s in snaps
            ],
        ),
        ("liquidations", [str(s.n_liquidations) for s in snaps]),
        # the mean share of each liquidated account's damage (its lost health) that earlier liquidations' sales did,
        # then how many liquidations that share reached `contagion.endogenous_share` (half, by default) for
        (
            "… share of their damage done by earlier liquidations' sales",
            [figures.share_text(s.mean_endogenous_share) for s in snaps],
        ),
        ("… mostly caused by earlier liquidations' sales", [str(s.n_endogenous) for s in snaps]),
        ("bad debt", [_money(s.last("bad_debt_usd")) for s in snaps]),
    ]
    if sim.has_perps:
        rows += [
            ("perp liquidations", [f"{s.total('n_perp_liquidations'):.0f}" for s in snaps]),
            ("ADL fills", [f"{s.total('n_adl'):.0f}" for s in snaps]),
            ("ADL volume", [_money(s.total("adl_volume_usd")) for s in snaps]),
            ("insurance fund left", [_money(s.last("insurance_fund_usd")) for s in snaps]),
        ]
    return rows


@solara.component
def ComparisonTable(sim: Simulation, snaps: list[Snapshot], asset: str) -> None:
    """Run A and run B side by side: what changed, and what it did."""
    comparison = COMPARISONS.get(sim.controls.compare or "")
    if comparison is None or len(snaps) < 2:
        return
    rows = comparison_rows(sim, snaps, asset)
    body = "".join(f"<tr><td>{name}</td><td>{va}</td><td>{vb}</td></tr>" for name, (va, vb) in rows)
    html = (
        f"<table class='abm-compare-table'><tr><th></th><th>{snaps[0].label}</th><th>{snaps[1].label}</th></tr>"
        f"{body}</table>"
    )
    with solara.Div(classes=["abm-panel", "abm-panel-compare"]):
        solara.HTML(tag="div", unsafe_innerHTML=text.COMPARE_TITLE, classes=["abm-panel-title"])
        solara.HTML(tag="div", unsafe_innerHTML=html)
        solara.HTML(tag="div", unsafe_innerHTML=f"{text.COMPARE} {comparison.note}", classes=["abm-caption"])


@solara.component
def ScenarioNotes(sim: Simulation) -> None:
    """The sixth cell in single-run mode: things to try with this scenario."""
    with solara.Div(classes=["abm-panel", "abm-panel-notes"]):
        solara.HTML(tag="div", unsafe_innerHTML="Try this", classes=["abm-panel-title"])
        items = "".join(f"<li>{tip}</li>" for tip in text.try_this(sim.controls.scenario))
        solara.HTML(tag="ul", unsafe_innerHTML=items, classes=["abm-caption", "abm-tips"])


@solara.component
def Panels(sim: Simulation, version: int, asset: str) -> None:
    """The status line and the live panels of the current simulation (redrawn when `version` changes)."""

    charts = solara.use_memo(lambda: make_charts(sim, asset), [sim, asset])

    def draw() -> tuple[list[Snapshot], dict[str, bytes], float]:
        start = time.perf_counter()
        snaps = sim.snapshots()
        images = charts.draw(snaps)
        return snaps, images, time.perf_counter() - start

    snaps, images, seconds = solara.use_memo(draw, [sim, version, asset])
    StatusLine(snaps, asset, seconds)
    with solara.Div(classes=["abm-grid"]):
        for key in figures.panel_order(sim.has_perps):
            Panel(key, images[key])
        if len(snaps) > 1:
            ComparisonTable(sim, snaps, asset)
        else:
            ScenarioNotes(sim)
