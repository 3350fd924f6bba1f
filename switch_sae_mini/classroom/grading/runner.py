"""Runs in the learner's kernel during grading, in the cell the grader adds right after a solution cell: call the
learner's function on the grader's cases and display the answers as data. Nothing here decides anything; the
grader compares in its own process (grade.py), so patching this module can only lose points.
"""

from __future__ import annotations

from ..exercises import EXERCISES, Answer, run_case, substituted
from .protocol import MIME, decode_cases, encode_answers


def run(payload: str, namespace: dict, flag_only: bool = False) -> None:
    """flag_only: a case that calls the package's implementation runs again without the tripwire, so it is
    scored on its answer while the calls are still reported."""
    from IPython.display import display

    name, cases = decode_cases(payload)
    exercise, fn = EXERCISES[name], namespace.get(name)
    if not callable(fn):
        answers = [Answer(error=f"{name} is not defined: its solution cell must define the function {name}.")]
        answers *= len(cases)
    else:
        with substituted(fn, exercise.depends_on):
            answers = [run_case(exercise, fn, case) for case in cases]
            if flag_only:
                answers = [a if not a.reference_hits else
                           run_case(exercise, fn, case, guard=False)._replace(reference_hits=a.reference_hits)
                           for a, case in zip(answers, cases)]
    display({MIME: encode_answers(answers)}, raw=True)
