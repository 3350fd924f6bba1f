"""The C kernels (switch_sae_mini/native): the row-wise top-k against torch.topk, its fallbacks, the build cache
and the allocator setting. The kernels only pay off in speed (python -m switch_sae_mini bench); here they must
give torch's results exactly, on every input torch accepts."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

from switch_sae_mini.native import build
from switch_sae_mini.native import topk as native_topk

pytestmark = pytest.mark.skipif(not native_topk.available(), reason="no C compiler on this machine")


def _same_topk(x: torch.Tensor, k: int, bias: torch.Tensor | None = None) -> None:
    values, indices = native_topk.topk(x, k, bias)
    full = x if bias is None else x + bias
    ref_values, _ = full.topk(k, dim=-1, sorted=False)
    assert values.shape == (x.shape[0], k) and indices.dtype == torch.int64
    # the same multiset of values per row, and each index points at its value (ties may pick other indices)
    assert torch.equal(values.sort(-1).values, ref_values.sort(-1).values)
    assert torch.equal(full.gather(1, indices), values)
    assert all(row.unique().numel() == k for row in indices)  # k distinct columns per row


@pytest.mark.parametrize("rows,n,k", [(1, 512, 32), (37, 4096, 32), (300, 4096, 256), (64, 24576, 32),
                                      (5, 1000, 7), (17, 16 * 32, 32), (3, 16 * 33 + 5, 32), (2, 64, 1)])
def test_matches_torch_topk(rows, n, k):
    gen = torch.Generator().manual_seed(rows * n + k)
    x = torch.randn(rows, n, generator=gen) * 3 - 1
    assert native_topk.accepts(x, k)
    _same_topk(x, k)
    _same_topk(x, k, torch.randn(n, generator=gen))


def test_ties_masked_and_extreme_values():
    gen = torch.Generator().manual_seed(0)
    ties = torch.randint(-3, 4, (50, 2048), generator=gen).float()  # many equal values
    _same_topk(ties, 32)
    masked = torch.randn(20, 4096, generator=gen)
    masked[:, 100:] = -torch.inf  # AuxK: only the first 100 latents are dead, the rest masked out
    _same_topk(masked, 64)
    extreme = torch.randn(8, 1024, generator=gen) * 1e38
    extreme[:, ::7] = torch.inf
    extreme[:, 3] = -0.0
    _same_topk(extreme, 40)
    _same_topk(torch.zeros(4, 1024), 32)


def test_strided_rows_and_rejected_inputs_fall_back():
    gen = torch.Generator().manual_seed(1)
    wide = torch.randn(40, 3000, generator=gen)
    _same_topk(wide[:, :2048], 32)  # row stride 3000 > n
    for x, k in [(wide.double(), 32), (wide[:, ::2], 32), (wide[:, :256], 32), (wide.t(), 32)]:
        assert not native_topk.accepts(x, k)
        values, indices = native_topk.topk(x, k)
        assert torch.equal(values, x.topk(k, dim=-1, sorted=False).values)


def test_nan_rows_use_torch_ordering():
    x = torch.randn(6, 1024)
    x[2, 500] = torch.nan
    values, indices = native_topk.topk(x, 32)
    ref_values, ref_indices = x.topk(32, dim=-1, sorted=False)
    assert torch.equal(values, ref_values) or torch.allclose(values, ref_values, equal_nan=True)
    assert torch.isnan(values[2]).any()  # a NaN ranks first, so a diverged run still shows it


def test_threads_split_rows_the_same_way():
    x = torch.randn(1000, 4096)
    single = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native_topk.topk(x, 32)
    finally:
        torch.set_num_threads(single)
    many = native_topk.topk(x, 32)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_disabled_and_failed_builds_fall_back(tmp_path):
    code = ("import warnings, torch; warnings.simplefilter('always')\n"
            "from switch_sae_mini.native import topk\n"
            "x = torch.randn(4, 1024); v, i = topk.topk(x, 32)\n"
            "assert torch.equal(v, x.topk(32, dim=-1, sorted=False).values)\n"
            "print('available', topk.available())")
    off = _run(code, SWITCH_SAE_MINI_NATIVE="0", SWITCH_SAE_MINI_CACHE=str(tmp_path / "off"))
    assert off.returncode == 0 and "available False" in off.stdout and "RuntimeWarning" not in off.stderr
    broken = _run(code, CC="false", SWITCH_SAE_MINI_CACHE=str(tmp_path / "broken"))
    assert broken.returncode == 0 and "available False" in broken.stdout, broken.stderr
    assert "could not be built" in broken.stderr and "same results" in broken.stderr


def test_concurrent_builds_share_one_cache(tmp_path):
    code = "from switch_sae_mini.native import topk; print(topk.available())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "SWITCH_SAE_MINI_CACHE": str(tmp_path)}) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["True"] * 4
    built = sorted(p.name for p in (tmp_path / "native").iterdir())
    assert len(built) == 1 and built[0].startswith("topk-") and built[0].endswith(".so")  # no partial files left


def test_read_only_cache_uses_a_private_temp_folder(tmp_path):
    if os.getuid() == 0:
        pytest.skip("root ignores folder permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        out = _run("from switch_sae_mini.native import topk; print(topk.available())",
                   SWITCH_SAE_MINI_CACHE=str(ro))
    finally:
        ro.chmod(0o700)
    assert out.stdout.strip() == "True", out.stderr


def test_allocator_setting_applies_once_and_can_be_declined():
    code = ("from switch_sae_mini.native.allocator import keep_freed_memory as k\n"
            "print(k(), k())")
    default = _run(code)
    declined = _run(code, SWITCH_SAE_MINI_MALLOC="system")
    if sys.platform.startswith("linux"):
        assert default.stdout.split() == ["True", "True"], default.stderr
    assert declined.stdout.split() == ["False", "False"], declined.stderr


def test_training_with_and_without_the_kernel_agree():
    """15 steps of a TopK SAE (AuxK on: dead latents from the start) with the kernel and with torch.topk."""
    from switch_sae_mini.config import SAEConfig, TrainConfig
    from switch_sae_mini.saes import make_sae
    from switch_sae_mini.training.step import make_optimizer, training_step

    cfg = SAEConfig(arch="topk", d_in=32, d_sae=1024, k=16, dead_after_tokens=1)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(256, 32, generator=gen) for _ in range(15)]
    results = []
    for enabled in ("1", "0"):
        os.environ["SWITCH_SAE_MINI_NATIVE"] = enabled
        build.reset()
        try:
            torch.manual_seed(0)
            sae = make_sae(cfg)
            train_cfg = TrainConfig(n_steps=15)
            opt = make_optimizer(sae, 1e-3)
            for step, x in enumerate(batches):
                training_step(sae, x, opt, train_cfg, step, 1e-3)
            results.append({n: p.detach().clone() for n, p in sae.named_parameters()})
        finally:
            os.environ.pop("SWITCH_SAE_MINI_NATIVE")
            build.reset()
    for name, value in results[0].items():
        torch.testing.assert_close(value, results[1][name], rtol=1e-5, atol=1e-6, msg=name)
