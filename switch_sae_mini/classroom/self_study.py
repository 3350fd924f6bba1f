"""Self-study versions of the notebooks: the exercises stubbed as in a student version, and each exercise's
reference solution in a collapsed `<details>` block right after its check, so a learner working alone can try
first, then compare. The conceptual questions keep their answer keys (collapsed as well).

    python -m switch_sae_mini assignments --self-study --out self-study    # what `make self-study` runs

Never hand these out for a graded course: they hold every solution. A graded release (`make assignments`) holds
none (tests/test_release.py).
"""

from __future__ import annotations

import copy
from pathlib import Path

from .assignments import (BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION, METADATA_KEY, NOTEBOOKS_DIR, STUB,
                          check_markup, is_check_cell, is_solution_cell, nbgrader_meta, replace_regions,
                          write_versions)

SOLUTION_SUMMARY = "<summary>Solution</summary>"
SELF_STUDY_NOTE = ("**Self-study version.** Write each exercise in its cell and run the check below it. The reference "
                   "solution follows each check, collapsed: open it after you have tried, or when a check's message "
                   "and the hint are not enough.")


def _solution_code(source: str) -> str:
    """The instructor's solution cell without its BEGIN/END SOLUTION marker lines."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def self_study_notebook(nb, name: str):
    """A copy of `nb`: solutions stubbed, hidden tests removed, a collapsed solution after every check cell."""
    import nbformat

    check_markup(nb, name)
    solutions = {nbgrader_meta(c)["grade_id"]: _solution_code(c.source) for c in nb.cells if is_solution_cell(c)}
    out = copy.deepcopy(nb)
    out.metadata.pop("jupytext", None)
    out.metadata[METADATA_KEY] = {"assignment": name, "version": "self-study"}
    cells = [out.cells[0], nbformat.v4.new_markdown_cell(SELF_STUDY_NOTE)]
    for index, cell in enumerate(out.cells[1:], start=1):
        where = f"{name} cell {index}"
        if is_solution_cell(cell):
            cell.source = replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, STUB, where)
        cell.source = replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, where=where)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
        if is_check_cell(cell):
            solved = nbgrader_meta(cell)["grade_id"].removeprefix("check_")
            if solved in solutions:
                cells.append(nbformat.v4.new_markdown_cell(
                    f"<details>{SOLUTION_SUMMARY}\n\n```python\n{solutions[solved]}\n```\n</details>"))
    out.cells = cells
    return out


def write_self_study(out_dir: str | Path = "self-study", source_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write out_dir/NN_name.ipynb for every source notebook with exercises; return the written paths."""
    return write_versions(out_dir, source_dir, self_study_notebook)
