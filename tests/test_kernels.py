"""The sparse-gradient kernels equal plain autograd: values and every gradient (kernels.py)."""

import pytest
import torch

from switch_sae_mini import SAEConfig, TrainConfig, make_sae, train
from switch_sae_mini.saes import kernels
from switch_sae_mini.saes import auxk_error, auxk_loss, sparse_decode, topk_activation
from switch_sae_mini.data.toy import ToyData

TOY = ToyData(d_in=16, n_features=64, active=3, n_groups=4, seed=0)


def dense_from_sparse(indices, weights, n_out):
    return torch.zeros(indices.shape[0], n_out, dtype=weights.dtype).scatter_add(1, indices, weights)


@pytest.mark.parametrize("batch, k, n_out", [(37, 5, 50), (8, 1, 300), (64, 16, 16)])
def test_sparse_transpose_matmul_equals_the_dense_product(batch, k, n_out):
    gen = torch.Generator().manual_seed(batch)
    indices = torch.stack([torch.randperm(n_out, generator=gen)[:k] for _ in range(batch)])
    weights, rows = torch.randn(batch, k, generator=gen), torch.randn(batch, 7, generator=gen)
    expected = dense_from_sparse(indices, weights, n_out).T @ rows
    got = kernels.sparse_transpose_matmul(indices, weights, rows, n_out)
    assert got.shape == (n_out, 7) and got.is_contiguous()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_sparse_transpose_matmul_sums_repeated_latents():
    # AuxK's dead latents can also be in the main TopK of the same token: both entries must count
    indices = torch.tensor([[3, 3, 1], [0, 3, 3]])
    weights = torch.tensor([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    rows = torch.tensor([[1.0], [10.0]])
    got = kernels.sparse_transpose_matmul(indices, weights, rows, 5)
    assert got.squeeze(1).tolist() == [80.0, 4.0, 0.0, 3.0 + 480.0, 0.0]


def test_the_reused_sort_follows_in_place_changes_and_other_tensors():
    gen = torch.Generator().manual_seed(1)
    indices = torch.stack([torch.randperm(40, generator=gen)[:4] for _ in range(9)])
    weights, rows = torch.randn(9, 4, generator=gen), torch.randn(9, 3, generator=gen)

    def check(idx, n_out=40, n=9):
        got = kernels.sparse_transpose_matmul(idx, weights[:n], rows[:n], n_out)
        expected = dense_from_sparse(idx, weights[:n], n_out).T @ rows[:n]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

    check(indices)
    check(indices)  # the second call reuses the sort: same result
    indices[0, 0] = min(set(range(40)) - set(indices[0].tolist()))  # changed in place: sorted again
    check(indices)
    check(indices.clone())  # another tensor with equal values
    check(indices, n_out=45)  # another output size
    check(indices[:5], n=5)  # a view at the same address with another shape
    kernels.release_workspace()
    check(indices)


def plain_topk_encode(x, b_dec, W_enc, b_enc, k, dead_mask=None, k_aux=0):
    pre = (x - b_dec) @ W_enc + (b_enc if b_enc is not None else 0)
    values, indices = topk_activation(pre, k)
    if dead_mask is None or not dead_mask.any():
        return values, indices, None, None
    masked = torch.where(dead_mask, pre, torch.full_like(pre, -torch.inf))
    aux_values, aux_indices = masked.topk(min(k_aux, int(dead_mask.sum())), dim=-1, sorted=False)
    return values, indices, torch.relu(aux_values), aux_indices


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]


@pytest.mark.parametrize("with_b_enc", [True, False])
@pytest.mark.parametrize("with_dead", [False, True])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_topk_encode_matches_plain_autograd(with_b_enc, with_dead, shift):
    """shift > 0 moves b_dec so most pre-activations are negative: some TopK values are ReLU'd to 0 and must get
    no gradient."""
    gen = torch.Generator().manual_seed(1)
    d_in, d_sae, k, batch = 12, 40, 4, 33
    x, b_dec = torch.randn(batch, d_in, generator=gen), torch.randn(d_in, generator=gen)
    W_enc = torch.randn(d_in, d_sae, generator=gen)
    if shift:  # columns with a common positive direction, input pushed against it
        W_enc = 0.5 * W_enc + 1.0
        b_dec = b_dec + shift
    b_enc = torch.randn(d_sae, generator=gen)
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[::3] = with_dead
    weight = torch.randn(batch, d_sae, generator=gen), torch.randn(batch, d_sae, generator=gen)

    def loss(fn, x, b_dec, W_enc, b_enc):
        values, indices, aux_values, aux_indices = fn(x, b_dec, W_enc, b_enc if with_b_enc else None, k, dead, 6)
        # a function of the (latent, value) pairs only, not of their order inside the k slots
        total = (values * weight[0].gather(1, indices)).sum()
        if aux_values is not None and aux_values.numel():
            total = total + (aux_values * weight[1].gather(1, aux_indices)).sum()
        return total, values, indices

    fused_in, plain_in = leaves(x, b_dec, W_enc, b_enc), leaves(x, b_dec, W_enc, b_enc)
    fused, fv, fi = loss(kernels.topk_encode, *fused_in)
    plain, pv, pi = loss(plain_topk_encode, *plain_in)
    if shift:
        assert (fv == 0).any() and (fv > 0).any()  # the case this parameter exists for
    else:
        assert torch.equal(fi.sort(1).values, pi.sort(1).values)  # with zeros, which zero is kept may differ
    torch.testing.assert_close(fv.sort(1).values, pv.sort(1).values)
    torch.testing.assert_close(fused, plain)
    fused.backward()
    plain.backward()
    for name, a, b in zip(("x", "b_dec", "W_enc", "b_enc"), fused_in, plain_in):
        if name == "b_enc" and not with_b_enc:
            assert a.grad is None
            continue
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5, msg=name)


