"""TopK SAE (Gao et al. 2024) with the AuxK dead-latent loss (docs/design-notes.md §1-§2)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..config import SAEConfig
from . import kernels
from .base import ForwardOutput, SAEBase, check_input, mse_per_element, sparse_decode, topk_activation


def auxk_error(residual_hat: Float[Tensor, "batch d_in"], residual: Float[Tensor, "batch d_in"],
               x: Float[Tensor, "batch d_in"]) -> Tensor:
    """Gao et al.'s AuxK error in this package's loss units.

    Gao et al. add alpha * NMSE(e_hat, e) -- per token ||e_hat - e||^2 / ||e||^2, averaged -- to a main loss that is
    itself a normalised MSE. Our main loss is the per-element MSE, so the NMSE is multiplied by the batch's mean
    squared activation: the AuxK term then has the same weight relative to reconstruction as in Gao et al. (An
    unnormalised MSE of the residual would be about 1/FVU times weaker and revives far fewer latents.)
    """
    e = residual.detach()
    nmse = (residual_hat - e).pow(2).sum(-1) / e.pow(2).sum(-1).clamp_min(1e-12)
    return nmse.mean() * x.detach().pow(2).mean()


def auxk_loss(pre_acts: Float[Tensor, "batch d_sae"], dead_mask: Tensor, residual: Float[Tensor, "batch d_in"],
              W_dec: Tensor, k_aux: int, x: Float[Tensor, "batch d_in"]) -> Tensor:
    """Gao et al.'s AuxK: the top-k_aux *dead* latents reconstruct the detached residual x - x_hat, no b_dec.

    The paper's reference code predicts the negated residual and adds b_dec (docs/design-notes.md §8); this is
    Gao et al.'s form.
    Returns auxk_error of that reconstruction (0 when nothing is dead).
    """
    n_dead = int(dead_mask.sum())
    if n_dead == 0:
        return pre_acts.new_zeros(())
    masked = torch.where(dead_mask, pre_acts, torch.full_like(pre_acts, -torch.inf))
    values, indices = masked.topk(min(k_aux, n_dead), dim=-1, sorted=False)
    residual_hat = sparse_decode(torch.relu(values), indices, W_dec)
    return auxk_error(residual_hat, residual, x)


class TopKSAE(SAEBase):
    """TopK SAE (Gao et al. 2024) with the AuxK dead-latent loss."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self._init_unit_decoder_and_tied_encoder()
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    def pre_activations(self, x: Tensor) -> Tensor:
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def forward(self, x: Float[Tensor, "batch d_in"]) -> ForwardOutput:
        x = check_input(x, self.cfg.d_in, self.W_dec)
        if self.cfg.fused:
            return self._fused_forward(x)
        pre = self.pre_activations(x)
        values, indices = topk_activation(pre, self.cfg.k)
        x_hat = sparse_decode(values, indices, self.W_dec) + self.b_dec
        mse = mse_per_element(x_hat, x)
        zero = self._zero(x)
        aux = zero
        if self.training and self.cfg.auxk_coeff > 0:
            aux = auxk_loss(pre, self.dead_mask(), x - x_hat, self.W_dec, self.cfg.k_aux, x)
        loss = mse + self.cfg.auxk_coeff * aux
        return ForwardOutput(x_hat=x_hat, latent_acts=values, latent_idx=indices, d_sae=self.cfg.d_sae, loss=loss,
                             mse_loss=mse, l1_loss=zero, auxk_loss=aux, lb_loss=zero)

    def _fused_forward(self, x: Tensor) -> ForwardOutput:
        """Same values and gradients as the plain path, with sparse backward kernels (kernels.py)."""
        cfg, lead = self.cfg, x.shape[:-1]
        x_flat = x.reshape(-1, cfg.d_in)
        use_aux = self.training and cfg.auxk_coeff > 0
        enc = kernels.topk_encode(x_flat, self.b_dec, self.W_enc, self.b_enc, cfg.k,
                                  self.dead_mask() if use_aux else None, cfg.k_aux)
        x_hat = kernels.sparse_decode(enc.values, enc.indices, self.W_dec) + self.b_dec
        mse = mse_per_element(x_hat, x_flat)
        zero = self._zero(x)
        aux = zero
        if enc.aux_indices.shape[1]:  # some latents are dead: they reconstruct the detached residual (AuxK)
            residual_hat = kernels.sparse_decode(enc.aux_values, enc.aux_indices, self.W_dec)
            aux = auxk_error(residual_hat, x_flat - x_hat, x_flat)
        loss = mse + cfg.auxk_coeff * aux
        return ForwardOutput(x_hat=x_hat.reshape(*lead, cfg.d_in), latent_acts=enc.values.reshape(*lead, cfg.k),
                             latent_idx=enc.indices.reshape(*lead, cfg.k), d_sae=cfg.d_sae, loss=loss,
                             mse_loss=mse, l1_loss=zero, auxk_loss=aux, lb_loss=zero)
