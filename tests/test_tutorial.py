"""The student tutorial (experiments/tutorial.ipynb) runs from top to bottom without an error.

The notebook is executed with nbclient in a kernel that runs *this* test's interpreter: a throw-away kernel spec
(argv = sys.executable -m ipykernel_launcher) is written to a temporary folder put first on JUPYTER_PATH, so the
test works in a fresh virtual environment without `ipykernel install` and is never run by another Python that
happens to own a "python3" kernel. The notebook is committed without outputs; the executed copy stays in memory.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "experiments" / "tutorial.ipynb"
KERNEL_NAME = "abm-test-python"
TIME_BUDGET_S = 300  # the notebook takes well under a minute on an idle machine; this only catches runaway cells


def _kernel_spec(folder: Path) -> None:
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "abm test kernel",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells, "the tutorial has no code"
    stale = [i for i, cell in enumerate(code_cells) if cell.get("outputs") or cell.get("execution_count")]
    assert not stale, f"code cells {stale} carry outputs: clear them before committing"


def test_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _kernel_spec(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=TIME_BUDGET_S,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError (with the cell and its traceback) on any error
    elapsed = time.perf_counter() - started
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    images = sum(1 for cell in nb.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    assert images >= 5, f"expected the tutorial's figures, got {images} images"
    assert not list(tmp_path.glob("*.parquet")), "the tutorial should not write files"
    print(f"tutorial executed in {elapsed:.1f} s")
