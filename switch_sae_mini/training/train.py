"""Training loop for every architecture (docs/design-notes.md §3): Adam, LR decay over the last 20%, clip 1.0,
unit-norm decoder. One step is `step.training_step` (also timed by `python -m switch_sae_mini bench`); this module
feeds it batches, logs metrics, shows progress and checkpoints.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..config import ConfigError, SAEConfig, TrainConfig
from ..errors import TrainingDivergedError
from ..saes import InputError, SAEBase, make_sae, metrics
from ..saes.routing import expert_counts
from .checkpoint import has_checkpoint, load_training_state, save_training_state
from .step import make_optimizer, training_step

Callback = Callable[[int, dict[str, float], SAEBase], None]


class TrainResult(NamedTuple):
    sae: SAEBase
    history: list[dict[str, float]]
    """One row per logged step: step, tokens, loss, mse, fvu, l0, dead_fraction, lr (+ lb_loss, expert_balance,
    expert_share for Switch SAEs)."""
    final: dict[str, float]
    """The last logged row."""
    wall_time: float
    """Seconds spent in this call (excluding time before a resume)."""
    steps: int


def _check_batch(x: Any, step: int, d_in: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise InputError(f"batch {step} is a {type(x).__name__}, not a torch.Tensor of shape [batch, {d_in}].")
    if x.ndim < 2 or x.shape[-1] != d_in:
        raise InputError(f"batch {step} has shape {tuple(x.shape)}; the SAE needs [batch, {d_in}] (d_in={d_in}).")
    if x.numel() == 0:
        raise InputError(f"batch {step} is empty (shape {tuple(x.shape)}); every batch needs at least one token.")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"batch {step} contains {bad} NaN/inf values; clean the activations (e.g. check the "
                         f"model's dtype - fp16 overflows) before training.")
    return x.reshape(-1, d_in)


def _check_finite_weights(sae: SAEBase, steps_done: int) -> None:
    bad = [name for name, p in sae.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise TrainingDivergedError(f"parameters {bad} became NaN/inf by step {steps_done} (the update of a finite "
                                    f"loss overflowed); lower the learning rate (TrainConfig.lr). The checkpoint "
                                    f"was not written; earlier ones are intact.")


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm  # notebook-aware bar

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def train(sae: SAEBase | SAEConfig, batches: Iterable[Tensor], cfg: TrainConfig | None = None, *,
          device: str | torch.device | None = None, callbacks: Iterable[Callback] = (),
          checkpoint_dir: str | Path | None = None, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train `sae` on an iterable of activation batches [batch, d_in] for cfg.n_steps steps.

    sae: a module from make_sae, or an SAEConfig (then built after seeding with cfg.seed).
    callbacks: called as fn(step, row, sae) at every logged step (e.g. a wandb logger).
    checkpoint_dir: training snapshots are written there every cfg.checkpoint_every steps and at the end, each
    atomic as a whole (training/snapshots.py); cfg.keep_checkpoints of them are kept.
    resume=True continues from the newest complete training snapshot there (from step 0 if there is none yet);
    the first `step` batches of `batches` are skipped so that a deterministic iterable yields the same run as an
    uninterrupted one.
    """
    cfg = cfg or TrainConfig()
    if isinstance(sae, SAEConfig):
        torch.manual_seed(cfg.seed)
        sae = make_sae(sae)
    if device is not None:
        sae.to(device)
    device = next(sae.parameters()).device
    sae.train()
    base_lr = cfg.learning_rate(sae.cfg.d_sae)
    optimizer = make_optimizer(sae, base_lr)

    start_step, history, state = 0, [], {}
    if resume:
        if checkpoint_dir is None:
            raise ConfigError("resume=True needs checkpoint_dir= pointing at a training checkpoint.")
        if has_checkpoint(checkpoint_dir):
            state = load_training_state(checkpoint_dir, sae, optimizer)
            start_step, history = state["step"], state["history"]
        else:  # killed before its first checkpoint: nothing to resume, so the run starts over
            warnings.warn(f"resume=True but {checkpoint_dir} holds no checkpoint yet; training from step 0.",
                          RuntimeWarning, stacklevel=2)
    batch_iter = iter(batches)
    resumable = callable(getattr(batch_iter, "state_dict", None)) and callable(
        getattr(batch_iter, "load_state_dict", None))
    if start_step and resumable and "data_state" in state:
        batch_iter.load_state_dict(state["data_state"])  # continue the stream where the checkpoint left it
    elif start_step:
        warnings.warn(f"resuming at step {start_step}: the batch iterable has no state_dict(), so its first "
                      f"{start_step} batches are drawn again and dropped (for an ActivationBuffer stream that re-runs "
                      f"the language model on them). ActivationBuffer.batches() and DiskActivations.batches() "
                      f"resume without replaying.", RuntimeWarning, stacklevel=2)
        for _ in range(start_step):
            next(batch_iter, None)
    if callable(getattr(batch_iter, "provenance", None)):
        sae.provenance = {**sae.provenance, **batch_iter.provenance()}
    callbacks = list(callbacks)
    bar = _progress(cfg.n_steps, start_step, progress)
    window_tokens = 0
    window_experts = torch.zeros(sae.cfg.n_experts, device=device)
    t0 = time.perf_counter()
    for step in range(start_step, cfg.n_steps):
        try:
            x = next(batch_iter)
        except StopIteration:
            raise InputError(f"the batch iterable ran out after {step} batches but TrainConfig.n_steps="
                             f"{cfg.n_steps}; pass more data or lower n_steps.") from None
        x = _check_batch(x, step, sae.cfg.d_in).to(device, torch.float32)
        out = training_step(sae, x, optimizer, cfg, step, base_lr)

        with torch.no_grad():
            window_tokens += x.shape[0]
            if out.expert_idx is not None:
                window_experts += expert_counts(out.expert_idx, sae.cfg.n_experts)
            last = step == cfg.n_steps - 1
            if (step + 1) % cfg.log_every == 0 or last:
                row = _log_row(sae, out, x, step, optimizer, window_experts)
                row["tokens"] = (history[-1]["tokens"] if history else 0) + window_tokens
                history.append(row)
                window_tokens = 0
                window_experts.zero_()
                for fn in callbacks:
                    fn(step, row, sae)
                if bar is not None:
                    bar.set_postfix({k: f"{row[k]:.3g}" for k in ("loss", "fvu", "l0", "dead_fraction",
                                                                   "expert_balance") if k in row})
        if bar is not None:
            bar.update(1)
        save_now = cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0
        if checkpoint_dir is not None and (save_now or step == cfg.n_steps - 1):
            _check_finite_weights(sae, step + 1)  # never write a checkpoint that cannot be resumed from
            sae.provenance["tokens_trained"] = (history[-1]["tokens"] if history else 0) + window_tokens
            save_training_state(checkpoint_dir, sae, optimizer,
                                {"step": step + 1, "train_config": cfg.to_dict(), "history": history},
                                keep=cfg.keep_checkpoints, data_state=batch_iter.state_dict() if resumable else None)
    if bar is not None:
        bar.close()
    sae.eval()
    sae.provenance["tokens_trained"] = (history[-1]["tokens"] if history else 0) + window_tokens
    final = history[-1] if history else {}
    return TrainResult(sae, history, final, time.perf_counter() - t0, cfg.n_steps)


def _log_row(sae: SAEBase, out, x: Tensor, step: int, optimizer, window_experts: Tensor) -> dict[str, float]:
    row = {
        "step": step + 1,
        "loss": float(out.loss),
        "mse": float(out.mse_loss),
        "mse_summed": float(out.mse_loss) * sae.cfg.d_in,
        "fvu": metrics.fvu(out.x_hat, x),
        "l0": metrics.l0(out),
        "dead_fraction": metrics.dead_fraction(sae),
        "lr": optimizer.param_groups[0]["lr"],
    }
    if sae.cfg.arch == "relu":
        row["l1_loss"] = float(out.l1_loss)
    if sae.cfg.arch == "topk":
        row["auxk_loss"] = float(out.auxk_loss)
    if sae.cfg.arch == "switch":
        row["lb_loss"] = float(out.lb_loss)
        share = metrics.share_of(window_experts)
        row["expert_balance"] = metrics.balance(share)
        row["expert_share"] = [round(v, 5) for v in share.tolist()]  # per-expert load over the logging window
    return row
