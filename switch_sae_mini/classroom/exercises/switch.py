"""Exercises of chapter 03: top-1 routing, the Switch latents and the load-balancing loss (Mudide et al. 2024;
the balance loss is the Switch Transformer's). Their gradients are part of the answer: the gate is the
router's only reconstruction signal, and P is the balance loss's only path to the router."""

from __future__ import annotations

import torch

from ...config import SAEConfig
from ...saes import SwitchSAE
from ...saes import load_balance_loss as _package_load_balance_loss
from ...saes import route as _package_route
from .spec import Answer, Case, Exercise, close, grads_close, randint


# 3.1 — route(x [batch, d_in], W_router [d_in, E], b_router [d_in]) -> (expert_idx [batch], gate [batch])

def _route_reference(x, W_router, b_router):
    routing = _package_route(x, W_router, b_router)
    return routing.expert_idx, routing.gate


def _route_case(gen, n_tokens, d_in, n_experts, label):
    x, W = torch.randn(n_tokens, d_in, generator=gen), torch.randn(d_in, n_experts, generator=gen)
    b = torch.randn(d_in, generator=gen)
    return Case((x, W, b), label, grad_of=(1, 2), weights=(None, torch.linspace(-1, 1, n_tokens)))


def _route_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    x, W, b = case.args
    expert_idx, gate = got.outputs
    if expert_idx.shape == exp.outputs[0].shape and torch.equal(expert_idx.long(), exp.outputs[0]) and \
            close(gate, exp.outputs[1]):
        if all(g is None for g in got.grads):
            return ("gate has no gradient (it was detached, computed under no_grad or converted with .item()). "
                    "The gate is the router's only reconstruction signal: the argmax has no gradient, so "
                    "W_router learns only through the gate. Keep it in the autograd graph.")
        if not grads_close(got, exp):
            return ("gate has the right values but the wrong gradient with respect to W_router/b_router: compute "
                    "it with torch ops from softmax((x - b_router) @ W_router), without detaching any part.")
        return None
    if close(gate, ((x - b) @ W).max(-1).values):
        return "gate is a raw logit: apply softmax over the experts first, then take the max."
    if close(gate, torch.softmax((x - b) @ W, dim=0).max(-1).values):
        return ("Your softmax runs over the batch (dim 0). Normalise over experts (dim -1): each token's "
                "probabilities must sum to 1.")
    if close(gate, torch.softmax(x @ W + b @ W, -1).max(-1).values):
        return "Subtract b_router from x before the router matmul: (x - b_router) @ W_router."
    if close(gate, torch.softmax(x @ W, -1).max(-1).values):
        return "You ignored b_router: the router sees the centred input x - b_router."
    if close(expert_idx.float(), exp.outputs[1]) or expert_idx.is_floating_point():
        return "Return (expert_idx, gate) in that order: probs.max(dim=-1) gives (values, indices) = (gate, idx)."
    if expert_idx.shape != exp.outputs[0].shape or gate.shape != exp.outputs[1].shape:
        return (f"expert_idx and gate must each have shape [batch] = {tuple(exp.outputs[0].shape)}; got "
                f"{tuple(expert_idx.shape)} and {tuple(gate.shape)}.")
    return "expert_idx or gate differs from the reference: softmax((x - b_router) @ W_router) over experts, then max."


ROUTE = Exercise(
    "route", ("expert_idx", "gate"), ("tensor", "tensor"), _route_reference,
    visible_cases=lambda: [_route_case(torch.Generator().manual_seed(3), 8, 6, 4, "visible")],
    random_cases=lambda gen: [_route_case(gen, randint(gen, 1, 12), randint(gen, 2, 9), randint(gen, 2, 7),
                                          "random sizes")],
    diagnose=_route_diagnose)


# 3.2 — switch_latents(x, W_enc, b_dec, W_router, b_router, n_experts, k) -> dense latents [batch, d_sae]

