import pytest
import torch

from switch_sae_mini import InputError, SAEConfig, make_sae
from switch_sae_mini.saes import auxk_loss, geometric_median, sparse_decode, topk_activation

from conftest import tiny_cfg


@pytest.mark.parametrize("arch", ["relu", "topk", "switch"])
def test_saelens_interface_shapes(arch):
    cfg = tiny_cfg(arch)
    sae = make_sae(cfg)
    assert sae.W_enc.shape == (16, 64) and sae.W_dec.shape == (64, 16)
    assert sae.b_enc.shape == (64,) and sae.b_dec.shape == (16,)
    x = torch.randn(10, 16)
    out = sae(x)
    assert out.x_hat.shape == x.shape
    assert out.latents.shape == (10, 64)
    # decode(encode(x)) is the forward reconstruction
    torch.testing.assert_close(sae.decode(sae.encode(x)), out.x_hat, atol=1e-5, rtol=1e-5)
    # leading batch dimensions are kept
    assert sae(torch.randn(2, 3, 16)).x_hat.shape == (2, 3, 16)


@pytest.mark.parametrize("arch", ["topk", "switch"])
def test_topk_has_at_most_k_active(arch):
    sae = make_sae(tiny_cfg(arch))
    latents = sae.encode(torch.randn(50, 16))
    assert int((latents != 0).sum(-1).max()) <= 4
    assert int((latents != 0).sum(-1).min()) >= 1


def test_topk_activation_matches_sorting():
    pre = torch.tensor([[0.1, -2.0, 3.0, 0.5, 2.0]])
    values, indices = topk_activation(pre, 2)
    assert sorted(indices[0].tolist()) == [2, 4]
    assert sorted(values[0].tolist()) == [2.0, 3.0]
    # ReLU before TopK: negative pre-activations never appear as negative latents
    values, _ = topk_activation(torch.tensor([[-1.0, -2.0, 0.5]]), 2)
    assert (values >= 0).all() and sorted(values[0].tolist()) == [0.0, 0.5]


def test_sparse_decode_equals_dense_product():
    W = torch.randn(20, 6)
    values, indices = torch.rand(7, 3), torch.randint(20, (7, 3))
    dense = torch.zeros(7, 20).scatter_add(-1, indices, values)
    torch.testing.assert_close(sparse_decode(values, indices, W), dense @ W)


def _hand_topk_sae(b_dec=(0.0, 0.0)):
    cfg = SAEConfig(arch="topk", d_in=2, d_sae=4, k=1, auxk_k=1, dead_after_tokens=5)
    sae = make_sae(cfg)
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]])
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(rows.T)
        sae.b_enc.zero_()
        sae.b_dec.copy_(torch.tensor(b_dec))
        sae.tokens_since_fired.copy_(torch.tensor([0, 0, 100, 100]))  # latents 2 and 3 are dead
    return sae


def test_auxk_value_computed_by_hand():
    """x = (3, 1): pre = (3, 1, 2.6, 1.8); TopK-1 picks latent 0 -> x_hat = (3, 0); residual e = (0, 1).
    AuxK-1 over dead {2, 3} picks latent 2 (2.6): e_hat = 2.6 * (0.6, 0.8) = (1.56, 2.08), no b_dec.
    Gao's NMSE = ||e_hat - e||^2 / ||e||^2 = (1.56^2 + 1.08^2) / 1 = 3.6; times mean(x^2) = (9 + 1) / 2 = 5 -> 18.0.
    (The reference code's variant targets x_hat - x = (0, -1): (1.56^2 + 3.08^2) * 5 = 59.6.)"""
    sae = _hand_topk_sae()
    sae.train()
    out = sae(torch.tensor([[3.0, 1.0]]))
    torch.testing.assert_close(out.x_hat, torch.tensor([[3.0, 0.0]]))
    assert out.auxk_loss.item() == pytest.approx(18.0, abs=1e-4)
    assert out.loss.item() == pytest.approx(out.mse_loss.item() + 18.0 / 32, abs=1e-5)


def test_auxk_excludes_b_dec_and_is_zero_without_dead_latents():
    sae = _hand_topk_sae(b_dec=(0.5, -0.5))
    x = torch.tensor([[3.0, 1.0]])
    out = sae(x)
    pre = sae.pre_activations(x)
    residual = x - out.x_hat
    e_hat = torch.relu(pre[0, 2]) * sae.W_dec[2]  # latent 2 wins among the dead again
    expected = (e_hat - residual[0]).pow(2).sum() / residual[0].pow(2).sum() * x.pow(2).mean()
    assert out.auxk_loss.item() == pytest.approx(expected.item(), abs=1e-5)
    with torch.no_grad():
        sae.tokens_since_fired.zero_()
    assert sae(x).auxk_loss.item() == 0.0
    # AuxK only trains the dead latents: no gradient reaches the residual (it is detached)
    pre = torch.randn(3, 4, requires_grad=True)
    residual = torch.randn(3, 2, requires_grad=True)
    auxk_loss(pre, torch.tensor([False, True, True, False]), residual, torch.randn(4, 2), 2, torch.randn(3, 2)).backward()
    assert residual.grad is None and pre.grad[:, [0, 3]].abs().sum() == 0


def test_relu_l1_is_decoder_norm_weighted():
    sae = make_sae(tiny_cfg("relu", l1_coeff=2.0))
    x = torch.randn(8, 16)
    out = sae(x)
    latents = torch.relu(x @ sae.W_enc + sae.b_enc)
    expected_l1 = (latents * sae.W_dec.norm(dim=-1)).sum(-1).mean() / 16
    assert out.l1_loss.item() == pytest.approx(expected_l1.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(out.mse_loss.item() + 2.0 * expected_l1.item(), rel=1e-5)
    assert sae(x, l1_scale=0.0).loss.item() == pytest.approx(out.mse_loss.item(), rel=1e-6)


def test_geometric_median_is_robust_to_outliers():
    points = torch.cat([torch.randn(99, 3) * 0.01 + 1.0, torch.full((1, 3), 1000.0)])
    median = geometric_median(points)
    assert (median - 1.0).abs().max() < 0.05  # the mean would be ~11
    assert (points.mean(0) - 1.0).abs().max() > 5


def test_decoder_projection_keeps_rows_unit_norm():
    sae = make_sae(tiny_cfg("topk"))
    sae.normalize_decoder()
    sae(torch.randn(32, 16)).loss.backward()
    sae.project_decoder_grad()
    # the projected gradient is orthogonal to each row
    assert (sae.W_dec.grad * sae.W_dec).sum(-1).abs().max() < 1e-6
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(64))


@pytest.mark.parametrize("arch", ["relu", "topk", "switch"])
def test_bad_activations_raise_clear_errors(arch):
    sae = make_sae(tiny_cfg(arch))
    with pytest.raises(InputError, match="d_in=16"):
        sae(torch.randn(4, 15))
    with pytest.raises(InputError, match="empty"):
        sae(torch.randn(0, 16))
    with pytest.raises(InputError, match="floating point"):
        sae(torch.ones(4, 16, dtype=torch.long))


def test_make_sae_rejects_non_config():
    with pytest.raises(TypeError, match="SAEConfig"):
        make_sae({"arch": "topk"})
