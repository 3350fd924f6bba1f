"""The checks of the metric exercises (1.5 FVU, 3.5 expert balance): the right answer passes and equals the
package's metric; a stub, each typical wrong answer and a call to the package fail with the message named here."""

import pytest
import torch

import switch_sae_mini as ssm
from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed


def stub(*args):
    raise NotImplementedError()


def own_fvu(x, x_hat, centre="dims", per_token=False, explained=False):
    error = (x - x_hat).pow(2)
    mean = {"dims": x.mean(0), "scalar": x.mean(), "none": 0.0}[centre]
    deviation = (x - mean).pow(2)
    value = (error.sum(-1) / deviation.sum(-1)).mean() if per_token else error.sum() / deviation.sum()
    return 1 - float(value) if explained else float(value)


def own_balance(expert_idx, n_experts, times_e=True, counts=False, smallest=False, divide=False):
    c = torch.bincount(expert_idx, minlength=n_experts).float()
    share = c if counts else c / expert_idx.numel()
    top = share.min() if smallest else share.max()
    return float(top / n_experts if divide else top * n_experts if times_e else top)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_fvu(*a, explained=True), "variance \\*explained\\*"),
    (lambda *a: own_fvu(*a, centre="none"), "Centre first"),
    (lambda *a: own_fvu(*a, centre="scalar"), "its own mean over tokens"),
    (lambda *a: own_fvu(*a, per_token=True), "per-token ratio"),
    (lambda x, x_hat: (x - x_hat).pow(2).mean() / x.var(0).mean(), "same normalisation"),
    (lambda x, x_hat: "0.1", "must be a number"),
], ids=["stub", "explained", "uncentred", "scalar-mean", "per-token", "var-normalisation", "string"])
def test_fvu(wrong, message):
    checks.check_fvu(own_fvu)
    with pytest.raises(CheckFailed, match=message):
        checks.check_fvu(wrong)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_balance(*a, times_e=False), "Multiply the largest share by E"),
    (lambda *a: own_balance(*a, counts=True), "\\*fraction\\* of tokens"),
    (lambda *a: own_balance(*a, smallest=True), "not the smallest"),
    (lambda *a: own_balance(*a, divide=True), "do not divide"),
], ids=["stub", "no-E", "counts", "min", "divided"])
def test_expert_balance(wrong, message):
    checks.check_expert_balance(own_balance)
    with pytest.raises(CheckFailed, match=message):
        checks.check_expert_balance(wrong)


def test_own_metrics_equal_the_package():
    gen = torch.Generator().manual_seed(0)
    x, x_hat = torch.randn(50, 8, generator=gen) + 3, torch.randn(50, 8, generator=gen) + 3
    assert abs(own_fvu(x, x_hat) - ssm.metrics.fvu(x_hat, x)) < 1e-6
    idx = torch.randint(0, 5, (33,), generator=gen)
    assert own_balance(idx, 6) == pytest.approx(ssm.metrics.balance(ssm.metrics.expert_share(idx, 6)))


def test_calling_the_package_fails():
    with pytest.raises(CheckFailed, match="this calls switch_sae_mini.saes.metrics.fvu"):
        checks.check_fvu(lambda x, x_hat: ssm.metrics.fvu(x_hat, x))
    with pytest.raises(CheckFailed, match="this calls switch_sae_mini.saes.metrics"):
        checks.check_expert_balance(lambda i, e: ssm.metrics.balance(ssm.metrics.expert_share(i, e)))