def switch_case(d_in: int, d_sae: int, k: int, n_experts: int, n_tokens: int, gen: torch.Generator,
                label: str, plant: bool = True) -> Case:
    """A SwitchSAE's weights with nonzero biases (so forgetting to centre shows), and (plant=True) token 0 planted so
    that every pre-activation of its expert is negative (so a missing ReLU shows)."""
    with torch.random.fork_rng(devices=[]):  # the learner's global RNG stream stays as it was
        torch.manual_seed(randint(gen, 0, 2**31 - 1))
        sae = SwitchSAE(SAEConfig(arch="switch", d_in=d_in, d_sae=d_sae, k=k, n_experts=n_experts))
    x = torch.randn(n_tokens, d_in, generator=gen)
    with torch.no_grad():
        sae.b_dec.normal_(0, 0.3, generator=gen)
        sae.b_router.normal_(0, 0.3, generator=gen)
        e0, block = int(_package_route(x[:1], sae.W_router, sae.b_router).expert_idx), d_sae // n_experts
        direction = (x[0] - sae.b_dec) / (x[0] - sae.b_dec).norm()
        if plant:
            sae.W_enc[:, e0 * block:(e0 + 1) * block] = (-direction[:, None]
                                                         + 0.1 * torch.randn(d_in, block, generator=gen))
    args = tuple(t.detach().clone() for t in (x, sae.W_enc, sae.b_dec, sae.W_router, sae.b_router))
    return Case(args + (n_experts, k), label)


def manual_latents(x, W_enc, b_dec, W_router, b_router, n_experts, k, centre=True, relu=True) -> torch.Tensor:
    """Switch latents written out token by token; centre=False / relu=False give two typical wrong answers."""
    routing = _package_route(x, W_router, b_router)
    block = W_enc.shape[1] // n_experts
    latents = torch.zeros(x.shape[0], W_enc.shape[1])
    for t, e in enumerate(routing.expert_idx.tolist()):
        pre = ((x[t] - b_dec) if centre else x[t]) @ W_enc[:, e * block:(e + 1) * block]
        values, local = (torch.relu(pre) if relu else pre).topk(k)
        latents[t, e * block + local] = values * routing.gate[t]
    return latents


def _switch_latents_reference(x, W_enc, b_dec, W_router, b_router, n_experts, k):
    return manual_latents(x, W_enc, b_dec, W_router, b_router, n_experts, k)


def _switch_latents_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    latents, expected = got.outputs[0], exp.outputs[0]
    k = case.args[-1]
    if close(latents, expected):
        return None
    if latents.shape != expected.shape:
        return (f"Return dense latents of shape [batch, d_sae] = {tuple(expected.shape)}; got "
                f"{tuple(latents.shape)}. Take the batch size, d_sae and d_sae // n_experts from the arguments.")
    gate = torch.softmax((case.args[0] - case.args[4]) @ case.args[3], -1).max(-1).values[:, None]
    if close(latents * gate, expected):
        return ("Scale the routed expert's latents by its router probability (the gate): that is the only path by "
                "which reconstruction error trains the router.")
    if close(latents, manual_latents(*case.args, relu=False)) or (latents < 0).any():
        return ("Some latents are negative: apply ReLU to the expert's pre-activations (before or after TopK). "
                "Token 0 of every case has only negative pre-activations in its expert, so all its latents are 0.")
    if (latents != 0).sum(-1).max() > k:
        return "More than k latents are active: take TopK inside the routed expert only."
    if close(latents, manual_latents(*case.args, centre=False)):
        return ("You encoded x itself: centre it first, x - b_dec, before the expert's W_enc (these cases have a "
                "nonzero b_dec to show exactly this).")
    return ("Latents differ from the reference. Steps: route, centre x by b_dec, encode with the routed expert's "
            "block of W_enc columns, ReLU + TopK, scale by the gate, scatter into [batch, d_sae]. Nothing may be "
            "hard-coded: sizes come from the arguments.")


