"""Multi-process training with torch.distributed: data parallel (every architecture) and expert parallel (Switch).

    torchrun --nproc_per_node=8 -m switch_sae_mini distributed --mode expert --arch switch --n-experts 32 ...

One step of either mode is `step.training_step` with distributed hooks, and equals a single-process step on the
concatenation of the ranks' batches (rank order), up to
float rounding (tests/test_distributed.py):

- gradients: each rank backpropagates its local mean loss; the gradients are summed weighted by n_local / n_global
  (data parallel: one all_reduce of all gradients; expert parallel: of the replicated ones only).
- Switch load balancing, E * sum_i f_i P_i, is nonlinear in the batch: f (no gradient) is computed from the global
  expert counts, P locally; the n-weighted average of the local terms is then exactly the global loss and gradient.
  Likewise TopK's AuxK term, a token mean times the batch's mean squared activation, uses the global mean square.
- the first-batch geometric-median init of b_dec / b_router uses the all-gathered global first batch.
- dead-latent counters see which latents fired on any rank and advance by the global token count (AuxK of TopK SAEs
  reads them, so this keeps AuxK identical too).
- gradient clipping uses the global norm (expert parallel: sharded squared norms summed over ranks).

The step order is training_step's own: these hooks only say which batch initialises the biases, which loss terms
use global statistics, how gradients are reduced and (expert parallel) how the global clip norm is formed.
Expert parallelism's shard and hooks are in expert_parallel.py.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import torch
import torch.distributed as dist
from jaxtyping import Float
from torch import Tensor

from ..config import TrainConfig
from ..errors import UnavailableError
from ..saes import SAEBase, metrics
from ..saes.routing import expert_counts, load_balance_loss
from .step import StepHooks, training_step


class StepResult(NamedTuple):
    """Global values of one step (all ranks' tokens): what training_step reports on the full batch."""

    loss: float
    mse_loss: float
    lb_loss: float
    l0: float
    n_tokens: int


def init_from_env() -> tuple[int, int, torch.device]:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Backend nccl when CUDA is available (one GPU per local rank), gloo on CPU. Returns (rank, world_size, device).
    """
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise UnavailableError(f"environment variables {missing} are not set; launch with torchrun, e.g. "
                           f"`torchrun --nproc_per_node=2 -m switch_sae_mini distributed ...`.")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def shutdown() -> None:
    """Leave the process group and let gloo's worker threads finish before the interpreter exits.

    A gloo worker thread releases each finished collective (and the Python-owned tensors it holds, which needs the
    GIL) only after the caller has already been woken. If Python starts finalising in that window, the thread
    cannot take the GIL and the process aborts with "terminate called without an active exception" (seen here in
    about 1 of 10 two-rank CPU runs, torch 2.13; see pytorch/pytorch#179291). Sleeping briefly releases the GIL.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        time.sleep(0.2)


def all_gather_rows(x: Float[Tensor, "n d"]) -> Float[Tensor, "n_total d"]:
    """Concatenate every rank's rows in rank order (ranks may hold different row counts)."""
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    padded = x.new_zeros(max(sizes), *x.shape[1:])
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def grads_or_zeros(params) -> list[Tensor]:
    """Gradients, zeros for parameters without one (so every rank reduces the same layout)."""
    params = list(params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return [p.grad for p in params]


def sum_across_ranks(grads: list[Tensor], extra: list[Tensor],
                     timings: dict[str, float] | None) -> tuple[list[Tensor], Tensor]:
    """One all_reduce (sum) of the gradients and some extra 1-D tensors; gradients are written back in place."""
    flat = torch.cat([g.reshape(-1) for g in grads] + extra)
    t0 = time.perf_counter()
    dist.all_reduce(flat)
    if timings is not None:
        if flat.is_cuda:
            torch.cuda.synchronize(flat.device)
        timings["all_reduce"] = timings.get("all_reduce", 0.0) + time.perf_counter() - t0
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view(g.shape))
        offset += g.numel()
    return grads, flat[offset:]


class DistributedHooks(StepHooks):
    """What both distributed steps share: the biases start from every rank's first batch; `timings` collects
    communication seconds; `result` holds the step's global values afterwards."""

    def __init__(self, timings: dict[str, float] | None = None) -> None:
        self.timings = timings
        self.result: StepResult | None = None

    def init_batch(self, x: Tensor) -> Tensor:
        return all_gather_rows(x)


class DataParallel(DistributedHooks):
    """Every rank holds the whole SAE and its own batch; after the reduction all ranks hold the same gradients,
    so the default local clip is the global one."""

    def forward(self, sae, x, step, cfg):
        out, loss = super().forward(sae, x, step, cfg)
        lb = out.lb_loss
        if sae.cfg.arch == "switch":  # swap the local LB term for one with the global f (see the module docstring)
            counts = expert_counts(out.expert_idx, sae.cfg.n_experts).to(x.dtype)
            dist.all_reduce(counts)
            lb = load_balance_loss(out.router_probs, out.expert_idx, sae.cfg.n_experts, counts=counts)
            loss = loss + sae.cfg.lb_coeff * (lb - out.lb_loss)
        if sae.cfg.arch == "topk":  # AuxK's error is scaled by the batch's mean squared activation (auxk_error):
            sums = torch.stack([x.detach().pow(2).sum(), x.new_tensor(x.numel())])  # use the global one instead
            dist.all_reduce(sums)
            aux = out.auxk_loss * (sums[0] / sums[1]) / x.detach().pow(2).mean().clamp_min(1e-30)
            loss = loss + sae.cfg.auxk_coeff * (aux - out.auxk_loss)
        self._lb = lb
        return out, loss

    def reduce(self, sae, out, x, loss):
        n = x.shape[0]
        fired = metrics.fired_latents(out).to(x.dtype)
        stats = torch.stack([torch.ones(()), loss.detach(), out.mse_loss.detach(), self._lb.detach(),
                             torch.tensor(metrics.l0(out))]).to(x)
        # scaled by n_local so that the sum over ranks, divided by the summed n, is the global mean
        grads = [g.mul_(n) for g in grads_or_zeros(sae.parameters())]
        grads, extra = sum_across_ranks(grads, [fired, stats * n], self.timings)
        fired_any, (n_global, *means) = extra[:-5] > 0, extra[-5:].tolist()
        for g in grads:
            g.div_(n_global)
        self.result = StepResult(*(m / n_global for m in means), n_tokens=int(n_global))
        return fired_any, int(n_global), torch.tensor(self.result.loss)


def data_parallel_step(sae: SAEBase, x: Float[Tensor, "batch d_in"], optimizer: torch.optim.Optimizer,
                       cfg: TrainConfig, step: int, base_lr: float,
                       timings: dict[str, float] | None = None) -> StepResult:
    """One data-parallel step (training_step with DataParallel hooks); every rank must call it.
    `timings["all_reduce"]` accumulates the seconds spent in the gradient all_reduce."""
    hooks = DataParallel(timings)
    training_step(sae, x, optimizer, cfg, step, base_lr, hooks=hooks)
    return hooks.result
