"""Experts of a Switch SAE: which tokens and domains each expert receives (Mudide et al. 2024 ask whether experts
specialise). Token shares per expert are saes.metrics.expert_share.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def domain_profile(expert_idx: Int[Tensor, " n"], domain: Int[Tensor, " n"], n_experts: int,
                   n_domains: int) -> Float[Tensor, "n_experts n_domains"]:
    """Row e: the domain mix of the tokens expert e receives (rows sum to 1; zero rows for unused experts)."""
    counts = torch.zeros(n_experts, n_domains)
    counts.index_put_((expert_idx.cpu(), domain.cpu()), torch.ones(len(expert_idx)), accumulate=True)
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def specialisation(profile: Float[Tensor, "n_experts n_domains"], usage: Float[Tensor, " n_experts"]) -> float:
    """Usage-weighted mean of each expert's largest domain share: 1/n_domains-ish when experts ignore domain,
    1.0 when every expert sees a single domain."""
    return float((profile.max(1).values * usage).sum() / usage.sum().clamp_min(1e-12))


def top_tokens_per_expert(expert_idx: Int[Tensor, " n"], token_id: Int[Tensor, " n"], expert: int,
                          top: int = 10, min_count: int = 3) -> list[tuple[int, int, float]]:
    """Tokens routed to `expert` most often: (token_id, count, lift), lift = share in expert / share overall."""
    ids, overall = torch.unique(token_id, return_counts=True)
    mine = token_id[expert_idx == expert]
    if mine.numel() == 0:
        return []
    m_ids, m_counts = torch.unique(mine, return_counts=True)
    overall_share = dict(zip(ids.tolist(), (overall.float() / len(token_id)).tolist()))
    rows = [(t, c, (c / len(mine)) / overall_share[t]) for t, c in zip(m_ids.tolist(), m_counts.tolist())
            if c >= min_count]
    return sorted(rows, key=lambda r: (-r[1], r[0]))[:top]
