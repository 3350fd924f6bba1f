"""Training loop for every architecture (spec §5): Adam, LR decay over the last 20%, clip 1.0, unit-norm decoder.

One step is `training_step` (also timed by `python -m switch_sae_mini.bench`): set b_dec (and b_router) from the
first batch; renormalise decoder rows; forward + backward; clip gradients; remove the decoder gradient parallel to
each row; Adam step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from . import metrics
from .checkpoint import load_training_state, save_training_state
from .config import SAEConfig, TrainConfig
from .sae import InputError, SAEBase, make_sae

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


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """1 until decay_start * n_steps, then linear to 0 at n_steps (no warm-up, spec §5)."""
    decay_from = int(cfg.decay_start * cfg.n_steps)
    if step < decay_from or cfg.n_steps == decay_from:
        return 1.0
    return max(0.0, (cfg.n_steps - step) / (cfg.n_steps - decay_from))


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


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm  # notebook-aware bar

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def make_optimizer(sae: SAEBase, lr: float) -> torch.optim.Adam:
    """Adam (spec §5). The fused implementation updates all parameters in one pass: on CPU it is several times
    faster than the per-tensor loop, which otherwise dominates a Switch SAE's step (python -m switch_sae_mini.bench)."""
    params = list(sae.parameters())
    fused = all(p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)
                and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), fused=fused or None)


def training_step(sae: SAEBase, x: Float[Tensor, "batch d_in"], optimizer: torch.optim.Optimizer,
                  cfg: TrainConfig, step: int, base_lr: float, phases: dict[str, float] | None = None):
    """One optimisation step on a clean float32 batch; returns the ForwardOutput (before the update).

    Order as the reference code: set b_dec (and b_router) from the first batch; renormalise decoder rows;
    forward + backward; clip; remove the decoder gradient parallel to each row; Adam; dead-latent counters.
    phases, if given, accumulates seconds spent in "forward", "backward" and "optimizer" (the benchmark's split).
    """
    clock = time.perf_counter
    t0 = clock()
    if not bool(sae.initialized):
        sae.init_from_batch(x)
    if sae.uses_decoder_norm:
        sae.normalize_decoder()
    for group in optimizer.param_groups:
        group["lr"] = base_lr * lr_factor(step, cfg)
    if sae.cfg.arch == "relu":
        warm = max(1, int(cfg.l1_warmup * cfg.n_steps))
        out = sae(x, l1_scale=min(1.0, (step + 1) / warm) if cfg.l1_warmup > 0 else 1.0)
    else:
        out = sae(x)
    if not torch.isfinite(out.loss):
        raise FloatingPointError(f"loss became {float(out.loss)} at step {step}; lower the learning rate "
                                 f"(TrainConfig.lr) or check the activations' scale.")
    t1 = clock()
    out.loss.backward()
    t2 = clock()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
    if sae.uses_decoder_norm:
        sae.project_decoder_grad()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        sae.update_dead_counter(metrics.fired_latents(out), x.shape[0])
    if phases is not None:
        for name, seconds in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", clock() - t2)):
            phases[name] = phases.get(name, 0.0) + seconds
    return out


def train(sae: SAEBase | SAEConfig, batches: Iterable[Tensor], cfg: TrainConfig | None = None, *,
          device: str | torch.device | None = None, callbacks: Iterable[Callback] = (),
          checkpoint_dir: str | Path | None = None, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train `sae` on an iterable of activation batches [batch, d_in] for cfg.n_steps steps.

    sae: a module from make_sae, or an SAEConfig (then built after seeding with cfg.seed).
    callbacks: called as fn(step, row, sae) at every logged step (e.g. a wandb logger).
    checkpoint_dir + resume=True continues from the checkpoint there; the first `step` batches of `batches` are
    skipped so that a deterministic iterable yields the same run as an uninterrupted one.
    """
    cfg = cfg or TrainConfig()
    if isinstance(sae, SAEConfig):
        torch.manual_seed(cfg.seed)
        sae = make_sae(sae)
    if device is not None:
        sae.to(device)
    device = next(sae.parameters()).device
    sae.train()
    arch = sae.cfg.arch
    base_lr = cfg.learning_rate(sae.cfg.d_sae)
    optimizer = make_optimizer(sae, base_lr)

    start_step, history = 0, []
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir= pointing at a training checkpoint.")
        state = load_training_state(checkpoint_dir, sae, optimizer)
        start_step, history = state["step"], state["history"]
    batch_iter = iter(batches)
    for _ in range(start_step):  # replay the data stream up to where the checkpoint stopped
        next(batch_iter, None)

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
                window_experts += torch.bincount(out.expert_idx, minlength=sae.cfg.n_experts)
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
            save_training_state(checkpoint_dir, sae, optimizer,
                                {"step": step + 1, "train_config": cfg.to_dict(), "history": history})
    if bar is not None:
        bar.close()
    sae.eval()
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
        share = window_experts / window_experts.sum().clamp_min(1)
        row["expert_balance"] = metrics.balance(share)
        row["expert_share"] = [round(v, 5) for v in share.tolist()]  # per-expert load over the logging window
    return row
