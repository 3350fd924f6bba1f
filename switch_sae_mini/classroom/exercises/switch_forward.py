"""Exercise 3.4 of chapter 03: the whole Switch SAE forward pass with the tokens grouped per expert, one matmul per
expert instead of one per token (the routed computation of Mudide et al. 2024 that makes a wide dictionary cheap;
saes/switch.py and saes/kernels.py are the package's version). Chapter 03 trains a Switch SAE with it."""

from __future__ import annotations

import torch

from ...saes import route as _package_route
from .spec import Answer, Case, Exercise, close, dense_codes, grads_close, randint
from .switch import switch_case


def _grouped(x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k, gate=True, centre=True, relu=True,
             offset=True, add_b_dec=True):
    """The reference, and (with a flag off) the typical wrong answers."""
    routing = _package_route(x, W_router, b_router)
    d_expert = W_enc.shape[1] // n_experts
    values = x.new_zeros(x.shape[0], k)
    indices = torch.zeros(x.shape[0], k, dtype=torch.long)
    for e in range(n_experts):
        rows = (routing.expert_idx == e).nonzero().squeeze(-1)
        if rows.numel() == 0:
            continue
        pre = ((x[rows] - b_dec) if centre else x[rows]) @ W_enc[:, e * d_expert:(e + 1) * d_expert]
        top, local = (torch.relu(pre) if relu else pre).topk(k, dim=-1)
        values = values.index_put((rows,), top * routing.gate[rows, None] if gate else top)
        indices = indices.index_put((rows,), local + e * d_expert if offset else local)
    x_hat = (values[..., None] * W_dec[indices]).sum(-2) + (b_dec if add_b_dec else 0)
    return x_hat, values, indices


def _reference(x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k):
    return _grouped(x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k)


def _case(gen, d_in, d_sae, k, n_experts, n_tokens, label, plant=True):
    """switch_case's weights (plant: token 0's expert has only negative pre-activations), a unit-norm decoder, and
    one expert (not token 0's) that receives no token: its router column is the mean of the others, so its logit
    is below the largest (strictly, with n_experts >= 3: with two experts it would tie with the other one)."""
    if n_experts < 3:
        raise ValueError("switch_forward cases need n_experts >= 3 (one of them is left without tokens).")
    x, W_enc, b_dec, W_router, b_router = switch_case(d_in, d_sae, k, n_experts, n_tokens, gen, label,
                                                      plant=plant).args[:5]
    e0 = int(_package_route(x[:1], W_router, b_router).expert_idx)
    empty = (e0 + 1) % n_experts
    others = [e for e in range(n_experts) if e != empty]
    W_router[:, empty] = W_router[:, others].mean(-1)
    if not plant:  # the opposite of the plant: token 0's expert fires on it, so its gate and offset show
        d_expert = d_sae // n_experts
        direction = (x[0] - b_dec) / (x[0] - b_dec).norm()
        W_enc[:, e0 * d_expert:(e0 + 1) * d_expert] = direction[:, None] + 0.1 * torch.randn(
            d_in, d_expert, generator=gen)
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return Case((x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k), label, grad_of=(1, 2, 3, 4, 5),
                weights=(torch.randn(n_tokens, d_in, generator=gen), None, None))


def _diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k = case.args
    x_hat, values, indices = got.outputs
    d_sae = W_enc.shape[1]
    if indices.is_floating_point() and not values.is_floating_point():
        return "You returned (x_hat, indices, values): return (x_hat, values, indices)."
    if x_hat.shape != x.shape or values.shape != (x.shape[0], k) or indices.shape != (x.shape[0], k):
        return (f"Shapes: x_hat {tuple(x.shape)}, values and indices [batch, k] = {(x.shape[0], k)}; got "
                f"{tuple(x_hat.shape)}, {tuple(values.shape)}, {tuple(indices.shape)}. Take every size from the "
                "arguments (d_expert = d_sae // n_experts).")
    if indices.is_floating_point() or (indices < 0).any() or (indices >= d_sae).any():
        return "indices must be integer latent positions in [0, d_sae), the expert's offset included."
    dense, expected = dense_codes(values, indices, d_sae), dense_codes(exp.outputs[1], exp.outputs[2], d_sae)
    if not close(dense, expected):
        for flags, message in [
                ({"offset": False}, "The indices are local to the expert's block: add e * d_expert so they "
                                    "index the whole dictionary (W_dec[indices] must pick the expert's rows)."),
                ({"gate": False}, "Scale each token's values by its gate: without it the router gets no "
                                  "reconstruction gradient (the argmax has none)."),
                ({"relu": False}, "Apply ReLU before TopK: token 0's expert has only negative pre-activations, so "
                                  "its values must all be 0."),
                ({"centre": False}, "Centre the input by b_dec before the expert's encoder: (x - b_dec) @ W_enc."),
        ]:
            if close(dense, dense_codes(*_grouped(*case.args, **flags)[1:], d_sae)):
                return message
        return ("The latents differ. Per expert e: the tokens routed to e, (x - b_dec) @ its block of W_enc "
                "columns, ReLU, TopK, times the gate; indices offset by e * d_expert. (This case has an expert "
                "that receives no token: skip it, do not fail.)")
    if not close(x_hat, exp.outputs[0], atol=1e-4):
        if close(x_hat, _grouped(*case.args, add_b_dec=False)[0], atol=1e-4):
            return "Add b_dec after decoding: x_hat = sum_i values_i * W_dec[indices_i] + b_dec."
        return "x_hat differs: decode with the chosen rows, sum_i values_i * W_dec[indices_i], plus b_dec."
    def missing(i):
        g = got.grads[i] if got.grads else None
        return exp.grads[i] is not None and exp.grads[i].abs().sum() > 0 and (g is None or not g.abs().sum() > 0)
    if missing(0):
        return ("values carry no gradient to W_enc: they were written under torch.no_grad(), through .data, or "
                "detached. Build them with ops that keep the graph (index_put, or values[rows] = ... outside "
                "no_grad), or the encoder cannot learn.")
    router_grad, expected_grad = got.grads[3] if got.grads else None, exp.grads[3]
    if expected_grad is not None and expected_grad.abs().sum() > 0 and (
            router_grad is None or not router_grad.abs().sum() > 0):
        return ("x_hat has no gradient with respect to W_router: keep the gate in the graph (no .detach(), no "
                "torch.no_grad()). It is the router's only reconstruction signal.")
    if not grads_close(got, exp, atol=1e-4):
        return ("The outputs are right but a gradient is not: build values and x_hat with torch ops that keep the "
                "graph (index_put or torch.cat, not writes into a tensor under no_grad or .data).")
    return None


def _random(gen):
    n_experts, k = randint(gen, 3, 7), randint(gen, 1, 4)
    d_sae = n_experts * randint(gen, k + 2, 10)
    # the batch of one is planted the other way: its single token has latents, so a missing gate or offset shows
    return [_case(gen, randint(gen, 3, 9), d_sae, k, n_experts, randint(gen, 2, 14), "random sizes"),
            _case(gen, 4, 3 * (k + 2), k, 3, 1, "a batch of one", plant=False)]


SWITCH_FORWARD = Exercise(
    "switch_forward", ("x_hat", "values", "indices"), ("tensor",) * 3, _reference,
    visible_cases=lambda: [_case(torch.Generator().manual_seed(31), 6, 24, 2, 4, 12, "visible")],
    random_cases=_random, diagnose=_diagnose, depends_on=("route",))
