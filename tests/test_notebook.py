"""The lab notebook executes from top to bottom (nbclient), as CI runs it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "mnist_mlp_lab.ipynb"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "50,890 parameters" in text and "predicted" in text
    assert "training digits per class: [" in text and "class precision recall" in text
    # a digit, the grid, curves, comparison, confusion, mistakes, reliability
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 7
