"""The simulation behind the teaching page, without any user-interface code.

`Controls` holds what the page's sliders set (an immutable value: the page keeps one and replaces it). `build_config`
turns controls into a validated `ModelConfig` (a bad combination raises `ConfigError` with a one-line message the page
shows). `Simulation` owns one model, or two in comparison mode (run B: the same seed, hence the same news, an
identical fundamental path, with one parameter changed), steps them under a lock and hands out `Snapshot`s: plain
copies of what the panels draw, safe to read while the play loop keeps stepping.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from abm.config import ModelConfig
from abm.config.schema import LIQUIDATION_MECHANISMS, MARGIN_MODES, ShockEvent
from abm.contagion.study import mean_endogenous_share
from abm.errors import ConfigError
from abm.model import ReflexivityModel

DEFAULT_SCENARIO = "crash"
# The presets' own resolution, so the page shows the numbers the docs and the behaviour table quote.
DEFAULT_N_TRADERS = 1000
DEFAULT_SEED = 1
STEPS_PER_CLICK = (1, 5, 10, 30, 60)
DEFAULT_STEPS_PER_CLICK = 10
REFERENCE_ASSET = "ETH"  # the reserve whose LTV / threshold / bonus the sliders set
MAX_SHOCK = -0.95  # a scaled shock never takes more than 95% off a price
MIXED = "mixed"  # margin mode: keep the scenario's own mix of cross / isolated / portfolio accounts
RISK_MANAGER_CADENCE_STEPS = 1  # the switch turns on the dynamic_margin preset's manager: it may act every minute


@dataclass(frozen=True)
class Controls:
    """Everything the page lets a student set. Changes take effect on Reset (a new model is built)."""

    scenario: str = DEFAULT_SCENARIO
    max_leverage: float = 4.0
    ltv: float = 0.80
    liquidation_threshold: float = 0.825
    liquidation_bonus: float = 0.05
    close_factor: float = 0.5
    oracle_latency: int = 1
    oracle_deviation: float = 0.005
    depth_scale: float = 1.0
    shock_scale: float = 1.0
    margin_mode: str = "cross"
    risk_manager: bool = False  # risk_manager.enabled: LTV and liquidation thresholds follow volatility
    liquidation_mechanism: str = "keeper"  # liquidators.mechanism: keeper, english or dutch
    # the perpetual venue's (used only when the scenario runs it): cap on |funding rate| per funding period
    # (fraction; inf = none) and the insurance fund at the start (USD)
    funding_cap: float = math.inf
    insurance_fund_usd: float = 1.0e6
    loop_leverage: float = 4.0  # staking collateral's loopers (used only when the scenario has them)
    n_traders: int = DEFAULT_N_TRADERS
    seed: int = DEFAULT_SEED
    # adversaries (docs/model.md, 3.3 Submodels: Adversaries): liquidation hunters, whether they see positions,
    # and the oracle attacker
    n_hunters: int = 0
    positions_visible: bool = True
    attacker: bool = False
    compare: str | None = None  # a key of COMPARISONS, or None for a single run

    @classmethod
    def from_preset(cls, name: str, *, n_traders: int = DEFAULT_N_TRADERS, seed: int = DEFAULT_SEED) -> Controls:
        """The preset's own values for every control (the student's traders and seed are kept)."""
        cfg = ModelConfig.from_preset(name)
        reserve = cfg.reserve(REFERENCE_ASSET)
        mix = [k for k, v in cfg.traders.margin_mode_mix.items() if v > 0]
        mode = mix[0] if len(mix) == 1 else MIXED
        return cls(
            scenario=name,
            max_leverage=cfg.traders.max_leverage,
            ltv=reserve.ltv,
            liquidation_threshold=reserve.liquidation_threshold,
            liquidation_bonus=reserve.liquidation_bonus,
            close_factor=cfg.pool.close_factor,
            oracle_latency=cfg.oracles.latency_steps,
            oracle_deviation=cfg.oracles.deviation_threshold,
            depth_scale=cfg.market.depth_scale,
            shock_scale=1.0,
            margin_mode=mode,
            risk_manager=cfg.risk_manager.enabled,
            liquidation_mechanism=cfg.liquidators.mechanism,
            funding_cap=cfg.perps.funding_cap,
            insurance_fund_usd=cfg.perps.insurance_fund_usd,
            loop_leverage=cfg.lst.loop_leverage,
            n_traders=n_traders,
            seed=seed,
            n_hunters=cfg.hunters.n_hunters,
            positions_visible=cfg.hunters.positions_visible,
            attacker=cfg.attacker.enabled,
        )

    def replace(self, **changes: Any) -> Controls:
        """A copy with some fields changed; lowering the LTV never leaves LT below it and vice versa."""
        new = dataclasses.replace(self, **changes)
        if "ltv" in changes and new.liquidation_threshold < new.ltv:
            new = dataclasses.replace(new, liquidation_threshold=new.ltv)
        elif "liquidation_threshold" in changes and new.ltv > new.liquidation_threshold:
            new = dataclasses.replace(new, ltv=new.liquidation_threshold)
        return new


@dataclass(frozen=True)
class Comparison:
    """One parameter change for run B (same seed as run A, so the same fundamental path)."""

    label: str
    change: Callable[[Controls], Controls]
    note: str = ""


COMPARISONS: dict[str, Comparison] = {
    "leverage_x2": Comparison(
        "max leverage ×2",
        lambda c: c.replace(max_leverage=c.max_leverage * 2),
        "Traders in B may borrow twice as much per dollar of their own money (still capped by what the LTV allows).",
    ),
    "leverage_half": Comparison(
        "max leverage ÷2",
        lambda c: c.replace(max_leverage=max(1.2, c.max_leverage / 2)),
        "Traders in B borrow half as much per dollar of their own money.",
    ),
    "depth_half": Comparison(
        "market depth ÷2",
        lambda c: c.replace(depth_scale=c.depth_scale / 2),
        "Every sale in B moves the price twice as much: a thinner market.",
    ),
    "oracle_slow": Comparison(
        "oracle 10 minutes slower",
        lambda c: c.replace(oracle_latency=c.oracle_latency + 10),
        "B's oracle reports prices 10 steps older: liquidations start later and then come all at once.",
    ),
    "positions_hidden": Comparison(
        "positions hidden from hunters",
        lambda c: c.replace(positions_visible=False),
        "B's pool proves every account solvent without showing it (privacy-preserving margin): its liquidation "
        "hunters see only the pool's totals.",
    ),
    "isolated": Comparison(
        "isolated margin",
        lambda c: c.replace(margin_mode="isolated"),
        "Each of B's positions is margined on its own: a loss on one cannot drain collateral from another.",
    ),
}
DEFAULT_COMPARISON = "leverage_x2"


def shock_events(config: ModelConfig) -> list[ShockEvent]:
    """The scripted shocks of a configuration."""
    return [ev for ev in config.scenario.events if isinstance(ev, ShockEvent)]


def overrides(controls: Controls, base: ModelConfig) -> dict[str, Any]:
    """Dotted overrides that turn the preset `base` into the configuration `controls` describe."""
    if controls.margin_mode not in (*MARGIN_MODES, MIXED):
        raise ConfigError(f"margin mode '{controls.margin_mode}' is not one of {', '.join(MARGIN_MODES)}, {MIXED}")
    if controls.seed < 0:
        raise ConfigError(f"seed = {controls.seed}: must be a whole number >= 0")
    if controls.liquidation_mechanism not in LIQUIDATION_MECHANISMS:
        raise ConfigError(
            f"liquidation mechanism '{controls.liquidation_mechanism}' is not one of {', '.join(LIQUIDATION_MECHANISMS)}"
        )
    res = f"pool.reserves.{REFERENCE_ASSET}"
    out: dict[str, Any] = {
        "traders.n_traders": int(controls.n_traders),
        "traders.max_leverage": float(controls.max_leverage),
        f"{res}.ltv": float(controls.ltv),
        f"{res}.liquidation_threshold": float(controls.liquidation_threshold),
        f"{res}.liquidation_bonus": float(controls.liquidation_bonus),
        "pool.close_factor": float(controls.close_factor),
        "oracles.latency_steps": int(controls.oracle_latency),
        "oracles.deviation_threshold": float(controls.oracle_deviation),
        "market.depth_scale": float(controls.depth_scale),
        "liquidators.mechanism": controls.liquidation_mechanism,
        "hunters.n_hunters": int(controls.n_hunters),
        "hunters.positions_visible": bool(controls.positions_visible),
        "attacker.enabled": bool(controls.attacker),
    }
    if controls.margin_mode != MIXED:
        out["traders.margin_mode_mix"] = {controls.margin_mode: 1.0}
    if controls.risk_manager != base.risk_manager.enabled:  # a scenario left as it is keeps its own manager setting
        out["risk_manager.enabled"] = bool(controls.risk_manager)
        if controls.risk_manager:
            out["risk_manager.cadence_steps"] = RISK_MANAGER_CADENCE_STEPS
    if base.perps.enabled:  # a scenario without the venue keeps its configuration as it was
        out["perps.funding_cap"] = float(controls.funding_cap)
        out["perps.insurance_fund_usd"] = float(controls.insurance_fund_usd)
    if base.lst.enabled:  # staking collateral: the loopers' leverage
        out["lst.loop_leverage"] = float(controls.loop_leverage)
    if controls.shock_scale != 1.0 and shock_events(base):
        events = []
        for ev in base.scenario.events:
            data = ev.model_dump(mode="python")
            if isinstance(ev, ShockEvent):
                data["size"] = max(MAX_SHOCK, ev.size * float(controls.shock_scale))
            events.append(data)
        out["scenario.events"] = events
    # a lower max leverage than the preset's lowest drawn leverage would be rejected: lower that floor too
    if controls.max_leverage < base.traders.leverage_min:
        out["traders.leverage_min"] = max(1.0, float(controls.max_leverage))
    return out


def build_config(controls: Controls) -> ModelConfig:
    """The validated configuration for `controls`; raises `ConfigError` (one line) if the combination is invalid."""
    base = ModelConfig.from_preset(controls.scenario)
    return base.with_overrides(overrides(controls, base))


def default_asset(config: ModelConfig) -> str:
    """The asset the price panel shows first: the first one a scripted shock hits, else ETH, else the first."""
    shocks = shock_events(config)
    if shocks:
        return shocks[0].asset
    return REFERENCE_ASSET if REFERENCE_ASSET in config.assets else next(iter(config.assets))


def describe_shocks(config: ModelConfig) -> str:
    """The scripted shocks in words, e.g. 'ETH −25% over 30 min from 4 h 00'."""
    minutes = config.market.step_seconds / 60.0
    parts = []
    for ev in shock_events(config):
        start = clock(ev.start, config.market.step_seconds)
        parts.append(f"{ev.asset} {ev.size * 100:+.0f}% over {ev.duration * minutes:.0f} min from {start}")
    return "; ".join(parts) if parts else "no scripted shock"


def clock(step: int | float, step_seconds: float = 60.0) -> str:
    """Simulated time since the start as 'H h MM' (or 'D d H h' after two days)."""
    total_min = round(step * step_seconds / 60.0)
    hours, minutes = divmod(total_min, 60)
    if hours >= 48:
        days, hours = divmod(hours, 24)
        return f"{days} d {hours} h"
    return f"{hours} h {minutes:02d}"


@dataclass(frozen=True)
class Snapshot:
    """A copy of what the panels draw for one run, taken between steps."""

    label: str
    step: int
    total_steps: int
    step_seconds: float
    symbols: tuple[str, ...]
    series: dict[str, np.ndarray]  # per-step columns of the recorder, index = step
    hf: np.ndarray  # health factors of accounts that owe something
    events: list[dict[str, Any]]  # liquidation events so far (a subset of the recorder's fields)
    edges: list[tuple[int, int, float]]  # cascade edges so far (parent event, child event, weight)
    initial_leverage: float = float("nan")

    @property
    def hours(self) -> np.ndarray:
        """Simulated time of each recorded step, in hours."""
        return self.series["step"] * self.step_seconds / 3600.0

    def last(self, column: str) -> float:
        values = self.series[column]
        return float(values[-1]) if len(values) else float("nan")

    @property
    def n_liquidations(self) -> int:
        return len(self.events)

    @property
    def n_endogenous(self) -> int:
        """Liquidations so far that earlier liquidations' sales mostly caused: their share of the account's lost
        health reached `contagion.endogenous_share` (the cascade graph's edges exist only for these)."""
        return sum(1 for ev in self.events if ev["endogenous"])

    @property
    def mean_endogenous_share(self) -> float:
        """Mean over the liquidations so far of the share of each account's lost health (the whole fall from the
        health its owner chose) that earlier liquidations' sales did (fraction; NaN before any liquidation)."""
        return mean_endogenous_share(pd.DataFrame(self.events, columns=list(EVENT_FIELDS)))

    @property
    def has_perps(self) -> bool:
        """Whether the run has the perpetual venue (its columns are recorded)."""
        return "insurance_fund_usd" in self.series

    def total(self, column: str) -> float:
        """A per-step column summed over the run so far (0 when the run does not record it)."""
        values = self.series.get(column)
        return float(values.sum()) if values is not None else 0.0

    @property
    def basis_selling_share(self) -> float:
        """The basis traders' share of the forced spot selling's price impact so far, every risky asset summed
        (the summary's ``cross_venue_share``, over the run so far instead of the shock window): their spot sales'
        log impact over theirs plus the lending liquidators'; NaN before any forced spot selling."""
        basis = liquidation = 0.0
        for s in self.symbols[1:]:
            basis += float(np.clip(-self.series.get(f"basis_spot_dm_{s}", np.zeros(0)), 0.0, None).sum())
            liquidation += float(np.clip(-self.series.get(f"spot_liquidation_dm_{s}", np.zeros(0)), 0.0, None).sum())
        return basis / (basis + liquidation) if basis + liquidation > 0 else float("nan")


EVENT_FIELDS = ("event_id", "step", "account", "owner", "repaid_usd", "endogenous", "endogenous_share", "bad_debt_usd")


# The perpetual venue's columns the perp panels draw (present only in runs with the venue)
PERP_ASSET_FIELDS = ("mark", "index", "premium", "funding_rate", "basis_spot_dm", "spot_liquidation_dm")
PERP_FIELDS = (
    "insurance_fund_usd",
    "vault_equity_usd",
    "perp_bad_debt_usd",
    "n_perp_liquidations",
    "n_adl",
    "adl_volume_usd",
)


def _series_columns(symbols: list[str]) -> list[str]:
    cols = ["step"]
    for s in symbols[1:]:
        cols += [f"price_{s}", f"fundamental_{s}", f"oracle_{s}"]
        cols += [f"{name}_{s}" for name in PERP_ASSET_FIELDS]
    usd = symbols[0]
    cols += [
        f"utilisation_{usd}",
        f"borrow_rate_{usd}",
        "n_liquidations",
        "liquidation_volume_usd",
        "bad_debt_usd",
        "n_liquidatable",
        "aggregate_leverage",
        "total_debt_usd",
        *PERP_FIELDS,
    ]
    return cols


def snapshot(model: ReflexivityModel, label: str) -> Snapshot:
    """Copy what the panels need from a model (call it while nothing steps the model)."""
    symbols = list(model.symbols)
    data = model.datacollector.model_vars
    series = {c: np.asarray(data[c], dtype=float) for c in _series_columns(symbols) if c in data}
    hf = np.asarray(model.hf, dtype=float)
    hf = hf[np.isfinite(hf)]
    events = [{k: ev[k] for k in EVENT_FIELDS} for ev in model.recorder.events]
    lev = series.get("aggregate_leverage")
    return Snapshot(
        label=label,
        step=int(model.steps),
        total_steps=int(model.total_steps),
        step_seconds=float(model.config.market.step_seconds),
        symbols=tuple(symbols),
        series=series,
        hf=hf,
        events=events,
        edges=list(model.recorder.edges),
        initial_leverage=float(lev[0]) if lev is not None and len(lev) else float("nan"),
    )


@dataclass
class Simulation:
    """One run (or two, in comparison mode) built from `Controls`; thread-safe stepping and snapshots.

    Build with `Simulation.start(controls)`, which raises `ConfigError` when the controls (or the comparison's
    changed copy) are invalid.
    """

    controls: Controls
    models: list[ReflexivityModel]
    labels: list[str]
    variant: Controls | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @classmethod
    def start(cls, controls: Controls) -> Simulation:
        config = build_config(controls)
        models = [ReflexivityModel(config, rng=controls.seed)]
        labels = ["A"]
        variant = None
        if controls.compare is not None:
            comparison = COMPARISONS.get(controls.compare)
            if comparison is None:
                raise ConfigError(f"unknown comparison '{controls.compare}' (valid: {', '.join(COMPARISONS)})")
            variant = comparison.change(controls)
            try:
                config_b = build_config(variant)
            except ConfigError as exc:
                raise ConfigError(f"run B ({comparison.label}) is invalid: {exc}") from None
            models.append(ReflexivityModel(config_b, rng=controls.seed))
            labels = ["A (as set)", f"B ({comparison.label})"]
        return cls(controls=controls, models=models, labels=labels, variant=variant)

    @property
    def step_count(self) -> int:
        return int(self.models[0].steps)

    @property
    def total_steps(self) -> int:
        return int(self.models[0].total_steps)

    @property
    def done(self) -> bool:
        return self.step_count >= self.total_steps

    @property
    def config(self) -> ModelConfig:
        return self.models[0].initial_config

    @property
    def has_perps(self) -> bool:
        """Whether the runs have the perpetual venue (the page then shows its panels and controls)."""
        return self.config.perps.enabled

    def step(self, n: int = 1) -> int:
        """Advance every run by up to `n` steps (never past the end); return the steps taken."""
        with self.lock:
            taken = 0
            for _ in range(max(0, int(n))):
                if self.done:
                    break
                for model in self.models:
                    model.step()
                taken += 1
            return taken

    def snapshots(self) -> list[Snapshot]:
        with self.lock:
            return [snapshot(m, label) for m, label in zip(self.models, self.labels, strict=True)]
