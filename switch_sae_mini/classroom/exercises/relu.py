"""Exercises of chapter 01's ReLU SAE module: its initialisation, its encoder and its loss (Anthropic's "April
2024 update" recipe, the paper's ReLU baseline; saes/relu.py is the package's version). Chapter 01 then trains an
SAE assembled from these parts (classroom/relu_parts.py)."""

from __future__ import annotations

import torch

from .spec import Answer, Case, Exercise, ONE, close, grads_close, randint


# 1.2 — relu_init(d_in, d_sae, seed) -> (W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in])

def _init_reference(d_in, d_sae, seed):
    gen = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    W_dec = 0.1 * W_dec / W_dec.norm(dim=-1, keepdim=True)
    return W_dec.t().clone(), torch.zeros(d_sae), W_dec, torch.zeros(d_in)


def _init_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    names = ("W_enc", "b_enc", "W_dec", "b_dec")
    for name, value, expected in zip(names, got.outputs, exp.outputs):
        if value.shape != expected.shape:
            return (f"{name} must have shape {tuple(expected.shape)} ([d_in, d_sae] for W_enc); "
                    f"got {tuple(value.shape)}.")
    W_enc, b_enc, W_dec, b_dec = (o.float() for o in got.outputs)
    if b_enc.abs().max() > 0 or b_dec.abs().max() > 0:
        return "Both biases start at zero (torch.zeros): the recipe learns them; it does not initialise them."
    norms = W_dec.norm(dim=-1)
    if torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        return ("The decoder rows have norm 1. This recipe starts them at norm 0.1 (multiply the unit rows by 0.1); "
                "only TopK and Switch SAEs keep them at norm 1.")
    if not torch.allclose(norms, torch.full_like(norms, 0.1), atol=1e-5):
        if torch.allclose(W_dec.norm(dim=0), torch.full((W_dec.shape[1],), 0.1), atol=1e-5):
            return "You normalised the columns. Each row W_dec[j] is one latent's direction: use norm(dim=-1)."
        return "Scale each decoder row W_dec[j] to norm 0.1: W_dec = 0.1 * W / W.norm(dim=-1, keepdim=True)."
    if not close(W_enc, W_dec.t(), atol=1e-6):
        return "Tie the encoder at init: W_enc starts as a copy of W_dec transposed (W_dec.t().clone())."
    if not close(W_dec, exp.outputs[2], atol=1e-6):
        return ("The shapes and norms are right but the weights are another random draw. Draw exactly "
                "torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(seed)), so your SAE starts from "
                "the same weights as the package's and the two can be compared step by step.")
    return None


RELU_INIT = Exercise(
    "relu_init", ("W_enc", "b_enc", "W_dec", "b_dec"), ("tensor",) * 4, _init_reference,
    visible_cases=lambda: [Case((6, 10, 0), "visible")],
    random_cases=lambda gen: [Case((randint(gen, 2, 9), randint(gen, 3, 20), randint(gen, 0, 10_000)),
                                   "random sizes and seed")],
    diagnose=_init_diagnose)


# 1.3 — relu_encode(x [batch, d_in], W_enc [d_in, d_sae], b_enc [d_sae]) -> latents [batch, d_sae]

def _encode_reference(x, W_enc, b_enc):
    return torch.relu(x @ W_enc + b_enc)


def _encode_case(gen, n_tokens, d_in, d_sae, label):
    x = torch.randn(n_tokens, d_in, generator=gen)
    W_enc = torch.randn(d_in, d_sae, generator=gen)
    b_enc = torch.randn(d_sae, generator=gen).clamp(-2, 2)
    W_enc[0] = W_enc[0].abs() + 1.0  # planted: token 0 points against every encoder column, so all its
    x[0] = 0.0                        # pre-activations are <= -5 + 2: its latents must all be exactly 0
    x[0, 0] = -5.0
    return Case((x, W_enc, b_enc), label, grad_of=(1, 2), weights=(torch.randn(n_tokens, d_sae, generator=gen),))


def _encode_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    x, W_enc, b_enc = case.args
    value, expected = got.outputs[0], exp.outputs[0]
    if value.shape != expected.shape:
        return f"Return latents of shape [batch, d_sae] = {tuple(expected.shape)}; got {tuple(value.shape)}."
    if close(value, expected):
        if not grads_close(got, exp):
            return ("The latents are right but carry no (or the wrong) gradient to W_enc and b_enc: keep them in "
                    "the graph (no .detach(), .data or torch.no_grad()).")
        return None
    if close(value, torch.relu(x @ W_enc) + b_enc):
        return "Add b_enc before the ReLU, not after: f = ReLU(x @ W_enc + b_enc)."
    if (value < 0).any():
        return ("Some latents are negative: apply the ReLU. Latents are non-negative amounts of each feature "
                "(this case plants a token whose pre-activations are all negative: its latents must all be 0).")
    if close(value, torch.relu(x @ W_enc)):
        return "You left out the encoder bias b_enc: f = ReLU(x @ W_enc + b_enc)."
    return "The latents differ from ReLU(x @ W_enc + b_enc)."


