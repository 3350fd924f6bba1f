"""Reconstruction and sparsity metrics (docs/design-notes.md §6), one small function each.

"mse_summed" is the paper's plotted MSE: squared error summed over the d_in dimensions, averaged over tokens.
FVU (fraction of variance unexplained) divides the summed squared error by the batch's total variance.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import ArgumentError
from .base import ForwardOutput, SAEBase
from .routing import expert_counts


def mse_summed(x_hat: Float[Tensor, "batch d_in"], x: Float[Tensor, "batch d_in"]) -> float:
    """Squared error summed over dimensions, mean over tokens (the paper's "Reconstruction MSE")."""
    return float((x_hat - x).detach().pow(2).sum(-1).mean())


def fvu(x_hat: Float[Tensor, "batch d_in"], x: Float[Tensor, "batch d_in"]) -> float:
    """Fraction of variance unexplained: sum (x - x_hat)^2 / sum (x - mean(x))^2 (1 - FVU = variance explained)."""
    x2 = x.reshape(-1, x.shape[-1])
    total = (x2 - x2.mean(0)).pow(2).sum()
    return float((x_hat.detach().reshape_as(x2) - x2).pow(2).sum() / total.clamp_min(1e-12))


def l0(out: ForwardOutput) -> float:
    """Mean number of nonzero latents per token."""
    return float((out.latent_acts != 0).sum(-1).float().mean())


def fired_latents(out: ForwardOutput) -> Tensor:
    """Bool [d_sae]: which latents were nonzero for at least one token of the batch."""
    if out.latent_idx is None:
        return fire_counts(out) > 0
    return fired_mask(out.latent_idx, out.latent_acts, out.d_sae)


def fired_mask(latent_idx: Tensor, latent_acts: Tensor, d_sae: int) -> Tensor:
    """Bool [d_sae] from sparse codes: latents with a nonzero value anywhere. One weighted bincount instead of a
    boolean gather (this runs every training step)."""
    active = (latent_acts != 0).reshape(-1).to(torch.float32)
    return torch.bincount(latent_idx.reshape(-1), weights=active, minlength=d_sae) > 0


def fire_counts(out: ForwardOutput) -> Tensor:
    """Long [d_sae]: on how many tokens each latent was nonzero."""
    if out.latent_idx is None:
        return (out.latent_acts.reshape(-1, out.d_sae) != 0).sum(0)
    active = out.latent_idx[out.latent_acts != 0]
    return torch.bincount(active.reshape(-1), minlength=out.d_sae)


def dead_fraction(sae: SAEBase) -> float:
    """Fraction of latents that have not fired within the last cfg.dead_after_tokens training tokens."""
    return float(sae.dead_mask().float().mean())


def dense_fraction(fire_count: Tensor, n_tokens: int, threshold: float = 0.1) -> float:
    """Fraction of latents that fire on more than `threshold` of tokens ("dense" latents)."""
    return float((fire_count.float() / max(n_tokens, 1) > threshold).float().mean())


def expert_share(expert_idx: Tensor, n_experts: int) -> Tensor:
    """Float [n_experts]: fraction of tokens routed to each expert."""
    return share_of(expert_counts(expert_idx, n_experts))


def share_of(counts: Tensor) -> Tensor:
    """Counts per expert -> fraction of tokens per expert (zeros when there are no tokens)."""
    counts = counts.float()
    return counts / counts.sum().clamp_min(1)


def balance(share: Tensor) -> float:
    """max share x E: 1.0 is perfect balance, E means every token went to one expert (E / e at most with top-e
    routing, whose shares count every choice)."""
    return float(share.max() * share.numel())


@torch.no_grad()
def evaluate_sae(sae: SAEBase, batches: Iterable[Tensor], max_batches: int | None = None) -> dict[str, float]:
    """Metrics over several held-out batches (token-weighted), in eval mode; the SAE's mode is restored."""
    was_training = sae.training
    sae.eval()
    device = next(sae.parameters()).device
    sq_err = total_var_sum = n_tokens = l0_sum = lb_sum = n_batches = 0.0
    fire = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=device)
    experts = torch.zeros(sae.cfg.n_experts, device=device)
    xs_sum = xs_sq_sum = 0.0
    for i, x in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        x = x.to(device, torch.float32).reshape(-1, sae.cfg.d_in)
        out = sae(x)
        n = x.shape[0]
        sq_err += float((out.x_hat - x).pow(2).sum())
        xs_sum = xs_sum + x.sum(0)
        xs_sq_sum = xs_sq_sum + x.pow(2).sum(0)
        n_tokens += n
        l0_sum += l0(out) * n
        lb_sum += float(out.lb_loss) * n
        fire += fire_counts(out)
        if out.expert_idx is not None:
            experts += expert_counts(out.expert_idx, sae.cfg.n_experts)
        n_batches += 1
    sae.train(was_training)
    if n_tokens == 0:
        raise ArgumentError("evaluate_sae got no batches; pass a non-empty iterable of [batch, d_in] tensors.")
    total_var_sum = float((xs_sq_sum - xs_sum.pow(2) / n_tokens).sum())  # sum over dims of n * Var
    share = share_of(experts)
    result = {
        "mse_summed": sq_err / n_tokens,
        "mse": sq_err / (n_tokens * sae.cfg.d_in),
        "fvu": sq_err / max(total_var_sum, 1e-12),
        "l0": l0_sum / n_tokens,
        "never_fired_fraction": float((fire == 0).float().mean()),
        "dense_fraction": dense_fraction(fire, int(n_tokens)),
        "n_tokens": int(n_tokens),
    }
    if sae.cfg.arch == "switch":
        result["lb_loss"] = lb_sum / n_tokens
        result["expert_balance"] = balance(share)
    return result
