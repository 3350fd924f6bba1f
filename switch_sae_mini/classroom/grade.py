"""Grade a submitted notebook without nbgrader: points per check cell, and a total.

    python -m switch_sae_mini grade submission.ipynb [--source notebooks/03_switch_sae.py] [--timeout 300] [--json]

Like nbgrader's autograder, the grader does not trust the submission's check cells. It takes the canonical
check cells (by nbgrader grade_id) from the instructor source - notebooks/NN_name.py, or --source - restores any
check cell the student edited or deleted, appends the hidden checks (assignments.HIDDEN_CHECKS), and executes the
notebook in a fresh kernel, in a temporary folder, with SSM_FAST=1 (sizes shrink; checks do not depend on them).
Cells after the last check cell are not run: nothing there is graded. A check cell earns its points if it runs
without raising. A cell that runs longer than --timeout is interrupted and execution goes on; if the kernel does
not respond to the interrupt, or dies, the remaining checks score 0 as "not run".

Exit status: 0 once graded (whatever the score); 2 when the input is not a gradable notebook.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import SwitchSAEError
from .assignments import (BEGIN_HIDDEN, END_HIDDEN, METADATA_KEY, NOTEBOOKS_DIR, AssignmentError, is_check_cell,
                          load_notebook, nbgrader_meta, replace_regions, source_paths, with_hidden_checks)

TIMEOUT_ENAME = "CellTimeout"
PROBE_SECONDS = 15  # after an interrupt, the kernel gets min(this, --timeout) s to accept new work, or we stop


class GradingError(SwitchSAEError, ValueError):
    """The submission cannot be graded (not a notebook, unknown assignment); the message says what to do."""


@dataclass
class CheckResult:
    grade_id: str
    points: float
    earned: float = 0.0
    status: str = "not run"   # passed | failed | timeout | not run
    message: str = ""         # first line of the error, or why the check did not run
    restored: str = ""        # "" | "edited" | "deleted": the grader put the canonical check cell back


@dataclass
class GradeReport:
    assignment: str
    submission: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(c.earned for c in self.checks)

    @property
    def max_total(self) -> float:
        return sum(c.points for c in self.checks)

    def to_dict(self) -> dict:
        return {"assignment": self.assignment, "submission": self.submission, "total": self.total,
                "max_total": self.max_total, "checks": [asdict(c) for c in self.checks]}

    def table(self) -> str:
        width = max([len(c.grade_id) for c in self.checks] + [len("total")])
        lines = [f"{self.assignment} - {self.submission}", f"{'check':<{width}}  points  status"]
        for c in self.checks:
            status = c.status + (f": {c.message}" if c.message else "")
            if c.restored:
                status += f" (check cell was {c.restored} in the submission; restored)"
            lines.append(f"{c.grade_id:<{width}}  {f'{c.earned:g} / {c.points:g}':>6}  {status}")
        lines.append(f"{'total':<{width}}  {f'{self.total:g} / {self.max_total:g}':>6}")
        return "\n".join(lines)


def read_submission(path: str | Path):
    """The submission as a notebook, or a GradingError saying why it is not one."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise GradingError(f"submission {path} does not exist.")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises JSON, validation and version errors of several types
        raise GradingError(f"{path} is not a Jupyter notebook ({type(exc).__name__}: {str(exc)[:200]}); submit "
                           "the .ipynb file you worked in.") from None
    return nb


def _grade_ids(nb) -> set[str]:
    return {nbgrader_meta(c).get("grade_id") for c in nb.cells} - {None}


def find_source(nb, path: Path, source: str | Path | None = None) -> tuple[str, object]:
    """(assignment name, instructor notebook): from --source, the notebook's metadata, its grade ids or name."""
    if source is not None and Path(source).is_file():
        return Path(source).stem, load_notebook(source)
    try:
        sources = source_paths(source if source is not None else NOTEBOOKS_DIR)
    except AssignmentError as exc:
        raise GradingError(f"{exc} Pass --source NN_name.py (the instructor notebook).") from None
    name = nb.metadata.get(METADATA_KEY, {}).get("assignment")
    if name is None:  # renamed file without our metadata: match the check cells' grade ids
        ids = _grade_ids(nb)
        matches = [n for n, p in sources.items() if ids & _grade_ids(load_notebook(p))]
        name = matches[0] if len(matches) == 1 else path.stem
    if name not in sources:
        raise GradingError(f"cannot tell which assignment {path.name} is ({name!r} is none of "
                           f"{', '.join(sources)}); pass --source notebooks/NN_name.py.")
    return name, load_notebook(sources[name])


def _visible(source: str) -> str:
    """A check cell's source without hidden-test regions (malformed markers count as an edit: keep them)."""
    try:
        return replace_regions(source, BEGIN_HIDDEN, END_HIDDEN).strip()
    except AssignmentError:
        return source.strip()


