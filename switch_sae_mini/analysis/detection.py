"""A detection score that runs offline: can a feature's activating tokens be told apart from other tokens by a
short rule learnt on held-out text? The analogue, without an LLM, of the automated-interpretability evaluation
of Mudide et al. 2024, which uses the "detection" scorer of EleutherAI's sae-auto-interp.

The paper: an LLM reads a feature's top contexts and writes an explanation; a second call decides from the
explanation alone whether each new context activates the feature. New contexts are activating ones from every
activation decile and random non-activating ones; accuracy is reported per decile and on the random ones.

Here the "explanation" is a **rule**: up to `max_patterns` tokens, each either the token itself or the token just
before it, chosen greedily on one half of the held-out documents to best separate the tokens where the feature
fires from those where it does not (Youden's J = TPR - FPR). The rule is then **scored on the other half** the
paper's way: the fraction of activating tokens it flags in each activation decile (Q1 lowest ... Q10 top), the
fraction of non-activating tokens it leaves alone ("Not"), and balanced = (all positives + Not) / 2.

What it catches: features that a few tokens or a two-token pattern explain (most features of a small model).
What it misses: features about meaning spread over many tokens, which an LLM can name ("legal language") and a
token list cannot, so such a feature scores low here although a person could interpret it; and it cannot fail
the way an LLM explainer fails (a fluent but wrong explanation). Read it as a lower bound on interpretability
that is the same for every SAE, which is what a TopK vs Switch comparison needs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..errors import ArgumentError

N_DECILES = 10


class DetectionRule(NamedTuple):
    """Predict "the feature fires here" when the token is in `current` or the token before it is in `previous`."""

    current: tuple[int, ...]
    previous: tuple[int, ...]


class DetectionScore(NamedTuple):
    feature: int
    rule: DetectionRule
    decile_accuracy: Float[Tensor, " 10"]
    """Fraction of the scoring half's activating tokens the rule flags, by activation decile (Q1 lowest first)."""
    positive_accuracy: float
    """Over all activating tokens of the scoring half (the paper's "all positives")."""
    not_accuracy: float
    """1 - false-positive rate on the scoring half's non-activating tokens (the paper's "Not")."""
    balanced: float
    """(positive_accuracy + not_accuracy) / 2; 0.5 is chance."""
    n_explain: int
    """Activating tokens the rule was learnt from."""
    n_score: int
    """Activating tokens it was scored on."""


def document_halves(doc_id: Int[Tensor, " n"]) -> Bool[Tensor, " n"]:
    """True for tokens of even-numbered documents (the half rules are learnt on), False for the scoring half.
    Splitting by document keeps the two halves from sharing a context."""
    return doc_id % 2 == 0


def apply_rule(rule: DetectionRule, token_id: Int[Tensor, " n"], prev_id: Int[Tensor, " n"]) -> Bool[Tensor, " n"]:
    hit = torch.isin(token_id, torch.tensor(rule.current, dtype=token_id.dtype))
    return hit | torch.isin(prev_id, torch.tensor(rule.previous, dtype=prev_id.dtype))


def fit_rule(active: Bool[Tensor, " n"], token_id: Int[Tensor, " n"], prev_id: Int[Tensor, " n"],
             max_patterns: int = 8, n_candidates: int = 32, min_gain: float = 0.005, max_negatives: int = 20_000,
             seed: int = 0) -> DetectionRule:
    """The greedy rule: candidates are the `n_candidates` most frequent tokens (and previous tokens) among the
    activating ones; each step adds the candidate that raises TPR - FPR most, until none adds `min_gain`.
    FPR is measured on at most `max_negatives` non-activating tokens drawn at random (seeded)."""
    if max_patterns < 1 or n_candidates < 1:
        raise ArgumentError(f"max_patterns and n_candidates must be >= 1, got {max_patterns}, {n_candidates}.")
    if not bool(active.any()) or bool(active.all()):
        raise ArgumentError("fit_rule needs both activating and non-activating tokens.")
    neg = (~active).nonzero().squeeze(1)
    if len(neg) > max_negatives:
        neg = neg[torch.randperm(len(neg), generator=torch.Generator().manual_seed(seed))[:max_negatives]]
    candidates = []  # (is_previous, token id, covers positives, covers negatives)
    for is_prev, ids in ((False, token_id), (True, prev_id)):
        pos_ids, neg_ids = ids[active], ids[neg]
        values, counts = pos_ids[pos_ids >= 0].unique(return_counts=True)
        for t in values[counts.argsort(descending=True, stable=True)[:n_candidates]].tolist():
            candidates.append((is_prev, t, pos_ids == t, neg_ids == t))
    cover_pos = torch.zeros(int(active.sum()), dtype=torch.bool)
    cover_neg = torch.zeros(len(neg), dtype=torch.bool)
    chosen, score = [], 0.0
    while len(chosen) < max_patterns and candidates:
        gains = [float((cover_pos | p).float().mean() - (cover_neg | q).float().mean()) - score
                 for _, _, p, q in candidates]
        best = max(range(len(gains)), key=gains.__getitem__)
        if gains[best] < min_gain:
            break
        is_prev, t, p, q = candidates.pop(best)
        cover_pos |= p
        cover_neg |= q
        score += gains[best]
        chosen.append((is_prev, t))
    return DetectionRule(current=tuple(t for is_prev, t in chosen if not is_prev),
                         previous=tuple(t for is_prev, t in chosen if is_prev))


