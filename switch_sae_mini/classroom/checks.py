"""Exercise checks for the notebooks: each compares a learner's function with the package's own implementation
on small seeded inputs, raises CheckFailed with a teaching message on a wrong answer, and prints one line on
success. tests/test_checks.py proves every check rejects a stub and typical wrong answers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import flops
from ..config import SAEConfig
from ..errors import SwitchSAEError
from ..saes import SwitchSAE, geometric_median, load_balance_loss, route, topk_activation


class CheckFailed(SwitchSAEError, AssertionError):
    """The learner's function gave a wrong answer; the message says what to look at."""


def _call(name: str, fn: Callable, *args):
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(f"{name} still raises NotImplementedError: replace the stub with your code.") from None
    except CheckFailed:
        raise
    except Exception as exc:  # the learner's code crashed: show what and where, not a stack of ours
        raise CheckFailed(f"{name} raised {type(exc).__name__}: {exc}") from exc


def _close(a, b, atol=1e-5) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


def _passed(name: str) -> None:
    print(f"✓ {name} passed")


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
        return _passed("check_load_balance_loss")
    if _close(got, (f * P).sum()):
        raise CheckFailed("Missing the factor n_experts: E * sum_i f_i P_i equals 1 at perfect balance.")
    if _close(got, 4 * (P * P).sum()):
        raise CheckFailed("f_i must be the fraction of tokens *routed* to expert i (count argmax choices), not "
                          "the mean probability again.")
    if _close(got, 4 * (f * P).sum() * 50):
        raise CheckFailed("f_i and P_i are fractions/means over the batch: divide counts by the number of tokens.")
    raise CheckFailed(f"Expected {float(expected):.5f}, got {got!r}.")


def _switch_case(d_in: int, d_sae: int, k: int, n_experts: int, seed: int, n_tokens: int):
    """A reference SwitchSAE with nonzero biases (so forgetting to centre by them shows) and a batch of inputs."""
    torch.manual_seed(seed)
    sae = SwitchSAE(SAEConfig(arch="switch", d_in=d_in, d_sae=d_sae, k=k, n_experts=n_experts))
    with torch.no_grad():
        sae.b_dec.normal_(0, 0.3)
        sae.b_router.normal_(0, 0.3)
    return sae, torch.randn(n_tokens, d_in)


def check_switch_latents(fn: Callable) -> None:
    """fn(x, W_enc [d_in, d_sae], b_dec, W_router, b_router, n_experts, k) -> dense latents [batch, d_sae]."""
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
    if torch.is_tensor(got) and got.shape == expected.shape and (got != 0).sum(-1).max() > 2:
        raise CheckFailed("More than k latents are active: take TopK inside the routed expert only.")
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


# Hidden checks: run by `python -m switch_sae_mini grade` after the visible check (assignments.HIDDEN_CHECKS),
# never shown in the student release. Each tests a property the visible example cannot reveal.

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
