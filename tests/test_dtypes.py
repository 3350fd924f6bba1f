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


@pytest.mark.parametrize("cuda_like", [False, True], ids=["cpu-path", "cuda-path"])
@pytest.mark.parametrize("arch,extra", ARCHS + [("topk", {"dead_after_tokens": 1})],
                         ids=[a for a, _ in ARCHS] + ["topk-auxk"])
def test_bf16_autocast_step_matches_plain_autograd(arch, extra, cuda_like, monkeypatch):
    """On CUDA the package trains under bf16 autocast (device.autocast_context). CPU autocast mixes dtypes in the
    same places (bf16 matmul outputs into float32 parameters), so the kernels' dtype handling is tested here,
    without a GPU: 5 steps agree with fused=False under the same autocast, and every parameter stays float32.
    cuda-path: the kernels take the branches they take on CUDA (no reused float32 buffer, no C top-k), where the
    pre-activations come out of autocast in bf16."""
    from switch_sae_mini.saes import kernels
    from switch_sae_mini.training.step import make_optimizer, training_step

    if cuda_like:
        monkeypatch.setattr(kernels, "_pre_activation_buffer", lambda rows, cols, like: None)
        monkeypatch.setattr(kernels, "native_topk_accepts", lambda x, k: False)

    batches = [torch.randn(128, 16, generator=torch.Generator().manual_seed(i)) for i in range(5)]
    results = {}
    for fused in (True, False):
        torch.manual_seed(0)
        sae = make_sae(SAEConfig(arch=arch, d_in=16, d_sae=256, k=4, fused=fused, **extra))
        train_cfg = TrainConfig(n_steps=100)
        base_lr = train_cfg.learning_rate(sae.cfg.d_sae)
        optimizer = make_optimizer(sae, base_lr)
        losses = []
        for step, x in enumerate(batches):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = training_step(sae, x, optimizer, train_cfg, step, base_lr)
            losses.append(out.loss.item())
        for name, param in sae.named_parameters():
            assert param.dtype == torch.float32 and torch.isfinite(param).all(), name
        results[fused] = losses, sae
    torch.testing.assert_close(torch.tensor(results[True][0]), torch.tensor(results[False][0]), rtol=3e-2, atol=3e-2)
    # bf16 rounding can flip which of two near-equal latents is selected: compare the whole decoder, not each entry
    fused_W, plain_W = results[True][1].W_dec.detach(), results[False][1].W_dec.detach()
    assert (fused_W - plain_W).norm() / plain_W.norm() < 1e-2
