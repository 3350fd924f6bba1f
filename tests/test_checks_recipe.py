"""The checks of chapter 02's training-recipe exercises (2.3 the decoder-gradient projection, 2.4 AuxK): right
answers pass; each typical wrong answer, and an answer that calls the package, fails with its message."""

import pytest
import torch

from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed


def stub(*args):
    raise NotImplementedError()


def own_projection(W, g):
    return g - (g * W).sum(-1, keepdim=True) * W


def own_auxk(pre, dead, residual, W_dec, k_aux, x, detach=True, mask=True, sign=1.0, normalise=True,
             guard_none=True):
    n_dead = int(dead.sum())
    if n_dead == 0 and guard_none:
        return pre.new_zeros(())
    scores = torch.where(dead, pre, torch.full_like(pre, -torch.inf)) if mask else pre
    values, indices = scores.topk(min(k_aux, n_dead if mask else pre.shape[1]), dim=-1)
    e_hat = (torch.relu(values)[..., None] * W_dec[indices]).sum(-2)
    e = residual.detach() if detach else residual
    error = (e_hat - sign * e).pow(2).sum(-1)
    return (error / e.pow(2).sum(-1)).mean() * x.pow(2).mean() if normalise else error.mean() / e.shape[-1]


def test_project_decoder_grad():
    checks.check_project_decoder_grad(own_projection)
    for wrong, message in [(stub, "NotImplementedError"),
                           (lambda W, g: (g * W).sum(-1, keepdim=True) * W, "radial part itself"),
                           (lambda W, g: g + (g * W).sum(-1, keepdim=True) * W, "Wrong sign"),
                           (lambda W, g: g - (g * W).sum(0, keepdim=True) * W, "along columns"),
                           (lambda W, g: g - 0.5 * (g * W).sum(-1, keepdim=True) * W, "radial component"),
                           (lambda W, g: g.sum(0), "shape")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_project_decoder_grad(wrong)


def test_auxk_loss():
    checks.check_auxk_loss(own_auxk)
    for wrong, message in [(stub, "NotImplementedError"),
                           (lambda *a: own_auxk(*a, detach=False), "must be detached"),
                           (lambda *a: own_auxk(*a, mask=False), "Only \\*dead\\* latents compete"),
                           (lambda *a: own_auxk(*a, sign=-1.0), "negated residual"),
                           (lambda *a: own_auxk(*a, normalise=False), "Normalise per token"),
                           (lambda *a: own_auxk(*a).item(), "Python float"),
                           (lambda p, d, r, W, k, x: own_auxk(p, d, r, W.detach(), k, x), "gradient")]:
        with pytest.raises(CheckFailed, match=message):
            checks.check_auxk_loss(wrong)


def test_auxk_with_no_dead_latent_must_be_zero_not_nan():
    """The random cases include one with no dead latent (the visible ones do not): the grader's hidden part."""
    from switch_sae_mini.classroom.exercises import EXERCISES, judge, run_case
    ex = EXERCISES["auxk_loss"]
    [none_dead] = [c for c in ex.random_cases(torch.Generator().manual_seed(0)) if c.label == "no dead latent"]
    unguarded = lambda *a: own_auxk(*a, guard_none=False)  # noqa: E731
    checks.check_auxk_loss(unguarded)  # passes the visible cases ...
    assert "must be exactly 0" in judge(ex, none_dead, run_case(ex, unguarded, none_dead))  # ... not the hidden one
    assert judge(ex, none_dead, run_case(ex, own_auxk, none_dead)) is None


@pytest.mark.parametrize("check, answer, target", [
    ("check_auxk_loss", lambda *a: __import__("switch_sae_mini").saes.topk.auxk_loss(*a), "topk.auxk_loss"),
    ("check_project_decoder_grad", lambda W, g: _via_sae_projection(W, g), "SAEBase.project_decoder_grad"),
])
def test_the_new_exercises_refuse_the_package_too(check, answer, target):
    with pytest.raises(CheckFailed, match=rf"this calls .*{target}"):
        getattr(checks, check)(answer)


def _via_sae_projection(W, g):
    import switch_sae_mini as ssm
    sae = ssm.make_sae(ssm.SAEConfig(arch="topk", d_in=W.shape[1], d_sae=W.shape[0], k=1))
    with torch.no_grad():
        sae.W_dec.copy_(W)
    sae.W_dec.grad = g.clone()
    sae.project_decoder_grad()
    return sae.W_dec.grad
