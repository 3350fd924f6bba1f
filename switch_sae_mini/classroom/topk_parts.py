"""A TopK SAE assembled from the learner's own chapter-02 functions, so the chapter can train it with `ssm.train`
and compare it with the package's TopKSAE trained from the same seed on the same batches.

    sae = learner_topk_sae(cfg, topk_activation=topk_activation, geometric_median=geometric_median,
                           project_decoder_grad=project_decoder_grad, auxk_loss=auxk_loss,
                           topk_sae_forward=topk_sae_forward, update_dead_counter=update_dead_counter,
                           use_reference=USE_REFERENCE)

Every training hook the chapter's exercises cover runs the learner's function: b_dec's initialisation (geometric
median), the forward pass (through their TopK activation), AuxK, the decoder-gradient projection and the
dead-latent counter. The package keeps the parameters, their initialisation, the decoder renormalisation, Adam
and the schedule (training/step.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..config import SAEConfig
from ..saes import InputError, TopKSAE
from ..saes.base import ForwardOutput, check_input, mse_per_element
from .exercises import substituted
from .parts import choose_parts

PARTS = ("topk_activation", "geometric_median", "project_decoder_grad", "auxk_loss", "topk_sae_forward",
         "update_dead_counter")


class LearnerTopKSAE(TopKSAE):
    """TopKSAE parameters and optimizer hooks; its forward, init and counters are the learner's functions."""

    def __init__(self, cfg: SAEConfig, parts: dict[str, Callable]) -> None:
        super().__init__(cfg)
        self.parts = parts
        self._codes: tuple[Tensor, Tensor] | None = None

    def forward(self, x: Tensor) -> ForwardOutput:
        x = check_input(x, self.cfg.d_in, self.W_dec)
        # the learner's forward calls topk_activation by name: the chosen one (theirs or the reference) is put there
        with substituted(self.parts["topk_sae_forward"], ("topk_activation",), self.parts):
            x_hat, values, indices = self.parts["topk_sae_forward"](x, self.W_enc, self.b_enc, self.W_dec,
                                                                   self.b_dec, self.cfg.k)
        indices = indices.long()
        mse = mse_per_element(x_hat, x)
        aux = x.new_zeros(())
        if self.training:
            self._codes = (indices.detach(), values.detach())
            if self.cfg.auxk_coeff > 0:
                pre = (x - self.b_dec) @ self.W_enc + self.b_enc
                aux = self.parts["auxk_loss"](pre, self.dead_mask(), x - x_hat, self.W_dec, self.cfg.k_aux, x)
        zero = x.new_zeros(())
        return ForwardOutput(x_hat=x_hat, latent_acts=values, latent_idx=indices, d_sae=self.cfg.d_sae,
                             loss=mse + self.cfg.auxk_coeff * aux, mse_loss=mse, l1_loss=zero, auxk_loss=aux,
                             lb_loss=zero)

    @torch.no_grad()
    def init_from_batch(self, x: Tensor) -> None:
        self.b_dec.copy_(self.parts["geometric_median"](x.reshape(-1, x.shape[-1])))
        self.initialized.fill_(True)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        if self.W_dec.grad is not None:
            self.W_dec.grad.copy_(self.parts["project_decoder_grad"](self.W_dec.detach().clone(), self.W_dec.grad))

    @torch.no_grad()
    def update_dead_counter(self, fired: Tensor, n_tokens: int) -> None:
        """The learner's counter on the codes of this step's training forward (the trainer's `fired` mask is the
        same information; the exercise works from the codes)."""
        if self._codes is None:
            return super().update_dead_counter(fired, n_tokens)
        counter, _ = self.parts["update_dead_counter"](self.tokens_since_fired.clone(), *self._codes,
                                                        self.cfg.dead_after_tokens)
        self.tokens_since_fired.copy_(counter)
        self._codes = None


def learner_topk_sae(cfg: SAEConfig, *, use_reference: dict[str, bool] | None = None,
                     **parts: Callable) -> LearnerTopKSAE:
    """A TopK SAE whose hooks run the learner's functions; those with use_reference[name] True are the package's
    reference instead."""
    if cfg.arch != "topk":
        raise InputError(f"learner_topk_sae builds a TopK SAE; got SAEConfig.arch={cfg.arch!r} (use arch='topk').")
    chosen = choose_parts(PARTS, parts, use_reference, "learner_topk_sae")
    return LearnerTopKSAE(cfg, chosen)
