"""Grade submissions in a trusted process: the learner's kernel only computes; points are decided here.

    python -m switch_sae_mini grade submission.ipynb [--hidden-cases FILE] [--json]
    python -m switch_sae_mini grade class_folder/ --out grades/        # grades.csv, feedback/, summary.md

For each exercise the grader builds cases (prepare.py) from the instructor's secret seed (SSM_GRADING_SEED or
--seed-file; never on the command line, which other users can read) and the hidden-cases file. The submission
runs in a sandboxed kernel (sandbox.py, launch.py) in which a runner cell after each solution cell calls the
learner's function and returns outputs and gradients as safetensors data (protocol.py). This process computes
the reference answers and compares (exercises/). Each exercise gives two items, visible (the case the notebook's
check shows) and hidden (the rest), half its points each.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from pathlib import Path

from ..assignments import AssignmentError, find_exercises
from ..exercises import EXERCISES, judge, run_case
from .prepare import GradingError, GradingPlan, build, load_hidden_cases
from .protocol import MIME, ProtocolError, decode_answers
from .report import Flag, GradeReport, Item
from .sandbox import Limits, SandboxedKernelManager, folders, hidden_folders, kernel_env, kernel_user, reap
from .submissions import find_source, read_submission

TIMEOUT_ENAME = "CellTimeout"
PROBE_SECONDS = 15  # after an interrupt, the kernel gets min(this, timeout) s to accept new work, or we stop


def secret_seed(seed_file: str | Path | None = None) -> int:
    """The instructor's seed: --seed-file, else SSM_GRADING_SEED, else a fresh random one (not reproducible)."""
    text = Path(seed_file).read_text().strip() if seed_file else os.environ.get("SSM_GRADING_SEED")
    if text is None:
        return secrets.randbits(62)
    try:
        return int(text)
    except ValueError:
        raise GradingError("the grading seed must be an integer (SSM_GRADING_SEED or --seed-file).") from None


async def _execute(plan: GradingPlan, timeout: float, slot: int, limits: Limits, hide: list[str],
                   threads: int) -> tuple[dict[int, tuple[str, str]], str, dict]:
    """Run the plan's notebook in the sandbox: ({cell index: (status, message)}, why it stopped, sandbox status)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    uid, gid, _ = kernel_user(slot)
    holder, runtime, private = folders(uid, gid)
    replies: dict[int, dict] = {}
    outcomes: dict[int, tuple[str, str]] = {}
    stopped, status = "", {}
    with holder:
        client = NotebookClient(
            plan.nb, kernel_name="python3", timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
            record_timing=False, shutdown_kernel="immediate", kernel_manager_class=SandboxedKernelManager,
            error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": f"the cell ran longer than {timeout:g} s",
                              "traceback": []},
            on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply),
            resources={"metadata": {"path": str(runtime)}})
        client.km = client.create_kernel_manager()
        client.km.configure(runtime, private, uid, gid, limits, hide)
        iopub_timeout = client.iopub_timeout
        probe = len(plan.nb.cells)  # a cell of its own: nbclient writes outputs into the cell at the index given
        plan.nb.cells.append(nbformat.v4.new_code_cell("pass"))
        try:
            async with client.async_setup_kernel(env=kernel_env(runtime, threads), stderr=subprocess.DEVNULL):
                status = client.km.sandbox_status()  # read before any learner code runs
                for index, cell in enumerate(plan.nb.cells[:probe]):
                    if cell.cell_type != "code":
                        continue
                    try:
                        await client.async_execute_cell(cell, index, execution_count=index + 1)
                    except DeadKernelError:
                        outcomes[index], stopped = ("failed", "the kernel died"), "the kernel died in an earlier cell"
                        break
                    content = replies.get(index, {}).get("content", {"status": "ok"})
                    if content["status"] == "ok":
                        outcomes[index] = ("passed", "")
                        continue
                    ename, evalue = content.get("ename", "Error"), str(content.get("evalue", "")).split("\n")[0]
                    outcomes[index] = ("timeout" if ename == TIMEOUT_ENAME else "failed", f"{ename}: {evalue[:300]}")
                    if ename == TIMEOUT_ENAME:  # an uninterruptible loop would make every later cell time out too
                        client.timeout, client.iopub_timeout = min(timeout, PROBE_SECONDS), 1
                        await client.async_execute_cell(plan.nb.cells[probe], probe)
                        client.timeout, client.iopub_timeout = timeout, iopub_timeout
                        if replies.get(probe, {}).get("content", {}).get("ename") == TIMEOUT_ENAME:
                            stopped = "the kernel did not stop after an earlier timeout"
                            break
        except RuntimeError as exc:  # the kernel did not start (sandbox refused)
            stopped = f"the kernel did not start: {str(exc)[:300]}"
        finally:
            plan.nb.cells.pop(probe)
        reap(uid)
    return outcomes, stopped, status


def _answers(cell) -> str | None:
    """The runner's one display output; None when it is missing or when more than one claims to be it."""
    payloads = [o["data"][MIME] for o in cell.get("outputs", [])
                if o.get("output_type") == "display_data" and MIME in o.get("data", {})]
    return payloads[0] if len(payloads) == 1 else None


