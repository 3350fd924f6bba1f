"""Starts the learner's kernel in a sandbox; runs as a script (no package import), before the kernel exists.

    python launch.py PLAN_JSON -- python -m ipykernel_launcher -f CONNECTION_FILE

PLAN_JSON (written by sandbox.py): {"uid", "gid", "cwd", "keep": [paths], "hide": [dirs], "limits": {...},
"status": path}.
Steps, each reported to plan["status"] (read by the grader before the learner's first cell runs):
1. New network, PID and mount namespaces (and, as a normal user, a user namespace that maps only our own ids):
   no network, and when the kernel exits every process it started dies with it (the kernel is PID 1 of its
   namespace, with a /proc of its own, so it cannot see the grader's processes or environment).
2. Directories on the way to the interpreter, the package or the kernel's folder that the kernel's user cannot
   enter (a 0700 /root holding pyenv, a 0700 mktemp folder holding a checkout), and the folders holding the
   instructor's files (the checkout's notebooks, the hidden cases, the seed file, the submissions), are covered
   by an empty tmpfs in which only the needed entries are bind-mounted back. Nothing else there is visible.
3. Every file system is read-only for the kernel, except its own folder and /dev, so that it cannot change the
   grader's code or files even when it runs as the grader's own user.
4. Resource limits (CPU seconds, address space, processes, file size, no core files); then, as root, switch to
   the unprivileged user, so the process limit binds and the grader's files are unreadable.
"""

import ctypes
import ctypes.util
import json
import os
import resource
import signal
import stat
import sys
import tempfile

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
# per-mount flags a remount must keep: in a user namespace they are locked, and dropping one is refused
_KEPT_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21,
               "strictatime": 1 << 24}
_LEAVE_WRITABLE = ("/proc", "/sys", "/dev")  # kernel interfaces; /dev/null and ptys must stay writable
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _enterable(path: str, uid: int, gid: int) -> bool:
    st = os.stat(path)
    if uid == st.st_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    return bool(st.st_mode & (stat.S_IXGRP if gid == st.st_gid else stat.S_IXOTH))


def _mountpoint(like: str, path: str) -> None:
    """An empty directory, or an empty file, to bind `like` onto."""
    if os.path.isdir(like):
        os.mkdir(path)
    else:
        open(path, "w").close()


def _uncover(keep: list[str], uid: int, gid: int, hide: list[str]) -> list[str]:
    """Cover each directory the user cannot enter, and each in `hide` (instructor files), with a tmpfs holding
    only the needed entries (top-down)."""
    hide = {os.path.realpath(h) for h in hide}
    needed: dict[str, set[str]] = {h: set() for h in hide if os.path.isdir(h)}
    for path in keep:
        parts = os.path.realpath(path).split(os.sep)[1:]
        for depth in range(len(parts)):
            parent = os.sep + os.sep.join(parts[:depth])
            needed.setdefault(parent, set()).add(parts[depth])
    covered = []
    for parent in sorted(needed, key=lambda p: p.count(os.sep) + (p != os.sep)):
        if not os.path.isdir(parent) or (parent not in hide and _enterable(parent, uid, gid)):
            continue
        staging = tempfile.mkdtemp(prefix="ssm_stage_")
        children = sorted(c for c in needed[parent] if os.path.exists(os.path.join(parent, c)))
        for child in children:
            _mountpoint(os.path.join(parent, child), os.path.join(staging, child))
            _mount(os.path.join(parent, child), os.path.join(staging, child), None, MS_BIND | MS_REC)
        _mount("tmpfs", parent, "tmpfs", 0, "mode=0755")
        for child in children:
            _mountpoint(os.path.join(staging, child), os.path.join(parent, child))
            _mount(os.path.join(staging, child), os.path.join(parent, child), None, MS_BIND | MS_REC)
            _check(_libc.umount2(os.path.join(staging, child).encode(), MNT_DETACH), "umount staging")
            (os.rmdir if os.path.isdir(os.path.join(staging, child)) else os.unlink)(os.path.join(staging, child))
        os.rmdir(staging)
        covered.append(parent)
    return covered


