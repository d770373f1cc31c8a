"""The teaching page in a real browser (headless Chromium through Playwright), plus its server entry point.

One module-scoped Solara server; one browser session walks through what a lecturer does: load, check the panels,
move a slider, reset, step, play and pause, break a rule on purpose, switch scenario, compare two runs. Screenshots
go to pytest's tmp path; with ABM_UPDATE_DOCS_IMAGES=1 the full-page one also replaces docs/img/teaching_page.png
(the documentation's picture), so an ordinary test run leaves the checkout as it was.

Locally these tests skip when Chromium, Playwright or npm is missing; on CI (`CI` set) they fail instead
(see `browser_helpers.skip_reason`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from browser_helpers import chromium_page, free_port, serve_solara, skip_reason

from abm.app import text
from abm.app.controls import SECTIONS, visible_sections
from abm.app.figures import PERP_PANEL_KEYS, SHARE_CMAP, panel_order, share_text
from abm.app.panels import comparison_rows, make_charts
from abm.app.server import SERVER_ENV, check_port, solara_command
from abm.app.sim import COMPARISONS, DEFAULT_COMPARISON, Controls, Simulation, build_config, default_asset, shock_events
from abm.config import preset_names
from abm.errors import ConfigError, UserInputError
from abm.io import atomic_write_bytes

if TYPE_CHECKING:
    from playwright.sync_api import Page

REASON = skip_reason()

ROOT = Path(__file__).resolve().parents[1]
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "teaching_page.png"
VIEWPORT = (1280, 800)
SLOW_MS = 90_000  # a frame on a busy 2-core CI machine can take seconds; the page itself reports its frame time


# --- the server entry point (no browser needed) ------------------------------------------------------------


def test_check_port_rejects_a_taken_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(UserInputError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", free_port())  # a free one passes
    with pytest.raises(UserInputError, match="between 1 and 65535"):
        check_port("127.0.0.1", 70000)


def test_solara_command_runs_the_page_module() -> None:
    cmd = solara_command("127.0.0.1", 8765, python="python")
    assert cmd[:5] == ["python", "-m", "solara", "run", "abm.app.page"]
    assert "--production" in cmd and "--no-check-version" in cmd
    assert SERVER_ENV["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] == "False"


# --- what the page runs and draws (no browser needed) -------------------------------------------------------


@pytest.mark.parametrize("preset", preset_names())
def test_every_scenario_starts_steps_and_draws(preset: str) -> None:
    controls = Controls.from_preset(preset, n_traders=60)
    sim = Simulation.start(controls)
    assert sim.step(3) == 3 and sim.step_count == 3
    snaps = sim.snapshots()
    images = make_charts(sim, default_asset(sim.config)).draw(snaps)
    assert set(images) == set(panel_order(sim.has_perps))
    assert all(png.startswith(b"\x89PNG") for png in images.values())
    assert preset in text.SCENARIOS, f"the page has no explanation paragraph for preset '{preset}'"


PERP_PRESETS = [name for name in preset_names() if build_config(Controls.from_preset(name)).perps.enabled]


def test_perp_panels_and_controls_only_with_the_perp_venue() -> None:
    """A perps scenario gets the funding and backstop panels and the perp sliders; a lending scenario does not
    (and its configuration is not touched by the perp controls)."""
    assert {"perp_crash", "oct_10_2025"} <= set(PERP_PRESETS)
    perp_fields = {spec.field for section in SECTIONS if section.needs_perps for spec in section.sliders}
    assert perp_fields == {"funding_cap", "insurance_fund_usd"}
    shown = {spec.field for section in visible_sections(True) for spec in section.sliders}
    hidden = {spec.field for section in visible_sections(False) for spec in section.sliders}
    assert perp_fields <= shown and not perp_fields & hidden

    perp = Simulation.start(Controls.from_preset("oct_10_2025", n_traders=60))
    lending = Simulation.start(Controls.from_preset("crash", n_traders=60))
    assert perp.has_perps and not lending.has_perps
    for sim in (perp, lending):
        sim.step(2)
    perp_images = make_charts(perp, "ETH").draw(perp.snapshots())
    lending_images = make_charts(lending, "ETH").draw(lending.snapshots())
    assert set(PERP_PANEL_KEYS) <= set(perp_images) and not set(PERP_PANEL_KEYS) & set(lending_images)
    assert set(PERP_PANEL_KEYS) <= set(text.PANELS)  # each has a title and a caption
    assert all(perp_images[key].startswith(b"\x89PNG") for key in PERP_PANEL_KEYS)

    # the perp sliders set the venue; on a lending preset they change nothing
    c = Controls.from_preset("oct_10_2025").replace(funding_cap=0.01, insurance_fund_usd=2.0e7)
    cfg = build_config(c)
    assert cfg.perps.funding_cap == 0.01 and cfg.perps.insurance_fund_usd == 2.0e7
    lend = Controls.from_preset("crash")
    assert build_config(lend.replace(funding_cap=0.01, insurance_fund_usd=2.0e7)) == build_config(lend)


def test_comparison_mode_runs_the_perp_venue_in_both_runs() -> None:
    """Run B of a perps scenario has the venue too, the same news, and its own perp lines on the perp panels."""
    sim = Simulation.start(Controls.from_preset("oct_10_2025", n_traders=60).replace(compare="depth_half"))
    assert all(model.perps is not None for model in sim.models)
    shock = shock_events(sim.config)[0]
    sim.step(shock.start + shock.duration)
    a, b = sim.snapshots()
    assert a.has_perps and b.has_perps
    np.testing.assert_array_equal(a.series["fundamental_ETH"], b.series["fundamental_ETH"])
    assert not np.array_equal(a.series["mark_ETH"], b.series["mark_ETH"])  # B's perp books are half as deep
    charts = make_charts(sim, "ETH")
    images = charts.draw([a, b])
    assert set(PERP_PANEL_KEYS) <= set(images)
    funding = charts.charts["funding"]
    assert len(funding.mark) == 2 and np.array_equal(funding.mark[1].get_ydata(), b.series["mark_ETH"])


def test_funding_cap_slider_has_a_none_notch() -> None:
    """The funding cap's top notch is 'no cap' (inf, the presets' value); any lower notch is that cap."""
    spec = next(spec for section in SECTIONS for spec in section.sliders if spec.field == "funding_cap")
    c = Controls.from_preset("perp_crash")
    assert c.funding_cap == float("inf") and spec.position(c) == spec.max
    assert spec.caption(c, has_shock=True) == "Funding cap: none"
    assert spec.value_of(spec.max) == float("inf")
    capped = c.replace(funding_cap=spec.value_of(1.0))
    assert capped.funding_cap == pytest.approx(0.01) and spec.caption(capped, has_shock=True) == "Funding cap: 1.0%"
    assert build_config(capped).perps.funding_cap == pytest.approx(0.01)


@pytest.mark.parametrize("key", list(COMPARISONS))
def test_every_comparison_builds_run_b(key: str) -> None:
    sim = Simulation.start(Controls.from_preset("crash", n_traders=60).replace(compare=key))
    assert len(sim.models) == 2 and sim.labels[1].startswith("B")
    sim.step(2)
    a, b = sim.snapshots()
    assert a.step == b.step == 2
    images = make_charts(sim, "ETH").draw([a, b])
    assert all(png.startswith(b"\x89PNG") for png in images.values())


@pytest.mark.parametrize("key", list(COMPARISONS))
def test_comparison_runs_share_the_news(key: str) -> None:
    """Comparison mode promises the same seed and the same news: run B's fundamental path is run A's, through the
    scripted shock, whatever the one changed parameter does to the traders."""
    sim = Simulation.start(Controls.from_preset("crash", n_traders=60).replace(compare=key))
    shock = shock_events(sim.config)[0]
    sim.step(shock.start + shock.duration)
    a, b = sim.snapshots()
    if key == DEFAULT_COMPARISON:  # the lecture's comparison: by now B's market has gone its own way
        assert not np.array_equal(a.series["price_ETH"], b.series["price_ETH"])
    for asset in sim.config.symbols[1:]:
        np.testing.assert_array_equal(a.series[f"fundamental_{asset}"], b.series[f"fundamental_{asset}"])


def test_cascade_panel_and_table_show_the_share_of_damage_done_by_liquidation_sales() -> None:
    """The cascade dots are coloured by each liquidation's endogenous share (not only the flag), and the comparison
    table and the panel's note give their mean over the liquidations so far ('–' before the first)."""
    sim = Simulation.start(Controls.from_preset("crash", n_traders=100).replace(compare=DEFAULT_COMPARISON))
    share_row, count_row = (
        "… share of their damage done by earlier liquidations' sales",
        "… mostly caused by earlier liquidations' sales",
    )
    before = sim.snapshots()
    assert all(np.isnan(s.mean_endogenous_share) for s in before)
    assert dict(comparison_rows(sim, before, "ETH"))[share_row] == ["–", "–"]
    shock = shock_events(sim.config)[0]
    sim.step(shock.start + shock.duration)
    snaps = sim.snapshots()
    charts = make_charts(sim, "ETH")
    charts.draw(snaps)
    cascade = charts.charts["cascade"]
    rows = dict(comparison_rows(sim, snaps, "ETH"))
    for i, snap in enumerate(snaps):
        shares = np.array([ev["endogenous_share"] for ev in snap.events])
        assert len(shares) and shares.max() > 0.0, "the crash's liquidations were all pure shock: nothing to colour"
        assert snap.mean_endogenous_share == pytest.approx(shares.mean())
        assert snap.n_endogenous == sum(ev["endogenous"] for ev in snap.events)
        assert rows[share_row][i] == share_text(shares.mean())
        assert rows[count_row][i] == str(snap.n_endogenous)
        ax = cascade.axes[i]
        (dots,) = [c for c in ax.collections if c.get_array() is not None]
        assert dots.get_cmap() is SHARE_CMAP and dots.norm.vmin == 0.0 and dots.norm.vmax == 1.0
        np.testing.assert_allclose(np.sort(np.asarray(dots.get_array())), np.sort(shares))
        assert any(share_text(shares.mean()) in t.get_text() for t in ax.texts)


