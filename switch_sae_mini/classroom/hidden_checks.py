"""Hidden checks: run by `python -m switch_sae_mini grade` after the visible check (assignments.HIDDEN_CHECKS),
never shown in the student release. Each tests a property the visible example cannot reveal."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..saes import load_balance_loss
from .check_base import CheckFailed, _call, _close, _passed, _switch_case

def check_l1_penalty_differentiable(fn: Callable) -> None:
    """The penalty must keep the autograd graph: training minimises it through latents and W_dec."""
    gen = torch.Generator().manual_seed(10)
    latents = torch.relu(torch.randn(5, 7, generator=gen)).requires_grad_()
    W_dec = torch.randn(7, 3, generator=gen).requires_grad_()
    got = _call("l1_penalty", fn, latents, W_dec)
    if not (torch.is_tensor(got) and got.requires_grad):
        raise CheckFailed("l1_penalty must return a tensor that keeps the autograd graph (no .item(), .detach(), "
                          "float() or torch.no_grad()); otherwise training cannot minimise the penalty.")
    got_grads = torch.autograd.grad(got, (latents, W_dec))
    expected_grads = torch.autograd.grad((latents * W_dec.norm(dim=-1)).sum(-1).mean(), (latents, W_dec))
    if not all(_close(g, e) for g, e in zip(got_grads, expected_grads)):
        raise CheckFailed("The gradient of l1_penalty is wrong: compute it from latents and W_dec with torch ops "
                          "only, so both receive the penalty's gradient.")
    _passed("check_l1_penalty_differentiable")


def check_geometric_median_point_at_estimate(fn: Callable) -> None:
    """A data point exactly at the current estimate has distance 0: the weights must not become inf/NaN."""
    axes = torch.eye(3) * torch.tensor([1.0, 2.0, 3.0])[:, None]
    points = torch.cat([torch.zeros(1, 3), axes, -axes])  # symmetric around the origin, which is a data point
    got = _call("geometric_median", fn, points)
    if torch.is_tensor(got) and not torch.isfinite(got).all():
        raise CheckFailed("Your median contains NaN/inf when a point sits exactly on the estimate (distance 0). "
                          "Clamp the distances away from zero, e.g. .clamp_min(1e-8), before dividing.")
    if not _close(got, torch.zeros(3), atol=1e-3):
        raise CheckFailed(f"For points symmetric around the origin (one of them at the origin) the geometric "
                          f"median is the origin; got {got!r}.")
    _passed("check_geometric_median_point_at_estimate")


def check_load_balance_loss_unused_expert(fn: Callable) -> None:
    """An expert that receives no token still counts, with f_i = 0 (a bincount needs minlength)."""
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(12, 4, generator=gen)
    logits[:, 3] = -10.0  # the last expert is never chosen
    probs = torch.softmax(logits, -1)
    idx = probs.argmax(-1)
    try:
        got = _call("load_balance_loss", fn, probs, idx, 4)
    except CheckFailed as exc:
        raise CheckFailed(f"{exc} (Here expert 3 receives no token: f must still have n_experts entries "
                          "(torch.bincount(expert_idx, minlength=n_experts)).)") from exc
    expected = load_balance_loss(probs, idx, 4)
    if not _close(got, expected):
        raise CheckFailed(f"With an unused expert expected {float(expected):.5f}, got {got!r}: f_i = 0 for an "
                          "expert without tokens, and the sum runs over all n_experts.")
    _passed("check_load_balance_loss_unused_expert")


def check_switch_latents_other_sizes(fn: Callable) -> None:
    """check_switch_latents at other sizes (E=4, d_sae=40, k=3, d_in=5, 7 tokens): nothing may be hard-coded."""
    sae, x = _switch_case(d_in=5, d_sae=40, k=3, n_experts=4, seed=12, n_tokens=7)
    with torch.no_grad():
        got = _call("switch_latents", fn, x, sae.W_enc, sae.b_dec, sae.W_router, sae.b_router, 4, 3)
        expected = sae(x).latents
    if not _close(got, expected):
        raise CheckFailed("switch_latents is right on the visible example but wrong for E=4, d_sae=40, k=3, d_in=5 "
                          "and 7 tokens: take the batch size, d_sae // n_experts and k from the arguments.")
    _passed("check_switch_latents_other_sizes")
