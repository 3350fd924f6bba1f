"""One activation cache for the whole course: harvested by the first chapter that asks, reused by every other.

Every chapter from 01 on trains on activations of the same model, hook and corpus. Harvesting them again in each
notebook cost about a minute each time on 2 cores (51 s for 1.5M tokens), so ``ssm.notebook.harvest`` keeps them
on disk under

    $SWITCH_SAE_MINI_CACHE/activations/<model>-<hook>-<split>-<n_tokens>-<settings hash>/

(default ``$XDG_CACHE_HOME/switch_sae_mini``, i.e. ``~/.cache/switch_sae_mini``; ``SWITCH_SAE_MINI_CACHE=off``
turns the cache off). Every chapter still runs on its own: a missing cache is harvested, and the rows are exactly
those an in-memory harvest with the same arguments returns (tests/test_shared_cache.py).

Two notebooks harvesting at once cannot corrupt the cache: each harvests into a private folder and renames it into
place (a rename is atomic), and a lock file lets the second wait for the first instead of harvesting twice. A cache
that fails its hash check is rebuilt; a folder that cannot be written falls back to harvesting in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

from ..paths import CACHE_ENV, cache_setting
from .disk_cache import MANIFEST, CacheMismatchError, DiskActivations, harvest_to_disk
from .models import model_fingerprint

ENV = CACHE_ENV


def cache_root() -> Path | None:
    """The folder that holds the course's shared caches, or None when ``SWITCH_SAE_MINI_CACHE=off``."""
    folder, enabled = cache_setting()
    return folder if enabled else None


@contextlib.contextmanager
def locked(lock_path: Path):
    """An exclusive advisory lock (POSIX flock); where there is none, the atomic rename alone keeps caches whole."""
    try:
        import fcntl
    except ImportError:  # Windows: two harvests may both run, and the second rename loses harmlessly
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_builds(folder: Path, name: str) -> None:
    """Private build folders whose process is gone are leftovers of an interrupted harvest."""
    for tmp in folder.glob(f"{name}.build-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # another user's live process
            pass


def _open(path: Path) -> DiskActivations | None:
    if not (path / MANIFEST).exists():
        return None
    try:
        return DiskActivations(path)
    except (CacheMismatchError, OSError, ValueError, KeyError) as exc:
        warnings.warn(f"the shared activation cache {path} is damaged ({exc}); harvesting it again.",
                      RuntimeWarning, stacklevel=3)
        shutil.rmtree(path, ignore_errors=True)
        return None


def cache_name(model, hook: str, split: str, n_tokens: int, settings: dict) -> str:
    """The folder name: readable prefix, then a hash of every setting that changes the rows."""
    digest = hashlib.sha256(json.dumps({**settings, "n_tokens": n_tokens,
                                        "model_fingerprint": model_fingerprint(model)},
                                       sort_keys=True).encode()).hexdigest()[:12]
    model_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(model.cfg.model_name)).name)
    return f"{model_name}-{hook}-{split}-{n_tokens}-{digest}"


def shared_disk_harvest(model, n_tokens: int, hook: str, split: str, seed: int, context_len: int,
                        n_contexts: int, root: Path, progress: bool = True) -> DiskActivations:
    """The cache for these settings under ``root``: opened if complete, else harvested and renamed into place."""
    settings = {"hook": hook, "split": split, "seed": seed, "context_len": context_len, "n_contexts": n_contexts}
    folder = root / "activations"
    folder.mkdir(parents=True, exist_ok=True)
    name = cache_name(model, hook, split, n_tokens, settings)
    final = folder / name
    if (cache := _open(final)) is not None:
        return cache
    with locked(folder / f"{name}.lock"):
        if (cache := _open(final)) is not None:  # another process finished it while we waited
            return cache
        remove_stale_builds(folder, name)
        build = folder / f"{name}.build-{os.getpid()}"
        shutil.rmtree(build, ignore_errors=True)
        try:
            harvest_to_disk(model, build, n_tokens, hook=hook, split=split, context_len=context_len,
                            n_contexts=n_contexts, seed=seed, progress=progress)
            os.replace(build, final)  # atomic: readers see no cache or a whole one
        except OSError:
            shutil.rmtree(build, ignore_errors=True)
            if (cache := _open(final)) is not None:  # without flock, another process renamed first
                return cache
            raise
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    return DiskActivations(final)

