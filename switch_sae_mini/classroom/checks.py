"""Exercise checks for the notebooks: each compares a learner's function with the package's own implementation
on small seeded inputs, raises CheckFailed with a teaching message on a wrong answer, and prints one line on
success. tests/test_checks.py proves every check rejects a stub and typical wrong answers.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import torch

from .. import flops
from ..config import SAEConfig
from ..saes import geometric_median, load_balance_loss, route, topk_activation
from .check_base import CheckFailed, _call, _close, _manual_latents, _passed, _switch_case
# The hidden checks are importable from here too (assignments.HIDDEN_CHECKS calls them as checks.<name>).
from .hidden_checks import (check_geometric_median_point_at_estimate, check_l1_penalty_differentiable,  # noqa: F401
                            check_load_balance_loss_unused_expert, check_switch_latents_other_sizes)


def check_l1_penalty(fn: Callable) -> None:
    """fn(latents [batch, d_sae], W_dec [d_sae, d_in]) -> scalar: mean over tokens of sum_j f_j * ||W_dec[j]||."""
    gen = torch.Generator().manual_seed(0)
    latents = torch.relu(torch.randn(6, 10, generator=gen))
    W_dec = torch.randn(10, 4, generator=gen) * torch.linspace(0.2, 3, 10)[:, None]
    got = _call("l1_penalty", fn, latents, W_dec)
    expected = (latents * W_dec.norm(dim=-1)).sum(-1).mean()
    if _close(got, expected):
        return _passed("check_l1_penalty")
    if _close(got, latents.sum(-1).mean()):
        raise CheckFailed("You returned the plain L1 norm. Weight each latent by the norm of its decoder row: "
                          "otherwise the SAE can shrink latents and grow W_dec to dodge the penalty.")
    if _close(got, (latents * W_dec.norm(dim=-1)).sum()):
        raise CheckFailed("You summed over the batch too; average over tokens so the penalty is per token.")
    if _close(got, (latents * W_dec.norm(dim=0).mean()).sum(-1).mean()) or \
            _close(got, (latents * W_dec.norm(dim=-1)).mean()):
        raise CheckFailed("Check your axes: W_dec[j] is row j (shape [d_in]); sum over latents, mean over tokens.")
    raise CheckFailed(f"l1_penalty gave {got!r}, expected {float(expected):.5f}.")


def check_topk_activation(fn: Callable) -> None:
    """fn(pre_acts [batch, d_sae], k) -> (values [batch, k], indices [batch, k]), ReLU applied."""
    gen = torch.Generator().manual_seed(1)
    pre = torch.randn(5, 12, generator=gen)
    pre[0] = -torch.rand(12, generator=gen) - 0.1  # a row with no positive pre-activation
    out = _call("topk_activation", fn, pre, 3)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise CheckFailed("Return a tuple (values, indices), each of shape [batch, k].")
    values, indices = out
    exp_values, _ = topk_activation(pre, 3)
    if not (isinstance(values, torch.Tensor) and values.shape == (5, 3) and indices.shape == (5, 3)):
        raise CheckFailed(f"values and indices must have shape [batch, k] = (5, 3), got "
                          f"{getattr(values, 'shape', None)} and {getattr(indices, 'shape', None)}.")
    if (values < 0).any():
        raise CheckFailed("Some values are negative: apply ReLU (before or after TopK) so latents are >= 0.")
    if not torch.allclose(values.sort(-1).values, exp_values.sort(-1).values, atol=1e-6):
        raise CheckFailed("The values are not the k largest pre-activations per row (after ReLU). Did you take "
                          "TopK over the wrong dimension, or of |pre|?")
    if not torch.allclose(torch.relu(pre.gather(-1, indices)), values, atol=1e-6):
        raise CheckFailed("indices do not point at the returned values: values[b, i] must equal "
                          "relu(pre[b, indices[b, i]]).")
    _passed("check_topk_activation")


def check_geometric_median(fn: Callable) -> None:
    """fn(points [n, d]) -> [d]: the point minimising the sum of Euclidean distances."""
    gen = torch.Generator().manual_seed(2)
    points = torch.cat([torch.randn(60, 3, generator=gen), torch.full((6, 3), 40.0)])
    got = _call("geometric_median", fn, points)
    expected = geometric_median(points)
    if _close(got, expected, atol=1e-2):
        return _passed("check_geometric_median")
    if _close(got, points.mean(0), atol=1e-2):
        raise CheckFailed("That is the mean, which the 6 outliers drag away. Iterate Weiszfeld: weight each point "
                          "by 1 / distance to the current estimate and re-average.")
    if _close(got, points.median(0).values, atol=1e-2):
        raise CheckFailed("That is the coordinate-wise median; the geometric median minimises the sum of "
                          "Euclidean distances (Weiszfeld iteration).")
    raise CheckFailed(f"Expected about {expected.tolist()}, got {got!r}.")


def check_route(fn: Callable) -> None:
    """fn(x [batch, d_in], W_router [d_in, E], b_router [d_in]) -> (expert_idx [batch], gate [batch])."""
    gen = torch.Generator().manual_seed(3)
    x, W, b = torch.randn(8, 6, generator=gen), torch.randn(6, 4, generator=gen), torch.randn(6, generator=gen)
    out = _call("route", fn, x, W, b)
    if not (isinstance(out, tuple) and len(out) >= 2):
        raise CheckFailed("Return (expert_idx, gate): the chosen expert per token and its router probability.")
    expert_idx, gate = out[0], out[1]
    exp = route(x, W, b)
    if torch.is_tensor(expert_idx) and torch.equal(expert_idx.long(), exp.expert_idx) and _close(gate, exp.gate):
        _check_gate_gradient(fn, x, W, b)
        return _passed("check_route")
    if torch.is_tensor(gate) and _close(gate, ((x - b) @ W).max(-1).values):
        raise CheckFailed("gate is a raw logit: apply softmax over the experts first, then take the max.")
    if torch.is_tensor(gate) and _close(gate, torch.softmax((x - b) @ W, dim=0).max(-1).values):
        raise CheckFailed("Your softmax runs over the batch (dim 0). Normalise over experts (dim -1): each "
                          "token's probabilities must sum to 1.")
    if torch.is_tensor(gate) and _close(gate, torch.softmax(x @ W + b @ W, -1).max(-1).values):
        raise CheckFailed("Subtract b_router from x before the router matmul: (x - b_router) @ W_router.")
    if torch.is_tensor(gate) and _close(gate, torch.softmax(x @ W, -1).max(-1).values):
        raise CheckFailed("You ignored b_router: the router sees the centred input x - b_router.")
    raise CheckFailed(f"Expected expert_idx {exp.expert_idx.tolist()} and gate {exp.gate.tolist()}.")


def _check_gate_gradient(fn: Callable, x, W, b) -> None:
    """The gate must carry the router's gradient: it is the router's only reconstruction signal (paper §3.1)."""
    W, b = W.clone().requires_grad_(), b.clone().requires_grad_()
    gate = _call("route", fn, x, W, b)[1]
    weights = torch.linspace(-1, 1, gate.shape[0])
    if not (torch.is_tensor(gate) and gate.requires_grad):
        raise CheckFailed("gate has no gradient (it was detached, computed under no_grad or converted with "
                          ".item()). The gate is the router's only reconstruction signal: the argmax has no "
                          "gradient, so W_router learns only through the gate. Keep it in the autograd graph.")
    got = torch.autograd.grad((gate * weights).sum(), (W, b), allow_unused=True)
    ref_W, ref_b = W.detach().requires_grad_(), b.detach().requires_grad_()
    expected = torch.autograd.grad((route(x, ref_W, ref_b).gate * weights).sum(), (ref_W, ref_b))
    if not all(g is not None and _close(g, e) for g, e in zip(got, expected)):
        raise CheckFailed("gate has the right values but the wrong gradient with respect to W_router/b_router: "
                          "compute it with torch ops from softmax((x - b_router) @ W_router), without detaching "
                          "any part.")


def check_load_balance_loss(fn: Callable) -> None:
    """fn(router_probs [batch, E], expert_idx [batch], n_experts) -> scalar E * sum_i f_i P_i."""
    gen = torch.Generator().manual_seed(4)
    probs = torch.softmax(2 * torch.randn(50, 4, generator=gen), -1)
    idx = probs.argmax(-1)
    got = _call("load_balance_loss", fn, probs, idx, 4)
    expected = load_balance_loss(probs, idx, 4)
    f = torch.bincount(idx, minlength=4).float() / 50
    P = probs.mean(0)
    if _close(got, expected):
        uniform = _call("load_balance_loss", fn, torch.full((8, 4), 0.25), torch.arange(8) % 4, 4)
        if not _close(uniform, torch.tensor(1.0)):
            raise CheckFailed("Under perfectly uniform routing the loss must be exactly 1.")
        _check_balance_gradient(fn, probs, idx, f)
        return _passed("check_load_balance_loss")
    if _close(got, (f * P).sum()):
        raise CheckFailed("Missing the factor n_experts: E * sum_i f_i P_i equals 1 at perfect balance.")
    if _close(got, 4 * (P * P).sum()):
        raise CheckFailed("f_i must be the fraction of tokens *routed* to expert i (count argmax choices), not "
                          "the mean probability again.")
    if _close(got, 4 * (f * P).sum() * 50):
        raise CheckFailed("f_i and P_i are fractions/means over the batch: divide counts by the number of tokens.")
    raise CheckFailed(f"Expected {float(expected):.5f}, got {got!r}.")


def _check_balance_gradient(fn: Callable, probs, idx, f) -> None:
    """dL/dP_i = E * f_i, i.e. d/d probs[b, i] = E * f_i / batch: the only gradient that balances the router."""
    probs = probs.clone().requires_grad_()
    loss = _call("load_balance_loss", fn, probs, idx, 4)
    grad = torch.autograd.grad(loss, probs, allow_unused=True)[0] if loss.requires_grad else None
    if grad is None or not grad.abs().sum() > 0:
        raise CheckFailed("The loss has no gradient with respect to router_probs (P was detached or computed "
                          "under no_grad). f comes from an argmax and has no gradient, so P is the only path by "
                          "which this loss balances the router: dL/dP_i = E * f_i.")
    if not _close(grad, (4 * f / probs.shape[0]).expand_as(probs)):
        raise CheckFailed("The gradient with respect to router_probs is wrong: it must be E * f_i / batch for "
                          "every token (f treated as a constant, P_i the mean over the batch).")


def _check_dependency(fn: Callable, name: str, check: Callable, exercise: str) -> None:
    """If fn's notebook defines its own `name` (an earlier exercise), check that first: a mistake there is then
    reported as its own, not as an unexplained failure here."""
    own = getattr(fn, "__globals__", {}).get(name)
    if own is None or (getattr(own, "__module__", None) or "").startswith("switch_sae_mini"):
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(own)
    except CheckFailed as exc:
        raise CheckFailed(f"your {name} fails check_{name} (exercise {exercise}), and {fn.__name__} calls it: fix "
                          f"{exercise} first. Its message: {exc}") from None


def check_switch_latents(fn: Callable) -> None:
    """fn(x, W_enc [d_in, d_sae], b_dec, W_router, b_router, n_experts, k) -> dense latents [batch, d_sae]."""
    _check_dependency(fn, "route", check_route, "3.1")
    sae, x = _switch_case(d_in=6, d_sae=24, k=2, n_experts=3, seed=5, n_tokens=10)
    with torch.no_grad():
        got = _call("switch_latents", fn, x, sae.W_enc, sae.b_dec, sae.W_router, sae.b_router, 3, 2)
        out = sae(x)
    expected = out.latents
    if _close(got, expected):
        return _passed("check_switch_latents")
    gate = out.router_probs.max(-1).values[:, None]
    if _close(got * gate, expected):
        raise CheckFailed("Scale the routed expert's latents by its router probability (the gate): that is the "
                          "only path by which reconstruction error trains the router.")
    if _close(got, _manual_latents(sae, x, relu=False)) or (torch.is_tensor(got) and got.shape == expected.shape
                                                             and (got < 0).any()):
        raise CheckFailed("Some latents are negative: apply ReLU to the expert's pre-activations (before or after "
                          "TopK). Token 0 of this case has only negative pre-activations in its expert, so all "
                          "its latents must be 0.")
    if torch.is_tensor(got) and got.shape == expected.shape and (got != 0).sum(-1).max() > 2:
        raise CheckFailed("More than k latents are active: take TopK inside the routed expert only.")
    if _close(got, _manual_latents(sae, x, centre=False)):
        raise CheckFailed("You encoded x itself: centre it first, x - b_dec, before the expert's W_enc (this case "
                          "has a nonzero b_dec to show exactly this).")
    raise CheckFailed("Latents differ from the reference. Steps: route, centre x by b_dec, encode with the routed "
                      "expert's block of W_enc columns, ReLU + TopK, scale by the gate, scatter into [batch, d_sae].")


def check_encoder_flops(fn: Callable) -> None:
    """fn(d_in, d_sae, n_experts) -> forward FLOPs per token of router + routed encoder (multiply-add = 2)."""
    for d_in, d_sae, n_experts in [(768, 24576, 1), (768, 24576, 16), (128, 4096, 8)]:
        got = _call("encoder_flops", fn, d_in, d_sae, n_experts)
        arch = "switch" if n_experts > 1 else "topk"
        ledger = flops.forward_flops(SAEConfig(arch=arch, d_in=d_in, d_sae=d_sae, k=1, n_experts=n_experts))
        expected = ledger["encoder"] + ledger["router"]
        if got == expected:
            continue
        if got == expected // 2:
            raise CheckFailed("Count a multiply-add as 2 FLOPs (one multiply, one add).")
        if n_experts > 1 and got == ledger["encoder"]:
            raise CheckFailed("Don't forget the router: a [d_in, E] matmul, 2 * d_in * E FLOPs per token.")
        if n_experts > 1 and got == 2 * d_in * d_sae + ledger["router"]:
            raise CheckFailed("A routed token only touches its own expert: d_sae / E encoder columns, not d_sae.")
        raise CheckFailed(f"For d_in={d_in}, d_sae={d_sae}, E={n_experts} expected {expected:,}, got {got!r}.")
    _passed("check_encoder_flops")
