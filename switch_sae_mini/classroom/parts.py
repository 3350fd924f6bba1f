"""A Switch SAE assembled from the learner's own exercise functions, so chapter 03 can train it with `ssm.train`
and compare it with the package's SwitchSAE trained from the same seed on the same batches.

    sae = learner_switch_sae(cfg, route=route, switch_forward=switch_forward,
                             load_balance_loss=load_balance_loss, use_reference=USE_REFERENCE)

`use_reference` names the exercises to replace by the package's reference (the notebook's USE_REFERENCE switch):
a learner stuck on one exercise still trains with the others. The router probabilities the balance loss needs are
softmax((x - b_router) @ W_router), the same expression the learner's `route` maximises.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..config import SAEConfig
from ..saes import SwitchSAE
from ..saes.base import ForwardOutput, check_input, mse_per_element
from .exercises import EXERCISES, substituted

PARTS = ("route", "switch_forward", "load_balance_loss")


class LearnerSwitchSAE(SwitchSAE):
    """SwitchSAE parameters and training hooks; forward built from the learner's route, latents and balance loss."""

    def __init__(self, cfg: SAEConfig, parts: dict[str, Callable]) -> None:
        if not cfg.is_plain_switch:
            raise ValueError(f"learner_switch_sae builds the plain Switch SAE of chapter 03; this config has "
                             f"shared_expert={cfg.shared_expert}, router_top_e={cfg.router_top_e}. Leave them 0 and 1.")
        super().__init__(cfg)
        missing = set(PARTS) - set(parts)
        if missing:
            raise ValueError(f"learner_switch_sae needs {sorted(missing)} too (or name them in use_reference).")
        self.parts = parts

    def forward(self, x: Tensor, routed: bool | None = None) -> ForwardOutput:
        x = check_input(x, self.cfg.d_in, self.W_dec)
        route, switch_forward, balance = (self.parts[n] for n in PARTS)
        # the learner's switch_forward calls route by name: the chosen one (theirs, or the reference) is put there
        with substituted(switch_forward, ("route",), self.parts):
            x_hat, values, indices = switch_forward(x, self.W_enc, self.W_dec, self.b_dec, self.W_router,
                                                    self.b_router, self.cfg.n_experts, self.cfg.k)
        expert_idx, _ = route(x, self.W_router, self.b_router)
        probs = torch.softmax((x - self.b_router) @ self.W_router, dim=-1)
        lb = balance(probs, expert_idx, self.cfg.n_experts)
        mse = mse_per_element(x_hat, x)
        zero = x.new_zeros(())
        return ForwardOutput(x_hat=x_hat, latent_acts=values, latent_idx=indices.long(), d_sae=self.cfg.d_sae,
                             loss=mse + self.cfg.lb_coeff * lb, mse_loss=mse, l1_loss=zero, auxk_loss=zero,
                             lb_loss=lb, expert_idx=expert_idx.long(), router_probs=probs)


def choose_parts(names: tuple[str, ...], parts: dict[str, Callable], use_reference: dict[str, bool] | None,
                 caller: str) -> dict[str, Callable]:
    """name -> the learner's function, or the package's reference where use_reference[name] is True."""
    use_reference = use_reference or {}
    unknown = (set(use_reference) | set(parts)) - set(names)
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)}: {caller} takes {', '.join(names)}.")
    chosen = {n: EXERCISES[n].reference if use_reference.get(n) else parts.get(n) for n in names}
    missing = [n for n, fn in chosen.items() if fn is None]
    if missing:
        raise ValueError(f"pass your {', '.join(missing)} (or set USE_REFERENCE[{missing[0]!r}] = True).")
    return chosen


def learner_switch_sae(cfg: SAEConfig, *, use_reference: dict[str, bool] | None = None,
                       **parts: Callable) -> LearnerSwitchSAE:
    """A Switch SAE whose forward runs the learner's functions; those with use_reference[name] True are the
    package's reference instead."""
    return LearnerSwitchSAE(cfg, choose_parts(PARTS, parts, use_reference, "learner_switch_sae"))
