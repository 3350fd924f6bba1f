"""Keep freed memory for reuse during training (glibc only): the fixed per-step cost that page faults add.

glibc serves every allocation above 32 MB with its own mmap and gives it back to the kernel when freed. A training
step allocates its weight gradients afresh (optimizer.zero_grad(set_to_none=True)), plus the decoder-gradient
projection's temporaries: at GPT-2 size about 150 MB per step that the kernel must fault in and zero again, every
step. For a Switch SAE with 32 experts that was a third of the step (python -m switch_sae_mini bench:
docs/design-notes.md §10). `keep_freed_memory()` tells glibc to serve large blocks from its
heap and not to trim it, so the next step reuses the same pages. The process's resident memory then stays at its
peak instead of shrinking between steps; the values computed are the same.

train() and the benchmark call it; SWITCH_SAE_MINI_MALLOC=system leaves glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_lock = threading.Lock()
_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Apply the setting once per process; True if it is in effect (glibc on Linux, not opted out)."""
    with _lock:
        if "applied" in _state:
            return _state["applied"]
        applied = False
        if sys.platform.startswith("linux") and os.environ.get("SWITCH_SAE_MINI_MALLOC", "").lower() != "system":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # musl and other libcs have no mallopt
                mallopt = None
            if mallopt is not None:
                mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                # mallopt returns 1 on success; the trim threshold is the largest int (never trim)
                applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
        _state["applied"] = applied
        return applied
