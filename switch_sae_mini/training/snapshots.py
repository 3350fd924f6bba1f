"""A checkpoint folder whose every save is atomic as a whole: the previous complete checkpoint or the new one,
never a mix.

    <folder>/latest                     the name of the newest complete snapshot; replaced atomically, written last
    <folder>/000007-step-00000300/      one snapshot: its files, plus manifest.json with the sha256 of each of them
    <folder>/000006-step-00000294/      older snapshots, up to `keep` in all (one damaged folder never loses a run)
    <folder>/000008-save/               a weights-only save (`switch_sae_mini.save`)

The leading number orders snapshots by when they were written; "step-N" names a training checkpoint after N steps.

A snapshot is written in a hidden temporary folder, each file fsynced, then renamed into place (renaming a new folder
to a free name is atomic on POSIX) and only then named in `latest`. A kill at any moment leaves the old pointer
and complete snapshots; leftover temporary folders are ignored and cleaned up by the next save. Reading verifies
every file against the manifest, the JSON files included, so a hand-edited config or a flipped byte is detected.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SwitchSAEError

MANIFEST = "manifest.json"
LATEST = "latest"
FORMAT = "switch_sae_mini.checkpoint"
FORMAT_VERSION = 2
_NAME = re.compile(r"^(\d{6})-(step-\d{8}|save)$")

# Fault injection for tests/test_faults.py: called with the name of each write point of a save ("file:<name>",
# "renamed", "pointer", "pruned"); a test may set it to kill the process there. Never set in normal use.
fault_hook: Callable[[str], None] | None = None


class CheckpointError(SwitchSAEError, ValueError):
    """The path is not a usable checkpoint of this package (missing, truncated, foreign or mismatched)."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (e.g. no space left); the previous checkpoint is untouched."""


def _fault(point: str) -> None:
    if fault_hook is not None:
        fault_hook(point)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same folder, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def snapshot_names(folder: Path) -> list[str]:
    """Complete-looking snapshot folders, oldest first (by sequence number)."""
    if not folder.is_dir():
        return []
    names = [p.name for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(names, key=lambda n: int(_NAME.match(n).group(1)))


def is_snapshot_folder(folder: Path) -> bool:
    return (folder / LATEST).is_file() or bool(snapshot_names(folder))


def write_snapshot(folder: str | os.PathLike, files: dict[str, Callable[[Path], None]], *, step: int | None = None,
                   keep: int = 2, meta: dict[str, Any] | None = None) -> Path:
    """Write one snapshot of `files` ({file name: writer(path)}) into `folder` and make it the latest.

    step: the training step of a training checkpoint (None: a weights-only save).
    keep: how many snapshots to keep in all (older ones are deleted after the pointer moved on).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder} is a file; a checkpoint is a folder. Pick another path.")
    if not (isinstance(keep, int) and keep >= 1):
        raise CheckpointError(f"keep must be an int >= 1 (snapshots to keep), got {keep!r}.")
    folder.mkdir(parents=True, exist_ok=True)
    existing = snapshot_names(folder)
    sequence = max((int(_NAME.match(n).group(1)) for n in existing), default=0) + 1
    name = f"{sequence:06d}-" + ("save" if step is None else f"step-{step:08d}")
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-{name}-"))
    try:
        hashes = {}
        for file_name, write in files.items():
            path = tmp / file_name
            write(path)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
            hashes[file_name] = sha256(path)
            _fault(f"file:{file_name}")
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "files": hashes,
                    **(meta or {})}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fsync_dir(tmp)
        target = folder / name
        os.rename(tmp, target)
        _fsync_dir(folder)
        _fault("renamed")
        # the pointer carries the manifest's own hash, so the manifest is verified too
        _replace_file(folder / LATEST, f"{name} {sha256(target / MANIFEST)}\n".encode())
        _fsync_dir(folder)
        _fault("pointer")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        what = "no space left on the device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        previous = read_pointer(folder)
        raise CheckpointWriteError(
            f"could not write checkpoint {folder / name}: {what}. "
            + (f"The previous checkpoint {folder / previous[0]} is intact." if previous else
               "No earlier checkpoint exists in this folder.")) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(folder, name, keep)
    _fault("pruned")
    return target


def _prune(folder: Path, newest: str, keep: int) -> None:
    names = [n for n in snapshot_names(folder) if n != newest]
    for old in names[:max(0, len(names) - (keep - 1))]:
        shutil.rmtree(folder / old, ignore_errors=True)
    for leftover in folder.glob(".tmp-*"):  # temporary folders of an interrupted save
        shutil.rmtree(leftover, ignore_errors=True)


def read_pointer(folder: Path) -> tuple[str, str | None] | None:
    """(snapshot name, sha256 of its manifest) from `latest`, or None if it is missing or unreadable."""
    try:
        parts = (folder / LATEST).read_text().split()
    except (OSError, UnicodeDecodeError):
        return None
    if not parts or not _NAME.match(parts[0]):
        return None
    return parts[0], (parts[1] if len(parts) > 1 else None)


def verify(snapshot: Path, manifest_sha: str | None = None) -> dict[str, Any]:
    """The snapshot's manifest, after checking every file it names against its hash, and the manifest against
    `manifest_sha` (from the pointer) when given; CheckpointError if anything differs."""
    if manifest_sha is not None and (snapshot / MANIFEST).is_file() and sha256(snapshot / MANIFEST) != manifest_sha:
        raise CheckpointError(f"{snapshot / MANIFEST} does not match the hash in {snapshot.parent / LATEST}: the "
                              f"manifest is damaged or was edited by hand.")
    try:
        manifest = json.loads((snapshot / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{snapshot} has no readable {MANIFEST} ({exc}); the snapshot is damaged.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
            manifest.get("files"), dict):
        raise CheckpointError(f"{snapshot / MANIFEST} is not a switch_sae_mini manifest.")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{snapshot} was written by a newer switch_sae_mini (format "
                              f"{manifest['format_version']}); upgrade the package to load it.")
    for file_name, expected in manifest["files"].items():
        path = snapshot / file_name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; the snapshot is incomplete.")
        if sha256(path) != expected:
            raise CheckpointError(f"{path} does not match the hash in {MANIFEST}: the file is damaged or was "
                                  f"edited by hand. Restore it, or load an older snapshot of {snapshot.parent}.")
    return manifest


def find_snapshot(folder: str | os.PathLike, *, fallback: bool,
                  accept: Callable[[dict[str, Any]], bool] = lambda manifest: True) -> tuple[Path, dict[str, Any]]:
    """The snapshot `latest` names (verified), or with fallback=True the newest verified one that `accept`s.

    Snapshots newer than the pointer (a kill between rename and pointer) are complete too; the pointer wins.
    """
    folder = Path(folder)
    pointer = read_pointer(folder)
    pointed, manifest_sha = pointer if pointer else (None, None)
    names = snapshot_names(folder)
    if pointed in names:  # newest first, starting at the pointer
        names = names[:names.index(pointed) + 1]
    candidates = list(reversed(names)) if fallback else list(reversed(names))[:1]
    errors = []
    for name in candidates:
        try:
            manifest = verify(folder / name, manifest_sha if name == pointed else None)
        except CheckpointError as exc:
            if not fallback:
                raise
            errors.append(str(exc))
            continue
        if accept(manifest):
            if errors:
                warnings.warn(f"{folder}: the newest snapshot is damaged ({'; '.join(errors)}); using {name}, "
                              "the newest complete one.", RuntimeWarning, stacklevel=3)
            return folder / name, manifest
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise CheckpointError(f"No usable checkpoint in {folder}{detail}.")