def decile_of(values: Float[Tensor, " n"]) -> Int[Tensor, " n"]:
    """0 (lowest tenth) .. 9 (top tenth) by rank; ties broken by position, so the deciles are equal-sized."""
    ranks = torch.empty(len(values), dtype=torch.long)
    ranks[values.argsort(stable=True)] = torch.arange(len(values))
    return ranks * N_DECILES // max(len(values), 1)


def detection_score(acts: Float[Tensor, " n"], token_id: Int[Tensor, " n"], prev_id: Int[Tensor, " n"],
                    explain: Bool[Tensor, " n"], feature: int = -1, min_examples: int = 20,
                    **rule_kwargs) -> DetectionScore | None:
    """Learn the rule on tokens where `explain` is True and score it on the rest (see the module docstring).

    acts: the feature's activation on every held-out token (0 where it does not fire), e.g.
    ``analysis.feature_activations(codes, feature)``. Returns None when either half has fewer than `min_examples`
    activating tokens (too few to learn or to score; the paper sets its own minimum, 200 in 10M tokens)."""
    if not len(acts) == len(token_id) == len(prev_id) == len(explain):
        raise ArgumentError(f"acts, token_id, prev_id and explain must have one entry per token; got lengths "
                            f"{len(acts)}, {len(token_id)}, {len(prev_id)}, {len(explain)}.")
    if min_examples < 1:
        raise ArgumentError(f"min_examples must be >= 1, got {min_examples}.")
    active = acts > 0
    n_explain, n_score = int((active & explain).sum()), int((active & ~explain).sum())
    if min(n_explain, n_score) < min_examples:
        return None
    rule = fit_rule(active[explain], token_id[explain], prev_id[explain], **rule_kwargs)
    score = ~explain
    flagged = apply_rule(rule, token_id[score], prev_id[score])
    pos = active[score]
    hit, deciles = flagged[pos].float(), decile_of(acts[score][pos])
    decile_acc = torch.zeros(N_DECILES).index_add_(0, deciles, hit) / torch.bincount(
        deciles, minlength=N_DECILES).clamp_min(1)
    positive, not_acc = float(hit.mean()), float(1 - flagged[~pos].float().mean())
    return DetectionScore(feature=feature, rule=rule, decile_accuracy=decile_acc, positive_accuracy=positive,
                          not_accuracy=not_acc, balanced=(positive + not_acc) / 2, n_explain=n_explain,
                          n_score=n_score)


def previous_token_ids(doc_id: Int[Tensor, " n"], position: Int[Tensor, " n"], lookup) -> Int[Tensor, " n"]:
    """The token before each token in its document (-1 at a document's start or for a kept BOS), read from
    `lookup` (an ``analysis.ContextLookup`` over the documents the activations came from)."""
    prev = torch.full((len(doc_id),), -1, dtype=torch.long)
    order = doc_id.argsort(stable=True)
    docs, counts = doc_id[order].unique_consecutive(return_counts=True)
    for doc, rows in zip(docs.tolist(), order.split(counts.tolist())):
        ids = torch.tensor(lookup.tokens(doc), dtype=torch.long)
        pos = position[rows]
        ok = (pos >= 1) & (pos <= len(ids))
        prev[rows[ok]] = ids[pos[ok] - 1]
    return prev
