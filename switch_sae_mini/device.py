"""Device utilities: pick a device, autocast, seeding, timing, memory, MFU (model FLOPs utilisation), CPU name.

Works on CPU, CUDA and MPS; the tests run on CPU and the CUDA-only paths are marked ``gpu`` (skipped without a
GPU). FLOP counts for MFU come from ``flops.py`` (docs/design-notes.md §5). Exported as ``ssm.device`` and, under
its old name, ``ssm.gpu``.
"""

from __future__ import annotations

import contextlib
import math
import platform
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import SAEConfig
from .errors import ArgumentError, UnavailableError
from .flops import param_counts


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best available one (cuda > mps > cpu) when prefer is None."""
    if prefer is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as err:
        raise ArgumentError(f"get_device: {prefer!r} is not a device name; "
                         f"use 'cpu', 'cuda', 'cuda:1' or 'mps'.") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UnavailableError("get_device: 'cuda' was requested but no CUDA GPU is visible to torch; "
                               "use get_device() to fall back to the best available device.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UnavailableError(f"get_device: {prefer!r} was requested but only {torch.cuda.device_count()} "
                               f"CUDA device(s) exist.")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UnavailableError("get_device: 'mps' was requested but Apple MPS is not available on this machine.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ArgumentError(f"get_device: unsupported device type {device.type!r}; use 'cpu', 'cuda' or 'mps'.")
    return device


# Mixed precision only where it pays and is safe. On CUDA, bf16 autocast runs matmuls on tensor cores and
# needs no loss scaling (same exponent range as fp32); GPUs without bf16 (T4, V100) stay in fp32 rather than
# needing fp16 + GradScaler. On CPU, bf16 speed depends on the chip: with AVX512-BF16/AMX it can beat fp32
# (1.7x for a TopK training step on our AMD EPYC dev box), without them PyTorch falls back to slow emulated
# kernels. Either way fp32 keeps the small CPU runs in the notebooks and tests exactly reproducible, so CPU
# and MPS use fp32.
def autocast_dtype(device: torch.device | str) -> torch.dtype:
    """Compute dtype used inside :func:`autocast_context`: bf16 on CUDA (if supported), else fp32."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def autocast_context(device: torch.device | str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` in bf16 on CUDA, a no-op context (fp32) on CPU and MPS."""
    device = torch.device(device)
    dtype = autocast_dtype(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (all CUDA devices too, if present)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ArgumentError(f"set_seed: seed must be an int in [0, 2**32), got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels on device to finish (no-op on CPU), so timings measure real work."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Timer:
    """Context manager measuring wall-clock seconds of its block, synchronising the device at both ends.

    Reusable: ``elapsed`` is the last block's time, ``total`` and ``count`` accumulate over all uses.
    >>> timer = Timer("cpu")
    >>> with timer: ...
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.elapsed = 0.0
        self.total = 0.0
        self.count = 0
        self._start: float | None = None

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        assert self._start is not None
        self.elapsed = time.perf_counter() - self._start
        self.total += self.elapsed
        self.count += 1
        self._start = None

    @property
    def mean(self) -> float:
        """Average seconds per use (0 before the first use)."""
        return self.total / self.count if self.count else 0.0


def peak_memory_bytes(device: torch.device | str = "cpu") -> int:
    """Peak memory in bytes: the CUDA allocator's max_memory_allocated, else the process's peak RSS."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource  # Unix only; on MPS the unified memory shows up in the process RSS

    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux but in bytes on macOS.
    return int(max_rss if sys.platform == "darwin" else max_rss * 1024)


def memory_report(device: torch.device | str = "cpu") -> str:
    """One line describing peak (and, on CUDA, current and total) memory."""
    device = torch.device(device)
    peak = _gib(peak_memory_bytes(device))
    if device.type == "cuda":
        now = _gib(torch.cuda.memory_allocated(device))
        total = _gib(torch.cuda.get_device_properties(device).total_memory)
        return f"{device}: peak allocated {peak}, now {now}, device total {total}"
    return f"{device}: peak process RSS {peak} (includes Python, torch and any data in RAM)"


def estimate_training_memory(cfg: SAEConfig, batch_size: int, dtype: torch.dtype = torch.float32,
                             activation_dtype: torch.dtype | None = None) -> dict[str, int]:
    """Rough bytes for one training step: parameters, gradients, Adam state, batch activations, total.

    Activations are those kept for the backward pass: the input and x_hat (batch x d_in each), the encoder
    matmul output (batch x d_expert: the routed expert only for Switch, all d_sae latents for ReLU/TopK or
    for Switch with routed=False, docs/design-notes.md §5), the top-k values and int64 indices (TopK/Switch) and the
    router logits (Switch).
    Parameters, gradients and Adam state use ``dtype``; activations use ``activation_dtype`` (default: dtype).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ArgumentError(f"estimate_training_memory: batch_size must be a positive int, got {batch_size!r}.")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArgumentError(f"estimate_training_memory: dtype must be a floating torch.dtype, got {dtype!r}.")
    act_dtype = dtype if activation_dtype is None else activation_dtype
    if not isinstance(act_dtype, torch.dtype) or not act_dtype.is_floating_point:
        raise ArgumentError(f"estimate_training_memory: activation_dtype must be a floating torch.dtype, "
                         f"got {activation_dtype!r}.")
    nbytes, act_nbytes = dtype.itemsize, act_dtype.itemsize
    params = param_counts(cfg)["total"] * nbytes
    routed_width = cfg.router_top_e * cfg.d_expert + cfg.shared_expert  # the variants: e experts + the shared one
    width = routed_width if cfg.arch == "switch" and cfg.routed else cfg.d_sae
    act_elems = batch_size * (2 * cfg.d_in + width)  # input, x_hat, pre-activations
    index_bytes = 0
    if cfg.arch != "relu":
        # top-k values: with top-e, each chosen expert's TopK is kept before the merge (docs/design-notes.md §12)
        kept = cfg.router_top_e * min(cfg.k, cfg.d_expert) + cfg.k_shared if cfg.arch == "switch" else cfg.k
        act_elems += batch_size * kept
        index_bytes = batch_size * kept * torch.int64.itemsize
    if cfg.arch == "switch":
        act_elems += batch_size * cfg.n_experts  # router logits
    out = {"parameters": params, "gradients": params,
           "adam_state": 2 * params,  # Adam keeps m and v per weight
           "activations": act_elems * act_nbytes + index_bytes}
    return {**out, "total": sum(out.values())}


# Dense (no 2:4 sparsity) peak tensor-core TFLOP/s for bf16/fp16 and plain (non-tensor-core) fp32, from the
# vendor datasheets (NVIDIA product datasheets; GeForce cards: the Ampere GA102 / Ada AD102 whitepapers,
# fp16/bf16 with fp32 accumulate as PyTorch uses). None = dtype not supported. A10G is AWS's variant of the
# A10; no public datasheet exists, so the A10 datasheet values are used (the A10G's clocks differ, so treat
# its MFU as approximate).
PEAK_FLOPS: dict[str, dict[str, float | None]] = {
    "A100 40GB": {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},
    "A100 80GB": {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},
    "H100 SXM": {"bf16": 989.4, "fp16": 989.4, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "fp32": 51.0},
    "L4": {"bf16": 121.0, "fp16": 121.0, "fp32": 30.3},
    "T4": {"bf16": None, "fp16": 65.0, "fp32": 8.1},
    "V100": {"bf16": None, "fp16": 125.0, "fp32": 15.7},  # SXM2; the PCIe card is 112 / 14
    "RTX 3090": {"bf16": 71.0, "fp16": 71.0, "fp32": 35.6},
    "RTX 4090": {"bf16": 165.2, "fp16": 165.2, "fp32": 82.6},
    "A10G": {"bf16": 125.0, "fp16": 125.0, "fp32": 31.2},
}

# Token sets identifying each GPU in a name such as torch.cuda.get_device_name() ("NVIDIA A100-SXM4-80GB",
# "NVIDIA H100 80GB HBM3", "Tesla T4"). Tokens must all appear; whole tokens, so "L40S" does not match "L4".
_NAME_TOKENS: dict[str, list[set[str]]] = {
    "A100 40GB": [{"a100", "40gb"}], "A100 80GB": [{"a100", "80gb"}],
    "H100 SXM": [{"h100", "sxm"}, {"h100", "sxm5"}, {"h100", "hbm3"}], "H100 PCIe": [{"h100", "pcie"}],
    "L4": [{"l4"}], "T4": [{"t4"}], "V100": [{"v100"}], "RTX 3090": [{"rtx", "3090"}],
    "RTX 4090": [{"rtx", "4090"}], "A10G": [{"a10g"}],
}


def lookup_gpu(device_name: str) -> str:
    """The PEAK_FLOPS key for a GPU name (a key or a CUDA device name); clear error if unknown/ambiguous."""
    if not isinstance(device_name, str):
        raise ArgumentError(f"lookup_gpu: device_name must be a str, got {type(device_name).__name__}.")
    for key in PEAK_FLOPS:
        if device_name.strip().lower() == key.lower():
            return key
    tokens = set(re.split(r"[^a-z0-9]+", device_name.lower()))
    found = [key for key, options in _NAME_TOKENS.items() if any(opt <= tokens for opt in options)]
    if len(found) != 1:
        problem = "matches several" if found else "is not one of the known"
        raise ArgumentError(f"GPU name {device_name!r} {problem} GPUs; known names: {sorted(PEAK_FLOPS)}. "
                         f"For another GPU compute flops_per_second / its datasheet peak yourself.")
    return found[0]


def mfu(flops_per_second: float, device_name: str, dtype: str = "bf16") -> float:
    """Model FLOPs utilisation: achieved FLOP/s divided by the GPU's dense datasheet peak for dtype."""
    if isinstance(flops_per_second, bool) or not isinstance(flops_per_second, (int, float)) \
            or not math.isfinite(flops_per_second) or flops_per_second < 0:
        raise ArgumentError(f"mfu: flops_per_second must be a finite number >= 0, got {flops_per_second!r}.")
    key = lookup_gpu(device_name)
    peaks = PEAK_FLOPS[key]
    if dtype not in peaks:
        raise ArgumentError(f"mfu: dtype must be one of {sorted(peaks)}, got {dtype!r}.")
    peak = peaks[dtype]
    if peak is None:
        raise ArgumentError(f"mfu: the {key} has no {dtype} support; use dtype='fp16' or 'fp32'.")
    return flops_per_second / (peak * 1e12)


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes < 2**30 else f"{n_bytes / 2**30:.2f} GiB"


def cpu_name() -> str:
    """The CPU model (benchmark tables name it: ratios measured on one CPU kind do not hold on another)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
