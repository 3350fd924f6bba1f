"""The checks of chapter 04's ledger exercises (4.2 training FLOPs per token, 4.3 the matched Switch sizes): the
right answer passes and agrees with the package's ledger; a stub, each typical wrong answer and a call to the
package fail with the message named here."""

import pytest

import switch_sae_mini as ssm
from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed
from switch_sae_mini.classroom.exercises import EXERCISES


def stub(*args):
    raise NotImplementedError()


def own_training(d_in, d_sae, k, n_experts, factor=3, dense_decoder=False, router=True, masked=False,
                 decoder=True):
    r = 2 * d_in * n_experts if n_experts > 1 and router else 0
    enc = 2 * d_in * (d_sae if masked else d_sae // n_experts)
    dec = (2 * d_in * (d_sae if dense_decoder else k)) if decoder else 0
    return factor * (r + enc + dec)


def own_sizes(d_in, d_sae, n_experts, swap=False, flop_total=None, bias="router"):
    def params(total):
        extra = {"router": d_in + d_in * n_experts + d_in, "topk": d_in + total, "none": 0}[bias]
        return 2 * total * d_in + extra
    flop = flop_total if flop_total is not None else d_sae * n_experts
    out = (flop, params(flop), d_sae, params(d_sae))
    return (out[2], out[3], out[0], out[1]) if swap else out


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_training(*a, factor=1), "forward pass only"),
    (lambda *a: own_training(*a, factor=2), "3 x forward, not 2 x"),
    (lambda *a: own_training(*a, dense_decoder=True), "k active rows"),
    (lambda *a: own_training(*a, router=False), "Count the router"),
    (lambda *a: own_training(*a, masked=True), "masked reference code"),
    (lambda *a: own_training(*a, decoder=False), "Add the decoder"),
    (lambda *a: float(own_training(*a)) + 0.5, "must be an int"),
], ids=["stub", "forward-only", "twice", "dense-decoder", "no-router", "masked", "no-decoder", "float"])
def test_training_flops_per_token(wrong, message):
    checks.check_training_flops_per_token(own_training)
    with pytest.raises(CheckFailed, match=message):
        checks.check_training_flops_per_token(wrong)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_sizes(*a, swap=True), "regimes are swapped"),
    (lambda d_in, d_sae, e: own_sizes(d_in, d_sae, e, flop_total=d_sae), "E x d_sae"),
    (lambda *a: own_sizes(*a, bias="topk"), "no encoder bias"),
    (lambda *a: own_sizes(*a)[:1] + own_sizes(*a, bias="topk")[1:2] + own_sizes(*a)[2:], "no encoder bias"),
    (lambda *a: own_sizes(*a, bias="none"), "Count the biases and the router"),
    (lambda *a: own_sizes(*a)[:2], "Return a tuple"),
], ids=["stub", "swapped", "flop-not-wider", "topk-biases", "topk-biases-flop-only", "weights-only", "pair"])
def test_matched_switch_sizes(wrong, message):
    checks.check_matched_switch_sizes(own_sizes)
    with pytest.raises(CheckFailed, match=message):
        checks.check_matched_switch_sizes(wrong)


@pytest.mark.parametrize("d_in, d_sae, k, n_experts", [(768, 24576, 32, 1), (768, 196608, 32, 8), (128, 1024, 8, 4),
                                                       (64, 512, 4, 2)])
def test_the_references_are_the_packages_ledger(d_in, d_sae, k, n_experts):
    cfg = ssm.SAEConfig(arch="switch" if n_experts > 1 else "topk", d_in=d_in, d_sae=d_sae, k=k, n_experts=n_experts)
    assert EXERCISES["training_flops_per_token"].reference(d_in, d_sae, k, n_experts) == \
        ssm.flops.training_flops(cfg)["total"]
    if n_experts > 1 and d_sae // n_experts >= k:
        dense = ssm.SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=k)
        flop, width = ssm.flops.flop_matched(dense, n_experts), ssm.flops.width_matched(dense, n_experts)
        assert EXERCISES["matched_switch_sizes"].reference(d_in, d_sae, n_experts) == (
            flop.d_sae, ssm.flops.param_counts(flop)["total"], width.d_sae, ssm.flops.param_counts(width)["total"])


def test_calling_the_package_fails():
    def via_package(d_in, d_sae, k, n_experts):
        cfg = ssm.SAEConfig(arch="switch" if n_experts > 1 else "topk", d_in=d_in, d_sae=d_sae, k=k,
                            n_experts=n_experts)
        return ssm.flops.training_flops(cfg)["total"]
    with pytest.raises(CheckFailed, match="this calls switch_sae_mini.flops.training_flops"):
        checks.check_training_flops_per_token(via_package)
    with pytest.raises(CheckFailed, match="this calls switch_sae_mini.flops.flop_matched"):
        checks.check_matched_switch_sizes(lambda d_in, d_sae, e: ssm.flops.flop_matched(
            ssm.SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=1), e))
