"""The teaching page's sidebar: scenario picker, run buttons and the parameter controls.

Sliders edit a pending `Controls` value; Reset builds a new run from it. Every slider is one row of `SECTIONS` (a
`SliderSpec`: label, field, range, step, format, hint) drawn by `ControlSlider`; the perpetual-futures section is
drawn only for scenarios that run the perp venue. The liquidation-threshold slider
cannot go below the LTV (moving the LTV above it drags the threshold along), and any other invalid combination is
explained on the page (the `ConfigError` message) while Reset is disabled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import solara

from abm.app import text
from abm.app.sim import COMPARISONS, DEFAULT_COMPARISON, MIXED, REFERENCE_ASSET, STEPS_PER_CLICK, Controls
from abm.config import preset_descriptions
from abm.config.schema import LIQUIDATION_MECHANISMS, MARGIN_MODES


@dataclass(frozen=True)
class SliderSpec:
    """One slider: the `Controls` field it sets, its range in slider units, and how its label shows the value."""

    label: str  # the label before ": <value>"
    field: str  # the `Controls` field the slider sets
    min: float  # lower end, in slider units
    max: float  # upper end, in slider units
    step: float  # in slider units
    fmt: str  # how the label shows the slider's value, e.g. "{:.1f}×"
    hint: str  # one sentence for the section's hint line
    scale: float = 1.0  # slider units per unit of the field (100: a fraction shown in percent)
    integer: bool = False  # a whole-number field (drawn as an integer slider)
    floor_field: str | None = None  # the lower end follows this field instead of `min` (threshold >= LTV)
    needs_shock: bool = False  # disabled, and labelled "none", when the scenario has no scripted shock
    none_at_max: bool = False  # the top notch means "no limit" (the field's value inf), labelled "none"

    def position(self, controls: Controls) -> float:
        """The slider's position for `controls`, in slider units (an unlimited value sits at the top)."""
        value = float(getattr(controls, self.field))
        if self.none_at_max and not math.isfinite(value):
            return self.max
        return min(value * self.scale, self.max) if self.none_at_max else value * self.scale

    def lower_end(self, controls: Controls) -> float:
        if self.floor_field is None:
            return self.min
        return round(float(getattr(controls, self.floor_field)) * self.scale, 1)

    def caption(self, controls: Controls, has_shock: bool) -> str:
        """The label with the current value, e.g. "Liq. threshold: 82.5%"."""
        if (self.needs_shock and not has_shock) or (self.none_at_max and self.position(controls) >= self.max):
            return f"{self.label}: none"
        return f"{self.label}: {self.fmt.format(self.position(controls))}"

    def value_of(self, position: float) -> int | float:
        """The field's value at a slider position (inf at the top notch of a `none_at_max` slider)."""
        if self.none_at_max and position >= self.max:
            return math.inf
        value = position / self.scale
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class SectionSpec:
    """A titled group of controls: its sliders, then the section's other controls (`key` names them)."""

    key: str
    title: str
    sliders: tuple[SliderSpec, ...]
    extra_hints: tuple[str, ...] = ()  # sentences about the section's other controls, after the sliders'
    needs_perps: bool = False  # drawn only when the scenario runs the perpetual venue
    needs_lst: bool = False  # drawn only when the scenario has staking collateral (`lst.enabled`)

    @property
    def hint(self) -> str:
        return " ".join([spec.hint for spec in self.sliders] + list(self.extra_hints))


