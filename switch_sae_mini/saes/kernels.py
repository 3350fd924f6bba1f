"""Sparse-gradient kernels: make the TopK / Switch SAE's sparsity pay off in wall-clock, not only in FLOPs.

A TopK SAE keeps k of d_sae latents per token, so only batch*k entries of the gradient w.r.t. the pre-activations
are nonzero. Plain autograd still scatters them into a dense [batch, d_sae] tensor and runs a dense
[d_in, batch] @ [batch, d_sae] matmul for the encoder gradient -- as expensive as the forward encoder, which the
paper's reference code pays in full (docs/design-notes.md §5). Here:

- encoder backward: W_enc.grad = (S^T x_c)^T with S the sparse [batch, d_sae] gradient (batch*k nonzeros), one
  sparse-dense product (an embedding_bag over the pairs sorted by latent); b_enc.grad is a weighted bincount;
  b_dec's share is -W_enc @ b_enc.grad.
- forward: one matmul into a reused buffer, TopK straight on the pre-activations (ReLU after TopK gives the same
  values: ReLU is monotone) with the C top-k of native/topk.c on CPU, which also adds b_enc; AuxK's dead-latent
  TopK reuses the same buffer in place.
- Switch experts: the tokens, grouped by expert and zero-padded to the largest group, go through one batched
  matmul with the experts' encoder blocks and one top-k (the per-expert loop when routing is too unbalanced).
- decoder: embedding_bag forward (docs/design-notes.md §9); backward W_dec.grad = S(values)^T grad_out, the same
  sparse product, and the values' gradient from embedding_bag's fused per-sample-weights backward.

Every function here has a plain-autograd twin in base.py / topk.py / switch.py (SAEConfig(fused=False));
tests/test_kernels.py pins values and all gradients of the two together.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..native.topk import accepts as native_topk_accepts
from ..native.topk import topk as _rows_topk
from .routing import expert_weights, group_by_expert


def _sparse_ok(t: Tensor) -> bool:
    return t.device.type in ("cpu", "cuda")  # embedding_bag with per-sample weights: CPU and CUDA


def sparse_transpose_matmul(indices: Int[Tensor, "batch k"], weights: Float[Tensor, "batch k"],
                            rows: Float[Tensor, "batch d"], n_out: int) -> Float[Tensor, "n_out d"]:
    """S^T @ rows, where S [batch, n_out] is sparse with S[b, indices[b, i]] = weights[b, i] (indices distinct
    per row). out[j] = sum over (b, i) with indices[b, i] == j of weights[b, i] * rows[b]; contiguous [n_out, d],
    the layout of W_dec.

    The (token, latent) pairs are sorted by latent, and one embedding_bag sums each latent's token rows ("bags" are
    latents, their members tokens): every output row is written once, with no zero-fill. On CPU that is 1.5-1.9x
    faster than the CSR product this replaced (which zero-filled, then copied its result; measured with
    python -m switch_sae_mini bench), and embedding_bag has a CUDA kernel too."""
    batch, k = indices.shape
    flat_idx, flat_w = indices.reshape(-1), weights.reshape(-1).to(rows.dtype)
    order, offsets = _pairs_by_latent(indices, n_out)
    token = torch.div(order, k, rounding_mode="floor")
    if not _sparse_ok(rows):  # same sum, one gathered row per pair
        return rows.new_zeros(n_out, rows.shape[1]).index_add_(0, flat_idx[order], rows[token] * flat_w[order, None])
    return F.embedding_bag(token, rows, offsets, per_sample_weights=flat_w[order], mode="sum")


_last_sort = threading.local()


def _pairs_by_latent(indices: Tensor, n_out: int) -> tuple[Tensor, Tensor]:
    """The (token, latent) pairs' order by latent and each latent's first position: the decoder's and the
    encoder's weight gradients use the same indices in one backward, so the second call reuses the first's sort.
    The memo holds the indices tensor itself, so an equal data pointer means the same, still-living storage, and
    the version counter catches in-place changes."""
    last = getattr(_last_sort, "entry", None)
    if (last is not None and last[0].data_ptr() == indices.data_ptr() and last[0].shape == indices.shape
            and last[0].stride() == indices.stride() and last[0]._version == indices._version
            and last[1] == indices._version and last[2] == n_out and last[0].device == indices.device):
        return last[3], last[4]
    flat_idx = indices.reshape(-1)
    order = flat_idx.argsort()
    offsets = torch.zeros(n_out, dtype=torch.int64, device=indices.device)
    torch.cumsum(torch.bincount(flat_idx, minlength=n_out)[:-1], 0, out=offsets[1:])
    _last_sort.entry = (indices, indices._version, n_out, order, offsets)
    return order, offsets


_workspace = threading.local()


def _pre_activation_buffer(rows: int, cols: int, like: Tensor) -> Tensor | None:
    """A reused [rows, cols] buffer for the dense pre-activations on CPU (None elsewhere).

    Freshly allocated large tensors are page-faulted in on every step; at the bundled model's size that made the
    encoder matmul 2-3x slower than writing into a reused buffer (python -m switch_sae_mini bench). One buffer per
    thread, for the last shape used; release_workspace() frees it.
    """
    if like.device.type != "cpu":
        return None  # the CUDA caching allocator already reuses memory
    buf = getattr(_workspace, "pre", None)
    if buf is None or buf.shape != (rows, cols) or buf.dtype != like.dtype:
        buf = _workspace.pre = torch.empty(rows, cols, dtype=like.dtype)
    return buf


def release_workspace() -> None:
    """Free this thread's cached pre-activation buffer (batch x d_sae floats, e.g. 400 MB at GPT-2 size) and the
    last sort of (token, latent) pairs."""
    _workspace.pre = None
    _last_sort.entry = None


class EncodedTopK(NamedTuple):
    values: Float[Tensor, "batch k"]
    """ReLU'd TopK values (zero where fewer than k pre-activations are positive)."""
    indices: Int[Tensor, "batch k"]
    aux_values: Float[Tensor, "batch k_aux"]
    """AuxK: ReLU'd top values among dead latents ([batch, 0] when no latent is dead or AuxK is off)."""
    aux_indices: Int[Tensor, "batch k_aux"]