def test_every_numeric_control_has_one_slider_that_round_trips() -> None:
    """The slider table covers each numeric control once, and a slider shows the preset's value and gives it back."""
    specs = [spec for section in SECTIONS for spec in section.sliders]
    switches = {"positions_visible", "attacker", "risk_manager"}  # on/off controls
    pickers = {"scenario", "margin_mode", "liquidation_mechanism", "seed", "compare"}
    numeric = {f.name for f in dataclasses.fields(Controls)} - pickers - switches
    assert sorted(spec.field for spec in specs) == sorted(numeric)
    c = Controls.from_preset("crash")
    for spec in specs:
        position = spec.position(c)
        assert spec.lower_end(c) <= position <= spec.max, spec.field
        assert spec.value_of(position) == pytest.approx(getattr(c, spec.field)), spec.field
    captions = {spec.field: spec.caption(c, has_shock=True) for spec in specs}
    assert captions["ltv"] == "ETH LTV: 80%" and captions["liquidation_threshold"] == "Liq. threshold: 82.5%"
    assert captions["n_traders"] == "Traders: 1000" and captions["oracle_latency"] == "Oracle delay: 1 min"
    shock = next(spec for spec in specs if spec.field == "shock_scale")
    assert shock.caption(c, has_shock=False) == "Crash size: none"