def _pct(digits: int) -> str:
    return f"{{:.{digits}f}}%"


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(
        "traders",
        "Traders",
        (
            SliderSpec("Max leverage", "max_leverage", 1.0, 10.0, 0.5, "{:.1f}×", text.HINTS["max_leverage"]),
            SliderSpec("Traders", "n_traders", 50, 2000, 50, "{:.0f}", text.HINTS["n_traders"], integer=True),
        ),
    ),
    SectionSpec(
        "pool",
        f"Lending pool ({REFERENCE_ASSET} collateral)",
        (
            SliderSpec(f"{REFERENCE_ASSET} LTV", "ltv", 30, 95, 1, _pct(0), text.HINTS["ltv"], scale=100),
            SliderSpec(
                "Liq. threshold",
                "liquidation_threshold",
                30,
                98,
                0.5,
                _pct(1),
                text.HINTS["liquidation_threshold"],
                scale=100,
                floor_field="ltv",
            ),
            SliderSpec(
                "Liq. bonus", "liquidation_bonus", 0, 20, 0.5, _pct(1), text.HINTS["liquidation_bonus"], scale=100
            ),
            SliderSpec("Close factor", "close_factor", 10, 100, 5, _pct(0), text.HINTS["close_factor"], scale=100),
        ),
        extra_hints=(text.HINTS["risk_manager"],),
    ),
    SectionSpec(
        "market",
        "Oracle and market",
        (
            SliderSpec(
                "Oracle delay", "oracle_latency", 0, 60, 1, "{:.0f} min", text.HINTS["oracle_latency"], integer=True
            ),
            SliderSpec(
                "Oracle deviation", "oracle_deviation", 0, 5, 0.1, _pct(1), text.HINTS["oracle_deviation"], scale=100
            ),
            SliderSpec("Market depth", "depth_scale", 0.1, 3.0, 0.1, "{:.1f}×", text.HINTS["depth_scale"]),
        ),
    ),
    SectionSpec(
        "perps",
        "Perpetual futures",
        (
            SliderSpec(
                "Funding cap",
                "funding_cap",
                0.1,
                10.0,
                0.1,
                _pct(1),
                text.HINTS["funding_cap"],
                scale=100,
                none_at_max=True,
            ),
            SliderSpec(
                "Ins. fund",
                "insurance_fund_usd",
                0.0,
                30.0,
                0.1,
                "${:.1f}M",
                text.HINTS["insurance_fund_usd"],
                scale=1e-6,
            ),
        ),
        needs_perps=True,
    ),
    SectionSpec(
        "lst",
        "Staking collateral",
        (SliderSpec("Loop leverage", "loop_leverage", 1.0, 11.0, 0.5, "{:.1f}×", text.HINTS["loop_leverage"]),),
        needs_lst=True,
    ),
    SectionSpec(
        "adversaries",
        "Adversaries",
        (SliderSpec("Hunters", "n_hunters", 0, 3, 1, "{:.0f}", text.HINTS["n_hunters"], integer=True),),
        extra_hints=(text.HINTS["positions_visible"], text.HINTS["attacker"]),
    ),
    SectionSpec(
        "scenario",
        "Scenario",
        (
            SliderSpec(
                "Crash size", "shock_scale", 0.0, 2.0, 0.1, "{:.1f}×", text.HINTS["shock_scale"], needs_shock=True
            ),
        ),
        extra_hints=(text.HINTS["seed"],),
    ),
    SectionSpec("compare", "Compare", (), extra_hints=(text.COMPARE,)),
)


def visible_sections(has_perps: bool, has_lst: bool = False) -> list[SectionSpec]:
    """The sections the sidebar draws: all but the perpetual-futures one when the scenario has no perp venue, and
    the staking one when it has no staking collateral."""
    return [s for s in SECTIONS if (has_perps or not s.needs_perps) and (has_lst or not s.needs_lst)]


@solara.component
def Section(title: str, hint: str) -> None:
    solara.HTML(tag="div", unsafe_innerHTML=title, classes=["abm-section-title"])
    solara.HTML(tag="div", unsafe_innerHTML=hint, classes=["abm-hint"])


@solara.component
def RunButtons(
    *,
    playing: bool,
    done: bool,
    can_reset: bool,
    on_reset: Callable[[], None],
    on_play_pause: Callable[[], None],
    on_step: Callable[[], None],
    steps_per_click: solara.Reactive[int],
) -> None:
    with solara.Row(gap="6px", classes=["abm-run-buttons"]):
        solara.Button(label="Reset", color="primary", on_click=on_reset, disabled=not can_reset)
        solara.Button(
            label="❚❚" if playing else "▶", color="primary", on_click=on_play_pause, disabled=done and not playing
        )
        solara.Button(label="Step", color="primary", on_click=on_step, disabled=playing or done)
    with solara.Div(classes=["abm-speed"]):
        solara.HTML(tag="div", unsafe_innerHTML="Steps per click (one step = one minute)", classes=["abm-hint"])
        solara.ToggleButtonsSingle(
            value=steps_per_click,
            values=list(STEPS_PER_CLICK),
            dense=True,
            classes=["abm-steps-per-click"],
        )


@solara.component
def ScenarioPicker(scenario: str, on_scenario: Callable[[str], None]) -> None:
    descriptions = preset_descriptions()
    solara.Select(label="Scenario", values=list(descriptions), value=scenario, on_value=on_scenario, dense=True)
    solara.HTML(tag="div", unsafe_innerHTML=descriptions.get(scenario, ""), classes=["abm-preset-line"])
    solara.HTML(tag="div", unsafe_innerHTML=text.scenario_text(scenario), classes=["abm-scenario-text"])


