"""Atomic writes: results appear whole or not at all (a temporary sibling, then a rename)."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def _sibling(path: Path, tag: str) -> Path:
    """A hidden, unused name beside `path` for a temporary (clean_temporaries-style tools match `.*.tmp`)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.{tag}")


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; on success it replaces `target` in one rename.

    If the body raises, the temporary directory is removed and `target` is left as it was. Created with mode 0o777
    so that the process's umask applies, as for any new directory.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    os.mkdir(tmp, 0o777)  # fails rather than reuse a name (48 random bits: never in practice)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = _sibling(target, "old") if target.exists() else None
    try:
        if old is not None:
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)  # put the previous result back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file via a temporary sibling and an atomic rename. Created with mode 0o666, so the process's umask
    applies, as for an ordinary `open(path, "w")`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # O_EXCL: never another writer's file
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(table: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame (without its index) as Parquet atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def save_figure(fig: Figure, path: str | Path, dpi: int, *, tight_layout: bool = False, trim: bool = False) -> Path:
    """Save `fig` as a PNG atomically, then close it. `tight_layout`: re-lay the axes first; `trim`: crop the
    canvas to what is drawn (bbox_inches="tight"). Returns the path."""
    import matplotlib.pyplot as plt

    if tight_layout:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if trim else None)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def read_text_file(path: str | Path, what: str, error: type[Exception]) -> str:
    """A UTF-8 text file's contents; a missing or unreadable file raises `error` with one line naming `what`."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} '{p}' does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise error(f"{what} '{p}' cannot be read: {exc}") from None
