import pytest
import torch

from switch_sae_mini import SAEConfig, load_balance_loss, make_sae, route
from switch_sae_mini.saes import topk_activation

from conftest import tiny_cfg


def _grads(sae, x, routed):
    sae.zero_grad()
    out = sae(x, routed=routed)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in sae.named_parameters()}


@pytest.mark.parametrize("gate", ["prob", "heaviside"])
def test_routed_equals_masked_reference_values_and_gradients(gate):
    sae = make_sae(tiny_cfg("switch", n_experts=4, gate=gate))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_router.normal_()
        sae.W_router.mul_(5)  # decisive routing so all experts get tokens
    x = torch.randn(64, 16)
    fast, g_fast = _grads(sae, x, routed=True)
    ref, g_ref = _grads(sae, x, routed=False)
    assert len(set(fast.expert_idx.tolist())) == 4
    torch.testing.assert_close(fast.x_hat, ref.x_hat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.latents, ref.latents, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.lb_loss, ref.lb_loss)
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], atol=1e-5, rtol=1e-4, msg=name)


def test_one_expert_is_a_topk_sae_without_encoder_bias():
    switch = make_sae(tiny_cfg("switch", n_experts=1))
    topk = make_sae(tiny_cfg("topk"))
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_dec"):
            getattr(topk, name).copy_(getattr(switch, name))
        topk.b_enc.zero_()
    x = torch.randn(30, 16)
    a, b = switch(x), topk(x)
    assert torch.all(a.router_probs == 1.0)  # softmax over one expert
    torch.testing.assert_close(a.x_hat, b.x_hat)
    torch.testing.assert_close(a.latents, b.latents)
    assert a.lb_loss.item() == pytest.approx(1.0)


def test_latents_are_scaled_by_the_router_probability():
    sae = make_sae(tiny_cfg("switch"))
    x = torch.randn(20, 16)
    out = sae(x)
    e = out.expert_idx
    gate = out.router_probs.gather(-1, e[:, None])
    assert (gate < 1).all()
    # unscaled: TopK of the routed expert's own pre-activations
    W = sae.W_enc.unflatten(1, (4, 16))  # [d_in, E, d_expert]
    pre = torch.einsum("bd,dem->bem", x - sae.b_dec, W)[torch.arange(20), e]
    values, local = topk_activation(pre, 4)
    expected = torch.zeros(20, 64).scatter(-1, local + 16 * e[:, None], values * gate)
    torch.testing.assert_close(out.latents, expected, atol=1e-6, rtol=1e-5)
    # every active latent lives in the routed expert's block
    active_expert = out.latent_idx // 16
    assert torch.all(active_expert == e[:, None])
    heavy = make_sae(tiny_cfg("switch", gate="heaviside"))
    heavy.load_state_dict(sae.state_dict())
    torch.testing.assert_close(heavy(x).latents, torch.zeros(20, 64).scatter(-1, local + 16 * e[:, None], values),
                               atol=1e-6, rtol=1e-5)


def test_route_centres_input_by_b_router():
    x = torch.tensor([[1.0, 2.0]])
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    r = route(x, W, torch.tensor([0.0, 0.0]))
    assert r.expert_idx.item() == 1
    r = route(x, W, torch.tensor([-5.0, 0.0]))  # x - b_router = (6, 2)
    assert r.expert_idx.item() == 0
    torch.testing.assert_close(r.gate, r.probs.max(-1).values)
    torch.testing.assert_close(r.probs.sum(-1), torch.ones(1))


def test_load_balance_loss_invariants():
    E, B = 4, 400
    probs = torch.softmax(torch.randn(B, E), -1)
    uniform_idx = torch.arange(B) % E  # f uniform -> exactly 1 whatever P is
    assert load_balance_loss(probs, uniform_idx, E).item() == pytest.approx(1.0, abs=1e-6)
    uniform_probs = torch.full((B, E), 1 / E)  # P uniform -> exactly 1 whatever f is
    assert load_balance_loss(uniform_probs, torch.zeros(B, dtype=torch.long), E).item() == pytest.approx(1.0)
    collapsed = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(B, 1)
    lb = load_balance_loss(collapsed, torch.zeros(B, dtype=torch.long), E)
    assert lb.item() == pytest.approx(E * 0.97) and lb.item() > 3.5
    # gradient flows through P only
    logits = torch.randn(B, E, requires_grad=True)
    load_balance_loss(torch.softmax(logits, -1), torch.softmax(logits, -1).argmax(-1), E).backward()
    assert logits.grad.abs().sum() > 0


def test_heaviside_without_lb_gives_the_router_no_gradient():
    sae = make_sae(tiny_cfg("switch", gate="heaviside", lb_coeff=0.0))
    sae(torch.randn(32, 16)).loss.backward()
    assert torch.count_nonzero(sae.W_router.grad) == 0 and torch.count_nonzero(sae.b_router.grad) == 0
    prob = make_sae(tiny_cfg("switch", gate="prob", lb_coeff=0.0))
    prob(torch.randn(32, 16)).loss.backward()
    assert torch.count_nonzero(prob.W_router.grad) > 0


def test_only_routed_experts_encoders_get_gradient():
    sae = make_sae(tiny_cfg("switch"))
    x = torch.randn(3, 16)
    out = sae(x)
    out.mse_loss.backward()
    touched = sae.W_enc.grad.abs().sum(0).unflatten(0, (4, 16)).sum(-1) > 0  # per expert
    assert touched.tolist() == [e in set(out.expert_idx.tolist()) for e in range(4)]


def test_switch_has_no_encoder_bias_parameter():
    sae = make_sae(tiny_cfg("switch"))
    names = {n for n, _ in sae.named_parameters()}
    assert names == {"W_enc", "W_dec", "b_dec", "W_router", "b_router"}
    assert sae.W_router.shape == (16, 4) and sae.b_router.shape == (16,)
    assert torch.count_nonzero(sae.b_enc) == 0


def test_empty_experts_are_fine():
    sae = make_sae(SAEConfig(arch="switch", d_in=8, d_sae=64, k=2, n_experts=8))
    out = sae(torch.randn(2, 8))  # at most 2 of 8 experts get a token
    out.loss.backward()
    assert out.x_hat.shape == (2, 8)
