"""Chapter 03 trains a Switch SAE built from the learner's own functions (classroom/parts.py): with right answers
it follows the package's SwitchSAE step for step; USE_REFERENCE swaps in the package's version part by part."""

import pytest
import torch

import switch_sae_mini as ssm
from switch_sae_mini.classroom.parts import learner_switch_sae


def route(x, W_router, b_router):
    gate, expert_idx = torch.softmax((x - b_router) @ W_router, dim=-1).max(dim=-1)
    return expert_idx, gate


def switch_forward(x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k):
    expert_idx, gate = route(x, W_router, b_router)  # by name: USE_REFERENCE swaps it
    d_expert = W_enc.shape[1] // n_experts
    values, indices = x.new_zeros(x.shape[0], k), torch.zeros(x.shape[0], k, dtype=torch.long)
    for e in range(n_experts):
        rows = (expert_idx == e).nonzero().squeeze(-1)
        top, local = torch.relu((x[rows] - b_dec) @ W_enc[:, e * d_expert:(e + 1) * d_expert]).topk(k, dim=-1)
        values = values.index_put((rows,), top * gate[rows, None])
        indices = indices.index_put((rows,), local + e * d_expert)
    return (values[..., None] * W_dec[indices]).sum(-2) + b_dec, values, indices


def load_balance_loss(router_probs, expert_idx, n_experts):
    f = torch.bincount(expert_idx, minlength=n_experts).float() / expert_idx.numel()
    return n_experts * (f * router_probs.mean(0)).sum()


def broken(*args):
    raise NotImplementedError()


CFG = ssm.SAEConfig(arch="switch", d_in=16, d_sae=64, k=4, n_experts=4, lb_coeff=3.0)
ACTS = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.3, 2, 16)


def _train(sae, steps=12):
    train_cfg = ssm.TrainConfig(n_steps=steps, lr=1e-3, log_every=steps)
    return ssm.train(sae, ssm.notebook.shuffled_batches(ACTS, 64), train_cfg, progress=False).sae


@pytest.mark.parametrize("use_reference", [{}, {"route": True}, {"switch_forward": True},
                                           {"load_balance_loss": True}])
def test_learner_parts_follow_the_package_step_for_step(use_reference):
    parts = {"route": route, "switch_forward": switch_forward, "load_balance_loss": load_balance_loss}
    parts.update({name: broken for name in use_reference})  # a part stood in for is never called
    torch.manual_seed(0)
    yours = _train(learner_switch_sae(CFG, use_reference=use_reference, **parts))
    package = _train(CFG)
    for name in ("W_enc", "W_dec", "W_router", "b_router", "b_dec"):
        torch.testing.assert_close(getattr(yours, name), getattr(package, name), atol=1e-5, rtol=1e-4)
    fvu = [ssm.metrics.evaluate_sae(s, ACTS[:512].split(256))["fvu"] for s in (yours, package)]
    assert abs(fvu[0] - fvu[1]) < 1e-5  # far inside the notebook's stated tolerance of 1e-3


def test_a_wrong_part_shows_in_the_comparison():
    wrong_balance = lambda p, i, n: (torch.bincount(i, minlength=n).float() / i.numel() * p.mean(0)).sum()  # no E
    torch.manual_seed(0)
    yours = _train(learner_switch_sae(CFG.replace(lb_coeff=30.0), route=route, switch_forward=switch_forward,
                                      load_balance_loss=wrong_balance), steps=30)
    package = _train(CFG.replace(lb_coeff=30.0), steps=30)
    assert (yours.W_router - package.W_router).abs().max() > 1e-4


def test_missing_or_unknown_parts_are_named():
    with pytest.raises(ValueError, match="pass your load_balance_loss"):
        learner_switch_sae(CFG, route=route, switch_forward=switch_forward)
    with pytest.raises(ValueError, match="unknown part"):
        learner_switch_sae(CFG, route=route, switch_forward=switch_forward, load_balance_loss=load_balance_loss,
                           use_reference={"router": True})


def test_the_route_passed_in_is_the_one_the_forward_calls():
    """switch_forward calls route by name; learner_switch_sae puts the route it was given there."""
    def raw_logit_route(x, W_router, b_router):
        gate, expert_idx = ((x - b_router) @ W_router).max(dim=-1)
        return expert_idx, gate
    torch.manual_seed(0)
    yours = _train(learner_switch_sae(CFG, route=raw_logit_route, switch_forward=switch_forward,
                                      load_balance_loss=load_balance_loss))
    assert (yours.W_router - _train(CFG).W_router).abs().max() > 1e-4
