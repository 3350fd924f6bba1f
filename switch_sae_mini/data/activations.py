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

Example::

    buffer = ActivationBuffer(model, batch_size=4096, seed=0)     # bundled corpus, default hook
    for x in buffer.batches(n_tokens=1_000_000):                 # x: [4096, d_in] fp32
        ...
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import ArgumentError, SwitchSAEError
from .models import default_hook
from .sources import SourceError, make_source


class UnknownHookError(SwitchSAEError, KeyError):
    """The hook name does not exist in the model; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


class TokenMetadata(NamedTuple):
    """Where each activation came from; all fields are ``[batch]`` int64 tensors."""

    doc_id: Int[Tensor, " batch"]
    position: Int[Tensor, " batch"]
    """Token index in the document's tokenisation (no special tokens); -1 for a kept BOS."""
    token_id: Int[Tensor, " batch"]
    domain: Int[Tensor, " batch"]
    """Index into the buffer's ``domains`` tuple."""


class ContextBatch(NamedTuple):
    """A batch of model inputs built from documents (one row per context)."""

    tokens: Int[Tensor, "n_ctx context_len"]
    n_filled: Int[Tensor, " n_ctx"]
    """Non-pad positions per row (BOS included)."""
    doc_id: Int[Tensor, " n_ctx"]
    start: Int[Tensor, " n_ctx"]
    """Document token index of the first text token in the row."""
    domain: Int[Tensor, " n_ctx"]


def iter_context_batches(docs, tokenizer, domains: tuple[str, ...], context_len: int, contexts_per_batch: int,
                         prepend_bos: bool = True) -> Iterator[ContextBatch]:
    """Cut documents into contexts (see module docstring) and yield them ``contexts_per_batch`` at a time."""
    if context_len < 2:
        raise ArgumentError(f"context_len must be >= 2, got {context_len}.")
    bos_id = tokenizer.bos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if prepend_bos and bos_id is None:
        raise ArgumentError("the tokenizer has no BOS token; pass prepend_bos=False.")
    domain_index = {name: i for i, name in enumerate(domains)}
    step = context_len - int(prepend_bos)
    pending: list[tuple[list[int], int, int, int]] = []
    docs = iter(docs)
    while chunk := list(itertools.islice(docs, 64)):  # tokenise 64 documents per call (fast tokenizer batches)
        token_lists = tokenizer([d.text for d in chunk], add_special_tokens=False, verbose=False)["input_ids"]
        for doc, ids in zip(chunk, token_lists):
            for start in range(0, len(ids), step):
                pending.append((ids[start:start + step], doc.doc_id, start, domain_index[doc.domain]))
                if len(pending) == contexts_per_batch:
                    yield _collate(pending, context_len, prepend_bos, bos_id, pad_id)
                    pending = []
    if pending:
        yield _collate(pending, context_len, prepend_bos, bos_id, pad_id)


