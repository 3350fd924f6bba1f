"""Analysis functions behind the expert explorer (notebook 06, ``widgets.expert_explorer``).

Each function answers one question the explorer asks and returns plain data (tensors, NamedTuples, lists), so
it can be unit-tested and used without widgets:

- ``harvest_in_order``: activations of whole contexts in document order, so a token's neighbours are known and
  top-activating contexts can be shown with every token's activation, not just the peak one;
- ``context_rows``: the rows around one token that belong to the same stretch of the same document;
- ``feature_stats`` / ``expert_top_features``: how often and how strongly each feature fires, per expert;
- ``feature_neighbours``: a feature's nearest decoder directions in *other* experts, duplicates marked;
- ``activation_histogram``, ``duplication_stats``: the numbers behind the histograms;
- ``route_text``: per token of any text, the routed expert, its router probability and the features that fire.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .analysis import Encoded, NearestNeighbours


class InOrderActivations(NamedTuple):
    acts: Float[Tensor, "n d_in"]
    meta: "TokenMetadata"  # noqa: F821 - activations.TokenMetadata (imported lazily: it pulls in the model stack)
    """Rows in document order: consecutive rows of one context are consecutive tokens of one document."""
    domains: tuple[str, ...]


def harvest_in_order(model, n_tokens: int, source="bundled", split: str = "validation",
                     contexts_per_doc: int = 4, hook: str | None = None, context_len: int = 128,
                     seed: int = 0, model_batch_size: int = 32, progress: bool = True) -> InOrderActivations:
    """Activations of the first ``contexts_per_doc`` contexts of every document, unshuffled, up to n_tokens.

    Unlike ``ActivationBuffer`` (shuffled, for training) the rows stay in (context, position) order, so every
    token's left and right neighbours are in the set, computed with the same context the model saw. Capping
    the contexts per document spreads the budget over many documents, hence over all domains. Contexts are cut
    exactly as the buffer cuts them (BOS prepended, BOS activation dropped), so metadata means the same thing.
    """
    from .activations import (ContextBatch, HookReader, TokenMetadata, activations_from_contexts,
                              iter_context_batches)
    from .sources import make_source

    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be positive, got {n_tokens}.")
    if contexts_per_doc < 1:
        raise ValueError(f"contexts_per_doc must be >= 1, got {contexts_per_doc}.")
    reader = HookReader(model, hook)
    text_source = make_source(source, split=split)
    domains = tuple(text_source.domains)
    seen: dict[int, int] = {}
    acts, metas, total = [], [], 0
    with tqdm(total=n_tokens, desc="harvesting contexts in document order", unit="tok", leave=False,
              disable=not progress) as bar:
        documents = text_source.documents(seed, 0)
        for batch in iter_context_batches(documents, model.tokenizer, domains, context_len, model_batch_size):
            keep = []
            for doc in batch.doc_id.tolist():
                seen[doc] = seen.get(doc, 0) + 1
                keep.append(seen[doc] <= contexts_per_doc)
            keep = torch.tensor(keep)
            if not keep.any():
                continue
            a, m = activations_from_contexts(reader, ContextBatch(*(field[keep] for field in batch)))
            acts.append(a.cpu())
            metas.append(m.cpu())
            bar.update(min(len(a), n_tokens - total))
            total += len(a)
            if total >= n_tokens:
                break
    if not acts:
        raise ValueError(f"source {source!r} (split {split!r}) produced no tokens.")
    meta = torch.cat(metas)[:n_tokens]
    return InOrderActivations(torch.cat(acts)[:n_tokens], TokenMetadata(*meta.unbind(-1)), domains)


def context_rows(doc_id: Int[Tensor, " n"], position: Int[Tensor, " n"], row: int, left: int = 10,
                 right: int = 4) -> range:
    """Rows ``[row - left, row + right]`` clipped to the run of consecutive positions of row's document (the
    data from ``harvest_in_order``); the result always contains ``row``."""
    if not 0 <= row < len(doc_id):
        raise IndexError(f"row={row} is outside 0..{len(doc_id) - 1}.")
    same = lambda a, b: doc_id[a] == doc_id[b] and position[b] - position[a] == b - a  # noqa: E731
    lo = row
    while lo > max(0, row - left) and same(lo - 1, row):
        lo -= 1
    hi = row
    while hi < min(len(doc_id) - 1, row + right) and same(row, hi + 1):
        hi += 1
    return range(lo, hi + 1)


class FeatureStats(NamedTuple):
    frequency: Float[Tensor, " d_sae"]
    """Fraction of tokens on which the feature is active."""
    mean_activation: Float[Tensor, " d_sae"]
    """Mean activation over the tokens where it is active (0 for features that never fire)."""


def feature_stats(codes: Encoded, d_sae: int) -> FeatureStats:
    active = codes.latent_acts > 0
    idx, vals = codes.latent_idx[active], codes.latent_acts[active].float()
    counts = torch.bincount(idx, minlength=d_sae).float()
    sums = torch.zeros(d_sae).index_add_(0, idx.cpu(), vals.cpu())
    return FeatureStats(counts / max(len(codes.latent_idx), 1), sums / counts.clamp_min(1))


class FeatureSummary(NamedTuple):
    feature: int
    frequency: float
    mean_activation: float


def expert_top_features(stats: FeatureStats, expert: int, n_experts: int,
                        top: int = 10) -> list[FeatureSummary]:
    """The expert's features that fire most often (ties: stronger mean activation first); never-firing ones
    are left out."""
    d_sae = len(stats.frequency)
    if not 0 <= expert < n_experts:
        raise ValueError(f"expert={expert} is outside 0..{n_experts - 1}.")
    d_expert = d_sae // n_experts
    block = range(expert * d_expert, (expert + 1) * d_expert)
    rows = [FeatureSummary(f, float(stats.frequency[f]), float(stats.mean_activation[f])) for f in block
            if stats.frequency[f] > 0]
    return sorted(rows, key=lambda r: (-r.frequency, -r.mean_activation, r.feature))[:top]


class Neighbour(NamedTuple):
    feature: int
    expert: int
    cos: float
    duplicate: bool
    """cos > threshold: the same direction learned twice."""


@torch.no_grad()
def feature_neighbours(W_dec: Float[Tensor, "d_sae d_in"], feature: int, n_experts: int, top: int = 5,
                       threshold: float = 0.9) -> list[Neighbour]:
    """The ``top`` decoder rows most cosine-similar to ``feature``'s, among *other* experts' features (any
    other feature when n_experts == 1). The first is ``decoder_neighbours(...).idx_other_expert[feature]``."""
    d_sae = W_dec.shape[0]
    if not 0 <= feature < d_sae:
        raise ValueError(f"feature={feature} is outside 0..{d_sae - 1}.")
    unit = F.normalize(W_dec.float(), dim=-1)
    cos = unit @ unit[feature]
    d_expert = d_sae // n_experts
    own = feature // d_expert
    if n_experts > 1:
        cos[own * d_expert:(own + 1) * d_expert] = -2.0
    cos[feature] = -2.0
    values, idx = cos.topk(min(top, d_sae - (d_expert if n_experts > 1 else 1)))
    return [Neighbour(int(i), int(i) // d_expert, float(v), float(v) > threshold)
            for v, i in zip(values.tolist(), idx.tolist())]


def activation_histogram(values: Float[Tensor, " n"], bins: int = 20) -> tuple[Tensor, Tensor]:
    """(counts [bins], edges [bins + 1]) of the *non-zero* values (where the feature fires), over 0..max."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}.")
    fired = values[values > 0].float().cpu()
    top = float(fired.max()) if fired.numel() else 1.0
    counts, edges = torch.histogram(fired, bins=bins, range=(0.0, top))
    return counts.long(), edges


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
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    cos = neighbours.cos_other_expert
    dup = (cos > threshold).float()
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
    return DuplicationStats(float(dup.mean()), per_expert, float(cos.mean()), counts.long(), edges, pairs)