def _mounts() -> list[tuple[str, int]]:
    """(mount point, flags to keep) of every mount in this namespace, from /proc/self/mountinfo."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 is a space
            found.append((point, sum(_KEPT_FLAGS.get(o, 0) for o in fields[5].split(","))))
    return found


def _under(path: str, folders) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _read_only(writable: list[str]) -> tuple[list[str], list[str]]:
    """Make every mount read-only except `writable` (bound onto themselves first) and _LEAVE_WRITABLE; returns
    (made read-only, refused). The root mount cannot be remounted in place, so each top-level directory on it gets
    a mount of its own."""
    points = {p for p, _ in _mounts()}
    for top in sorted(os.listdir("/")):
        path = os.path.join("/", top)
        if os.path.isdir(path) and not os.path.islink(path) and path not in points \
                and not _under(path, _LEAVE_WRITABLE):
            _mount(path, path, None, MS_BIND | MS_REC)
    writable = [os.path.realpath(w) for w in writable]
    for path in writable:
        _mount(path, path, None, MS_BIND)
    done, refused = set(), set()
    for point, kept in _mounts():
        if point == "/" or point in writable or _under(point, _LEAVE_WRITABLE) or not os.path.exists(point):
            continue
        try:
            _mount("none", point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
            done.add(point)
        except OSError as exc:
            refused.add(f"{point} ({exc.strerror})")
    return sorted(done), sorted(refused)


def _own_proc() -> str:
    """Mount a /proc for this PID namespace (we are its PID 1): the host's would list the grader's processes."""
    try:
        _mount("proc", "/proc", "proc", _KEPT_FLAGS["nosuid"] | _KEPT_FLAGS["nodev"] | _KEPT_FLAGS["noexec"])
        return "own"
    except OSError as exc:
        return f"the host's: {exc}"


def _limits(limits: dict) -> None:
    for name, value in [("RLIMIT_CPU", limits["cpu_seconds"]), ("RLIMIT_AS", limits["memory_bytes"]),
                        ("RLIMIT_NPROC", limits["processes"]), ("RLIMIT_FSIZE", limits["file_bytes"]),
                        ("RLIMIT_CORE", 0)]:
        resource.setrlimit(getattr(resource, name), (value, value))


def main(argv: list[str]) -> None:
    plan, kernel_argv = json.loads(argv[1]), argv[3:]
    uid, gid, root = plan["uid"], plan["gid"], os.geteuid() == 0
    status = {"network": "not isolated", "pid_namespace": False, "user": "grader's own", "covered": [],
              "read_only": [], "writable": ["everything: no mount namespace"], "proc": "the host's",
              "limits": plan["limits"]}
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | (0 if root else CLONE_NEWUSER)
    real_uid, real_gid = os.getuid(), os.getgid()  # read before unshare: unmapped, they read as 65534
    try:
        _check(_libc.unshare(flags), "unshare")
    except OSError as exc:  # e.g. user namespaces are disabled for normal users: grade, and say so
        status["network"] = f"not isolated: {exc}"
    else:
        if not root:  # map our own ids into the user namespace, so nothing else changes (a failure here is fatal:
            # the namespaces exist but are unusable, and the kernel must not start half-sandboxed)
            for name, text in [("setgroups", "deny"), ("uid_map", f"{real_uid} {real_uid} 1"),
                               ("gid_map", f"{real_gid} {real_gid} 1")]:
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        status["network"], status["pid_namespace"] = "isolated (network namespace)", True
    # opened before the mounts below make its folder read-only (the root mount it is on is never remounted)
    report = open(plan["status"], "w")
    if status["pid_namespace"]:
        _mount("none", "/", None, MS_REC | MS_PRIVATE)  # our mounts stay in this namespace
        status["covered"] = _uncover(plan["keep"], uid, gid, plan["hide"])
        status["read_only"], refused = _read_only([plan["cwd"]])
        status["writable"] = [plan["cwd"], *_LEAVE_WRITABLE, *refused]
    status["user"] = f"uid {uid}" if root else f"grader's own (uid {uid}, in a user namespace)"
    child = os.fork() if status["pid_namespace"] else 0  # the first child is PID 1 of the new namespace
    if child:
        report.close()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are meant for the kernel (same process group)
        signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
        _, code = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(code) & 0xFF)
    if status["pid_namespace"]:
        status["proc"] = _own_proc()
    with report:
        json.dump(status, report)
    _limits(plan["limits"])
    if root:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    os.chdir(plan["cwd"])
    os.execv(kernel_argv[0], kernel_argv)


if __name__ == "__main__":
    main(sys.argv)