def _score(plan: GradingPlan, markup, outcomes, stopped, reference_use: str) -> tuple[list[Item], list[Flag]]:
    items, flags = [], []
    runner_of = {exercise: index for index, exercise in plan.runner_cells.items()}
    for ex in markup:
        name, exercise = ex.solution_id, EXERCISES[ex.solution_id]
        half = ex.points / 2
        visible = Item(name, ex.check_id, "visible", half)
        hidden = Item(name, ex.check_id, "hidden", ex.points - half)
        items += [visible, hidden]
        if name not in runner_of:
            for item in (visible, hidden):
                item.message = stopped or f"no solution cell defines {name} (was it deleted?)"
            continue
        index, cases = runner_of[name], plan.cases[name]
        status, message = outcomes.get(index, ("not run", stopped))
        solution_status, solution_message = outcomes.get(plan.solution_cells[name], ("passed", ""))
        try:
            text = _answers(plan.nb.cells[index]) if status == "passed" else None
            answers = decode_answers(text, cases) if text is not None else None
        except ProtocolError as exc:
            answers, status, message = None, "failed", f"the answers could not be read: {exc}"
        if answers is None:
            if status == "passed":
                status, message = "failed", "the grading cell returned no answer"
            if solution_status != "passed":
                message = f"the solution cell raised {solution_message}"
            for item in (visible, hidden):
                item.status, item.message = status, message
            continue
        hits = sorted({h for a in answers for h in a.reference_hits})
        if hits:
            flags.append(Flag(name, "package-use", f"called {hits[0].replace(':', '.')} (tripwire)",
                              scored_zero=reference_use == "zero"))
        for item, part in ((visible, slice(0, plan.n_visible[name])), (hidden, slice(plan.n_visible[name], None))):
            item.status = "passed"
            for case, answer in zip(cases[part], answers[part]):
                verdict = judge(exercise, case, answer, run_case(exercise, exercise.reference, case, guard=False))
                if verdict is not None:
                    where = "" if item.part == "visible" else f"hidden case '{case.label}': "
                    item.status, item.message = "failed", where + verdict
                    break
            item.earned = item.points if item.status == "passed" else 0.0
    return items, flags


def grade_notebook(path: str | Path, source: str | Path | None = None, timeout: float = 300, *,
                   hidden_cases: str | Path | None = None, seed: int | None = None, limits: Limits = Limits(),
                   reference_use: str = "zero", slot: int = 0, threads: int = 1,
                   relative_to: str | Path | None = None, also_hide: tuple = ()) -> GradeReport:
    """Grade one submission. reference_use: "zero" (an exercise using the package's implementation of itself
    scores 0) or "flag" (reported only). also_hide: more instructor files or folders the kernel must not see
    (the seed file; the class folder, so that one submission cannot read or change another)."""
    if reference_use not in ("zero", "flag"):
        raise GradingError(f"reference_use must be 'zero' or 'flag', got {reference_use!r}.")
    start, path = time.perf_counter(), Path(path)
    submission = read_submission(path)
    name, instructor, source_path = find_source(submission, path, source)
    try:
        markup = find_exercises(instructor, name)
    except AssignmentError as exc:
        raise GradingError(str(exc)) from None
    if not markup:
        raise GradingError(f"the instructor notebook {name} has no exercises (solution and check cells); nothing "
                           "to grade. Pass --source for a notebook with exercises.")
    hidden = load_hidden_cases(hidden_cases)
    plan = build(submission, instructor, name, markup, secret_seed() if seed is None else seed, hidden,
                 flag_only=reference_use == "flag")
    hide = hidden_folders([p for p in (source_path, hidden_cases) if p is not None]
                          + [Path(p) / "_" if Path(p).is_dir() else Path(p) for p in also_hide])
    outcomes, stopped, status = asyncio.run(_execute(plan, timeout, slot, limits, hide, threads))
    items, flags = _score(plan, markup, outcomes, stopped, reference_use)
    report = GradeReport(name, str(path.relative_to(relative_to)) if relative_to else path.name, items,
                         plan.flags + flags, status)
    if reference_use == "flag":
        for flag in report.flags:
            flag.scored_zero = False
    zeroed = {f.exercise for f in report.flags if f.kind == "package-use" and f.scored_zero}
    for item in report.items:
        if item.exercise in zeroed and item.earned:
            item.earned, item.message = 0.0, "scored 0: uses the package's own implementation of this exercise"
    report.seconds = time.perf_counter() - start
    return report