def prepare(submission, instructor, hidden: bool = True):
    """The notebook to run, and {grade_id: "edited" | "deleted"} for the check cells that had to be restored.

    Canonical check cells replace the submission's cells with the same grade_id; a deleted one is re-inserted
    after the cell that precedes it in the instructor notebook. Any other graded cell (a duplicate, or one a
    student marked graded) loses its nbgrader metadata: only the instructor's checks can earn points.
    """
    import nbformat

    nb = copy.deepcopy(submission)
    canonical, visible, anchors, previous = {}, {}, {}, None
    for cell in instructor.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if is_check_cell(cell):
            visible[grade_id] = _visible(cell.source)
            source = with_hidden_checks(cell.source, grade_id) if hidden else visible[grade_id]
            canonical[grade_id] = nbformat.v4.new_code_cell(source, metadata=copy.deepcopy(cell.metadata))
            anchors[grade_id] = previous
        previous = grade_id or previous
    restored, seen = {}, set()
    for index, cell in enumerate(nb.cells):
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in seen or (is_check_cell(cell) and grade_id not in canonical):
            cell.metadata.pop("nbgrader")
        elif grade_id in canonical:
            seen.add(grade_id)
            if cell.cell_type != "code" or _visible(cell.source) != visible[grade_id]:
                restored[grade_id] = "edited"
            nb.cells[index] = copy.deepcopy(canonical[grade_id])
    for grade_id in [g for g in canonical if g not in seen]:
        restored[grade_id] = "deleted"
        ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells]
        anchor = anchors[grade_id]
        position = ids.index(anchor) + 1 if anchor in ids else len(nb.cells)
        nb.cells.insert(position, copy.deepcopy(canonical[grade_id]))
    return nb, restored


async def _execute(nb, timeout: float, env: dict[str, str], cwd: str) -> tuple[dict[int, tuple[str, str]], str]:
    """Run the code cells up to the last check cell; ({cell index: (status, message)}, why execution stopped)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    replies: dict[int, dict] = {}
    client = NotebookClient(
        nb, kernel_name="python3", timeout=timeout, allow_errors=True, interrupt_on_timeout=True, record_timing=False,
        shutdown_kernel="immediate",  # a kernel stuck in an uninterruptible loop would ignore a polite request
        error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": f"the cell ran longer than {timeout:g} s",
                          "traceback": []},
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply),
        resources={"metadata": {"path": cwd}})
    client.km = client.create_kernel_manager()  # the client still owns it, so it shuts the kernel down
    # this interpreter's kernel, whatever kernelspec a user installed under the name python3
    client.km.kernel_spec.argv[:] = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    last = max(i for i, c in enumerate(nb.cells) if is_check_cell(c))
    iopub_timeout = client.iopub_timeout
    outcomes: dict[int, tuple[str, str]] = {}
    stopped = ""
    # the kernel's own stderr only carries ipykernel start-up warnings; the student's output comes over iopub
    async with client.async_setup_kernel(env=env, stderr=subprocess.DEVNULL):
        for index, cell in enumerate(nb.cells[: last + 1]):
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
            outcomes[index] = ("timeout" if ename == TIMEOUT_ENAME else "failed", f"{ename}: {evalue}")
            if ename == TIMEOUT_ENAME:  # an uninterruptible loop would make every later cell time out too
                client.timeout, client.iopub_timeout = min(timeout, PROBE_SECONDS), 1  # the probe prints nothing
                await client.async_execute_cell(nbformat.v4.new_code_cell("pass"), -1)
                client.timeout, client.iopub_timeout = timeout, iopub_timeout
                if replies.get(-1, {}).get("content", {}).get("ename") == TIMEOUT_ENAME:
                    stopped = "the kernel did not stop after an earlier timeout"
                    break
    return outcomes, stopped


def grade_notebook(path: str | Path, source: str | Path | None = None, timeout: float = 300,
                   hidden: bool = True, env: dict[str, str] | None = None, executed_path: str | Path | None = None
                   ) -> GradeReport:
    """Grade one submission; `env` overrides the kernel's environment (default: SSM_FAST=1, MPLBACKEND=Agg)."""
    path = Path(path)
    submission = read_submission(path)
    name, instructor = find_source(submission, path, source)
    if not any(is_check_cell(c) for c in instructor.cells):
        raise GradingError(f"the instructor notebook {name} has no check cells (nbgrader \"grade\": true); "
                           "nothing to grade. Pass --source for a notebook with exercises.")
    nb, restored = prepare(submission, instructor, hidden)
    kernel_env = {**os.environ, "SSM_FAST": "1", "MPLBACKEND": "Agg", **(env or {})}
    with tempfile.TemporaryDirectory(prefix="ssm_grade_") as cwd:
        outcomes, stopped = asyncio.run(_execute(nb, timeout, kernel_env, cwd))
    report = GradeReport(name, path.name)
    for index, cell in enumerate(nb.cells):
        if not is_check_cell(cell):
            continue
        meta = nbgrader_meta(cell)
        status, message = outcomes.get(index, ("not run", stopped))
        report.checks.append(CheckResult(meta["grade_id"], float(meta["points"]),
                                         float(meta["points"]) if status == "passed" else 0.0, status, message,
                                         restored.get(meta["grade_id"], "")))
    if executed_path is not None:
        import nbformat

        nbformat.write(nb, executed_path)
    return report


def run(args) -> int:
    """`python -m switch_sae_mini grade` (flags: cli/classroom.py)."""
    try:
        report = grade_notebook(args.submission, args.source, args.timeout, not args.no_hidden,
                                executed_path=args.executed)
    except (GradingError, AssignmentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0
