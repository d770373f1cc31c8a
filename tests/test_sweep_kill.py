"""Resume after a SIGKILL: a real `abm sweep` process killed part way, then `--resume`, gives the same rows and
per-run tables as an uninterrupted sweep; runs.parquet stays a valid file throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from abm.sweep.runner import run_sweep
from abm.sweep.store import RunStore

ABM = str(Path(sys.executable).with_name("abm"))
N_RUNS = 12
EXPERIMENT = f"""
name = "killed"
description = "{N_RUNS} tiny runs"
base = "crash"
steps = 60
replicates = 3
base_seed = 99

[overrides]
"traders.n_traders" = 50
"assets.ETH.volatility" = 1.5

"scenario.events" = [{{ kind = "shock", asset = "ETH", size = -0.3, start = 20, duration = 10 }}]

[grid]
"traders.max_leverage" = [2.0, 3.0, 4.0, 5.0]

[outputs]
tables = ["events", "cascades"]
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_after_sigkill_equals_uninterrupted(tmp_path: Path, workers: int) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [ABM, "sweep", str(exp), "--out", str(killed), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        parts = killed / "parts"
        while time.monotonic() < deadline and proc.poll() is None:
            if parts.is_dir() and len(list(parts.glob("run-*.parquet"))) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    pd.read_parquet(killed / "runs.parquet")  # always a valid file
    done = RunStore(killed).completed()
    assert 3 <= len(done) < N_RUNS

    # at once: two (forked) workers of the killed sweep may still be finishing their runs
    outcome = run_sweep(exp, killed, workers=1, resume=True)
    assert outcome.skipped == len(done) and outcome.ran == N_RUNS - len(done)

    fresh = tmp_path / "fresh"
    run_sweep(exp, fresh, workers=1)
    a = pd.read_parquet(killed / "runs.parquet").drop(columns=["wall_seconds"])
    b = pd.read_parquet(fresh / "runs.parquet").drop(columns=["wall_seconds"])
    assert list(a["run_index"]) == list(range(N_RUNS))
    pd.testing.assert_frame_equal(a, b)
    for name in ("events", "cascades"):
        table = pd.read_parquet(killed / f"{name}.parquet")
        pd.testing.assert_frame_equal(table, pd.read_parquet(fresh / f"{name}.parquet"))
        assert len(table) > 0
    assert not (killed / "parts").exists()
