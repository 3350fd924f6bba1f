"""Switch SAE (Mudide et al. 2024; spec §3.2): a router sends each token to one of E TopK "expert" SAEs.

    p = softmax((x - b_router) @ W_router)             router probabilities      [batch, n_experts]
    i* = argmax p,  gate = p[i*]  (or 1: "heaviside")  top-1 routing, as in the Switch Transformer
    x_hat = gate * W_dec[i*]^T TopK(ReLU(W_enc[i*]^T (x - b_dec)), k) + b_dec

Expert i owns the contiguous latent block [i*d_expert, (i+1)*d_expert). The routed path groups tokens by expert
and runs one small matmul per expert, so the encoder costs 1/E of a dense one. The paper's code instead computes
all d_sae latents and masks them (spec §8.4); `masked_forward` keeps that form as the reference for tests.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from . import kernels
from .config import SAEConfig
from .sae import ForwardOutput, SAEBase, check_input, mse_per_element, sparse_decode, topk_activation


class Routing(NamedTuple):
    expert_idx: Int[Tensor, " batch"]
    """The chosen expert per token (argmax of the router probabilities)."""
    gate: Float[Tensor, " batch"]
    """Router probability of the chosen expert: the factor that scales its latents."""
    probs: Float[Tensor, "batch n_experts"]
    """Softmax router probabilities over all experts."""


def route(x: Float[Tensor, "batch d_in"], W_router: Float[Tensor, "d_in n_experts"],
          b_router: Float[Tensor, " d_in"]) -> Routing:
    """Top-1 routing. b_router is subtracted from the input (it centres x, like b_dec), not added to logits."""
    probs = torch.softmax((x - b_router) @ W_router, dim=-1)
    gate, expert_idx = probs.max(dim=-1)
    return Routing(expert_idx, gate, probs)


def load_balance_loss(router_probs: Float[Tensor, "batch n_experts"], expert_idx: Int[Tensor, " batch"],
                      n_experts: int) -> Tensor:
    """Switch Transformer load balancing, E * sum_i f_i * P_i (spec §4.2).

    f_i (fraction of tokens sent to expert i) carries no gradient; P_i (mean router probability) does. The value
    is exactly 1 when f or P is uniform and grows towards E as routing collapses onto one expert.
    """
    n_tokens = expert_idx.numel()
    f = torch.bincount(expert_idx.reshape(-1), minlength=n_experts).to(router_probs.dtype) / n_tokens
    P = router_probs.reshape(-1, n_experts).mean(0)
    return n_experts * (f * P).sum()


def expert_weights(W_enc: Float[Tensor, "d_in d_sae"], n_experts: int) -> tuple[Tensor, ...]:
    """Per-expert encoder views [d_in, d_expert]. unbind (not indexing in a loop) lets autograd assemble one
    gradient instead of a full-size zero tensor per expert (machine-notes §5)."""
    return W_enc.unflatten(1, (n_experts, -1)).unbind(1)


class SwitchSAE(SAEBase):
    """E TopK experts of width d_sae / E, no encoder bias, a linear softmax router (spec §3.2)."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        W_dec = torch.randn(cfg.d_sae, cfg.d_in)
        W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.clone().t())  # column-major, as in TopKSAE
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        bound = cfg.d_in ** -0.5  # nn.Linear's default init range, as in the reference router
        self.W_router = nn.Parameter(torch.empty(cfg.d_in, cfg.n_experts).uniform_(-bound, bound))
        self.b_router = nn.Parameter(torch.zeros(cfg.d_in))
        # The experts have no encoder bias (spec §3.2); a zero buffer keeps the SAELens interface.
        self.register_buffer("b_enc", torch.zeros(cfg.d_sae))

    @torch.no_grad()
    def init_from_batch(self, x: Tensor) -> None:
        """b_dec and b_router both start at the geometric median of the first batch (spec §5)."""
        super().init_from_batch(x)
        self.b_router.copy_(self.b_dec)

    def route(self, x: Tensor) -> Routing:
        return route(x, self.W_router, self.b_router)

    def _gate(self, routing: Routing) -> Tensor:
        if self.cfg.gate == "heaviside":
            return torch.ones_like(routing.gate)  # no reconstruction gradient reaches the router
        return routing.gate

    def _routed_topk(self, x_centered: Tensor, expert_idx: Tensor) -> tuple[Tensor, Tensor]:
        """TopK inside each token's expert, computing only that expert's encoder columns."""
        cfg = self.cfg
        order = expert_idx.argsort(stable=True)  # group tokens by expert
        counts = torch.bincount(expert_idx, minlength=cfg.n_experts).tolist()
        chunks = x_centered[order].split(counts)
        values, indices = [], []
        for e, (chunk, W_e) in enumerate(zip(chunks, expert_weights(self.W_enc, cfg.n_experts))):
            if chunk.shape[0] == 0:
                continue
            v, i = topk_activation(chunk @ W_e, cfg.k)  # (tokens_e, k)
            values.append(v)
            indices.append(i + e * cfg.d_expert)  # local -> global latent index
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return torch.cat(values)[inverse], torch.cat(indices)[inverse]

    def _masked_topk(self, x_centered: Tensor, expert_idx: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
        """The reference form: all latents, mask to the routed expert, scale, TopK over d_sae (spec §3.2)."""
        cfg = self.cfg
        pre = torch.relu(x_centered @ self.W_enc)  # (batch, d_sae): E times the routed work
        mask = F.one_hot(expert_idx, cfg.n_experts).repeat_interleave(cfg.d_expert, dim=-1)
        return topk_activation(pre * mask * gate[:, None], cfg.k)

    def forward(self, x: Float[Tensor, "batch d_in"], routed: bool | None = None) -> ForwardOutput:
        """routed=None follows cfg.routed; False runs the masked-dense reference (same values and gradients).
        cfg.fused picks the sparse-gradient kernels (default) or plain autograd for the routed path and decoder."""
        check_input(x, self.cfg.d_in)
        lead = x.shape[:-1]
        x_flat = x.reshape(-1, self.cfg.d_in)
        routing = self.route(x_flat)
        gate = self._gate(routing)
        use_routed = self.cfg.routed if routed is None else routed
        if use_routed and self.cfg.fused:  # sparse-gradient kernel (kernels.py)
            values, indices = kernels.routed_topk_encode(x_flat, self.b_dec, self.W_enc, routing.expert_idx,
                                                         self.cfg.n_experts, self.cfg.k)
            values = values * gate[:, None]  # TopK commutes with a positive scalar gate
        elif use_routed:
            values, indices = self._routed_topk(x_flat - self.b_dec, routing.expert_idx)
            values = values * gate[:, None]
        else:
            values, indices = self._masked_topk(x_flat - self.b_dec, routing.expert_idx, gate)
        decode = kernels.sparse_decode if self.cfg.fused else sparse_decode
        x_hat = decode(values, indices, self.W_dec) + self.b_dec
        mse = mse_per_element(x_hat, x_flat)
        lb = load_balance_loss(routing.probs, routing.expert_idx, self.cfg.n_experts)
        loss = mse + self.cfg.lb_coeff * lb
        zero = x.new_zeros(())
        k = values.shape[-1]
        return ForwardOutput(
            x_hat.reshape(*lead, -1), values.reshape(*lead, k), indices.reshape(*lead, k), self.cfg.d_sae,
            loss, mse, zero, zero, lb, routing.expert_idx.reshape(lead), routing.probs.reshape(*lead, -1),
        )
