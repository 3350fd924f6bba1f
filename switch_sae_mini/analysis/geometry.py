"""Decoder geometry: nearest neighbours by cosine, duplicate features across experts, inter-expert similarity
and a 2-D projection (docs/design-notes.md §7). `cosine_neighbours` is the one home of the masked-cosine search
that the whole-dictionary view and the per-feature view both use.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import ArgumentError


class NearestNeighbours(NamedTuple):
    """Decoder nearest neighbours ([d_sae] from decoder_neighbours; [n, top] from cosine_neighbours)."""

    cos: Float[Tensor, " d_sae"]
    """Max cosine similarity of each decoder row to any other row."""
    idx: Int[Tensor, " d_sae"]
    cos_other_expert: Float[Tensor, " d_sae"]
    """Max cosine to a row in a *different* expert (equals cos when n_experts == 1)."""
    idx_other_expert: Int[Tensor, " d_sae"]


@torch.no_grad()
def cosine_neighbours(W_dec: Float[Tensor, "d_sae d_in"], n_experts: int = 1, rows: Tensor | None = None,
                      top: int = 1, chunk: int = 2048) -> NearestNeighbours:
    """The `top` most cosine-similar other decoder rows of each row in `rows` (default: all), descending, twice:
    among all other rows, and among rows of *other* experts (the same as all when n_experts == 1). Fields are
    [len(rows), top]. Computed in chunks of rows so d_sae = 24576 fits in memory."""
    unit = F.normalize(W_dec.float(), dim=-1)
    d_sae = unit.shape[0]
    d_expert = d_sae // n_experts
    rows = torch.arange(d_sae) if rows is None else torch.as_tensor(rows, dtype=torch.long).reshape(-1)
    top_any, top_other = min(top, d_sae - 1), min(top, d_sae - (d_expert if n_experts > 1 else 1))
    expert_of = torch.arange(d_sae) // d_expert

    def best(sim: Tensor, k: int) -> tuple[Tensor, Tensor]:
        return sim.max(-1, keepdim=True) if k == 1 else sim.topk(k, dim=-1)

    parts = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        sim = unit[part] @ unit.T  # (chunk, d_sae)
        sim[torch.arange(len(part)), part] = -2.0  # not its own neighbour
        cos, idx = best(sim, top_any)
        if n_experts > 1:
            sim[expert_of[part][:, None] == expert_of[None, :]] = -2.0
            cos_o, idx_o = best(sim, top_other)
        else:
            cos_o, idx_o = cos, idx
        parts.append((cos, idx, cos_o, idx_o))
    return NearestNeighbours._make(torch.cat([p[i] for p in parts]) for i in range(4))


def decoder_neighbours(W_dec: Float[Tensor, "d_sae d_in"], n_experts: int = 1,
                       chunk: int = 2048) -> NearestNeighbours:
    """Each decoder row's nearest neighbour by cosine, overall and in another expert (fields [d_sae])."""
    return NearestNeighbours._make(t[:, 0] for t in cosine_neighbours(W_dec, n_experts, chunk=chunk))


class Neighbour(NamedTuple):
    feature: int
    expert: int
    cos: float
    duplicate: bool
    """cos > threshold: the same direction learned twice."""


