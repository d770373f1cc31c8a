"""Resume after a SIGKILL: a real `abm sweep` process killed part way, then `--resume`, gives the same rows and
per-run tables as an uninterrupted sweep; runs.parquet stays a valid file throughout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from process_helpers import alive, children

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


LONG_RUNS = """
name = "long"
description = "runs far longer than the test waits"
base = "crash"
steps = 200000
replicates = 2
base_seed = 7

[overrides]
"traders.n_traders" = 300

[grid]
"traders.max_leverage" = [2.0, 3.0]
"""


# a test runner's processes may ignore SIGINT, which their children would inherit: restore the default, then exec
DEFAULT_SIGINT_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.skipif(sys.platform != "linux", reason="reads the sweep's worker processes from /proc")
def test_ctrl_c_stops_the_sweep_and_its_workers_at_once(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) mid-run: the sweep ends with status 130 and one line, its
    workers end with it rather than finishing their runs (each far longer than the test's bound), and the store is
    valid and unlocked for --resume."""
    exp = tmp_path / "exp.toml"
    exp.write_text(LONG_RUNS)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", DEFAULT_SIGINT_EXEC, ABM, "sweep", str(exp), "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job has
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            workers = children(proc.pid)
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before the interrupt: {proc.communicate()[1][-500:]}")
        assert len(workers) >= 2, "the sweep did not start its two workers"
        time.sleep(1.0)  # into their runs
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        for pid in [proc.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"abm: sweep interrupted; finished runs are saved in {out}: rerun with --resume"
    )
    assert "Traceback" not in err
    for pid in workers:
        assert not alive(pid)
    pd.read_parquet(out / "runs.parquet")  # a valid file
    store = RunStore(out)
    store.lock()  # --resume may start at once
    store.unlock()
