"""The trusted grader (issue 14): points are decided in the grader's process from data the sandboxed kernel
returns, so no trick inside the submission turns a wrong answer into points. The cheating corpus below is built on
a small notebook made for the test (three real exercises of chapter 03, no model), graded two at a time."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from switch_sae_mini.classroom.assignments import nbgrader_meta, student_notebook
from switch_sae_mini.classroom.grading import batch, grade
from switch_sae_mini.cli import main

ROOT = Path(__file__).resolve().parents[1]
ROUTE = ("probs = torch.softmax((x - b_router) @ W_router, dim=-1)\ngate, expert_idx = probs.max(dim=-1)\n"
         "return expert_idx, gate")
WRONG_ROUTE = "gate, expert_idx = ((x - b_router) @ W_router).min(dim=0)\nreturn expert_idx, gate"
LATENTS = """expert_idx, gate = route(x, W_router, b_router)
d_expert = W_enc.shape[1] // n_experts
latents = torch.zeros(x.shape[0], W_enc.shape[1])
for b in range(x.shape[0]):
    e = int(expert_idx[b])
    values, local = torch.relu((x[b] - b_dec) @ W_enc[:, e * d_expert:(e + 1) * d_expert]).topk(k)
    latents[b, e * d_expert + local] = values * gate[b]
return latents"""
BALANCE = ("f = torch.bincount(expert_idx, minlength=n_experts).float() / expert_idx.numel()\n"
           "return n_experts * (f * router_probs.mean(0)).sum()")
SIGNATURES = {"route": "route(x, W_router, b_router)",
              "switch_latents": "switch_latents(x, W_enc, b_dec, W_router, b_router, n_experts, k)",
              "load_balance_loss": "load_balance_loss(router_probs, expert_idx, n_experts)"}
HEAVY = "import os\nos._exit(3)  # stands for a harvest: grading must skip it"


def _meta(grade_id, solution, points=None):
    meta = {"grade": not solution, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    return {"nbgrader": meta | ({"points": points} if points else {})}


def _indent(code):
    return "\n".join(f"    {line}" for line in code.splitlines())


def mini_notebook(answers=None, before=None):
    """The instructor notebook (answers=None) or a submission: {exercise: body}, `before`: {exercise: cell}."""
    answers, before = answers or {}, before or {}
    cells = [new_code_cell("import torch\nimport switch_sae_mini as ssm\nfrom switch_sae_mini import checks"),
             new_code_cell(HEAVY, metadata={"tags": ["skip-in-grading"]})]
    for number, (name, body, points) in enumerate([("route", ROUTE, 2), ("switch_latents", LATENTS, 3),
                                                   ("load_balance_loss", BALANCE, 2)], start=1):
        body = answers.get(name, body)
        cells += [new_markdown_cell(f"### Exercise 1.{number} — {name}\n> Difficulty ●●○○○ · ~10 min")]
        cells += [new_code_cell(before[name])] if name in before else []
        cells += [new_code_cell(f"def {SIGNATURES[name]}:\n    ### BEGIN SOLUTION\n{_indent(body)}\n"
                                "    ### END SOLUTION", metadata=_meta(name, True)),
                  new_code_cell(f"checks.check_{name}({name})", metadata=_meta(f"check_{name}", False, points))]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})


def submission(answers=None, before=None, edit=None):
    """The student release of the mini notebook with the student's answers typed over the stubs."""
    before = before or {}
    nb = student_notebook(mini_notebook(), "01_mini")
    typed = mini_notebook(answers)
    solutions = {nbgrader_meta(c).get("grade_id"): c for c in typed.cells if nbgrader_meta(c).get("solution")}
    cells = []
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in before:
            cells.append(new_code_cell(before[grade_id]))
        cells.append(solutions[grade_id] if grade_id in solutions else cell)
    nb.cells = cells
    if edit:
        edit(nb)
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course")
    (folder / "sources").mkdir()
    nbformat.write(mini_notebook(), folder / "sources" / "01_mini.ipynb")
    return folder


def _grade_all(course, named: dict, **options) -> dict:
    folder = course / f"class{len(list(course.iterdir()))}"
    for name, nb in named.items():
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, folder / name / "01_mini.ipynb")
    options = {"seed": 7, "timeout": 20, **options}
    reports = batch.grade_many(batch.submissions_in(folder), folder, jobs=2, source=course / "sources", **options)
    return {Path(r.submission).parent.name: r for r in reports}