def test_controls_keep_lt_above_ltv_and_explain_bad_input() -> None:
    c = Controls.from_preset("crash")
    raised = c.replace(ltv=0.9)
    assert raised.liquidation_threshold >= raised.ltv == 0.9
    lowered = c.replace(liquidation_threshold=0.7)
    assert lowered.ltv <= lowered.liquidation_threshold == 0.7
    with pytest.raises(ConfigError, match=r"liquidation_threshold \* \(1 \+ liquidation_bonus\)"):
        build_config(c.replace(liquidation_threshold=0.95, liquidation_bonus=0.1))
    with pytest.raises(ConfigError, match="seed"):
        build_config(c.replace(seed=-1))
    assert build_config(c.replace(max_leverage=1.0)).traders.leverage_min == 1.0  # the floor follows the cap
    halved = build_config(c.replace(shock_scale=0.5))
    assert [ev.size for ev in shock_events(halved)] == pytest.approx([-0.125, -0.075])


# --- the page ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_solara("abm.app.page", free_port(), env=SERVER_ENV, cwd=ROOT) as url:
        yield url


def _step_number(page: Page) -> int:
    match = re.match(r"Step (\d+) /", page.locator(".abm-step-counter").inner_text())
    assert match, page.locator(".abm-step-counter").inner_text()
    return int(match.group(1))


