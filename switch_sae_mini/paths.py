"""Where the package keeps files between runs: one user cache folder for the course cache (data/shared_cache.py,
training/run_cache.py) and the compiled C kernels (native/build.py)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SWITCH_SAE_MINI_CACHE"
_OFF = ("off", "0", "none", "false", "no", "")


def cache_setting() -> tuple[Path, bool]:
    """(folder, enabled): ``$SWITCH_SAE_MINI_CACHE``, else ``$XDG_CACHE_HOME/switch_sae_mini`` (``~/.cache/...``).
    ``SWITCH_SAE_MINI_CACHE=off`` disables the course cache; the default folder is still returned for the kernels."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "switch_sae_mini"
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return default, True
    if value.strip().lower() in _OFF:
        return default, False
    return Path(value).expanduser(), True