def setter(controls: solara.Reactive[Controls], field: str, convert: Callable[[Any], object]) -> Callable[[Any], None]:
    """A callback that stores `convert(value)` in the pending controls' `field`."""

    def set_value(value: Any) -> None:
        controls.set(controls.value.replace(**{field: convert(value)}))

    return set_value


@solara.component
def ControlSlider(controls: solara.Reactive[Controls], spec: SliderSpec, has_shock: bool) -> None:
    """One row of `SECTIONS` as a slider that edits the pending controls."""
    c = controls.value
    slider = solara.SliderInt if spec.integer else solara.SliderFloat
    number = int if spec.integer else float  # what the slider widget takes for its value, range and step
    slider(
        spec.caption(c, has_shock),
        value=number(spec.position(c)),
        min=number(spec.lower_end(c)),
        max=number(spec.max),
        step=number(spec.step),
        on_value=setter(controls, spec.field, lambda position: spec.value_of(float(position))),
        thumb_label=False,
        disabled=spec.needs_shock and not has_shock,
    )


# The sections' controls that are not sliders. Plain functions, not components: their elements go straight into
# the sidebar's column, as the sliders' do.


def margin_mode_picker(controls: solara.Reactive[Controls], has_mix: bool) -> None:
    c = controls.value
    solara.Select(
        label="Margin mode",
        values=[*MARGIN_MODES, MIXED] if has_mix else list(MARGIN_MODES),
        value=c.margin_mode,
        on_value=setter(controls, "margin_mode", str),
        dense=True,
    )
    solara.HTML(tag="div", unsafe_innerHTML=text.MARGIN_MODES.get(c.margin_mode, ""), classes=["abm-hint"])


def risk_manager_switch(controls: solara.Reactive[Controls]) -> None:
    solara.Switch(
        label="Risk manager", value=controls.value.risk_manager, on_value=setter(controls, "risk_manager", bool)
    )


def mechanism_picker(controls: solara.Reactive[Controls]) -> None:
    c = controls.value
    solara.Select(
        label="Liquidation",
        values=list(LIQUIDATION_MECHANISMS),
        value=c.liquidation_mechanism,
        on_value=setter(controls, "liquidation_mechanism", str),
        dense=True,
    )
    solara.HTML(
        tag="div", unsafe_innerHTML=text.LIQUIDATION_MECHANISMS.get(c.liquidation_mechanism, ""), classes=["abm-hint"]
    )


def shocks_and_seed(controls: solara.Reactive[Controls], shock_text: str) -> None:
    solara.HTML(tag="div", unsafe_innerHTML=shock_text, classes=["abm-hint", "abm-shock-text"])
    solara.InputInt(
        "Seed", value=controls.value.seed, on_value=setter(controls, "seed", int), dense=True, continuous_update=False
    )


def adversary_switches(controls: solara.Reactive[Controls]) -> None:
    c = controls.value
    solara.Switch(
        label="Positions visible", value=c.positions_visible, on_value=setter(controls, "positions_visible", bool)
    )
    solara.Switch(label="Oracle attacker", value=c.attacker, on_value=setter(controls, "attacker", bool))


def comparison_picker(controls: solara.Reactive[Controls]) -> None:
    c = controls.value
    solara.Switch(
        label="Compare with a second run",
        value=c.compare is not None,
        on_value=setter(controls, "compare", lambda on: DEFAULT_COMPARISON if on else None),
    )
    if c.compare is not None:
        labels = {cmp.label: key for key, cmp in COMPARISONS.items()}
        solara.Select(
            label="Run B changes",
            values=list(labels),
            value=COMPARISONS[c.compare].label,
            on_value=setter(controls, "compare", labels.__getitem__),
            dense=True,
        )


@solara.component
def ParameterControls(
    controls: solara.Reactive[Controls],
    has_shock: bool,
    has_mix: bool,
    shock_text: str,
    has_perps: bool = False,
    has_lst: bool = False,
) -> None:
    """Every section of `SECTIONS` the scenario uses (the perp section only with the perp venue): its title and
    hint, its sliders, then its other controls."""
    others: dict[str, Callable[[], None]] = {
        "traders": lambda: margin_mode_picker(controls, has_mix),
        "pool": lambda: (risk_manager_switch(controls), mechanism_picker(controls)),
        "scenario": lambda: shocks_and_seed(controls, shock_text),
        "compare": lambda: comparison_picker(controls),
        "adversaries": lambda: adversary_switches(controls),
    }
    for section in visible_sections(has_perps, has_lst):
        Section(section.title, section.hint)
        for spec in section.sliders:
            ControlSlider(controls, spec, has_shock)
        others.get(section.key, lambda: None)()
