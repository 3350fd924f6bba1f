"""Measures for the Switch variants of docs/design-notes.md §12 (chapter 07): what a shared expert learns, and
duplicates among the routed experts of any Switch SAE.

The question behind the shared expert (the reference repository's switch1on.py): routing each token to one
expert makes every expert relearn the features all tokens need (chapter 05); an always-on expert could hold them
once. If it does, its latents fire far more often than routed ones and its activation mass sits on the most
common tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Int
from torch import Tensor

from ..errors import ArgumentError
from .controls import cross_block_cosine
from .features import Encoded


class SharedExpertUse(NamedTuple):
    shared_mass: float
    """Fraction of all latent activation mass (sum of values) that the shared expert carries."""
    shared_firing: float
    """Median over shared latents of the fraction of tokens each fires on."""
    routed_firing: float
    """The same for the routed latents (each counted over all tokens, so about 1/E of a shared latent's)."""
    routed_firing_in_expert: float
    """Median routed-latent firing rate over the tokens of its own expert: the fair comparison with shared."""
    common_tokens: int
    """How many of the most frequent token ids count as "common"."""
    common_token_share: float
    """Fraction of the tokens that are common tokens."""
    shared_common_share: float
    """Fraction of the shared expert's activation mass on common tokens."""
    routed_common_share: float
    """Fraction of the routed experts' activation mass on common tokens."""


def shared_expert_use(codes: Encoded, d_sae: int, shared_expert: int, n_experts: int,
                      token_id: Int[Tensor, " n"], common_tokens: int = 20) -> SharedExpertUse:
    """Firing rates and where the activation mass goes, shared expert vs routed experts (see SharedExpertUse)."""
    if not 0 < shared_expert < d_sae:
        raise ArgumentError(f"shared_expert_use needs 0 < shared_expert < d_sae; got {shared_expert} of {d_sae}.")
    if len(token_id) != len(codes.latent_idx):
        raise ArgumentError(f"token_id has {len(token_id)} entries but codes has {len(codes.latent_idx)} tokens.")
    d_routed = d_sae - shared_expert
    idx, val = codes.latent_idx, codes.latent_acts.float()
    active = val > 0
    is_shared = idx >= d_routed
    n = idx.shape[0]
    fires = torch.bincount(idx[active], minlength=d_sae).float()
    experts = codes.expert_idx if codes.expert_idx.ndim == 1 else codes.expert_idx[:, 0]
    per_expert_tokens = torch.bincount(experts, minlength=n_experts).float().clamp_min(1)
    routed_rates = fires[:d_routed] / per_expert_tokens.repeat_interleave(d_routed // n_experts)
    common = torch.bincount(token_id).topk(min(common_tokens, int(token_id.max()) + 1)).indices
    is_common = torch.isin(token_id, common)[:, None].expand_as(idx)
    shared_val, routed_val = val * is_shared, val * ~is_shared
    return SharedExpertUse(
        shared_mass=float(shared_val.sum() / val.sum().clamp_min(1e-30)),
        shared_firing=float((fires[d_routed:] / n).median()), routed_firing=float((fires[:d_routed] / n).median()),
        routed_firing_in_expert=float(routed_rates.median()), common_tokens=len(common),
        common_token_share=float(torch.isin(token_id, common).float().mean()),
        shared_common_share=float((shared_val * is_common).sum() / shared_val.sum().clamp_min(1e-30)),
        routed_common_share=float((routed_val * is_common).sum() / routed_val.sum().clamp_min(1e-30)))


def shared_expert_verdict(use: SharedExpertUse) -> str:
    """One line read from the numbers: does the shared expert hold the common features?"""
    busier = use.shared_firing / max(use.routed_firing_in_expert, 1e-12)
    common_bias = use.shared_common_share / max(use.routed_common_share, 1e-12)
    holds = busier > 2 and common_bias > 1.2
    return (f"The shared expert carries {use.shared_mass:.1%} of the activation mass. Its median latent fires on "
            f"{use.shared_firing:.2%} of tokens, {busier:.1f}x a routed latent within its own expert's tokens "
            f"({use.routed_firing_in_expert:.2%}). {use.shared_common_share:.1%} of its mass is on the "
            f"{use.common_tokens} most common tokens ({use.common_token_share:.1%} of tokens), against "
            f"{use.routed_common_share:.1%} for the routed experts: "
            + ("it does hold dense, common-token features." if holds else
               "it is not mainly a store of common-token features here."))


class RoutedDuplicates(NamedTuple):
    twins: float
    """Fraction of routed latents whose decoder row has a cosine > threshold twin in another routed expert."""
    mean_best_cos: float
    """Mean over routed latents of the best cosine to a row of another routed expert (threshold-free)."""


def routed_duplicates(W_dec: Tensor, n_experts: int, d_routed: int, threshold: float = 0.9) -> RoutedDuplicates:
    """Duplicates among the routed experts only (a shared expert's rows are left out: no router splits them)."""
    best = cross_block_cosine(W_dec[:d_routed], n_experts)
    return RoutedDuplicates(twins=float((best > threshold).float().mean()), mean_best_cos=float(best.mean()))
