"""A ReLU SAE initialised, evaluated and optimised by the learner's own chapter-01 functions, so the chapter can
compare it with the package's `ssm.train` on the same seed and batches.

    run = train_learner_relu(cfg, batches, train_cfg, relu_init=relu_init, relu_encode=relu_encode,
                             l1_penalty=l1_penalty, relu_sae_loss=relu_sae_loss, adam_update=adam_update,
                             l1_warmup_scale=l1_warmup_scale, use_reference=USE_REFERENCE)

The loop is the package's training step for a ReLU SAE (training/step.py) with every part the chapter's
exercises cover written by the learner: the initialisation, the loss (through their encoder and L1 penalty), the
L1 warm-up and Adam. What stays the package's is what the chapter does not ask for: gradient clipping at
TrainConfig.grad_clip and the learning-rate decay over the last 20 % of steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
from torch import Tensor

from ..config import SAEConfig, TrainConfig
from ..errors import TrainingDivergedError
from ..saes import InputError, ReLUSAE
from ..training.step import lr_factor
from ..training.train import _progress
from .exercises import substituted
from .parts import choose_parts

PARTS = ("relu_init", "relu_encode", "l1_penalty", "relu_sae_loss", "adam_update", "l1_warmup_scale")


class LearnerRun(NamedTuple):
    sae: ReLUSAE
    """A package ReLUSAE holding the learned weights (so evaluate_sae and plotting work on it)."""
    losses: list[float]
    """The training loss at every step."""
    wall_time: float


def train_learner_relu(cfg: SAEConfig, batches: Iterable[Tensor], train_cfg: TrainConfig, *,
                       use_reference: dict[str, bool] | None = None, progress: bool = False,
                       **parts: Callable) -> LearnerRun:
    """Train a ReLU SAE for train_cfg.n_steps with the learner's parts (use_reference[name] True: the package's)."""
    if cfg.arch != "relu":
        raise InputError(f"train_learner_relu trains a ReLU SAE; got SAEConfig.arch={cfg.arch!r} (use arch='relu').")
    chosen = choose_parts(PARTS, parts, use_reference, "train_learner_relu")
    init, loss_fn, adam, warmup = (chosen[n] for n in ("relu_init", "relu_sae_loss", "adam_update",
                                                       "l1_warmup_scale"))
    # The learner's relu_sae_loss calls relu_encode and l1_penalty by name: the chosen ones (theirs, or the
    # reference) are put there for the length of the run.
    names = ("W_enc", "b_enc", "W_dec", "b_dec")
    params = [t.detach().float().clone().requires_grad_() for t in init(cfg.d_in, cfg.d_sae, train_cfg.seed)]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    base_lr = train_cfg.learning_rate(cfg.d_sae)
    batch_iter, losses = iter(batches), []
    bar = _progress(train_cfg.n_steps, 0, progress)
    t0 = time.perf_counter()
    with substituted(loss_fn, ("relu_encode", "l1_penalty"), chosen):
        for step in range(train_cfg.n_steps):
            x = next(batch_iter).float()
            scale = float(warmup(step, train_cfg.n_steps, train_cfg.l1_warmup))
            loss = loss_fn(x, *params, cfg.l1_coeff * scale)[0]
            loss.backward()
            losses.append(loss.item())
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"your SAE's loss became {loss.item()} at step {step}: check "
                                            "relu_sae_loss and adam_update (or set their USE_REFERENCE entries to "
                                            "True).")
            if train_cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
            lr = base_lr * lr_factor(step, train_cfg)
            with torch.no_grad():
                for i, p in enumerate(params):
                    grad = p.grad if p.grad is not None else torch.zeros_like(p)
                    new, m, v = adam(p.detach().clone(), grad, *moments[i], step + 1, lr)
                    p.copy_(new)
                    moments[i] = (m, v)
                    p.grad = None
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    sae = ReLUSAE(cfg)
    with torch.no_grad():
        for name, p in zip(names, params):
            getattr(sae, name).copy_(p)
        sae.initialized.fill_(True)
    return LearnerRun(sae.eval(), losses, time.perf_counter() - t0)
