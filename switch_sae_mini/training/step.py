"""One optimisation step, shared by single-process, data-parallel and expert-parallel training.

The order is the reference code's (docs/design-notes.md §3): set b_dec (and b_router) from the first batch;
renormalise decoder rows; set the LR; forward + backward; clip; remove the decoder gradient parallel to each row;
Adam; dead-latent counters. `training_step` owns that order. What differs between single-process and distributed
training -- which batch sets the biases, the loss terms that need global statistics, the gradient reduction, the
clip norm -- is a `StepHooks` object (training/distributed.py and training/expert_parallel.py subclass it).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..config import TrainConfig
from ..errors import TrainingDivergedError
from ..native.allocator import keep_freed_memory
from ..saes import metrics
from ..saes.base import SAEBase


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """1 until decay_start * n_steps, then linear to 0 at n_steps (no warm-up; docs/design-notes.md §3)."""
    decay_from = int(cfg.decay_start * cfg.n_steps)
    if step < decay_from or cfg.n_steps == decay_from:
        return 1.0
    return max(0.0, (cfg.n_steps - step) / (cfg.n_steps - decay_from))


def l1_scale(step: int, cfg: TrainConfig) -> float:
    """ReLU SAEs: the L1 coefficient ramps up linearly over the first l1_warmup of the steps."""
    if cfg.l1_warmup <= 0:
        return 1.0
    return min(1.0, (step + 1) / max(1, int(cfg.l1_warmup * cfg.n_steps)))


def make_optimizer(sae: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam (docs/design-notes.md §3). The fused implementation updates all parameters in one pass: on CPU it is
    several times faster than the per-tensor loop, which otherwise dominates a Switch SAE's step
    (python -m switch_sae_mini bench)."""
    params = list(sae.parameters())
    fused = all(p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)
                and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), fused=fused or None)


def check_finite(loss: float, step: int) -> None:
    """Stop at the step whose loss is NaN/inf, before the optimizer applies it."""
    if not torch.isfinite(torch.as_tensor(loss)):
        raise TrainingDivergedError(f"loss became {float(loss)} at step {step}; lower the learning rate "
                                    f"(TrainConfig.lr) or check the activations' scale. Checkpoints written "
                                    f"before this step are intact.")


class StepHooks:
    """The single-process behaviour of each step phase; distributed training overrides some of them."""

    def init_batch(self, x: Tensor) -> Tensor:
        """The batch whose geometric median initialises b_dec (and b_router)."""
        return x

    def forward(self, sae, x: Tensor, step: int, cfg: TrainConfig) -> tuple[Any, Tensor]:
        """(forward output, the loss to backpropagate)."""
        out = sae(x, l1_scale=l1_scale(step, cfg)) if sae.cfg.arch == "relu" else sae(x)
        return out, out.loss

    def reduce(self, sae, out, x: Tensor, loss: Tensor) -> tuple[Tensor, int, Tensor]:
        """After backward: (which latents fired [d_sae] bool, tokens in the step, the step's loss value)."""
        return metrics.fired_latents(out), x.shape[0], loss.detach()

    def clip(self, sae, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(sae.parameters(), max_norm)


LOCAL = StepHooks()


def training_step(sae: SAEBase, x: Float[Tensor, "batch d_in"], optimizer: torch.optim.Optimizer,
                  cfg: TrainConfig, step: int, base_lr: float, phases: dict[str, float] | None = None,
                  hooks: StepHooks = LOCAL):
    """One optimisation step on a clean float32 batch; returns the forward output (before the update).

    phases, if given, accumulates seconds spent in "forward", "backward" and "optimizer" (the benchmark's split).
    """
    keep_freed_memory()  # once per process: reuse the pages of last step's gradients (native/allocator.py)
    clock = time.perf_counter
    t0 = clock()
    if not bool(sae.initialized):
        sae.init_from_batch(hooks.init_batch(x))
    if sae.uses_decoder_norm:
        sae.normalize_decoder()
    for group in optimizer.param_groups:
        group["lr"] = base_lr * lr_factor(step, cfg)
    out, loss = hooks.forward(sae, x, step, cfg)
    t1 = clock()
    loss.backward()
    t2 = clock()
    fired, n_tokens, loss_value = hooks.reduce(sae, out, x, loss)
    check_finite(loss_value, step)
    if cfg.grad_clip > 0:
        hooks.clip(sae, cfg.grad_clip)
    if sae.uses_decoder_norm:
        sae.project_decoder_grad()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        sae.update_dead_counter(fired, n_tokens)
    if phases is not None:
        for name, seconds in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", clock() - t2)):
            phases[name] = phases.get(name, 0.0) + seconds
    return out
