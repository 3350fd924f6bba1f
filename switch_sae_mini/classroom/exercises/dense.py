"""Exercises of chapters 01, 02 and 04: the decoder-norm-weighted L1 penalty, TopK, the geometric median and the
encoder FLOP count. Each diagnosis names the typical mistake it recognises (tests/test_checks.py)."""

from __future__ import annotations

import torch

from ... import flops
from ...config import SAEConfig
from ...saes import geometric_median as _package_geometric_median
from ...saes import topk_activation as _package_topk
from .spec import Answer, Case, Exercise, ONE, close, grads_close


# 1.1 — l1_penalty(latents [batch, d_sae], W_dec [d_sae, d_in]) -> mean over tokens of sum_j f_j ||W_dec[j]||

def _l1_reference(latents, W_dec):
    return (latents * W_dec.norm(dim=-1)).sum(-1).mean()


def _l1_case(gen, n_tokens, d_sae, d_in, label):
    latents = torch.relu(torch.randn(n_tokens, d_sae, generator=gen))
    W_dec = torch.randn(d_sae, d_in, generator=gen) * torch.linspace(0.2, 3, d_sae)[:, None]
    return Case((latents, W_dec), label, grad_of=(0, 1), weights=(ONE,))


def _l1_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    latents, W_dec = case.args
    value = got.outputs[0]
    if close(value, exp.outputs[0]):
        if all(g is None for g in got.grads):
            return ("l1_penalty must keep the autograd graph (no .item(), .detach(), float() or torch.no_grad()): "
                    "training minimises it through latents and W_dec.")
        if not grads_close(got, exp):
            return ("The gradient of l1_penalty is wrong: compute it from latents and W_dec with torch ops only, "
                    "so both receive the penalty's gradient.")
        return None
    if close(value, latents.sum(-1).mean()):
        return ("You returned the plain L1 norm. Weight each latent by the norm of its decoder row: otherwise the "
                "SAE can shrink latents and grow W_dec to dodge the penalty.")
    if close(value, (latents * W_dec.norm(dim=-1)).sum()):
        return "You summed over the batch too; average over tokens so the penalty is per token."
    if close(value, (latents * W_dec.norm(dim=0).mean()).sum(-1).mean()) or \
            close(value, (latents * W_dec.norm(dim=-1)).mean()):
        return "Check your axes: W_dec[j] is row j (shape [d_in]); sum over latents, mean over tokens."
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        return f"l1_penalty must return a scalar (one number for the batch); got shape {tuple(value.shape)}."
    return "l1_penalty differs from the reference: mean over tokens of sum_j latents[:, j] * ||W_dec[j]||."


L1_PENALTY = Exercise(
    "l1_penalty", ("penalty",), ("tensor",), _l1_reference,
    visible_cases=lambda: [_l1_case(torch.Generator().manual_seed(0), 6, 10, 4, "visible")],
    random_cases=lambda gen: [_l1_case(gen, int(torch.randint(1, 9, (1,), generator=gen)), 12, 5, "random sizes")],
    diagnose=_l1_diagnose)


# 2.1 — topk_activation(pre_acts [batch, d_sae], k) -> (values, indices), each [batch, k], ReLU applied

def _topk_reference(pre, k):
    values, indices = _package_topk(pre, k)
    return values, indices


def _topk_case(gen, n_tokens, d_sae, k, label):
    pre = torch.randn(n_tokens, d_sae, generator=gen)
    pre[0] = -torch.rand(d_sae, generator=gen) - 0.1  # a row with no positive pre-activation
    return Case((pre, k), label)


def _topk_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    pre, k = case.args
    values, indices = got.outputs
    shape = (pre.shape[0], k)
    if indices.is_floating_point() and not values.is_floating_point():
        return "You returned (indices, values): return (values, indices), in that order, as torch.topk does."
    if values.shape != shape or indices.shape != shape:
        return (f"values and indices must have shape [batch, k] = {shape}, got {tuple(values.shape)} and "
                f"{tuple(indices.shape)}. Did you take TopK over the wrong dimension?")
    if (values < 0).any():
        return "Some values are negative: apply ReLU (before or after TopK) so latents are >= 0."
    if not torch.allclose(values.float().sort(-1).values, exp.outputs[0].sort(-1).values, atol=1e-6):
        return ("The values are not the k largest pre-activations per row (after ReLU). Did you take TopK over "
                "the wrong dimension, or of |pre|?")
    if indices.is_floating_point() or (indices < 0).any() or (indices >= pre.shape[1]).any() or \
            not torch.allclose(torch.relu(pre.gather(-1, indices.long())), values.float(), atol=1e-6):
        return "indices do not point at the returned values: values[b, i] must equal relu(pre[b, indices[b, i]])."
    return None


