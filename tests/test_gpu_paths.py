"""The CUDA paths of the training step: the fused kernels under the package's autocast agree with the plain
autograd reference (fused=False), parameters stay float32, and the sparse product matches its dense form.
Marked ``gpu``: skipped without CUDA; scripts/device_check.sh runs them on a lent GPU (``pytest -m gpu``)."""

from __future__ import annotations

import pytest
import torch

from switch_sae_mini.config import SAEConfig, TrainConfig
from switch_sae_mini.data.toy import synthetic_batches
from switch_sae_mini.device import autocast_context, autocast_dtype
from switch_sae_mini.saes import make_sae
from switch_sae_mini.saes.kernels import sparse_transpose_matmul
from switch_sae_mini.training.step import make_optimizer, training_step

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CONFIGS = {"topk": SAEConfig(arch="topk", d_in=128, d_sae=4096, k=32),
           "switch": SAEConfig(arch="switch", d_in=128, d_sae=4096, k=32, n_experts=8)}


def _losses(cfg: SAEConfig, batches: list[torch.Tensor]) -> tuple[list[float], torch.nn.Module]:
    torch.manual_seed(0)
    sae = make_sae(cfg).cuda()
    train_cfg = TrainConfig(n_steps=10 ** 6)
    base_lr = train_cfg.learning_rate(cfg.d_sae)
    optimizer = make_optimizer(sae, base_lr)
    losses = []
    for step, x in enumerate(batches):
        with autocast_context("cuda"):
            out = training_step(sae, x, optimizer, train_cfg, step, base_lr)
        losses.append(out.mse_loss.item())
    return losses, sae


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_fused_cuda_step_matches_plain_autograd_under_autocast(arch):
    batches = [x.cuda() for x in synthetic_batches(128, 2048)] * 3  # sparse features, not noise: it can learn
    fused, fused_sae = _losses(CONFIGS[arch], batches)
    plain, plain_sae = _losses(CONFIGS[arch].replace(fused=False), batches)
    # bf16 matmuls on both paths; the tolerance is bf16's, not fp32's (tests/test_native.py holds CPU to 1e-5)
    tol = 3e-2 if autocast_dtype("cuda") == torch.bfloat16 else 1e-4
    torch.testing.assert_close(torch.tensor(fused), torch.tensor(plain), rtol=tol, atol=tol)
    assert fused[-1] < fused[0]  # the reconstruction error falls: it trains
    for name, param in fused_sae.named_parameters():
        assert param.dtype == torch.float32, f"{name} is {param.dtype}: parameters stay float32 (master weights)"
        assert torch.isfinite(param).all(), name
    torch.testing.assert_close(fused_sae.W_dec, plain_sae.W_dec, rtol=tol, atol=tol)


def test_sparse_transpose_matmul_on_cuda_matches_dense():
    gen = torch.Generator(device="cuda").manual_seed(1)
    batch, k, n_out, d = 512, 16, 1024, 64
    indices = torch.rand(batch, n_out, device="cuda", generator=gen).topk(k, dim=1).indices
    weights = torch.rand(batch, k, device="cuda", generator=gen)
    rows = torch.randn(batch, d, device="cuda", generator=gen)
    dense = torch.zeros(batch, n_out, device="cuda").scatter_(1, indices, weights)
    got = sparse_transpose_matmul(indices, weights, rows, n_out)
    assert got.shape == (n_out, d) and got.is_contiguous()
    torch.testing.assert_close(got, dense.T @ rows, rtol=1e-4, atol=1e-4)
