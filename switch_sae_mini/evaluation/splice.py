"""Downstream evaluation: splice an SAE's reconstruction into the model and measure the language-model loss.

On a fixed held-out token set (``make_eval_tokens``: identical for every SAE, built deterministically from the
validation split; docs/design-notes.md §6) we measure next-token cross-entropy:

- ``ce_clean``: the unmodified model;
- ``ce_spliced``: the activation at the hook replaced by ``sae(x).x_hat``;
- ``ce_zero``: the activation replaced by zeros (zero-ablation);
- ``loss_recovered = (ce_zero - ce_spliced) / (ce_zero - ce_clean)`` (1 = perfect, 0 = as bad as zeros),
  ``delta_ce = ce_spliced - ce_clean``, and ``kl`` = mean over predicted tokens of KL(clean || spliced) in nats.

Positions are handled as in ``ActivationBuffer``: only the positions an SAE is trained on (not BOS, not padding) are
replaced, by the reconstruction or by zeros; BOS keeps its clean activation. CE and KL average over every position
that predicts a real (non-pad) next token.

Example::

    tokens = make_eval_tokens(model)                 # 64 contexts x 128 of the validation split
    evaluator = SpliceEvaluator(model, tokens)       # default hook
    print(evaluator.evaluate(sae).loss_recovered)    # sae: SAE module or any callable x -> x_hat
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..data.reading import HookReader, iter_context_batches
from ..data.sources import make_source
from ..errors import ArgumentError, ArgumentTypeError


class EvalTokens(NamedTuple):
    """A fixed set of model inputs for evaluation."""

    tokens: Int[Tensor, "n_ctx context_len"]
    n_filled: Int[Tensor, " n_ctx"]
    """Non-pad positions per row (BOS included)."""
    prepend_bos: bool
    """Whether position 0 of every row is BOS (then it is never spliced)."""


class SpliceResult(NamedTuple):
    ce_clean: float
    ce_spliced: float
    ce_zero: float
    loss_recovered: float
    delta_ce: float
    kl: float
    """Mean per-token KL(clean || spliced), nats."""
    n_tokens: int
    """Number of predicted tokens the losses average over."""


def make_eval_tokens(model, source="bundled", split: str = "validation", n_contexts: int = 64,
                     context_len: int = 128, seed: int = 0, prepend_bos: bool = True) -> EvalTokens:
    """``n_contexts`` contexts (built like ``ActivationBuffer``'s), drawn with ``seed`` from the first
    ``8 * n_contexts`` contexts of the seeded document order, so every domain is represented. Deterministic."""
    text_source = make_source(source, split=split)
    batches = iter_context_batches(text_source.documents(seed, 0), model.tokenizer, tuple(text_source.domains),
                                   context_len, contexts_per_batch=n_contexts, prepend_bos=prepend_bos)
    pool = list(itertools.islice(batches, 8))
    if not pool:
        raise ArgumentError(f"source {text_source.name!r} ({split}) produced no tokens for evaluation.")
    tokens = torch.cat([b.tokens for b in pool])
    n_filled = torch.cat([b.n_filled for b in pool])
    if len(tokens) < n_contexts:
        raise ArgumentError(f"source {text_source.name!r} ({split}) has only {len(tokens)} contexts; lower n_contexts.")
    pick = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed))[:n_contexts].sort().values
    return EvalTokens(tokens[pick], n_filled[pick], prepend_bos)


def as_reconstruct(sae) -> Callable[[Tensor], Tensor]:
    """Turn an SAE (whose call returns something with ``.x_hat``) or a callable ``x -> x_hat`` into ``x -> x_hat``."""
    params = list(sae.parameters()) if isinstance(sae, torch.nn.Module) else []
    device = params[0].device if params else None

    def reconstruct(x: Float[Tensor, "n d_in"]) -> Float[Tensor, "n d_in"]:
        out = sae(x.to(device) if device is not None else x)
        x_hat = out if isinstance(out, Tensor) else getattr(out, "x_hat", None)
        if not isinstance(x_hat, Tensor):
            raise ArgumentTypeError(f"the SAE returned {type(out).__name__}; it must return a tensor x_hat or an object "
                            "with a .x_hat tensor.")
        if x_hat.shape != x.shape:
            raise ArgumentError(f"the SAE's reconstruction has shape {tuple(x_hat.shape)}, expected {tuple(x.shape)}.")
        return x_hat.to(x.device, x.dtype)

    return reconstruct


def _zeros(x: Tensor) -> Tensor:
    return torch.zeros_like(x)


class SpliceEvaluator:
    """Evaluates SAEs at one hook on one ``EvalTokens`` set; the zero-ablation loss is computed once and cached."""

    def __init__(self, model, eval_tokens: EvalTokens, hook: str | None = None, batch_size: int = 8):
        self.model, self.eval_tokens, self.batch_size = model, eval_tokens, batch_size
        self.hook = HookReader(model, hook).hook  # validates the name (close matches on a typo)
        self._ce_zero: float | None = None

    def _positions(self, n_filled: Tensor, ctx_len: int) -> tuple[Tensor, Tensor]:
        pos = torch.arange(ctx_len)
        splice = pos[None, :] < n_filled[:, None]
        if self.eval_tokens.prepend_bos:
            splice &= pos[None, :] >= 1
        predicts = (pos[None, :-1] + 1) < n_filled[:, None]  # logits at p predict token p+1, which must be real
        return splice, predicts

    def _logits(self, tokens: Tensor, splice_mask: Tensor, reconstruct=None) -> Tensor:
        if reconstruct is None:
            return self.model(tokens)

        def splice(act, hook):
            flat = act.reshape(*act.shape[:2], -1)
            out = flat.clone()
            out[splice_mask] = reconstruct(flat[splice_mask])
            return out.reshape(act.shape)

        return self.model.run_with_hooks(tokens, fwd_hooks=[(self.hook, splice)])

    @torch.no_grad()
    def _run(self, reconstructs: list) -> tuple[float, list[float], list[float], int]:
        """Mean CE of the clean model, and mean CE and KL(clean || spliced) for each of ``reconstructs``, over all
        predicted tokens (one clean forward per batch is shared by all of them)."""
        ce_clean, ce, kl, count = 0.0, [0.0] * len(reconstructs), [0.0] * len(reconstructs), 0
        tokens_all, n_filled_all = self.eval_tokens.tokens, self.eval_tokens.n_filled
        device = self.model.cfg.device
        for start in range(0, len(tokens_all), self.batch_size):
            tokens = tokens_all[start:start + self.batch_size].to(device)
            splice_mask, predicts = self._positions(n_filled_all[start:start + self.batch_size], tokens.shape[1])
            splice_mask, predicts = splice_mask.to(device), predicts.to(device)
            # Per-token quantities from logsumexp and dot products, without materialising log-probs (vocab 50257).
            logits_clean = self._logits(tokens, splice_mask).float()[:, :-1]
            lse_clean = torch.logsumexp(logits_clean, dim=-1)
            p_clean = torch.softmax(logits_clean, dim=-1)
            target = tokens[:, 1:, None]
            ce_clean += (lse_clean - logits_clean.gather(-1, target)[..., 0])[predicts].sum().item()
            for i, reconstruct in enumerate(reconstructs):
                logits = self._logits(tokens, splice_mask, reconstruct).float()[:, :-1]
                lse = torch.logsumexp(logits, dim=-1)
                ce[i] += (lse - logits.gather(-1, target)[..., 0])[predicts].sum().item()
                # KL = sum_v p_clean * (logits_clean - logits) - (lse_clean - lse)
                kl_tok = torch.einsum("bpv,bpv->bp", p_clean, logits_clean - logits) - (lse_clean - lse)
                kl[i] += kl_tok[predicts].sum().item()
            count += int(predicts.sum())
        if count == 0:
            raise ArgumentError("the eval tokens contain no predicted positions; use longer contexts.")
        return ce_clean / count, [c / count for c in ce], [k / count for k in kl], count

    def ce_zero(self) -> float:
        """CE with the spliced positions zero-ablated (computed once)."""
        if self._ce_zero is None:
            self._ce_zero = self._run([_zeros])[1][0]
        return self._ce_zero

    def evaluate(self, sae) -> SpliceResult:
        """Splice ``sae`` (module returning ``.x_hat``, or a callable ``x -> x_hat`` on ``[n, d_in]``) and measure."""
        was_training = isinstance(sae, torch.nn.Module) and sae.training
        if was_training:
            sae.eval()
        try:
            reconstructs = [as_reconstruct(sae)] + ([_zeros] if self._ce_zero is None else [])
            ce_clean, ce, kl, count = self._run(reconstructs)
        finally:
            if was_training:
                sae.train()
        if self._ce_zero is None:  # measured in the same pass as the first SAE
            self._ce_zero = ce[1]
        ce_spliced, ce_zero = ce[0], self._ce_zero
        return SpliceResult(ce_clean=ce_clean, ce_spliced=ce_spliced, ce_zero=ce_zero,
                            loss_recovered=(ce_zero - ce_spliced) / (ce_zero - ce_clean),
                            delta_ce=ce_spliced - ce_clean, kl=kl[0], n_tokens=count)


def evaluate_splice(model, sae, eval_tokens: EvalTokens | None = None, hook: str | None = None,
                    batch_size: int = 8) -> SpliceResult:
    """One-off ``SpliceEvaluator(model, eval_tokens or make_eval_tokens(model), hook).evaluate(sae)``."""
    return SpliceEvaluator(model, eval_tokens or make_eval_tokens(model), hook, batch_size).evaluate(sae)
