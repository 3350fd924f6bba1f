"""Harvest language-model activations at one hook point into shuffled ``[batch, d_in]`` fp32 training batches.

Pipeline (adapted from the paper's; docs/design-notes.md §4): documents from a text source (``sources.py``) ->
token contexts of ``context_len`` -> the model run only up to the hook -> a pool of activations from many contexts,
shuffled, refilled when half consumed -> batches, forever or for a token budget. ``disk_cache.py`` stores the same
stream on disk.

**Contexts and BOS.** Each document is tokenised without special tokens and cut into consecutive pieces of
``context_len - 1`` tokens; every piece gets ``<|endoftext|>`` (GPT-2's BOS) in front and pad tokens at the end.
The paper instead uses only the first 128 tokens of each OpenWebText document without BOS; our corpus is small, so
we use all of it. Why BOS: position 0 of a GPT-2 context has an anomalous, very large residual norm whatever the
token (docs/design-notes.md §4); with BOS there, that position is a fixed token we drop, so every kept
activation is a real text token that has at least the BOS as context, matching TransformerLens's default
``to_tokens`` (which prepends BOS) and how GPT-2 saw document starts. BOS and pad positions are dropped by default
(``keep_bos=True`` keeps BOS). ``prepend_bos=False`` reproduces the paper (first token kept).

**Metadata.** With ``with_metadata=True`` every batch row comes with ``TokenMetadata``: ``doc_id``, ``position``
(index of the token in ``tokenizer(doc.text, add_special_tokens=False)``; -1 for a kept BOS), ``token_id`` and
``domain`` (an index into ``buffer.domains``), so analysis can show each activation's context later.

**Resuming.** ``buffer.batches()`` returns a ``BufferIterator`` whose ``state_dict()`` records the stream's
position: how many context batches were taken from the text source, the shuffle RNG, the token budget left, and
which rows are still unread in the pool, each as (context batch, row). ``load_state_dict()`` on a fresh iterator of
the same settings rebuilds that pool by re-reading the text stream to the same point (tokenising only) and
running the model on just the context batches whose rows are still in the pool: at most one pool of activations,
never the whole history. The batches that follow are identical to an uninterrupted stream's (on the same machine
and thread count, where the model's forward is deterministic). ``train()`` saves and restores this state with its
checkpoints. Low-level reading (contexts, the hook reader, metadata) lives in reading.py.

Example::

    buffer = ActivationBuffer(model, batch_size=4096, seed=0)     # bundled corpus, default hook
    for x in buffer.batches(n_tokens=1_000_000):                 # x: [4096, d_in] fp32
        ...
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import ArgumentError
from .reading import (ContextBatch, HookReader, TokenMetadata, UnknownHookError, activations_from_contexts,
                      iter_context_batches, kept_positions)
from .models import model_fingerprint
from .sources import SourceError, make_source

__all__ = ["ActivationBuffer", "BufferIterator", "ContextBatch", "HookReader", "TokenMetadata", "UnknownHookError",
           "activations_from_contexts", "iter_context_batches"]


class ActivationBuffer:
    """Shuffled activation batches from a text source at one hook point (see the module docstring).

    Args:
        model: a ``TransformerBridge`` (``models.load_model``).
        hook: hook point name; None means ``models.default_hook(model)``.
        source, split, domains: text source (``sources.make_source``): "bundled" (default), a path, "hf:<name>"...
        context_len: tokens per context, BOS included (<= the model's n_ctx).
        n_contexts: pool size in contexts (about ``n_contexts * context_len`` activations held in memory).
        batch_size: activations per training batch (at most half the pool).
        model_batch_size: contexts per model forward pass while harvesting.
        prepend_bos, keep_bos: BOS handling (default: prepend it, drop its activation).
        seed: seeds the document order and the shuffles; same seed -> identical batches.
        device: where batches live.
        progress: show a tqdm bar while the pool is first filled.

    ``batches()`` restarts from the beginning on every call, so two calls yield identical batches.
    Finite sources are cycled (reshuffled every epoch) when the budget exceeds them.
    """

    def __init__(self, model, hook: str | None = None, source="bundled", split: str = "train", domains=None,
                 context_len: int = 128, n_contexts: int = 512, batch_size: int = 4096, model_batch_size: int = 32,
                 prepend_bos: bool = True, keep_bos: bool = False, seed: int = 0, device="cpu",
                 progress: bool = True):
        if context_len > model.cfg.n_ctx:
            raise ArgumentError(f"context_len={context_len} exceeds the model's n_ctx={model.cfg.n_ctx}; lower it.")
        self.model, self.reader = model, HookReader(model, hook)
        self.hook, self.d_in = self.reader.hook, self.reader.d_in
        self.source = make_source(source, split=split, domains=domains)
        self.split, self.domains = split, tuple(self.source.domains)
        self.context_len, self.model_batch_size = context_len, model_batch_size
        self.prepend_bos, self.keep_bos = prepend_bos, keep_bos
        self.capacity = n_contexts * context_len
        if not 0 < batch_size <= self.capacity // 2:
            raise ArgumentError(f"batch_size={batch_size} must be in 1..{self.capacity // 2} (half the pool of "
                             f"n_contexts*context_len={self.capacity}); raise n_contexts or lower batch_size.")
        self.batch_size, self.seed, self.device, self.progress = batch_size, seed, torch.device(device), progress

    def _context_batches(self) -> Iterator[ContextBatch]:
        for epoch in itertools.count():
            produced = False
            for batch in iter_context_batches(self.source.documents(self.seed, epoch), self.model.tokenizer,
                                              self.domains, self.context_len, self.model_batch_size,
                                              self.prepend_bos):
                produced = True
                yield batch
            if not produced:
                raise SourceError(f"source {self.source.name!r} produced no tokens; check it has text.")

    def batches(self, n_tokens: int | None = None, with_metadata: bool = False) -> BufferIterator:
        """An iterator of ``[batch_size, d_in]`` fp32 batches (and ``TokenMetadata`` if ``with_metadata``).

        ``n_tokens=None`` yields forever; otherwise exactly ``n_tokens`` activations in total (the last batch may be
        smaller). The iterator's ``state_dict()`` / ``load_state_dict()`` checkpoint its position (``train()``
        uses them to resume without replaying the stream).
        """
        if n_tokens is not None and n_tokens <= 0:
            raise ArgumentError(f"n_tokens must be positive or None, got {n_tokens}.")
        return BufferIterator(self, n_tokens, with_metadata)


# Buffer settings a saved position is only valid for.
SETTINGS = ("hook", "seed", "context_len", "capacity", "batch_size", "split", "prepend_bos", "keep_bos",
            "model_batch_size")


class BufferIterator:
    """The batches of one ``ActivationBuffer.batches()`` call; its position is checkpointable (module docstring)."""

    def __init__(self, buffer, n_tokens: int | None, with_metadata: bool) -> None:
        self.buffer, self.n_tokens, self.with_metadata = buffer, n_tokens, with_metadata
        self._generator = torch.Generator().manual_seed(buffer.seed)
        self._contexts = buffer._context_batches()
        self._consumed = 0  # context batches taken from the text stream
        self._pool: tuple[Tensor, Tensor, Tensor] | None = None  # unread (acts, meta, origin) rows
        self._left = n_tokens

    def __iter__(self) -> BufferIterator:
        return self

    def _activations(self, batch) -> tuple[Tensor, Tensor]:
        b = self.buffer
        acts, meta = activations_from_contexts(b.reader, batch, b.keep_bos, b.prepend_bos)
        return acts.to(b.device), meta.to(b.device)

    def _harvest(self, n_rows: int, bar=None) -> tuple[Tensor, Tensor, Tensor]:
        acts, meta, origin, total = [], [], [], 0
        while total < n_rows:
            index, batch = self._consumed, next(self._contexts)
            self._consumed += 1
            a, m = self._activations(batch)
            acts.append(a)
            meta.append(m)
            origin.append(torch.stack([torch.full((len(a),), index), torch.arange(len(a))], dim=-1))
            total += len(a)
            if bar is not None:
                bar.update(len(a))
        return torch.cat(acts), torch.cat(meta), torch.cat(origin)

    def _shuffled(self, acts: Tensor, meta: Tensor, origin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        perm = torch.randperm(len(acts), generator=self._generator)
        return acts[perm.to(acts.device)], meta[perm.to(meta.device)], origin[perm]

    def __next__(self):
        b = self.buffer
        if self._left is not None and self._left <= 0:
            raise StopIteration
        if self._pool is None:
            with tqdm(total=b.capacity, desc=f"harvesting {b.hook}", unit="act", leave=False,
                      disable=not b.progress) as bar:
                self._pool = self._shuffled(*self._harvest(b.capacity, bar))
        acts, meta, origin = self._pool
        if len(acts) < b.capacity // 2:  # refill: keep the unread half, add new, reshuffle
            new = self._harvest(b.capacity - len(acts))
            acts, meta, origin = self._shuffled(*(torch.cat([old, fresh]) for old, fresh in zip(self._pool, new)))
        take = b.batch_size if self._left is None else min(b.batch_size, self._left)
        x, rows = acts[:take], meta[:take]
        self._pool = (acts[take:], meta[take:], origin[take:])
        if self._left is not None:
            self._left -= take
        return (x, TokenMetadata(*rows.unbind(-1))) if self.with_metadata else x

    # ---------------------------------------------------------------------------------------- checkpointing

    def _settings(self) -> dict[str, Any]:
        b = self.buffer
        return {name: getattr(b, name) for name in SETTINGS} | {"source": b.source.name, "n_tokens": self.n_tokens}

    def provenance(self) -> dict[str, Any]:
        """Where these activations come from (recorded in the checkpoints of SAEs trained on them)."""
        b = self.buffer
        return {"model_name": str(b.model.cfg.model_name), "model_fingerprint": model_fingerprint(b.model),
                "hook": b.hook, "source": b.source.name, "split": b.split, "context_len": b.context_len,
                "prepend_bos": b.prepend_bos, "keep_bos": b.keep_bos, "data_seed": b.seed}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able position plus two small tensors ("rng", "origin": [unread rows, 2])."""
        origin = self._pool[2] if self._pool is not None else torch.zeros(0, 2, dtype=torch.long)
        return {"settings": self._settings(), "consumed": self._consumed, "left": self._left,
                "filled": self._pool is not None, "rng": self._generator.get_state(), "origin": origin.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (from state_dict of an iterator with the same buffer settings)."""
        b, mine = self.buffer, self._settings()
        diff = {k: (v, mine.get(k)) for k, v in state["settings"].items() if mine.get(k) != v}
        if diff:
            raise ArgumentError("the saved stream position belongs to other buffer settings ("
                                + "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
                                + "); resume with the ActivationBuffer settings of the original run.")
        origin = state["origin"].long()
        wanted: dict[int, set[int]] = {}
        for index, row in origin.tolist():
            wanted.setdefault(index, set()).add(row)
        self._contexts, self._consumed = self.buffer._context_batches(), 0
        rows_at: dict[tuple[int, int], int] = {}  # (context batch, row) -> row of the rebuilt activations
        acts, meta, offset = [], [], 0
        for index in range(int(state["consumed"])):  # re-read the stream; run the model only where needed
            batch = next(self._contexts)
            if index not in wanted:
                continue
            # only the contexts holding wanted rows (a context's activations do not depend on its batch-mates)
            kept = kept_positions(batch, b.keep_bos, b.prepend_bos).sum(1)
            ends = kept.cumsum(0)
            context_of = {row: int(torch.searchsorted(ends, row, right=True)) for row in wanted[index]}
            chosen = sorted(set(context_of.values()))
            a, m = self._activations(ContextBatch(*(field[chosen] for field in batch)))
            sub_start = dict(zip(chosen, [0] + kept[chosen].cumsum(0).tolist()[:-1]))
            for row, context in context_of.items():
                rows_at[index, row] = offset + sub_start[context] + row - int(ends[context] - kept[context])
            acts.append(a)
            meta.append(m)
            offset += len(a)
        self._consumed = int(state["consumed"])
        self._generator.set_state(state["rng"])
        self._left = state["left"]
        if not state["filled"]:
            self._pool = None
            return
        flat = torch.tensor([rows_at[index, row] for index, row in origin.tolist()], dtype=torch.long)
        acts_all = torch.cat(acts) if acts else torch.zeros(0, b.d_in, device=b.device)
        meta_all = torch.cat(meta) if meta else torch.zeros(0, 4, dtype=torch.long, device=b.device)
        self._pool = (acts_all[flat.to(acts_all.device)], meta_all[flat.to(meta_all.device)], origin)