def test_topk_encode_passes_gradcheck_in_float64():
    gen = torch.Generator().manual_seed(2)
    inputs = [torch.randn(6, 5, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64),
              torch.randn(5, 20, generator=gen, dtype=torch.float64), torch.randn(20, generator=gen, dtype=torch.float64)]
    inputs = [t.requires_grad_() for t in inputs]
    dead = torch.arange(20) % 2 == 0

    def fn(x, b_dec, W_enc, b_enc):
        out = kernels.topk_encode(x, b_dec, W_enc, b_enc, 3, dead, 4)
        return out.values, out.aux_values

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_sparse_decode_matches_embedding_bag_autograd():
    gen = torch.Generator().manual_seed(3)
    values = torch.rand(21, 4, generator=gen)
    indices = torch.stack([torch.randperm(30, generator=gen)[:4] for _ in range(21)])
    W_dec = torch.randn(30, 9, generator=gen)
    grad_out = torch.randn(21, 9, generator=gen)
    (v1, W1), (v2, W2) = leaves(values, W_dec), leaves(values, W_dec)
    kernels.sparse_decode(v1, indices, W1).backward(grad_out)
    sparse_decode(v2, indices, W2).backward(grad_out)
    torch.testing.assert_close(v1.grad, v2.grad)
    torch.testing.assert_close(W1.grad, W2.grad)
    assert W1.grad.is_contiguous()


@pytest.mark.parametrize("padded_limit", [0.0, 100.0], ids=["per-expert loop", "padded batched matmul"])
def test_routed_topk_encode_matches_a_per_token_loop_and_handles_empty_experts(padded_limit, monkeypatch):
    monkeypatch.setattr(kernels, "PADDED_LIMIT", padded_limit)  # both forms, whatever the routing's balance
    gen = torch.Generator().manual_seed(4)
    d_in, n_experts, d_expert, k, batch = 6, 4, 10, 3, 15
    x, b_dec = torch.randn(batch, d_in, generator=gen), torch.randn(d_in, generator=gen)
    W_enc = 0.5 * torch.randn(d_in, n_experts * d_expert, generator=gen) + 1.0
    b_dec = b_dec + 0.3  # many pre-activations negative: some TopK values are ReLU'd to 0 (no gradient)
    expert_idx = torch.tensor([0, 2, 2, 0] * 3 + [2, 0, 0])  # experts 1 and 3 get no tokens
    weight = torch.randn(batch, n_experts * d_expert, generator=gen)
    (x1, b1, W1), (x2, b2, W2) = leaves(x, b_dec, W_enc), leaves(x, b_dec, W_enc)
    values, indices = kernels.routed_topk_encode(x1, b1, W1, expert_idx, n_experts, k)
    loop_values, loop_indices = [], []
    for b in range(batch):
        e = int(expert_idx[b])
        v, i = topk_activation((x2[b] - b2) @ W2[:, e * d_expert:(e + 1) * d_expert], k)
        loop_values.append(v)
        loop_indices.append(i + e * d_expert)
    loop_values, loop_indices = torch.stack(loop_values), torch.stack(loop_indices)
    assert ((indices // d_expert) == expert_idx[:, None]).all()
    assert (values == 0).any() and (values > 0).any()
    n_latents = n_experts * d_expert
    torch.testing.assert_close(dense_from_sparse(indices, values.detach(), n_latents),
                               dense_from_sparse(loop_indices, loop_values.detach(), n_latents))
    (values * weight.gather(1, indices)).sum().backward()  # order-independent, like the TopK test
    (loop_values * weight.gather(1, loop_indices)).sum().backward()
    for a, b in ((x1, x2), (b1, b2), (W1, W2)):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch, extra", [("topk", {}), ("switch", {}), ("switch", {"gate": "heaviside"}),
                                         ("topk", {"auxk_coeff": 0.5})])