class TextRouting(NamedTuple):
    token_ids: list[int]
    expert_idx: Int[Tensor, " n"]
    router_prob: Float[Tensor, " n"]
    """Router probability of the chosen expert (the gate that scales its features)."""
    feature_idx: Int[Tensor, "n top"]
    feature_acts: Float[Tensor, "n top"]
    """The strongest ``top`` firing features per token, descending (0 where fewer fire)."""


@torch.no_grad()
def route_text(reader, sae, text: str, top_features: int = 3, max_tokens: int | None = None) -> TextRouting:
    """Run ``text`` through the model up to the SAE's hook (``reader``: an ``activations.HookReader``) and the
    Switch SAE. BOS is prepended and its activation dropped, as when the SAE's training data was harvested."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    if getattr(sae.cfg, "arch", None) != "switch":
        raise ValueError(f"route_text needs a Switch SAE (cfg.arch='switch'), got arch={sae.cfg.arch!r}.")
    if reader.d_in != sae.cfg.d_in:
        raise ValueError(f"the reader's hook gives d_in={reader.d_in} but the SAE expects {sae.cfg.d_in}; "
                         "pass the hook the SAE was trained on.")
    tokenizer = reader.model.tokenizer
    max_tokens = max_tokens or int(reader.model.cfg.n_ctx) - 1
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    if not ids:
        empty = torch.zeros(0, top_features)
        return TextRouting([], torch.zeros(0, dtype=torch.long), torch.zeros(0), empty.long(), empty)
    acts = reader(torch.tensor([[tokenizer.bos_token_id] + ids]))[0, 1:]
    out = sae(acts.to(sae.W_dec.device))
    vals, order = out.latent_acts.sort(dim=-1, descending=True)
    vals, order = vals[:, :top_features], order[:, :top_features]
    idx = out.latent_idx.gather(-1, order)
    return TextRouting(ids, out.expert_idx.cpu(), out.router_probs.max(-1).values.cpu(), idx.cpu(),
                       vals.clamp_min(0).cpu())
