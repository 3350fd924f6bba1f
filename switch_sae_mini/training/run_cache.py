"""Train an SAE once per course: a run that another chapter already made is read back instead of repeated.

Chapters 01 and 02 both sweep the same ReLU SAEs (02 sets TopK against them), and chapters 05 and 06 train the same
Switch SAEs. ``train_once(cfg, train_acts, batch_size, train_cfg)`` keys a run on everything that decides its
result - the SAE and training configs, the batch size and data seed, a hash of the activations' bytes, torch's
version and a hash of the package's own training code - and keeps the trained SAE (safetensors + JSON) with its
history under ``$SWITCH_SAE_MINI_CACHE/runs/`` (see data/shared_cache.py). A second call with the same key loads it;
anything else trains. Each chapter therefore still runs on its own, and the SAE it gets is the one its own training
would produce (tests/test_shared_cache.py trains both ways and compares).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import SAEConfig, TrainConfig
from ..data import shared_cache
from ..data.batches import shuffled_batches
from ..errors import ArgumentError
from .checkpoint import load, save
from .train import TrainResult, train

_PACKAGE = Path(__file__).resolve().parents[1]
_CODE_DIRS = ("saes", "training", "native")  # the code that decides what training produces
_data_hashes: dict[int, tuple] = {}  # id(tensor) -> (weakref to it, its version, hash)


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """A hash of the package's model and training code: a changed kernel never reuses an older run. Taken once per
    process: the code that trains is the code that was imported, whatever happens to the files later."""
    digest = hashlib.sha256()
    for folder in _CODE_DIRS:
        for path in sorted((_PACKAGE / folder).rglob("*")):
            if path.suffix in (".py", ".c") and path.is_file():
                digest.update(path.relative_to(_PACKAGE).as_posix().encode() + path.read_bytes())
    digest.update((_PACKAGE / "config.py").read_bytes())
    return digest.hexdigest()


def data_hash(acts: Tensor) -> str:
    """A hash of the activations' values, memoised per tensor object and in-place version (a sweep hashes its data
    once; a tensor modified in place, or a new tensor at a reused address, is hashed again)."""
    ref, version, digest = _data_hashes.get(id(acts), (None, None, None))
    if ref is None or ref() is not acts or version != acts._version:
        array = np.ascontiguousarray(acts.detach().cpu().numpy())
        digest = hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest() + str(array.shape) + str(array.dtype)
        _data_hashes[id(acts)] = (weakref.ref(acts), acts._version, digest)
    return digest


def run_key(cfg: SAEConfig, train_acts: Tensor, batch_size: int, train_cfg: TrainConfig, data_seed: int) -> str:
    spec = {"sae": cfg.to_dict(), "train": train_cfg.to_dict(), "batch_size": batch_size, "data_seed": data_seed,
            "data": data_hash(train_acts), "torch": torch.__version__, "code": code_hash(),
            "threads": torch.get_num_threads(),  # the reduction order, hence the last bits, depends on it
            "env": {k: os.environ.get(k) for k in ("SWITCH_SAE_MINI_NATIVE", "SWITCH_SAE_MINI_MALLOC")}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read(folder: Path) -> TrainResult | None:
    try:
        record = json.loads((folder / "run.json").read_text())
        sae = load(folder / "sae")
    except Exception:  # any damage (missing file, bad JSON, hash mismatch): train again and replace the folder
        return None
    return TrainResult(sae=sae, history=record["history"], final=record["final"], wall_time=record["wall_time"],
                       steps=record["steps"])


def train_once(cfg: SAEConfig, train_acts: Tensor, batch_size: int, train_cfg: TrainConfig, data_seed: int = 0,
               progress: bool = False, verbose: bool = True) -> TrainResult:
    """``train(cfg, shuffled_batches(train_acts, batch_size, data_seed), train_cfg)``, or the stored result of
    exactly that call (from any chapter). ``wall_time`` is the time the training took when it ran. With
    ``verbose`` a run read from the cache says so in one line (a notebook cell that returns at once explains
    itself)."""
    if not isinstance(cfg, SAEConfig):
        raise ArgumentError(f"train_once needs an SAEConfig (a prepared module cannot be keyed), got "
                            f"{type(cfg).__name__}; call ssm.train for a module you built yourself.")

    def fresh() -> TrainResult:
        return train(cfg, shuffled_batches(train_acts, batch_size, data_seed), train_cfg, progress=progress)

    root = shared_cache.cache_root()
    if root is None:
        return fresh()
    folder = root / "runs"
    name = f"{cfg.arch}-{cfg.d_sae}-{run_key(cfg, train_acts, batch_size, train_cfg, data_seed)}"
    final = folder / name

    def cached(result: TrainResult) -> TrainResult:
        if verbose:
            print(f"{cfg.arch} SAE (d_sae {cfg.d_sae}, {result.steps} steps) read from the course cache; its "
                  f"training took {result.wall_time:.0f} s")
        return result

    with contextlib.ExitStack() as stack:
        try:  # an unreadable or unwritable cache (another user's folder, a full disk) only costs the reuse
            if final.is_dir() and (result := _read(final)) is not None:
                return cached(result)
            folder.mkdir(parents=True, exist_ok=True)
            stack.enter_context(shared_cache.locked(folder / f"{name}.lock"))
            if final.is_dir() and (result := _read(final)) is not None:  # made by another process meanwhile
                return cached(result)
            shared_cache.remove_stale_builds(folder, name)
        except OSError:
            return fresh()
        result = fresh()
        build = folder / f"{name}.build-{os.getpid()}"
        try:
            shutil.rmtree(build, ignore_errors=True)
            save(result.sae, build / "sae")
            record = {"history": result.history, "final": result.final, "wall_time": result.wall_time,
                      "steps": result.steps}
            (build / "run.json").write_text(json.dumps(record))
            shutil.rmtree(final, ignore_errors=True)  # a damaged earlier copy
            os.replace(build, final)
        except OSError:  # the cache cannot be written: the run itself is still good
            shutil.rmtree(build, ignore_errors=True)
    return result
