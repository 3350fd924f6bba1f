"""Every exercise check passes the package's own answer and rejects a stub and typical wrong answers."""

import pytest
import torch

from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed
from switch_sae_mini.saes import geometric_median, topk_activation
from switch_sae_mini.saes import load_balance_loss, route


def stub(*args):
    raise NotImplementedError()


# Right answers written out here: the package's own functions are tripwired inside a check.
def own_topk(pre, k):
    return torch.relu(pre).topk(k, dim=-1)


def own_geometric_median(points, iters=200):
    median = points.mean(0)
    for _ in range(iters):
        weights = 1 / (points - median).norm(dim=-1).clamp_min(1e-8)
        median = (weights[:, None] * points).sum(0) / weights.sum()
    return median


def own_route(x, W, b):
    gate, idx = torch.softmax((x - b) @ W, -1).max(-1)
    return idx, gate


def own_load_balance_loss(p, i, E):
    return E * (torch.bincount(i, minlength=E).float() / i.numel() * p.mean(0)).sum()


def test_l1_penalty():
    right = lambda f, W: (f * W.norm(dim=-1)).sum(-1).mean()
    checks.check_l1_penalty(right)
    for wrong, message in [(stub, "NotImplementedError"), (lambda f, W: f.sum(-1).mean(), "plain L1"),
                           (lambda f, W: (f * W.norm(dim=-1)).sum(), "summed over the batch"),
                           (lambda f, W: (f * W.norm(dim=-1)).mean(), "axes")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_l1_penalty(wrong)


def test_topk_activation():
    checks.check_topk_activation(own_topk)
    for wrong, message in [(stub, "NotImplementedError"), (lambda p, k: p.topk(k, dim=-1), "negative"),
                           (lambda p, k: torch.relu(p).topk(k, dim=0), "shape"),
                           (lambda p, k: (torch.relu(p).topk(k).values, torch.zeros_like(p[:, :k]).long()),
                            "indices do not point"),
                           (lambda p, k: torch.relu(p).topk(k).values, "tuple")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_topk_activation(wrong)


def test_geometric_median():
    checks.check_geometric_median(own_geometric_median)
    for wrong, message in [(stub, "NotImplementedError"), (lambda p: p.mean(0), "mean"),
                           (lambda p: p.median(0).values, "coordinate-wise")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_geometric_median(wrong)


def test_route():
    checks.check_route(own_route)
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
    checks.check_load_balance_loss(own_load_balance_loss)
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
    checks.check_topk_activation(own_topk)
    assert capsys.readouterr().out.strip() == ("✓ check_topk_activation passed (the grader also runs hidden cases: "
                                              "other sizes and edge cases)")


# Issue 13's wrong answers that used to pass: a detached gate, a detached P, a missing ReLU, no b_dec centring.

def test_route_with_a_detached_gate_fails_with_the_reason():
    def detached_probs(x, W, b):
        gate, idx = torch.softmax((x - b) @ W, -1).detach().max(-1)
        return idx, gate
    with pytest.raises(CheckFailed, match="only reconstruction signal"):
        checks.check_route(detached_probs)


def test_load_balance_loss_on_a_detached_P_fails_with_the_reason():
    def detached_P(p, i, E):
        f = torch.bincount(i, minlength=E).float() / i.numel()
        return E * (f * p.detach().mean(0)).sum()
    def P_of_only_the_first_token(p, i, E):  # right value on uniform rows is not enough: the gradient differs
        f = torch.bincount(i, minlength=E).float() / i.numel()
        return E * (f * (p.mean(0).detach() + p[0] - p[0].detach())).sum()
    with pytest.raises(CheckFailed, match="no gradient with respect to router_probs"):
        checks.check_load_balance_loss(detached_P)
    with pytest.raises(CheckFailed, match="gradient with respect to router_probs is wrong"):
        checks.check_load_balance_loss(P_of_only_the_first_token)


def test_switch_latents_without_relu_or_centring_is_named():
    def no_relu(x, W_enc, b_dec, W_router, b_router, n_experts, k):
        expert_idx, gate, _ = route(x, W_router, b_router)
        m = W_enc.shape[1] // n_experts
        latents = torch.zeros(x.shape[0], W_enc.shape[1])
        for b in range(x.shape[0]):
            e = int(expert_idx[b])
            values, idx = ((x[b] - b_dec) @ W_enc[:, e * m:(e + 1) * m]).topk(k)
            latents[b, e * m + idx] = values * gate[b]
        return latents
    with pytest.raises(CheckFailed, match="apply ReLU"):
        checks.check_switch_latents(no_relu)
    with pytest.raises(CheckFailed, match="centre it first"):
        checks.check_switch_latents(lambda x, W_enc, b_dec, *a: _switch_latents(x, W_enc, 0 * b_dec, *a))


@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3])
def test_the_planted_token_has_no_positive_pre_activation_in_its_expert(seed):
    """Token 0 of the visible case and of every random case: all pre-activations of its expert are negative."""
    from switch_sae_mini.classroom.exercises import SWITCH_LATENTS
    cases = SWITCH_LATENTS.visible_cases() if seed is None else SWITCH_LATENTS.random_cases(
        torch.Generator().manual_seed(seed))
    for case in cases:
        x, W_enc, b_dec, W_router, b_router, n_experts, k = case.args
        e0, block = int(route(x[:1], W_router, b_router).expert_idx), W_enc.shape[1] // n_experts
        assert ((x[0] - b_dec) @ W_enc[:, e0 * block:(e0 + 1) * block] < 0).all()
        assert (SWITCH_LATENTS.reference(*case.args)[0] == 0).all()


def test_switch_latents_blames_a_wrong_route_first():
    namespace = {"torch": torch}
    exec("def route(x, W, b):\n    gate, idx = ((x - b) @ W).max(-1)\n    return idx, gate\n"
         "def switch_latents(x, W_enc, b_dec, W_router, b_router, n_experts, k):\n"
         "    expert_idx, gate = route(x, W_router, b_router)\n"
         "    return torch.zeros(x.shape[0], W_enc.shape[1])\n"
         "def switch_latents_alone(x, W_enc, b_dec, W_router, b_router, n_experts, k):\n"
         "    return torch.zeros(x.shape[0], W_enc.shape[1])\n", namespace)
    with pytest.raises(CheckFailed, match=r"your route fails check_route \(exercise 3.1\).*raw logit"):
        checks.check_switch_latents(namespace["switch_latents"])
    with pytest.raises(CheckFailed, match="Latents differ") as failure:  # it does not call route: not blamed
        checks.check_switch_latents(namespace["switch_latents_alone"])
    assert "check_route" not in str(failure.value)


def test_a_failed_check_shows_the_teaching_message_alone():
    """IPython renders CheckFailed through _render_traceback_: one line, none of the other failure messages."""
    try:
        checks.check_l1_penalty(lambda f, W: f.sum(-1).mean())
    except CheckFailed as exc:
        lines = exc._render_traceback_()
    assert len(lines) == 1 and lines[0].startswith("CheckFailed: You returned the plain L1 norm")
    assert "summed over the batch" not in lines[0]


@pytest.mark.parametrize("check, answer, target", [
    ("check_route", lambda x, W, b: tuple(__import__("switch_sae_mini").saes.route(x, W, b))[:2],
     "switch_sae_mini.saes.routing.route"),
    ("check_load_balance_loss", lambda p, i, E: load_balance_loss(p, i, E), "routing.load_balance_loss"),
    ("check_topk_activation", topk_activation, "base.topk_activation"),
    ("check_geometric_median", geometric_median, "base.geometric_median"),
    ("check_encoder_flops", lambda d, M, E: sum(__import__("switch_sae_mini").flops.forward_flops(
        __import__("switch_sae_mini").SAEConfig(arch="switch" if E > 1 else "topk", d_in=d, d_sae=M, k=1,
                                                n_experts=E)).values()), "flops.forward_flops"),
])
def test_an_answer_that_calls_the_package_fails(check, answer, target):
    with pytest.raises(CheckFailed, match=rf"this calls .*{target}.*write it yourself"):
        getattr(checks, check)(answer)


def test_switch_latents_through_the_package_sae_fails_and_the_tripwire_is_removed():
    import switch_sae_mini as ssm
    def via_package(x, W_enc, b_dec, W_router, b_router, n_experts, k):
        sae = ssm.SwitchSAE(ssm.SAEConfig(arch="switch", d_in=x.shape[1], d_sae=W_enc.shape[1], k=k,
                                          n_experts=n_experts))
        with torch.no_grad():
            for name, value in dict(W_enc=W_enc, b_dec=b_dec, W_router=W_router, b_router=b_router).items():
                getattr(sae, name).copy_(value)
        return sae(x).latents
    def swallowing(x, W, b):  # catches the tripwire's error and carries on with a wrong answer
        try:
            return tuple(route(x, W, b))[:2]
        except Exception:
            return torch.zeros(x.shape[0], dtype=torch.long), torch.zeros(x.shape[0])
    with pytest.raises(CheckFailed, match="SwitchSAE.forward"):
        checks.check_switch_latents(via_package)
    with pytest.raises(CheckFailed, match="this calls"):
        checks.check_route(swallowing)
    assert route(torch.ones(1, 2), torch.ones(2, 3), torch.zeros(2)).gate.shape == (1,)  # restored afterwards

