"""Student versions (issue 7): generated from the sources, free of solution code, with nbgrader-compatible markup;
hidden checks reject what the visible checks let through. All static: no notebook is executed here
(tests/test_grade.py executes them)."""

import re
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from switch_sae_mini.classroom import assignments, checks
from switch_sae_mini.classroom.assignments import (GRADING_NOTE, STUB, AssignmentError, find_exercises, is_check_cell,
                                         is_solution_cell, load_notebook, nbgrader_meta, restore_solutions,
                                         solution_regions, student_notebook, write_release)
from switch_sae_mini.classroom.checks import CheckFailed

ROOT = Path(__file__).resolve().parents[1]
SOURCES = assignments.source_paths(ROOT / "notebooks")
WITH_EXERCISES = ["01_dense_sae", "02_topk_sae", "03_switch_sae", "04_flop_matched", "05_feature_analysis"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return {p.stem: p for p in write_release(out, ROOT / "notebooks")}


def test_release_holds_every_notebook_with_exercises(release):
    assert set(WITH_EXERCISES) <= set(release)
    for name in SOURCES:  # and only those (00 and 05 have no exercise)
        assert bool(find_exercises(load_notebook(SOURCES[name]), name)) == (name in release), name


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_student_version_has_no_solution_code(release, name):
    instructor = load_notebook(SOURCES[name])
    student = nbformat.read(release[name], as_version=4)
    text = "\n".join(c.source for c in student.cells)
    solution_lines = [line.strip() for c in instructor.cells for region in solution_regions(c.source)
                      for line in region.splitlines() if line.strip()]
    assert solution_lines, f"{name}: no solution region found in the source"
    leaked = [line for line in solution_lines if line in text]
    assert not leaked, f"{name}: solution code in the student version: {leaked}"
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "hidden_cases" not in text
    assert student.cells[1].source == GRADING_NOTE  # students are told that hidden cases exist


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_student_version_stubs_solutions_and_keeps_checks(release, name):
    instructor = load_notebook(SOURCES[name])
    instructor.cells = [c for c in instructor.cells if "answer-key" not in c.metadata.get("tags", [])]
    student = nbformat.read(release[name], as_version=4)
    student.cells = [c for c in student.cells if c.source != GRADING_NOTE]
    assert [nbgrader_meta(c).get("grade_id") for c in student.cells] == \
        [nbgrader_meta(c).get("grade_id") for c in instructor.cells]
    assert student.metadata["switch_sae_mini"] == {"assignment": name} and "jupytext" not in student.metadata
    for mine, theirs in zip(student.cells, instructor.cells):
        if is_solution_cell(mine):
            lines = [line.strip() for line in mine.source.splitlines()]
            assert lines[-2:] == list(STUB), mine.source
        elif is_check_cell(mine):
            assert mine.source == theirs.source and "checks.check_" in mine.source
            assert mine.metadata["editable"] is False and mine.metadata["deletable"] is False
        else:
            assert mine.source == theirs.source
        assert mine.cell_type != "code" or (mine.outputs == [] and mine.execution_count is None)


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_putting_the_solutions_back_gives_the_instructor_notebook(release, name):
    instructor = load_notebook(SOURCES[name])
    restored = restore_solutions(nbformat.read(release[name], as_version=4), instructor)
    assert [c.source for c in restored.cells] == [c.source for c in instructor.cells
                                                  if "answer-key" not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_every_question_has_an_answer_key_that_students_never_get(release, name):
    cells = load_notebook(SOURCES[name]).cells
    questions = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "**Question " in c.source]
    assert questions, f"{name}: no conceptual question"
    for i in questions:
        answer = cells[i + 1]
        assert "answer-key" in answer.metadata.get("tags", []) and "<summary>Answer" in answer.source, (name, i)
    text = nbformat.read(release[name], as_version=4)
    assert not any("answer-key" in c.metadata.get("tags", []) or "<summary>Answer" in c.source for c in text.cells)


def test_grade_ids_unique_and_every_exercise_graded():
    ids, exercises = [], []
    for name in SOURCES:
        nb = load_notebook(SOURCES[name])
        ids += [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
        exercises += find_exercises(nb, name)
        # `nbgrader generate_assignment` reads the .ipynb: its metadata must match the reviewed .py
        ipynb = nbformat.read(SOURCES[name].with_suffix(".ipynb"), as_version=4)
        assert [nbgrader_meta(c) for c in ipynb.cells] == [nbgrader_meta(c) for c in nb.cells], name
    assert len(ids) == len(set(ids)), f"duplicate grade ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    assert len(exercises) >= 7 and all(ex.points > 0 and ex.minutes > 0 for ex in exercises)
    for ex in exercises:
        assert ex.check_id == f"check_{ex.solution_id}", ex
    from switch_sae_mini.classroom.exercises import EXERCISES
    assert {ex.solution_id for ex in exercises} <= set(EXERCISES)  # the trusted grader has cases for each


def _toy(solution="    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", meta=True, check_id="check_double"):
    sol = {"nbgrader": {"grade": False, "grade_id": "double", "locked": False, "solution": True}} if meta else {}
    check = {"nbgrader": {"grade": True, "grade_id": check_id, "locked": True, "points": 1, "solution": False}}
    return new_notebook(cells=[new_markdown_cell("### Exercise 1.1 — double\n> Difficulty ●○○○○ · ~2 min"),
                               new_code_cell(f"def double(x):\n{solution}", metadata=sol),
                               new_code_cell("assert double(2) == 4", metadata=check)])


def test_toy_student_version_and_exercise():
    student = student_notebook(_toy(), "01_toy")
    assert student.cells[2].source == "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    [ex] = find_exercises(_toy(), "01_toy")
    assert (ex.number, ex.title, ex.difficulty, ex.minutes, ex.points) == ("1.1", "double", 1, 2, 1.0)


@pytest.mark.parametrize("notebook, message", [
    (_toy("    ### BEGIN SOLUTION\n    return 2 * x"), "never closed"),
    (_toy("    return 2 * x\n    ### END SOLUTION"), "without a matching"),
    (_toy(meta=False), "no nbgrader solution metadata"),
    (_toy(check_id="double"), "already used by cell 1"),
    (_toy(check_id="check double"), "letters, digits"),
])
def test_malformed_markup_is_refused_with_the_fix(notebook, message):
    with pytest.raises(AssignmentError, match=message):
        student_notebook(notebook, "01_toy")


def test_nbgrader_source_holds_only_the_visible_checks(tmp_path):
    paths = assignments.write_nbgrader_source(tmp_path, ROOT / "notebooks")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [f"source/{n}/{n}.ipynb" for n in WITH_EXERCISES]
    nb = nbformat.read(tmp_path / "source/01_dense_sae/01_dense_sae.ipynb", as_version=4)
    check_sources = [c.source for c in nb.cells if is_check_cell(c)]
    assert check_sources[0] == "checks.check_l1_penalty(l1_penalty)"
    assert all(re.fullmatch(r"checks\.check_(\w+)\(\1\)", source) for source in check_sources), check_sources


def test_teaching_guide_lists_the_exercises_as_the_notebooks_do():
    guide = (ROOT / "docs" / "teaching.md").read_text()
    assert assignments.exercise_table(ROOT / "notebooks") in guide, (
        "docs/teaching.md's exercise table is stale: paste `python -m switch_sae_mini assignments --table`")
    assert "docs/teaching.md" in (ROOT / "README.md").read_text()
    assert re.search(r"^assignments:", (ROOT / "Makefile").read_text(), re.M)


# The instructor's hidden cases (instructor/hidden_cases.py): the right answer passes them; the mistake each one
# targets passes the visible check and is rejected by the hidden case, with a teaching message.

def _stub(*args):
    raise NotImplementedError()


def _l1(f, W):
    return (f * W.norm(dim=-1)).sum(-1).mean()


def _median_without_clamp(points):
    median = points.mean(0)
    for _ in range(100):
        weights = 1.0 / (points - median).norm(dim=-1)
        median = (weights[:, None] * points).sum(0) / weights.sum()
    return median


def _median(points):  # written out: the package's geometric_median is tripwired inside checks
    median = points.mean(0)
    for _ in range(200):
        weights = 1.0 / (points - median).norm(dim=-1).clamp_min(1e-8)
        median = (weights[:, None] * points).sum(0) / weights.sum()
    return median


def _lb(probs, idx, n):
    return n * (torch.bincount(idx, minlength=n).float() / idx.numel() * probs.mean(0)).sum()


def _lb_without_minlength(probs, idx, n):
    return n * (torch.bincount(idx).float() / idx.numel() * probs.mean(0)).sum()


def _switch_latents(x, W_enc, b_dec, W_router, b_router, n_experts, k, d_expert=None):
    """The notebook's loop solution; d_expert=8 hard-codes the visible example's 24 latents / 3 experts."""
    from switch_sae_mini.saes import route

    d_expert = d_expert or W_enc.shape[1] // n_experts
    routing = route(x, W_router, b_router)
    expert_idx, gate = routing.expert_idx, routing.gate
    latents = torch.zeros(x.shape[0], W_enc.shape[1])
    for b in range(x.shape[0]):
        e = int(expert_idx[b])
        values, local = torch.relu((x[b] - b_dec) @ W_enc[:, e * d_expert:(e + 1) * d_expert]).topk(k)
        latents[b, e * d_expert + local] = values * gate[b]
    return latents


HIDDEN = __import__("runpy").run_path(str(ROOT / "instructor" / "hidden_cases.py"))["hidden_cases"]()


def _judge_hidden(name, fn):
    from switch_sae_mini.classroom.exercises import EXERCISES, judge, run_case
    return [judge(EXERCISES[name], case, run_case(EXERCISES[name], fn, case)) for case in HIDDEN[name]]


@pytest.mark.parametrize("name, visible, right, wrong, message", [
    ("l1_penalty", checks.check_l1_penalty, _l1, lambda f, W: (f * W.norm(dim=-1)).sum() / 6, "mean over tokens"),
    ("geometric_median", checks.check_geometric_median, _median, _median_without_clamp, "Clamp the distances"),
    ("load_balance_loss", checks.check_load_balance_loss, _lb, _lb_without_minlength, "minlength=n_experts"),
    ("switch_latents", checks.check_switch_latents, _switch_latents, lambda *args: _switch_latents(*args, d_expert=8),
     "hard-coded"),
], ids=["l1_penalty", "geometric_median", "load_balance_loss", "switch_latents"])
def test_hidden_case_catches_what_the_visible_one_misses(name, visible, right, wrong, message):
    assert _judge_hidden(name, right) == [None] * len(HIDDEN[name])
    visible(wrong)  # the mistake gets past the visible check ...
    verdicts = [v for v in _judge_hidden(name, wrong) if v is not None]
    assert verdicts and message in verdicts[0]  # ... and not past the hidden case
    assert all("NotImplementedError" in v for v in _judge_hidden(name, _stub))


def test_hints_come_before_their_check():
    """A hint is read before running the check (issue 13): no hint cell directly after a check cell, and every
    hint sits between its exercise's solution cell and its check."""
    for name, path in SOURCES.items():
        cells = load_notebook(path).cells
        for i, cell in enumerate(cells):
            if cell.cell_type == "markdown" and "<summary>Hint" in cell.source:
                assert not is_check_cell(cells[i - 1]), (name, i)
                later = [c for c in cells[i + 1:] if is_check_cell(c) or is_solution_cell(c)]
                assert later and is_check_cell(later[0]), (name, i)


def test_students_see_no_ci_markers():
    """nbval's ignore-output marker is a cell tag, not a '# NBVAL_...' line in the code students read."""
    for name, path in SOURCES.items():
        for cell in student_notebook(load_notebook(path), name).cells:
            assert "NBVAL" not in cell.source, (name, cell.source[:80])
