"""The teaching page (a Solara app): `solara run abm.app.page`, or `abm app`.

State per browser tab (a `Session`): the pending `Controls` (what the sliders show), the current `Simulation`
(built from the controls at the last Reset), whether it is playing, and a version counter bumped after every step so
the panels redraw. Play runs in a background thread that steps, bumps the version, waits for the redraw, and
repeats. `Page` only wires the session to the `Sidebar` and the `Panels`.

Wrong input never reaches the user as a traceback: invalid settings show their one-line `ConfigError` message and
disable Reset; any action that fails (Reset, a scenario switch, a step) goes through `Session.guarded`, which stops
play and shows one line (an unexpected error's traceback goes to the server's log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Session:
    """One browser tab's state (Solara reactive values) and what the buttons do to it.

    Every action that can fail goes through `guarded`, the page's one error path: the failure becomes a one-line
    message under the buttons and play stops.
    """

    controls: solara.Reactive[Controls]  # what the sliders show (pending until Reset)
    sim: solara.Reactive[Simulation]  # the run the panels show
    asset: solara.Reactive[str]  # the coin the price panel and the status line follow
    version: solara.Reactive[int]  # bumped after every step, so the panels redraw
    playing: solara.Reactive[bool]
    steps_per_click: solara.Reactive[int]
    run_error: solara.Reactive[str | None]
    rendered: threading.Event  # set once a frame is drawn; the play loop waits for it

    def guarded(self, action: Callable[[], object]) -> bool:
        """Run `action`; on failure show one line (the traceback of an unexpected error goes to the server log),
        stop play, and return False."""
        try:
            action()
        except UserInputError as exc:
            self.run_error.set(str(exc))
        except Exception as exc:  # a model bug: one line for the student, the trace for the developer
            log.exception("the teaching page's run failed")
            self.run_error.set(f"the model stopped with an error: {type(exc).__name__}: {exc}")
        else:
            return True
        self.playing.set(False)
        return False

    def bump(self) -> None:
        self.version.set(self.version.value + 1)

    def start(self, new: Controls) -> None:
        """Replace the current run with a new one built from `new` (raises `UserInputError` if it cannot run)."""
        self.playing.set(False)
        built = Simulation.start(new)
        old = self.sim.value
        self.run_error.set(None)
        with old.lock:  # let a step in flight finish before swapping
            self.sim.set(built)
        if self.asset.value not in built.config.assets or new.scenario != old.controls.scenario:
            self.asset.set(default_asset(built.config))
        self.bump()

    def reset(self) -> None:
        self.guarded(lambda: self.start(self.controls.value))

    def pick_scenario(self, name: str) -> None:
        """Load a scenario's own values (keeping the student's traders, seed and comparison) and start it."""

        def load() -> None:
            old = self.controls.value
            new = Controls.from_preset(name, n_traders=old.n_traders, seed=old.seed).replace(compare=old.compare)
            if validate(new)[1] is not None:  # the student's traders or seed were the problem: use the defaults
                new = Controls.from_preset(name).replace(compare=old.compare)
            self.controls.set(new)
            self.start(new)

        self.guarded(load)

    def step_once(self) -> None:
        current = self.sim.value
        if self.guarded(lambda: current.step(self.steps_per_click.value)):
            self.bump()

    def play_pause(self) -> None:
        self.playing.set(not self.playing.value)

    def play_loop(self, cancel: threading.Event) -> None:
        """Step, redraw, wait for the frame, repeat; until paused, cancelled, replaced by a new run, or done."""
        current = self.sim.value
        while not cancel.is_set() and self.playing.value and self.sim.value is current:
            if not self.guarded(lambda: current.step(self.steps_per_click.value)):
                return
            self.rendered.clear()
            self.bump()
            self.rendered.wait(RENDER_WAIT_S)
            if current.done:
                self.playing.set(False)
                return
            cancel.wait(FRAME_GAP_S)  # a breath between frames, so clicks and slider moves get through


def use_session() -> Session:
    """The tab's state, created on the first render (a Solara hook: call it at the top of a component)."""
    initial = solara.use_memo(lambda: Controls.from_preset(DEFAULT_SCENARIO), [])
    sim = solara.use_reactive(solara.use_memo(lambda: Simulation.start(initial), []))
    return Session(
        controls=solara.use_reactive(initial),
        sim=sim,
        asset=solara.use_reactive(default_asset(sim.value.config)),
        version=solara.use_reactive(0),
        playing=solara.use_reactive(False),
        steps_per_click=solara.use_reactive(DEFAULT_STEPS_PER_CLICK),
        run_error=solara.use_reactive(None),
        rendered=solara.use_memo(threading.Event, []),
    )


