"""Shock-window metrics and pre-shock checks of a run (docs/model.md, "Outputs").

A run with a scripted shock has three parts: the pre-shock stretch (steps before the onset), which should be
quiet because the model starts from an equilibrium; the shock window, from the onset to `SHOCK_HORIZON_STEPS`
after the last shock ends; and whatever comes after. The functions here are small and pure: they take price
arrays indexed by step (element t = the row of step t of `RunResult.timeseries`, which starts at step 0, the
state before any step's news) and plain integers, and return floats, ints or None where a quantity is undefined.

What counts as a shock: scenario events of kind ``"shock"`` only. A ``"replay"`` event replaces a fundamental by
a recorded path; the path carries no marked onset (its fall may come anywhere in the file, or nowhere), so a run
whose only scenario is a replay has no shock window and its shock metrics are None.

Timing: a shock with ``start = s`` and ``duration = d`` moves the fundamental in steps s..s+d-1, so row s is the
first shocked row and row s-1 the state the shock meets. Step 0 is the initial state and never moves, so a shock
scheduled at step 0 first shows at step 1 (its onset is taken as step 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Horizon of the shock window after the last shock ends (steps; 240 = 4 hours at one-minute steps). Long enough
# for what the shock sets off to play out: two half-lives of transient impact at the presets' 120 steps (3/4 of a
# forced sale's impact has decayed), and the traders' mean decision interval (240 steps), so most traders have
# reacted once. Short enough that the fundamental's ordinary noise over the window (ETH at 60%/yr: about 1.3% sd
# over 4 hours) stays small next to the presets' shocks (-15% to -45%).
SHOCK_HORIZON_STEPS = 240
# Amplification is the market's fall over the fundamental's; below a 1% fundamental fall over the window the
# ratio is noise over noise, so it is None.
MIN_FUNDAMENTAL_DRAWDOWN = 0.01
# A pre-shock |log(market / fundamental)| above this (3%) is worth a warning: the run did not start calm.
PRE_SHOCK_GAP_WARNING = 0.03


@dataclass(frozen=True)
class ShockWindow:
    """The shock window of a run, in steps: `onset` is the first shocked step (the first shock's start), `end`
    the first step after the last shock (exclusive), `stop` the first step after the window (exclusive):
    min(end + horizon, last step + 1)."""

    onset: int
    end: int
    stop: int


def scripted_shocks(scenario_events: Iterable[Any]) -> list[tuple[int, int]]:
    """(start, duration) in steps of each scenario event of kind "shock" (replays and `set` events excluded)."""
    return [(int(ev.start), int(ev.duration)) for ev in scenario_events if getattr(ev, "kind", None) == "shock"]


def shock_window(
    shocks: Iterable[tuple[int, int]], last_step: int, horizon: int = SHOCK_HORIZON_STEPS
) -> ShockWindow | None:
    """The window from the first shock's start to `horizon` steps after the last shock's end, clipped to the run
    (steps 0..`last_step`). None when there is no shock or the first one starts after the run's last step.

    shocks: (start, duration) pairs in steps; last_step: the run's final step (= its length in steps)."""
    pairs = list(shocks)
    if not pairs:
        return None
    onset = max(1, min(start for start, _ in pairs))  # step 0 is the initial state (module docstring)
    if onset > last_step:
        return None
    end = max(start + duration for start, duration in pairs)
    return ShockWindow(onset=onset, end=end, stop=min(end + horizon, last_step + 1))


def pre_shock_liquidations(event_steps: np.ndarray, shock_step: int | None) -> int | None:
    """Liquidations (count) at steps before `shock_step`; None without a shock."""
    if shock_step is None:
        return None
    return int(np.count_nonzero(np.asarray(event_steps) < shock_step))


def log_gaps(market: np.ndarray, fundamental: np.ndarray) -> np.ndarray:
    """|log(market / fundamental)| per step (dimensionless; 0.03 is about a 3% gap either way)."""
    return np.abs(np.log(np.asarray(market, dtype=float) / np.asarray(fundamental, dtype=float)))


def pre_shock_max_gap(market: np.ndarray, fundamental: np.ndarray, shock_step: int | None) -> float | None:
    """Largest |log(market / fundamental)| over steps 0..shock_step-1 (dimensionless); None without a shock."""
    if shock_step is None or shock_step < 1:
        return None
    return float(log_gaps(market[:shock_step], fundamental[:shock_step]).max())


def pre_shock_mean_gap(market: np.ndarray, fundamental: np.ndarray, shock_step: int | None) -> float | None:
    """Mean |log(market / fundamental)| over steps 0..shock_step-1 (dimensionless); None without a shock."""
    if shock_step is None or shock_step < 1:
        return None
    return float(log_gaps(market[:shock_step], fundamental[:shock_step]).mean())


def window_drawdown(prices: np.ndarray, window: ShockWindow | None) -> float | None:
    """Fall over the shock window, ``1 - min_{onset <= t < stop} p_t / p_{onset-1}`` (fraction; < 0 when the price
    stayed above where the shock met it). None without a window."""
    if window is None:
        return None
    p = np.asarray(prices, dtype=float)
    return float(1.0 - p[window.onset : window.stop].min() / p[window.onset - 1])


def shock_amplification(
    market_drawdown: float | None,
    fundamental_drawdown: float | None,
    min_fundamental: float = MIN_FUNDAMENTAL_DRAWDOWN,
) -> float | None:
    """Market drawdown over the shock window divided by the fundamental's over the same window (dimensionless;
    above 1: trading, forced selling above all, deepened the fall beyond the news). None without a window, or
    when the fundamental fell by less than `min_fundamental` (1%) over it: an asset without a shock of its own
    still gets a ratio when it fell with the others through correlation, else None."""
    if market_drawdown is None or fundamental_drawdown is None or not fundamental_drawdown >= min_fundamental:
        return None
    return market_drawdown / fundamental_drawdown


def shock_window_summary(
    market: dict[str, np.ndarray],
    fundamental: dict[str, np.ndarray],
    event_steps: np.ndarray,
    shocks: Iterable[tuple[int, int]],
    last_step: int,
    numeraire_utilisation: np.ndarray | None = None,
    optimal_utilisation: float | None = None,
) -> dict[str, Any]:
    """The shock-window and pre-shock keys of a run's summary.

    market, fundamental: per risky asset A, prices (USD/token) indexed by step 0..last_step; event_steps: the
    step of each liquidation; shocks: (start, duration) of each scripted shock (`scripted_shocks`);
    numeraire_utilisation, optimal_utilisation: the numeraire reserve's utilisation per step and its U*.
    Keys: ``shock_step`` (onset, step), ``pre_shock_liquidations`` (count), ``utilisation_recovery_steps``
    (`utilisation_recovery_steps` of the numeraire reserve, when given), and per asset A ``pre_shock_max_gap_A``,
    ``pre_shock_mean_gap_A``, ``shock_drawdown_A``, ``fundamental_shock_drawdown_A``, ``amplification_A``; each
    None without a shock in the run.
    """
    window = shock_window(shocks, last_step)
    shock_step = window.onset if window is not None else None
    out: dict[str, Any] = {
        "shock_step": shock_step,
        "pre_shock_liquidations": pre_shock_liquidations(event_steps, shock_step),
    }
    if numeraire_utilisation is not None and optimal_utilisation is not None:
        out["utilisation_recovery_steps"] = utilisation_recovery_steps(
            numeraire_utilisation, window, optimal_utilisation
        )
    for a in market:
        m, f = market[a], fundamental[a]
        out[f"pre_shock_max_gap_{a}"] = pre_shock_max_gap(m, f, shock_step)
        out[f"pre_shock_mean_gap_{a}"] = pre_shock_mean_gap(m, f, shock_step)
        dd_m, dd_f = window_drawdown(m, window), window_drawdown(f, window)
        out[f"shock_drawdown_{a}"] = dd_m
        out[f"fundamental_shock_drawdown_{a}"] = dd_f
        out[f"amplification_{a}"] = shock_amplification(dd_m, dd_f)
    return out


# Utilisation counted as recovered after a shock: within this many points (0.05) above the reserve's optimal
# utilisation U*, where the kinked rate's steep slope starts to bite.
UTILISATION_RECOVERY_MARGIN = 0.05


def utilisation_recovery_steps(
    utilisation: np.ndarray, window: ShockWindow | None, optimal_utilisation: float
) -> int | None:
    """Steps from the end of the last shock (`window.end`) until a reserve's utilisation is back below
    `optimal_utilisation` + `UTILISATION_RECOVERY_MARGIN`: 0 when it already is at that step. utilisation: per
    step 0..last step (fraction). None without a shock, when the shock ends after the run, or when utilisation
    never comes back within the run."""
    if window is None or window.end >= len(utilisation):
        return None
    after = np.asarray(utilisation[window.end :], dtype=float)
    below = np.flatnonzero(after < optimal_utilisation + UTILISATION_RECOVERY_MARGIN)
    return int(below[0]) if len(below) else None


def pre_shock_warning(summary: dict[str, Any], asset: str) -> str | None:
    """One line when the run did not start calm (liquidations before the shock, or a pre-shock gap above
    `PRE_SHOCK_GAP_WARNING`), else None."""
    n = summary.get("pre_shock_liquidations")
    gap = summary.get(f"pre_shock_max_gap_{asset}")
    problems = []
    if n:
        problems.append(f"{n} liquidations before the shock")
    if gap is not None and not math.isnan(gap) and gap > PRE_SHOCK_GAP_WARNING:
        problems.append(f"{asset} market up to {gap:.1%} (log) away from its fundamental before the shock")
    if not problems:
        return None
    return "warning: the run was not calm before the shock: " + "; ".join(problems)


def forced_selling_drawdown(levered: float | None, unlevered: float | None) -> float | None:
    """The part of a shock-window drawdown that leverage and forced selling caused: the levered run's
    `window_drawdown` minus its unlevered twin's on the same news (fraction of the pre-onset price; percentage
    points of drawdown). None when either is None."""
    if levered is None or unlevered is None:
        return None
    return levered - unlevered
