"""Running a sweep: validate, prepare the output directory, execute the missing runs on a backend, store rows.

Backends (both run the same pure function, `abm.sweep.worker.execute`, so rows never depend on the backend):

- local: a `concurrent.futures.ProcessPoolExecutor` of `workers` processes (default all cores); with one worker the
  runs execute in this process, one after the other. On Linux, when no other Python thread runs here, the workers
  are forked: they inherit the imported model and start in milliseconds, where a fresh interpreter importing abm,
  Mesa and pandas takes about 1.7 s (6% of a 30 s sweep on 2 cores). Elsewhere, or with threads running (a
  notebook kernel, a Dask client), where forking can deadlock, they are spawned. Rows do not depend on which.
  Each worker runs one BLAS thread (`worker_pool`).
- Dask: `scheduler="tcp://host:port"` submits every run to a running `dask.distributed` scheduler, whose workers
  must have `abm` installed (and see OUT on a shared filesystem when `save_timeseries` is used).

At most a few runs per worker are in flight at a time, so memory stays bounded whatever the sweep's size; each
finished run's row and per-run tables ([outputs]) are stored at once by this process (see `abm.sweep.store`), so
an interrupted sweep keeps everything that finished, `resume=True` runs only the missing run indices, and Dask
workers need no shared filesystem for them.

This is the one driver of many runs in abm: parameter studies, the contagion study and the behaviour table are all
experiment files run here.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abm.errors import UserInputError
from abm.io import atomic_write_text
from abm.progress import Progress
from abm.sweep.experiment import CASE_CONFIG_DIR, Experiment, load_experiment
from abm.sweep.store import RunStore
from abm.sweep.worker import RunOutput, RunTask, execute

IN_FLIGHT_PER_WORKER = 2  # runs queued per worker: keeps workers busy without holding the whole sweep
CONNECT_TIMEOUT = "10s"  # how long to wait for a Dask scheduler


class SweepError(RuntimeError):
    """The execution backend failed (a worker process died, the scheduler went away). Finished runs are kept:
    rerun with --resume."""


@dataclass
class SweepOutcome:
    """What one `run_sweep` call did. Times in seconds."""

    out_dir: Path
    n_runs: int  # runs in the experiment
    skipped: int  # runs that already had a row (resume)
    ran: int  # runs executed by this call
    failed: int  # of those, rows with status "error"
    wall_seconds: float
    backend: str

    @property
    def runs_path(self) -> Path:
        return self.out_dir / "runs.parquet"


def run_sweep(
    experiment: str | Path | Experiment,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepOutcome:
    """Run every point x replicate of `experiment` that `out_dir` does not hold yet; write OUT/runs.parquet.

    `workers`: local processes (default: all cores); `scheduler`: a Dask scheduler address instead. Everything is
    validated before anything is written: a bad experiment, an OUT holding a different experiment (or this one
    without `resume`) or an unreachable scheduler raise `UserInputError`.
    """
    start = time.perf_counter()
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    out = Path(out_dir)
    if workers is not None and scheduler is not None:
        raise UserInputError("give workers or a scheduler address, not both")
    if workers is not None and workers < 1:
        raise UserInputError(f"--workers {workers}: must be >= 1")
    _check_out(exp, out, resume)

    client = _connect(scheduler) if scheduler else None
    store = RunStore(out, exp.parameters, exp.outputs.tables)
    try:
        store.lock()
        if not (out / "sweep.json").exists():
            _write_metadata(exp, out)
        else:
            _warn_if_code_changed(out)
        store.clean_temporaries()
        store.initialise()
        done = store.completed()
        todo = [i for i in range(exp.n_runs) if i not in done]
        n_workers = 1
        if client is not None:
            backend = f"dask {scheduler}"
        else:
            n_workers = max(1, min(workers or os.cpu_count() or 1, max(len(todo), 1)))
            backend = "in-process" if n_workers == 1 else f"{n_workers} local processes"
        say = _printer(progress)
        already = f" ({len(done)} of {exp.n_runs} already done)" if done else ""
        # local workers start before the progress bar, whose monitor thread would make forking unsafe
        pool = None
        if client is None and n_workers > 1:
            pool, method = worker_pool(n_workers, store.lock_fileno())
            backend += f" ({method})"
        failed = ran = 0
        tasks = sweep_tasks(exp, out, todo)
        outputs: Iterator[RunOutput] = iter(())
        bar: Progress | None = None
        completed = False
        try:
            say(f"sweep {exp.name}: {len(todo)} runs{already} on {backend} -> {out}")
            bar = Progress(len(todo), f"sweep {exp.name}", enabled=progress)
            if client is not None:
                outputs = _dask_outputs(client, tasks, f"abm-{exp.fingerprint()[:12]}")
            elif pool is None:
                outputs = (execute(t) for t in tasks)
            else:
                outputs = _local_outputs(pool, tasks, n_workers)
            for output in outputs:
                row = output.row
                store.add(row, output.tables)
                ran += 1
                bad = row["status"] != "ok"
                failed += bad
                bar.update(failed=int(bad))
                if on_row is not None:
                    on_row(row)
                store.maybe_compact()
            completed = True
        finally:
            close = getattr(outputs, "close", None)
            if close is not None:
                close()  # stop the backend (cancel queued runs) before the final compaction
            if pool is not None:  # wait for the workers after a full sweep; after an error or an interrupt, stop them
                if completed:
                    pool.shutdown(wait=True)
                else:
                    _stop_workers(pool)
            if bar is not None:
                bar.close()
            store.compact()
        total = time.perf_counter() - start
        fail = f", {failed} failed" if failed else ""
        say(f"sweep {exp.name}: {ran} runs in {total:.1f} s{fail}; {exp.n_runs} rows in {store.runs_path}")
        return SweepOutcome(out, exp.n_runs, len(done), ran, failed, total, backend)
    finally:
        store.unlock()
        if client is not None:
            client.close()


# --- the output directory -------------------------------------------------------------------------------------


def _check_out(exp: Experiment, out: Path, resume: bool) -> None:
    """Refuse an OUT that is a file, holds other things, a different experiment, or this one without resume."""
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: is a file, not a directory")
    meta_path = out / "sweep.json"
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
            old_fp, old_id = old["fingerprint"], old["identity"]
        except (ValueError, KeyError, TypeError):
            raise UserInputError(f"--out {out}: sweep.json is unreadable; choose another --out") from None
        if old_fp != exp.fingerprint():
            new_id = exp.identity()
            differ = [k for k in new_id if old_id.get(k) != new_id[k]] or ["definition"]
            raise UserInputError(
                f"--out {out} holds a different experiment ('{old.get('name')}', {old.get('n_runs')} runs; its "
                f"{' and '.join(differ)} differ from '{exp.name}'); choose another --out"
            )
        if not resume:
            raise UserInputError(
                f"--out {out} already holds this experiment ('{exp.name}'); add --resume to run only what is "
                "missing, or choose another --out"
            )
        return
    # a sweep killed before writing sweep.json leaves these
    ours = {"experiment.toml", "base_config.toml", CASE_CONFIG_DIR}
    if out.is_dir() and any(not p.name.startswith(".") and p.name not in ours for p in out.iterdir()):
        raise UserInputError(f"--out {out}: directory is not empty and holds no sweep (no sweep.json)")


def _write_metadata(exp: Experiment, out: Path) -> None:
    atomic_write_text(out / "base_config.toml", exp.base_config.to_toml())
    for label, name in exp.case_config_files().items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / name, exp.cases[label].base_config.to_toml())
    atomic_write_text(out / "experiment.toml", exp.resolved_toml("base_config.toml"))
    meta = {**exp.metadata(), "abm_version": _version(), "code_digest": code_digest()}
    atomic_write_text(out / "sweep.json", json.dumps(meta, indent=2, default=repr) + "\n")


def code_digest() -> str:
    """A hash of the model's source (abm/**/*.py): a resumed sweep warns when the code changed since it began."""
    import hashlib

    import abm

    root = Path(abm.__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("abm")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _warn_if_code_changed(out: Path) -> None:
    try:
        old = json.loads((out / "sweep.json").read_text()).get("code_digest")
    except (OSError, ValueError):
        return
    if old and old != code_digest():
        print(
            f"abm: warning: the model's code changed since this sweep began (code digest {old} -> "
            f"{code_digest()}); resumed rows come from the new code",
            file=sys.stderr,
            flush=True,
        )


# --- tasks ----------------------------------------------------------------------------------------------------


def sweep_tasks(exp: Experiment, out: Path, run_indices: Iterable[int]) -> Iterator[RunTask]:
    """Tasks for `run_indices`, built lazily (one point's configuration at a time)."""
    cached: tuple[int, dict[str, Any]] | None = None
    runs_dir = out.resolve() / "runs"
    for i in run_indices:
        point, replicate = exp.run_point(i)
        if cached is None or cached[0] != point:
            cached = (point, exp.point_config(point).model_dump(mode="python"))
        config = cached[1]
        yield RunTask(
            run_index=i,
            point=point,
            replicate=replicate,
            seed=exp.seed(i),
            steps=int(config["steps"]),
            params={k: _column_value(v) for k, v in exp.points[point].items()},
            config=config,
            save_dir=str(runs_dir / f"run-{i:06d}") if exp.saves_timeseries(i) else None,
            tables=exp.outputs.tables,
            metrics=exp.outputs.metrics,
            twin=exp.twin,
        )


def _column_value(value: Any) -> Any:
    """A parameter value as stored in runs.parquet: scalars as they are, lists and tables as JSON text."""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value


# --- backends -------------------------------------------------------------------------------------------------


def start_method() -> str:
    """'fork' on Linux when this process runs no other Python thread, else 'spawn' (see the module docstring)."""
    return "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"


def worker_pool(n_workers: int, lock_fd: int | None = None) -> tuple[ProcessPoolExecutor, str]:
    """A process pool of `n_workers` and how they start ('fork' or 'spawn', see the module docstring); forked
    workers are already running when this returns.

    Every worker limits its BLAS libraries to one thread: the workers already occupy the cores, and BLAS threads
    spinning beside them slowed scipy's L-BFGS-B (the contagion study's Hawkes fits) 40-fold. Forked workers also
    close their copy of `lock_fd` (OUT's lock): an flock is held while any copy is open, so a worker still finishing
    a run after its sweep was killed would otherwise refuse the `--resume`."""
    method = start_method()
    ctx = multiprocessing.get_context(method)
    inherited = lock_fd if method == "fork" else None
    pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=(inherited, os.getpid()))
    if method == "fork":
        try:
            with warnings.catch_warnings():
                # CPython warns on every fork while other OS threads exist. No Python thread runs here (see
                # `start_method`); the others are library pools (OpenBLAS, Arrow, jemalloc) that re-initialise
                # in a forked child, as they have under multiprocessing's fork default on Linux for years.
                warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
                pool.submit(os.getpid)  # with fork, the first submit starts every worker, now rather than later
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return pool, method


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's workers now, runs in flight included, and shut it down without waiting. After an error or an
    interrupt (Ctrl-C) nobody records those runs (`--resume` runs them again), and waiting for them would hold the
    sweep's exit for as long as the longest takes, minutes for a large book."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
    else:  # the executor's process table (stable since Python 3.2; public from 3.14 as above)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError, ValueError):
                process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _init_worker(inherited_fd: int | None, parent: int) -> None:
    import signal

    from threadpoolctl import threadpool_limits

    # Ctrl-C reaches the terminal's whole process group: the sweep handles it (and stops its workers), so a worker
    # does not print a traceback of its own or end a run half-way on its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if inherited_fd is not None:
        with contextlib.suppress(OSError):
            os.close(inherited_fd)
    _die_with(parent)
    threadpool_limits(1)  # for the life of this worker process