class _TopKEncode(torch.autograd.Function):
    """x_c = x - b_dec; pre = x_c @ W_enc + b_enc; TopK (+ AuxK's TopK over dead latents); sparse backward."""

    @staticmethod
    def forward(ctx, x, b_dec, W_enc, b_enc, k, dead_mask, k_aux):
        x_c = x - b_dec
        pre = _pre_activation_buffer(x_c.shape[0], W_enc.shape[1], x_c)
        bias = None
        if b_enc is not None and pre is not None and native_topk_accepts(pre, k):
            bias = b_enc  # the C top-k adds it on the fly: no pass over [batch, d_sae] for addmm's bias
            pre = torch.mm(x_c, W_enc, out=pre)
        elif b_enc is not None:
            pre = torch.addmm(b_enc, x_c, W_enc, out=pre) if pre is not None else torch.addmm(b_enc, x_c, W_enc)
        else:
            pre = torch.mm(x_c, W_enc, out=pre) if pre is not None else x_c @ W_enc
        values, indices = _rows_topk(pre, k, bias)
        values.clamp_(min=0)
        n_dead = 0 if dead_mask is None else int(dead_mask.sum())
        if n_dead:
            pre.masked_fill_(~dead_mask, -torch.inf)  # in place: pre is not needed any more
            aux_values, aux_indices = _rows_topk(pre, min(k_aux, n_dead), bias)
            aux_values.clamp_(min=0)
        else:
            aux_values, aux_indices = values.new_zeros(x.shape[0], 0), indices.new_zeros(x.shape[0], 0)
        del pre
        ctx.save_for_backward(x_c, W_enc, values, indices, aux_values, aux_indices)
        ctx.mark_non_differentiable(indices, aux_indices)
        return values, indices, aux_values, aux_indices

    @staticmethod
    def backward(ctx, grad_values, _grad_indices, grad_aux_values, _grad_aux_indices):
        x_c, W_enc, values, indices, aux_values, aux_indices = ctx.saved_tensors
        g = grad_values * (values > 0)  # ReLU's gradient
        idx = indices
        if aux_indices.shape[1]:
            g = torch.cat([g, grad_aux_values * (aux_values > 0)], dim=1)
            idx = torch.cat([indices, aux_indices], dim=1)
        return _encoder_grads(ctx, x_c, W_enc, idx, g) + (None, None, None)


