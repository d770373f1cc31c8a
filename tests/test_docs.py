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
