"""Every exercise check passes the package's own answer and rejects a stub and typical wrong answers."""

import pytest
import torch

from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed
from switch_sae_mini.saes import geometric_median, topk_activation
from switch_sae_mini.saes import load_balance_loss, route


def stub(*args):
    raise NotImplementedError()


def test_l1_penalty():
    right = lambda f, W: (f * W.norm(dim=-1)).sum(-1).mean()
    checks.check_l1_penalty(right)
    for wrong, message in [(stub, "NotImplementedError"), (lambda f, W: f.sum(-1).mean(), "plain L1"),
                           (lambda f, W: (f * W.norm(dim=-1)).sum(), "summed over the batch"),
                           (lambda f, W: (f * W.norm(dim=-1)).mean(), "axes")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_l1_penalty(wrong)


def test_topk_activation():
    checks.check_topk_activation(topk_activation)
    for wrong, message in [(stub, "NotImplementedError"), (lambda p, k: p.topk(k, dim=-1), "negative"),
                           (lambda p, k: torch.relu(p).topk(k, dim=0), "shape"),
                           (lambda p, k: (torch.relu(p).topk(k).values, torch.zeros_like(p[:, :k]).long()),
                            "indices do not point"),
                           (lambda p, k: torch.relu(p).topk(k).values, "tuple")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_topk_activation(wrong)


def test_geometric_median():
    checks.check_geometric_median(geometric_median)
    for wrong, message in [(stub, "NotImplementedError"), (lambda p: p.mean(0), "mean"),
                           (lambda p: p.median(0).values, "coordinate-wise")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_geometric_median(wrong)


def test_route():
    checks.check_route(lambda x, W, b: tuple(route(x, W, b))[:2])
    def softmax_wrong_axis(x, W, b):
        gate, idx = torch.softmax((x - b) @ W, dim=0).max(-1)
        return idx, gate
    def logits(x, W, b):
        gate, idx = ((x - b) @ W).max(-1)
        return idx, gate
    def added_bias(x, W, b):
        gate, idx = torch.softmax(x @ W + b @ W, -1).max(-1)
        return idx, gate
    def no_bias(x, W, b):
        gate, idx = torch.softmax(x @ W, -1).max(-1)
        return idx, gate
    for wrong, message in [(stub, "NotImplementedError"), (softmax_wrong_axis, "over the batch"),
                           (logits, "raw logit"), (added_bias, "Subtract b_router"), (no_bias, "ignored b_router")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_route(wrong)


def test_load_balance_loss():
    checks.check_load_balance_loss(load_balance_loss)
    def f_of(idx, E):
        return torch.bincount(idx, minlength=E).float() / idx.numel()
    for wrong, message in [
        (stub, "NotImplementedError"),
        (lambda p, i, E: (f_of(i, E) * p.mean(0)).sum(), "factor n_experts"),
        (lambda p, i, E: E * (p.mean(0) ** 2).sum(), "routed"),
        (lambda p, i, E: E * (torch.bincount(i, minlength=E).float() * p.mean(0)).sum(), "divide counts"),
    ]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_load_balance_loss(wrong)


def _switch_latents(x, W_enc, b_dec, W_router, b_router, n_experts, k, scale=True, k_override=None):
    expert_idx, gate, _ = route(x, W_router, b_router)
    m = W_enc.shape[1] // n_experts
    latents = torch.zeros(x.shape[0], W_enc.shape[1])
    for b in range(x.shape[0]):
        e = int(expert_idx[b])
        pre = (x[b] - b_dec) @ W_enc[:, e * m:(e + 1) * m]
        values, idx = topk_activation(pre[None], k_override or k)
        latents[b, e * m + idx[0]] = values[0] * (gate[b] if scale else 1.0)
    return latents


def test_switch_latents():
    checks.check_switch_latents(_switch_latents)
    for wrong, message in [(stub, "NotImplementedError"),
                           (lambda *a: _switch_latents(*a, scale=False), "router probability"),
                           (lambda *a: _switch_latents(*a, k_override=4), "More than k"),
                           (lambda x, *a: torch.zeros(x.shape[0], 24), "differ from the reference")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_switch_latents(wrong)


def test_encoder_flops():
    checks.check_encoder_flops(lambda d, M, E: 2 * d * (M // E) + (2 * d * E if E > 1 else 0))
    for wrong, message in [(stub, "NotImplementedError"),
                           (lambda d, M, E: d * (M // E) + (d * E if E > 1 else 0), "2 FLOPs"),
                           (lambda d, M, E: 2 * d * (M // E), "router"),
                           (lambda d, M, E: 2 * d * M + (2 * d * E if E > 1 else 0), "own expert")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_encoder_flops(wrong)


def test_crashing_learner_code_is_reported_not_hidden():
    with pytest.raises(CheckFailed, match="ZeroDivisionError"):
        checks.check_route(lambda x, W, b: 1 / 0)


def test_success_prints_one_line(capsys):
    checks.check_topk_activation(topk_activation)
    assert capsys.readouterr().out.strip() == "✓ check_topk_activation passed"
