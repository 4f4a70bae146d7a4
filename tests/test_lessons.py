"""Every lesson notebook in lessons/ runs top to bottom without an error (nbclient, the python3
kernel of the environment running the tests). Skipped where nbclient or ipykernel is missing;
each notebook is executed from a copy, in lessons/ (they read lessons/data/), so the stored
outputs are left alone."""
import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

LESSONS = pathlib.Path(__file__).resolve().parent.parent / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb"))
CELL_TIMEOUT_S = 600   # a generous per-cell limit: a notebook's defaults take under a minute


def test_lessons_are_there():
    assert len(NOTEBOOKS) >= 8, NOTEBOOKS
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        # stored with the outputs of a real run: every code cell ran, and there are figures
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{path.name} has cells that never ran"
        pngs = sum(bool({"image/png", "image/jpeg"} & set(o.get("data", {})))
                   for c in code for o in c.outputs)
        assert pngs >= 1, f"{path.name} has no stored figure"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], path.name
        assert path.stat().st_size < 1 << 20, f"{path.name} is over 1 MiB"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs(path):
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    client.execute()     # raises CellExecutionError, naming the cell, on any error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
