"""Checkpoints of data- and expert-parallel runs, in the single-process format (checkpoint.py).

A distributed training snapshot is exactly what `train()` would write for the same SAE: the full SAE, the full
Adam state and the trainer's JSON state. Data parallel: every rank holds the same SAE and optimizer, and rank 0
writes them. Expert parallel: the experts' weights and their Adam moments are gathered from every rank first (a
collective: every rank calls `save_distributed`), so the snapshot also resumes single-process, and a resumed run
may even use another world size. `resume_distributed` loads the snapshot on every rank and, for expert
parallelism, keeps this rank's slice of the weights and moments.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..saes import SAEBase, SwitchSAE
from .checkpoint import has_checkpoint, load_training_state, save_training_state
from .expert_parallel import ExpertShard, gather_switch_sae
from .step import make_optimizer


def _cat_ranks(t: Tensor, world: int) -> Tensor:
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def _gathered_optimizer(shard: ExpertShard, optimizer: torch.optim.Optimizer,
                        sae: SwitchSAE) -> torch.optim.Optimizer:
    """An Adam over the gathered `sae` whose moments are every rank's moments put together."""
    full = make_optimizer(sae, optimizer.param_groups[0]["lr"])
    full.param_groups[0].update({k: v for k, v in optimizer.param_groups[0].items() if k != "params"})
    for name, p in shard.named_parameters():
        state = optimizer.state.get(p, {})
        if not state:
            continue
        target = getattr(sae, name)
        gathered = {}
        for key, value in state.items():
            if key == "step" or name not in ("W_enc", "W_dec"):
                gathered[key] = value.clone()  # replicated parameters: the same on every rank
            elif name == "W_enc":  # sharded by columns; stored column-major like the parameter
                gathered[key] = torch.empty_like(target).copy_(_cat_ranks(value.t(), shard.world_size).t())
            else:
                gathered[key] = _cat_ranks(value, shard.world_size)
        full.state[target] = gathered
    return full


def save_distributed(path: str | os.PathLike, model: SAEBase | ExpertShard, optimizer: torch.optim.Optimizer,
                     trainer_state: dict[str, Any], keep: int = 2) -> None:
    """Write one training snapshot of a distributed run (rank 0 writes; every rank must call this)."""
    if isinstance(model, ExpertShard):
        sae = gather_switch_sae(model)
        full_optimizer = _gathered_optimizer(model, optimizer, sae)
    else:
        sae, full_optimizer = model, optimizer
    if dist.get_rank() == 0:
        save_training_state(path, sae, full_optimizer, trainer_state, keep=keep)
    dist.barrier()  # nobody moves on (or exits) while rank 0 is still writing


def resume_distributed(path: str | os.PathLike, sae: SAEBase, mode: str, base_lr: float):
    """(model, optimizer, trainer state or None) for this rank: from the newest complete training snapshot in
    `path` if there is one, else the fresh `sae` (every rank must pass the same one)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    state = None
    if path is not None and has_checkpoint(path):
        full_optimizer = make_optimizer(sae, base_lr)
        state = load_training_state(path, sae, full_optimizer)
    if mode != "expert":
        optimizer = full_optimizer if state is not None else make_optimizer(sae, base_lr)
        return sae, optimizer, state
    shard = ExpertShard(sae, rank, world)
    optimizer = make_optimizer(shard, base_lr)
    if state is not None:
        optimizer.param_groups[0].update({k: v for k, v in full_optimizer.param_groups[0].items()
                                          if k != "params"})
        block = slice(shard.latent_offset, shard.latent_offset + shard.d_local)
        for name, p in shard.named_parameters():
            moments = full_optimizer.state.get(getattr(sae, name), {})
            sliced = {}
            for key, value in moments.items():
                if key != "step" and name == "W_enc":
                    value = value.t()[block].t()
                elif key != "step" and name == "W_dec":
                    value = value[block]
                sliced[key] = value.clone() if key == "step" else torch.empty_like(p).copy_(value)
            if sliced:
                optimizer.state[p] = sliced
    return shard, optimizer, state
