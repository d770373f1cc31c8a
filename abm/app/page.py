"""The teaching page (a Solara app): `solara run abm.app.page`, or `abm app`.

State per browser tab: the pending `Controls` (what the sliders show), the current `Simulation` (built from the
controls at the last Reset), whether it is playing, and a version counter bumped after every step so the panels
redraw. Play runs in a background thread that steps, bumps the version, waits for the redraw, and repeats.

Wrong input never reaches the user as a traceback: invalid settings show their one-line `ConfigError` message and
disable Reset; an unexpected error while stepping stops play and shows a one-line message (the traceback goes to the
server's log).
"""

from __future__ import annotations

import logging
import threading

import solara

from abm.app import text
from abm.app.controls import ParameterControls, RunButtons, ScenarioPicker
from abm.app.panels import Panels
from abm.app.sim import (
    COMPARISONS,
    DEFAULT_SCENARIO,
    DEFAULT_STEPS_PER_CLICK,
    MIXED,
    Controls,
    Simulation,
    build_config,
    default_asset,
    describe_shocks,
    shock_events,
)
from abm.config import ModelConfig
from abm.errors import UserInputError

log = logging.getLogger(__name__)

FRAME_GAP_S = 0.05  # pause between frames while playing (lets clicks through)
RENDER_WAIT_S = 5.0  # the play loop waits at most this long for a frame to be drawn

CSS = """
.abm-layout { display: flex; flex-wrap: nowrap; align-items: flex-start; gap: 12px; padding: 8px; }
.abm-sidebar { width: 330px; flex: none; height: calc(100vh - 16px); overflow-y: auto; padding-right: 6px;
  position: sticky; top: 8px; }
.abm-main { flex: 1 1 auto; min-width: 0; }
.abm-title { font-size: 17px; font-weight: 600; margin-bottom: 2px; }
.abm-intro, .abm-scenario-text { font-size: 12.5px; line-height: 1.35; color: #333; margin-bottom: 6px; }
.abm-preset-line { font-size: 12px; font-style: italic; color: #555; margin: -4px 0 4px 0; }
.abm-section-title { font-weight: 600; font-size: 13.5px; margin-top: 10px; border-top: 1px solid #ddd;
  padding-top: 6px; }
.abm-hint { font-size: 11.5px; color: #666; line-height: 1.3; }
.abm-sidebar .v-input__slot { margin-bottom: 0 !important; }
.abm-sidebar .v-input { margin-top: 2px !important; }
.abm-sidebar .v-messages { min-height: 0 !important; }
.abm-sidebar .v-label { font-size: 13px !important; }
.abm-status { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; font-size: 13px;
  padding: 4px 8px; background: #f4f6f8; border-radius: 4px; margin-bottom: 8px; }
.abm-step-counter { font-weight: 700; font-size: 15px; }
.abm-frame-time { color: #888; font-size: 11px; margin-left: auto; }
.abm-grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 10px; }
.abm-panel { border: 1px solid #e0e0e0; border-radius: 4px; padding: 4px 8px 6px 8px; background: white; }
.abm-panel-title { font-weight: 600; font-size: 14px; }
.abm-panel img { display: block; width: 100%; height: auto; }
.abm-panel > div { height: auto !important; }
.abm-sidebar .v-slider__slot, .abm-sidebar .v-input__slot > .v-label { flex: none; }
.abm-sidebar .v-input__slot > .v-label { width: 135px; }
.abm-speed .v-btn { min-width: 44px !important; padding: 0 8px !important; }
.abm-caption { font-size: 12px; line-height: 1.35; color: #444; }
.abm-tips { padding-left: 18px; margin: 4px 0; }
.abm-compare-table { border-collapse: collapse; font-size: 13px; margin: 6px 0; width: 100%; }
.abm-compare-table td, .abm-compare-table th { border-bottom: 1px solid #eee; padding: 3px 6px; text-align: right; }
.abm-compare-table td:first-child { text-align: left; }
.abm-pending { font-size: 12px; }
.abm-speed { margin-bottom: 4px; }
.abm-sticky { position: sticky; top: 0; z-index: 3; background: white; padding: 4px 0 6px 0;
  border-bottom: 1px solid #eee; margin-bottom: 8px; }
.abm-sticky .v-alert { margin: 4px 0 0 0 !important; font-size: 12.5px; }
"""


def validate(controls: Controls) -> tuple[ModelConfig | None, str | None]:
    """The configuration `controls` describe and None, or None and the one-line reason they cannot run (run A's
    or run B's)."""
    try:
        config = build_config(controls)
    except UserInputError as exc:
        return None, str(exc)
    comparison = COMPARISONS.get(controls.compare or "")
    if comparison is not None:
        try:
            build_config(comparison.change(controls))
        except UserInputError as exc:
            return config, f"run B ({comparison.label}) would be invalid: {exc}"
    return config, None


