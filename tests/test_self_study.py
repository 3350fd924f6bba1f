"""Self-study versions (classroom/self_study.py): every exercise stubbed, its reference solution collapsed right
after its check, and that solution passes the check; the graded release holds none of them."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from switch_sae_mini.classroom import checks
from switch_sae_mini.classroom.assignments import (STUB, find_exercises, is_check_cell, is_solution_cell,
                                                   load_notebook, nbgrader_meta, source_paths, write_release)
from switch_sae_mini.classroom.self_study import SOLUTION_SUMMARY, write_self_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    return {p.stem: nbformat.read(p, as_version=4)
            for p in write_self_study(tmp_path_factory.mktemp("self-study"), ROOT / "notebooks")}


def _solution_after(cells, check_index):
    cell = cells[check_index + 1]
    assert cell.cell_type == "markdown" and SOLUTION_SUMMARY in cell.source, cells[check_index].source
    return re.search(r"```python\n(.*?)\n```", cell.source, re.S).group(1)


def test_every_exercise_is_stubbed_with_its_solution_after_the_check(versions):
    names = {n for n, p in source_paths(ROOT / "notebooks").items() if find_exercises(load_notebook(p), n)}
    assert set(versions) == names and len(names) >= 5
    for name, nb in versions.items():
        exercises = find_exercises(load_notebook(source_paths(ROOT / "notebooks")[name]), name)
        solutions = [c for c in nb.cells if is_solution_cell(c)]
        assert len(solutions) == len(exercises)
        for cell in solutions:
            assert STUB[1] in cell.source and "BEGIN SOLUTION" not in cell.source, (name, cell.source[:60])
        checks_at = [i for i, c in enumerate(nb.cells) if is_check_cell(c)]
        assert len(checks_at) == len(exercises)
        for i in checks_at:
            assert _solution_after(nb.cells, i).startswith("def "), name
        assert not any("HIDDEN TESTS" in c.source for c in nb.cells)


def test_the_shown_solutions_pass_their_checks(versions):
    """Exec each notebook's collapsed solutions in order (later ones call earlier ones) and run every check."""
    for name, nb in versions.items():
        namespace = {"torch": torch}
        for i, cell in enumerate(nb.cells):
            if is_check_cell(cell):
                exec(_solution_after(nb.cells, i), namespace)
                solved = nbgrader_meta(cell)["grade_id"].removeprefix("check_")
                fn = namespace[solved]
                getattr(checks, f"check_{solved}")(fn)


def test_answer_keys_stay_and_the_graded_release_has_no_solutions(versions, tmp_path):
    assert any("<summary>Answer" in c.source for nb in versions.values() for c in nb.cells)
    for path in write_release(tmp_path, ROOT / "notebooks"):
        assert SOLUTION_SUMMARY not in path.read_text(), path.name


def test_the_cli_writes_them(tmp_path):
    out = subprocess.run([sys.executable, "-m", "switch_sae_mini", "assignments", "--self-study", "--out",
                          str(tmp_path / "ss")], capture_output=True, text=True, check=True).stdout
    assert "01_dense_sae.ipynb" in out and (tmp_path / "ss" / "03_switch_sae.ipynb").is_file()