def feature_neighbours(W_dec: Float[Tensor, "d_sae d_in"], feature: int, n_experts: int, top: int = 5,
                       threshold: float = 0.9) -> list[Neighbour]:
    """The ``top`` decoder rows most cosine-similar to ``feature``'s, among *other* experts' features (any
    other feature when n_experts == 1). The first is ``decoder_neighbours(...).idx_other_expert[feature]``."""
    d_sae = W_dec.shape[0]
    if not 0 <= feature < d_sae:
        raise ArgumentError(f"feature={feature} is outside 0..{d_sae - 1}.")
    found = cosine_neighbours(W_dec, n_experts, rows=torch.tensor([feature]), top=top)
    d_expert = d_sae // n_experts
    return [Neighbour(int(i), int(i) // d_expert, float(v), float(v) > threshold)
            for v, i in zip(found.cos_other_expert[0].tolist(), found.idx_other_expert[0].tolist())]


def is_duplicate(neighbours: NearestNeighbours, threshold: float = 0.9,
                 across_experts: bool = True) -> Tensor:
    """Bool [d_sae]: the latent has a near-duplicate (nearest-neighbour cosine > threshold), by default in another
    expert (docs/design-notes.md §7)."""
    if not 0.0 < threshold < 1.0:
        raise ArgumentError(f"threshold must be in (0, 1), got {threshold}.")
    cos = neighbours.cos_other_expert if across_experts else neighbours.cos
    return cos > threshold


def duplicate_fraction(neighbours: NearestNeighbours, threshold: float = 0.9, across_experts: bool = True) -> float:
    """Fraction of latents with a near-duplicate (see is_duplicate)."""
    return float(is_duplicate(neighbours, threshold, across_experts).float().mean())


class DuplicationStats(NamedTuple):
    fraction: float
    """Fraction of features with a neighbour in another expert at cosine > threshold."""
    per_expert: Float[Tensor, " n_experts"]
    mean_cos: float
    counts: Int[Tensor, " bins"]
    edges: Float[Tensor, " bins_plus_1"]
    """Histogram of each feature's max cosine to another expert, on a fixed 0..1 axis (SAEs compare)."""
    pairs: list[tuple[int, int, float]]
    """The most similar (feature, neighbour, cos) pairs across experts, each pair listed once."""


def duplication_stats(neighbours: NearestNeighbours, n_experts: int, threshold: float = 0.9, bins: int = 20,
                      top_pairs: int = 5) -> DuplicationStats:
    """Duplication across experts: the fraction (as duplicate_fraction), per expert, the cosine histogram and the
    most similar pairs."""
    cos = neighbours.cos_other_expert
    dup = is_duplicate(neighbours, threshold).float()
    per_expert = dup.unflatten(0, (n_experts, -1)).mean(-1)
    counts, edges = torch.histogram(cos.float().clamp(0.0, 1.0).cpu(), bins=bins, range=(0.0, 1.0))
    pairs, seen = [], set()
    for f in cos.argsort(descending=True).tolist():
        g = int(neighbours.idx_other_expert[f])
        if (g, f) not in seen:
            pairs.append((f, g, float(cos[f])))
            seen.add((f, g))
        if len(pairs) == top_pairs:
            break
    return DuplicationStats(fraction=float(dup.mean()), per_expert=per_expert, mean_cos=float(cos.mean()),
                            counts=counts.long(), edges=edges, pairs=pairs)


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
def expert_cluster_gap(vectors: Float[Tensor, "d_sae d"], n_experts: int) -> float:
    """Mean cosine between two different latents of the same expert minus the mean cosine between latents of
    different experts: near 0 when the vectors ignore the expert split, larger when each expert's vectors cluster
    (the paper's t-SNE reading: encoder vectors cluster by expert, decoder vectors intermix)."""
    if n_experts < 2 or vectors.shape[0] % n_experts:
        raise ArgumentError(f"expert_cluster_gap needs n_experts >= 2 dividing the {vectors.shape[0]} vectors; "
                            f"got n_experts={n_experts}.")
    unit = F.normalize(vectors.float(), dim=-1)
    sim = unit @ unit.T
    expert_of = torch.arange(unit.shape[0], device=unit.device) // (unit.shape[0] // n_experts)
    same = expert_of[:, None] == expert_of[None, :]
    same.fill_diagonal_(False)  # a vector is not its own neighbour
    different = expert_of[:, None] != expert_of[None, :]
    return float(sim[same].mean() - sim[different].mean())


@torch.no_grad()
def pca_2d(vectors: Float[Tensor, "n d"]) -> Float[Tensor, "n 2"]:
    """First two principal components (deterministic; used to plot encoder vs decoder geometry)."""
    centred = vectors.float() - vectors.float().mean(0)
    _, _, V = torch.linalg.svd(centred, full_matrices=False)
    proj = centred @ V[:2].T
    return proj * proj[:, :1].sign().sum().sign()  # fix the sign so plots don't flip between runs


def tsne_2d(vectors: Float[Tensor, "n d"], perplexity: float = 50.0, seed: int = 0,
            n_jobs: int = 2) -> Float[Tensor, "n 2"]:
    """A 2-D t-SNE of `vectors` (openTSNE: faster than scikit-learn's on our machines, scripts/bench_tsne.py),
    with the paper's perplexity of 50 on the raw vectors (docs/design-notes.md §7), PCA-initialised and seeded, so
    that a run repeats. The perplexity is lowered for small inputs, as t-SNE needs 3 x perplexity < n."""
    from openTSNE import TSNE

    n = vectors.shape[0]
    if n < 4:
        raise ArgumentError(f"tsne_2d needs at least 4 vectors, got {n}.")
    points = vectors.detach().float().cpu().numpy()
    embedding = TSNE(2, perplexity=min(perplexity, (n - 1) / 3), initialization="pca", random_state=seed,
                     n_jobs=n_jobs, verbose=False).fit(points)
    return torch.tensor(embedding.tolist(), dtype=torch.float32)  # a TSNEEmbedding (an ndarray subclass)