def _points(report):
    return report.exercise_points()


def test_honest_submissions_earn_exactly_their_correct_parts(course):
    reports = _grade_all(course, {
        "right": submission(),
        "wrong_route": submission({"route": WRONG_ROUTE}),
        "stub": student_notebook(mini_notebook(), "01_mini"),
        "edited_heavy": submission(edit=lambda nb: setattr(
            next(c for c in nb.cells if c.source == HEAVY), "source", HEAVY.replace("_exit(3)", "_exit(4)"))),
    })
    right = reports["right"]
    assert (right.total, right.max_total) == (7, 7) and all(i.status == "passed" for i in right.items)
    assert right.sandbox["network"].startswith("isolated") and right.sandbox["proc"] == "own"
    # every file system is read-only but the kernel's own folder and /proc, /sys, /dev
    assert len(right.sandbox["writable"]) == 4 and "/tmp" in right.sandbox["read_only"], right.sandbox
    # one mistake costs once: switch_latents calls the wrong route, yet is graded with the reference route
    assert _points(reports["wrong_route"]) == {"route": 0, "switch_latents": 3, "load_balance_loss": 2}
    assert "raw logit" not in reports["wrong_route"].items[0].message  # min over the batch: a different mistake
    assert reports["stub"].total == 0
    assert "NotImplementedError" in reports["stub"].items[0].message
    # the heavy cell was skipped while unchanged; an edited copy runs (here: it kills the kernel)
    assert reports["edited_heavy"].total == 0 and "kernel died" in reports["edited_heavy"].items[0].message
    # flags: none on honest work except identical-to-reference, where it is the reference
    assert {f.kind for f in right.flags} == {"identical-to-reference"}
    assert not [f for f in reports["wrong_route"].flags if f.exercise == "route"]


WRONG = f"def route(x, W_router, b_router):\n{_indent(WRONG_ROUTE)}\n"
CHEATS = {  # "@tail": top-level code after the def in the solution cell; "@before": a cell before it
    # the three lines of the issue: patch every check to a no-op
    "patch_checks": {"route": WRONG_ROUTE, "@tail": "import switch_sae_mini.checks as c\nfor n in dir(c):\n"
                     "    if n.startswith('check_'): setattr(c, n, lambda *a, **k: None)"},
    "patch_torch": {"route": WRONG_ROUTE, "@tail": "import torch.testing\ntorch.allclose = lambda *a, **k: True\n"
                    "torch.equal = lambda *a, **k: True\ntorch.testing.assert_close = lambda *a, **k: None"},
    "patch_builtins": {"route": WRONG_ROUTE, "@tail": "import builtins\nbuiltins.isinstance = lambda *a: True\n"
                       "builtins.len = lambda a: 2"},
    "fake_runner": {"route": WRONG_ROUTE, "@tail": "import sys, types\nfake = types.ModuleType('runner')\n"
                    "fake.run = lambda *a, **k: __import__('IPython').display.display("
                    "{'application/vnd.switch-sae-mini.answers+json': 'cGFzc2Vk'}, raw=True)\n"
                    "sys.modules['switch_sae_mini.classroom.grading.runner'] = fake"},
    "exit_kernel": {"route": WRONG_ROUTE, "@tail": "import os\nos._exit(0)"},
    "system_exit": {"route": WRONG_ROUTE, "@tail": "raise SystemExit(0)"},
    "keyboard_interrupt": {"route": WRONG_ROUTE, "@tail": "raise KeyboardInterrupt"},
    "print_success": {"route": WRONG_ROUTE, "@tail": "print('✓ check_route passed')"},
    "read_instructor_files": {"route": "import glob\nfor p in glob.glob('/**/01_mini.ipynb', recursive=True) + "
                              f"glob.glob({str(ROOT / 'notebooks' / '*.py')!r}):\n"
                              "    print(open(p).read()[:10])\n" + WRONG_ROUTE},
    "write_grader_files": {"route": WRONG_ROUTE, "@tail": "import glob, os\nfor d in ['..', '../grader', '.']:\n"
                           "    for name in ['sandbox.json', 'answers.json', 'connection.json']:\n"
                           "        try:\n            open(os.path.join(d, name), 'w').write('{\"passed\": true}')\n"
                           "        except OSError:\n            pass"},
    "replace_after": {"route": WRONG_ROUTE, "@after": "def route(x, W_router, b_router):\n"
                      f"{_indent(ROUTE)}"},
    "tensor_subclass": {"route": "class Always(torch.Tensor):\n    def __eq__(self, other): return True\n"
                        "    @classmethod\n    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                        "        return True if func in (torch.allclose, torch.equal) else "
                        "super().__torch_function__(func, types, args, kwargs or {})\n"
                        "idx, gate = ((x - b_router) @ W_router).min(dim=0)\n"
                        "return idx.as_subclass(Always), gate.as_subclass(Always)"},
    "eq_object": {"route": "class Same:\n    def __eq__(self, other): return True\n    shape = None\n"
                  "return Same(), Same()"},
    "sleep_past_timeout": {"route": "import time\ntime.sleep(3600)\n" + WRONG_ROUTE},
    "huge_allocation": {"route": "blob = bytearray(64 * 2**30)\n" + WRONG_ROUTE},
    "fork_bomb": {"route": WRONG_ROUTE, "@before": "import os, time\nfor _ in range(2000):\n    try:\n"
                  "        if os.fork() == 0:\n            time.sleep(600)\n            os._exit(0)\n"
                  "    except OSError:\n        break"},
    "network": {"route": "import urllib.request\nurllib.request.urlopen('https://pypi.org', timeout=3)\n"
                + ROUTE},
    "package_call": {"route": "r = ssm.saes.route(x, W_router, b_router)\nreturn r.expert_idx, r.gate"},
    "package_import_trick": {"route": "r = __import__('switch_sae' + '_mini').saes.routing.route(x, W_router, "
                             "b_router)\nreturn r.expert_idx, r.gate"},
}