def test_fused_sae_equals_plain_sae_values_and_all_gradients(arch, extra):
    cfg = SAEConfig(arch=arch, d_in=16, d_sae=64, k=4, n_experts=4 if arch == "switch" else 1,
                    dead_after_tokens=5, **extra)
    torch.manual_seed(0)
    fused = make_sae(cfg)
    plain = make_sae(cfg.replace(fused=False))
    plain.load_state_dict(fused.state_dict())
    for sae in (fused, plain):
        sae.train()
        sae.tokens_since_fired[:24] = 100  # a third of the latents dead: AuxK is active for TopK
    x = TOY.sample(48, torch.Generator().manual_seed(0))[0].reshape(4, 12, 16)  # leading dimensions are kept
    out_f, out_p = fused(x), plain(x)
    torch.testing.assert_close(out_f.x_hat, out_p.x_hat)
    torch.testing.assert_close(out_f.latents, out_p.latents)
    torch.testing.assert_close(out_f.loss, out_p.loss)
    if arch == "topk":
        assert float(out_f.auxk_loss.detach()) > 0
        torch.testing.assert_close(out_f.auxk_loss, out_p.auxk_loss)
    out_f.loss.backward()
    out_p.loss.backward()
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_auxk_in_the_fused_encoder_equals_the_plain_auxk_loss():
    torch.manual_seed(5)
    sae = make_sae(SAEConfig(arch="topk", d_in=16, d_sae=64, k=4, auxk_k=6))
    x = TOY.sample(20, torch.Generator().manual_seed(1))[0]
    dead = torch.arange(64) % 4 == 1
    enc = kernels.topk_encode(x, sae.b_dec, sae.W_enc, sae.b_enc, 4, dead, 6)
    x_hat = kernels.sparse_decode(enc.values, enc.indices, sae.W_dec) + sae.b_dec
    fused_aux = auxk_error(kernels.sparse_decode(enc.aux_values, enc.aux_indices, sae.W_dec), x - x_hat, x)
    plain_aux = auxk_loss(sae.pre_activations(x), dead, x - x_hat, sae.W_dec, 6, x)
    torch.testing.assert_close(fused_aux, plain_aux)
    assert set(enc.aux_indices.unique().tolist()) <= set(torch.nonzero(dead).squeeze(1).tolist())


@pytest.mark.parametrize("arch", ["topk", "switch"])
def test_training_with_kernels_follows_plain_training(arch):
    cfg = SAEConfig(arch=arch, d_in=16, d_sae=64, k=4, n_experts=4 if arch == "switch" else 1)
    tcfg = TrainConfig(n_steps=15, lr=2e-3, log_every=5)
    data = list(TOY.batches(64, 15))
    fused = train(cfg, data, tcfg, progress=False)
    plain = train(cfg.replace(fused=False), data, tcfg, progress=False)
    for (name, p), q in zip(fused.sae.named_parameters(), plain.sae.parameters()):
        torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-4, msg=name)
    assert fused.final["fvu"] == pytest.approx(plain.final["fvu"], rel=1e-3)


def test_workspace_is_reused_and_releasable():
    x, W_enc = torch.randn(8, 4), torch.randn(4, 10)
    kernels.topk_encode(x, torch.zeros(4), W_enc, None, 2)
    first = kernels._workspace.pre
    kernels.topk_encode(x + 1, torch.zeros(4), W_enc, None, 2)
    assert kernels._workspace.pre is first  # same shape: no new allocation
    out = kernels.topk_encode(torch.randn(3, 4), torch.zeros(4), W_enc, None, 2)  # new shape still correct
    assert out.values.shape == (3, 2)
    kernels.release_workspace()
    assert kernels._workspace.pre is None


def test_fused_flag_is_validated_and_saved():
    with pytest.raises(Exception, match="fused must be a bool"):
        SAEConfig(fused="yes")
    assert SAEConfig.from_dict(SAEConfig(fused=False).to_dict()).fused is False


def test_fallback_without_sparse_support_gives_the_same_product(monkeypatch):
    gen = torch.Generator().manual_seed(6)
    indices = torch.stack([torch.randperm(30, generator=gen)[:4] for _ in range(9)])
    weights, rows = torch.randn(9, 4, generator=gen), torch.randn(9, 5, generator=gen)
    csr = kernels.sparse_transpose_matmul(indices, weights, rows, 30)
    monkeypatch.setattr(kernels, "_sparse_ok", lambda t: False)  # as on a device without CSR products
    torch.testing.assert_close(kernels.sparse_transpose_matmul(indices, weights, rows, 30), csr)
