"""Switch SAE (Mudide et al. 2024): a router sends each token to one of E TopK "expert" SAEs.

    p = softmax((x - b_router) @ W_router)             router probabilities      [batch, n_experts]
    i* = argmax p,  gate = p[i*]  (or 1: "heaviside")  top-1 routing, as in the Switch Transformer
    x_hat = gate * W_dec[i*]^T TopK(ReLU(W_enc[i*]^T (x - b_dec)), k) + b_dec

Expert i owns the contiguous latent block [i*d_expert, (i+1)*d_expert). The routed path groups tokens by expert
and computes only their expert's columns (one small matmul per expert here; one padded batched matmul in
kernels.py), so the encoder costs 1/E of a dense one. The paper's code instead computes
all d_sae latents and masks them (docs/design-notes.md §5); `_masked_topk` keeps that form as the reference for
tests. Routing, the gate and the load-balancing loss live in routing.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ..config import SAEConfig
from . import kernels
from .base import ForwardOutput, SAEBase, check_input, mse_per_element, sparse_decode, topk_activation
from .routing import Routing, expert_weights, gate_values, group_by_expert, load_balance_loss, route


class SwitchSAE(SAEBase):
    """E TopK experts of width d_sae / E, no encoder bias, a linear softmax router (docs/design-notes.md §1).
    Two variants (docs/design-notes.md §12): an always-on shared expert (SAEConfig.shared_expert, k_shared) and
    top-e routing (SAEConfig.router_top_e)."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self._init_unit_decoder_and_tied_encoder()
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        bound = cfg.d_in ** -0.5  # nn.Linear's default init range, as in the reference router
        self.W_router = nn.Parameter(torch.empty(cfg.d_in, cfg.n_experts).uniform_(-bound, bound))
        self.b_router = nn.Parameter(torch.zeros(cfg.d_in))
        # The experts have no encoder bias (as in the reference code); a zero buffer keeps the SAELens interface.
        self.register_buffer("b_enc", torch.zeros(cfg.d_sae))

    @torch.no_grad()
    def init_from_batch(self, x: Tensor) -> None:
        """b_dec and b_router both start at the geometric median of the first batch (docs/design-notes.md §3)."""
        super().init_from_batch(x)
        self.b_router.copy_(self.b_dec)

    def route(self, x: Tensor) -> Routing:
        return route(x, self.W_router, self.b_router, self.cfg.router_top_e)

    def _routed_topk(self, x_centered: Tensor, expert_idx: Tensor) -> tuple[Tensor, Tensor]:
        """TopK inside each token's expert (each of its e experts with top-e routing), computing only that expert's
        encoder columns; plus the shared expert's TopK. Unscaled, laid out as kernels.routed_topk_encode."""
        cfg = self.cfg
        top_e = cfg.router_top_e
        rows = x_centered if top_e == 1 else x_centered.repeat_interleave(top_e, dim=0)
        flat_idx = expert_idx.reshape(-1)
        groups = group_by_expert(flat_idx, cfg.n_experts)
        chunks = rows[groups.order].split(groups.counts)
        values, indices = [], []
        for e, (chunk, W_e) in enumerate(zip(chunks, expert_weights(self.W_enc[:, :cfg.d_routed], cfg.n_experts))):
            if chunk.shape[0] == 0:
                continue
            v, i = topk_activation(chunk @ W_e, min(cfg.k, cfg.d_expert))  # (tokens_e, k)
            values.append(v)
            indices.append(i + e * cfg.d_expert)  # local -> global latent index
        inverse = groups.inverse()
        batch = x_centered.shape[0]
        values, indices = torch.cat(values)[inverse].view(batch, -1), torch.cat(indices)[inverse].view(batch, -1)
        if cfg.shared_expert:
            v, i = topk_activation(x_centered @ self.W_enc[:, cfg.d_routed:], cfg.k_shared)
            values, indices = torch.cat([values, v], dim=1), torch.cat([indices, i + cfg.d_routed], dim=1)
        return values, indices

    def _masked_topk(self, x_centered: Tensor, expert_idx: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
        """The reference form: all latents, mask to the routed expert(s), scale, TopK over the routed latents
        (docs/design-notes.md §1); the shared expert's TopK over its own block, unscaled."""
        cfg = self.cfg
        pre = torch.relu(x_centered @ self.W_enc)  # (batch, d_sae): E times the routed work
        weight = gate.new_zeros(gate.shape[0], cfg.n_experts).scatter(1, expert_idx.view(gate.shape[0], -1),
                                                                       gate.view(gate.shape[0], -1))
        values, indices = topk_activation(pre[:, :cfg.d_routed] * weight.repeat_interleave(cfg.d_expert, dim=-1),
                                          cfg.k)
        if cfg.shared_expert:
            v, i = topk_activation(pre[:, cfg.d_routed:], cfg.k_shared)
            values, indices = torch.cat([values, v], dim=1), torch.cat([indices, i + cfg.d_routed], dim=1)
        return values, indices

    def _gate_and_merge(self, values: Tensor, indices: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
        """Scale each routed expert's values by its gate (TopK commutes with a positive scalar gate); with top-e,
        one TopK of k over the e experts' candidates, which hold the TopK of their union. Shared values stay."""
        cfg = self.cfg
        batch = values.shape[0]
        n_routed = values.shape[1] - cfg.k_shared
        routed_v, routed_i = values[:, :n_routed], indices[:, :n_routed]
        routed_v = (routed_v.view(batch, cfg.router_top_e, -1) * gate.view(batch, -1, 1)).view(batch, n_routed)
        if cfg.router_top_e > 1:
            pick = routed_v.topk(cfg.k, dim=1, sorted=False).indices
            routed_v, routed_i = routed_v.gather(1, pick), routed_i.gather(1, pick)
        if not cfg.shared_expert:
            return routed_v, routed_i
        return (torch.cat([routed_v, values[:, n_routed:]], dim=1),
                torch.cat([routed_i, indices[:, n_routed:]], dim=1))

    def forward(self, x: Float[Tensor, "batch d_in"], routed: bool | None = None) -> ForwardOutput:
        """routed=None follows cfg.routed; False runs the masked-dense reference (same values and gradients).
        cfg.fused picks the sparse-gradient kernels (default) or plain autograd for the routed path and decoder."""
        cfg = self.cfg
        x = check_input(x, cfg.d_in, self.W_dec)
        lead = x.shape[:-1]
        x_flat = x.reshape(-1, cfg.d_in)
        routing = self.route(x_flat)
        gate = gate_values(routing, cfg.gate)
        use_routed = cfg.routed if routed is None else routed
        if use_routed and cfg.fused:  # sparse-gradient kernel (kernels.py)
            values, indices = kernels.routed_topk_encode(x_flat, self.b_dec, self.W_enc, routing.expert_idx,
                                                         cfg.n_experts, cfg.k, cfg.shared_expert, cfg.k_shared)
            values, indices = self._gate_and_merge(values, indices, gate)
        elif use_routed:
            values, indices = self._routed_topk(x_flat - self.b_dec, routing.expert_idx)
            values, indices = self._gate_and_merge(values, indices, gate)
        else:
            values, indices = self._masked_topk(x_flat - self.b_dec, routing.expert_idx, gate)
        decode = kernels.sparse_decode if cfg.fused else sparse_decode
        x_hat = decode(values, indices, self.W_dec) + self.b_dec
        mse = mse_per_element(x_hat, x_flat)
        lb = load_balance_loss(routing.probs, routing.expert_idx, cfg.n_experts)
        loss = mse + cfg.lb_coeff * lb
        zero = x.new_zeros(())
        k = values.shape[-1]
        expert_lead = lead if cfg.router_top_e == 1 else (*lead, cfg.router_top_e)
        return ForwardOutput(
            x_hat=x_hat.reshape(*lead, -1), latent_acts=values.reshape(*lead, k), latent_idx=indices.reshape(*lead, k),
            d_sae=cfg.d_sae, loss=loss, mse_loss=mse, l1_loss=zero, auxk_loss=zero, lb_loss=lb,
            expert_idx=routing.expert_idx.reshape(expert_lead), router_probs=routing.probs.reshape(*lead, -1),
        )
