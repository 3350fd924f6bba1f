"""Exercises of chapter 05's feature analysis (Mudide et al. 2024 ask whether experts specialise, how many features
are learned twice, and whether encoder vectors cluster by expert): the domain mix of each expert, each decoder
row's nearest neighbour in another expert, and the within- vs across-expert cosine gap. analysis/experts.py and
analysis/geometry.py are the package's versions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...analysis.experts import domain_profile as _package_domain_profile
from ...analysis.geometry import decoder_neighbours as _package_neighbours
from ...analysis.geometry import expert_cluster_gap as _package_gap
from .spec import Answer, Case, Exercise, close, randint


# 5.1 — domain_profile(expert_idx [n], domain [n], n_experts, n_domains) -> [E, D], rows sum to 1 (0 if unused)

def _profile_case(gen, n, n_experts, n_domains, label):
    expert_idx = torch.randint(0, n_experts - 1, (n,), generator=gen)  # the last expert receives no token
    domain = torch.randint(0, n_domains, (n,), generator=gen)
    return Case((expert_idx, domain, n_experts, n_domains), label)


def _profile_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    expert_idx, domain, n_experts, n_domains = case.args
    value, expected = got.outputs[0], exp.outputs[0]
    if value.shape != expected.shape:
        return (f"Return one row per expert and one column per domain: shape {tuple(expected.shape)}; "
                f"got {tuple(value.shape)}.")
    if not torch.isfinite(value).all():
        return ("The profile has NaN: an expert that receives no token gives 0/0. Its row must be all zeros "
                "(divide by the row sum clamped to at least 1).")
    if close(value, expected):
        return None
    counts = torch.zeros(n_experts, n_domains).index_put_((expert_idx, domain), torch.ones(len(domain)),
                                                          accumulate=True)
    if close(value, counts):
        return "These are counts: divide each row by its sum, so row e is the domain mix of expert e's tokens."
    if close(value, counts / counts.sum(0, keepdim=True).clamp_min(1)):
        return ("You normalised per domain (columns). Normalise per expert (rows): row e says where expert e's "
                "tokens come from.")
    if close(value, counts / len(domain)):
        return "You divided by all tokens; divide each row by that expert's own token count."
    return "The profile differs: count (expert, domain) pairs, then divide each row by its sum (0 rows stay 0)."


DOMAIN_PROFILE = Exercise(
    "domain_profile", ("profile",), ("tensor",), _package_domain_profile,
    visible_cases=lambda: [_profile_case(torch.Generator().manual_seed(41), 40, 4, 3, "visible")],
    random_cases=lambda gen: [_profile_case(gen, randint(gen, 1, 60), randint(gen, 2, 9), randint(gen, 1, 5),
                                            "random sizes")],
    diagnose=_profile_diagnose)


# 5.2 — nearest_other_expert(W_dec [d_sae, d_in], n_experts) -> (cos [d_sae], idx [d_sae])

def _neighbour_reference(W_dec, n_experts):
    found = _package_neighbours(W_dec, n_experts)
    return found.cos_other_expert, found.idx_other_expert


def _neighbour_case(gen, d_sae, d_in, n_experts, label):
    W_dec = torch.randn(d_sae, d_in, generator=gen) * torch.rand(d_sae, 1, generator=gen).add(0.2) * 3
    d_expert = d_sae // n_experts
    W_dec[1] = W_dec[0] * 0.5 + 0.01 * torch.randn(d_in, generator=gen)  # a near-twin in the *same* expert
    W_dec[d_expert] = -W_dec[0] * 2.0  # opposite direction in another expert: cosine -1, never a duplicate
    return Case((W_dec, n_experts), label)


def _variant(W_dec, n_experts, normalise=True, other_only=True, exclude_self=True, absolute=False):
    unit = F.normalize(W_dec, dim=-1) if normalise else W_dec
    sim = (unit @ unit.T).abs() if absolute else unit @ unit.T
    d_expert = W_dec.shape[0] // n_experts
    expert_of = torch.arange(W_dec.shape[0]) // d_expert
    if exclude_self:
        sim.fill_diagonal_(-torch.inf)
    if other_only:
        sim[expert_of[:, None] == expert_of[None, :]] = -torch.inf
    return sim.max(-1)


def _neighbour_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    W_dec, n_experts = case.args
    cos, idx = got.outputs
    if idx.is_floating_point() and not cos.is_floating_point():
        return "Return (cos, idx): the similarities first, then the neighbours' row indices."
    if cos.shape != (W_dec.shape[0],) or idx.shape != (W_dec.shape[0],):
        return f"Return one value and one index per decoder row: shape [{W_dec.shape[0]}] each."
    if close(cos, exp.outputs[0]):
        unit = F.normalize(W_dec, dim=-1)
        if idx.is_floating_point() or (idx < 0).any() or (idx >= W_dec.shape[0]).any() or \
                not close((unit * unit[idx.long()]).sum(-1), cos):
            return "idx must point at the neighbour whose cosine you returned (a row index into W_dec)."
        return None
    if close(cos, _variant(W_dec, n_experts, exclude_self=False, other_only=False).values):
        return "Every row is its own nearest neighbour (cosine 1): exclude the row itself, and its own expert."
    if close(cos, _variant(W_dec, n_experts, other_only=False).values):
        return ("Only rows of *other* experts count: a duplicate inside one expert is not what routing causes "
                "(row 1 of this case is a near-twin of row 0 in the same expert).")
    if close(cos, _variant(W_dec, n_experts, normalise=False).values):
        return ("Those are dot products: normalise the rows first (F.normalize(W_dec, dim=-1)), so you compare "
                "directions.")
    if close(cos, _variant(W_dec, n_experts, absolute=True).values):
        return "Keep the sign: a row pointing the opposite way (cosine -1) is not a duplicate."
    return "The similarities differ: cosine of unit rows, the maximum over rows of other experts."


def _neighbour_random(gen) -> Case:
    n_experts = randint(gen, 2, 6)
    return _neighbour_case(gen, n_experts * randint(gen, 2, 6), randint(gen, 3, 9), n_experts, "random sizes")


NEAREST_OTHER_EXPERT = Exercise(
    "nearest_other_expert", ("cos", "idx"), ("tensor", "tensor"), _neighbour_reference,
    visible_cases=lambda: [_neighbour_case(torch.Generator().manual_seed(42), 12, 5, 3, "visible")],
    random_cases=lambda gen: [_neighbour_random(gen)],
    diagnose=_neighbour_diagnose)


# 5.3 — expert_cluster_gap(vectors [d_sae, d], n_experts) -> mean within-expert cosine - mean across-expert cosine

def _gap_case(gen, n_experts, d_expert, d, spread, label):
    centres = torch.randn(n_experts, d, generator=gen)
    vectors = centres.repeat_interleave(d_expert, 0) + spread * torch.randn(n_experts * d_expert, d, generator=gen)
    vectors = vectors * torch.rand(n_experts * d_expert, 1, generator=gen).add(0.3) * 4  # norms differ
    return Case((vectors, n_experts), label)


def _gap_variant(vectors, n_experts, normalise=True, self_pairs=False):
    unit = F.normalize(vectors, dim=-1) if normalise else vectors
    sim = unit @ unit.T
    expert_of = torch.arange(vectors.shape[0]) // (vectors.shape[0] // n_experts)
    same = expert_of[:, None] == expert_of[None, :]
    within = sim[same] if self_pairs else sim[same & ~torch.eye(len(sim), dtype=torch.bool)]
    return float(within.mean() - sim[~same].mean())


def _gap_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    value, expected = got.outputs[0], exp.outputs[0]
    if abs(value - expected) <= 1e-4:
        return None
    if abs(value - _gap_variant(*case.args, self_pairs=True)) <= 1e-4:
        return ("The within-expert mean includes each vector with itself (cosine 1): leave the diagonal out, so "
                "only pairs of two different latents count.")
    if abs(value - _gap_variant(*case.args, normalise=False)) <= 1e-4:
        return "Normalise the vectors first: the gap compares directions, and these vectors have different norms."
    if abs(value + expected) <= 1e-4:
        return "Wrong sign: within-expert minus across-expert, so clustering by expert gives a positive gap."
    return ("The gap differs: the mean cosine of pairs (i != j) in the same expert minus the mean over pairs in "
            "different experts.")


EXPERT_CLUSTER_GAP = Exercise(
    "expert_cluster_gap", ("gap",), ("float",), _package_gap,
    visible_cases=lambda: [_gap_case(torch.Generator().manual_seed(43), 3, 4, 6, 0.5, "visible")],
    random_cases=lambda gen: [_gap_case(gen, randint(gen, 2, 6), randint(gen, 2, 7), randint(gen, 3, 9), 1.0,
                                        "random sizes")],
    diagnose=_gap_diagnose)
