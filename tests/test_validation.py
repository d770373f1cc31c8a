"""Model against history: the registered "validation" metric on small runs, and experiments/validation.py turning a
tiny sweep into model_vs_history.md (one-line errors, exit 2, nothing written, for a missing or wrong sweep)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

import abm
from abm.sweep.outputs import CASCADE_WINDOW_STEPS, METRICS, validation_metric
from abm.sweep.runner import run_sweep
from abm.sweep.store import read_runs

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "validation.py"
SHARES = (
    "collateral_liquidated_share",
    "debt_repaid_share",
    "bad_debt_share",
    "accounts_liquidated_share",
    "busiest_minute_share",
    "busiest_window_share",
)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validation_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def crash_run() -> abm.RunResult:
    config = abm.ModelConfig.from_preset("crash", {"traders.n_traders": 300})
    return abm.run(config, seed=3, steps=420, keep_model=False)


def test_validation_metric_is_registered_and_measures_the_shock(crash_run: abm.RunResult) -> None:
    assert METRICS["validation"] is validation_metric
    m = validation_metric(crash_run)
    onset = crash_run.summary["shock_step"]
    ts = crash_run.timeseries.set_index("step")
    events = crash_run.events[crash_run.events["step"] >= onset]
    assert len(events) > 0, "the crash should liquidate someone"

    # shares against the state the shock met (the row before the onset)
    seized = events["seized_usd"].sum()
    assert m["collateral_liquidated_share"] == pytest.approx(seized / ts.loc[onset - 1, "total_collateral_usd"])
    assert m["debt_repaid_share"] == pytest.approx(events["repaid_usd"].sum() / ts.loc[onset - 1, "total_debt_usd"])
    assert m["utilisation_start_USD"] == ts.loc[onset - 1, "utilisation_USD"]
    assert m["utilisation_peak_USD"] >= ts.loc[onset:, "utilisation_USD"].iloc[0]
    assert m["borrow_rate_peak_USD"] == ts.loc[onset:, "borrow_rate_USD"].max()
    for key in SHARES:
        assert 0.0 <= m[key] <= 1.0, key

    # clustering and timing of the seized collateral
    per_step = events.groupby("step")["seized_usd"].sum()
    assert m["busiest_minute_share"] == pytest.approx(per_step.max() / seized)
    assert m["busiest_minute_share"] <= m["busiest_window_share"]
    trailing = per_step.reindex(range(onset, int(ts.index.max()) + 1), fill_value=0.0).rolling(
        CASCADE_WINDOW_STEPS, min_periods=1
    )
    assert m["busiest_window_share"] == pytest.approx(trailing.sum().max() / seized)
    assert m["minutes_to_first_liquidation"] == events["step"].min() - onset
    assert m["minutes_to_first_liquidation"] <= m["minutes_to_90pct_liquidated"]


def test_validation_metric_without_liquidations_or_without_a_shock() -> None:
    unlevered = abm.ModelConfig.from_preset(
        "crash", {"traders.n_traders": 100, "traders.max_leverage": 1.0, "traders.leverage_min": 1.0}
    )
    m = validation_metric(abm.run(unlevered, seed=1, steps=300, keep_model=False))
    assert m["collateral_liquidated_share"] == 0.0 and m["bad_debt_share"] == 0.0
    assert math.isnan(m["busiest_minute_share"]) and math.isnan(m["minutes_to_first_liquidation"])

    calm = abm.ModelConfig.from_preset("baseline", {"traders.n_traders": 100})
    assert calm.scenario.events == []
    m = validation_metric(abm.run(calm, seed=1, steps=50, keep_model=False))
    assert all(math.isnan(v) for v in m.values())


TINY_SWEEP = """
name = "validation_tiny"
replicates = 1
base_seed = 7
steps = 300

[overrides]
"traders.n_traders" = 100

[cases.crash]
base = "crash"

[cases."crash, 10 Oct 2025 moves"]
base = "crash"
"scenario.events" = [
    { kind = "shock", asset = "ETH", size = -0.16, start = 240, duration = 40 },
    { kind = "shock", asset = "BTC", size = -0.12, start = 240, duration = 40 },
]

[outputs]
metrics = ["validation"]
"""


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("validation")
    (root / "tiny.toml").write_text(TINY_SWEEP)
    run_sweep(root / "tiny.toml", root / "runs", workers=1)
    return root / "runs"


def test_post_processing_writes_the_tables_of_the_cases_in_the_sweep(tiny_sweep: Path, tmp_path: Path) -> None:
    script = _script()
    out = tmp_path / "report"
    assert script.main(["--runs", str(tiny_sweep), "--out", str(out)]) == 0
    text = (out / "model_vs_history.md").read_text()

    assert "| quantity | crash | crash, 10 Oct 2025 moves |" in text
    assert "| runs finished (of those run) | 1 of 1 | 1 of 1 |" in text
    assert "100 traders" in text
    # history rows only for the episodes whose case was run
    assert "| 10-11 Oct 2025 | liquidations in the busiest minute |" in text
    assert "Black Thursday" not in text and "FTX" not in text

    # a cell is the run's value, formatted
    rows = read_runs(tiny_sweep).set_index("case")
    amp = rows.loc["crash", "amplification_ETH"]
    assert f"| market fall / fundamental fall (`amplification_ETH`) | {amp:.2f} |" in text
    drawdown = rows.loc["crash, 10 Oct 2025 moves", "shock_drawdown_ETH"]
    assert f"| 10-11 Oct 2025 | ETH fall | about 16%; BTC 12-16% [12, 13] | {100 * drawdown:.1f}% |" in text

    # the same sweep gives the same file
    assert script.main(["--runs", str(tiny_sweep), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "model_vs_history.md").read_text() == text


def test_cell_gives_mean_range_and_the_runs_that_define_it() -> None:
    script = _script()
    assert script.cell(pd.Series([0.1, 0.3]), "pct") == "20.0% (10.0% to 30.0%)"
    assert script.cell(pd.Series([12.0, np.nan]), "min") == "12 [1 of 2 runs]"
    assert script.cell(pd.Series([np.nan]), "ratio") == "n/a"


def test_missing_or_wrong_sweep_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_sweep: Path
) -> None:
    script = _script()
    out = tmp_path / "out"

    assert script.main(["--runs", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such directory" in err and "abm sweep experiments/validation.toml" in err

    (tmp_path / "empty").mkdir()
    assert script.main(["--runs", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no sweep.json" in capsys.readouterr().err

    wrong = tmp_path / "grid"
    wrong.mkdir()
    (wrong / "sweep.json").write_text(json.dumps({"name": "leverage_vs_depth", "kind": "grid"}))
    assert script.main(["--runs", str(wrong), "--out", str(out)]) == 2
    assert "needs a [cases] design" in capsys.readouterr().err

    meta = json.loads((tiny_sweep / "sweep.json").read_text())
    no_metric = tmp_path / "no_metric"
    no_metric.mkdir()
    (no_metric / "sweep.json").write_text(json.dumps({**meta, "outputs": {"tables": [], "metrics": []}}))
    assert script.main(["--runs", str(no_metric), "--out", str(out)]) == 2
    assert "did not compute the metric 'validation'" in capsys.readouterr().err

    assert not out.exists(), "nothing is written on an error"
