"""Notebook hygiene: every notebooks/NN_name.py has its .ipynb twin, they hold the same cells, and no .ipynb
carries outputs. (`make notebooks` then executes them all under nbval.)"""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_every_notebook_is_a_pair():
    pys = {p.stem for p in SOURCES}
    ipynbs = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert pys == ipynbs, f"unpaired: {sorted(pys ^ ipynbs)} (run `make sync-notebooks`)"


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(source):
    from_py = jupytext.read(source)
    from_ipynb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert _cells(from_py) == _cells(from_ipynb), (
        f"{source.name} and its .ipynb differ; edit the .py and run `make sync-notebooks`")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_outputs_committed(source):
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{source.stem}.ipynb cells {dirty} carry outputs; strip them (make sync-notebooks)"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_opening_and_config_cell(source):
    text = source.read_text()
    assert "Learning objectives" in text and "Prerequisites" in text and "Runtime" in text, source.name
    assert text.count("FAST =") == 1, f"{source.name}: exactly one CONFIG cell defines FAST"
    assert "ssm.notebook.setup(" in text, f"{source.name}: use the shared setup cell"
