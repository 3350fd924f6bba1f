"""The lightweight grader (issue 7): points per check cell, robust to submissions that raise, loop, kill the
kernel or delete/edit check cells, and clear errors on bad input. Edge cases use a tiny synthetic assignment
(a kernel start each, ~1-4 s); three tests execute real notebooks in FAST mode (~5-25 s each)."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from switch_sae_mini.classroom import assignments, grade
from switch_sae_mini.cli import main
from switch_sae_mini.classroom.assignments import is_check_cell, load_notebook, restore_solutions, student_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL_ENV = {**os.environ, "SSM_FAST": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


def _meta(grade_id, solution, points=None):
    meta = {"grade": not solution, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    return {"nbgrader": meta | ({"points": points} if points else {})}


def _indent(code: str) -> str:
    return "\n".join(f"    {line}" for line in code.splitlines())


def toy_notebook(double="return 2 * x", triple="return 3 * x"):
    """Two exercises; check_triple has a hidden test (triple(-1)) that the student version must not show."""
    body = _indent
    return new_notebook(cells=[
        new_code_cell("import time"),
        new_markdown_cell("### Exercise 1.1 — double\n> Difficulty ●○○○○ · ~2 min"),
        new_code_cell(f"def double(x):\n    ### BEGIN SOLUTION\n{body(double)}\n    ### END SOLUTION",
                      metadata=_meta("double", True)),
        new_code_cell("assert double(2) == 4, 'double(2) should be 4'", metadata=_meta("check_double", False, 1)),
        new_markdown_cell("### Exercise 1.2 — triple\n> Difficulty ●●○○○ · ~3 min"),
        new_code_cell(f"def triple(x):\n    ### BEGIN SOLUTION\n{body(triple)}\n    ### END SOLUTION",
                      metadata=_meta("triple", True)),
        new_code_cell("assert triple(2) == 6\n### BEGIN HIDDEN TESTS\nassert triple(-1) == -3, 'hidden case'\n"
                      "### END HIDDEN TESTS", metadata=_meta("check_triple", False, 2)),
        new_code_cell("raise RuntimeError('after the last check: never run')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture
def toy(tmp_path):
    """(source folder holding the instructor notebook 01_toy.ipynb, a writer of submissions)."""
    sources = tmp_path / "sources"
    sources.mkdir()
    nbformat.write(toy_notebook(), sources / "01_toy.ipynb")

    def submit(double="return 2 * x", triple="return 3 * x", edit=None, name="submission.ipynb"):
        """The student release with the student's answers typed over the stubs."""
        nb = student_notebook(toy_notebook(), "01_toy")
        for cell in nb.cells:
            answer = {"double": double, "triple": triple}.get(assignments.nbgrader_meta(cell).get("grade_id"))
            if answer is not None:
                cell.source = f"{cell.source.splitlines()[0]}\n{_indent(answer)}"
        if edit:
            edit(nb)
        nbformat.write(nb, tmp_path / name)
        return tmp_path / name
    return sources, submit


def _statuses(report):
    return {c.grade_id: (c.status, c.earned) for c in report.checks}


def test_student_version_hides_the_hidden_test():
    text = nbformat.writes(student_notebook(toy_notebook(), "01_toy"))
    assert "hidden case" not in text and "return 2 * x" not in text and "raise NotImplementedError()" in text


def test_full_marks_then_hidden_test_decides(toy):
    sources, submit = toy
    report = grade.grade_notebook(submit(), sources, timeout=30)
    assert _statuses(report) == {"check_double": ("passed", 1), "check_triple": ("passed", 2)}
    assert (report.total, report.max_total) == (3, 3) and not any(c.restored for c in report.checks)
    # hard-coding the visible case passes the visible check, not the hidden one (unless --no-hidden)
    cheat = submit(triple="return 6 if x == 2 else 0")
    assert _statuses(grade.grade_notebook(cheat, sources, timeout=30))["check_triple"] == ("failed", 0)
    assert _statuses(grade.grade_notebook(cheat, sources, timeout=30, hidden=False))["check_triple"] == ("passed", 2)


def test_stubs_and_raising_cells_score_zero_per_check(toy):
    sources, submit = toy
    def break_import(nb):
        nb.cells[0].source = "import time\nraise ValueError('the student broke the first cell')"
    report = grade.grade_notebook(submit(double="raise NotImplementedError()", triple="return 1 / 0",
                                         edit=break_import), sources, timeout=30)
    [double, triple] = report.checks
    assert (double.status, double.earned, triple.status, triple.earned) == ("failed", 0, "failed", 0)
    assert double.message == "NotImplementedError: " and triple.message == "ZeroDivisionError: division by zero"


def test_stub_in_the_student_release_scores_zero(toy):
    sources, submit = toy
    nb = student_notebook(toy_notebook(), "01_toy")
    nbformat.write(nb, sources.parent / "release.ipynb")
    report = grade.grade_notebook(sources.parent / "release.ipynb", sources, timeout=30)
    assert report.total == 0 and all(c.status == "failed" for c in report.checks)


def test_deleted_and_edited_check_cells_are_restored(toy):
    sources, submit = toy
    def tamper(nb):
        nb.cells[6].source = "pass  # the check is gone"
        del nb.cells[3]
    report = grade.grade_notebook(submit(triple="return 3", edit=tamper), sources, timeout=30)
    double, triple = report.checks
    assert (double.restored, double.status, double.earned) == ("deleted", "passed", 1)
    assert (triple.restored, triple.status, triple.earned) == ("edited", "failed", 0)
    assert "restored" in report.table()


