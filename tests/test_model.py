"""The Mesa model: agents, phases, determinism, invariants every step for every preset, scenarios."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import abm
from abm import ModelConfig, ReflexivityModel
from abm.agents import Lender, LeveragedTrader, Liquidator, OracleUpdater
from abm.config import preset_names
from abm.errors import ConfigError

SMALL = {"traders.n_traders": 120}


def small(preset: str, **extra) -> ModelConfig:
    return ModelConfig.from_preset(preset, {**SMALL, **extra})


def test_four_agent_kinds_live_in_the_models_agent_sets() -> None:
    model = ReflexivityModel(small("baseline"), rng=3, steps=5)
    kinds = set(model.agents_by_type)
    assert {LeveragedTrader, Liquidator, Lender, OracleUpdater} <= kinds
    assert len(model.agents_by_type[LeveragedTrader]) == 120
    assert len(model.agents_by_type[OracleUpdater]) == len(model.symbols) - 1


def test_keyword_parameters_map_dotted_names_for_batch_run() -> None:
    model = ReflexivityModel(preset="crash", rng=1, steps=3, traders__n_traders=50, traders__max_leverage=2.0)
    assert model.config.traders.n_traders == 50
    assert model.config.traders.max_leverage == 2.0
    with pytest.raises(ConfigError, match=r"did you mean 'traders\.max_leverage'"):
        ReflexivityModel(preset="crash", rng=1, traders__max_leverag=2.0)


def test_step_counter_datacollector_and_running_flag() -> None:
    model = ReflexivityModel(small("baseline"), rng=2, steps=10)
    while model.running:
        model.step()
    assert model.steps == 10
    df = model.datacollector.get_model_vars_dataframe()
    assert list(df["step"]) == list(range(11))


@pytest.mark.parametrize("preset", preset_names())
def test_invariants_hold_every_step_for_every_preset(preset: str) -> None:
    """Debug switch on: conservation, pool identity, no negatives, finite prices, no NaN HF, after every step."""
    cfg = small(preset, check_invariants=True)
    steps = 300 if preset != "black_thursday" else 500
    result = abm.run(cfg, seed=5, steps=steps)
    assert len(result.timeseries) == steps + 1


def test_crash_liquidates_and_forced_selling_deepens_the_fall() -> None:
    # 400 traders: with very few, single large traders' rebalancing trades already move the price before the shock
    result = abm.run(ModelConfig.from_preset("crash", {"traders.n_traders": 400}), seed=1, steps=600)
    s = result.summary
    assert s["n_liquidations"] > 0
    assert s["max_drawdown_ETH"] > s["fundamental_drawdown_ETH"]
    assert s["amplification_ETH"] > 1.0
    # most of the liquidated volume comes with the shock (step 240 on), not before it
    ev = result.events
    assert ev.loc[ev["step"] >= 240, "repaid_usd"].sum() > ev.loc[ev["step"] < 240, "repaid_usd"].sum()


def _run_in_subprocess(seed: int, out: str) -> None:
    code = textwrap.dedent(
        f"""
        import abm
        from abm import ModelConfig
        r = abm.run(ModelConfig.from_preset("crash", {SMALL!r}), seed={seed}, steps=400, keep_model=False)
        r.timeseries.to_parquet({out + "/ts.parquet"!r}); r.events.to_parquet({out + "/ev.parquet"!r})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_config_and_seed_give_identical_outputs_across_processes(tmp_path) -> None:
    here = abm.run(small("crash"), seed=11, steps=400, keep_model=False)
    _run_in_subprocess(11, str(tmp_path))
    pd.testing.assert_frame_equal(here.timeseries, pd.read_parquet(tmp_path / "ts.parquet"), check_exact=True)
    pd.testing.assert_frame_equal(here.events, pd.read_parquet(tmp_path / "ev.parquet"), check_exact=True)
    assert len(here.events) > 0


def test_different_seeds_differ() -> None:
    a = abm.run(small("crash"), seed=1, steps=300, keep_model=False)
    b = abm.run(small("crash"), seed=2, steps=300, keep_model=False)
    assert not np.allclose(a.timeseries["price_ETH"], b.timeseries["price_ETH"])


def test_set_event_changes_a_parameter_at_its_step() -> None:
    cfg = small(
        "baseline",
        **{"scenario.events": [{"kind": "set", "step": 4, "parameter": "oracles.latency_steps", "value": 9}]},
    )
    model = ReflexivityModel(cfg, rng=0, steps=6)
    for _ in range(3):
        model.step()
    assert model.config.oracles.latency_steps == 1
    model.step()
    assert model.config.oracles.latency_steps == 9
    assert model.initial_config.oracles.latency_steps == 1


def test_shock_is_spread_evenly_in_log_terms() -> None:
    cfg = small(
        "baseline",
        **{
            "assets.ETH.volatility": 0.0,
            "assets.BTC.volatility": 0.0,
            "scenario.events": [{"kind": "shock", "asset": "ETH", "size": -0.2, "start": 3, "duration": 4}],
        },
    )
    result = abm.run(cfg, seed=0, steps=10, keep_model=False)
    f = result.timeseries["fundamental_ETH"].to_numpy()
    assert f[2] == pytest.approx(3000.0)
    assert f[6] == pytest.approx(3000.0 * 0.8)
    steps = np.diff(np.log(f[2:7]))
    assert np.allclose(steps, np.log(0.8) / 4)


def test_replay_follows_a_csv_path_relative_to_its_first_price(tmp_path) -> None:
    csv = tmp_path / "path.csv"
    csv.write_text("step,price\n0,100\n1,90\n2,80\n3,120\n")
    cfg = small(
        "baseline",
        **{
            "assets.ETH.volatility": 0.0,
            "scenario.events": [{"kind": "replay", "asset": "ETH", "path": str(csv), "start": 2}],
        },
    )
    result = abm.run(cfg, seed=0, steps=6, keep_model=False)
    f = result.timeseries["fundamental_ETH"].to_numpy()
    assert np.allclose(f[2:6] / f[2], [1.0, 0.9, 0.8, 1.2])


def test_missing_replay_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="replay CSV file does not exist"):
        small("baseline", **{"scenario.events": [{"kind": "replay", "asset": "ETH", "path": str(tmp_path / "no.csv")}]})
