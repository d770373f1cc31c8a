"""Documentation that is generated from code must match the code."""

from __future__ import annotations

from pathlib import Path

from abm.config.reference import reference

ROOT = Path(__file__).resolve().parents[1]


def test_parameter_reference_is_current() -> None:
    """docs/parameters.md is regenerated with `python -m abm.config.reference > docs/parameters.md`."""
    assert (ROOT / "docs" / "parameters.md").read_text() == reference() + "\n"


def test_every_parameter_has_a_description() -> None:
    text = reference()
    rows = [line for line in text.splitlines() if line.startswith("| `") and not line.startswith("| `description`")]
    assert rows
    empty = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert empty == []


def test_readme_shows_the_latest_benchmark_table() -> None:
    """The README's performance table is benchmarks/results.md's, as `python benchmarks/run.py` last wrote it."""
    results = (ROOT / "benchmarks" / "results.md").read_text()
    start = results.index("| case | N |")
    table = results[start : results.index("\n\n", start)]
    assert table.count("\n") >= 5
    assert table in (ROOT / "README.md").read_text()
