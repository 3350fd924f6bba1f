"""The checks of chapter 05's analysis exercises (5.1 the domain profile, 5.2 the nearest decoder row in another
expert, 5.3 the within- vs across-expert cosine gap): the right answer passes and equals the package's; a stub, each
typical wrong answer and a call to the package fail with the message named here."""

import pytest
import torch
import torch.nn.functional as F

import switch_sae_mini as ssm
from switch_sae_mini import checks
from switch_sae_mini.classroom.checks import CheckFailed
from switch_sae_mini.classroom.exercises import EXERCISES


def stub(*args):
    raise NotImplementedError()


def own_profile(expert_idx, domain, n_experts, n_domains, rows=True, divide=True, clamp=True, by_all=False):
    counts = torch.zeros(n_experts, n_domains)
    counts.index_put_((expert_idx, domain), torch.ones(len(domain)), accumulate=True)
    if not divide:
        return counts
    if by_all:
        return counts / len(domain)
    total = counts.sum(1 if rows else 0, keepdim=True)
    return counts / (total.clamp_min(1) if clamp else total)


def own_nearest(W_dec, n_experts, normalise=True, other_only=True, exclude_self=True, absolute=False, order="ci"):
    unit = F.normalize(W_dec, dim=-1) if normalise else W_dec
    sim = unit @ unit.T
    sim = sim.abs() if absolute else sim
    expert_of = torch.arange(W_dec.shape[0]) // (W_dec.shape[0] // n_experts)
    if exclude_self:
        sim.fill_diagonal_(-torch.inf)
    if other_only:
        sim[expert_of[:, None] == expert_of[None, :]] = -torch.inf
    cos, idx = sim.max(-1)
    return (cos, idx) if order == "ci" else (idx, cos)


def own_gap(vectors, n_experts, normalise=True, self_pairs=False, sign=1.0):
    unit = F.normalize(vectors, dim=-1) if normalise else vectors
    sim = unit @ unit.T
    expert_of = torch.arange(len(vectors)) // (len(vectors) // n_experts)
    same = expert_of[:, None] == expert_of[None, :]
    within = sim[same] if self_pairs else sim[same & ~torch.eye(len(sim), dtype=torch.bool)]
    return sign * float(within.mean() - sim[~same].mean())


def _rejects(check, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check(wrong)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_profile(*a, divide=False), "These are counts"),
    (lambda *a: own_profile(*a, rows=False), "normalised per domain"),
    (lambda *a: own_profile(*a, clamp=False), "0/0"),
    (lambda *a: own_profile(*a, by_all=True), "divided by all tokens"),
    (lambda *a: own_profile(*a).T, "shape"),
], ids=["stub", "counts", "columns", "nan-for-unused", "all-tokens", "transposed"])
def test_domain_profile(wrong, message):
    checks.check_domain_profile(own_profile)
    _rejects(checks.check_domain_profile, wrong, message)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_nearest(*a, exclude_self=False, other_only=False), "its own nearest neighbour"),
    (lambda *a: own_nearest(*a, other_only=False), "near-twin of row 0 in the same expert"),
    (lambda *a: own_nearest(*a, normalise=False), "dot products"),
    (lambda *a: own_nearest(*a, absolute=True), "Keep the sign"),
    (lambda *a: own_nearest(*a, order="ic"), "Return \\(cos, idx\\)"),
    (lambda *a: (own_nearest(*a)[0], torch.zeros(a[0].shape[0], dtype=torch.long)), "idx must point"),
], ids=["stub", "self", "same-expert", "dot", "abs", "swapped", "wrong-idx"])
def test_nearest_other_expert(wrong, message):
    checks.check_nearest_other_expert(own_nearest)
    _rejects(checks.check_nearest_other_expert, wrong, message)


@pytest.mark.parametrize("wrong, message", [
    (stub, "NotImplementedError"),
    (lambda *a: own_gap(*a, self_pairs=True), "with itself"),
    (lambda *a: own_gap(*a, normalise=False), "Normalise the vectors first"),
    (lambda *a: own_gap(*a, sign=-1.0), "Wrong sign"),
    (lambda *a: "0.3", "must be a number"),
], ids=["stub", "self-pairs", "dot", "sign", "string"])
def test_expert_cluster_gap(wrong, message):
    checks.check_expert_cluster_gap(own_gap)
    _rejects(checks.check_expert_cluster_gap, wrong, message)


def test_own_answers_equal_the_package():
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(24, 6, generator=gen)
    found = ssm.analysis.decoder_neighbours(W, 4)
    cos, idx = own_nearest(W, 4)
    assert torch.allclose(cos, found.cos_other_expert) and torch.equal(idx, found.idx_other_expert)
    assert abs(own_gap(W, 4) - ssm.analysis.expert_cluster_gap(W, 4)) < 1e-6
    e, d = torch.randint(0, 3, (50,), generator=gen), torch.randint(0, 3, (50,), generator=gen)
    assert torch.equal(own_profile(e, d, 4, 3), ssm.analysis.domain_profile(e, d, 4, 3))


def test_the_gap_reads_clusters_and_refuses_bad_sizes():
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 16, generator=gen)
    clustered = centres.repeat_interleave(8, 0) + 0.1 * torch.randn(32, 16, generator=gen)
    assert ssm.analysis.expert_cluster_gap(clustered, 4) > 0.5
    assert abs(ssm.analysis.expert_cluster_gap(clustered[torch.randperm(32, generator=gen)], 4)) < 0.2
    with pytest.raises(ssm.errors.ArgumentError, match="n_experts"):
        ssm.analysis.expert_cluster_gap(clustered, 5)


@pytest.mark.parametrize("check, answer, target", [
    ("check_domain_profile", lambda *a: ssm.analysis.domain_profile(*a), "experts.domain_profile"),
    ("check_nearest_other_expert", lambda W, e: ssm.analysis.decoder_neighbours(W, e)[2:], "decoder_neighbours"),
    ("check_expert_cluster_gap", lambda v, e: ssm.analysis.expert_cluster_gap(v, e), "geometry.expert_cluster_gap"),
])
def test_answers_that_call_the_package_fail(check, answer, target):
    with pytest.raises(CheckFailed, match=rf"this calls .*{target}"):
        getattr(checks, check)(answer)


def test_the_profile_case_has_an_unused_expert():
    [case] = EXERCISES["domain_profile"].visible_cases()
    expert_idx, _, n_experts, _ = case.args
    assert not (expert_idx == n_experts - 1).any()
