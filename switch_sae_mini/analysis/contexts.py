"""Text around activations: in-order harvesting (every token's neighbours known), context windows, the text of a
token's document, and per-token routing of any typed text through a Switch SAE.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..data.reading import (ContextBatch, HookReader, TokenMetadata, activations_from_contexts,
                            iter_context_batches)
from ..data.sources import make_source
from ..errors import ArgumentError, ArgumentTypeError, OutOfRangeError, UnknownNameError


class InOrderActivations(NamedTuple):
    acts: Float[Tensor, "n d_in"]
    meta: TokenMetadata
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
    if n_tokens <= 0:
        raise ArgumentError(f"n_tokens must be positive, got {n_tokens}.")
    if contexts_per_doc < 1:
        raise ArgumentError(f"contexts_per_doc must be >= 1, got {contexts_per_doc}.")
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
        raise ArgumentError(f"source {source!r} (split {split!r}) produced no tokens.")
    meta = torch.cat(metas)[:n_tokens]
    return InOrderActivations(acts=torch.cat(acts)[:n_tokens], meta=TokenMetadata(*meta.unbind(-1)), domains=domains)


def context_rows(doc_id: Int[Tensor, " n"], position: Int[Tensor, " n"], row: int, left: int = 10,
                 right: int = 4) -> range:
    """Rows ``[row - left, row + right]`` clipped to the run of consecutive positions of row's document (the
    data from ``harvest_in_order``); the result always contains ``row``."""
    if not 0 <= row < len(doc_id):
        raise OutOfRangeError(f"row={row} is outside 0..{len(doc_id) - 1}.")
    same = lambda a, b: doc_id[a] == doc_id[b] and position[b] - position[a] == b - a  # noqa: E731
    lo = row
    while lo > max(0, row - left) and same(lo - 1, row):
        lo -= 1
    hi = row
    while hi < min(len(doc_id) - 1, row + right) and same(row, hi + 1):
        hi += 1
    return range(lo, hi + 1)


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
                raise UnknownNameError(f"doc_id {doc_id} is not among the documents given to ContextLookup.")
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
    Switch SAE (a TopK SAE counts as one expert with router probability 1). BOS is prepended and its activation
    dropped, as when the SAE's training data was harvested."""
    if not isinstance(text, str):
        raise ArgumentTypeError(f"text must be a str, got {type(text).__name__}.")
    if getattr(sae.cfg, "arch", None) not in ("switch", "topk"):
        raise ArgumentError(f"route_text needs a Switch or TopK SAE, got arch={sae.cfg.arch!r}.")
    if reader.d_in != sae.cfg.d_in:
        raise ArgumentError(f"the reader's hook gives d_in={reader.d_in} but the SAE expects {sae.cfg.d_in}; "
                         "pass the hook the SAE was trained on.")
    tokenizer = reader.model.tokenizer
    max_tokens = max_tokens or int(reader.model.cfg.n_ctx) - 1
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    if not ids:
        empty = torch.zeros(0, top_features)
        return TextRouting(token_ids=[], expert_idx=torch.zeros(0, dtype=torch.long), router_prob=torch.zeros(0),
                           feature_idx=empty.long(), feature_acts=empty)
    acts = reader(torch.tensor([[tokenizer.bos_token_id] + ids]))[0, 1:]
    out = sae(acts.to(sae.W_dec.device))
    vals, order = out.latent_acts.sort(dim=-1, descending=True)
    vals, order = vals[:, :top_features], order[:, :top_features]
    idx = out.latent_idx.gather(-1, order)
    if out.expert_idx is None:  # TopK: one expert, no router
        expert_idx, router_prob = torch.zeros(len(ids), dtype=torch.long), torch.ones(len(ids))
    else:
        expert_idx, router_prob = out.expert_idx.cpu(), out.router_probs.max(-1).values.cpu()
    return TextRouting(token_ids=ids, expert_idx=expert_idx, router_prob=router_prob, feature_idx=idx.cpu(),
                       feature_acts=vals.clamp_min(0).cpu())