def _frame_seconds(page: Page) -> float:
    return float(page.locator(".abm-frame-time").inner_text().split()[1])


def _press_slider(page: Page, label_prefix: str, key: str, expected_label: str, attempts: int = 3) -> None:
    """Press `key` on the slider whose label starts with `label_prefix` until the server echoes `expected_label`.

    The label is drawn by the server, so seeing it proves the server took the value (a key press that lands while
    the slider is being re-rendered can be lost: then press again).
    """
    pattern = re.compile("^" + re.escape(label_prefix))
    for _ in range(attempts):
        slider = page.get_by_role("slider", name=pattern)
        slider.focus()
        slider.press(key)
        try:
            page.locator(f'[role="slider"][aria-label="{expected_label}"]').wait_for(
                state="attached", timeout=SLOW_MS / attempts
            )
            return
        except Exception:  # playwright's TimeoutError: try again
            continue
    raise AssertionError(f"slider {label_prefix!r} never showed {expected_label!r}")


def _wait_step(page: Page, predicate: Callable[[int], bool], timeout_s: float = SLOW_MS / 1000) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        step = _step_number(page)
        if predicate(step) or time.monotonic() > deadline:
            return step
        time.sleep(0.1)


@pytest.mark.browser
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_teaching_page(server_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=SLOW_MS)
    started = time.monotonic()
    with chromium_page(viewport=VIEWPORT, default_timeout_ms=SLOW_MS) as session:
        page = session.page
        page.goto(server_url)
        counter = page.locator(".abm-step-counter")
        expect(counter).to_have_text(re.compile(r"^Step 0 / \d+"), timeout=SLOW_MS)

        # every panel of a lending scenario is there, with its title, a figure and a caption; the scenario is explained
        for key in panel_order(has_perps=False):
            title, caption = text.PANELS[key]
            panel = page.locator(f".abm-panel-{key}")
            expect(panel).to_be_visible()
            expect(panel.locator(".abm-panel-title")).to_have_text(title)
            expect(panel.locator("img")).to_have_attribute("src", re.compile(r"^(blob:|data:)"))
            expect(panel.locator(".abm-caption")).to_contain_text(caption[:40])
        expect(page.locator(".abm-scenario-text")).to_contain_text(text.scenario_text("crash")[:40])
        page.screenshot(path=tmp_path / "loaded.png")

        # a slider change waits for Reset; Reset applies it
        _press_slider(page, "Max leverage", "ArrowRight", "Max leverage: 4.5×")  # the crash preset's 4.0, one notch up
        expect(page.locator(".abm-pending")).to_be_visible()
        page.get_by_role("button", name="Reset").click()
        expect(page.locator(".abm-pending")).to_have_count(0)
        expect(counter).to_have_text(re.compile(r"^Step 0 /"))

        # Step advances the counter by 'steps per click' and redraws the price panel
        price = page.locator(".abm-panel-price img")
        first_src = price.get_attribute("src")
        for i in (1, 2, 3):
            page.get_by_role("button", name="Step").click()
            expect(counter).to_have_text(re.compile(rf"^Step {10 * i} /"))
        expect(price).not_to_have_attribute("src", first_src or "")
        frame_s = _frame_seconds(page)

        # Play runs on its own; Pause stops it (one more frame may land)
        page.get_by_role("button", name="▶").click()
        expect(page.get_by_role("button", name="❚❚")).to_be_visible()
        reached = _wait_step(page, lambda s: s >= 60)
        assert reached >= 60, f"play did not advance (at step {reached})"
        page.get_by_role("button", name="❚❚").click()
        expect(page.get_by_role("button", name="▶")).to_be_visible()
        time.sleep(1.0)
        paused_at = _step_number(page)
        time.sleep(2.0)
        assert _step_number(page) <= paused_at + 10, "the model kept running after pause"

        # a rule broken on purpose is explained on the page, Reset is disabled, no traceback anywhere
        _press_slider(page, "Liq. bonus", "End", "Liq. bonus: 20.0%")
        _press_slider(page, "Liq. threshold", "End", "Liq. threshold: 98.0%")
        error = page.locator(".abm-config-error")
        expect(error).to_contain_text("liquidation_threshold * (1 + liquidation_bonus)")
        expect(page.get_by_role("button", name="Reset")).to_be_disabled()
        _press_slider(
            page, "ETH LTV", "End", "ETH LTV: 95%"
        )  # the threshold may not be below the LTV: its slider starts there
        expect(page.get_by_role("slider", name=re.compile(r"^Liq\. threshold"))).to_have_attribute(
            "aria-valuemin", "95"
        )
        page.screenshot(path=tmp_path / "invalid.png")
        assert "Traceback" not in page.locator("body").inner_text()

        # switching scenario loads its values (the broken rule is gone) and starts a new run
        page.get_by_role("button", name=re.compile(r"^Scenario")).click()
        page.get_by_role("option", name="margin_mix").click()
        expect(page.locator(".abm-scenario-text")).to_contain_text(text.scenario_text("margin_mix")[:40])
        expect(counter).to_have_text(re.compile(r"^Step 0 /"))
        expect(error).to_have_count(0)
        expect(page.get_by_role("button", name=re.compile(r"^Margin mode"))).to_contain_text("mixed")
        expect(page.get_by_role("button", name=re.compile(r"^Asset shown"))).to_contain_text("SOL")  # the shocked coin
        page.get_by_role("button", name="Step").click()
        expect(counter).to_have_text(re.compile(r"^Step 10 /"))

        # comparison mode: same seed, max leverage x2; the lecture's picture (after the crash)
        page.get_by_role("button", name=re.compile(r"^Scenario")).click()
        page.get_by_role("option", name="crash", exact=True).click()
        expect(page.locator(".abm-scenario-text")).to_contain_text(text.scenario_text("crash")[:40])
        page.get_by_text("Compare with a second run").click()
        page.get_by_role("button", name="Reset").click()
        expect(page.locator(".abm-panel-compare")).to_be_visible()
        expect(page.locator(".abm-panel-compare")).to_contain_text("max leverage ×2")
        page.locator(".abm-steps-per-click").get_by_role("button", name="60").click()
        for i in range(1, 6):
            page.get_by_role("button", name="Step").click()
            expect(counter).to_have_text(re.compile(rf"^Step {60 * i} /"))
        page.evaluate("window.scrollTo(0, 0)")
        page.locator(".abm-sidebar").evaluate("sidebar => { sidebar.scrollTop = 0; }")
        page.screenshot(path=tmp_path / "compare_1280x800.png")  # what the lecture room sees
        full = page.screenshot(path=tmp_path / "compare_full_page.png", full_page=True)  # every panel
        if os.environ.get("ABM_UPDATE_DOCS_IMAGES") == "1":
            atomic_write_bytes(DOCS_SCREENSHOT, full)

        assert session.errors() == []
        assert "Traceback" not in page.locator("body").inner_text()
    print(f"browser walk-through: {time.monotonic() - started:.1f} s; a 10-step frame took {frame_s:.2f} s")