def _cheat(spec):
    answers = {k: v for k, v in spec.items() if not k.startswith("@")}
    before = {"route": spec["@before"]} if "@before" in spec else {}
    def after(nb):
        if "@tail" in spec:
            cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "route")
            cell.source += "\n" + spec["@tail"]
        if "@after" in spec:
            index = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == "check_route")
            nb.cells.insert(index + 1, new_code_cell(spec["@after"]))
    return submission(answers, before, after)


def test_every_cheat_scores_zero_on_its_wrong_exercise(course):
    reports = _grade_all(course, {name: _cheat(spec) for name, spec in CHEATS.items()})
    for name, report in reports.items():
        assert _points(report)["route"] == 0, (name, report.table())
    # tricks that do not kill the kernel leave the other, honest exercises graded
    for name in ["patch_checks", "patch_torch", "print_success", "replace_after", "tensor_subclass", "eq_object",
                 "sleep_past_timeout", "huge_allocation", "fork_bomb", "package_call", "system_exit",
                 "keyboard_interrupt", "read_instructor_files", "write_grader_files"]:
        assert _points(reports[name])["load_balance_loss"] == 2, (name, reports[name].table())
    route_item = {n: r.items[0] for n, r in reports.items()}
    assert route_item["sleep_past_timeout"].status == "timeout"
    assert "could not be read" in route_item["fake_runner"].message
    assert "network" not in reports and "urlopen" in route_item["network"].message or \
        "URLError" in route_item["network"].message
    flags = {n: {(f.kind, f.scored_zero) for f in r.flags if f.exercise == "route"} for n, r in reports.items()}
    assert ("package-use", True) in flags["package_call"] and ("package-use", True) in flags["package_import_trick"]
    assert {f.kind for f in reports["patch_checks"].flags} >= {"tampering"}
    assert not any(kind == "package-use" for n, fl in flags.items() for kind, _ in fl
                   if n not in ("package_call", "package_import_trick"))


def test_package_use_can_be_flag_only(course):
    report = _grade_all(course, {"s": _cheat(CHEATS["package_call"])}, reference_use="flag")["s"]
    assert _points(report)["route"] == 2
    # reported twice: the static scan and the tripwire; neither changes the points
    assert [(f.kind, f.scored_zero) for f in report.flags if f.exercise == "route"] == [("package-use", False)] * 2


