"""Compile and load this package's C kernels (topk.c) at first use, with a fallback when that is not possible.

The kernels are plain C with no Python or torch headers, so building one takes well under a second with the
system's C compiler (cc, gcc or clang). The shared library is cached under ~/.cache/switch_sae_mini/native (or
$SWITCH_SAE_MINI_CACHE/native), keyed by the source, the flags and the CPU, written to a temporary name and renamed
into place so that two processes building at once cannot load a half-written file. Without a compiler, or with
SWITCH_SAE_MINI_NATIVE=0, `load` returns None and callers use the torch operation they replace (same results).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from ..paths import cache_setting

SOURCE_DIR = Path(__file__).resolve().parent
FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=c99")
_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL | None] = {}


def enabled() -> bool:
    """False when SWITCH_SAE_MINI_NATIVE=0 (or off/false/no): every kernel then uses its torch fallback."""
    return os.environ.get("SWITCH_SAE_MINI_NATIVE", "1").strip().lower() not in ("0", "off", "false", "no")


def cache_dir() -> Path:
    return cache_setting()[0] / "native"  # also when the course cache is off: the kernels are tiny


def _cpu_key() -> str:
    """-march=native code runs only on CPUs like this one: the cache key names the CPU and its flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return "\n".join([platform.machine(), platform.processor(), *lines])


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _private_temp_dir() -> Path | None:
    """A per-user folder under the system temp dir, for when the cache is not writable (a read-only home)."""
    folder = Path(tempfile.gettempdir()) / f"switch_sae_mini-{os.getuid()}" / "native"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner_ok = folder.parent.stat().st_uid == os.getuid() and folder.stat().st_uid == os.getuid()
    except OSError:
        return None
    return folder if owner_ok else None  # never load code from a folder another user controls


def _build_in(folder: Path, name: str, compiler: str) -> Path:
    source = SOURCE_DIR / f"{name}.c"
    key = hashlib.sha256(source.read_bytes() + repr(FLAGS).encode() + compiler.encode()
                         + _cpu_key().encode()).hexdigest()[:16]
    target = folder / f"{name}-{key}.so"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        partial = Path(tmp) / target.name
        proc = subprocess.run([compiler, *FLAGS, str(source), "-o", str(partial)], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise OSError(f"{compiler} failed on {source.name}: {proc.stderr.strip()[-500:]}")
        os.replace(partial, target)  # atomic: a concurrent loader sees the old state or the whole file
    return target


def _build(name: str, compiler: str) -> Path:
    try:
        return _build_in(cache_dir(), name, compiler)
    except PermissionError:
        fallback = _private_temp_dir()
        if fallback is None:
            raise
        return _build_in(fallback, name, compiler)


def load(name: str) -> ctypes.CDLL | None:
    """The compiled kernel library `name` (native/<name>.c), or None where it cannot be built here."""
    with _lock:
        if name in _loaded:
            return _loaded[name]
        library = None
        if enabled() and sys.platform != "win32":
            compiler = _compiler()
            if compiler is not None:
                try:
                    library = ctypes.CDLL(str(_build(name, compiler)))
                except (OSError, subprocess.SubprocessError) as err:
                    warnings.warn(f"switch_sae_mini: the C kernel {name!r} could not be built ({err}); using the "
                                  f"torch fallback, which gives the same results more slowly. Set "
                                  f"SWITCH_SAE_MINI_NATIVE=0 to silence this.", RuntimeWarning, stacklevel=3)
        _loaded[name] = library
        return library


def reset() -> None:
    """Forget loaded libraries (tests switch SWITCH_SAE_MINI_NATIVE)."""
    with _lock:
        _loaded.clear()
