"""The run report's perpetual-futures figures and measures: present for a run with the perp venue, absent without."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import abm
from abm import ModelConfig
from abm.analysis.figures import ZOOM_AFTER_STEPS, ZOOM_BEFORE_STEPS, zoom_hours
from abm.analysis.report import CAPTIONS, TOTALS, run_report

PERP_FIGURES = ("perp_funding.png", "perp_backstop.png")
PERP_KEYS = (
    "adl_count",
    "adl_volume_usd",
    "insurance_fund_drawdown_usd",
    "peak_abs_premium",
    "funding_paid_usd",
    "cross_venue_share",
    "perp_bad_debt_usd",
    "perp_liquidation_volume_usd",
)


def test_a_perps_run_report_has_the_perp_figures_and_measures(tmp_path: Path) -> None:
    # through the drop (steps 240-260) and its first hour, so the premium and the backstops have moved
    run = abm.run(ModelConfig.from_preset("oct_10_2025", {"traders.n_traders": 100}), seed=1, steps=320)
    out = run.save(tmp_path / "run")
    names = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert set(PERP_FIGURES) <= set(names) and len(names) == 8
    for png in PERP_FIGURES:
        with Image.open(out / "figures" / png) as image:
            width, height = image.size
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert width > 1000 and height > 600  # two columns: the whole run and the zoom on the shock
        assert colours is None or len(colours) > 50  # drawn lines, not an empty canvas

    body = run_report(out).read_text()
    for png in PERP_FIGURES:
        stem = png.removesuffix(".png")
        assert f"(figures/{png})" in body and CAPTIONS[stem] in body
    labels = {key: label for key, label, _ in TOTALS}
    for key in PERP_KEYS:
        assert key in run.summary and f"| {labels[key]} |" in body, key
    assert "Perpetual venue: 40% of the leveraged traders in perps" in body

    hours_per_step = run.config.market.step_seconds / 3600.0
    end = min(320, 260 + ZOOM_AFTER_STEPS)  # the zoom is clipped to the run
    assert zoom_hours(run.timeseries, run.config) == pytest.approx(
        ((240 - ZOOM_BEFORE_STEPS) * hours_per_step, end * hours_per_step)
    )


def test_a_lending_run_report_has_no_perp_figures_or_measures(tmp_path: Path) -> None:
    run = abm.run(ModelConfig.from_preset("baseline", {"traders.n_traders": 60}), seed=1, steps=20)
    out = run.save(tmp_path / "run")
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert len(names) == 6 and not names & set(PERP_FIGURES)
    body = run_report(out).read_text()
    labels = {key: label for key, label, _ in TOTALS}
    assert not any(labels[key] in body for key in PERP_KEYS)
    assert "Perpetual venue" not in body
    assert zoom_hours(run.timeseries, run.config) is None  # no scripted shock: no zoom column
