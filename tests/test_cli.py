"""The `abm` command: runs, reports, presets, and one-line exit-2 errors that write nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from abm.cli import main

ABM = [sys.executable, "-m", "abm.cli"]
TINY = ["--set", "traders.n_traders=40", "--steps", "30"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_presets_lists_every_preset_with_a_line() -> None:
    res = invoke("presets")
    assert res.exit_code == 0
    names = [line.split()[0] for line in res.output.strip().splitlines()]
    assert {"baseline", "crash", "black_thursday", "leverage_cycle", "contagion"} <= set(names)


def test_run_writes_results_and_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = invoke("run", "--preset", "crash", *TINY, "--seed", "3", "--out", str(out), "--no-figures")
    assert res.exit_code == 0, res.output
    assert "crash: seed 3, 30 steps" in res.output
    for name in ("timeseries.parquet", "events.parquet", "summary.json", "config.toml", "cascade.graphml"):
        assert (out / name).is_file()
    rep = invoke("report", str(out))
    assert rep.exit_code == 0, rep.output
    assert (out / "report.md").read_text().startswith("# Run report: crash")
    assert len(list((out / "figures").glob("*.png"))) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "traders.max_leverag=5"],
            "unknown parameter 'traders.max_leverag' (did you mean 'traders.max_leverage'?)",
        ),
        (["--set", "traders.max_leverage=-1"], "traders.max_leverage = -1"),
        (["--set", "pool.reserves.ETH.ltv=0.9"], "liquidation_threshold = 0.825 must be >= ltv = 0.9"),
        (["--set", "market.correlation=2"], "market.correlation = 2"),
        (["--set", "novalue"], "expected key=value"),
        (["--preset", "crsh"], "unknown preset 'crsh' (did you mean 'crash'?) (valid: "),
        (["--twin", "levered"], "--twin = 'levered': must be one of 'unlevered'"),
        # a billion traders would need about 1,600 GB: refused at once, before anything is built (also as 1e9)
        (["--set", "traders.n_traders=1000000000"], "traders.n_traders = 1000000000: a run needs about 1,600.4 GB"),
        (["--set", "traders.n_traders=1e9"], "traders.n_traders = 1000000000: a run needs about 1,600.4 GB"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    if "--preset" not in args:
        args = ["--preset", "crash", *args]
    proc = subprocess.run([*ABM, "run", *args, "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


EARLY_SHOCK = 'scenario.events=[{kind="shock", asset="ETH", size=-0.3, start=60, duration=5}]'


def test_run_with_a_twin_prints_the_pre_shock_check_and_the_forced_selling(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--set", "traders.n_traders=100", "--set", EARLY_SHOCK, "--steps", "120", "--no-figures"]
    res = invoke("run", "--preset", "crash", *args, "--twin", "unlevered", "--out", str(out))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    line = res.output.strip().splitlines()[-1]
    assert summary["shock_step"] == 60 and summary["pre_shock_liquidations"] == 0
    assert f"forced_selling_drawdown_ETH {summary['forced_selling_drawdown_ETH']:.1%}" in line
    assert f"pre-shock 0 liquidations, max gap {summary['pre_shock_max_gap_ETH']:.2%}" in line
    assert "warning" not in res.output  # a calm start
    assert invoke("report", str(out)).exit_code == 0
    report = (out / "report.md").read_text()
    assert "## Pre-shock check" in report and "0 liquidations" in report and "**Warning" not in report


def test_run_that_was_not_calm_before_the_shock_warns_in_one_line(tmp_path: Path) -> None:
    # a market 20 times thinner and traders rebalancing to their target at every decision (no tolerance band) every
    # 5 minutes: their trades move the price before the shock
    unstable = ["--set", "market.depth_scale=0.05", "--set", "traders.decision_interval_steps=5"]
    unstable += ["--set", "traders.rebalance_tolerance=0"]
    out = tmp_path / "run"
    args = ["--set", "traders.n_traders=40", "--set", EARLY_SHOCK, *unstable, "--steps", "80", "--no-figures"]
    res = invoke("run", "--preset", "crash", *args, "--seed", "3", "--out", str(out))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pre_shock_liquidations"] > 0 or summary["pre_shock_max_gap_ETH"] > 0.03
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "before the shock" in warnings[0]
    assert invoke("report", str(out)).exit_code == 0
    assert "**Warning: the run was not calm before the shock" in (out / "report.md").read_text()


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('base = "crash"\n[traders]\nmax_leverage = = 3\n')
    res = invoke("run", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert res.exit_code == 2
    assert "malformed TOML" in res.output and "line 3" in res.output
    assert not (tmp_path / "run").exists()


def test_missing_replay_csv_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "replay.toml"
    cfg.write_text('base = "baseline"\n[[scenario.events]]\nkind = "replay"\nasset = "ETH"\npath = "missing.csv"\n')
    res = invoke("run", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert res.exit_code == 2
    assert "scenario.events[0].path = 'missing.csv': replay CSV file does not exist" in res.output


def test_config_file_with_base_preset_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "mine.toml"
    cfg.write_text('base = "crash"\n[traders]\nn_traders = 40\nmax_leverage = 2.5\n')
    out = tmp_path / "run"
    res = invoke("run", "--config", str(cfg), "--steps", "20", "--out", str(out), "--no-figures")
    assert res.exit_code == 0, res.output
    saved = (out / "config.toml").read_text()
    assert "max_leverage = 2.5" in saved and 'name = "mine"' in saved


def test_report_on_a_directory_without_results_exits_2(tmp_path: Path) -> None:
    res = invoke("report", str(tmp_path))
    assert res.exit_code == 2
    assert "neither timeseries.parquet" in res.output


def test_console_script_is_installed() -> None:
    exe = shutil.which("abm", path=str(Path(sys.executable).parent))
    assert exe is not None
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "run" in proc.stdout and "sweep" in proc.stdout


def test_memory_estimate_grows_with_the_traders_and_refuses_what_does_not_fit() -> None:
    from abm.config import ModelConfig
    from abm.run import BASE_MEMORY_BYTES, MEMORY_BYTES_PER_TRADER, check_memory, estimated_memory_bytes

    config = ModelConfig.from_preset("crash", {"traders.n_traders": 10_000})
    assert estimated_memory_bytes(config) == BASE_MEMORY_BYTES + 10_000 * MEMORY_BYTES_PER_TRADER
    check_memory(config)  # 275 MB fits on any machine that runs the tests
