"""Local sweeps: 1 worker equals 2 workers row for row and table for table, order independence, error rows, the
output directory rules, resume (rows and per-run tables), saved time series, the store's normal form, case designs,
and the sweep report (grid, Sobol, cases)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from process_helpers import alive

from abm.analysis import style
from abm.errors import UserInputError
from abm.io import atomic_write_parquet
from abm.sweep.experiment import load_experiment
from abm.sweep.report import sweep_report
from abm.sweep.runner import run_sweep, start_method, sweep_tasks, worker_pool
from abm.sweep.store import RunStore, normalise_rows, read_runs, read_table
from abm.sweep.worker import execute

TINY = """
name = "tiny"
description = "two points x two replicates, 50 traders, 60 steps"
base = "crash"
steps = 60
replicates = 2
base_seed = 5
save_timeseries = [2]

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

TIME_COLUMNS = ["wall_seconds"]
TABLES = ("events", "cascades")


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "runs.parquet").drop(columns=TIME_COLUMNS)


def assert_same_tables(a: Path, b: Path) -> None:
    """runs.parquet (but for wall times) and every per-run table are equal, bit for bit."""
    pd.testing.assert_frame_equal(table(a), table(b))
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(a / f"{name}.parquet"), pd.read_parquet(b / f"{name}.parquet"))


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny experiment run in-process (one worker)."""
    d = tmp_path_factory.mktemp("serial")
    run_sweep(write(d, TINY), d / "out", workers=1)
    return d / "out"


def test_sweep_writes_every_row_and_metadata(serial: Path) -> None:
    df = pd.read_parquet(serial / "runs.parquet")
    assert list(df["run_index"]) == [0, 1, 2, 3]
    assert list(df["point"]) == [0, 0, 1, 1] and list(df["replicate"]) == [0, 1, 0, 1]
    assert (df["status"] == "ok").all() and df["error"].isna().all()
    assert list(df["traders.max_leverage"]) == [2.0, 2.0, 4.0, 4.0]
    exp = load_experiment(serial / "experiment.toml")
    assert list(df["seed"]) == [exp.seed(i) for i in range(4)]
    for col in ("amplification_ETH", "bad_debt_usd", "liquidation_volume_usd", "n_liquidations", "steps"):
        assert col in df.columns
    assert (df["steps"] == 60).all()
    assert not (serial / "parts").exists() and not (serial / ".sweep.lock").exists()
    # [outputs]: the named metrics are columns, the per-run tables hold every run's rows behind its run_index
    assert {"hawkes_n_counts", "hawkes_n_mle", "mean_endogenous_share"} <= set(df.columns)
    events = pd.read_parquet(serial / "events.parquet")
    cascades = pd.read_parquet(serial / "cascades.parquet")
    assert events.columns[0] == "run_index" and "hf_before" in events.columns
    assert list(events.groupby("run_index").size().reindex(range(4), fill_value=0)) == list(df["n_liquidations"])
    assert list(cascades.groupby("run_index")["size"].sum().reindex(range(4), fill_value=0)) == list(
        df["n_liquidations"]
    )  # every liquidation is in exactly one cascade
    assert events["run_index"].is_monotonic_increasing and len(events) > 0
    meta = json.loads((serial / "sweep.json").read_text())
    assert meta["n_runs"] == 4 and meta["parameters"] == ["traders.max_leverage"]
    # save_timeseries = [2]: only run 2 keeps its tables
    assert sorted(p.name for p in (serial / "runs").iterdir()) == ["run-000002"]
    ts = pd.read_parquet(serial / "runs" / "run-000002" / "timeseries.parquet")
    assert len(ts) == 61


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_two_workers_equal_one_worker(
    serial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setattr("abm.sweep.runner.start_method", lambda: method)
    out = tmp_path / "out"
    outcome = run_sweep(write(tmp_path, TINY), out, workers=2)
    assert outcome.ran == 4 and outcome.failed == 0 and outcome.backend == f"2 local processes ({method})"
    assert_same_tables(out, serial)


def test_workers_are_forked_only_without_other_threads() -> None:
    # a fresh interpreter runs only its main thread (this test process may hold threads of earlier tests)
    fresh = subprocess.run(
        [sys.executable, "-c", "from abm.sweep.runner import start_method; print(start_method())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert fresh == ("fork" if sys.platform == "linux" else "spawn")
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)  # e.g. a progress bar's monitor, a notebook kernel's I/O
    thread.start()
    try:
        assert start_method() == "spawn"
    finally:
        stop.set()
        thread.join()


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max(lib["num_threads"] for lib in threadpool_info())


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_use_one_blas_thread(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    import numpy  # noqa: F401  (loads OpenBLAS here, so a forked worker inherits its pool)

    if blas_threads() < 2:
        pytest.skip("BLAS runs one thread here already (one core, or OPENBLAS_NUM_THREADS=1)")
    monkeypatch.setattr("abm.sweep.runner.start_method", lambda: method)
    pool, started = worker_pool(2)
    with pool:
        assert started == method
        assert pool.submit(blas_threads).result(timeout=60) == 1
    assert blas_threads() >= 2  # the limit is the workers' own: this process keeps its threads


ORPHANED_WORKER = """
import os, sys, time
import abm.sweep.runner as runner
from abm.sweep.store import RunStore

