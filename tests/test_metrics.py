import pytest
import torch

from switch_sae_mini import make_sae, metrics

from conftest import tiny_cfg


def test_fvu_and_mse_definitions():
    x = torch.randn(100, 8) + 3
    assert metrics.fvu(x, x) == 0.0
    assert metrics.fvu(x.mean(0, keepdim=True).expand_as(x), x) == pytest.approx(1.0, rel=1e-5)
    x_hat = x + 0.5
    assert metrics.mse_summed(x_hat, x) == pytest.approx(8 * 0.25, rel=1e-5)  # summed over dims


def test_fire_counts_and_dense_fraction():
    sae = make_sae(tiny_cfg("topk"))
    out = sae(torch.randn(40, 16))
    counts = metrics.fire_counts(out)
    assert counts.sum() == int((out.latents != 0).sum())
    torch.testing.assert_close(counts, (out.latents != 0).sum(0))
    assert metrics.dense_fraction(torch.tensor([50, 5, 0, 11]), 100) == 0.5


def test_expert_share_and_balance():
    share = metrics.expert_share(torch.tensor([0, 0, 1, 3]), 4)
    torch.testing.assert_close(share, torch.tensor([0.5, 0.25, 0.0, 0.25]))
    assert metrics.balance(share) == 2.0
    assert metrics.balance(torch.full((8,), 1 / 8)) == pytest.approx(1.0)


def test_evaluate_sae_weights_tokens_and_restores_mode():
    sae = make_sae(tiny_cfg("switch"))
    sae.train()
    batches = [torch.randn(10, 16), torch.randn(30, 16)]
    result = metrics.evaluate_sae(sae, batches)
    assert sae.training
    x = torch.cat(batches)
    out = sae(x)
    assert result["n_tokens"] == 40
    assert result["fvu"] == pytest.approx(metrics.fvu(out.x_hat, x), rel=1e-4)
    assert result["mse_summed"] == pytest.approx(metrics.mse_summed(out.x_hat, x), rel=1e-4)
    assert 1.0 <= result["expert_balance"] <= 4.0
    with pytest.raises(ValueError, match="no batches"):
        metrics.evaluate_sae(sae, [])
