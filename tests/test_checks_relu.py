"""The checks of chapter 01's ReLU SAE exercises (1.2 init, 1.3 encoder, 1.4 loss, 1.6 Adam, 1.7 L1 warm-up): the
right answer passes; a stub, each typical wrong answer, and an answer that calls the package fail with the
message named here."""

import pytest
import torch

from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed
from switch_sae_mini.classroom.exercises import EXERCISES, judge, run_case
from switch_sae_mini.config import TrainConfig
from switch_sae_mini.training.step import l1_scale


def stub(*args):
    raise NotImplementedError()


def own_init(d_in, d_sae, seed, norm=0.1, rows=True, tied=True, bias=0.0, transpose_draw=False):
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(d_in, d_sae, generator=gen).t() if transpose_draw else torch.randn(d_sae, d_in, generator=gen)
    W = norm * W / W.norm(dim=-1 if rows else 0, keepdim=True)
    W_enc = W.t().clone() if tied else torch.randn(d_in, d_sae, generator=gen)
    return W_enc, torch.full((d_sae,), bias), W, torch.zeros(d_in)


def own_encode(x, W_enc, b_enc):
    return torch.relu(x @ W_enc + b_enc)


def own_l1(f, W):
    return (f * W.norm(dim=-1)).sum(-1).mean()


def own_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coeff, mse_scale=1.0, l1_div=True, plain=False, b=True,
             coeff=True, detach=False):
    f = own_encode(x, W_enc, b_enc)
    mse = ((f @ W_dec + (b_dec if b else 0)) - x).pow(2).mean() * mse_scale
    g = f.detach() if detach else f
    l1 = (g.sum(-1).mean() if plain else own_l1(g, W_dec)) / (x.shape[-1] if l1_div else 1)
    return mse + (l1_coeff if coeff else 1.0) * l1, mse, l1


def own_adam(p, g, m, v, step, lr, correct=True, eps_inside=False, sign=-1.0, square=True, step_shift=0, eps=1e-8):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * (g * g if square else g.abs())
    t = step + step_shift
    m_hat, v_hat = (m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)) if correct else (m, v)
    denom = (v_hat + eps).sqrt() if eps_inside else v_hat.sqrt() + eps
    return p + sign * lr * m_hat / denom, m, v


def own_warmup(step, n_steps, frac):
    if frac <= 0:
        return 1.0
    return min(1.0, (step + 1) / max(1, int(frac * n_steps)))


def _rejects(check, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check(wrong)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_init(*a, norm=1.0), "norm 1"),
    (lambda *a: own_init(*a, rows=False), "normalised the columns"),
    (lambda *a: own_init(*a, tied=False), "Tie the encoder"),
    (lambda *a: own_init(*a, bias=0.1), "start at zero"),
    (lambda *a: own_init(*a, transpose_draw=True), "another random draw"),
    (lambda *a: own_init(*a)[2:] + own_init(*a)[:2], "shape"),
], ids=["stub", "unit-norm", "columns", "untied", "bias", "other-draw", "swapped"])
def test_relu_init(wrong, message):
    checks.check_relu_init(own_init)
    _rejects(checks.check_relu_init, wrong, message)


def test_relu_init_is_the_packages_draw():
    import switch_sae_mini as ssm
    torch.manual_seed(5)
    sae = ssm.make_sae(ssm.SAEConfig(arch="relu", d_in=6, d_sae=10))
    for mine, theirs in zip(own_init(6, 10, 5), (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)):
        assert torch.equal(mine, theirs.detach())


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda x, W, b: x @ W + b, "apply the ReLU"),
    (lambda x, W, b: torch.relu(x @ W) + b, "before the ReLU"),
    (lambda x, W, b: torch.relu(x @ W), "left out the encoder bias"),
    (lambda x, W, b: own_encode(x, W.detach(), b.detach()), "gradient"),
    (lambda x, W, b: own_encode(x, W, b).sum(0), "shape"),
], ids=["stub", "no-relu", "bias-after", "no-bias", "detached", "summed"])
def test_relu_encode(wrong, message):
    checks.check_relu_encode(own_encode)
    _rejects(checks.check_relu_encode, wrong, message)


