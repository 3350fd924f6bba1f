"""What students receive (issue 14): the release notebooks and the package wheel hold no hidden case, no
instructor notebook and no solution; and the sources still pass nbgrader's generate_assignment."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from switch_sae_mini.classroom import assignments
from switch_sae_mini.classroom.assignments import GRADING_NOTE

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_the_package_and_nothing_of_the_instructor(tmp_path):
    """What `make assignments` builds into release/ next to the notebooks."""
    source = tmp_path / "source"  # pip builds in the source tree: build a copy, not the checkout
    shutil.copytree(ROOT / "switch_sae_mini", source / "switch_sae_mini",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("switch_sae_mini-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "switch_sae_mini/classroom/grading/launch.py" in names  # the grader works from the wheel
    assert "switch_sae_mini/native/topk.c" in names  # the C kernel is compiled from its source at first use
    assert not [n for n in names if "hidden" in n or "instructor" in n or n.endswith((".ipynb", ".py.ipynb"))]
    assert not [n for n in names if n.startswith(("notebooks/", "tests/", "docs/"))]
    # (the package implements every exercise, as docs/teaching.md says; the notebooks' solutions, the instructor
    # notebooks and the hidden cases are what stays out)


@pytest.mark.slow
def test_nbgrader_generate_assignment_gives_our_release(tmp_path):
    """nbgrader's own student version of each source equals `make assignments`' (apart from the grading note)."""
    written = assignments.write_nbgrader_source(tmp_path, ROOT / "notebooks")
    ours = {p.stem: p for p in assignments.write_release(tmp_path / "ours", ROOT / "notebooks")}
    # nbgrader runs `alembic` from PATH: the virtualenv's bin folder, which `make` does not put on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for path in written:
        name = path.stem
        result = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force",
                                 f"--CourseDirectory.root={tmp_path}"], capture_output=True, text=True, cwd=tmp_path,
                                env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        theirs = nbformat.read(tmp_path / "release" / name / f"{name}.ipynb", as_version=4)
        mine = nbformat.read(ours[name], as_version=4)
        mine_cells = [c.source for c in mine.cells if c.source != GRADING_NOTE]
        assert [c.source for c in theirs.cells] == mine_cells, name
