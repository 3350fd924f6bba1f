"""Exercises of chapter 02's training recipe: the decoder-gradient projection that keeps unit-norm decoder rows on
the sphere, and the AuxK loss that gives dead latents a gradient (Gao et al. 2024, as the paper's recipe uses
them). In both, the gradient is the point, so the cases check it."""

from __future__ import annotations

import torch

from ...saes.topk import auxk_loss as _package_auxk_loss
from .spec import Answer, Case, Exercise, close, grads_close, randint


# 2.3 — project_decoder_grad(W_dec [d_sae, d_in], grad [d_sae, d_in]) -> grad without its radial part

def _projection_reference(W_dec, grad):
    return grad - (grad * W_dec).sum(-1, keepdim=True) * W_dec


def _projection_case(gen, d_sae, d_in, label):
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return Case((W_dec, torch.randn(d_sae, d_in, generator=gen)), label)


def _projection_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    W_dec, grad = case.args
    value, expected = got.outputs[0], exp.outputs[0]
    if close(value, expected, atol=1e-5):
        return None
    if value.shape != expected.shape:
        return f"Return the projected gradient with W_dec's shape {tuple(expected.shape)}; got {tuple(value.shape)}."
    if close(value, grad - expected):
        return ("You returned the radial part itself. Keep the tangential part: grad minus its component along "
                "each decoder row.")
    if close(value, grad + (grad - expected)):
        return "Wrong sign: subtract the parallel component (grad - (grad . w) w), do not add it."
    if close(value, grad - (grad * W_dec).sum(0, keepdim=True) * W_dec):
        return ("You projected along columns. Each decoder row W_dec[j] is one latent's direction: take the dot "
                "product over d_in (dim -1) for each row.")
    radial = (value * W_dec).sum(-1).abs().max()
    if radial > 1e-4:
        return (f"The result still has a radial component (largest |row . W_dec[j]| = {radial:.1e}): after the "
                "projection, every row must be orthogonal to its decoder row, so a step cannot change the norm.")
    return "The projection removed more than the radial part: only grad's component along each row may change."


PROJECT_DECODER_GRAD = Exercise(
    "project_decoder_grad", ("grad",), ("tensor",), _projection_reference,
    visible_cases=lambda: [_projection_case(torch.Generator().manual_seed(6), 10, 4, "visible")],
    random_cases=lambda gen: [_projection_case(gen, randint(gen, 1, 20), randint(gen, 2, 9), "random sizes")],
    diagnose=_projection_diagnose)


# 2.4 — auxk_loss(pre_acts [batch, d_sae], dead_mask [d_sae], residual [batch, d_in], W_dec, k_aux, x) -> scalar

def _auxk_case(gen, n_tokens, d_sae, d_in, k_aux, n_dead, label):
    pre = torch.randn(n_tokens, d_sae, generator=gen)
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[torch.randperm(d_sae, generator=gen)[:n_dead]] = True
    pre[:, ~dead] += 3.0  # live latents dominate: a top-k over all latents picks them, not the dead ones
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    x = torch.randn(n_tokens, d_in, generator=gen) + 0.5
    residual = 0.5 * torch.randn(n_tokens, d_in, generator=gen)
    return Case((pre, dead, residual, W_dec, k_aux, x), label, grad_of=(0, 2, 3), weights=(torch.tensor(1.0),))


def _auxk_variant(pre, dead, residual, W_dec, k_aux, x, mask=True, sign=1.0, normalise=True):
    """Typical wrong answers: all latents compete (mask=False), the negated residual (sign=-1, the paper's
    reference code), a plain MSE (normalise=False)."""
    scores = torch.where(dead, pre, torch.full_like(pre, -torch.inf)) if mask else pre
    n = int(dead.sum()) if mask else pre.shape[1]
    if n == 0:
        return torch.zeros(())
    values, indices = scores.topk(min(k_aux, n), dim=-1)
    recon = torch.relu(values)[..., None].mul(W_dec[indices]).sum(-2)
    error = (recon - sign * residual).pow(2).sum(-1)
    if normalise:
        return (error / residual.pow(2).sum(-1)).mean() * x.pow(2).mean()
    return error.mean() / residual.shape[-1]


def _auxk_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    value, expected = got.outputs[0], exp.outputs[0]
    if value.numel() != 1:
        return f"auxk_loss returns one number for the batch; got shape {tuple(value.shape)}."
    if not torch.isfinite(value).all():
        return ("The loss is NaN/inf. When fewer latents are dead than k_aux, take the top min(k_aux, n_dead); "
                "when none is dead, return 0.")
    if close(value, expected):
        if got.grads and got.grads[1] is not None and got.grads[1].abs().sum() > 0:
            return ("The residual x - x_hat must be detached: AuxK trains the dead latents to explain what the "
                    "live ones missed; it must not push the main reconstruction.")
        if not grads_close(got, exp, atol=1e-4):
            return ("The value is right but the gradient with respect to pre_acts or W_dec is not: the chosen dead "
                    "latents' ReLU'd pre-activations and decoder rows must stay in the graph.")
        return None
    if int(case.args[1].sum()) == 0:
        return "No latent is dead in this case: the loss must be exactly 0."
    if close(value, _auxk_variant(*case.args, mask=False)):
        return ("The top k_aux runs over all latents. Only *dead* latents compete: set the live ones' scores to "
                "-inf (torch.where(dead_mask, pre_acts, -inf)) before topk.")
    if close(value, _auxk_variant(*case.args, sign=-1.0)):
        return ("You reconstruct the negated residual. The dead latents predict e = x - x_hat itself (the paper's "
                "reference code has this sign flipped; docs/design-notes.md §8).")
    if close(value, _auxk_variant(*case.args, normalise=False)):
        return ("Normalise per token: ||e_hat - e||^2 / ||e||^2, averaged over tokens, times the batch's mean "
                "squared activation x.pow(2).mean() (so it weighs like the main loss).")
    return ("The loss differs from the reference: top-min(k_aux, n_dead) dead latents, ReLU, decode with their "
            "W_dec rows (no b_dec), normalised squared error against the detached residual.")


def _auxk_random(gen):
    d_sae = randint(gen, 8, 24)
    n_dead = randint(gen, 1, d_sae // 2)
    return [_auxk_case(gen, randint(gen, 1, 8), d_sae, randint(gen, 2, 7), randint(gen, 1, n_dead + 3), n_dead,
                       "random sizes"),
            _auxk_case(gen, 3, 10, 4, 2, 0, "no dead latent")]


AUXK_LOSS = Exercise(
    "auxk_loss", ("loss",), ("tensor",), _package_auxk_loss,
    visible_cases=lambda: [_auxk_case(torch.Generator().manual_seed(7), 6, 16, 5, 3, 5, "visible"),
                           _auxk_case(torch.Generator().manual_seed(8), 4, 12, 5, 4, 2, "fewer dead than k_aux")],
    random_cases=_auxk_random, diagnose=_auxk_diagnose)
