"""The check of exercise 3.4 (the Switch forward with tokens grouped per expert): the right answer passes; a stub,
each typical wrong answer and a call to the package fail with the message named here; the cases plant an expert
that receives no token and a token whose expert has only negative pre-activations."""

import pytest
import torch

from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed
from switch_sae_mini.classroom.exercises import EXERCISES
from switch_sae_mini.saes import route as package_route


def stub(*args):
    raise NotImplementedError()


def route(x, W_router, b_router):  # exercise 3.1, by name
    gate, expert_idx = torch.softmax((x - b_router) @ W_router, dim=-1).max(dim=-1)
    return expert_idx, gate


def own_forward(x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k, gate=True, detach_gate=False,
                offset=True, relu=True, centre=True, add_b_dec=True, no_grad_writes=False):
    expert_idx, g = route(x, W_router, b_router)
    g = g.detach() if detach_gate else g
    d_expert = W_enc.shape[1] // n_experts
    values, indices = x.new_zeros(x.shape[0], k), torch.zeros(x.shape[0], k, dtype=torch.long)
    for e in range(n_experts):
        rows = (expert_idx == e).nonzero().squeeze(-1)
        pre = ((x[rows] - b_dec) if centre else x[rows]) @ W_enc[:, e * d_expert:(e + 1) * d_expert]
        top, local = (torch.relu(pre) if relu else pre).topk(k, dim=-1)
        top = top * g[rows, None] if gate else top
        if no_grad_writes:
            with torch.no_grad():
                values[rows] = top
        else:
            values = values.index_put((rows,), top)
        indices[rows] = local + (e * d_expert if offset else 0)
    return (values[..., None] * W_dec[indices]).sum(-2) + (b_dec if add_b_dec else 0), values, indices


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_forward(*a, offset=False), "local to the expert's block"),
    (lambda *a: own_forward(*a, gate=False), "Scale each token's values by its gate"),
    (lambda *a: own_forward(*a, relu=False), "Apply ReLU before TopK"),
    (lambda *a: own_forward(*a, centre=False), "Centre the input by b_dec"),
    (lambda *a: own_forward(*a, add_b_dec=False), "Add b_dec after decoding"),
    (lambda *a: own_forward(*a, detach_gate=True), "no gradient with respect to W_router"),
    (lambda *a: own_forward(*a, no_grad_writes=True), "no gradient to W_enc"),
    (lambda *a: (lambda o: (o[0], o[2], o[1]))(own_forward(*a)), "return \\(x_hat, values, indices\\)"),
], ids=["stub", "local-indices", "no-gate", "no-relu", "uncentred", "no-b_dec", "detached-gate", "no-grad-writes",
        "swapped"])
def test_switch_forward(wrong, message):
    checks.check_switch_forward(own_forward)
    with pytest.raises(CheckFailed, match=message):
        checks.check_switch_forward(wrong)


@pytest.mark.parametrize("seed", range(12))
def test_the_cases_plant_an_unused_expert_and_a_silent_token(seed):
    ex = EXERCISES["switch_forward"]
    for case in ex.visible_cases() + ex.random_cases(torch.Generator().manual_seed(seed)):
        x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k = case.args
        routing = package_route(x, W_router, b_router)
        logits = (x - b_router) @ W_router
        assert (logits.topk(2, dim=-1).values.diff(dim=-1).abs() > 1e-6).all(), case.label  # no routing ties
        if x.shape[0] > 1:
            assert len(set(routing.expert_idx.tolist())) < n_experts, case.label  # some expert gets no token
        e0, d_expert = int(routing.expert_idx[0]), W_enc.shape[1] // n_experts
        block_max = ((x[0] - b_dec) @ W_enc[:, e0 * d_expert:(e0 + 1) * d_expert]).max()
        if case.label == "a batch of one":  # not planted: its one token has latents, so its gate and offset show
            assert block_max > 0
        else:
            assert block_max < 0, case.label


def test_the_batch_of_one_catches_what_it_should():
    from switch_sae_mini.classroom.exercises import judge, run_case
    ex = EXERCISES["switch_forward"]
    [one] = [c for c in ex.random_cases(torch.Generator().manual_seed(0)) if c.label == "a batch of one"]
    for flags in ({"gate": False}, {"offset": False}, {"detach_gate": True}):
        wrong = lambda *a, f=flags: own_forward(*a, **f)  # noqa: E731
        assert judge(ex, one, run_case(ex, wrong, one)) is not None, flags


def test_a_wrong_route_is_blamed_first():
    namespace = {"torch": torch, "own_forward": own_forward}
    exec("def route(x, W, b):\n    gate, idx = ((x - b) @ W).max(-1)\n    return idx, gate\n"
         "def switch_forward(*args):\n    route(*args[:1], *args[4:6])\n    return own_forward(*args)\n", namespace)
    with pytest.raises(CheckFailed, match=r"your route fails check_route \(exercise 3.1\)"):
        checks.check_switch_forward(namespace["switch_forward"])


def test_calling_the_package_fails():
    def via_package(x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k):
        import switch_sae_mini as ssm
        sae = ssm.make_sae(ssm.SAEConfig(arch="switch", d_in=x.shape[1], d_sae=W_enc.shape[1], k=k,
                                         n_experts=n_experts))
        with torch.no_grad():
            for name, value in zip(("W_enc", "W_dec", "b_dec", "W_router", "b_router"),
                                   (W_enc, W_dec, b_dec, W_router, b_router)):
                getattr(sae, name).copy_(value)
        out = sae(x)
        return out.x_hat, out.latent_acts, out.latent_idx
    with pytest.raises(CheckFailed, match="this calls switch_sae_mini.saes.switch.SwitchSAE"):
        checks.check_switch_forward(via_package)
