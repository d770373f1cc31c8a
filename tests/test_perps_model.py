"""The perpetual venue inside the model (docs/perps.md): runs without it are unchanged, every preset keeps its
invariants, the premium mean-reverts and basis traders narrow it, ADL comes only after the insurance fund and the
vault are exhausted, the venue's tables round-trip, and bad settings exit 2 with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abm import ModelConfig, ReflexivityModel
from abm.agents import BasisTrader, PerpTrader
from abm.config.loader import preset_names
from abm.errors import ConfigError, InvariantError
from abm.perps import FIRST_ACCOUNT
from abm.recording.recorder import perp_columns
from abm.run import RunResult, run

ABM = [sys.executable, "-m", "abm.cli"]
STAGE_ORDER = {"book": 0, "vault": 1, "insurance": 2, "adl": 3, "bad_debt": 4}


def test_without_the_venue_a_run_is_what_it_always_was() -> None:
    small = {"traders.n_traders": 150}
    default = run(ModelConfig.from_preset("crash", small), seed=3, steps=280)
    # perps explicitly off, with every other perp setting changed: nothing of the venue may be built or drawn
    off = {"perps.enabled": False, "perps.depth_scale": 0.1, "perps.insurance_fund_usd": 0.0, "perps.taker_fee": 0.01}
    disabled = run(ModelConfig.from_preset("crash", {**small, **off}), seed=3, steps=280)
    assert disabled.model is not None and disabled.model.perps is None
    assert not set(perp_columns(disabled.config.symbols)) & set(disabled.timeseries.columns)
    pd.testing.assert_frame_equal(default.timeseries, disabled.timeseries, check_exact=True)
    pd.testing.assert_frame_equal(default.events, disabled.events, check_exact=True)
    assert len(disabled.adl) == 0 and len(disabled.perp_liquidations) == 0
    assert "adl_count" not in disabled.summary


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_keeps_its_invariants_every_step(preset: str) -> None:
    config = ModelConfig.from_preset(preset, {"traders.n_traders": 100, "check_invariants": True})
    model = ReflexivityModel(config, rng=1, steps=290)  # past the presets' shocks (step 240)
    for _ in range(290):
        model.step()
    if config.perps.enabled:
        venue = model.perps
        assert venue is not None
        long_oi, short_oi = venue.open_interest()
        np.testing.assert_allclose(long_oi, short_oi, rtol=1e-9)
        assert any(isinstance(t, PerpTrader) for t in model.traders)
        assert all(isinstance(b, BasisTrader) for b in model.basis_traders) and model.basis_traders


def calm(basis_traders: int) -> pd.DataFrame:
    config = ModelConfig.from_preset(
        "baseline",
        {
            "traders.n_traders": 300,
            "perps.enabled": True,
            "perps.trader_share": 0.5,
            "perps.depth_scale": 0.05,  # a thin perp book, so traders' flows leave a premium
            "basis_traders.n_traders": basis_traders,
        },
    )
    # seed 7: its perp traders push the ETH perp above the index in the calm 900 steps (in most seeds nobody leaves
    # the tolerance band in these 15 hours, or the flows push it below, where cash-and-carry has nothing to earn)
    return run(config, seed=7, steps=900, keep_model=False).timeseries


def autocorrelation_half_life(x: np.ndarray) -> int:
    """The first lag (steps) at which the autocorrelation of x falls below 1/2."""
    d = x - x.mean()
    var = float(d @ d)
    for lag in range(1, len(d) // 2):
        if float(d[:-lag] @ d[lag:]) / var < 0.5:
            return lag
    return len(d)


def test_premium_mean_reverts_and_basis_traders_narrow_it() -> None:
    without, with_basis = calm(0), calm(10)
    interval = ModelConfig().perps.funding_interval_steps
    premium = without["premium_ETH"].to_numpy()
    assert np.abs(premium).max() > 1e-4  # the perp traders' flows did leave a premium
    assert autocorrelation_half_life(premium) <= interval
    assert autocorrelation_half_life(with_basis["premium_ETH"].to_numpy()) <= interval
    # the same news and population; only the cash-and-carry traders differ
    np.testing.assert_array_equal(without["fundamental_ETH"], with_basis["fundamental_ETH"])
    assert with_basis["basis_position_usd"].iloc[-1] > 0
    assert np.abs(with_basis["premium_ETH"]).mean() < np.abs(premium).mean()


@pytest.fixture(scope="module")
def oct_run() -> RunResult:
    config = ModelConfig.from_preset("oct_10_2025", {"traders.n_traders": 300, "check_invariants": True})
    return run(config, seed=0, steps=330)


def test_adl_fires_only_after_the_fund_and_the_vault_are_exhausted_highest_rank_first(oct_run: RunResult) -> None:
    adl, liq = oct_run.adl, oct_run.perp_liquidations
    assert len(adl) > 0
    fund0 = oct_run.config.perps.insurance_fund_usd
    assert (adl["insurance_fund_usd"].abs() <= 1e-9 * fund0).all()  # the fund was empty when the queue was reached
    assert (adl["vault_room"] <= 1e-9 * adl["size"].max()).all()  # and the vault could take nothing more
    for event_id, fills in adl.groupby("event_id", sort=False):
        ranks = fills["rank"].to_numpy()
        assert (np.diff(ranks) <= 0).all(), f"event {event_id}: ADL fills out of rank order {ranks}"
        stages = liq.loc[liq["event_id"] == event_id, "stage"].map(STAGE_ORDER).to_numpy()
        assert (np.diff(stages) >= 0).all() and STAGE_ORDER["adl"] in stages
        bankrupt_side = int(liq.loc[liq["event_id"] == event_id, "side"].iloc[0])
        assert (fills["side"] == -bankrupt_side).all()  # the other side is deleveraged
    summary = oct_run.summary
    assert summary["adl_count"] == len(adl)
    assert summary["adl_volume_usd"] == pytest.approx(float((adl["size"] * adl["price"]).sum()))
    assert summary["insurance_fund_drawdown_usd"] >= fund0 * (1 - 1e-9)


def test_perp_tables_round_trip_through_save_and_load(oct_run: RunResult, tmp_path: Path) -> None:
    oct_run.save(tmp_path / "run", figures=False)
    assert (tmp_path / "run" / "adl.parquet").exists() and (tmp_path / "run" / "perp_liquidations.parquet").exists()
    loaded = RunResult.load(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.adl, oct_run.adl, check_exact=True)
    pd.testing.assert_frame_equal(loaded.perp_liquidations, oct_run.perp_liquidations, check_exact=True)
    again = loaded.table_summary()
    for key in ("adl_count", "adl_volume_usd", "insurance_fund_drawdown_usd", "peak_abs_premium", "cross_venue_share"):
        assert again[key] == oct_run.summary[key], key


def test_a_broken_perp_ledger_is_caught() -> None:
    config = ModelConfig.from_preset("perp_crash", {"traders.n_traders": 60, "check_invariants": True})
    model = ReflexivityModel(config, rng=0, steps=5)
    model.step()
    venue = model.perps
    assert venue is not None and venue.n > FIRST_ACCOUNT
    venue.cash[FIRST_ACCOUNT] += 1_000.0  # USD from nowhere
    with pytest.raises(InvariantError, match=r"conservation of USD|perp ledger"):
        model.step()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"basis_traders.exit_funding_apr": 0.2}, "exit_funding_apr = 0.2 must be < basis_traders.entry_funding_apr"),
        ({"perps.enabled": False}, "perps.trader_share = 0.3 needs perps.enabled = true"),
        ({"perps.enabled": False, "perps.trader_share": 0.0}, "basis_traders.n_traders = 10 needs perps.enabled"),
        ({"perps.trader_share": 1.5}, "perps.trader_share = 1.5"),
    ],
)
def test_bad_perp_settings_are_one_line_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_preset("perp_crash", overrides)


def test_a_bad_perp_value_on_the_command_line_exits_2_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--preset", "perp_crash", "--set", "perps.insurance_fund_usd=-1", "--out", str(out)]
    proc = subprocess.run([*ABM, *args], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "perps.insurance_fund_usd = -1" in lines[0], proc.stderr
    assert not out.exists()


def test_basis_column_is_mark_over_index() -> None:
    ts = run(ModelConfig.from_preset("perp_crash", {"traders.n_traders": 100}), seed=3, steps=40).timeseries
    for a in ("ETH", "BTC"):
        np.testing.assert_allclose(ts[f"basis_{a}"], ts[f"mark_{a}"] / ts[f"index_{a}"] - 1.0, rtol=0, atol=1e-15)


def test_risk_alerts_read_the_lending_and_the_perp_accounts() -> None:
    """The risk alerts' one pass: each trader's worst health over its lending accounts (last health pass) and its
    perp accounts (now), its equity over both and its wallet, then the alert rules (`_wake_alerted`)."""
    from abm.agents.book import RISK_CODE, _wake_alerted
    from abm.lending.kernels import owner_minimum

    config = ModelConfig.from_preset("perp_crash", {"traders.n_traders": 120, "traders.stop_loss_drawdown": 0.02})
    m = ReflexivityModel(config, rng=2, steps=60)
    for _ in range(40):
        m.step()
    book, venue, engine, cfg = m.book, m.perps, m.engine, m.config.traders
    cfg.prudent_target_hf, cfg.prudent_buffer = 3.5, 3.0  # above the health most prudent traders keep: alerts ring
    assert venue.n > FIRST_ACCOUNT  # the perp traders' accounts are in the test
    worst = owner_minimum(m.hf, engine.owner[: engine.n], book.n)
    np.minimum(worst, owner_minimum(venue.health(), venue.owner[FIRST_ACCOUNT : venue.n], book.n), out=worst)
    equity = book.equity(m.market.prices)
    peak, next_decision = book.peak_equity.copy(), book.next_decision.copy()
    t = m.steps
    expected = _wake_alerted(
        worst,
        equity,
        book.risk,
        RISK_CODE["prudent"],
        RISK_CODE["stop_loss"],
        cfg.prudent_buffer,
        cfg.stop_loss_drawdown,
        peak,
        next_decision,
        book.reaction_delay,
        t,
    )
    assert m.wake_alerted(t) == expected > 0
    assert np.array_equal(book.peak_equity, peak) and np.array_equal(book.next_decision, next_decision)
