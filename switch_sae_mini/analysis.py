"""Feature analysis for trained SAEs (spec §14 figures 5-6): expert usage and specialisation, decoder geometry and
duplicate features across experts, top-activating tokens. Functions return data (tensors, NamedTuples); the
notebooks and the explorer widget plot them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from .sae import SAEBase


class Encoded(NamedTuple):
    """Sparse codes of many activations: k values/indices per token, plus the routed expert (Switch)."""

    latent_acts: Float[Tensor, "n k"]
    latent_idx: Int[Tensor, "n k"]
    expert_idx: Int[Tensor, " n"] | None
    router_prob: Float[Tensor, " n"] | None
    """Probability of the chosen expert (the gate); None for non-Switch SAEs."""


@torch.no_grad()
def encode_all(sae: SAEBase, acts: Float[Tensor, "n d_in"], batch_size: int = 4096) -> Encoded:
    """Encode activations in chunks and keep only the sparse codes (TopK and Switch SAEs)."""
    if sae.cfg.arch == "relu":
        raise ValueError("encode_all needs a TopK or Switch SAE (ReLU codes are dense); use sae.encode instead.")
    vals, idx, experts, probs = [], [], [], []
    was_training = sae.training
    sae.eval()
    for chunk in acts.split(batch_size):
        out = sae(chunk.float())
        vals.append(out.latent_acts)
        idx.append(out.latent_idx)
        if out.expert_idx is not None:
            experts.append(out.expert_idx)
            probs.append(out.router_probs.max(-1).values)
    sae.train(was_training)
    cat = lambda xs: torch.cat(xs) if xs else None  # noqa: E731
    return Encoded(torch.cat(vals), torch.cat(idx), cat(experts), cat(probs))


def expert_usage(expert_idx: Int[Tensor, " n"], n_experts: int) -> Float[Tensor, " n_experts"]:
    """Fraction of tokens routed to each expert."""
    counts = torch.bincount(expert_idx, minlength=n_experts).float()
    return counts / counts.sum().clamp_min(1)


def domain_profile(expert_idx: Int[Tensor, " n"], domain: Int[Tensor, " n"], n_experts: int,
                   n_domains: int) -> Float[Tensor, "n_experts n_domains"]:
    """Row e: the domain mix of the tokens expert e receives (rows sum to 1; zero rows for unused experts)."""
    counts = torch.zeros(n_experts, n_domains)
    counts.index_put_((expert_idx.cpu(), domain.cpu()), torch.ones(len(expert_idx)), accumulate=True)
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def specialisation(profile: Float[Tensor, "n_experts n_domains"], usage: Float[Tensor, " n_experts"]) -> float:
    """Usage-weighted mean of each expert's largest domain share: 1/n_domains-ish when experts ignore domain,
    1.0 when every expert sees a single domain."""
    return float((profile.max(1).values * usage).sum() / usage.sum().clamp_min(1e-12))


def top_tokens_per_expert(expert_idx: Int[Tensor, " n"], token_id: Int[Tensor, " n"], expert: int,
                          top: int = 10, min_count: int = 3) -> list[tuple[int, int, float]]:
    """Tokens routed to `expert` most often: (token_id, count, lift), lift = share in expert / share overall."""
    ids, overall = torch.unique(token_id, return_counts=True)
    mine = token_id[expert_idx == expert]
    if mine.numel() == 0:
        return []
    m_ids, m_counts = torch.unique(mine, return_counts=True)
    overall_share = dict(zip(ids.tolist(), (overall.float() / len(token_id)).tolist()))
    rows = [(t, c, (c / len(mine)) / overall_share[t]) for t, c in zip(m_ids.tolist(), m_counts.tolist())
            if c >= min_count]
    return sorted(rows, key=lambda r: (-r[1], r[0]))[:top]


class NearestNeighbours(NamedTuple):
    cos: Float[Tensor, " d_sae"]
    """Max cosine similarity of each decoder row to any other row."""
    idx: Int[Tensor, " d_sae"]
    cos_other_expert: Float[Tensor, " d_sae"]
    """Max cosine to a row in a *different* expert (equals cos when n_experts == 1)."""
    idx_other_expert: Int[Tensor, " d_sae"]


@torch.no_grad()
def decoder_neighbours(W_dec: Float[Tensor, "d_sae d_in"], n_experts: int = 1,
                       chunk: int = 2048) -> NearestNeighbours:
    """Nearest decoder neighbours by cosine, in chunks so d_sae = 24576 fits in memory."""
    unit = F.normalize(W_dec.float(), dim=-1)
    d_sae = unit.shape[0]
    expert_of = torch.arange(d_sae) // (d_sae // n_experts)
    out = [torch.empty(d_sae) for _ in range(2)] + [torch.empty(d_sae, dtype=torch.long) for _ in range(2)]
    cos, cos_o, idx, idx_o = out[0], out[1], out[2], out[3]
    for start in range(0, d_sae, chunk):
        rows = torch.arange(start, min(start + chunk, d_sae))
        sim = unit[rows] @ unit.T  # (chunk, d_sae)
        sim[torch.arange(len(rows)), rows] = -2.0  # not its own neighbour
        cos[rows], idx[rows] = sim.max(-1)
        if n_experts > 1:
            sim[expert_of[rows][:, None] == expert_of[None, :]] = -2.0
        cos_o[rows], idx_o[rows] = sim.max(-1)
    return NearestNeighbours(cos, idx, cos_o, idx_o)


def duplicate_fraction(neighbours: NearestNeighbours, threshold: float = 0.9, across_experts: bool = True) -> float:
    """Fraction of latents with a near-duplicate (cosine > threshold), by default in another expert (spec §14)."""
    cos = neighbours.cos_other_expert if across_experts else neighbours.cos
    return float((cos > threshold).float().mean())


@torch.no_grad()
def inter_expert_similarity(W_dec: Float[Tensor, "d_sae d_in"], n_experts: int) -> Float[Tensor, "E E"]:
    """[i, j]: mean over latents of expert i of their max cosine to latents of expert j (diagonal excludes self)."""
    unit = F.normalize(W_dec.float(), dim=-1).unflatten(0, (n_experts, -1))  # (E, m, d)
    result = torch.empty(n_experts, n_experts)
    for i in range(n_experts):
        sim = torch.einsum("md,end->emn", unit[i], unit)  # (E, m, m)
        sim[i].fill_diagonal_(-2.0)
        result[i] = sim.max(-1).values.mean(-1)
    return result


@torch.no_grad()
def pca_2d(vectors: Float[Tensor, "n d"]) -> Float[Tensor, "n 2"]:
    """First two principal components (deterministic; used to plot encoder vs decoder geometry)."""
    centred = vectors.float() - vectors.float().mean(0)
    _, _, V = torch.linalg.svd(centred, full_matrices=False)
    proj = centred @ V[:2].T
    return proj * proj[:, :1].sign().sum().sign()  # fix the sign so plots don't flip between runs


def feature_activations(codes: Encoded, feature: int) -> Float[Tensor, " n"]:
    """Activation of one latent on every token (zeros where it is not among the token's k)."""
    hit = codes.latent_idx == feature
    return (codes.latent_acts * hit).sum(-1)


def top_activations(codes: Encoded, feature: int, top: int = 10) -> tuple[Tensor, Tensor]:
    """(values, token positions in the encoded set) of the feature's strongest activations, descending."""
    acts = feature_activations(codes, feature)
    values, positions = acts.topk(min(top, int((acts > 0).sum())))
    return values, positions


def firing_frequency(codes: Encoded, d_sae: int) -> Float[Tensor, " d_sae"]:
    """Fraction of tokens on which each latent is active."""
    active = codes.latent_idx[codes.latent_acts > 0]
    return torch.bincount(active, minlength=d_sae).float() / max(len(codes.latent_idx), 1)


@torch.no_grad()
def logit_effect(direction: Float[Tensor, " d_model"], W_U: Float[Tensor, "d_model vocab"],
                 top: int = 10) -> tuple[list[int], list[int]]:
    """Token ids most promoted / suppressed by adding `direction` straight to the unembedding input.

    The direct path only: it ignores the later blocks and the final LayerNorm's scale, a common first look
    (as in neuronpedia's logit lens for residual features).
    """
    logits = direction.float() @ W_U.float()
    return logits.topk(top).indices.tolist(), (-logits).topk(top).indices.tolist()


def expert_of_feature(feature: int, d_sae: int, n_experts: int) -> int:
    return feature // (d_sae // n_experts)


def concat_codes(parts: Iterable[Encoded]) -> Encoded:
    parts = list(parts)
    cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
    return Encoded(*(cat([getattr(p, f) for p in parts]) for f in Encoded._fields))


class ContextLookup:
    """Turns activation metadata (doc_id, position) back into text around the token.

    docs: the documents the activations came from (e.g. ``corpus.load_corpus("train")``); each needs ``doc_id``
    and ``text``. Positions index ``tokenizer(text, add_special_tokens=False)``, as the activation buffer records.
    """

    def __init__(self, docs, tokenizer):
        self.texts = {int(d.doc_id): d.text for d in docs}
        self.tokenizer = tokenizer
        self._tokens: dict[int, list[int]] = {}

    def tokens(self, doc_id: int) -> list[int]:
        if doc_id not in self._tokens:
            if doc_id not in self.texts:
                raise KeyError(f"doc_id {doc_id} is not among the documents given to ContextLookup.")
            self._tokens[doc_id] = self.tokenizer(self.texts[doc_id], add_special_tokens=False)["input_ids"]
        return self._tokens[doc_id]

    def window(self, doc_id: int, position: int, left: int = 12, right: int = 4) -> tuple[str, str, str]:
        """(text before, the token itself, text after) around the token at `position` of document `doc_id`."""
        ids = self.tokens(int(doc_id))
        position = int(position)
        decode = self.tokenizer.decode
        return (decode(ids[max(0, position - left):position]), decode(ids[position:position + 1]),
                decode(ids[position + 1:position + 1 + right]))

    def show(self, doc_id: int, position: int, left: int = 12, right: int = 4) -> str:
        """One line with the token in [[double brackets]] and newlines made visible."""
        before, token, after = self.window(doc_id, position, left, right)
        return f"{before}[[{token}]]{after}".replace("\n", "⏎")
