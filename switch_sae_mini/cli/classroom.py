"""Subcommands assignments (student versions of the notebooks) and grade (grade a submitted notebook).

    python -m switch_sae_mini assignments --out release
    python -m switch_sae_mini grade submission.ipynb --json
"""

from __future__ import annotations


def _assignments(args) -> int:
    from ..classroom import assignments

    assignments.run(args)
    return 0


def _grade(args) -> int:
    from ..classroom import grade

    return grade.run(args)


def register(sub) -> None:
    from ..classroom.assignments import NOTEBOOKS_DIR

    a = sub.add_parser("assignments", help="write student versions of the notebooks (solutions stubbed)")
    a.add_argument("--out", default="release", help="folder for the student versions (default: %(default)s)")
    a.add_argument("--source-dir", default=str(NOTEBOOKS_DIR), help="folder of NN_name.py/.ipynb sources")
    a.add_argument("--nbgrader-source", metavar="COURSE_DIR",
                   help="instead, write COURSE_DIR/source/NN_name/NN_name.ipynb (hidden checks inlined)")
    a.add_argument("--table", action="store_true", help="print the exercise table of docs/teaching.md")
    a.set_defaults(run=_assignments)

    g = sub.add_parser("grade", help="grade a submitted notebook: points per check cell and a total")
    g.add_argument("submission", help="the student's .ipynb")
    g.add_argument("--source", help="instructor notebook (NN_name.py/.ipynb) or folder of them "
                                    "(default: this checkout's notebooks/)")
    g.add_argument("--timeout", type=float, default=300, help="seconds per cell (default: %(default)s)")
    g.add_argument("--no-hidden", action="store_true", help="run only the checks students can see")
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.add_argument("--executed", metavar="PATH", help="also write the executed notebook here (feedback)")
    g.set_defaults(run=_grade)
