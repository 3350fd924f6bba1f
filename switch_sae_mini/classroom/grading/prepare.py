"""The notebook the grader executes, built from a submission and the instructor's notebook.

- After each exercise's solution cell comes a runner cell (runner.py) carrying that exercise's cases: the visible
  ones, random ones drawn from the instructor's secret seed, and the instructor's hidden cases.
- Check cells do not run: they are feedback for the learner, and points come from the runner's answers only.
  Check cells that were edited or deleted are flagged.
- Cells tagged `skip-in-grading` in the instructor's notebook (harvesting, training: work no exercise needs) are
  skipped when the submission has them unchanged; an edited copy runs.
- Nothing after the last runner cell runs.
"""

from __future__ import annotations

import copy
import hashlib
import runpy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..assignments import Exercise as ExerciseMarkup
from ..assignments import BEGIN_HIDDEN, END_HIDDEN, is_check_cell, is_solution_cell, nbgrader_meta, replace_regions
from ..exercises import EXERCISES, Case
from .integrity import package_use, same_code, tampering
from .protocol import encode_cases
from .report import Flag

SKIP_TAG = "skip-in-grading"
RUNNER = ('__import__("switch_sae_mini.classroom.grading.runner", fromlist=["run"]).run({payload!r}, globals(), '
          'flag_only={flag_only})')


class GradingError(ValueError):
    """The submission or the instructor's files cannot be graded; the message says what to do."""


@dataclass
class GradingPlan:
    nb: object                                   # the notebook to execute
    runner_cells: dict[int, str] = field(default_factory=dict)    # cell index -> exercise
    solution_cells: dict[str, int] = field(default_factory=dict)  # exercise -> cell index
    cases: dict[str, list[Case]] = field(default_factory=dict)
    n_visible: dict[str, int] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)


def exercise_generator(seed: int, assignment: str, exercise: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{assignment}:{exercise}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def load_hidden_cases(path: str | Path | None) -> dict[str, list[Case]]:
    """The instructor's hidden cases: a Python file (run here, in the grader) defining
    hidden_cases() -> {exercise name: [Case, ...]}. Never shipped to students."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise GradingError(f"hidden cases file {path} does not exist.")
    fn = runpy.run_path(str(path)).get("hidden_cases")
    if not callable(fn):
        raise GradingError(f"{path} must define hidden_cases() returning {{exercise name: [Case, ...]}}.")
    cases = fn()
    unknown = set(cases) - set(EXERCISES)
    bad = [n for n, cs in cases.items() if not all(isinstance(c, Case) for c in cs)]
    if unknown or bad:
        raise GradingError(f"{path}: hidden_cases() names unknown exercises {sorted(unknown)} or returns items that "
                           f"are not Case for {bad}; use switch_sae_mini.classroom.exercises.Case.")
    return cases


def _visible(source: str) -> str:
    try:
        return replace_regions(source, BEGIN_HIDDEN, END_HIDDEN).strip()
    except ValueError:
        return source.strip()


def build(submission, instructor, assignment: str, markup: list[ExerciseMarkup], seed: int,
          hidden: dict[str, list[Case]], flag_only: bool = False) -> GradingPlan:
    import nbformat

    unknown = [ex.solution_id for ex in markup if ex.solution_id not in EXERCISES]
    if unknown:
        raise GradingError(f"{assignment}: exercises {unknown} have no cases in switch_sae_mini.classroom.exercises; "
                           "the trusted grader can only grade exercises defined there.")
    plan = GradingPlan(nb=copy.deepcopy(submission))
    ours = {ex.solution_id for ex in markup}
    for ex in markup:
        exercise = EXERCISES[ex.solution_id]
        visible = exercise.visible_cases()
        plan.cases[ex.solution_id] = visible + exercise.random_cases(
            exercise_generator(seed, assignment, ex.solution_id)) + list(hidden.get(ex.solution_id, []))
        plan.n_visible[ex.solution_id] = len(visible)
    instructor_checks = {nbgrader_meta(c)["grade_id"]: _visible(c.source) for c in instructor.cells
                         if is_check_cell(c)}
    instructor_sources = [c.source for c in instructor.cells if c.cell_type == "code"]
    solutions = {nbgrader_meta(c)["grade_id"]: c.source for c in instructor.cells if is_solution_cell(c)}
    skippable = {c.source.strip() for c in instructor.cells if SKIP_TAG in c.get("metadata", {}).get("tags", [])}
    all_sources = [c.source for c in submission.cells if c.cell_type == "code"]
    check_of = {ex.check_id: ex.solution_id for ex in markup}
    cells, seen_checks = [], set()
    for cell in plan.nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        cell.get("metadata", {}).pop("nbgrader", None)
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        if grade_id in instructor_checks and grade_id not in seen_checks:
            seen_checks.add(grade_id)
            if _visible(cell.source) != instructor_checks[grade_id]:
                plan.flags.append(Flag(check_of.get(grade_id, ""), "check-cell-edited",
                                       f"the check cell {grade_id} was edited (it is not run in grading)"))
            continue
        if cell.source.strip() in skippable:
            continue
        if cell.source not in instructor_sources and not (grade_id in ours and grade_id not in plan.solution_cells):
            used = tampering(cell.source)
            if used:
                plan.flags.append(Flag("", "tampering", f"an edited cell uses {', '.join(used)}"))
        cells.append(cell)
        if grade_id in ours and grade_id not in plan.solution_cells:
            plan.solution_cells[grade_id] = len(cells) - 1
            for target in package_use(grade_id, cell.source, all_sources):
                plan.flags.append(Flag(grade_id, "package-use", target.replace(":", "."), scored_zero=True))
            if grade_id in solutions and same_code(cell.source, solutions[grade_id]):
                plan.flags.append(Flag(grade_id, "identical-to-reference", "the solution is the reference solution"))
            used = tampering(cell.source)
            if used:
                plan.flags.append(Flag(grade_id, "tampering", f"the solution cell uses {', '.join(used)}"))
            cells.append(nbformat.v4.new_code_cell(RUNNER.format(payload=encode_cases(grade_id, plan.cases[grade_id]),
                                                                flag_only=flag_only)))
            plan.runner_cells[len(cells) - 1] = grade_id
    for check_id in instructor_checks.keys() - seen_checks:
        plan.flags.append(Flag(check_of.get(check_id, ""), "check-cell-deleted", f"the check cell {check_id} was deleted"))
    last = max(plan.runner_cells, default=-1)
    plan.nb.cells = cells[: last + 1]
    return plan
