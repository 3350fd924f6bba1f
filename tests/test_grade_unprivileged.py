"""The grader run by a normal user (issue 14): the kernel then runs as the grader's own user, inside user, mount,
network and PID namespaces, with its own /proc, the instructor's folders covered and every file system read-only
but its own folder. Our machines and CI run as root, so this test creates an unprivileged user, makes the
interpreter and the checkout reachable for it in a mount namespace (as the grader does for its kernels), and runs
the real `grade` command as that user. Each cheat below returns the right answer only if its trick worked, so
its 0 on `route` shows the trick was stopped, not merely ignored."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from switch_sae_mini.classroom.grading import sandbox
from test_grade import CHEATS, ROUTE, WRONG_ROUTE, _cheat, _indent, mini_notebook, submission

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                reason="needs root to create the unprivileged user (as a normal user, "
                                       "tests/test_grade.py runs this path itself)")
USER = "ssm-grading-test"
PACKAGE = sandbox.PACKAGE_DIR / "switch_sae_mini"
# run as root: a mount namespace in which the user can reach the interpreter and the checkout, then drop to it
DROP = """
import json, os, sys
sys.path.insert(0, {launch_dir!r})
import launch
from switch_sae_mini.classroom.grading.sandbox import _needed
plan = json.loads(sys.argv[1])
launch._check(launch._libc.unshare(launch.CLONE_NEWNS), "unshare")
launch._mount("none", "/", None, launch.MS_REC | launch.MS_PRIVATE)
launch._uncover(_needed() + [plan["work"]], plan["uid"], plan["gid"], [])
os.setgroups([])
os.setgid(plan["gid"])
os.setuid(plan["uid"])
os.chdir(plan["work"])
os.execve(sys.executable, [sys.executable, "-m", "switch_sae_mini", "grade", *plan["args"]], plan["env"])
"""


def _if_it_worked(trick: str) -> str:
    """A route that is right only when `trick` (an expression) is true inside the kernel."""
    return f"try:\n    worked = bool({trick})\nexcept Exception:\n    worked = False\nif worked:\n" \
           f"{_indent(ROUTE)}\n{WRONG_ROUTE}"


def _same_user_cheats(work: Path) -> dict:
    # the grader's command line names the instructor's folders; only a /proc of the kernel's own hides it
    grader_seen = ("any('--source' in open(p, errors='ignore').read() for p in "
                   "__import__('glob').glob('/proc/[0-9]*/cmdline'))")
    return {
        "see_grader_processes": _if_it_worked(grader_seen),
        "write_other_submission": _if_it_worked(
            f"open({str(work / 'class' / 'right' / '01_mini.ipynb')!r}, 'a').write(' ')"),
        "read_instructor_notebook": _if_it_worked(
            f"'BEGIN SOLUTION' in open({str(work / 'sources' / '01_mini.ipynb')!r}).read()"),
        "write_outside_own_folder": _if_it_worked(f"open({str(work / 'planted.txt')!r}, 'w').write('x')"),
    }


@pytest.fixture(scope="module")
def graded():
    uid, gid, _ = sandbox.unprivileged_user(USER)
    work = Path(tempfile.mkdtemp(prefix="ssm_unprivileged_"))
    try:
        (work / "sources").mkdir()
        nbformat.write(mini_notebook(), work / "sources" / "01_mini.ipynb")
        named = {"right": submission(), "patch_checks": _cheat(CHEATS["patch_checks"]),
                 "network": _cheat(CHEATS["network"])}
        named |= {name: submission({"route": "import os\n" + body})
                  for name, body in _same_user_cheats(work).items()}
        for name, nb in named.items():
            (work / "class" / name).mkdir(parents=True)
            nbformat.write(nb, work / "class" / name / "01_mini.ipynb")
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(work)], check=True)
        env = {"PATH": os.environ["PATH"], "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
               "SSM_GRADING_SEED": "7", "MPLCONFIGDIR": str(work / "mpl"), "SWITCH_SAE_MINI_NATIVE": "0"}
        plan = {"uid": uid, "gid": gid, "work": str(work), "env": env,
                "args": [str(work / "class"), "--source", str(work / "sources"), "--timeout", "30", "--json",
                         "--jobs", "2"]}
        code = DROP.format(launch_dir=str(sandbox.LAUNCHER.parent))
        done = subprocess.run([sys.executable, "-c", code, json.dumps(plan)], text=True, stdout=subprocess.PIPE,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        reports = {Path(r["submission"]).parent.name: r for r in json.loads(done.stdout)}
        yield reports, work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _route_points(report) -> float:
    return sum(i["earned"] for i in report["items"] if i["exercise"] == "route")


def test_the_grader_ran_unprivileged_with_the_sandbox_on(graded):
    reports, _ = graded
    status = reports["right"]["sandbox"]
    assert status["user"].startswith("grader's own") and "user namespace" in status["user"]
    assert status["network"].startswith("isolated") and status["proc"] == "own"
    assert any(Path(p) in PACKAGE.parents for p in status["read_only"])  # the grader's code is read-only
    assert sum(i["earned"] for i in reports["right"]["items"]) == 7, reports["right"]


@pytest.mark.parametrize("name", ["patch_checks", "network", "see_grader_processes", "write_other_submission",
                                  "read_instructor_notebook", "write_outside_own_folder"])
def test_each_trick_is_stopped_and_scores_zero(graded, name):
    reports, work = graded
    assert _route_points(reports[name]) == 0, reports[name]
    # the honest exercises of the same submission still count: the kernel stayed alive
    assert sum(i["earned"] for i in reports[name]["items"] if i["exercise"] == "load_balance_loss") == 2
    assert not (work / "planted.txt").exists()
