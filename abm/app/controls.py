"""The teaching page's sidebar: scenario picker, run buttons and the parameter controls.

Sliders edit a pending `Controls` value; Reset builds a new run from it. The liquidation-threshold slider cannot go
below the LTV (moving the LTV above it drags the threshold along), and any other invalid combination is explained
on the page (the `ConfigError` message) while Reset is disabled.
"""

from __future__ import annotations

from collections.abc import Callable

import solara

from abm.app import text
from abm.app.sim import COMPARISONS, DEFAULT_COMPARISON, MIXED, REFERENCE_ASSET, STEPS_PER_CLICK, Controls
from abm.config import preset_descriptions
from abm.config.schema import MARGIN_MODES


def _pct(label: str, value: float, digits: int = 0) -> str:
    return f"{label}: {value * 100:.{digits}f}%"


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


@solara.component
def ParameterControls(controls: solara.Reactive[Controls], has_shock: bool, has_mix: bool, shock_text: str) -> None:
    """Sliders and pickers for every parameter the page exposes (they edit the pending controls)."""
    c = controls.value

    def setter(name: str, scale: float = 1.0, cast: type = float) -> Callable[[float], None]:
        def set_value(value: float) -> None:
            controls.set(controls.value.replace(**{name: cast(value / scale)}))

        return set_value

    Section("Traders", text.CONTROLS["traders"])
    solara.SliderFloat(
        f"Max leverage: {c.max_leverage:.1f}×",
        value=c.max_leverage,
        min=1.0,
        max=10.0,
        step=0.5,
        on_value=setter("max_leverage"),
        thumb_label=False,
    )
    solara.Select(
        label="Margin mode",
        values=[*MARGIN_MODES, MIXED] if has_mix else list(MARGIN_MODES),
        value=c.margin_mode,
        on_value=setter("margin_mode", cast=str),
        dense=True,
    )
    solara.HTML(tag="div", unsafe_innerHTML=text.MARGIN_MODES.get(c.margin_mode, ""), classes=["abm-hint"])
    solara.SliderInt(
        f"Traders: {c.n_traders}",
        value=c.n_traders,
        min=50,
        max=2000,
        step=50,
        on_value=setter("n_traders", cast=int),
        thumb_label=False,
    )

    Section(f"Lending pool ({REFERENCE_ASSET} collateral)", text.CONTROLS["pool"])
    solara.SliderFloat(
        _pct(f"{REFERENCE_ASSET} LTV", c.ltv),
        value=c.ltv * 100,
        min=30,
        max=95,
        step=1,
        on_value=setter("ltv", 100),
        thumb_label=False,
    )
    solara.SliderFloat(
        _pct("Liq. threshold", c.liquidation_threshold, 1),
        value=c.liquidation_threshold * 100,
        min=round(c.ltv * 100, 1),
        max=98,
        step=0.5,
        on_value=setter("liquidation_threshold", 100),
        thumb_label=False,
    )
    solara.SliderFloat(
        _pct("Liq. bonus", c.liquidation_bonus, 1),
        value=c.liquidation_bonus * 100,
        min=0,
        max=20,
        step=0.5,
        on_value=setter("liquidation_bonus", 100),
        thumb_label=False,
    )
    solara.SliderFloat(
        _pct("Close factor", c.close_factor),
        value=c.close_factor * 100,
        min=10,
        max=100,
        step=5,
        on_value=setter("close_factor", 100),
        thumb_label=False,
    )

    Section("Oracle and market", text.CONTROLS["market"])
    solara.SliderInt(
        f"Oracle delay: {c.oracle_latency} min",
        value=c.oracle_latency,
        min=0,
        max=60,
        on_value=setter("oracle_latency", cast=int),
        thumb_label=False,
    )
    solara.SliderFloat(
        _pct("Oracle deviation", c.oracle_deviation, 1),
        value=c.oracle_deviation * 100,
        min=0,
        max=5,
        step=0.1,
        on_value=setter("oracle_deviation", 100),
        thumb_label=False,
    )
    solara.SliderFloat(
        f"Market depth: {c.depth_scale:.1f}×",
        value=c.depth_scale,
        min=0.1,
        max=3.0,
        step=0.1,
        on_value=setter("depth_scale"),
        thumb_label=False,
    )

    Section("Scenario", text.CONTROLS["scenario"])
    solara.SliderFloat(
        f"Crash size: {c.shock_scale:.1f}×" if has_shock else "Crash size: none",
        value=c.shock_scale,
        min=0.0,
        max=2.0,
        step=0.1,
        on_value=setter("shock_scale"),
        thumb_label=False,
        disabled=not has_shock,
    )
    solara.HTML(tag="div", unsafe_innerHTML=shock_text, classes=["abm-hint", "abm-shock-text"])
    solara.InputInt("Seed", value=c.seed, on_value=setter("seed", cast=int), dense=True, continuous_update=False)

    Section("Compare", text.CONTROLS["compare"])

    def set_compare(on: bool) -> None:
        controls.set(controls.value.replace(compare=DEFAULT_COMPARISON if on else None))

    solara.Switch(label="Compare with a second run", value=c.compare is not None, on_value=set_compare)
    if c.compare is not None:
        labels = {cmp.label: key for key, cmp in COMPARISONS.items()}
        solara.Select(
            label="Run B changes",
            values=list(labels),
            value=COMPARISONS[c.compare].label,
            on_value=lambda label: controls.set(controls.value.replace(compare=labels[label])),
            dense=True,
        )
