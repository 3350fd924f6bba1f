"""Features of a trained SAE: sparse codes of many activations, how often and how strongly each feature fires,
its top activations and its direct effect on the logits. Functions return data (tensors, NamedTuples); the
notebooks and the explorer widget plot them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import ArgumentError
from ..saes import SAEBase


class Encoded(NamedTuple):
    """Sparse codes of many activations: k values/indices per token, plus the routed expert (Switch)."""

    latent_acts: Float[Tensor, "n k"]
    latent_idx: Int[Tensor, "n k"]
    expert_idx: Int[Tensor, " n"] | None
    router_prob: Float[Tensor, " n"] | None
    """Probability of the chosen expert (the gate); None for non-Switch SAEs."""


@torch.no_grad()
def encode_all(sae: SAEBase, acts: Float[Tensor, "n d_in"], batch_size: int = 4096) -> Encoded:
    """Encode activations in chunks and keep only the sparse codes (TopK and Switch SAEs)."""
    if sae.cfg.arch == "relu":
        raise ArgumentError("encode_all needs a TopK or Switch SAE (ReLU codes are dense); use sae.encode instead.")
    vals, idx, experts, probs = [], [], [], []
    was_training = sae.training
    sae.eval()
    for chunk in acts.split(batch_size):
        out = sae(chunk.float())
        vals.append(out.latent_acts)
        idx.append(out.latent_idx)
        if out.expert_idx is not None:
            experts.append(out.expert_idx)
            probs.append(out.router_probs.max(-1).values)
    sae.train(was_training)
    cat = lambda xs: torch.cat(xs) if xs else None  # noqa: E731
    return Encoded(latent_acts=torch.cat(vals), latent_idx=torch.cat(idx), expert_idx=cat(experts),
                   router_prob=cat(probs))


def concat_codes(parts: Iterable[Encoded]) -> Encoded:
    parts = list(parts)
    cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
    return Encoded(**{f: cat([getattr(p, f) for p in parts]) for f in Encoded._fields})


def feature_activations(codes: Encoded, feature: int) -> Float[Tensor, " n"]:
    """Activation of one latent on every token (zeros where it is not among the token's k)."""
    hit = codes.latent_idx == feature
    return (codes.latent_acts * hit).sum(-1)


def top_activations(codes: Encoded, feature: int, top: int = 10) -> tuple[Tensor, Tensor]:
    """(values, token positions in the encoded set) of the feature's strongest activations, descending."""
    acts = feature_activations(codes, feature)
    values, positions = acts.topk(min(top, int((acts > 0).sum())))
    return values, positions


class FeatureStats(NamedTuple):
    frequency: Float[Tensor, " d_sae"]
    """Fraction of tokens on which the feature is active."""
    mean_activation: Float[Tensor, " d_sae"]
    """Mean activation over the tokens where it is active (0 for features that never fire)."""


def feature_stats(codes: Encoded, d_sae: int) -> FeatureStats:
    """How often (fraction of tokens) and how strongly (mean when active) each latent fires."""
    active = codes.latent_acts > 0
    idx, vals = codes.latent_idx[active], codes.latent_acts[active].float()
    counts = torch.bincount(idx, minlength=d_sae).float()
    sums = torch.zeros(d_sae).index_add_(0, idx.cpu(), vals.cpu())
    return FeatureStats(frequency=counts / max(len(codes.latent_idx), 1), mean_activation=sums / counts.clamp_min(1))


class FeatureSummary(NamedTuple):
    feature: int
    frequency: float
    mean_activation: float


def expert_top_features(stats: FeatureStats, expert: int, n_experts: int,
                        top: int = 10) -> list[FeatureSummary]:
    """The expert's features that fire most often (ties: stronger mean activation first); never-firing ones
    are left out."""
    d_sae = len(stats.frequency)
    if not 0 <= expert < n_experts:
        raise ArgumentError(f"expert={expert} is outside 0..{n_experts - 1}.")
    d_expert = d_sae // n_experts
    block = range(expert * d_expert, (expert + 1) * d_expert)
    rows = [FeatureSummary(feature=f, frequency=float(stats.frequency[f]),
                           mean_activation=float(stats.mean_activation[f]))
            for f in block if stats.frequency[f] > 0]
    return sorted(rows, key=lambda r: (-r.frequency, -r.mean_activation, r.feature))[:top]


def activation_histogram(values: Float[Tensor, " n"], bins: int = 20) -> tuple[Tensor, Tensor]:
    """(counts [bins], edges [bins + 1]) of the *non-zero* values (where the feature fires), over 0..max."""
    if bins < 1:
        raise ArgumentError(f"bins must be >= 1, got {bins}.")
    fired = values[values > 0].float().cpu()
    top = float(fired.max()) if fired.numel() else 1.0
    counts, edges = torch.histogram(fired, bins=bins, range=(0.0, top))
    return counts.long(), edges


@torch.no_grad()
def logit_effect(direction: Float[Tensor, " d_model"], W_U: Float[Tensor, "d_model vocab"],
                 top: int = 10) -> tuple[list[int], list[int]]:
    """Token ids most promoted / suppressed by adding `direction` straight to the unembedding input.

    The direct path only: it ignores the later blocks and the final LayerNorm's scale, a common first look
    (as in neuronpedia's logit lens for residual features).
    """
    logits = direction.float() @ W_U.float()
    return logits.topk(top).indices.tolist(), (-logits).topk(top).indices.tolist()


def expert_of_feature(feature: int, d_sae: int, n_experts: int) -> int:
    return feature // (d_sae // n_experts)
