"""Measures for the Switch variants of docs/design-notes.md §12 (chapter 07): what a shared expert learns, and
duplicates among the routed experts of any Switch SAE.

The question behind the shared expert (the reference repository's switch1on.py): routing each token to one
expert makes every expert relearn the features all tokens need (chapter 05); an always-on expert could hold them
once. If it does, more of its latents are dense (fire on a large share of tokens) than routed ones, and its
activation mass leans to the most common tokens.
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
    dense_rate: float
    """A latent counts as dense when it fires on more than this fraction of the tokens it can see."""
    shared_dense: float
    """Fraction of shared latents that are dense (over all tokens: every token sees the shared expert)."""
    routed_dense: float
    """Fraction of routed latents that are dense over their own expert's tokens (the only ones they can see)."""
    common_tokens: int
    """How many of the most frequent token ids count as "common"."""
    common_token_share: float
    """Fraction of the tokens that are common tokens."""
    shared_common_share: float
    """Fraction of the shared expert's activation mass on common tokens."""
    routed_common_share: float
    """Fraction of the routed experts' activation mass on common tokens."""
    shared_rates: Tensor
    """[shared_expert] fraction of all tokens each shared latent fires on."""
    routed_rates: Tensor
    """[d_sae - shared_expert] fraction of its own expert's tokens each routed latent fires on."""


def shared_expert_use(codes: Encoded, d_sae: int, shared_expert: int, n_experts: int,
                      token_id: Int[Tensor, " n"], common_tokens: int = 20, dense_rate: float = 0.1
                      ) -> SharedExpertUse:
    """Dense latents and where the activation mass goes, shared expert vs routed experts (see SharedExpertUse).

    Mean firing rates say nothing here: a TopK of k_shared over the shared expert's latents fires k_shared /
    shared_expert of them per token on average, fixed by the config, as k / d_expert is for a routed expert. What
    can differ is how the firing is spread: a few dense latents, or many rare ones."""
    if not 0 < shared_expert < d_sae or (d_sae - shared_expert) % n_experts:
        raise ArgumentError(f"shared_expert_use needs 0 < shared_expert < d_sae with d_sae - shared_expert split "
                            f"into n_experts blocks; got shared_expert={shared_expert}, d_sae={d_sae}, "
                            f"n_experts={n_experts}.")
    if codes.expert_idx is None:
        raise ArgumentError("shared_expert_use needs the codes of a Switch SAE (codes.expert_idx is None).")
    if len(token_id) != len(codes.latent_idx):
        raise ArgumentError(f"token_id has {len(token_id)} entries but codes has {len(codes.latent_idx)} tokens.")
    d_routed = d_sae - shared_expert
    idx, val = codes.latent_idx, codes.latent_acts.float()
    is_shared = idx >= d_routed
    n = idx.shape[0]
    fires = torch.bincount(idx[val > 0], minlength=d_sae).float()
    # tokens each expert sees: with top-e, every one of a token's e choices counts
    seen = torch.bincount(codes.expert_idx.reshape(-1), minlength=n_experts).float().clamp_min(1)
    routed_rates = fires[:d_routed] / seen.repeat_interleave(d_routed // n_experts)
    counts = torch.bincount(token_id)
    common = counts.topk(min(common_tokens, int((counts > 0).sum()))).indices
    is_common_token = torch.isin(token_id, common)
    is_common = is_common_token[:, None].expand_as(idx)
    shared_val, routed_val = val * is_shared, val * ~is_shared
    return SharedExpertUse(
        shared_mass=float(shared_val.sum() / val.sum().clamp_min(1e-30)), dense_rate=dense_rate,
        shared_dense=float((fires[d_routed:] / n > dense_rate).float().mean()),
        routed_dense=float((routed_rates > dense_rate).float().mean()), common_tokens=len(common),
        common_token_share=float(is_common_token.float().mean()),
        shared_common_share=float((shared_val * is_common).sum() / shared_val.sum().clamp_min(1e-30)),
        routed_common_share=float((routed_val * is_common).sum() / routed_val.sum().clamp_min(1e-30)),
        shared_rates=fires[d_routed:] / n, routed_rates=routed_rates)


def shared_expert_verdict(use: SharedExpertUse) -> str:
    """One line read from the numbers: does the shared expert hold dense, common-token features?"""
    denser = use.shared_dense > 2 * use.routed_dense and use.shared_dense > 0
    common = use.shared_common_share > 1.2 * use.routed_common_share
    reading = ("it does hold dense, common-token features." if denser and common else
               "its latents are denser, but its mass does not lean to common tokens." if denser else
               "its mass leans to common tokens, but its latents are not denser." if common else
               "it is not a store of dense or common-token features here.")
    return (f"The shared expert carries {use.shared_mass:.1%} of the activation mass. {use.shared_dense:.1%} of its "
            f"latents fire on more than {use.dense_rate:.0%} of tokens, against {use.routed_dense:.1%} of routed "
            f"latents on their own expert's tokens. {use.shared_common_share:.1%} of its mass is on the "
            f"{use.common_tokens} most common tokens ({use.common_token_share:.1%} of tokens), against "
            f"{use.routed_common_share:.1%} for the routed experts: {reading}")


class RoutedDuplicates(NamedTuple):
    twins: float
    """Fraction of routed latents whose decoder row has a cosine > threshold twin in another routed expert."""
    mean_best_cos: float
    """Mean over routed latents of the best cosine to a row of another routed expert (threshold-free)."""


def routed_duplicates(W_dec: Tensor, n_experts: int, d_routed: int, threshold: float = 0.9) -> RoutedDuplicates:
    """Duplicates among the routed experts only (a shared expert's rows are left out: no router splits them)."""
    best = cross_block_cosine(W_dec[:d_routed], n_experts)
    return RoutedDuplicates(twins=float((best > threshold).float().mean()), mean_best_cos=float(best.mean()))
