"""How long grading takes: each notebook with exercises graded once (its reference solutions put back), then a
class of N copies of one notebook graded as a folder. Prints the CPU it ran on (docs/teaching.md quotes this).

    python scripts/time_grading.py [--class-size 30] [--notebook 03_switch_sae] [--jobs 2]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat

from switch_sae_mini.classroom.assignments import (NOTEBOOKS_DIR, find_exercises, load_notebook, restore_solutions,
                                                   source_paths, student_notebook)
from switch_sae_mini.classroom.grading import batch, grade

HIDDEN = Path(__file__).resolve().parents[1] / "instructor" / "hidden_cases.py"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--class-size", type=int, default=30)
    parser.add_argument("--notebook", default="03_switch_sae")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, path in source_paths(NOTEBOOKS_DIR).items():
            instructor = load_notebook(path)
            if not find_exercises(instructor, name):
                continue
            target = folder / "single" / f"{name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(restore_solutions(student_notebook(instructor, name), instructor), target)
            report = grade.grade_notebook(target, seed=1, hidden_cases=HIDDEN)
            print(f"{name}: {report.seconds:.1f} s, {report.total:g} / {report.max_total:g}")
        instructor = load_notebook(source_paths(NOTEBOOKS_DIR)[args.notebook])
        submission = restore_solutions(student_notebook(instructor, args.notebook), instructor)
        for i in range(args.class_size):
            (folder / "class" / f"student{i:02d}").mkdir(parents=True)
            nbformat.write(submission, folder / "class" / f"student{i:02d}" / f"{args.notebook}.ipynb")
        start = time.perf_counter()
        reports = batch.grade_many(batch.submissions_in(folder / "class"), folder / "class", args.jobs, seed=1,
                                   hidden_cases=HIDDEN)
        elapsed = time.perf_counter() - start
        full = sum(r.total == r.max_total for r in reports)
        print(f"class of {args.class_size} x {args.notebook}, --jobs {args.jobs}: {elapsed:.0f} s "
              f"({elapsed / args.class_size:.1f} s per submission), {full}/{args.class_size} full marks")


if __name__ == "__main__":
    main()
