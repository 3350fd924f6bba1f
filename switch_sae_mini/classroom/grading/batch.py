"""Grade one submission or a class folder, and write what a course needs: a CSV a learning-management system
imports (student, points per exercise, total, flags), one feedback file per student (messages only), and a
summary (mean per exercise, the most common failure messages). Submissions run in parallel, one sandbox slot each.

    python -m switch_sae_mini grade class/ --out grades/ --hidden-cases instructor/hidden_cases.py --jobs 2
"""

from __future__ import annotations

import collections
import csv
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..assignments import AssignmentError
from .grade import grade_notebook
from .prepare import GradingError
from .report import GradeReport
from .sandbox import Limits


def submissions_in(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not found:
        raise GradingError(f"{folder} holds no .ipynb submissions (searched its subfolders too).")
    return found


def grade_many(paths: list[Path], folder: Path | None, jobs: int, progress=None, **options) -> list[GradeReport]:
    """Grade each path; a submission that cannot be graded gets a report with its error as a flag."""
    jobs = max(1, min(jobs, len(paths)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    slots = collections.deque(range(jobs))
    hide = (*options.pop("also_hide", ()), *([folder] if folder else []))  # no submission sees another

    def one(path: Path) -> GradeReport:
        slot = slots.popleft()
        try:
            report = grade_notebook(path, slot=slot, threads=threads, relative_to=folder, also_hide=hide,
                                    **options)
        except (GradingError, AssignmentError) as exc:
            from .report import Flag
            report = GradeReport("?", str(path.relative_to(folder)) if folder else path.name,
                                 flags=[Flag("", "not-gradable", str(exc))])
        finally:
            slots.append(slot)
        if progress:
            progress(report)
        return report
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(one, paths))


def write_outputs(reports: list[GradeReport], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    exercises = list(dict.fromkeys(i.exercise for r in reports for i in r.items))
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", *exercises, "total", "max_total", "flags"])
        for r in reports:
            points = r.exercise_points()
            writer.writerow([r.submission, r.assignment, *(f"{points.get(e, 0):g}" for e in exercises),
                             f"{r.total:g}", f"{r.max_total:g}",
                             "; ".join(f"{fl.kind}:{fl.exercise}" if fl.exercise else fl.kind for fl in r.flags)])
    for r in reports:
        target = out / "feedback" / Path(r.submission).with_suffix(".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(r.feedback())
    (out / "report.json").write_text(json.dumps([r.to_dict() for r in reports], indent=1))
    (out / "summary.md").write_text(summary(reports))


def summary(reports: list[GradeReport]) -> str:
    lines = [f"# Grading summary: {len(reports)} submissions", "", "| exercise | part | mean points | passed |",
             "|---|---|---|---|"]
    by_item: dict[tuple[str, str], list] = collections.defaultdict(list)
    for r in reports:
        for i in r.items:
            by_item[(i.exercise, i.part)].append(i)
    for (exercise, part), items in by_item.items():
        mean = sum(i.earned for i in items) / len(items)
        passed = sum(i.status == "passed" for i in items)
        lines.append(f"| {exercise} | {part} | {mean:.2f} / {items[0].points:g} | {passed}/{len(items)} |")
    messages = collections.Counter(f"{i.exercise} ({i.part}): {i.message}" for r in reports for i in r.items
                                   if i.status != "passed" and i.message)
    lines += ["", "Most common failure messages:", ""]
    lines += [f"- {count}× {message}" for message, count in messages.most_common(10)] or ["- none"]
    flags = collections.Counter(f.kind for r in reports for f in r.flags)
    lines += ["", "Flags: " + (", ".join(f"{k} {v}" for k, v in flags.most_common()) or "none")]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    """`python -m switch_sae_mini grade` (flags: cli/classroom.py)."""
    target = Path(args.submission)
    options = dict(source=args.source, timeout=args.timeout, hidden_cases=args.hidden_cases,
                   reference_use=args.reference_use,
                   limits=Limits(memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds))
    try:
        from .grade import secret_seed
        options["seed"] = secret_seed(args.seed_file)
        options["also_hide"] = (args.seed_file,) if args.seed_file else ()
        if target.is_dir():
            paths = submissions_in(target)
            done = []
            def progress(report):
                done.append(report)
                print(f"[{len(done)}/{len(paths)}] {report.submission}: {report.total:g} / {report.max_total:g}",
                      file=sys.stderr, flush=True)
            reports = grade_many(paths, target, args.jobs, progress, **options)
        else:
            reports = [grade_notebook(target, **options)]
    except (GradingError, AssignmentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        write_outputs(reports, Path(args.out))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports] if target.is_dir() else reports[0].to_dict(), indent=2))
    else:
        print("\n\n".join(r.table() for r in reports))
        if args.out:
            print(f"\nwrote {args.out}/grades.csv, feedback/, summary.md, report.json")
    return 0