runner.start_method = lambda: sys.argv[2]
store = RunStore(sys.argv[1])
store.lock()
pool, method = runner.worker_pool(2, store.lock_fileno())
running = [pool.submit(time.sleep, 60) for _ in range(2)]  # long runs, still going when the sweep dies
time.sleep(4.0 if method == "spawn" else 0.5)  # a spawned worker imports abm first
print(" ".join(str(pid) for pid in pool._processes), flush=True)
os.kill(os.getpid(), 9)  # the sweep is killed: nothing of it gets to clean up
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_killed_sweeps_workers_die_and_free_its_lock(tmp_path: Path, method: str) -> None:
    if sys.platform != "linux":
        pytest.skip("workers die with their sweep on Linux only")
    # read only the first line: workers that outlived the sweep would keep the pipe open
    cmd = [sys.executable, "-c", ORPHANED_WORKER, str(tmp_path), method]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert proc.wait(timeout=60) == -signal.SIGKILL
    try:
        assert len(workers) == 2
        deadline = time.monotonic() + 30  # the kernel kills them at once; a loaded machine may take seconds to reap
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)  # killed with their sweep, mid-run
        store = RunStore(tmp_path)
        store.lock()  # --resume may start at once
        store.unlock()
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_rows_do_not_depend_on_execution_order(serial: Path, tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, TINY))
    tasks = list(sweep_tasks(exp, tmp_path / "unused", range(exp.n_runs)))
    tasks = [dataclasses.replace(t, save_dir=None) for t in tasks]
    random.Random(1).shuffle(tasks)
    rows = [execute(t).row for t in reversed(tasks)]
    got = normalise_rows(rows, exp.parameters).drop(columns=TIME_COLUMNS)
    pd.testing.assert_frame_equal(got, table(serial))


def test_out_directory_rules(serial: Path, tmp_path: Path) -> None:
    before = (serial / "runs.parquet").read_bytes()
    same = write(tmp_path, TINY)
    with pytest.raises(UserInputError, match=r"already holds this experiment.*--resume"):
        run_sweep(same, serial, workers=1)
    other = write(tmp_path, TINY.replace("base_seed = 5", "base_seed = 6"), "other.toml")
    with pytest.raises(UserInputError, match=r"holds a different experiment.*base_seed differ"):
        run_sweep(other, serial, workers=1, resume=True)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not empty and holds no sweep"):
        run_sweep(same, tmp_path / "busy", workers=1)
    assert (serial / "runs.parquet").read_bytes() == before
    # resuming a complete sweep runs nothing; re-describing it is still the same experiment
    renamed = write(tmp_path, TINY.replace('description = "two', 'description = "2'), "renamed.toml")
    outcome = run_sweep(renamed, serial, workers=1, resume=True)
    assert outcome.ran == 0 and outcome.skipped == 4


