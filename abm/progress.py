"""Progress reporting: a tqdm bar on a terminal, plain log lines otherwise, silent for short jobs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

QUIET_SECONDS = 3.0  # jobs shorter than this show nothing


class Progress:
    """Counts work units. On a TTY: a tqdm bar (appearing after QUIET_SECONDS). Elsewhere: a line per 10%."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self._next_report = 0.1
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = (
            tqdm(total=self.total, desc=label, file=self.stream, delay=QUIET_SECONDS, dynamic_ncols=True)
            if self.tty
            else None
        )

    def update(self, n: int = 1, *, failed: int = 0) -> None:
        self.done += n
        self.failed += failed
        if self.bar is not None:
            if failed:
                self.bar.set_postfix(failed=self.failed, refresh=False)
            self.bar.update(n)
            return
        if not self.enabled:
            return
        frac = self.done / self.total
        elapsed = time.monotonic() - self.start
        if frac >= self._next_report or self.done == self.total:
            self._next_report = (int(frac * 10) + 1) / 10
            if elapsed >= QUIET_SECONDS:
                eta = elapsed / frac * (1 - frac) if frac > 0 else float("nan")
                fail = f", {self.failed} failed" if self.failed else ""
                print(
                    f"{self.label}: {self.done}/{self.total} ({frac:.0%}{fail}), "
                    f"{elapsed:.0f} s elapsed, ETA {eta:.0f} s",
                    file=self.stream,
                    flush=True,
                )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
