"""Activations held in memory: read them from a file, harvest them from a model, iterate shuffled batches.

For data larger than memory use ``ActivationBuffer`` (streaming) or ``harvest_to_disk`` (memory-mapped cache).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ArgumentError, SwitchSAEError
from . import shared_cache
from .activations import ActivationBuffer, TokenMetadata


class ActivationFileError(SwitchSAEError, ValueError):
    """An activations file that cannot be read as a float matrix [n, d_in]; the message says what to do."""


def load_activations(path: str | Path, key: str | None = None) -> Tensor:
    """Read an [n, d_in] float tensor from .safetensors (tensor `key`, "activations" or its only tensor) or .npy.

    Pickles (.pt) are refused on purpose: loading a pickle can run arbitrary code.
    """
    path = Path(path)
    if not path.is_file():
        raise ActivationFileError(f"activations file {path} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(path)
        if key is None and len(tensors) != 1 and "activations" not in tensors:
            raise ActivationFileError(f"{path} holds tensors {sorted(tensors)}; choose one with --key.")
        name = key or ("activations" if "activations" in tensors else next(iter(tensors)))
        if name not in tensors:
            raise ActivationFileError(f"--key {name!r} not in {path} (it has {sorted(tensors)}).")
        acts = tensors[name]
    elif path.suffix == ".npy":
        import numpy as np

        acts = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        raise ActivationFileError(f"activations must be a .safetensors or .npy file, got {path.name} "
                                  f"(pickled .pt files are not loaded: convert with safetensors.torch.save_file).")
    if acts.ndim != 2 or not acts.is_floating_point():
        raise ActivationFileError(f"activations must be a float matrix [n, d_in], got {tuple(acts.shape)} "
                                  f"{acts.dtype}.")
    return acts.float()


def harvest(model, n_tokens: int, split: str = "train", seed: int = 0, hook: str | None = None,
            context_len: int = 128, device: str | torch.device = "cpu", progress: bool = True,
            cache: bool = True):
    """Run the model over the text source; return (activations [n_tokens, d_in], TokenMetadata, the buffer used),
    shuffled.

    A thin wrapper over ActivationBuffer for notebooks that want all activations in memory at once, e.g. to train
    several SAEs on identical data. The buffer tells where they came from (its hook, source and domains).
    With ``cache=True`` the rows are kept in the course's shared on-disk cache (data/shared_cache.py): the first
    call harvests, later calls with the same arguments (in any notebook) read the same rows back. The rows are
    identical either way; ``SWITCH_SAE_MINI_CACHE=off`` or ``cache=False`` keeps everything in memory.
    """
    n_contexts = max(64, min(4096, n_tokens // (context_len // 2)))
    batch_size = min(4096, n_contexts * context_len // 2)
    buffer = ActivationBuffer(model, hook=hook, split=split, context_len=context_len, n_contexts=n_contexts,
                              batch_size=batch_size, seed=seed, device=device, progress=progress)
    root = shared_cache.cache_root() if cache else None
    if root is not None:
        try:
            disk = shared_cache.shared_disk_harvest(model, n_tokens, buffer.hook, split, seed, context_len,
                                                    n_contexts, root, progress=progress)
        except OSError as exc:  # read-only or full disk: harvest in memory instead
            warnings.warn(f"the shared activation cache under {root} cannot be used ({exc}); harvesting in memory. "
                          f"Set {shared_cache.ENV}=off to skip it.", RuntimeWarning, stacklevel=2)
        else:
            acts, meta = disk.read_all()
            if progress:
                print(f"activations: {len(acts):,} rows from the shared cache {disk.path}")
            return acts.to(device), TokenMetadata(*(m.to(device) for m in meta)), buffer
    xs, metas = [], []
    for x, meta in buffer.batches(n_tokens=n_tokens, with_metadata=True):
        xs.append(x)
        metas.append(meta)
    meta = TokenMetadata(*(torch.cat([getattr(m, f) for m in metas]) for f in TokenMetadata._fields))
    return torch.cat(xs), meta, buffer


def shuffled_batches(acts: Tensor, batch_size: int, seed: int = 0):
    """Endless epochs over the rows of `acts` in a seeded random order (full batches only)."""
    if acts.shape[0] < batch_size:
        raise ArgumentError(f"batch_size={batch_size} is larger than the {acts.shape[0]} activations; lower it.")
    gen = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(acts.shape[0], generator=gen).split(batch_size):
            if idx.numel() == batch_size:
                yield acts[idx.to(acts.device)]