def test_check_cell_flags_and_hidden_items_are_separate(course):
    def tamper(nb):
        check = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "check_route")
        check.source = "pass"
        nb.cells.remove(next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "check_load_balance_loss"))
    # hard-coded for the visible case's 3 experts of 8 latents: visible passes, hidden fails
    hard_coded = LATENTS.replace("W_enc.shape[1] // n_experts", "8")
    report = _grade_all(course, {"s": submission({"switch_latents": hard_coded}, edit=tamper)})["s"]
    assert {(f.kind, f.exercise) for f in report.flags} >= {("check-cell-edited", "route"),
                                                            ("check-cell-deleted", "load_balance_loss")}
    parts = {(i.exercise, i.part): (i.earned, i.status) for i in report.items}
    assert parts[("switch_latents", "visible")] == (1.5, "passed")
    assert parts[("switch_latents", "hidden")] == (0, "failed")
    assert report.total == 5.5


def test_class_folder_writes_csv_feedback_and_summary_without_hidden_inputs(course, tmp_path, capsys):
    folder = tmp_path / "class"
    for name, nb in {"alice": submission(), "bob": submission({"route": WRONG_ROUTE})}.items():
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, folder / name / "01_mini.ipynb")
    out = tmp_path / "grades"
    hidden = ROOT / "instructor" / "hidden_cases.py"
    assert main(["grade", str(folder), "--source", str(course / "sources"), "--out", str(out), "--timeout", "20",
                 "--hidden-cases", str(hidden)]) == 0
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0] == "student,assignment,route,switch_latents,load_balance_loss,total,max_total,flags"
    assert rows[1].startswith("alice/01_mini.ipynb,01_mini,2,3,2,7,7,")
    assert rows[2].startswith("bob/01_mini.ipynb,01_mini,0,3,2,5,7,")
    feedback = (out / "feedback" / "bob" / "01_mini.md").read_text()
    assert "route | visible | 0 / 1" in feedback and "hidden case" in feedback
    assert "tensor(" not in feedback and "BEGIN HIDDEN" not in feedback and "a batch of one" not in hidden.name
    assert "| route | visible | 0.50 / 1 | 1/2 |" in (out / "summary.md").read_text()
    assert "[2/2]" in capsys.readouterr().err


def test_no_hidden_case_in_the_release_or_the_package(tmp_path):
    import switch_sae_mini

    package = Path(switch_sae_mini.__file__).parent
    assert not list(package.rglob("hidden*")), "hidden cases belong in the instructor's file, not the package"
    assert main(["assignments", "--out", str(tmp_path)]) == 0
    text = "".join(p.read_text() for p in tmp_path.glob("*.ipynb"))
    assert "hidden_cases" not in text and "BEGIN HIDDEN" not in text and "grading also runs hidden cases" in text


@pytest.mark.parametrize("content, name, message", [
    ("print('hello')\n", "submission.py", "is not a Jupyter notebook"),
    ('{"cells": 3}', "submission.ipynb", "is not a Jupyter notebook"),
    (None, "missing.ipynb", "does not exist"),
    (nbformat.writes(new_notebook(cells=[new_code_cell("1")])), "homework.ipynb", "cannot tell which assignment"),
])
def test_bad_input_exits_2_with_a_clear_message(course, tmp_path, capsys, content, name, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    assert main(["grade", str(tmp_path / name), "--source", str(course / "sources")]) == 2
    assert message in capsys.readouterr().err


def test_the_seed_never_reaches_the_kernel(course, monkeypatch):
    monkeypatch.setenv("SSM_GRADING_SEED", "12345")
    leak = {"route": "import os\nassert os.environ.get('SSM_GRADING_SEED') is None\n" + ROUTE}
    report = _grade_all(course, {"s": submission(leak)}, seed=grade.secret_seed())["s"]
    assert _points(report)["route"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_dense_sae", "02_topk_sae", "03_switch_sae", "04_flop_matched",
                                  "05_feature_analysis"])
def test_every_real_notebook_full_marks_and_under_a_minute(tmp_path, name):
    """The instructor's solutions, put back into the student release, earn full marks with the hidden cases."""
    from switch_sae_mini.classroom.assignments import load_notebook, restore_solutions

    instructor = load_notebook(ROOT / "notebooks" / f"{name}.py")
    nbformat.write(restore_solutions(student_notebook(instructor, name), instructor), tmp_path / f"{name}.ipynb")
    report = grade.grade_notebook(tmp_path / f"{name}.ipynb", seed=3, timeout=120,
                                  hidden_cases=ROOT / "instructor" / "hidden_cases.py")
    assert report.total == report.max_total > 0, report.table()
    assert report.seconds < 60
