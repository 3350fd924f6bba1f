"""Classroom support: find the exercises in the notebook sources and generate student versions.

The reviewed sources (notebooks/NN_name.py) carry nbgrader-compatible cell metadata:

- a solution cell: ``nbgrader = {"solution": true, "grade": false, "grade_id": "<function>", ...}`` whose code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is the reference answer;
- a check cell: ``nbgrader = {"grade": true, "locked": true, "points": n, "grade_id": "check_<function>", ...}``
  that calls ``checks.check_<function>(<function>)``.

A student version replaces every solution region by ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` (the
stub nbgrader writes), removes ``### BEGIN HIDDEN TESTS`` regions, locks the check cells in JupyterLab and says in
one line that grading also runs hidden cases. Hidden cases are never in the notebooks or the package: they are the
instructor's secret seed and hidden-cases file, passed to ``python -m switch_sae_mini grade`` (classroom/grading/).

    python -m switch_sae_mini assignments --out release            # what `make assignments` runs
    python -m switch_sae_mini assignments --nbgrader-source course  # course/source/NN_name/NN_name.ipynb
    python -m switch_sae_mini assignments --self-study --out self-study  # classroom/self_study.py
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SwitchSAEError

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"  # present in a source checkout only
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
GRADING_NOTE = ("**Graded version.** Each check below runs a visible case; grading also runs hidden cases (other sizes "
                "and edge cases) and reports the visible and the hidden part of each exercise separately.")
ANSWER_KEY_TAG = "answer-key"  # markdown cells answering a conceptual question: in the sources, never in a release
METADATA_KEY = "switch_sae_mini"  # notebook metadata of a student version: {"assignment": "NN_name"}

class AssignmentError(SwitchSAEError, ValueError):
    """A notebook's exercise markup is malformed; the message names the notebook, the cell and the fix."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its solution cell, the check cell that grades it and what the markdown says about it."""

    notebook: str         # e.g. "03_switch_sae"
    number: str           # "3.2"
    title: str            # "Switch latents"
    difficulty: int       # filled dots of "Difficulty ●●●○○"
    minutes: int          # "~20 min"
    solution_id: str      # grade_id of the solution cell, e.g. "switch_latents"
    check_id: str         # grade_id of the check cell, e.g. "check_switch_latents"
    points: float


def load_notebook(path: str | Path):
    """Read a notebook: a jupytext percent .py (the reviewed source) or an .ipynb."""
    import nbformat

    path = Path(path)
    if path.suffix == ".py":
        import jupytext

        return jupytext.read(path)
    return nbformat.read(path, as_version=4)