def _switch_latents_random(gen):
    n_experts, k = randint(gen, 2, 6), randint(gen, 1, 4)
    d_sae = n_experts * randint(gen, k + 2, 12)
    return [switch_case(randint(gen, 3, 9), d_sae, k, n_experts, randint(gen, 1, 12), gen, "random sizes")]


SWITCH_LATENTS = Exercise(
    "switch_latents", ("latents",), ("tensor",), _switch_latents_reference,
    visible_cases=lambda: [switch_case(6, 24, 2, 3, 10, torch.Generator().manual_seed(5), "visible")],
    random_cases=_switch_latents_random, diagnose=_switch_latents_diagnose, depends_on=("route",))


# 3.3 — load_balance_loss(router_probs [batch, E], expert_idx [batch], n_experts) -> E * sum_i f_i P_i

def _balance_case(gen, n_tokens, n_experts, label, unused: int | None = None):
    logits = 2 * torch.randn(n_tokens, n_experts, generator=gen)
    if unused is not None:
        logits[:, unused] = -10.0  # this expert is never chosen: f_i = 0
    probs = torch.softmax(logits, -1)
    return Case((probs, probs.argmax(-1), n_experts), label, grad_of=(0,), weights=(torch.tensor(1.0),))


def _balance_hint(case: Case) -> str:
    idx, n_experts = case.args[1], case.args[2]
    if (torch.bincount(idx, minlength=n_experts) == 0).any():
        return (" An expert receives no token here: f must still have n_experts entries "
                "(torch.bincount(expert_idx, minlength=n_experts)).")
    return ""


def _balance_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    probs, idx, n_experts = case.args
    value = got.outputs[0]
    f = torch.bincount(idx, minlength=n_experts).float() / idx.numel()
    P = probs.mean(0)
    if close(value, exp.outputs[0]):
        grad = got.grads[0] if got.grads else None
        if grad is None or not grad.abs().sum() > 0:
            return ("The loss has no gradient with respect to router_probs (P was detached or computed under "
                    "no_grad). f comes from an argmax and has no gradient, so P is the only path by which this loss "
                    "balances the router: dL/dP_i = E * f_i.")
        if not grads_close(got, exp):
            return ("The gradient with respect to router_probs is wrong: it must be E * f_i / batch for every token "
                    "(f treated as a constant, P_i the mean over the batch).")
        return None
    hint = _balance_hint(case) if not close(value, exp.outputs[0]) else ""
    if close(value, (f * P).sum()):
        return "Missing the factor n_experts: E * sum_i f_i P_i equals 1 at perfect balance." + hint
    if close(value, n_experts * (P * P).sum()):
        return ("f_i must be the fraction of tokens *routed* to expert i (count argmax choices), not the mean "
                "probability again." + hint)
    if close(value, n_experts * (f * P).sum() * idx.numel()):
        return "f_i and P_i are fractions/means over the batch: divide counts by the number of tokens." + hint
    if case.label == "uniform routing":
        return "Under perfectly uniform routing the loss must be exactly 1." + hint
    return "The loss differs from E * sum_i f_i P_i." + hint


def _uniform_case():
    return Case((torch.full((8, 4), 0.25), torch.arange(8) % 4, 4), "uniform routing", grad_of=(0,),
                weights=(torch.tensor(1.0),))


LOAD_BALANCE_LOSS = Exercise(
    "load_balance_loss", ("loss",), ("tensor",), _package_load_balance_loss,
    visible_cases=lambda: [_balance_case(torch.Generator().manual_seed(4), 50, 4, "visible"), _uniform_case()],
    random_cases=lambda gen: [_balance_case(gen, randint(gen, 1, 40), randint(gen, 2, 8), "random sizes")],
    diagnose=_balance_diagnose, error_hint=_balance_hint)
