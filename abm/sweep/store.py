"""The results store of a sweep directory: `runs.parquet`, one row per finished run.

Layout of OUT::

    experiment.toml     the resolved experiment (runnable: `abm sweep OUT/experiment.toml --out ...`)
    base_config.toml    the resolved base configuration it names
    sweep.json          metadata: fingerprint of what determines the runs, parameters, design (for the report)
    runs.parquet        the rows, sorted by run_index (always a complete, valid Parquet file)
    parts/              rows not yet merged into runs.parquet: one small Parquet file per finished run
    runs/run-NNNNNN/    full tables of the runs listed in `save_timeseries`

Crash safety: every finished row is written at once to its own part file (a temporary sibling, then an atomic
rename), and runs.parquet is only ever replaced by an atomic rename. A SIGKILL therefore loses only the runs in
flight. `compact` merges the parts into runs.parquet (periodically and at the end) and then deletes them; a part
that survives a crash between the two steps is a duplicate, dropped by run_index when read.

The table is a pure function of its set of rows: rows sorted by run_index, columns in first-seen order, and a
column's type decided by its values (integers -> nullable Int64, booleans -> nullable boolean, numbers -> float64,
anything else -> string). So an interrupted-and-resumed sweep yields the same table as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from abm.errors import UserInputError
from abm.io import atomic_write_bytes, atomic_write_parquet
from abm.sweep.worker import ID_COLUMNS, STATUS_COLUMNS

RUNS_FILE = "runs.parquet"
PARTS_DIR = "parts"
LOCK_FILE = ".sweep.lock"


class RunStore:
    """Rows of one sweep directory: add finished rows, read them back, merge parts into runs.parquet."""

    def __init__(self, out_dir: str | Path, parameters: Iterable[str] = ()) -> None:
        self.out = Path(out_dir)
        self.parts = self.out / PARTS_DIR
        self.runs_path = self.out / RUNS_FILE
        self.parameters = list(parameters)
        self._pending = 0  # parts written since the last compaction
        self._compacted_rows = 0
        self._last_compact = time.monotonic()
        self._lock_fh: io.TextIOWrapper | None = None

    # --- locking ------------------------------------------------------------------------------------------

    def lock(self) -> None:
        """Hold an exclusive lock on OUT for this process (released on exit, also after a SIGKILL)."""
        self.out.mkdir(parents=True, exist_ok=True)
        fh = open(self.out / LOCK_FILE, "a+")  # held for the sweep's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise UserInputError(f"--out {self.out}: another `abm sweep` is writing to this directory") from None
        self._lock_fh = fh

    def lock_fileno(self) -> int | None:
        """The file descriptor holding the lock (None when not locked): forked workers close their copy."""
        return self._lock_fh.fileno() if self._lock_fh is not None else None

    def unlock(self) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                (self.out / LOCK_FILE).unlink()
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # --- writing ------------------------------------------------------------------------------------------

    def add(self, row: dict[str, Any]) -> None:
        """Persist one finished row at once (atomic part file)."""
        self.parts.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([row])
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(self.parts / f"run-{int(row['run_index']):08d}.parquet", sink.getvalue().to_pybytes())
        self._pending += 1

    def maybe_compact(self, every_seconds: float = 30.0) -> bool:
        """Merge parts into runs.parquet when many are pending or `every_seconds` passed; return whether it did."""
        if self._pending == 0:
            return False
        many = self._pending >= max(200, self._compacted_rows // 4)
        due = time.monotonic() - self._last_compact >= every_seconds
        if many or due:
            self.compact()
            return True
        return False

    def compact(self) -> pd.DataFrame:
        """Rewrite runs.parquet from runs.parquet plus every part (atomically), then delete the merged parts."""
        part_files = self._part_files()
        table = self.read()
        atomic_write_parquet(table, self.runs_path)
        for f in part_files:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        with contextlib.suppress(OSError):
            self.parts.rmdir()  # only when empty
        self._pending = 0
        self._compacted_rows = len(table)
        self._last_compact = time.monotonic()
        return table

    def initialise(self) -> None:
        """Write an empty runs.parquet (with the id, parameter and status columns) if there is none."""
        if not self.runs_path.exists():
            atomic_write_parquet(normalise_rows([], self.parameters), self.runs_path)

    def clean_temporaries(self) -> None:
        """Remove half-written temporary files a killed sweep left behind."""
        for d in (self.out, self.parts):
            if d.is_dir():
                for f in d.glob(".*.tmp"):
                    with contextlib.suppress(OSError):
                        f.unlink()

    # --- reading ------------------------------------------------------------------------------------------

    def _part_files(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(self.parts.glob("run-*.parquet"))

    def rows(self) -> list[dict[str, Any]]:
        """Every stored row (runs.parquet and parts), one per run_index."""
        by_index: dict[int, dict[str, Any]] = {}
        if self.runs_path.exists():
            for row in _records(pd.read_parquet(self.runs_path)):
                by_index[int(row["run_index"])] = row
        for f in self._part_files():
            try:
                frame = pd.read_parquet(f)
            except (OSError, pa.ArrowInvalid):  # cannot happen with atomic renames; be lenient anyway
                continue
            for row in _records(frame):
                by_index.setdefault(int(row["run_index"]), row)
        return [by_index[i] for i in sorted(by_index)]

    def read(self) -> pd.DataFrame:
        """The normalised table of every stored row, sorted by run_index."""
        return normalise_rows(self.rows(), self.parameters)

    def completed(self) -> set[int]:
        """Run indices that have a row (ok or error)."""
        done: set[int] = set()
        if self.runs_path.exists():
            done.update(int(i) for i in pd.read_parquet(self.runs_path, columns=["run_index"])["run_index"])
        done.update(int(f.stem.removeprefix("run-")) for f in self._part_files())
        return done


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(frame.columns)
    out = []
    for values in frame.itertuples(index=False, name=None):
        out.append({c: _py(v) for c, v in zip(cols, values, strict=True) if not _missing(v)})
    return out


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return False


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def normalise_rows(rows: list[dict[str, Any]], parameters: Iterable[str] = ()) -> pd.DataFrame:
    """The canonical table of `rows`: sorted by run_index; columns: ids, parameters, status, error, wall_seconds,
    then metrics in first-seen order; each column's type decided by its values (see the module docstring)."""
    rows = sorted(rows, key=lambda r: int(r["run_index"]))
    columns: list[str] = [*ID_COLUMNS, *parameters, *STATUS_COLUMNS]
    seen = set(columns)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    data: dict[str, pd.Series] = {}
    for col in columns:
        values = [row.get(col) for row in rows]
        data[col] = _column(col, values)
    return pd.DataFrame(data, columns=columns)


def _column(name: str, values: list[Any]) -> pd.Series:
    if name in ID_COLUMNS:
        return pd.Series(values, dtype="int64")
    if name in ("status", "error"):
        return pd.Series([None if v is None else str(v) for v in values], dtype="string")
    if name == "wall_seconds":
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, bool | np.bool_) for v in present):
        return pd.Series([None if v is None else bool(v) for v in values], dtype="boolean")
    if present and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in present):
        return pd.Series([None if v is None or (isinstance(v, float)) else int(v) for v in values], dtype="Int64")
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else str(v) for v in values], dtype="string")


def read_runs(out_dir: str | Path) -> pd.DataFrame:
    """The rows of a sweep directory (runs.parquet plus any unmerged parts), normalised."""
    out = Path(out_dir)
    meta_path = out / "sweep.json"
    parameters = json.loads(meta_path.read_text())["parameters"] if meta_path.exists() else []
    return RunStore(out, parameters).read()
