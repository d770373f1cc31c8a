"""Linux process checks for the sweep tests (tests import it as `process_helpers`)."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's parent here may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    """The process ids of `pid`'s children."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