def _topk_random(gen):
    n_tokens = int(torch.randint(1, 7, (1,), generator=gen))
    return [_topk_case(gen, n_tokens, 9, int(torch.randint(1, 5, (1,), generator=gen)), "random sizes")]


TOPK_ACTIVATION = Exercise(
    "topk_activation", ("values", "indices"), ("tensor", "tensor"), _topk_reference,
    visible_cases=lambda: [_topk_case(torch.Generator().manual_seed(1), 5, 12, 3, "visible")],
    random_cases=_topk_random, diagnose=_topk_diagnose)


# 2.2 — geometric_median(points [n, d]) -> [d], the point minimising the sum of Euclidean distances

def _median_case(gen, n, d, n_outliers, label):
    points = torch.cat([torch.randn(n, d, generator=gen), torch.full((n_outliers, d), 40.0)])
    return Case((points,), label)


def _median_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    (points,), value = case.args, got.outputs[0]
    if close(value, exp.outputs[0], atol=1e-2):
        return None
    if value.shape == exp.outputs[0].shape and not torch.isfinite(value).all():
        return ("Your median contains NaN/inf: a point sits exactly on the estimate (distance 0). Clamp the "
                "distances away from zero, e.g. .clamp_min(1e-8), before dividing.")
    if close(value, points.mean(0), atol=1e-2):
        return ("That is the mean, which outliers drag away. Iterate Weiszfeld: weight each point by 1 / distance "
                "to the current estimate and re-average.")
    if close(value, points.median(0).values, atol=1e-2):
        return ("That is the coordinate-wise median; the geometric median minimises the sum of Euclidean "
                "distances (Weiszfeld iteration).")
    if value.shape != exp.outputs[0].shape:
        return f"Return one point of shape [d] = {tuple(exp.outputs[0].shape)}; got {tuple(value.shape)}."
    return "The point differs from the geometric median: iterate Weiszfeld until it converges (about 100 steps)."


GEOMETRIC_MEDIAN = Exercise(
    "geometric_median", ("median",), ("tensor",), _package_geometric_median,
    visible_cases=lambda: [_median_case(torch.Generator().manual_seed(2), 60, 3, 6, "visible")],
    random_cases=lambda gen: [_median_case(gen, 30, 4, int(torch.randint(1, 5, (1,), generator=gen)),
                                           "random points with outliers")],
    diagnose=_median_diagnose)


# 4.1 — encoder_flops(d_in, d_sae, n_experts) -> forward FLOPs per token of router + routed encoder

def _flops_reference(d_in, d_sae, n_experts):
    arch = "switch" if n_experts > 1 else "topk"
    ledger = flops.forward_flops(SAEConfig(arch=arch, d_in=d_in, d_sae=d_sae, k=1, n_experts=n_experts))
    return ledger["encoder"] + ledger["router"]


def _flops_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    (d_in, d_sae, n_experts), value, expected = case.args, got.outputs[0], exp.outputs[0]
    if value == expected:
        return None
    router = 2 * d_in * n_experts if n_experts > 1 else 0
    if value * 2 == expected:
        return "Count a multiply-add as 2 FLOPs (one multiply, one add)."
    if n_experts > 1 and value == expected - router:
        return "Don't forget the router: a [d_in, E] matmul, 2 * d_in * E FLOPs per token."
    if n_experts > 1 and value == 2 * d_in * d_sae + router:
        return "A routed token only touches its own expert: d_sae / E encoder columns, not d_sae."
    return f"For d_in={d_in}, d_sae={d_sae}, E={n_experts} the count differs from the reference."


def _flops_random(gen):
    n_experts = 2 ** int(torch.randint(1, 6, (1,), generator=gen))
    return [Case((64 * int(torch.randint(1, 13, (1,), generator=gen)), 512 * n_experts, n_experts), "random sizes"),
            Case((96, 3072, 1), "a single expert (plain TopK)")]


ENCODER_FLOPS = Exercise(
    "encoder_flops", ("flops",), ("int",), _flops_reference,
    visible_cases=lambda: [Case(shape, "visible") for shape in [(768, 24576, 1), (768, 24576, 16), (128, 4096, 8)]],
    random_cases=_flops_random, diagnose=_flops_diagnose)