@pytest.mark.browser
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_perp_panels_and_controls_follow_the_scenario(server_url: str, tmp_path: Path) -> None:
    """A perps scenario shows the funding and backstop panels and the perp sliders; a lending one does not."""
    from playwright.sync_api import expect

    expect.set_options(timeout=SLOW_MS)
    with chromium_page(viewport=VIEWPORT, default_timeout_ms=SLOW_MS) as session:
        page = session.page
        page.goto(server_url)
        counter = page.locator(".abm-step-counter")
        expect(counter).to_have_text(re.compile(r"^Step 0 / \d+"))
        for key in PERP_PANEL_KEYS:  # the default scenario (crash) has no perp venue
            expect(page.locator(f".abm-panel-{key}")).to_have_count(0)
        expect(page.get_by_role("slider", name=re.compile(r"^Funding cap"))).to_have_count(0)

        page.get_by_role("button", name=re.compile(r"^Scenario")).click()
        page.get_by_role("option", name="oct_10_2025").click()
        expect(page.locator(".abm-scenario-text")).to_contain_text(text.scenario_text("oct_10_2025")[:40])
        for key in PERP_PANEL_KEYS:
            title, caption = text.PANELS[key]
            panel = page.locator(f".abm-panel-{key}")
            expect(panel.locator(".abm-panel-title")).to_have_text(title)
            expect(panel.locator("img")).to_have_attribute("src", re.compile(r"^(blob:|data:)"))
            expect(panel.locator(".abm-caption")).to_contain_text(caption[:40])
        expect(page.get_by_text("Perpetual futures", exact=True)).to_be_visible()
        expect(page.locator('[role="slider"][aria-label="Funding cap: none"]')).to_have_count(1)
        _press_slider(page, "Ins. fund", "End", "Ins. fund: $30.0M")  # the preset's $0.2M, to the top
        expect(page.locator(".abm-pending")).to_be_visible()
        page.get_by_role("button", name="Reset").click()
        expect(page.locator(".abm-pending")).to_have_count(0)
        page.locator(".abm-steps-per-click").get_by_role("button", name="60").click()
        for i in range(1, 6):  # through the drop at hour 4
            page.get_by_role("button", name="Step").click()
            expect(counter).to_have_text(re.compile(rf"^Step {60 * i} /"))
        expect(page.locator(".abm-status-run")).to_contain_text(re.compile(r"\d+ perp liquidations · \d+ ADL fills"))
        page.locator(".abm-panel-funding").scroll_into_view_if_needed()
        page.screenshot(path=tmp_path / "perps_1280x800.png")

        page.get_by_role("button", name=re.compile(r"^Scenario")).click()
        page.get_by_role("option", name="crash", exact=True).click()
        expect(page.locator(".abm-scenario-text")).to_contain_text(text.scenario_text("crash")[:40])
        for key in PERP_PANEL_KEYS:
            expect(page.locator(f".abm-panel-{key}")).to_have_count(0)
        expect(page.get_by_role("slider", name=re.compile(r"^(Funding cap|Ins\. fund)"))).to_have_count(0)
        assert session.errors() == []
        assert "Traceback" not in page.locator("body").inner_text()
