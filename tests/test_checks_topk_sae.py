"""The checks of chapter 02's assembly exercises (2.5 the TopK SAE forward, 2.6 the dead-latent counter): the right
answer passes; a stub, each typical wrong answer, and an answer that calls the package fail with its message."""

import pytest
import torch

from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed
from switch_sae_mini.classroom.exercises import EXERCISES


def stub(*args):
    raise NotImplementedError()


def topk_activation(pre, k):  # exercise 2.1, by name: topk_sae_forward below calls it through its globals
    return torch.relu(pre).topk(k, dim=-1)


def own_forward(x, W_enc, b_enc, W_dec, b_dec, k, centre=True, add_b_dec=True, detach=False, order="vi"):
    values, indices = topk_activation(((x - b_dec) if centre else x) @ W_enc + b_enc, k)
    values = values.detach() if detach else values
    x_hat = (values[..., None] * W_dec[indices]).sum(-2) + (b_dec if add_b_dec else 0)
    return (x_hat, values, indices) if order == "vi" else (x_hat, indices, values)


def own_counter(counter, idx, acts, dead_after, only_positive=True, per_token=True, reset=True, strict=True):
    fired = torch.zeros(counter.shape[0], dtype=torch.bool)
    fired[idx[acts > 0] if only_positive else idx.reshape(-1)] = True
    grown = counter + (idx.shape[0] if per_token else 1)
    new = torch.where(fired, torch.zeros_like(counter), grown) if reset else grown
    return new, (new > dead_after) if strict else (new >= dead_after)


def _rejects(check, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check(wrong)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_forward(*a, centre=False), "Centre the input first"),
    (lambda *a: own_forward(*a, add_b_dec=False), "Add b_dec back"),
    (lambda *a: own_forward(*a, detach=True), "gradient of x_hat"),
    (lambda *a: own_forward(*a, order="iv"), "return \\(x_hat, values, indices\\)"),
    (lambda *a: own_forward(*a)[0], "Return a tuple"),
], ids=["stub", "uncentred", "no-b_dec", "detached", "swapped", "x_hat-only"])
def test_topk_sae_forward(wrong, message):
    checks.check_topk_sae_forward(own_forward)
    _rejects(checks.check_topk_sae_forward, wrong, message)


def test_topk_sae_forward_names_a_broken_topk_it_calls():
    namespace = {"torch": torch}
    exec("def topk_activation(pre, k):\n    return pre.topk(k, dim=-1)\n"  # no ReLU
         "def topk_sae_forward(x, W_enc, b_enc, W_dec, b_dec, k):\n"
         "    values, indices = topk_activation((x - b_dec) @ W_enc + b_enc, k)\n"
         "    return (values[..., None] * W_dec[indices]).sum(-2) + b_dec, values, indices\n", namespace)
    _rejects(checks.check_topk_sae_forward, namespace["topk_sae_forward"],
             r"your topk_activation fails check_topk_activation \(exercise 2.1\)")


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_counter(*a, only_positive=False), "activation 0 did not fire"),
    (lambda *a: own_counter(*a, per_token=False), "counts tokens, not steps"),
    (lambda *a: own_counter(*a, reset=False), "Reset the counter"),
    (lambda *a: own_counter(*a, strict=False), "above\\* dead_after"),
    (lambda *a: (own_counter(*a)[0].float(), own_counter(*a)[1]), "integer tensor"),
    (lambda *a: (own_counter(*a)[0], own_counter(*a)[1].long()), "boolean mask"),
], ids=["stub", "zero-slots-fire", "per-step", "no-reset", "ge", "float-counter", "long-mask"])
def test_update_dead_counter(wrong, message):
    checks.check_update_dead_counter(own_counter)
    _rejects(checks.check_update_dead_counter, wrong, message)


def test_the_visible_counter_case_plants_what_the_messages_name():
    [case] = EXERCISES["update_dead_counter"].visible_cases()
    counter, idx, acts, dead_after = case.args
    assert (acts[:, -1] == 0).all() and not (idx == 0).any()  # zero slots; latent 0 never fires
    assert int(counter[0]) + idx.shape[0] == dead_after  # exactly at the threshold: alive under >, dead under >=
    zero_only = set(idx[:, -1].tolist()) - set(idx[acts > 0].tolist())
    assert zero_only  # some latent is chosen only with value 0


@pytest.mark.parametrize("check, answer, target", [
    ("check_topk_sae_forward", lambda x, We, be, Wd, bd, k: _package(x, We, be, Wd, bd, k), "TopKSAE"),
    ("check_update_dead_counter", lambda c, i, a, d: _package_counter(c, i, a, d), "update_dead_counter"),
])
def test_answers_that_call_the_package_fail(check, answer, target):
    with pytest.raises(CheckFailed, match=rf"this calls .*{target}"):
        getattr(checks, check)(answer)


def _package(x, W_enc, b_enc, W_dec, b_dec, k):
    import switch_sae_mini as ssm
    sae = ssm.make_sae(ssm.SAEConfig(arch="topk", d_in=x.shape[1], d_sae=W_enc.shape[1], k=k))
    with torch.no_grad():
        for name, value in zip(("W_enc", "b_enc", "W_dec", "b_dec"), (W_enc, b_enc, W_dec, b_dec)):
            getattr(sae, name).copy_(value)
    out = sae(x)
    return out.x_hat, out.latent_acts, out.latent_idx


def _package_counter(counter, idx, acts, dead_after):
    import switch_sae_mini as ssm
    sae = ssm.make_sae(ssm.SAEConfig(arch="topk", d_in=4, d_sae=counter.shape[0], k=1, dead_after_tokens=dead_after))
    sae.tokens_since_fired.copy_(counter)
    fired = torch.zeros(counter.shape[0], dtype=torch.bool)
    fired[idx[acts > 0]] = True
    sae.update_dead_counter(fired, idx.shape[0])
    return sae.tokens_since_fired.clone(), sae.dead_mask()
