"""Routing for Switch SAEs (Mudide et al. 2024): the router, the gate, the load-balancing loss and grouping tokens
by expert. One home for each formula; the single-process SAE, the kernels and expert parallelism all call these.

    p = softmax((x - b_router) @ W_router)             router probabilities      [batch, n_experts]
    i* = argmax p,  gate = p[i*]  (or 1: "heaviside")  top-1 routing, as in the Switch Transformer
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor


class Routing(NamedTuple):
    expert_idx: Int[Tensor, " batch"]
    """The chosen expert per token (argmax of the router probabilities); [batch, e] with top-e routing (e > 1),
    most probable first."""
    gate: Float[Tensor, " batch"]
    """Router probability of the chosen expert: the factor that scales its latents ([batch, e] with top-e)."""
    probs: Float[Tensor, "batch n_experts"]
    """Softmax router probabilities over all experts."""


def route(x: Float[Tensor, "batch d_in"], W_router: Float[Tensor, "d_in n_experts"],
          b_router: Float[Tensor, " d_in"], top_e: int = 1) -> Routing:
    """Top-1 routing (top-e for top_e > 1). b_router is subtracted from the input (it centres x, like b_dec), not
    added to logits. The top-e gates are the chosen experts' probabilities themselves, not renormalised
    (SAEConfig.router_top_e)."""
    probs = torch.softmax((x - b_router) @ W_router, dim=-1)
    if top_e == 1:
        gate, expert_idx = probs.max(dim=-1)
    else:
        gate, expert_idx = probs.topk(top_e, dim=-1)
    return Routing(expert_idx=expert_idx, gate=gate, probs=probs)


def gate_values(routing: Routing, gate: str) -> Float[Tensor, " batch"]:
    """What scales the routed expert's latents: its router probability ("prob", the paper) or 1 ("heaviside",
    which leaves the router no reconstruction gradient; docs/design-notes.md §1)."""
    if gate == "heaviside":
        return torch.ones_like(routing.gate)
    return routing.gate


def expert_counts(expert_idx: Int[Tensor, " ..."], n_experts: int) -> Int[Tensor, " n_experts"]:
    """Tokens routed to each expert."""
    return torch.bincount(expert_idx.reshape(-1), minlength=n_experts)


def load_balance_loss(router_probs: Float[Tensor, "batch n_experts"], expert_idx: Int[Tensor, " batch"],
                      n_experts: int, counts: Tensor | None = None) -> Tensor:
    """Switch Transformer load balancing, E * sum_i f_i * P_i (docs/design-notes.md §2).

    f_i (fraction of tokens sent to expert i) carries no gradient; P_i (mean router probability) does. The value
    is exactly 1 when f or P is uniform and grows towards E as routing collapses onto one expert. With top-e
    routing (expert_idx [batch, e]) f counts every (token, choice) pair, so it still sums to 1. `counts`
    overrides the tokens per expert behind f (data- and expert-parallel training pass the global counts, so the
    ranks' n-weighted mean is the loss of the whole batch).
    """
    if counts is None:
        counts = expert_counts(expert_idx, n_experts)
    f = counts.to(router_probs.dtype) / counts.sum()
    P = router_probs.reshape(-1, n_experts).mean(0)
    return n_experts * (f * P).sum()


class ExpertGroups(NamedTuple):
    order: Int[Tensor, " batch"]
    """Token indices sorted by expert (stable): the tokens of expert e are order[starts[e]:starts[e] + counts[e]]."""
    counts: list[int]
    """Tokens per expert."""

    def inverse(self) -> Int[Tensor, " batch"]:
        """inverse[order] = arange: takes rows sorted by expert back to token order."""
        inverse = torch.empty_like(self.order)
        inverse[self.order] = torch.arange(self.order.numel(), device=self.order.device)
        return inverse


def group_by_expert(expert_idx: Int[Tensor, " batch"], n_experts: int) -> ExpertGroups:
    """Sort tokens by their expert so each expert's tokens are one contiguous block (one matmul per expert)."""
    return ExpertGroups(order=expert_idx.argsort(stable=True),
                        counts=expert_counts(expert_idx, n_experts).tolist())


def expert_weights(W_enc: Float[Tensor, "d_in d_sae"], n_experts: int) -> tuple[Tensor, ...]:
    """Per-expert encoder views [d_in, d_expert]. unbind (not indexing in a loop) lets autograd assemble one
    gradient instead of a full-size zero tensor per expert (measured: docs/design-notes.md §9)."""
    return W_enc.unflatten(1, (n_experts, -1)).unbind(1)