@solara.component
def Layout(children: list[solara.Element] | None = None) -> None:
    """No app bar or navigation drawer: the page lays itself out (and the document scrolls, not an inner box)."""
    solara.Div(children=children or [], classes=["abm-root"])


@solara.component
def Page() -> None:
    initial = solara.use_memo(lambda: Controls.from_preset(DEFAULT_SCENARIO), [])
    controls = solara.use_reactive(initial)
    sim = solara.use_reactive(solara.use_memo(lambda: Simulation.start(initial), []))
    asset = solara.use_reactive(default_asset(sim.value.config))
    version = solara.use_reactive(0)
    playing = solara.use_reactive(False)
    steps_per_click = solara.use_reactive(DEFAULT_STEPS_PER_CLICK)
    run_error = solara.use_reactive(None)
    rendered = solara.use_memo(threading.Event, [])

    pending_config, problem = solara.use_memo(lambda: validate(controls.value), [controls.value])
    scenario = controls.value.scenario
    has_mix = solara.use_memo(lambda: Controls.from_preset(scenario).margin_mode == MIXED, [scenario])
    current: Simulation = sim.value

    def bump() -> None:
        version.set(version.value + 1)

    def start(new: Controls) -> None:
        playing.set(False)
        try:
            built = Simulation.start(new)
        except UserInputError as exc:  # validated already; a last line of defence
            run_error.set(str(exc))
            return
        run_error.set(None)
        with current.lock:  # let a step in flight finish before swapping
            sim.set(built)
        if asset.value not in built.config.assets or new.scenario != current.controls.scenario:
            asset.set(default_asset(built.config))
        bump()

    def on_reset() -> None:
        start(controls.value)

    def on_scenario(name: str) -> None:
        old = controls.value
        try:
            new = Controls.from_preset(name, n_traders=old.n_traders, seed=old.seed).replace(compare=old.compare)
            if validate(new)[1] is not None:  # the student's traders or seed were the problem: use the defaults
                new = Controls.from_preset(name).replace(compare=old.compare)
        except UserInputError as exc:
            run_error.set(str(exc))
            return
        controls.set(new)
        start(new)

    def step_once() -> None:
        try:
            current.step(steps_per_click.value)
        except Exception as exc:  # a model bug: report it on one line, keep the trace in the server log
            log.exception("step failed")
            run_error.set(f"the model stopped with an error: {type(exc).__name__}: {exc}")
            playing.set(False)
            return
        bump()

    def on_play_pause() -> None:
        playing.set(not playing.value)

    def play_loop(cancel: threading.Event) -> None:
        if not playing.value:
            return
        while not cancel.is_set() and playing.value and sim.value is current:
            try:
                current.step(steps_per_click.value)
            except Exception as exc:
                log.exception("step failed while playing")
                run_error.set(f"the model stopped with an error: {type(exc).__name__}: {exc}")
                playing.set(False)
                return
            rendered.clear()
            bump()
            rendered.wait(RENDER_WAIT_S)
            if current.done:
                playing.set(False)
                return
            cancel.wait(FRAME_GAP_S)  # a breath between frames, so clicks and slider moves get through

    solara.use_thread(play_loop, dependencies=[playing.value, current], intrusive_cancel=False)
    solara.use_effect(lambda: rendered.set(), [version.value])

    solara.Title("abm · reflexivity lab")
    solara.Style(CSS)
    config = current.config
    with solara.Div(classes=["abm-layout"]):
        with solara.Div(classes=["abm-sidebar"]):
            solara.HTML(tag="div", unsafe_innerHTML=text.TITLE, classes=["abm-title"])
            solara.HTML(tag="div", unsafe_innerHTML=text.INTRO, classes=["abm-intro"])
            ScenarioPicker(controls.value.scenario, on_scenario)
            with solara.Div(classes=["abm-sticky"]):  # buttons and messages stay in view while scrolling
                RunButtons(
                    playing=playing.value,
                    done=current.done,
                    can_reset=problem is None,
                    on_reset=on_reset,
                    on_play_pause=on_play_pause,
                    on_step=step_once,
                    steps_per_click=steps_per_click,
                )
                if problem is not None:
                    solara.Error(f"These settings cannot run: {problem}", dense=True, classes=["abm-config-error"])
                elif controls.value != current.controls:
                    solara.Info(text.PENDING, dense=True, classes=["abm-pending"])
                if current.done:
                    solara.Info(text.DONE, dense=True)
                if run_error.value:
                    solara.Error(run_error.value, dense=True, classes=["abm-run-error"])
            if len(config.assets) > 1:
                solara.Select(label="Asset shown", values=list(config.assets), value=asset, dense=True)
            ParameterControls(
                controls,
                has_shock=bool(shock_events(pending_config or config)),
                has_mix=has_mix,
                shock_text=describe_shocks(pending_config or config),
            )
        with solara.Div(classes=["abm-main"]):
            Panels(current, version.value, asset.value)
