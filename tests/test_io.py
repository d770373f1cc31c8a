"""Atomic writes (abm.io): whole or nothing, and the permissions an ordinary write would give."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from abm.io import atomic_dir, atomic_write_text


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_file_gets_the_umask_permissions(tmp_path: Path, umask_027: None) -> None:
    atomic_write_text(tmp_path / "a.txt", "x")
    with open(tmp_path / "b.txt", "w") as fh:  # what an ordinary write makes
        fh.write("x")
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.txt") == 0o640
    assert os.umask(0o027) == 0o027  # the umask itself is left as it was


def test_atomic_dir_gets_the_umask_permissions(tmp_path: Path, umask_027: None) -> None:
    with atomic_dir(tmp_path / "out") as d:
        (d / "f").write_text("x")
    (tmp_path / "plain").mkdir()
    assert mode(tmp_path / "out") == mode(tmp_path / "plain") == 0o750
    assert (tmp_path / "out" / "f").read_text() == "x"


def test_failed_writes_leave_the_old_result_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("kept")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as d:
        (d / "new").write_text("half")
        raise RuntimeError("killed half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old"]

    atomic_write_text(tmp_path / "f.txt", "first")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the write fails after the bytes went to the temporary file
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(tmp_path / "f.txt", "second")
    assert (tmp_path / "f.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "out"]


def test_concurrent_writers_never_touch_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with ThreadPoolExecutor(4) as pool:  # as Dask worker threads saving runs side by side
            list(pool.map(lambda i: atomic_write_text(tmp_path / f"f{i % 7}.txt", str(i)), range(400)))
        assert os.umask(0o077) == 0o077
    finally:
        os.umask(old)
    assert {mode(p) for p in tmp_path.iterdir()} == {0o600}
    assert len(list(tmp_path.iterdir())) == 7  # no temporary left


def test_a_failed_swap_puts_the_previous_result_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("kept")
    real_replace = os.replace
    calls: list[str] = []

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(str(dst))
        if len(calls) == 2:  # the new result's rename into place fails (another writer, a full disk)
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"), atomic_dir(tmp_path / "out") as d:
        (d / "new").write_text("x")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
