"""TopK vs Switch interpretability, offline, on features sampled by frequency band. Mudide et al. 2024 score 1000
random latents per SAE with an LLM (their automated-interpretability evaluation; its results are bundled, see
``paper.autointerp_results``). Without an LLM we use detection.py's rule-based detection score and two purities.

Sampling by band, not "the most frequent features": the most frequent are usually the least interpretable, and
a random draw is mostly whatever band holds most latents. Each band gets the same number of features, drawn
(seeded) among the latents with enough activating tokens in both halves of the held-out set to be scored.

- **Detection** (detection.py): balanced accuracy of a learnt token rule on held-out documents; 0.5 is chance.
- **Token purity**: the share of a feature's `top` strongest activations that fall on its single most common
  token. High for token features; it says nothing about features that a context, not a token, defines.
- **Domain purity**: the same for the document's domain; compare it with the corpus's largest domain share (what
  a feature blind to domain gets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..data.reading import TokenMetadata
from ..errors import ArgumentError
from .detection import N_DECILES, DetectionRule, detection_score, document_halves
from .features import Encoded, feature_activations, feature_stats


def band_label(lo: float, hi: float) -> str:
    return f"{lo:.2%}–{hi:.2%}" if hi < 1 else f"≥ {lo:.2%}"


def sample_by_band(codes: Encoded, d_sae: int, doc_id: Int[Tensor, " n"], edges: Sequence[float] = (5e-4, 2e-3,
                   1e-2, 1.0), per_band: int = 16, min_examples: int = 20, seed: int = 0) -> dict[str, list[int]]:
    """{band label: features}: per_band latents drawn at random from each frequency band [edges[i], edges[i+1])
    among those with >= min_examples activating tokens in both document halves (fewer if the band has fewer)."""
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] <= 0:
        raise ArgumentError(f"edges must be increasing positive frequencies (at least two), got {edges}.")
    if per_band < 1:
        raise ArgumentError(f"per_band must be >= 1, got {per_band}.")
    frequency = feature_stats(codes, d_sae).frequency
    explain = document_halves(doc_id)
    fired = codes.latent_acts > 0
    per_half = [torch.bincount(codes.latent_idx[fired & half[:, None]], minlength=d_sae)
                for half in (explain, ~explain)]
    eligible = (per_half[0] >= min_examples) & (per_half[1] >= min_examples)
    gen = torch.Generator().manual_seed(seed)
    bands = {}
    for lo, hi in zip(edges, edges[1:]):
        pool = ((frequency >= lo) & (frequency < hi) & eligible).nonzero().squeeze(1)
        bands[band_label(lo, hi)] = sorted(pool[torch.randperm(len(pool), generator=gen)[:per_band]].tolist())
    return bands


def top_purity(acts: Float[Tensor, " n"], labels: Int[Tensor, " n"], top: int = 20) -> float:
    """Share of the `top` strongest activations whose label (token id, domain) is the most common among them."""
    if top < 1:
        raise ArgumentError(f"top must be >= 1, got {top}.")
    n = min(top, int((acts > 0).sum()))
    if n == 0:
        raise ArgumentError("the feature never fires on these tokens, so it has no top activations.")
    chosen = labels[acts.topk(n).indices]
    return float(chosen.unique(return_counts=True)[1].max()) / n


class FeatureScore(NamedTuple):
    sae: str
    band: str
    feature: int
    frequency: float
    detection: float
    """Balanced detection accuracy (detection.py)."""
    positive_accuracy: float
    not_accuracy: float
    decile_accuracy: Float[Tensor, " 10"]
    token_purity: float
    domain_purity: float
    rule: DetectionRule
    """The rule learnt on the explaining half (the feature's "explanation")."""


def score_features(name: str, codes: Encoded, bands: Mapping[str, Sequence[int]], meta: TokenMetadata,
                   prev_id: Int[Tensor, " n"], top: int = 20, min_examples: int = 20) -> list[FeatureScore]:
    """Every measure for every sampled feature of one SAE (`codes`: ``encode_all`` of the held-out tokens that
    `meta` and `prev_id` describe)."""
    if len(codes.latent_idx) != len(meta.token_id):
        raise ArgumentError(f"codes cover {len(codes.latent_idx)} tokens but meta describes {len(meta.token_id)}.")
    explain = document_halves(meta.doc_id)
    n_tokens = len(meta.token_id)
    rows = []
    for band, features in bands.items():
        for feature in features:
            acts = feature_activations(codes, feature).float().cpu()
            det = detection_score(acts, meta.token_id, prev_id, explain, feature, min_examples)
            if det is None:
                raise ArgumentError(f"feature {feature} has too few activating tokens in a half; sample features "
                                    "with sample_by_band and the same min_examples.")
            frequency = float((acts > 0).sum()) / n_tokens
            rows.append(FeatureScore(sae=name, band=band, feature=feature, frequency=frequency,
                                     detection=det.balanced, positive_accuracy=det.positive_accuracy,
                                     not_accuracy=det.not_accuracy, decile_accuracy=det.decile_accuracy,
                                     token_purity=top_purity(acts, meta.token_id, top),
                                     domain_purity=top_purity(acts, meta.domain, top), rule=det.rule))
    return rows


class Summary(NamedTuple):
    sae: str
    band: str
    """A band label, or "all" for every sampled feature of the SAE."""
    n_features: int
    detection: float
    detection_se: float
    """Standard error of the mean over features."""
    token_purity: float
    domain_purity: float
    decile_accuracy: Float[Tensor, " 10"]


def _mean_se(values: Tensor) -> tuple[float, float]:
    se = float(values.std() / len(values) ** 0.5) if len(values) > 1 else float("nan")
    return float(values.mean()), se


def summarise(scores: Sequence[FeatureScore]) -> list[Summary]:
    """Means per SAE and band, in first-seen order, each SAE followed by its mean over all its features (band
    "all")."""
    groups: dict[tuple[str, str], list[FeatureScore]] = {}
    for sae in dict.fromkeys(s.sae for s in scores):
        for s in scores:
            if s.sae == sae:
                groups.setdefault((sae, s.band), []).append(s)
        groups[(sae, "all")] = [s for s in scores if s.sae == sae]
    out = []
    for (sae, band), rows in groups.items():
        det, det_se = _mean_se(torch.tensor([r.detection for r in rows]))
        out.append(Summary(sae=sae, band=band, n_features=len(rows), detection=det, detection_se=det_se,
                           token_purity=float(torch.tensor([r.token_purity for r in rows]).mean()),
                           domain_purity=float(torch.tensor([r.domain_purity for r in rows]).mean()),
                           decile_accuracy=torch.stack([r.decile_accuracy for r in rows]).mean(0)))
    return out


def interpretability_verdict(summaries: Sequence[Summary], reference: str, other: str) -> str:
    """Compare `other`'s mean detection with `reference`'s over all bands: a difference within two standard
    errors (of the difference) reads "as detectable as", as the paper's "as interpretable as"."""
    by = {(s.sae, s.band): s for s in summaries}
    if (reference, "all") not in by or (other, "all") not in by:
        have = sorted({s.sae for s in summaries})
        raise ArgumentError(f"summaries need both {reference!r} and {other!r}; have {have}.")
    a, b = by[(reference, "all")], by[(other, "all")]
    diff, se = b.detection - a.detection, (a.detection_se ** 2 + b.detection_se ** 2) ** 0.5
    if not se == se:  # nan: a single feature each
        return f"{other}: too few features scored to compare with {reference}."
    word = "as detectable as" if abs(diff) <= 2 * se else ("more detectable than" if diff > 0 else
                                                           "less detectable than")
    bands = [s.band for s in summaries if s.sae == reference and s.band != "all"]
    wins = sum(by[(other, band)].detection >= by[(reference, band)].detection for band in bands
               if (other, band) in by)
    return (f"{other} features are {word} {reference} features: balanced detection {b.detection:.3f} vs "
            f"{a.detection:.3f} (difference {diff:+.3f}, 2 SE = {2 * se:.3f}; {b.n_features} and {a.n_features} "
            f"features); {other} is at least as high in {wins}/{len(bands)} frequency bands.")


__all__ = ["N_DECILES", "FeatureScore", "Summary", "band_label", "interpretability_verdict", "sample_by_band",
           "score_features", "summarise", "top_purity"]
