"""The dtype boundary: activations in float16, bfloat16 or float64 are cast to the SAE's dtype on the way in, on
the fused and the plain paths, for every architecture (a GPU harvest gives bf16; numpy gives float64)."""

import pytest
import torch

from switch_sae_mini import SAEConfig, TrainConfig, make_sae, train
from switch_sae_mini.saes import InputError

ARCHS = [("relu", {}), ("topk", {}), ("switch", {"n_experts": 4})]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("arch,extra", ARCHS, ids=[a for a, _ in ARCHS])
def test_other_float_dtypes_are_cast_at_the_boundary(arch, extra, dtype, fused):
    torch.manual_seed(0)
    sae = make_sae(SAEConfig(arch=arch, d_in=16, d_sae=64, k=4, fused=fused, dead_after_tokens=1, **extra))
    sae.train()
    x = torch.randn(32, 16).to(dtype)
    out = sae(x)
    reference = sae(x.float())  # what the cast means: exactly the float32 forward of the rounded values
    assert out.x_hat.dtype == torch.float32
    assert torch.equal(out.x_hat, reference.x_hat) and torch.equal(out.loss, reference.loss)
    out.loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in sae.parameters())


@pytest.mark.parametrize("arch,extra", ARCHS, ids=[a for a, _ in ARCHS])
def test_a_float64_sae_trains_on_float32_batches(arch, extra):
    cfg = SAEConfig(arch=arch, d_in=16, d_sae=64, k=4, **extra)
    torch.manual_seed(0)
    sae = make_sae(cfg).double()
    batches = (torch.randn(64, 16) for _ in range(3))
    result = train(sae, batches, TrainConfig(n_steps=3), progress=False)
    assert result.sae.W_dec.dtype == torch.float64 and result.final["fvu"] > 0


def test_integer_and_wrongly_shaped_inputs_still_raise_input_errors():
    sae = make_sae(SAEConfig(arch="topk", d_in=16, d_sae=64, k=4))
    with pytest.raises(InputError, match="floating point"):
        sae(torch.ones(4, 16, dtype=torch.int64))
    with pytest.raises(InputError, match="d_in=16"):
        sae(torch.ones(4, 8))
    out = sae(torch.randn(2, 3, 16).transpose(0, 1))  # 3-D and non-contiguous: any leading shape works
    assert out.x_hat.shape == (3, 2, 16)
