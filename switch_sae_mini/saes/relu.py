"""ReLU SAE with the decoder-norm-weighted L1 penalty: Anthropic's "April 2024 update" recipe, the paper's dense
baseline (docs/design-notes.md §1)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..config import SAEConfig
from .base import ForwardOutput, SAEBase, check_input, mse_per_element


class ReLUSAE(SAEBase):
    """ReLU SAE with decoder-norm-weighted L1, the Anthropic "April update" recipe."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        W = torch.randn(cfg.d_sae, cfg.d_in)
        W = 0.1 * W / W.norm(dim=-1, keepdim=True)  # decoder rows of norm 0.1; encoder tied at init only
        self.W_dec = nn.Parameter(W.clone())
        self.W_enc = nn.Parameter(W.clone().t())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    def forward(self, x: Float[Tensor, "batch d_in"], l1_scale: float = 1.0) -> ForwardOutput:
        """l1_scale multiplies l1_coeff (the trainer's L1 warm-up)."""
        x = check_input(x, self.cfg.d_in, self.W_dec)
        latents = torch.relu(x @ self.W_enc + self.b_enc)  # no pre-encoder bias in this recipe
        x_hat = latents @ self.W_dec + self.b_dec
        mse = mse_per_element(x_hat, x)
        l1 = (latents * self.W_dec.norm(dim=-1)).sum(-1).mean() / self.cfg.d_in
        loss = mse + l1_scale * self.cfg.l1_coeff * l1
        zero = self._zero(x)
        return ForwardOutput(x_hat=x_hat, latent_acts=latents, latent_idx=None, d_sae=self.cfg.d_sae, loss=loss,
                             mse_loss=mse, l1_loss=l1, auxk_loss=zero, lb_loss=zero)