class _RoutedTopKEncode(torch.autograd.Function):
    """Switch experts: token b uses only W_enc's block of expert_idx[b]; TopK inside it; sparse backward. See
    routed_topk_encode for top-e and the shared expert; a row's indices are distinct (distinct blocks)."""

    @staticmethod
    def forward(ctx, x, b_dec, W_enc, expert_idx, n_experts, k, d_shared, k_shared):
        x_c = x - b_dec
        d_routed = W_enc.shape[1] - d_shared
        k_expert = min(k, d_routed // n_experts)
        rows = x_c.repeat_interleave(expert_idx.shape[1], dim=0) if expert_idx.ndim == 2 else x_c  # b * e + j
        values, indices = _routed_rows_topk(rows, W_enc[:, :d_routed], expert_idx.reshape(-1), n_experts, k_expert)
        values, indices = values.view(x.shape[0], -1), indices.view(x.shape[0], -1)  # [batch, e * k_expert]
        if d_shared:
            v, i = _rows_topk(x_c @ W_enc[:, d_routed:], k_shared)
            values = torch.cat([values, v.clamp_(min=0).to(values.dtype)], dim=1)
            indices = torch.cat([indices, i + d_routed], dim=1)
        ctx.save_for_backward(x_c, W_enc, values, indices)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values, _grad_indices):
        x_c, W_enc, values, indices = ctx.saved_tensors
        grad_x, grad_b_dec, grad_W_enc, _ = _encoder_grads(ctx, x_c, W_enc, indices, grad_values * (values > 0),
                                                           has_b_enc=False)
        return grad_x, grad_b_dec, grad_W_enc, None, None, None, None, None


def _routed_rows_topk(x_c: Tensor, W_enc: Tensor, expert_idx: Tensor, n_experts: int,
                      k: int) -> tuple[Tensor, Tensor]:
    """TopK of each row inside its expert's block of W_enc [d_in, E * d_expert]: (values, global indices)."""
    d_expert = W_enc.shape[1] // n_experts
    groups = group_by_expert(expert_idx, n_experts)
    order = groups.order
    values = x_c.new_empty(x_c.shape[0], k)
    indices = torch.empty(x_c.shape[0], k, dtype=torch.int64, device=x_c.device)
    if max(groups.counts) * n_experts <= PADDED_LIMIT * x_c.shape[0]:
        _padded_expert_topk(x_c, W_enc, expert_idx, groups, k, values, indices)
        return values, indices
    buf = _pre_activation_buffer(x_c.shape[0], d_expert, x_c)  # every expert's block fits in its first rows
    start = 0
    for e, (count, W_e) in enumerate(zip(groups.counts, expert_weights(W_enc, n_experts))):
        if count == 0:
            continue
        rows = order[start:start + count]
        pre = torch.mm(x_c[rows], W_e, out=buf[:count]) if buf is not None else x_c[rows] @ W_e
        v, i = _rows_topk(pre, k)
        values[rows] = v.clamp_(min=0).to(values.dtype)  # autocast gives bf16 pre-activations on CUDA
        indices[rows] = i + e * d_expert  # local -> global latent index
        start += count
    return values, indices


# The padded form computes E * (largest group) rows instead of batch rows; above this factor the loop is cheaper.
PADDED_LIMIT = 2.0


def _padded_expert_topk(x_c: Tensor, W_enc: Tensor, expert_idx: Tensor, groups, k: int, values: Tensor,
                        indices: Tensor) -> None:
    """Every expert at once: tokens grouped into [E, largest group, d_in] (zero rows pad the smaller groups), one
    batched matmul with the experts' encoder blocks, one top-k over all rows; the pad rows are never read back.
    Replaces E small matmuls and E top-k calls (at the bundled size with E = 32, per-call overhead dominated)."""
    n_experts = len(groups.counts)
    d_in, d_expert = x_c.shape[1], W_enc.shape[1] // n_experts
    cap = max(groups.counts)
    counts = torch.tensor(groups.counts, device=x_c.device)
    sorted_expert = expert_idx[groups.order]
    slot = torch.arange(x_c.shape[0], device=x_c.device) - (torch.cumsum(counts, 0) - counts)[sorted_expert]
    row = sorted_expert * cap + slot  # each token's row in the padded layout
    padded = x_c.new_zeros(n_experts * cap, d_in)
    padded[row] = x_c[groups.order]
    blocks = W_enc.unflatten(1, (n_experts, d_expert)).permute(1, 0, 2)  # [E, d_in, d_expert], no copy
    pre = torch.bmm(padded.view(n_experts, cap, d_in), blocks).view(n_experts * cap, d_expert)
    v, i = _rows_topk(pre, k)
    values[groups.order] = v[row].clamp_(min=0).to(values.dtype)
    indices[groups.order] = i[row] + sorted_expert[:, None] * d_expert  # local -> global latent index


