"""Tests for switch_sae_mini.device (ssm.device, also ssm.gpu): all on CPU; CUDA-only checks are marked ``gpu``
and skip without CUDA."""

from __future__ import annotations

import contextlib
import random
import time

import numpy as np
import pytest
import torch

from switch_sae_mini.config import SAEConfig
from switch_sae_mini.flops import param_counts
from switch_sae_mini.device import (
    PEAK_FLOPS,
    Timer,
    autocast_context,
    autocast_dtype,
    estimate_training_memory,
    get_device,
    lookup_gpu,
    memory_report,
    mfu,
    peak_memory_bytes,
    set_seed,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SWITCH = SAEConfig(arch="switch", d_in=768, d_sae=24576, k=32, n_experts=16)


# --- devices and autocast -----------------------------------------------------------------------------------

def test_get_device_cpu_and_default():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert get_device().type == expected


def test_get_device_rejects_bad_or_missing_devices():
    with pytest.raises(ValueError, match="not a device name"):
        get_device("gpu0")
    with pytest.raises(ValueError, match="unsupported device type"):
        get_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            get_device("cuda")
    else:
        with pytest.raises(RuntimeError, match="device"):
            get_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(RuntimeError, match="MPS is not available"):
            get_device("mps")


def test_cpu_autocast_is_fp32_noop():
    assert autocast_dtype("cpu") == torch.float32
    assert isinstance(autocast_context("cpu"), contextlib.nullcontext)
    with autocast_context(torch.device("cpu")):
        out = torch.ones(4, 4) @ torch.ones(4, 4)
    assert out.dtype == torch.float32


@pytest.mark.gpu
@needs_cuda
def test_cuda_autocast_uses_bf16_when_supported():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert autocast_dtype("cuda") == expected
    with autocast_context("cuda"):
        out = torch.ones(8, 8, device="cuda") @ torch.ones(8, 8, device="cuda")
    assert out.dtype == expected


# --- seeding and timing -------------------------------------------------------------------------------------

def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_set_seed_reproduces_all_three_generators():
    set_seed(123)
    first = _draw()
    set_seed(123)
    assert _draw() == first
    set_seed(124)
    assert _draw() != first
    for bad in (-1, 2**32, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed"):
            set_seed(bad)


def test_timer_measures_sleep_and_is_reusable():
    timer = Timer("cpu")
    assert timer.mean == 0.0
    with timer:
        time.sleep(0.05)
    first = timer.elapsed
    assert 0.045 <= first < 0.5
    with timer as same:
        time.sleep(0.01)
    assert same is timer and timer.count == 2
    assert 0.009 <= timer.elapsed < first  # the second, shorter sleep replaced elapsed
    assert timer.total == pytest.approx(first + timer.elapsed)
    assert timer.mean == pytest.approx(timer.total / 2)


@pytest.mark.gpu
@needs_cuda
def test_timer_synchronises_cuda():
    x = torch.randn(2048, 2048, device="cuda")
    with Timer("cuda") as timer:
        for _ in range(20):
            x = x @ x / 2048
    assert timer.elapsed > 0


# --- memory -------------------------------------------------------------------------------------------------

def test_peak_memory_is_positive_and_grows_with_allocation():
    before = peak_memory_bytes("cpu")
    assert isinstance(before, int) and before > 10 * 2**20  # a Python process with torch is well above 10 MiB
    big = torch.ones(64 * 2**20 // 4 * 3)  # 192 MiB, more than any earlier peak's headroom is likely to hide
    big += 1
    after = peak_memory_bytes("cpu")
    assert after >= before and after >= big.numel() * 4
    report = memory_report("cpu")
    assert report.startswith("cpu: peak process RSS") and ("MiB" in report or "GiB" in report)


def test_estimate_training_memory_parts():
    est = estimate_training_memory(SWITCH, batch_size=4096)
    n_params = param_counts(SWITCH)["total"]
    assert est["parameters"] == 4 * n_params
    assert est["gradients"] == est["parameters"] and est["adam_state"] == 2 * est["parameters"]
    # input + x_hat (2 * 768), routed expert pre-acts (1536), top-k values (32) and router logits (16)
    # in fp32, plus int64 top-k indices.
    assert est["activations"] == 4096 * ((2 * 768 + 1536 + 32 + 16) * 4 + 32 * 8)
    assert est["total"] == sum(v for key, v in est.items() if key != "total")
    assert all(isinstance(v, int) and v > 0 for v in est.values())


def test_estimate_training_memory_depends_on_arch_routing_and_dtype():
    topk = SWITCH.replace(arch="topk", n_experts=1)
    relu = SAEConfig(arch="relu", d_in=768, d_sae=24576)
    routed = estimate_training_memory(SWITCH, 1024)["activations"]
    dense = estimate_training_memory(SWITCH.replace(routed=False), 1024)["activations"]
    assert dense - routed == 1024 * (24576 - 1536) * 4  # masked-dense reference materialises all latents
    assert estimate_training_memory(topk, 1024)["activations"] == dense - 1024 * 16 * 4  # no router logits
    assert estimate_training_memory(relu, 1024)["activations"] == 1024 * (2 * 768 + 24576) * 4
    half = estimate_training_memory(SWITCH, 1024, dtype=torch.bfloat16)
    assert half["parameters"] == 2 * param_counts(SWITCH)["total"]
    mixed = estimate_training_memory(SWITCH, 1024, activation_dtype=torch.bfloat16)
    assert mixed["parameters"] == 4 * param_counts(SWITCH)["total"]
    assert mixed["activations"] == half["activations"] < routed


def test_estimate_training_memory_rejects_bad_inputs():
    for bad in (0, -8, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            estimate_training_memory(SWITCH, bad)
    with pytest.raises(ValueError, match="dtype"):
        estimate_training_memory(SWITCH, 8, dtype=torch.int32)
    with pytest.raises(ValueError, match="activation_dtype"):
        estimate_training_memory(SWITCH, 8, activation_dtype="bf16")


@pytest.mark.gpu
@needs_cuda
def test_cuda_peak_memory_tracks_allocator():
    torch.cuda.reset_peak_memory_stats()
    x = torch.empty(2**24, device="cuda")
    assert peak_memory_bytes("cuda") >= x.numel() * 4
    assert "peak allocated" in memory_report("cuda")


# --- MFU ----------------------------------------------------------------------------------------------------

def test_mfu_arithmetic():
    assert mfu(156e12, "A100 80GB") == pytest.approx(0.5)
    assert mfu(156e12, "a100 80gb", dtype="bf16") == pytest.approx(0.5)
    assert mfu(9.75e12, "A100 40GB", dtype="fp32") == pytest.approx(0.5)
    assert mfu(6.5e12, "T4", dtype="fp16") == pytest.approx(0.1)
    assert mfu(0, "H100 SXM") == 0.0


@pytest.mark.parametrize("cuda_name, key", [
    ("NVIDIA A100-SXM4-80GB", "A100 80GB"), ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA L4", "L4"),
    ("Tesla T4", "T4"), ("Tesla V100-SXM2-16GB", "V100"), ("NVIDIA GeForce RTX 3090", "RTX 3090"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"), ("NVIDIA A10G", "A10G"),
])
def test_lookup_gpu_from_cuda_device_names(cuda_name, key):
    assert lookup_gpu(cuda_name) == key


def test_peak_table_is_sane():
    assert len(PEAK_FLOPS) == 10
    for name, peaks in PEAK_FLOPS.items():
        assert set(peaks) == {"bf16", "fp16", "fp32"}, name
        assert peaks["fp16"] > peaks["fp32"] > 0, name  # tensor cores beat plain fp32 on every listed GPU
        assert peaks["bf16"] is None or peaks["bf16"] == peaks["fp16"], name


def test_mfu_rejects_bad_inputs():
    with pytest.raises(ValueError, match="known names: .*A100 40GB"):
        mfu(1e12, "NVIDIA L40S")  # must not fall back to the L4
    with pytest.raises(ValueError, match="known names"):
        mfu(1e12, "A100")  # ambiguous: 40GB or 80GB
    with pytest.raises(ValueError, match="no bf16 support"):
        mfu(1e12, "V100")
    with pytest.raises(ValueError, match="dtype must be one of"):
        mfu(1e12, "L4", dtype="fp8")
    for bad in (-1.0, float("nan"), float("inf"), "1e12"):
        with pytest.raises(ValueError, match="flops_per_second"):
            mfu(bad, "L4")
