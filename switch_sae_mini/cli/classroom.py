"""Subcommands assignments (student versions of the notebooks) and grade (grade a submitted notebook).

    python -m switch_sae_mini assignments --out release
    python -m switch_sae_mini grade submission.ipynb --json
"""

from __future__ import annotations


def _assignments(args) -> int:
    from ..classroom import assignments

    if args.self_study:
        from ..classroom.self_study import write_self_study
        try:
            paths = write_self_study("self-study" if args.out == "release" else args.out, args.source_dir)
        except assignments.AssignmentError as exc:
            raise SystemExit(f"error: {exc}") from None
        for path in paths:
            print(f"wrote {path}")
        return 0
    assignments.run(args)
    return 0


def _grade(args) -> int:
    from ..classroom.grading import batch

    return batch.run(args)


def register(sub) -> None:
    from ..classroom.assignments import NOTEBOOKS_DIR

    a = sub.add_parser("assignments", help="write student versions of the notebooks (solutions stubbed)")
    a.add_argument("--out", default="release", help="folder for the student versions (default: %(default)s)")
    a.add_argument("--source-dir", default=str(NOTEBOOKS_DIR), help="folder of NN_name.py/.ipynb sources")
    a.add_argument("--nbgrader-source", metavar="COURSE_DIR",
                   help="instead, write COURSE_DIR/source/NN_name/NN_name.ipynb (hidden checks inlined)")
    a.add_argument("--table", action="store_true", help="print the exercise table of docs/teaching.md")
    a.add_argument("--self-study", action="store_true",
                   help="instead, write self-study versions to --out: stubs plus each solution, collapsed "
                        "(never for a graded course)")
    a.set_defaults(run=_assignments)

    g = sub.add_parser("grade", help="grade a submitted notebook, or a folder of them, in a sandboxed kernel")
    g.add_argument("submission", help="the student's .ipynb, or a folder of submissions (searched recursively)")
    g.add_argument("--source", help="instructor notebook (NN_name.py/.ipynb) or folder of them "
                                    "(default: this checkout's notebooks/)")
    g.add_argument("--hidden-cases", metavar="FILE", help="instructor-only Python file defining hidden_cases()")
    g.add_argument("--seed-file", metavar="FILE", help="file holding the secret seed of the graded inputs "
                                                       "(default: $SSM_GRADING_SEED, else random)")
    g.add_argument("--reference-use", choices=["zero", "flag"], default="zero",
                   help="an exercise that uses the package's own implementation: score 0 or only flag it")
    g.add_argument("--timeout", type=float, default=300, help="seconds per cell (default: %(default)s)")
    g.add_argument("--memory-mb", type=int, default=6144, help="address-space limit of the kernel")
    g.add_argument("--cpu-seconds", type=int, default=1800, help="CPU-time limit of the kernel")
    g.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default: %(default)s)")
    g.add_argument("--out", metavar="DIR", help="write grades.csv, feedback/<student>.md, summary.md, report.json")
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.set_defaults(run=_grade)