def _encoder_grads(ctx, x_c: Tensor, W_enc: Tensor, idx: Tensor, g: Tensor, has_b_enc: bool = True):
    """Gradients of sum(g * pre[b, idx]) w.r.t. (x, b_dec, W_enc, b_enc) for pre = (x - b_dec) @ W_enc + b_enc."""
    need_x, need_b_dec, need_W = ctx.needs_input_grad[:3]
    g = g.to(x_c.dtype)  # under autocast the values (hence g) may be bf16; the gradients are the weights' dtype
    need_b_enc = has_b_enc and ctx.needs_input_grad[3]
    d_sae = W_enc.shape[1]
    grad_x = grad_b_dec = grad_W = grad_b_enc = None
    if need_W:
        # computed as [d_sae, d_in] and returned transposed: W_enc is stored column-major (see TopKSAE), so this
        # is already its layout (no copy), and the fused Adam sees matching strides
        grad_W = sparse_transpose_matmul(idx, g, x_c, d_sae).t()
    latent_sum = None
    if need_b_enc or need_b_dec:
        latent_sum = torch.bincount(idx.reshape(-1), weights=g.reshape(-1), minlength=d_sae).to(g.dtype)
    if need_b_enc:
        grad_b_enc = latent_sum
    if need_x:
        grad_x = F.embedding_bag(idx, W_enc.t().contiguous(), per_sample_weights=g, mode="sum")
    if need_b_dec:
        grad_b_dec = -(W_enc @ latent_sum)  # sum over tokens of -grad_x, without forming grad_x
    return grad_x, grad_b_dec, grad_W, grad_b_enc


def topk_encode(x: Float[Tensor, "batch d_in"], b_dec: Tensor, W_enc: Float[Tensor, "d_in d_sae"],
                b_enc: Tensor | None, k: int, dead_mask: Tensor | None = None, k_aux: int = 0) -> EncodedTopK:
    """TopK(ReLU((x - b_dec) @ W_enc + b_enc), k) with a sparse backward; plus AuxK's dead-latent TopK when
    dead_mask has any True (else aux fields are [batch, 0])."""
    return EncodedTopK(*_TopKEncode.apply(x, b_dec, W_enc, b_enc, k, dead_mask, k_aux))


def routed_topk_encode(x: Float[Tensor, "batch d_in"], b_dec: Tensor, W_enc: Float[Tensor, "d_in d_sae"],
                       expert_idx: Int[Tensor, " batch"], n_experts: int, k: int, d_shared: int = 0,
                       k_shared: int = 0) -> tuple[Tensor, Tensor]:
    """Per token, TopK(ReLU((x - b_dec) @ W_enc[:, block of its expert]), k) with global latent indices; unscaled.
    expert_idx [batch, e] (top-e) puts each expert's TopK side by side, [batch, e * min(k, d_expert)]; d_shared > 0
    appends the shared expert's TopK of k_shared (the last d_shared columns of W_enc)."""
    return _RoutedTopKEncode.apply(x, b_dec, W_enc, expert_idx, n_experts, k, d_shared, k_shared)


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, indices, W_dec):
        values = values.to(W_dec.dtype)  # autocast may hand over bf16 values; embedding_bag needs one dtype
        ctx.save_for_backward(values, indices, W_dec)
        return F.embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")

    @staticmethod
    def backward(ctx, grad_out):
        values, indices, W_dec = ctx.saved_tensors
        grad_out = grad_out.to(W_dec.dtype)
        grad_values = grad_W_dec = None
        if ctx.needs_input_grad[0]:
            # embedding_bag's fused per-sample-weights backward: the dot of grad_out[b] with each used row,
            # without gathering [batch, k, d_in] (recomputing the cheap forward costs ~1/10 of it)
            with torch.enable_grad():
                v = values.detach().requires_grad_()
                out = F.embedding_bag(indices, W_dec.detach(), per_sample_weights=v, mode="sum")
                (grad_values,) = torch.autograd.grad(out, v, grad_out)
        if ctx.needs_input_grad[2]:
            grad_W_dec = sparse_transpose_matmul(indices, values, grad_out, W_dec.shape[0])
        return grad_values, None, grad_W_dec


def sparse_decode(values: Float[Tensor, "batch k"], indices: Int[Tensor, "batch k"],
                  W_dec: Float[Tensor, "d_sae d_in"]) -> Float[Tensor, "batch d_in"]:
    """sum_i values[b, i] * W_dec[indices[b, i]] with a sparse W_dec gradient (no dense zero-fill + index_add)."""
    return _SparseDecode.apply(values, indices, W_dec)
