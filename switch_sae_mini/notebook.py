"""Helpers shared by the notebooks: the setup cell, the FAST switch, and harvesting activations into memory.

FAST (environment variable SSM_FAST=1, set by `make test`) only shrinks sizes - tokens, widths, steps - so that
CI executes every cell of every notebook quickly. It never skips a cell.
"""

from __future__ import annotations

import os
import platform

import torch
from torch import Tensor

from . import gpu


def fast() -> bool:
    """True when SSM_FAST=1 (CI); notebooks pick small sizes then."""
    return os.environ.get("SSM_FAST", "0") == "1"


def setup(seed: int = 0, device: str | None = None) -> torch.device:
    """Seed everything, pick the device (cuda > mps > cpu), print one line about the environment."""
    gpu.set_seed(seed)
    dev = gpu.get_device(device)
    print(f"device={dev} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"python={platform.python_version()} FAST={fast()}")
    return dev


def harvest(model, n_tokens: int, split: str = "train", seed: int = 0, hook: str | None = None,
            context_len: int = 128, device: str | torch.device = "cpu", progress: bool = True):
    """Run the model over the text source and return (activations [n_tokens, d_in], TokenMetadata), shuffled.

    A thin wrapper over ActivationBuffer for notebooks that want all activations in memory at once, e.g. to train
    several SAEs on identical data.
    """
    from .activations import ActivationBuffer, TokenMetadata

    n_contexts = max(64, min(4096, n_tokens // (context_len // 2)))
    batch_size = min(4096, n_contexts * context_len // 2)
    buffer = ActivationBuffer(model, hook=hook, split=split, context_len=context_len, n_contexts=n_contexts,
                              batch_size=batch_size, seed=seed, device=device, progress=progress)
    xs, metas = [], []
    for x, meta in buffer.batches(n_tokens=n_tokens, with_metadata=True):
        xs.append(x)
        metas.append(meta)
    meta = TokenMetadata(*(torch.cat([getattr(m, f) for m in metas]) for f in TokenMetadata._fields))
    return torch.cat(xs), meta, buffer


def shuffled_batches(acts: Tensor, batch_size: int, seed: int = 0):
    """Endless epochs over the rows of `acts` in a seeded random order (full batches only)."""
    if acts.shape[0] < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the {acts.shape[0]} activations; lower it.")
    gen = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(acts.shape[0], generator=gen).split(batch_size):
            if idx.numel() == batch_size:
                yield acts[idx.to(acts.device)]