RELU_ENCODE = Exercise(
    "relu_encode", ("latents",), ("tensor",), _encode_reference,
    visible_cases=lambda: [_encode_case(torch.Generator().manual_seed(11), 5, 4, 9, "visible")],
    random_cases=lambda gen: [_encode_case(gen, randint(gen, 2, 9), randint(gen, 2, 7), randint(gen, 3, 17),
                                           "random sizes"),
                              _encode_case(gen, 1, 3, 5, "a batch of one whose pre-activations are all negative")],
    diagnose=_encode_diagnose)


# 1.4 — relu_sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coeff) -> (loss, mse, l1), the package's per-d_in scale

def _loss_reference(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    latents = torch.relu(x @ W_enc + b_enc)
    x_hat = latents @ W_dec + b_dec
    mse = (x_hat - x).pow(2).mean()
    l1 = (latents * W_dec.norm(dim=-1)).sum(-1).mean() / x.shape[-1]
    return mse + l1_coeff * l1, mse, l1


def _loss_case(gen, n_tokens, d_in, d_sae, l1_coeff, label):
    x = torch.randn(n_tokens, d_in, generator=gen) + 1.0
    W_enc = torch.randn(d_in, d_sae, generator=gen) * 0.5
    b_enc = 0.3 * torch.randn(d_sae, generator=gen)
    W_dec = torch.randn(d_sae, d_in, generator=gen) * torch.linspace(0.2, 2, d_sae)[:, None]
    b_dec = torch.randn(d_in, generator=gen)  # nonzero, so a decoder without b_dec shows
    return Case((x, W_enc, b_enc, W_dec, b_dec, l1_coeff), label, grad_of=(1, 2, 3, 4),
                weights=(ONE, None, None))


def _loss_variant(x, W_enc, b_enc, W_dec, b_dec, l1_coeff, mse_scale=1.0, l1_scale=1.0, plain=False,
                  with_b_dec=True):
    latents = torch.relu(x @ W_enc + b_enc)
    x_hat = latents @ W_dec + (b_dec if with_b_dec else 0)
    mse = (x_hat - x).pow(2).mean() * mse_scale
    weights = 1.0 if plain else W_dec.norm(dim=-1)
    l1 = (latents * weights).sum(-1).mean() / x.shape[-1] * l1_scale
    return mse + l1_coeff * l1, mse, l1


def _loss_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    loss, mse, l1 = got.outputs
    for name, value in zip(("loss", "mse", "l1"), got.outputs):
        if value.shape != ():
            return (f"{name} must be a 0-d scalar tensor (one number for the batch, as .mean() gives); got shape "
                    f"{tuple(value.shape)}.")
    d_in = case.args[0].shape[-1]
    if not close(mse, exp.outputs[1]):
        if close(mse, _loss_variant(*case.args, mse_scale=d_in)[1]):
            return ("mse is summed over d_in. Use the per-element MSE, the mean over tokens and over d_in "
                    "((x_hat - x).pow(2).mean()), the scale the package and the paper's coefficients assume.")
        if close(mse, _loss_variant(*case.args, with_b_dec=False)[1]):
            return "Decode with the decoder bias: x_hat = latents @ W_dec + b_dec (this case has a nonzero b_dec)."
        return "mse differs: x_hat = ReLU(x @ W_enc + b_enc) @ W_dec + b_dec, then (x_hat - x).pow(2).mean()."
    if not close(l1, exp.outputs[2]):
        if close(l1, _loss_variant(*case.args, l1_scale=d_in)[2]):
            return "Divide the L1 term by d_in, as the MSE is per element: l1 = l1_penalty(latents, W_dec) / d_in."
        if close(l1, _loss_variant(*case.args, plain=True)[2]):
            return "l1 is the plain L1 norm: weight each latent by its decoder row's norm (exercise 1.1)."
        return "l1 differs: l1_penalty(latents, W_dec) / d_in, on the latents of this forward pass."
    if not close(loss, exp.outputs[0]):
        return "loss must be mse + l1_coeff * l1 (the warm-up scales l1_coeff, the caller's business)."
    if not grads_close(got, exp, atol=1e-4):
        return ("The values are right but the gradient of loss is not: keep every term in the graph (no .detach() "
                "or .item() on latents, mse or l1), so the L1 penalty reaches W_enc, b_enc and W_dec.")
    return None


RELU_SAE_LOSS = Exercise(
    "relu_sae_loss", ("loss", "mse", "l1"), ("tensor",) * 3, _loss_reference,
    visible_cases=lambda: [_loss_case(torch.Generator().manual_seed(12), 6, 5, 12, 4.0, "visible")],
    random_cases=lambda gen: [_loss_case(gen, randint(gen, 1, 9), randint(gen, 2, 8), randint(gen, 3, 20),
                                         float(randint(gen, 1, 30)), "random sizes")],
    diagnose=_loss_diagnose, depends_on=("relu_encode", "l1_penalty"))