def test_relu_encode_plants_a_token_with_only_negative_pre_activations():
    for case in EXERCISES["relu_encode"].visible_cases() + EXERCISES["relu_encode"].random_cases(
            torch.Generator().manual_seed(1)):
        x, W_enc, b_enc = case.args
        assert (x[0] @ W_enc + b_enc).max() < 0, case.label


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_loss(*a, mse_scale=a[0].shape[-1]), "summed over d_in"),
    (lambda *a: own_loss(*a, b=False), "decoder bias"),
    (lambda *a: own_loss(*a, l1_div=False), "Divide the L1 term by d_in"),
    (lambda *a: own_loss(*a, plain=True), "plain L1 norm"),
    (lambda *a: own_loss(*a, coeff=False), "loss must be mse \\+ l1_coeff"),
    (lambda *a: own_loss(*a, detach=True), "gradient of loss"),
    (lambda *a: tuple(t.item() for t in own_loss(*a)), "Python float"),
    (lambda *a: own_loss(*a)[:2], "Return a tuple"),
], ids=["stub", "summed-mse", "no-b_dec", "l1-not-per-d_in", "plain-l1", "no-coeff", "detached", "floats", "pair"])
def test_relu_sae_loss(wrong, message):
    checks.check_relu_sae_loss(own_loss)
    _rejects(checks.check_relu_sae_loss, wrong, message)


def test_relu_sae_loss_names_a_broken_encoder_it_calls():
    namespace = {"torch": torch, "own_l1": own_l1}
    exec("def relu_encode(x, W, b):\n    return x @ W + b\n"  # no ReLU
         "def relu_sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):\n"
         "    f = relu_encode(x, W_enc, b_enc)\n"
         "    mse = (f @ W_dec + b_dec - x).pow(2).mean()\n"
         "    l1 = own_l1(f, W_dec) / x.shape[-1]\n"
         "    return mse + l1_coeff * l1, mse, l1\n", namespace)
    _rejects(checks.check_relu_sae_loss, namespace["relu_sae_loss"], "your relu_encode fails check_relu_encode "
             r"\(exercise 1.3\)")


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_adam(*a, correct=False), "bias corrections"),
    (lambda *a: own_adam(*a, eps_inside=True), "outside the square root"),
    (lambda *a: own_adam(*a, sign=1.0), "Wrong sign"),
    (lambda *a: own_adam(*a, eps=0.0), "eps is missing"),
    (lambda *a: own_adam(*a, square=False), "squared"),
    (lambda *a: own_adam(*a, step_shift=-1), "counts from 1"),
    (lambda *a: own_adam(*a, step_shift=1), "wrong step"),
], ids=["stub", "no-bias-correction", "eps-inside", "ascent", "no-eps", "abs", "step-from-0", "step-plus-1"])
def test_adam_update(wrong, message):
    checks.check_adam_update(own_adam)
    _rejects(checks.check_adam_update, wrong, message)


@pytest.mark.parametrize("seed", range(6))
def test_the_random_adam_case_sees_what_the_visible_step_one_case_sees(seed):
    """The comparison is on the update (relative to the step), and the random later-step case has tiny moments
    where eps matters: the grader's hidden part rejects these answers on its own."""
    ex = EXERCISES["adam_update"]
    [case] = ex.random_cases(torch.Generator().manual_seed(seed))
    assert judge(ex, case, run_case(ex, own_adam, case)) is None
    for flags in ({"correct": False}, {"eps_inside": True}, {"eps": 0.0}, {"sign": 1.0}):
        wrong = lambda *a, f=flags: own_adam(*a, **f)  # noqa: E731
        assert judge(ex, case, run_case(ex, wrong, case)) is not None, flags


