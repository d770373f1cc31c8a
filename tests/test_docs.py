"""Documentation that is generated from code must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


# --- references a reader can follow -------------------------------------------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


def test_slug_follows_github() -> None:
    assert slug("8. Known limitation: the start-up transient") == "8-known-limitation-the-start-up-transient"
    assert slug("Exposure graph (ex ante)") == "exposure-graph-ex-ante"
    assert slug("1.2 Entities, state variables and scales") == "12-entities-state-variables-and-scales"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_point_to_files_and_headings_in_the_repository(doc: Path) -> None:
    """Every relative link names a file of the repository and, with `#anchor`, a heading of that file."""
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: outside links are not checked here
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.is_relative_to(ROOT) or not dest.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading '{anchor}' in {dest.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


CODE_PATH = re.compile(r"`((?:abm|tests|experiments|benchmarks)/[^`\s]*)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_code_paths_named_in_the_docs_exist(doc: Path) -> None:
    """A module, test or experiment named in `backticks` (glob patterns allowed) is in the repository."""
    missing = [path for path in CODE_PATH.findall(doc.read_text()) if not list(ROOT.glob(path.rstrip("/")))]
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


# Design notes and trackers outside the repository that a reader cannot open (spelled in pieces so that this file
# does not match itself).
OUTSIDE = re.compile(
    r"\b" + "SP" + r"EC\b|\b" + "CALIBR" + r"ATION\b|" + "/wo" + r"rk/|\.\./" + "sha" + r"red\b|\b[Ii]ssues? #?\d+"
)
SOURCES = [
    *DOCS,
    *(ROOT / "abm").rglob("*.py"),
    *(ROOT / "abm").rglob("*.toml"),
    *(ROOT / "tests").glob("*.py"),
    *(ROOT / "benchmarks").glob("*.py"),
    *(ROOT / "experiments").glob("*.py"),
    *(ROOT / "experiments").glob("*.toml"),
    *(ROOT / "experiments").glob("*.ipynb"),
]


def test_no_reference_points_outside_the_repository() -> None:
    """Code and docs cite docs/model.md (by section), docs/calibration.md or a published source: never a design
    note, a tracker's issue number or a path a reader of the repository does not have."""
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}"
        for path in SOURCES
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, "\n".join(found)