@solara.component
def Layout(children: list[solara.Element] | None = None) -> None:
    """No app bar or navigation drawer: the page lays itself out (and the document scrolls, not an inner box)."""
    solara.Div(children=children or [], classes=["abm-root"])


@solara.component
def Messages(problem: str | None, pending: bool, done: bool, run_error: str | None) -> None:
    """Under the buttons: why the settings cannot run (or that they wait for Reset), the end of a run, a failure."""
    with solara.Div(classes=["abm-messages"]):  # one plain box, so the alerts keep their own spacing
        if problem is not None:
            solara.Error(f"These settings cannot run: {problem}", dense=True, classes=["abm-config-error"])
        elif pending:
            solara.Info(text.PENDING, dense=True, classes=["abm-pending"])
        if done:
            solara.Info(text.DONE, dense=True)
        if run_error:
            solara.Error(run_error, dense=True, classes=["abm-run-error"])


@solara.component
def Sidebar(session: Session) -> None:
    """The left column: title, scenario, buttons and messages (kept in view while scrolling), then the controls."""
    controls: Controls = session.controls.value
    current: Simulation = session.sim.value
    pending_config, problem = solara.use_memo(lambda: validate(controls), [controls])
    has_mix = solara.use_memo(lambda: Controls.from_preset(controls.scenario).margin_mode == MIXED, [controls.scenario])
    shown = pending_config or current.config  # the shocks the controls would run, else the current run's

    with solara.Div(classes=["abm-sidebar"]):
        solara.HTML(tag="div", unsafe_innerHTML=text.TITLE, classes=["abm-title"])
        solara.HTML(tag="div", unsafe_innerHTML=text.INTRO, classes=["abm-intro"])
        ScenarioPicker(controls.scenario, session.pick_scenario)
        with solara.Div(classes=["abm-sticky"]):
            RunButtons(
                playing=session.playing.value,
                done=current.done,
                can_reset=problem is None,
                on_reset=session.reset,
                on_play_pause=session.play_pause,
                on_step=session.step_once,
                steps_per_click=session.steps_per_click,
            )
            Messages(problem, controls != current.controls, current.done, session.run_error.value)
        if len(current.config.assets) > 1:
            solara.Select(label="Asset shown", values=list(current.config.assets), value=session.asset, dense=True)
        ParameterControls(
            session.controls,
            has_shock=bool(shock_events(shown)),
            has_mix=has_mix,
            shock_text=describe_shocks(shown),
            has_perps=shown.perps.enabled,
            has_lst=shown.lst.enabled,
        )


@solara.component
def Page() -> None:
    session = use_session()
    solara.use_thread(
        session.play_loop, dependencies=[session.playing.value, session.sim.value], intrusive_cancel=False
    )
    solara.use_effect(session.rendered.set, [session.version.value])

    solara.Title("abm · reflexivity lab")
    solara.Style(CSS)
    with solara.Div(classes=["abm-layout"]):
        Sidebar(session)
        with solara.Div(classes=["abm-main"]):
            Panels(session.sim.value, session.version.value, session.asset.value)