def source_paths(source_dir: str | Path = NOTEBOOKS_DIR) -> dict[str, Path]:
    """{"01_dense_sae": notebooks/01_dense_sae.py, ...}: the reviewed .py when present, else the .ipynb."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise AssignmentError(f"notebook folder {source_dir} does not exist; run from a source checkout or pass "
                              "the folder holding NN_name.py / .ipynb sources.")
    paths = {p.stem: p for p in sorted(source_dir.glob("[0-9][0-9]_*.ipynb"))}
    paths.update({p.stem: p for p in sorted(source_dir.glob("[0-9][0-9]_*.py"))})
    return dict(sorted(paths.items()))


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution_cell(cell) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_check_cell(cell) -> bool:
    """An autograded test cell in nbgrader's sense: graded and not a solution."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def replace_regions(source: str, begin: str, end: str, stub: tuple[str, ...] = (), where: str = "") -> str:
    """Replace every begin…end region (delimiter lines included) by `stub`, indented like the begin line."""
    out, inside, indent = [], False, ""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise AssignmentError(f"{where}: nested '{begin}'; close the first region with '{end}'.")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
        elif stripped == end:
            if not inside:
                raise AssignmentError(f"{where}: '{end}' without a matching '{begin}'.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise AssignmentError(f"{where}: '{begin}' is never closed; add a '{end}' line.")
    return "\n".join(out)


def solution_regions(source: str) -> list[str]:
    """The code inside every BEGIN/END SOLUTION region (used by tests and by restore_solutions)."""
    return re.findall(rf"{re.escape(BEGIN_SOLUTION)}\n(.*?)\n[ \t]*{re.escape(END_SOLUTION)}", source, re.S)


def check_markup(nb, name: str) -> None:
    """Every solution region sits in a solution cell; grade ids are unique; check cells are locked, with points."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        meta, where = nbgrader_meta(cell), f"{name} cell {index}"
        if BEGIN_SOLUTION in cell.source and not meta.get("solution"):
            raise AssignmentError(f"{where} has a '{BEGIN_SOLUTION}' region but no nbgrader solution metadata; "
                                  'put nbgrader={"solution": true, "grade_id": ...} on its "# %%" line.')
        if not meta:
            continue
        grade_id = meta.get("grade_id")
        if not grade_id or not re.fullmatch(r"[A-Za-z0-9_\-]+", grade_id):
            raise AssignmentError(f"{where}: nbgrader grade_id {grade_id!r} must be letters, digits, _ or -.")
        if grade_id in seen:
            raise AssignmentError(f"{where}: grade_id {grade_id!r} is already used by cell {seen[grade_id]}.")
        seen[grade_id] = index
        if is_check_cell(cell) and not (meta.get("locked") and meta.get("points", 0) > 0):
            raise AssignmentError(f"{where}: check cell {grade_id!r} needs \"locked\": true and \"points\" > 0.")
        replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, where=where)
        replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, where=where)


_HEADER = re.compile(r"### Exercise ([\d.]+)\s*[—-]+\s*(.+)")
_MINUTES = re.compile(r"~\s*(\d+)\s*min")


def find_exercises(nb, name: str) -> list[Exercise]:
    """Pair each solution cell with the next check cell and the exercise header above it."""
    check_markup(nb, name)
    exercises, header = [], None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and _HEADER.search(cell.source):
            header = cell.source
        if not is_solution_cell(cell):
            continue
        check = next((c for c in nb.cells[index + 1:] if is_check_cell(c)), None)
        if header is None or check is None:
            raise AssignmentError(f"{name} cell {index}: a solution cell needs a '### Exercise N.M — title' "
                                  "markdown cell above it and a check cell after it.")
        number, title = _HEADER.search(header).groups()
        difficulty = re.search(r"Difficulty\s*([●○]+)", header)
        minutes = _MINUTES.search(header)
        if difficulty is None or minutes is None:
            raise AssignmentError(f"{name}, exercise {number}: add a '> Difficulty ●●○○○ · ... · ~10 min' line.")
        exercises.append(Exercise(name, number, title.strip(), difficulty.group(1).count("●"),
                                  int(minutes.group(1)), nbgrader_meta(cell)["grade_id"],
                                  nbgrader_meta(check)["grade_id"], float(nbgrader_meta(check)["points"])))
        header = None
    return exercises


def student_notebook(nb, name: str):
    """A copy of `nb` for students: solutions stubbed, hidden tests and answer-key cells removed, check cells
    locked, no outputs, and one line saying that grading runs hidden cases too."""
    import nbformat

    check_markup(nb, name)
    student = copy.deepcopy(nb)
    student.cells = [c for c in student.cells if ANSWER_KEY_TAG not in c.get("metadata", {}).get("tags", [])]
    student.cells.insert(1, nbformat.v4.new_markdown_cell(GRADING_NOTE))
    student.metadata.pop("jupytext", None)  # students get a plain .ipynb, not a jupytext pair
    student.metadata[METADATA_KEY] = {"assignment": name}
    for index, cell in enumerate(student.cells):
        where = f"{name} cell {index}"
        if is_solution_cell(cell):
            cell.source = replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, STUB, where)
        cell.source = replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, where=where)
        if is_check_cell(cell):  # what nbgrader's LockCells does: JupyterLab refuses to edit or delete them
            cell.metadata.update(editable=False, deletable=False)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student


def restore_solutions(student, instructor):
    """Put the instructor's solution cells back into a student version (matched by grade_id)."""
    solutions = {nbgrader_meta(c)["grade_id"]: c.source for c in instructor.cells if is_solution_cell(c)}
    restored = copy.deepcopy(student)
    restored.cells = [c for c in restored.cells if not (c.cell_type == "markdown" and c.source == GRADING_NOTE)]
    for cell in restored.cells:
        if is_solution_cell(cell) and nbgrader_meta(cell)["grade_id"] in solutions:
            cell.source = solutions[nbgrader_meta(cell)["grade_id"]]
    return restored


def write_versions(out_dir: str | Path, source_dir: str | Path, version) -> list[Path]:
    """Write out_dir/NN_name.ipynb = version(nb, name) for every source notebook with exercises; return the paths."""
    import nbformat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, path in source_paths(source_dir).items():
        nb = load_notebook(path)
        if not find_exercises(nb, name):
            continue
        target = out_dir / f"{name}.ipynb"
        nbformat.write(version(nb, name), target)
        written.append(target)
    return written


def write_release(out_dir: str | Path = "release", source_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """The student versions: out_dir/NN_name.ipynb for every source notebook with exercises."""
    return write_versions(out_dir, source_dir, student_notebook)


def write_nbgrader_source(course_dir: str | Path, source_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """course_dir/source/NN_name/NN_name.ipynb without answer keys, for `nbgrader generate_assignment`, which copies
    every other cell to students. Its autograder runs only the visible checks and trusts the student's kernel:
    grade with classroom/grading/ for points."""
    import nbformat

    written = []
    for name, path in source_paths(source_dir).items():
        nb = load_notebook(path)
        if not find_exercises(nb, name):
            continue
        nb.metadata.pop("jupytext", None)
        nb.cells = [c for c in nb.cells if ANSWER_KEY_TAG not in c.get("metadata", {}).get("tags", [])]
        target = Path(course_dir) / "source" / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def exercise_table(source_dir: str | Path = NOTEBOOKS_DIR) -> str:
    """The markdown table of exercises in docs/teaching.md (a test keeps the two identical)."""
    rows = ["| notebook | exercise | difficulty | minutes | points | grade ids (solution / check) |",
            "|---|---|---|---|---|---|"]
    for name, path in source_paths(source_dir).items():
        for ex in find_exercises(load_notebook(path), name):
            rows.append(f"| {name} | {ex.number} {ex.title} | {'●' * ex.difficulty}{'○' * (5 - ex.difficulty)} | "
                        f"~{ex.minutes} | {ex.points:g} | `{ex.solution_id}` / `{ex.check_id}` |")
    return "\n".join(rows)


def run(args) -> None:
    """`python -m switch_sae_mini assignments` (flags: cli/classroom.py)."""
    try:
        if args.table:
            print(exercise_table(args.source_dir))
            return
        if args.nbgrader_source:
            paths = write_nbgrader_source(args.nbgrader_source, args.source_dir)
        else:
            paths = write_release(args.out, args.source_dir)
    except AssignmentError as exc:
        raise SystemExit(f"error: {exc}") from None
    for path in paths:
        print(f"wrote {path}")
