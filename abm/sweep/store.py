"""The results store of a sweep directory: `runs.parquet`, one row per finished run, and the per-run tables.

Layout of OUT::

    experiment.toml     the resolved experiment (runnable: `abm sweep OUT/experiment.toml --out ...`)
    base_config.toml    the resolved base configuration it names
    sweep.json          metadata: fingerprint of what determines the runs, parameters, design (for the report)
    runs.parquet        the rows, sorted by run_index (always a complete, valid Parquet file)
    <table>.parquet     each per-run table the experiment keeps ([outputs] tables, e.g. events.parquet): the
                        run's rows with its run_index in front, sorted by run_index (stable: a run's rows in order)
    parts/              rows not yet merged into runs.parquet: one small Parquet file per finished run
    parts/<table>/      per-run table parts not yet merged into <table>.parquet
    runs/run-NNNNNN/    full tables of the runs listed in `save_timeseries`

Crash safety: every finished run's tables, then its row, are written at once to their own part files (a temporary
sibling, then an atomic rename), and runs.parquet and the tables are only ever replaced by an atomic rename. A
SIGKILL therefore loses only the runs in flight. A run counts as done when its row is stored, so a table part
without a row (killed between the two writes) is ignored until the resumed run rewrites it. `compact` merges the
parts of done runs into the tables and runs.parquet (periodically and at the end) and then deletes them; a part
that survives a crash between the two steps is a duplicate, dropped by run_index when read.

runs.parquet is a pure function of its set of rows: rows sorted by run_index, columns in first-seen order, and a
column's type decided by its values (integers -> nullable Int64, booleans -> nullable boolean, numbers -> float64,
anything else -> string). A per-run table is the concatenation of its runs' tables in run_index order, with
Arrow's type promotion (a column that is all null in one run takes the type of the others). So an
interrupted-and-resumed sweep yields the same files as an uninterrupted one, on any backend.
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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abm.errors import UserInputError
from abm.io import atomic_write_bytes, atomic_write_parquet
from abm.sweep.worker import ID_COLUMNS, STATUS_COLUMNS

RUNS_FILE = "runs.parquet"
PARTS_DIR = "parts"
LOCK_FILE = ".sweep.lock"
COMPACTION_SPACING = 50.0  # compactions at least this many times their own duration apart


class RunStore:
    """Rows of one sweep directory: add finished rows, read them back, merge parts into runs.parquet."""

    def __init__(self, out_dir: str | Path, parameters: Iterable[str] = (), tables: Iterable[str] = ()) -> None:
        self.out = Path(out_dir)
        self.parts = self.out / PARTS_DIR
        self.runs_path = self.out / RUNS_FILE
        self.parameters = list(parameters)
        self.tables = list(tables)
        self._pending = 0  # parts written since the last compaction
        self._compacted_rows = 0
        self._last_compact = time.monotonic()
        self._compact_seconds = 0.0  # how long the last compaction took (s)
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

    def add(self, row: dict[str, Any], tables: dict[str, pd.DataFrame] | None = None) -> None:
        """Persist one finished run at once (atomic part files): its tables first, then its row, which marks it
        done. A table with no rows is kept too (it carries the table's columns)."""
        run_index = int(row["run_index"])
        for name, frame in (tables or {}).items():
            if name not in self.tables:
                raise ValueError(f"table {name!r} is not kept by this sweep (kept: {self.tables})")
            self.table_parts(name).mkdir(parents=True, exist_ok=True)
            _write_part(_with_run_index(frame, run_index), self.table_parts(name) / _part_name(run_index))
        self.parts.mkdir(parents=True, exist_ok=True)
        _write_part(pa.Table.from_pylist([row]), self.parts / _part_name(run_index))
        self._pending += 1

    def maybe_compact(self, every_seconds: float = 30.0) -> bool:
        """Merge parts into runs.parquet when many are pending or `every_seconds` passed; return whether it did.

        A compaction rewrites every row, so its cost grows with the sweep (about 2 s at 5,000 rows): the interval
        stretches to `COMPACTION_SPACING` times the last compaction's duration, which keeps the merging under
        ~2% of the sweeping process's time (it shares the cores with the workers)."""
        if self._pending == 0:
            return False
        many = self._pending >= max(200, self._compacted_rows // 4)
        interval = max(every_seconds, COMPACTION_SPACING * self._compact_seconds)
        due = time.monotonic() - self._last_compact >= interval
        if many or due:
            self.compact()
            return True
        return False

    def compact(self) -> pd.DataFrame:
        """Rewrite each per-run table and runs.parquet from their files plus every part of a done run
        (atomically), then delete the merged parts."""
        started = time.monotonic()
        done = self.completed()
        for name in self.tables:
            merged = self._table_parts_done(name, done)
            if merged or not self.table_path(name).exists():
                _write_arrow(self._read_arrow_table(name, done), self.table_path(name))
            for f in merged:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
            with contextlib.suppress(OSError):
                self.table_parts(name).rmdir()  # only when empty (parts of runs not done yet stay)
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
        self._compact_seconds = self._last_compact - started
        return table

    def initialise(self) -> None:
        """Write an empty runs.parquet (with the id, parameter and status columns) if there is none."""
        if not self.runs_path.exists():
            atomic_write_parquet(normalise_rows([], self.parameters), self.runs_path)

    def clean_temporaries(self) -> None:
        """Remove half-written temporary files a killed sweep left behind."""
        for d in (self.out, self.parts, *(self.table_parts(name) for name in self.tables)):
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

    def table_path(self, name: str) -> Path:
        return self.out / f"{name}.parquet"

    def table_parts(self, name: str) -> Path:
        return self.parts / name

    def _table_parts_done(self, name: str, done: set[int]) -> list[Path]:
        d = self.table_parts(name)
        if not d.is_dir():
            return []
        return [f for f in sorted(d.glob("run-*.parquet")) if _part_index(f) in done]

    def _read_arrow_table(self, name: str, done: set[int]) -> pa.Table:
        """The table `name`: its file plus the parts of done runs (a part replaces its run's rows in the file)."""
        parts = self._table_parts_done(name, done)
        fresh = {_part_index(f) for f in parts}
        pieces: list[pa.Table] = []
        if self.table_path(name).exists():
            old = pq.read_table(self.table_path(name))
            if fresh and old.num_rows:
                old = old.filter(pc.invert(pc.is_in(old["run_index"], pa.array(sorted(fresh), pa.int64()))))
            pieces.append(old)
        pieces += [pq.read_table(f) for f in parts]
        if not pieces:
            return pa.table({"run_index": pa.array([], pa.int64())})
        merged = pa.concat_tables(pieces, promote_options="permissive")
        return merged.take(pc.sort_indices(merged, sort_keys=[("run_index", "ascending")]))  # a stable sort

    def read_table(self, name: str) -> pd.DataFrame:
        """The per-run table `name` of every done run (its file and unmerged parts), sorted by run_index."""
        return self._read_arrow_table(name, self.completed()).to_pandas()

    def completed(self) -> set[int]:
        """Run indices that have a row (ok or error)."""
        done: set[int] = set()
        if self.runs_path.exists():
            done.update(int(i) for i in pd.read_parquet(self.runs_path, columns=["run_index"])["run_index"])
        done.update(int(f.stem.removeprefix("run-")) for f in self._part_files())
        return done


def _part_name(run_index: int) -> str:
    return f"run-{run_index:08d}.parquet"


def _part_index(path: Path) -> int:
    return int(path.stem.removeprefix("run-"))


def _with_run_index(frame: pd.DataFrame, run_index: int) -> pa.Table:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    if "run_index" in table.column_names:
        raise ValueError("a per-run table must not have its own run_index column")
    return table.add_column(0, "run_index", pa.array(np.full(table.num_rows, run_index, dtype=np.int64)))


def _write_part(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _write_arrow(table: pa.Table, path: Path) -> None:
    # pandas metadata of the first part would describe a RangeIndex of the wrong length: drop it
    _write_part(table.replace_schema_metadata(None), path)


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


def open_store(out_dir: str | Path) -> RunStore:
    """The store of an existing sweep directory, with the parameters and tables its sweep.json names."""
    out = Path(out_dir)
    meta_path = out / "sweep.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return RunStore(out, meta.get("parameters", []), (meta.get("outputs") or {}).get("tables", []))


def read_runs(out_dir: str | Path) -> pd.DataFrame:
    """The rows of a sweep directory (runs.parquet plus any unmerged parts), normalised."""
    return open_store(out_dir).read()


def read_table(out_dir: str | Path, name: str) -> pd.DataFrame:
    """The per-run table `name` ([outputs] tables) of a sweep directory, including unmerged parts of done runs."""
    store = open_store(out_dir)
    if name not in store.tables:
        raise UserInputError(f"'{out_dir}' keeps no per-run table '{name}' (kept: {', '.join(store.tables) or 'none'})")
    return store.read_table(name)
