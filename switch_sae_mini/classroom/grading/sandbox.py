"""Where and how the learner's kernel runs during grading (the grader side of launch.py).

As root (our machines and CI), the kernel runs as an unprivileged user `ssm-grader-<slot>`, created if missing,
one per parallel slot so that one submission's process limit cannot starve another's. It gets a folder of its own
(its working folder, HOME and TMPDIR), which holds no reference code, and talks to the grader over Unix sockets
(ZeroMQ ipc), since it has no network. The instructor's folders are hidden from it (launch.py).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

LAUNCHER = Path(__file__).with_name("launch.py")
PACKAGE_DIR = Path(__file__).resolve().parents[2]
_SYSTEM = ("/usr", "/lib", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/var/lib", "/run")


@dataclass(frozen=True)
class Limits:
    """Per-kernel resource limits (resource.setrlimit): a backstop behind the per-cell timeout."""

    cpu_seconds: int = 1800
    memory_mb: int = 6144
    processes: int = 256    # counts threads too (torch and ipykernel start ~20)
    file_mb: int = 512

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}.")

    def as_plan(self) -> dict:
        return {"cpu_seconds": self.cpu_seconds, "memory_bytes": self.memory_mb * 2**20,
                "processes": self.processes, "file_bytes": self.file_mb * 2**20}


def kernel_user(slot: int) -> tuple[int, int, str]:
    """(uid, gid, name) the kernel runs as: ssm-grader-<slot> when we are root (created if missing), else us."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
    return unprivileged_user(f"ssm-grader-{slot}")


def unprivileged_user(name: str) -> tuple[int, int, str]:
    """(uid, gid, name) of a system user without a home or a shell, created if missing (needs root)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise RuntimeError(f"grading as root needs an unprivileged user {name}, and useradd is missing; create "
                               "the user, or grade as a normal user.") from None
        subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid, name


def _needed() -> list[str]:
    """What the kernel must reach: the interpreter, its prefixes and import path, and this package."""
    paths = {os.path.realpath(sys.executable), sys.prefix, sys.base_prefix, sys.exec_prefix, str(PACKAGE_DIR)}
    paths |= {p for p in sys.path if p and os.path.isdir(p)}
    return sorted(os.path.realpath(p) for p in paths)


def _hideable(path: Path) -> bool:
    text = str(path.resolve())
    return text.count(os.sep) >= 2 and not text.startswith(_SYSTEM)


def hidden_folders(instructor_files: list[Path]) -> list[str]:
    """Folders the kernel must not see: this checkout (notebooks with solutions) and those of the instructor's
    files. Needed entries inside them (the package, the virtualenv) are bound back by launch.py."""
    folders = {Path(f).resolve().parent for f in instructor_files}
    if (PACKAGE_DIR.parent / "notebooks").is_dir():
        folders.add(PACKAGE_DIR.parent)
    return sorted(str(f) for f in folders if _hideable(f))


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel starts through launch.py; configure() before starting it."""

    def configure(self, runtime: Path, private: Path, uid: int, gid: int, limits: Limits, hide: list[str]) -> None:
        self.transport, self.ip = "ipc", str(runtime / "kernel")
        self.connection_file = str(runtime / "connection.json")
        self._uid, self._gid = uid, gid
        self.status_path = private / "sandbox.json"
        plan = {"uid": uid, "gid": gid, "cwd": str(runtime), "keep": _needed() + [str(runtime)], "hide": hide,
                "limits": limits.as_plan(), "status": str(self.status_path)}
        self.kernel_spec.argv[:] = [sys.executable, str(LAUNCHER), json.dumps(plan), "--", sys.executable, "-m",
                                    "ipykernel_launcher", "-f", "{connection_file}"]

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if os.geteuid() == 0:  # the kernel's user must read its key and ports; nobody else
            os.chown(self.connection_file, self._uid, self._gid)

    def sandbox_status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {"network": "unknown: the sandbox reported nothing"}


def folders(uid: int, gid: int) -> tuple[tempfile.TemporaryDirectory, Path, Path]:
    """(holder, runtime folder owned by the kernel's user, private folder only the grader reads)."""
    holder = tempfile.TemporaryDirectory(prefix="ssm_grade_")
    os.chmod(holder.name, 0o711)  # the kernel's user may enter it to reach its own folder, not list it
    runtime, private = Path(holder.name) / "kernel", Path(holder.name) / "grader"
    runtime.mkdir(mode=0o700)
    private.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(runtime, uid, gid)
    return holder, runtime, private


def kernel_env(runtime: Path, threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: nothing of the grader's (no secret seed), only what a notebook needs."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": os.environ.get("LANG", "C.UTF-8"),
           "HOME": str(runtime), "TMPDIR": str(runtime), "MPLCONFIGDIR": str(runtime / "mpl"),
           "IPYTHONDIR": str(runtime / "ipython"), "JUPYTER_RUNTIME_DIR": str(runtime / "jupyter"),
           "SSM_FAST": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": str(threads), "PYTHONDONTWRITEBYTECODE": "1",
           # the kernel compiles and loads no C code: torch's top-k gives the same results (native/build.py)
           "SWITCH_SAE_MINI_NATIVE": "0", "SWITCH_SAE_MINI_MALLOC": "system"}
    return env | (extra or {})


def reap(uid: int, seconds: float = 10.0) -> int:
    """Kill what is left of a dedicated kernel user's processes (a fork bomb's children), and wait until none
    remain, so the next submission in this slot starts under its process limit. Returns how many were killed."""
    import signal
    import time

    if os.geteuid() != 0 or uid == 0:
        return 0
    killed, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.1)
    return killed
