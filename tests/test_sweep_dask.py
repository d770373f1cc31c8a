"""The Dask backend: a real `dask scheduler` and `dask worker --nworkers 2` (subprocesses, stopped by PID) run a
small sweep whose rows and per-run tables are bit-identical to a local run's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from abm.errors import UserInputError
from abm.sweep.runner import run_sweep

DASK = str(Path(sys.executable).with_name("dask"))
EXPERIMENT = """
name = "dask_tiny"
base = "crash"
steps = 60
replicates = 2
base_seed = 17

[overrides]
"traders.n_traders" = 50
"assets.ETH.volatility" = 1.5

"scenario.events" = [{ kind = "shock", asset = "ETH", size = -0.3, start = 20, duration = 10 }]

[grid]
"traders.max_leverage" = [2.0, 4.0]

[outputs]
tables = ["events", "cascades"]
metrics = ["hawkes", "endogenous_share"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_dask_rows_equal_local_rows(tmp_path: Path) -> None:
    from distributed import Client

    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    run_sweep(exp, tmp_path / "local", workers=1)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": tmp_path}
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **common
    )
    worker = None
    try:
        worker = subprocess.Popen(
            [
                DASK,
                "worker",
                address,
                "--nworkers",
                "2",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--local-directory",
                str(tmp_path / "dask-worker-space"),
            ],
            **common,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        outcome = run_sweep(exp, tmp_path / "dask", scheduler=address)
        assert outcome.ran == 4 and outcome.failed == 0 and outcome.backend == f"dask {address}"
    finally:
        if worker is not None:
            stop(worker)
        stop(scheduler)
    a = pd.read_parquet(tmp_path / "dask" / "runs.parquet").drop(columns=["wall_seconds"])
    b = pd.read_parquet(tmp_path / "local" / "runs.parquet").drop(columns=["wall_seconds"])
    pd.testing.assert_frame_equal(a, b)  # bit-identical: exact float equality
    assert a["hawkes_n_counts"].notna().any()
    for name in ("events", "cascades"):  # stored by the driver: no shared filesystem needed
        dask_table = pd.read_parquet(tmp_path / "dask" / f"{name}.parquet")
        pd.testing.assert_frame_equal(dask_table, pd.read_parquet(tmp_path / "local" / f"{name}.parquet"))
        assert len(dask_table) > 0
    assert worker is not None and worker.returncode is not None and scheduler.returncode is not None


def test_unreachable_scheduler_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("abm.sweep.runner.CONNECT_TIMEOUT", "1s")
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    with pytest.raises(UserInputError, match="cannot connect"):
        run_sweep(exp, tmp_path / "out", scheduler=f"tcp://127.0.0.1:{free_port()}")
    assert not (tmp_path / "out").exists()