def _collate(rows, context_len, prepend_bos, bos_id, pad_id) -> ContextBatch:
    tokens = torch.full((len(rows), context_len), pad_id, dtype=torch.long)
    n_filled = torch.empty(len(rows), dtype=torch.long)
    for i, (ids, *_) in enumerate(rows):
        row = ([bos_id] if prepend_bos else []) + ids
        tokens[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        n_filled[i] = len(row)
    doc_id, start, domain = (torch.tensor(col, dtype=torch.long) for col in list(zip(*rows))[1:])
    return ContextBatch(tokens, n_filled, doc_id, start, domain)


class HookReader:
    """Runs the model only as far as needed to read one hook point.

    Residual-stream hooks (``blocks.L.hook_resid_pre`` / ``blocks.L.hook_resid_post`` and their canonical names
    ``hook_in`` / ``hook_out``) use the bridge's ``stop_at_layer``; any other hook is read by a hook that captures
    the activation and stops the forward pass with an exception. Trailing dims are flattened: ``[b, pos, d_in]``.
    """

    _RESID = re.compile(r"blocks\.(\d+)\.hook_(resid_pre|in|resid_post|out)")

    def __init__(self, model, hook: str | None = None):
        self.model = model
        self.hook = hook or default_hook(model)
        names = list(model.hook_dict)
        if self.hook not in names:
            close = difflib.get_close_matches(self.hook, names, n=5, cutoff=0.6)
            raise UnknownHookError(f"hook {self.hook!r} does not exist in {model.cfg.model_name}; close matches: "
                                   f"{close or 'none'}. Residual-stream hooks are 'blocks.<L>.hook_resid_post' "
                                   f"with L in 0..{model.cfg.n_layers - 1}; see model.hook_dict for all names.")
        match = self._RESID.fullmatch(self.hook)
        stop = None
        if match:
            stop = int(match.group(1)) + (match.group(2) in ("resid_post", "out"))
        self.stop_at_layer = stop if stop is not None and stop < model.cfg.n_layers else None
        self.d_in = self(torch.zeros(1, 2, dtype=torch.long)).shape[-1]

    @torch.no_grad()
    def __call__(self, tokens: Int[Tensor, "b pos"]) -> Float[Tensor, "b pos d_in"]:
        tokens = tokens.to(self.model.cfg.device)
        if self.stop_at_layer is not None:
            acts = self.model(tokens, stop_at_layer=self.stop_at_layer)
        else:
            acts = self._capture(tokens)
        if acts.shape[:2] != tokens.shape:
            raise ArgumentError(f"hook {self.hook!r} gives shape {tuple(acts.shape)}, not [batch, pos, ...]; "
                             "pick a per-token hook (e.g. a residual stream, MLP or attention output).")
        return acts.reshape(*tokens.shape, -1).float()

    def _capture(self, tokens):
        class _Captured(Exception):
            pass

        box: list[Tensor] = []

        def grab(act, hook):
            box.append(act.detach())
            raise _Captured

        with self.model.hooks(fwd_hooks=[(self.hook, grab)]):
            try:
                self.model(tokens)
            except _Captured:
                pass
        return box[0]


def activations_from_contexts(reader: HookReader, batch: ContextBatch, keep_bos: bool = False,
                              prepend_bos: bool = True) -> tuple[Float[Tensor, "n d_in"], Int[Tensor, "n 4"]]:
    """Activations at the kept positions of a ``ContextBatch`` and their metadata rows
    ``[doc_id, position, token_id, domain]``, in row-major (context, position) order."""
    acts = reader(batch.tokens)
    n_ctx, ctx_len = batch.tokens.shape
    pos = torch.arange(ctx_len)
    keep = pos[None, :] < batch.n_filled[:, None]
    if prepend_bos and not keep_bos:
        keep &= pos[None, :] >= 1
    doc_position = batch.start[:, None] + pos[None, :] - int(prepend_bos)
    if prepend_bos:
        doc_position[:, 0] = -1  # BOS is not a document token
    meta = torch.stack([batch.doc_id[:, None].expand(n_ctx, ctx_len), doc_position, batch.tokens,
                        batch.domain[:, None].expand(n_ctx, ctx_len)], dim=-1)
    return acts[keep.to(acts.device)], meta[keep]


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

    def _harvest(self, contexts: Iterator[ContextBatch], n_rows: int, bar=None) -> tuple[Tensor, Tensor]:
        acts, meta, total = [], [], 0
        while total < n_rows:
            a, m = activations_from_contexts(self.reader, next(contexts), self.keep_bos, self.prepend_bos)
            acts.append(a.to(self.device))
            meta.append(m.to(self.device))
            total += len(a)
            if bar is not None:
                bar.update(len(a))
        return torch.cat(acts), torch.cat(meta)

    def batches(self, n_tokens: int | None = None, with_metadata: bool = False
                ) -> Iterator[Float[Tensor, "batch d_in"] | tuple[Float[Tensor, "batch d_in"], TokenMetadata]]:
        """Yield ``[batch_size, d_in]`` fp32 batches (and ``TokenMetadata`` if ``with_metadata``).

        ``n_tokens=None`` yields forever; otherwise exactly ``n_tokens`` activations in total (the last batch may be
        smaller).
        """
        if n_tokens is not None and n_tokens <= 0:
            raise ArgumentError(f"n_tokens must be positive or None, got {n_tokens}.")
        generator = torch.Generator().manual_seed(self.seed)
        contexts = self._context_batches()
        with tqdm(total=self.capacity, desc=f"harvesting {self.hook}", unit="act", leave=False,
                  disable=not self.progress) as bar:
            acts, meta = self._harvest(contexts, self.capacity, bar)
        perm = torch.randperm(len(acts), generator=generator).to(self.device)
        acts, meta, cursor, left = acts[perm], meta[perm], 0, n_tokens
        while left is None or left > 0:
            if len(acts) - cursor < self.capacity // 2:  # refill: keep the unread half, add new, reshuffle
                new_acts, new_meta = self._harvest(contexts, self.capacity - (len(acts) - cursor))
                acts, meta = torch.cat([acts[cursor:], new_acts]), torch.cat([meta[cursor:], new_meta])
                perm = torch.randperm(len(acts), generator=generator).to(self.device)
                acts, meta, cursor = acts[perm], meta[perm], 0
            take = self.batch_size if left is None else min(self.batch_size, left)
            x = acts[cursor:cursor + take]
            yield (x, TokenMetadata(*meta[cursor:cursor + take].unbind(-1))) if with_metadata else x
            cursor += take
            left = None if left is None else left - take