def test_only_the_instructors_checks_earn_points():
    student = student_notebook(toy_notebook(), "01_toy")
    student.cells.append(new_code_cell("pass", metadata=_meta("free_points", False, 100)))
    student.cells.append(new_code_cell("pass", metadata=_meta("check_double", False, 100)))  # a duplicate
    nb, restored = grade.prepare(student, toy_notebook())
    checks = [assignments.nbgrader_meta(c) for c in nb.cells if is_check_cell(c)]
    assert [(m["grade_id"], m["points"]) for m in checks] == [("check_double", 1), ("check_triple", 2)]
    assert restored == {}


def test_a_source_without_checks_is_refused(tmp_path, capsys):
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), tmp_path / "00_intro.ipynb")
    assert main(["grade", str(tmp_path / "00_intro.ipynb"), "--source", str(tmp_path / "00_intro.ipynb")]) == 2
    assert "has no check cells" in capsys.readouterr().err


def test_infinite_loop_times_out_and_the_next_check_still_runs(toy):
    sources, submit = toy
    report = grade.grade_notebook(submit(double="while True:\n    pass"), sources, timeout=2)
    assert _statuses(report) == {"check_double": ("timeout", 0), "check_triple": ("passed", 2)}
    assert "longer than 2 s" in report.checks[0].message


def test_a_loop_that_swallows_the_interrupt_stops_grading(toy):
    sources, submit = toy
    stubborn = "while True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass"
    report = grade.grade_notebook(submit(double=stubborn), sources, timeout=2)
    assert _statuses(report) == {"check_double": ("timeout", 0), "check_triple": ("not run", 0)}
    assert "did not stop" in report.checks[1].message


def test_a_dead_kernel_scores_the_remaining_checks_zero(toy):
    sources, submit = toy
    report = grade.grade_notebook(submit(double="import os\nos._exit(1)"), sources, timeout=30)
    assert [(c.status, c.earned) for c in report.checks] == [("failed", 0), ("not run", 0)]
    assert "kernel died" in report.checks[0].message + report.checks[1].message


def test_cli_json_finds_the_assignment_of_a_renamed_submission(toy, capsys):
    sources, submit = toy
    assert main(["grade", str(submit(name="my homework.ipynb")), "--source", str(sources), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["assignment"], report["total"], report["max_total"]) == ("01_toy", 3, 3)


@pytest.mark.parametrize("content, name, message", [
    ("print('hello')\n", "submission.py", "is not a Jupyter notebook"),
    ('{"cells": 3}', "submission.ipynb", "is not a Jupyter notebook"),
    (None, "missing.ipynb", "does not exist"),
    (nbformat.writes(new_notebook(cells=[new_code_cell("1")])), "homework.ipynb", "cannot tell which assignment"),
])
def test_bad_input_exits_2_with_a_clear_message(toy, tmp_path, capsys, content, name, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    assert main(["grade", str(tmp_path / name), "--source", str(toy[0])]) == 2
    assert message in capsys.readouterr().err


# Real notebooks, FAST mode.

def test_student_notebook_fails_at_the_first_check_with_the_teaching_message():
    nb = student_notebook(load_notebook(NOTEBOOKS / "04_flop_matched.py"), "04_flop_matched")
    first_check = next(i for i, c in enumerate(nb.cells) if is_check_cell(c))
    client = NotebookClient(nb, timeout=300, kernel_name="python3")
    with pytest.raises(CellExecutionError) as failure:
        client.execute(env=KERNEL_ENV)
    assert "encoder_flops still raises NotImplementedError: replace the stub with your code." in str(failure.value)
    ran = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count]
    assert ran[-1] == first_check  # stopped there: no later cell ran


@pytest.mark.slow
def test_grader_gives_full_marks_to_the_instructor_notebook(tmp_path):
    report = grade.grade_notebook(NOTEBOOKS / "01_dense_sae.ipynb", timeout=300, env={"OMP_NUM_THREADS": "1"},
                                  executed_path=tmp_path / "graded.ipynb")
    assert report.assignment == "01_dense_sae" and report.total == report.max_total > 0
    assert [(c.grade_id, c.status, c.restored) for c in report.checks] == [("check_l1_penalty", "passed", "")]
    executed = tmp_path.joinpath("graded.ipynb").read_text()
    assert "check_l1_penalty_differentiable passed" in executed  # the hidden check ran too


@pytest.mark.slow
def test_grader_zero_for_each_stubbed_exercise(tmp_path):
    """Student 02 with exercise 2.1 filled back in: 2.1 gets its points, the stubbed 2.2 gets zero."""
    instructor = load_notebook(NOTEBOOKS / "02_topk_sae.py")
    student = student_notebook(instructor, "02_topk_sae")
    solution = next(c for c in instructor.cells if assignments.nbgrader_meta(c).get("grade_id") == "topk_activation")
    next(c for c in student.cells if assignments.nbgrader_meta(c).get("grade_id") == "topk_activation").source = \
        solution.source
    nbformat.write(student, tmp_path / "submission.ipynb")
    report = grade.grade_notebook(tmp_path / "submission.ipynb", timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert [(c.grade_id, c.earned, c.points, c.status) for c in report.checks] == [
        ("check_topk_activation", 2, 2, "passed"), ("check_geometric_median", 0, 3, "failed")]
    assert "geometric_median still raises NotImplementedError" in report.checks[1].message


@pytest.mark.slow
def test_putting_the_reference_solution_back_passes_every_check(tmp_path):
    instructor = load_notebook(NOTEBOOKS / "04_flop_matched.py")
    nbformat.write(restore_solutions(student_notebook(instructor, "04_flop_matched"), instructor),
                   tmp_path / "04_flop_matched.ipynb")
    report = grade.grade_notebook(tmp_path / "04_flop_matched.ipynb", timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert report.total == report.max_total and all(c.status == "passed" for c in report.checks)
