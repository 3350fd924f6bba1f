"""Row-wise top-k on CPU with the C kernel in topk.c; torch.topk everywhere else.

Same contract as ``x.topk(k, dim=-1, sorted=False)`` on a 2-D float tensor: the k largest values of each row and their
column indices, in no particular order. Rows are split across torch's intra-op thread count (ctypes releases the
GIL while the kernel runs). Any row with a NaN, any dtype other than float32, a non-CPU tensor, or a machine where
the kernel cannot be built goes to torch.topk, so results never depend on whether the kernel is used.
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from . import build

_MIN_PARALLEL = 1 << 17  # below this many values one thread is faster than handing out work
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _kernel():
    library = build.load("topk")
    if library is None:
        return None
    fn = library.ssm_topk_rows_f32
    if fn.restype is not ctypes.c_int64:
        fn.restype = ctypes.c_int64
        fn.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 4 + [ctypes.c_void_p] * 2
    return fn


def available() -> bool:
    """Whether the C kernel is built and loaded on this machine."""
    return _kernel() is not None


def _workers(n: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ssm-topk")
        return _pool


def accepts(x: Tensor, k: int) -> bool:
    """Whether topk(x, k) runs the C kernel here (else it is torch.topk). The kernel needs k <= n / 16 (its groups
    of 16 values); below that torch's nth_element is as fast."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 2 and 1 <= k <= x.shape[1] // 16
            and x.stride(1) == 1 and not x.requires_grad and _kernel() is not None)


def topk(x: Tensor, k: int, bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(values [rows, k], indices [rows, k] int64) of the k largest entries of each row of x + bias, for a 2-D x
    and an optional bias [n] (broadcast over rows; the kernel adds it on the fly, without a pass over x)."""
    fn = None
    if accepts(x, k) and (bias is None or (bias.dtype == x.dtype and bias.device == x.device
                                           and bias.shape == x.shape[1:])):
        fn = _kernel()
    if fn is None:
        return (x if bias is None else x + bias).topk(k, dim=-1, sorted=False)
    bias = None if bias is None else bias.detach().contiguous()
    bias_ptr = None if bias is None else bias.data_ptr()
    rows, n = x.shape
    values = torch.empty(rows, k, dtype=x.dtype)
    indices = torch.empty(rows, k, dtype=torch.int64)
    ld, item = x.stride(0), x.element_size()

    def run(start: int, stop: int) -> int:
        return fn(x.data_ptr() + start * ld * item, bias_ptr, stop - start, n, ld, k,
                  values.data_ptr() + start * k * 4, indices.data_ptr() + start * k * 8)

    threads = min(torch.get_num_threads(), rows)
    if threads <= 1 or rows * n < _MIN_PARALLEL:
        counts = [run(0, rows)]
    else:
        bounds = [rows * i // threads for i in range(threads + 1)]
        futures = [_workers(threads - 1).submit(run, a, b) for a, b in zip(bounds[1:-1], bounds[2:])]
        counts = [run(bounds[0], bounds[1])] + [f.result() for f in futures]
    if min(counts) < 0:
        raise MemoryError("switch_sae_mini: the top-k kernel could not allocate its row buffers")
    if sum(counts):  # torch ranks NaN first, so a diverged run still shows NaN losses
        return (x if bias is None else x + bias).topk(k, dim=-1, sorted=False)
    return values, indices
