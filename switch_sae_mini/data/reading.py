"""Reading activations off a language model: documents -> token contexts -> the model run up to one hook ->
the activations at the kept positions, with metadata saying where each came from (see activations.py for the
context and BOS conventions). The streaming buffer (activations.py), the disk cache, evaluation and analysis
all read through these functions.
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

from ..errors import ArgumentError, SwitchSAEError
from .models import default_hook


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


def kept_positions(batch: ContextBatch, keep_bos: bool = False, prepend_bos: bool = True) -> Tensor:
    """Bool [n_contexts, context_len]: the positions whose activations are kept (filled, and not a dropped BOS)."""
    pos = torch.arange(batch.tokens.shape[1])
    keep = pos[None, :] < batch.n_filled[:, None]
    if prepend_bos and not keep_bos:
        keep &= pos[None, :] >= 1
    return keep


def activations_from_contexts(reader: HookReader, batch: ContextBatch, keep_bos: bool = False,
                              prepend_bos: bool = True) -> tuple[Float[Tensor, "n d_in"], Int[Tensor, "n 4"]]:
    """Activations at the kept positions of a ``ContextBatch`` and their metadata rows
    ``[doc_id, position, token_id, domain]``, in row-major (context, position) order."""
    acts = reader(batch.tokens)
    n_ctx, ctx_len = batch.tokens.shape
    pos = torch.arange(ctx_len)
    keep = kept_positions(batch, keep_bos, prepend_bos)
    doc_position = batch.start[:, None] + pos[None, :] - int(prepend_bos)
    if prepend_bos:
        doc_position[:, 0] = -1  # BOS is not a document token
    meta = torch.stack([batch.doc_id[:, None].expand(n_ctx, ctx_len), doc_position, batch.tokens,
                        batch.domain[:, None].expand(n_ctx, ctx_len)], dim=-1)
    return acts[keep.to(acts.device)], meta[keep]
