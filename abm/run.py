"""`abm.run`: one simulation from a configuration and a seed to a `RunResult` (docs/model.md, 1.3 Process overview
and scheduling; the tables it holds are described in docs/model.md, 4 Contagion and reflexivity measurement).

With ``twin="unlevered"`` the same configuration and seed also run with the traders unlevered (`TWINS`); the model
draws the news from its own random stream (common random numbers), so the twin sees bit-identical fundamentals,
and the difference between the two runs' shock-window drawdowns is what leverage and forced selling caused
(``forced_selling_drawdown_A`` in the summary).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from abm.agents.adversary import adversary_summary
from abm.agents.auction_desk import AUCTION_COLUMNS, auction_metrics
from abm.analysis.metrics import summarise, undefined_as_none
from abm.analysis.shock_window import forced_selling_drawdown, scripted_shocks
from abm.analysis.staking import staking_summary
from abm.config import NUMERAIRE, ModelConfig
from abm.contagion.cascade import cascade_graph, cascade_metrics, venue_metrics
from abm.contagion.distress import distress_metrics
from abm.errors import UserInputError
from abm.io import atomic_dir
from abm.model import ReflexivityModel
from abm.perps import AdlEvent, LiquidationEvent
from abm.progress import Progress
from abm.recording.distress import equity_snapshot
from abm.recording.recorder import HF_BIN_EDGES

EVENT_COLUMNS = [
    "step",
    "distress_step",
    "event_id",
    "account",
    "owner",
    "liquidator",
    "debt_asset",
    "repaid",
    "repaid_usd",
    "collateral_asset",
    "seized",
    "seized_usd",
    "price",
    "market_price",
    "hf_before",
    "bad_debt_usd",
    "endogenous",
    "endogenous_share",
    "loss_exogenous",
    "loss_other",
    "venue",  # "lending" or "perp" (docs/contagion.md, "Cascade graph"): which venue liquidated
]
WRITE_OFF_COLUMNS = [
    "step",
    "account",
    "asset",
    "amount",
    "amount_usd",
    "reserves_usd",
    "lenders_usd",
    "dilution_usd",
]
# The perpetual venue's tables (empty in runs without it): one row per auto-deleveraging fill, and one per
# liquidation fill by waterfall stage (docs/perps.md, "The liquidation waterfall"). Assets are symbols.
ADL_COLUMNS = [f.name for f in fields(AdlEvent)]
PERP_LIQUIDATION_COLUMNS = [f.name for f in fields(LiquidationEvent)]
START_POSITIONS_FILE = "start_positions.npz"  # arrays `collateral` and `debt`: tokens, accounts x assets at step 0
# Counterfactual twins: the overrides that make each from the run's configuration (nothing else changes)
TWINS: dict[str, dict[str, Any]] = {
    "unlevered": {"traders.max_leverage": 1.0, "traders.leverage_min": 1.0},
    # the same run without its adversaries: what they caused (hunter_triggered_liquidations)
    "unhunted": {"hunters.n_hunters": 0, "attacker.enabled": False},
}


@dataclass
class RunResult:
    """Everything one run produced. Tables are pandas DataFrames; `cascade` is a networkx DiGraph."""

    config: ModelConfig
    seed: int
    steps: int
    timeseries: pd.DataFrame
    events: pd.DataFrame
    write_offs: pd.DataFrame
    summary: dict[str, Any]
    cascade: nx.DiGraph
    hf_histogram: np.ndarray  # (steps + 1, bins): accounts with debt per health-factor bin
    # (accounts, assets) tokens at step 0, assets numeraire first; None for a run saved before they were kept
    start_collateral: np.ndarray | None
    start_debt: np.ndarray | None
    # the perpetual venue's tables (`ADL_COLUMNS`, `PERP_LIQUIDATION_COLUMNS`); empty without the venue. adl: one
    # row per ADL fill: the deleveraged `account` (and its `owner`), its `side` (+1 long, -1 short), `size`
    # (tokens), `price` (the bankrupt position's bankruptcy price, USD/token), its ADL `rank` when chosen
    adl: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ADL_COLUMNS))
    perp_liquidations: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PERP_LIQUIDATION_COLUMNS))
    # liquidation auctions (`AUCTION_COLUMNS`; empty with liquidators.mechanism = "keeper"): one row per auction
    auctions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=AUCTION_COLUMNS))
    model: ReflexivityModel | None = field(default=None, repr=False)
    twin: RunResult | None = field(default=None, repr=False)  # the counterfactual twin's run (not saved)

    def table_summary(self) -> dict[str, Any]:
        """The summary keys that come from the tables and the starting positions (`abm.analysis.metrics.summarise`):
        the same values for this run and for it saved and loaded."""
        if self.start_collateral is None or self.start_debt is None:
            raise ValueError(f"this run holds no starting positions ({START_POSITIONS_FILE}); re-run it")
        out = summarise(
            self.timeseries,
            self.events,
            self.config.symbols[1:],
            shocks=scripted_shocks(self.config.scenario.events),
            start_collateral=self.start_collateral,
            start_debt=self.start_debt,
            optimal_utilisation=self.config.reserve(NUMERAIRE).optimal_utilisation,
            adl=self.adl if self.config.perps.enabled else None,
        )
        out.update(auction_metrics(self.auctions))  # zeros without auctions
        if self.config.lst.enabled:  # staking collateral (abm.analysis.staking)
            staking = staking_summary(
                self.config, self.timeseries, self.events, self.write_offs, self.start_collateral, self.start_debt
            )
            out.update(undefined_as_none(staking))
        return out

    def exposure_graph(self, step: int | None = None, k: int | None = None) -> nx.Graph:
        """The exposure graph (docs/contagion.md) at the end of the run, or at `step` (re-simulated: same seed, same run)."""
        from abm.contagion.exposure import exposure_graph

        model = self.model
        if step is not None and (model is None or step != model.steps):
            if not 0 <= step <= self.steps:
                raise ValueError(f"step must be in [0, {self.steps}] (got {step})")
            model = ReflexivityModel(self.config, rng=self.seed, steps=self.steps)
            for _ in range(step):
                model.step()
        if model is None:
            raise ValueError("this result holds no model state; pass a step to re-simulate")
        return exposure_graph(model, k=k)

    def save(self, out_dir: str | Path, figures: bool = True) -> Path:
        """Write timeseries.parquet, events.parquet, write_offs.parquet, adl.parquet, perp_liquidations.parquet,
        auctions.parquet, hf_histogram.parquet, start_positions.npz, summary.json, config.toml, cascade.graphml and figures/*.png
        into `out_dir`, atomically (all or nothing). The twin's run, if any, is not saved: its measures are in the
        summary."""
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            self.timeseries.to_parquet(tmp / "timeseries.parquet", index=False)
            self.events.to_parquet(tmp / "events.parquet", index=False)
            self.write_offs.to_parquet(tmp / "write_offs.parquet", index=False)
            self.adl.to_parquet(tmp / "adl.parquet", index=False)
            self.perp_liquidations.to_parquet(tmp / "perp_liquidations.parquet", index=False)
            self.auctions.to_parquet(tmp / "auctions.parquet", index=False)
            hist = pd.DataFrame(self.hf_histogram, columns=hf_bin_labels())
            hist.insert(0, "step", np.arange(len(hist)))
            hist.to_parquet(tmp / "hf_histogram.parquet", index=False)
            if self.start_collateral is not None and self.start_debt is not None:
                np.savez(tmp / START_POSITIONS_FILE, collateral=self.start_collateral, debt=self.start_debt)
            (tmp / "summary.json").write_text(json.dumps(_json_safe(self.summary), indent=2, sort_keys=True) + "\n")
            (tmp / "config.toml").write_text(self.config.to_toml())
            nx.write_graphml(self.cascade, tmp / "cascade.graphml")
            if figures:
                from abm.analysis.figures import run_figures

                run_figures(
                    self.timeseries, self.events, self.write_offs, self.hf_histogram, self.config, tmp / "figures"
                )
        return out_dir

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult:
        """Read a saved run back (without model state)."""
        d = Path(run_dir)
        config = ModelConfig.from_toml(d / "config.toml")
        summary = json.loads((d / "summary.json").read_text())
        hist = pd.read_parquet(d / "hf_histogram.parquet").drop(columns="step").to_numpy()
        start_collateral = start_debt = None
        if (d / START_POSITIONS_FILE).exists():  # absent from runs saved by earlier versions
            with np.load(d / START_POSITIONS_FILE, allow_pickle=False) as start:
                start_collateral, start_debt = start["collateral"], start["debt"]
        return cls(
            config=config,
            seed=int(summary["seed"]),
            steps=int(summary["steps"]),
            timeseries=pd.read_parquet(d / "timeseries.parquet"),
            events=_with_venue(pd.read_parquet(d / "events.parquet")),
            write_offs=pd.read_parquet(d / "write_offs.parquet"),
            summary=summary,
            cascade=nx.read_graphml(d / "cascade.graphml", node_type=int),
            hf_histogram=hist,
            start_collateral=start_collateral,
            start_debt=start_debt,
            adl=_read_table(d / "adl.parquet", ADL_COLUMNS),
            perp_liquidations=_read_table(d / "perp_liquidations.parquet", PERP_LIQUIDATION_COLUMNS),
            auctions=_read_table(d / "auctions.parquet", AUCTION_COLUMNS),
        )


def _with_venue(events: pd.DataFrame) -> pd.DataFrame:
    """A saved events table with its `venue` column (a run saved before perp liquidations were events had only
    lending ones)."""
    if "venue" not in events.columns:
        events["venue"] = "lending"
    return events


def lending_events(events: pd.DataFrame) -> pd.DataFrame:
    """The lending pool's rows of an events table (its `account` ids are margin-engine accounts)."""
    return events[events["venue"] == "lending"] if len(events) else events


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A saved table, or an empty one with `columns` for a run saved before the table existed."""
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=columns)


def perp_tables(model: ReflexivityModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The venue's ADL fills and liquidation fills as tables (`ADL_COLUMNS`, `PERP_LIQUIDATION_COLUMNS`), asset
    indices as symbols; empty tables without the venue."""
    venue = model.perps
    if venue is None:
        return pd.DataFrame(columns=ADL_COLUMNS), pd.DataFrame(columns=PERP_LIQUIDATION_COLUMNS)
    adl = pd.DataFrame([e.as_dict() for e in venue.adl_events], columns=ADL_COLUMNS)
    liq = pd.DataFrame([e.as_dict() for e in venue.liquidations], columns=PERP_LIQUIDATION_COLUMNS)
    for table in (adl, liq):
        table["asset"] = [model.symbols[int(k)] for k in table["asset"]]
    return adl, liq


def hf_bin_labels() -> list[str]:
    lower = np.concatenate([[0.0], HF_BIN_EDGES[:-1]])
    return [f"hf_{lo:.3g}" for lo in lower]


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float | np.floating):
        return None if math.isnan(obj) or math.isinf(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def check_twin(twin: Any, field_name: str = "twin") -> str | None:
    """`twin` if it names a counterfactual twin (`TWINS`) or is None; else a one-line `UserInputError` naming the
    field, the value and the rule."""
    if twin is None or (isinstance(twin, str) and twin in TWINS):
        return twin
    raise UserInputError(
        f"{field_name} = {twin!r}: must be one of {', '.join(repr(t) for t in TWINS)} "
        "(a counterfactual run of the same configuration and seed)"
    )


def twin_config(config: ModelConfig, twin: str) -> ModelConfig:
    """The configuration of the counterfactual `twin` of `config`: its `TWINS` overrides, nothing else changed."""
    check_twin(twin)
    return config.with_overrides(TWINS[twin])


# Peak resident memory of a run, measured by benchmarks/run.py (crash): about 350 MB at 1,000 traders and 367 MB at
# 10,000 (1,000 steps), 1,629 MB at 1,000,000 (100 steps), i.e. a fixed part (the interpreter, numpy, pandas, Mesa,
# numba's compiler) of about 345 MB plus about 1.3 kB per trader. The estimate rounds both up, so that it errs on
# the side of refusing.
BASE_MEMORY_BYTES = 400e6
MEMORY_BYTES_PER_TRADER = 1.6e3


def estimated_memory_bytes(config: ModelConfig) -> float:
    """Peak memory (bytes) a run of `config` is estimated to need: `BASE_MEMORY_BYTES` plus
    `MEMORY_BYTES_PER_TRADER` per trader (account arrays, agents, the recorder's per-step rows)."""
    return BASE_MEMORY_BYTES + MEMORY_BYTES_PER_TRADER * config.traders.n_traders


def available_memory_bytes() -> float | None:
    """Memory this machine can give a new process now (bytes): Linux's MemAvailable, else the physical memory;
    None where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: ModelConfig) -> None:
    """One-line `UserInputError` (exit 2) before anything is built or written when a run of `config` would not fit
    in this machine's available memory (`estimated_memory_bytes` against `available_memory_bytes`)."""
    need, have = estimated_memory_bytes(config), available_memory_bytes()
    if have is not None and need > have:
        raise UserInputError(
            f"traders.n_traders = {config.traders.n_traders}: a run needs about {need / 1e9:,.1f} GB of memory and "
            f"this machine has {have / 1e9:,.1f} GB available (a run must fit in the available memory)"
        )


def run(
    config: ModelConfig | str = "crash",
    seed: int = 0,
    steps: int | None = None,
    *,
    progress: bool = False,
    keep_model: bool = True,
    twin: str | None = None,
) -> RunResult:
    """Run one simulation. `config`: a ModelConfig or a preset name; `seed`: the integer seed (the model's `rng`).
    Same config and seed -> identical result.

    `twin`: None, or the name of a counterfactual (`TWINS`: "unlevered") run as well, with the same configuration
    and seed but its overrides; its measures join the summary (`add_twin`) and its result is `RunResult.twin`."""
    twin = check_twin(twin)
    if isinstance(config, str):
        config = ModelConfig.from_preset(config)
    check_memory(config)
    start = time.perf_counter()
    with one_blas_thread():
        model = ReflexivityModel(config, rng=seed, steps=steps)
        bar = Progress(model.total_steps, f"run {config.name} seed {seed}", enabled=progress)
        try:
            for _ in range(model.total_steps):
                model.step()
                bar.update()
        finally:
            bar.close()
        result = collect_result(model, time.perf_counter() - start, keep_model=keep_model)
    if twin is not None:
        other = run(twin_config(config, twin), seed=seed, steps=steps, progress=progress, keep_model=keep_model)
        add_twin(result, other, twin)
    return result


_BLAS: ThreadpoolController | None = None


def one_blas_thread() -> AbstractContextManager[object]:
    """The BLAS libraries (numpy's and SciPy's OpenBLAS) on one thread for the block, as in every sweep worker: a
    run's matrix products are small or tall and narrow, where BLAS threads only spin beside the model (at 1,000,000
    traders they burnt about 12 s of CPU and saved no wall time), and a product's rounding then does not depend on
    the machine's core count."""
    global _BLAS
    if _BLAS is None:  # finding the loaded libraries takes milliseconds: once per process
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def add_twin(result: RunResult, twin_result: RunResult, twin: str) -> None:
    """Attach a counterfactual twin's run to `result` and add to its summary, per risky asset A,
    ``twin_shock_drawdown_A`` (the twin's shock-window drawdown, fraction) and ``forced_selling_drawdown_A``
    (`abm.analysis.shock_window.forced_selling_drawdown`: this run's minus the twin's).

    The twin must have seen the same news: raise RuntimeError if any `fundamental_*` column differs in one bit."""
    mine, theirs = result.timeseries, twin_result.timeseries
    cols = [c for c in mine.columns if c.startswith("fundamental_")]
    same = [c for c in theirs.columns if c.startswith("fundamental_")] == cols and len(mine) == len(theirs)
    if not (same and np.array_equal(mine[cols].to_numpy(), theirs[cols].to_numpy())):
        raise RuntimeError(
            f"the {twin} twin of {result.config.name} seed {result.seed} saw different fundamentals: the news must "
            "come from the same random stream whatever the other parameters (common random numbers)"
        )
    extra: dict[str, Any] = {}
    for a in result.config.symbols[1:]:
        levered, unlevered = result.summary[f"shock_drawdown_{a}"], twin_result.summary[f"shock_drawdown_{a}"]
        extra[f"twin_shock_drawdown_{a}"] = unlevered
        extra[f"forced_selling_drawdown_{a}"] = forced_selling_drawdown(levered, unlevered)
    if twin == "unhunted":  # the liquidations the adversaries added on the same news (docs/model.md, 3.3)
        extra["hunter_triggered_liquidations"] = (
            result.summary["n_liquidations"] - twin_result.summary["n_liquidations"]
        )
    result.summary.update(undefined_as_none(extra))
    result.twin = twin_result


def collect_result(model: ReflexivityModel, wall_seconds: float, keep_model: bool = True) -> RunResult:
    """Turn a finished model into a RunResult: tables, cascade graph, summary (every key of it assembled here:
    `RunResult.table_summary`, then the cascade, distress and run keys)."""
    ts = model.datacollector.get_model_vars_dataframe()  # rows 0..T, "step" int64 (`StepRecorder.table`)
    rec = model.recorder
    events = pd.DataFrame(rec.events, columns=EVENT_COLUMNS)
    write_offs = pd.DataFrame([w.__dict__ for w in rec.write_offs], columns=WRITE_OFF_COLUMNS)
    adl, perp_liquidations = perp_tables(model)
    perps = model.perps is not None
    graph = cascade_graph(events, rec.edges, adl=adl if perps else None)
    result = RunResult(
        config=model.initial_config,  # scenario `set` events change model.config; re-runs start from this
        seed=model.seed,
        steps=model.total_steps,
        timeseries=ts,
        events=events,
        write_offs=write_offs,
        summary={},
        cascade=graph,
        hf_histogram=np.asarray(rec.hf_histogram),
        start_collateral=np.asarray(model.start_collateral, dtype=float),
        start_debt=np.asarray(model.start_debt, dtype=float),
        adl=adl,
        perp_liquidations=perp_liquidations,
        auctions=model.auctions.table() if model.auctions is not None else pd.DataFrame(columns=AUCTION_COLUMNS),
        model=model if keep_model else None,
    )
    summary = result.table_summary()
    summary.update(cascade_metrics(graph))
    if perps:  # the graph's split by venue (docs/contagion.md, "Cascade graph")
        summary.update(venue_metrics(graph))
    end_equity = equity_snapshot(model.engine, model.book, model.market.prices)
    # distress is measured on the lending accounts (perp accounts are numbered by the venue)
    summary.update(distress_metrics(model.start_equity, end_equity, lending_events(events), model.symbols))
    summary.update(adversary_summary(model))  # hunters' and the oracle attacker's keys (none when they are off)
    summary["seed"] = model.seed
    summary["steps"] = model.total_steps
    summary["wall_seconds"] = wall_seconds
    result.summary = undefined_as_none(summary)
    return result