def test_a_loss_of_shape_one_is_told_to_be_0_d():
    _rejects(checks.check_relu_sae_loss, lambda *a: tuple(t.reshape(1) for t in own_loss(*a)), "0-d scalar")


def test_adam_update_matches_torch_adam():
    p = torch.randn(7, 3, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-2)
    mine, m, v = p.detach().clone(), torch.zeros(7, 3), torch.zeros(7, 3)
    for step in range(1, 6):
        g = torch.randn(7, 3)
        p.grad = g.clone()
        opt.step()
        mine, m, v = own_adam(mine, g, m, v, step, 1e-2)
    torch.testing.assert_close(mine, p.detach())


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda s, n, f: min(1.0, s / max(1, int(f * n))), "Off by one"),
    (lambda s, n, f: (s + 1) / max(1, int(f * n)), "passed 1"),
    (lambda s, n, f: min(1.0, (s + 1) / n), "not all n_steps"),
    (lambda s, n, f: "1.0", "must be a number"),
], ids=["stub", "off-by-one", "uncapped", "whole-run", "string"])
def test_l1_warmup_scale(wrong, message):
    checks.check_l1_warmup_scale(own_warmup)
    _rejects(checks.check_l1_warmup_scale, wrong, message)


def test_l1_warmup_reference_is_the_trainers_schedule():
    ref = EXERCISES["l1_warmup_scale"].reference
    for n_steps in (1, 19, 150, 1500):
        for frac in (0.0, 0.05, 0.5):
            cfg = TrainConfig(n_steps=n_steps, l1_warmup=frac)
            assert [ref(s, n_steps, frac) for s in range(n_steps)] == [l1_scale(s, cfg) for s in range(n_steps)]


def test_the_hidden_warmup_case_catches_a_division_by_zero():
    ex = EXERCISES["l1_warmup_scale"]
    unguarded = lambda s, n, f: min(1.0, (s + 1) / int(f * n))  # noqa: E731
    checks.check_l1_warmup_scale(unguarded)  # passes the visible cases ...
    [none] = [c for c in ex.random_cases(torch.Generator().manual_seed(0)) if c.label == "no warm-up"]
    assert "ZeroDivisionError" in judge(ex, none, run_case(ex, unguarded, none))  # ... not the hidden one


@pytest.mark.parametrize("check, answer, target", [
    ("check_relu_init", lambda d_in, d_sae, seed: _package_sae(d_in, d_sae, seed, "weights"), "ReLUSAE.__init__"),
    ("check_relu_encode", lambda x, W, b: _package_sae(x.shape[1], W.shape[1], 0, "encode", x, W, b),
     "ReLUSAE.forward"),
    ("check_relu_sae_loss", lambda x, We, be, Wd, bd, c: _package_sae(x.shape[1], We.shape[1], 0, "loss", x, We, be,
                                                                    Wd, bd, c), "ReLUSAE.forward"),
    ("check_l1_warmup_scale", lambda s, n, f: l1_scale(s, TrainConfig(n_steps=n, l1_warmup=f)), "step.l1_scale"),
])
def test_answers_that_call_the_package_fail(check, answer, target):
    with pytest.raises(CheckFailed, match=rf"this calls .*{target}"):
        getattr(checks, check)(answer)


def _package_sae(d_in, d_sae, seed, what, *args):
    import switch_sae_mini as ssm
    torch.manual_seed(seed)
    sae = ssm.make_sae(ssm.SAEConfig(arch="relu", d_in=d_in, d_sae=d_sae, l1_coeff=args[-1] if what == "loss" else 1))
    if what == "weights":
        return sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec
    with torch.no_grad():
        sae.W_enc.copy_(args[1])
        sae.b_enc.copy_(args[2])
        if what == "loss":
            sae.W_dec.copy_(args[3])
            sae.b_dec.copy_(args[4])
    out = sae(args[0])
    return out.latent_acts if what == "encode" else (out.loss, out.mse_loss, out.l1_loss)