def test_resume_runs_only_missing_rows(serial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    exp = load_experiment(write(tmp_path, TINY))
    run_sweep(exp, out, workers=1)
    # keep runs 0 and 3 (one merged, one as unmerged parts), as if the sweep had been killed; run 1 was killed
    # between writing its table part and its row: a table part without a row, which must not count
    store = RunStore(out, exp.parameters, TABLES)
    rows = store.rows()
    events = pd.read_parquet(out / "events.parquet")
    cascades = pd.read_parquet(out / "cascades.parquet")
    atomic_write_parquet(normalise_rows([rows[0]], exp.parameters), out / "runs.parquet")
    for name, frame in (("events", events), ("cascades", cascades)):
        atomic_write_parquet(frame[frame["run_index"] == 0], out / f"{name}.parquet")

    def own(frame: pd.DataFrame, i: int) -> pd.DataFrame:
        return frame[frame["run_index"] == i].drop(columns="run_index")

    store.add(rows[3], {"events": own(events, 3), "cascades": own(cascades, 3)})
    store.table_parts("events").mkdir(parents=True, exist_ok=True)
    orphan = own(events, 3).assign(repaid_usd=-1.0)  # not run 1's real table: the resumed run must replace it
    atomic_write_parquet(
        orphan.assign(run_index=1)[["run_index", *orphan.columns]], store.table_parts("events") / "run-00000001.parquet"
    )
    assert store.completed() == {0, 3}
    assert set(store.read_table("events")["run_index"]) <= {0, 3}  # the orphan part is not read
    seen: list[int] = []
    outcome = run_sweep(exp, out, workers=1, resume=True, on_row=lambda r: seen.append(r["run_index"]))
    assert sorted(seen) == [1, 2] and outcome.ran == 2 and outcome.skipped == 2
    assert_same_tables(out, serial)
    assert not (out / "parts").exists()


def test_a_partial_sweeps_tables_include_unmerged_parts(serial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    exp = load_experiment(write(tmp_path, TINY))
    store = RunStore(out, exp.parameters, TABLES)
    store.lock()
    try:
        store.initialise()
        for task in sweep_tasks(exp, out, [2, 0]):
            output = execute(dataclasses.replace(task, save_dir=None))
            store.add(output.row, output.tables)
    finally:
        store.unlock()
    full = pd.read_parquet(serial / "events.parquet")
    got = store.read_table("events")
    pd.testing.assert_frame_equal(got, full[full["run_index"].isin([0, 2])].reset_index(drop=True))
    with pytest.raises(ValueError, match="not kept"):
        store.add({"run_index": 1}, {"write_offs": pd.DataFrame({"a": [1]})})


def test_compactions_are_spaced_by_their_own_cost(serial: Path, tmp_path: Path) -> None:
    """A pending part is merged once `every_seconds` passed, unless the last compaction was slow: then only after
    COMPACTION_SPACING times its duration (a compaction rewrites every row)."""
    store = RunStore(tmp_path / "out", ["traders.max_leverage"])
    store.initialise()
    store.add(RunStore(serial).rows()[0])
    store._last_compact -= 31.0  # 31 s since the last compaction
    store._compact_seconds = 1.0  # which took 1 s: the next one is due 50 s after it
    assert not store.maybe_compact(every_seconds=30.0)
    assert (store.parts).is_dir() and len(pd.read_parquet(store.runs_path)) == 0
    store._compact_seconds = 0.1  # a quick one: every_seconds rules
    assert store.maybe_compact(every_seconds=30.0)
    assert len(pd.read_parquet(store.runs_path)) == 1 and not store.parts.exists()
    assert store._compact_seconds >= 0.0 and not store.maybe_compact()  # nothing pending


def test_normal_form_is_independent_of_row_order(serial: Path) -> None:
    rows = RunStore(serial).rows()
    a = normalise_rows(rows, ["traders.max_leverage"])
    b = normalise_rows(list(reversed(rows)), ["traders.max_leverage"])
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, pd.read_parquet(serial / "runs.parquet"))


def test_failing_run_is_an_error_row_and_the_sweep_goes_on(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text("step,price\n0,3000\n1,2990\n2,2950\n")
    (tmp_path / "bad.csv").write_text("step,price\n0,3000\n1,oops\n")  # exists, so the config validates
    text = """
name = "failing"
base = "baseline"
steps = 20
[overrides]
"traders.n_traders" = 30
[grid]
"scenario.events" = [
  [{kind = "replay", asset = "ETH", path = "good.csv"}],
  [{kind = "replay", asset = "ETH", path = "bad.csv"}],
]
"""
    out = tmp_path / "out"
    outcome = run_sweep(write(tmp_path, text), out, workers=1)
    assert outcome.ran == 2 and outcome.failed == 1
    df = pd.read_parquet(out / "runs.parquet")
    assert list(df["status"]) == ["ok", "error"]
    assert df["error"].iloc[0] is pd.NA or pd.isna(df["error"].iloc[0])
    assert "UserInputError" in df["error"].iloc[1] and "not a number" in df["error"].iloc[1]
    assert pd.isna(df["bad_debt_usd"].iloc[1]) and df["bad_debt_usd"].iloc[0] == 0.0
    assert "good.csv" in df["scenario.events"].iloc[0]  # list values are stored as JSON text
    report = sweep_report(out).read_text()
    assert "Failed runs (1)" in report and "not a number" in report


CASES = """
name = "tiny_cases"
replicates = 3
base_seed = 8
steps = 60
save_timeseries = [5]

[overrides]
"traders.n_traders" = 50
"assets.ETH.volatility" = 1.5

[cases.crash]
base = "crash"

[cases."crash, max_leverage 5"]
base = "crash"
"traders.max_leverage" = 5.0

[cases.baseline]
base = "baseline"

[outputs]
tables = ["cascades"]

[report]
metrics = ["amplification_ETH", "n_liquidations", "reflexivity_index"]
optional_metrics = ["bad_debt_usd", "not_yet_a_summary_key"]
"""


def test_case_sweep_and_its_behaviour_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outcome = run_sweep(write(tmp_path, CASES), out, workers=1)
    assert outcome.ran == 9 and outcome.failed == 0
    runs = read_runs(out)
    assert list(runs["case"]) == [c for c in ("crash", "crash, max_leverage 5", "baseline") for _ in range(3)]
    assert (runs["steps"] == 60).all() and (out / "runs" / "run-000005" / "timeseries.parquet").exists()
    assert len(pd.read_parquet(out / "runs" / "run-000005" / "timeseries.parquet")) == 61
    assert read_table(out, "cascades")["run_index"].isin(runs["run_index"]).all()
    # the resolved experiment (each case's base written out) is the same experiment
    again = load_experiment(out / "experiment.toml")
    assert again.fingerprint() == load_experiment(tmp_path / "exp.toml").fingerprint()
    assert again.point_config(1).traders.max_leverage == 5.0

    body = sweep_report(out).read_text()
    assert "## Cases: mean ± sd over 3 seeds" in body and "figures/cases.png" in body
    assert (out / "figures" / "cases.png").stat().st_size > 10_000
    table = body.split("## Cases")[1].splitlines()
    # the report's metrics, then the optional ones that the runs have
    assert table[2] == "| case | amplification_ETH | n_liquidations | reflexivity_index | bad_debt_usd | seeds |"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[4:7]]
    assert [c[0] for c in cells] == ["crash", "crash, max_leverage 5", "baseline"]  # the experiment's order
    for row, (case, group) in zip(cells, runs.groupby("case", sort=False), strict=True):
        assert row[0] == case
        assert row[1] == style.mean_sd(group["amplification_ETH"])
        assert row[2] == style.mean_sd(group["n_liquidations"])
        assert row[-1] == "3"


def test_grid_report(serial: Path, tmp_path: Path) -> None:
    out = tmp_path / "two"
    text = TINY.replace("save_timeseries = [2]\n", "").replace(
        '"traders.max_leverage" = [2.0, 4.0]', '"traders.max_leverage" = [2.0, 4.0]\n"market.depth_scale" = [0.5, 1.0]'
    )
    text = text.replace("replicates = 2", "replicates = 1")
    text += '[report]\nmetrics = ["max_drawdown_ETH", "bad_debt_usd", "amplification_ETH"]\n'
    run_sweep(write(tmp_path, text), out, workers=1)
    report = sweep_report(out)
    body = report.read_text()
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "heatmap_max_drawdown_ETH.png" in figs and "lines_max_drawdown_ETH.png" in figs
    for name in figs:
        assert f"figures/{name}" in body
    assert "## Findings" in body and "Cell means" in body
    assert "Bad debt vs amplification" not in body or "Spearman" in body


def test_sobol_report(tmp_path: Path) -> None:
    text = """
name = "tiny_sobol"
base = "baseline"
steps = 40
base_seed = 2
[overrides]
"traders.n_traders" = 30
[design]
kind = "sobol"
n = 2
[design.bounds]
"assets.ETH.volatility" = [0.3, 2.0]
"market.depth_scale" = [0.5, 2.0]
[report]
metrics = ["max_drawdown_ETH", "bad_debt_usd"]
"""
    out = tmp_path / "out"
    run_sweep(write(tmp_path, text), out, workers=1)
    assert len(read_runs(out)) == 8  # N (D + 2)
    body = sweep_report(out).read_text()
    assert (out / "figures" / "sobol_indices.png").exists()
    assert "## Sobol sensitivity" in body and "S1" in body
    assert "bad_debt_usd: skipped (the same value at every point)" in body
    assert (out / "figures" / "design_max_drawdown_ETH.png").exists()
    # the same runs give the same report, confidence intervals included, whatever numpy's global random state
    np.random.seed(12345)  # noqa: NPY002 (the legacy global state is what an unseeded bootstrap draws from)
    assert sweep_report(out).read_text() == body


def test_resume_warns_when_the_code_changed(
    serial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert json.loads((serial / "sweep.json").read_text())["code_digest"]
    monkeypatch.setattr("abm.sweep.runner.code_digest", lambda: "0123456789abcdef")
    outcome = run_sweep(write(tmp_path, TINY), serial, workers=1, resume=True)
    assert outcome.ran == 0
    assert "code changed since this sweep began" in capsys.readouterr().err


def test_report_flags_runs_that_left_equilibrium_before_the_shock(serial: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(serial, out)
    runs = pd.read_parquet(out / "runs.parquet")
    assert (runs["pre_shock_liquidations"] == 0).all()  # the tiny sweep's runs start in equilibrium
    assert "All 4 runs stayed in equilibrium before the shock" in sweep_report(out).read_text()
    # one run liquidated before its shock, another drifted 5% from its fundamental: both are named by cell
    runs.loc[0, "pre_shock_liquidations"] = 7
    runs.loc[3, "pre_shock_max_gap_ETH"] = 0.05
    atomic_write_parquet(runs, out / "runs.parquet")
    body = sweep_report(out).read_text()
    assert "**2 of 4 runs left equilibrium before the shock** (1 with liquidations before it, 1 with a market" in body
    assert "(traders.max_leverage=2): 1 run, 7 pre-shock liquidations" in body
    assert "(traders.max_leverage=4): 1 run, 0 pre-shock liquidations" in body
