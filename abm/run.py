"""`abm.run`: one simulation from a configuration and a seed to a `RunResult` (SPEC 5)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from abm.config import ModelConfig
from abm.contagion.cascade import cascade_graph, cascade_metrics
from abm.contagion.distress import distress_metrics, equity_snapshot
from abm.io import atomic_dir
from abm.model import ReflexivityModel
from abm.observation import HF_BIN_EDGES
from abm.progress import Progress

EVENT_COLUMNS = [
    "step",
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
    model: ReflexivityModel | None = field(default=None, repr=False)

    def exposure_graph(self, step: int | None = None, k: int | None = None) -> nx.Graph:
        """The exposure graph (SPEC 4.1) at the end of the run, or at `step` (re-simulated: same seed, same run)."""
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
        """Write timeseries.parquet, events.parquet, write_offs.parquet, hf_histogram.parquet, summary.json,
        config.toml, cascade.graphml and figures/*.png into `out_dir`, atomically (all or nothing)."""
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            self.timeseries.to_parquet(tmp / "timeseries.parquet", index=False)
            self.events.to_parquet(tmp / "events.parquet", index=False)
            self.write_offs.to_parquet(tmp / "write_offs.parquet", index=False)
            hist = pd.DataFrame(self.hf_histogram, columns=hf_bin_labels())
            hist.insert(0, "step", np.arange(len(hist)))
            hist.to_parquet(tmp / "hf_histogram.parquet", index=False)
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
        return cls(
            config=config,
            seed=int(summary["seed"]),
            steps=int(summary["steps"]),
            timeseries=pd.read_parquet(d / "timeseries.parquet"),
            events=pd.read_parquet(d / "events.parquet"),
            write_offs=pd.read_parquet(d / "write_offs.parquet"),
            summary=summary,
            cascade=nx.read_graphml(d / "cascade.graphml", node_type=int),
            hf_histogram=hist,
        )


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


def run(
    config: ModelConfig | str = "crash",
    seed: int = 0,
    steps: int | None = None,
    *,
    progress: bool = False,
    keep_model: bool = True,
) -> RunResult:
    """Run one simulation. `config`: a ModelConfig or a preset name. Same config and seed -> identical result."""
    if isinstance(config, str):
        config = ModelConfig.from_preset(config)
    start = time.perf_counter()
    model = ReflexivityModel(config, rng=seed, steps=steps)
    bar = Progress(model.total_steps, f"run {config.name} seed {seed}", enabled=progress)
    try:
        for _ in range(model.total_steps):
            model.step()
            bar.update()
    finally:
        bar.close()
    return collect_result(model, time.perf_counter() - start, keep_model=keep_model)


def collect_result(model: ReflexivityModel, wall_seconds: float, keep_model: bool = True) -> RunResult:
    """Turn a finished model into a RunResult: tables, cascade graph, summary."""
    from abm.analysis.metrics import summarise

    ts = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    ts["step"] = ts["step"].astype("int64")
    rec = model.recorder
    events = pd.DataFrame(rec.events, columns=EVENT_COLUMNS)
    write_offs = pd.DataFrame([w.__dict__ for w in rec.write_offs], columns=WRITE_OFF_COLUMNS)
    graph = cascade_graph(events, rec.edges)
    risky = model.symbols[1:]
    summary: dict[str, Any] = summarise(ts, events, risky)
    summary.update(cascade_metrics(graph))
    summary.update(distress_metrics(model.start_equity, equity_snapshot(model), events, model.symbols))
    summary["seed"] = model.seed
    summary["steps"] = model.total_steps
    summary["wall_seconds"] = wall_seconds
    return RunResult(
        config=model.initial_config,  # scenario `set` events change model.config; re-runs start from this
        seed=int(model.seed) if model.seed is not None else 0,
        steps=model.total_steps,
        timeseries=ts,
        events=events,
        write_offs=write_offs,
        summary=summary,
        cascade=graph,
        hf_histogram=np.asarray(rec.hf_histogram),
        model=model if keep_model else None,
    )