def _die_with(parent: int) -> None:
    """On Linux the kernel kills this worker when the sweep's process dies, SIGKILL included: an orphan would run
    its queued runs for nobody, then wait forever on a queue no one closes. (Elsewhere orphans stay.)"""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


def _local_outputs(pool: ProcessPoolExecutor, tasks: Iterator[RunTask], n_workers: int) -> Iterator[RunOutput]:
    """Run outputs from a process pool, in completion order, with a bounded number of tasks in flight (the caller
    owns the pool and shuts it down)."""
    pending: set[Future[RunOutput]] = set()

    def fill() -> None:
        while len(pending) < IN_FLIGHT_PER_WORKER * n_workers:
            task = next(tasks, None)
            if task is None:
                return
            pending.add(pool.submit(execute, task))

    fill()
    while pending:
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in finished:
            pending.discard(fut)
            try:
                output = fut.result()
            except BrokenProcessPool:
                raise SweepError(
                    "a worker process died (out of memory? or, for spawned workers, a script without an "
                    "`if __name__ == '__main__':` guard); finished runs are saved: rerun with --resume"
                ) from None
            yield output
        fill()


def _connect(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a declared dependency
        raise UserInputError("--scheduler needs the 'distributed' package (pip install 'dask[distributed]')") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise UserInputError(f"--scheduler {address}: cannot connect to a Dask scheduler ({msg[:200]})") from None


def _dask_outputs(client: Any, tasks: Iterator[RunTask], key_prefix: str) -> Iterator[RunOutput]:
    """Run outputs from a Dask cluster, in completion order, with a bounded number of tasks in flight."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    threads = sum(client.nthreads().values())
    window = max(4, IN_FLIGHT_PER_WORKER * threads)
    in_flight: dict[str, tuple[RunTask, Any]] = {}
    queue = as_completed(loop=client.loop)

    def submit_one() -> bool:
        task = next(tasks, None)
        if task is None:
            return False
        key = f"{key_prefix}-{task.run_index}"
        fut = client.submit(execute, task, key=key, retries=0)
        in_flight[key] = (task, fut)
        queue.add(fut)
        return True

    try:
        for _ in range(window):
            if not submit_one():
                break
        for fut in queue:
            task, _ = in_flight.pop(fut.key)
            try:
                output = fut.result()
            except KilledWorker as exc:  # the run itself killed its worker(s): record it like any failing run
                output = _error_output(task, f"KilledWorker: {' '.join(str(exc).split())}")
            except FutureCancelledError:
                raise SweepError(
                    "the Dask scheduler cancelled runs; finished runs are saved: rerun with --resume"
                ) from None
            fut.release()
            yield output
            submit_one()
    finally:
        if in_flight:
            client.cancel([f for _, f in in_flight.values()], force=True)


def _error_output(task: RunTask, message: str) -> RunOutput:
    row = {
        "run_index": task.run_index,
        "point": task.point,
        "replicate": task.replicate,
        "seed": task.seed,
        **task.params,
        "status": "error",
        "error": message,
        "wall_seconds": float("nan"),
    }
    return RunOutput(row)


def _printer(enabled: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if enabled:
            print(text, file=sys.stderr, flush=True)

    return say
