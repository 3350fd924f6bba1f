"""The Switch variants (docs/design-notes.md §12): an always-on shared expert and top-e routing.

The routed kernels and the plain routed path equal the masked-dense reference and a per-token loop written from
the formula; shared_expert=0 and router_top_e=1 are the Switch SAE itself; FLOP ledger, matched builders,
checkpoints, training and the refusals of the explorer and expert parallelism.
"""

import pytest
import torch

import switch_sae_mini as ssm
from switch_sae_mini import SAEConfig, TrainConfig, make_sae, train
from switch_sae_mini.config import ConfigError
from switch_sae_mini.data.toy import ToyData
from switch_sae_mini.flops import flop_matched, forward_flops, param_counts, width_matched
from switch_sae_mini.saes import kernels
from switch_sae_mini.saes.routing import load_balance_loss
from switch_sae_mini.training.expert_parallel import ExpertShard

D_IN = 16
VARIANTS = {  # name: SAEConfig overrides on a Switch SAE with 4 routed experts of 64 latents
    "shared": dict(shared_expert=32, k_shared=3),
    "top2": dict(router_top_e=2),
    "top3_k_above_expert": dict(router_top_e=3, k=70),  # k > d_expert: the TopK spans the experts
    "top2_shared_heaviside": dict(router_top_e=2, shared_expert=16, k_shared=5, gate="heaviside"),
}


def variant_cfg(**overrides) -> SAEConfig:
    base = dict(arch="switch", d_in=D_IN, k=6, n_experts=4)
    base.update(overrides)
    base["d_sae"] = 4 * 64 + base.get("shared_expert", 0)
    return SAEConfig(**base)


def run(cfg: SAEConfig, routed: bool, x: torch.Tensor):
    """Latents, x_hat, loss and every parameter's gradient from a fixed init."""
    torch.manual_seed(1)
    sae = make_sae(cfg)
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_router.normal_()
    out = sae(x, routed=routed)
    (out.loss + out.x_hat.pow(3).mean()).backward()  # a loss that weights every output differently
    return out, {n: p.grad.clone() for n, p in sae.named_parameters()}, sae


def per_token_reference(sae, x: torch.Tensor) -> torch.Tensor:
    """Dense latents from the formula, token by token: the e most probable experts' ReLU pre-activations, each
    scaled by its gate, one TopK of k over them; the shared expert's own TopK of k_shared, unscaled."""
    cfg = sae.cfg
    out = torch.zeros(x.shape[0], cfg.d_sae)
    for b in range(x.shape[0]):
        x_c = x[b] - sae.b_dec
        probs = torch.softmax((x[b] - sae.b_router) @ sae.W_router, dim=-1)
        candidates = torch.zeros(cfg.d_routed)
        for e in probs.argsort(descending=True)[:cfg.router_top_e].tolist():
            block = slice(e * cfg.d_expert, (e + 1) * cfg.d_expert)
            gate = 1.0 if cfg.gate == "heaviside" else probs[e]
            candidates[block] = torch.relu(x_c @ sae.W_enc[:, block]) * gate
        top = candidates.topk(cfg.k)
        out[b, top.indices] = top.values
        if cfg.shared_expert:
            shared = torch.relu(x_c @ sae.W_enc[:, cfg.d_routed:]).topk(cfg.k_shared)
            out[b, cfg.d_routed + shared.indices] = shared.values
    return out


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "loop"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_routed_paths_equal_the_masked_reference_and_the_formula(name, padded, monkeypatch):
    if not padded:  # the per-expert loop that unbalanced routing takes
        monkeypatch.setattr(kernels, "PADDED_LIMIT", 0.0)
    cfg = variant_cfg(**VARIANTS[name])
    x = torch.randn(48, D_IN, generator=torch.Generator().manual_seed(0))
    ref, ref_grads, ref_sae = run(cfg.replace(fused=False), False, x)
    with torch.no_grad():
        torch.testing.assert_close(ref.latents, per_token_reference(ref_sae, x), atol=1e-6, rtol=1e-5)
    assert ref.latent_acts.shape[-1] == cfg.l0
    assert (ref.latent_acts > 0).sum(-1).max() <= cfg.l0
    for fused in (True, False):
        out, grads, _ = run(cfg.replace(fused=fused), True, x)
        torch.testing.assert_close(out.latents, ref.latents, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out.x_hat, ref.x_hat, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out.loss, ref.loss)
        assert grads.keys() == ref_grads.keys()
        for param, grad in grads.items():
            torch.testing.assert_close(grad, ref_grads[param], atol=1e-5, rtol=1e-4, msg=lambda m: f"{param}: {m}")


def test_top_e_shapes_and_the_load_balance_count_every_choice():
    cfg = variant_cfg(router_top_e=2)
    out = make_sae(cfg)(torch.randn(5, 3, D_IN))
    assert out.expert_idx.shape == (5, 3, 2) and out.latent_acts.shape == (5, 3, cfg.k)
    assert (out.expert_idx[..., 0] != out.expert_idx[..., 1]).all()  # two distinct experts per token
    uniform = torch.full((8, 4), 0.25)
    assert float(load_balance_loss(uniform, torch.randint(0, 4, (8, 2)), 4)) == pytest.approx(1.0)
    # all choices on expert 0 while the router prefers it: the loss moves towards E
    skewed = torch.tensor([[0.7, 0.1, 0.1, 0.1]]).repeat(8, 1)
    assert float(load_balance_loss(skewed, torch.zeros(8, 2, dtype=torch.long), 4)) == pytest.approx(2.8)


def test_without_the_variants_it_is_the_switch_sae_bit_for_bit():
    """A shared expert whose decoder rows are zero reconstructs exactly what the plain Switch SAE with the same
    routed weights reconstructs; top-e=1 routes by argmax with the probability as gate."""
    torch.manual_seed(0)
    plain = make_sae(variant_cfg())
    shared = make_sae(variant_cfg(shared_expert=32, k_shared=4))
    with torch.no_grad():
        for name in ("W_router", "b_router", "b_dec"):
            getattr(shared, name).copy_(getattr(plain, name))
        shared.W_enc[:, :256].copy_(plain.W_enc)
        shared.W_dec[:256].copy_(plain.W_dec)
        shared.W_dec[256:].zero_()
    x = torch.randn(40, D_IN)
    a, b = plain(x), shared(x)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.loss, b.loss)
    assert torch.equal(a.latent_idx, b.latent_idx[:, :plain.cfg.k])
    assert (b.latent_idx[:, plain.cfg.k:] >= 256).all()
    probs = a.router_probs
    assert torch.equal(a.expert_idx, probs.argmax(-1))
    # the gate is the routed probability: a token's values are its expert's TopK times that probability
    gate = probs.gather(1, a.expert_idx[:, None])
    x_c = x - plain.b_dec
    with torch.no_grad():
        for t in range(3):
            block = slice(int(a.expert_idx[t]) * 64, int(a.expert_idx[t]) * 64 + 64)
            expected = torch.relu(x_c[t] @ plain.W_enc[:, block]).topk(plain.cfg.k).values * gate[t]
            torch.testing.assert_close(a.latent_acts[t].sort().values, expected.sort().values)


@pytest.mark.parametrize("bad, field", [
    (dict(shared_expert=32), "k_shared"),  # a shared expert needs its own k
    (dict(k_shared=2), "k_shared"),  # and k_shared needs a shared expert
    (dict(shared_expert=32, k_shared=40), "k_shared"),
    (dict(router_top_e=5), "router_top_e"),
    (dict(router_top_e=0), "router_top_e"),
    (dict(shared_expert=-1), "shared_expert"),
])
def test_bad_variant_fields_are_named(bad, field):
    with pytest.raises(ConfigError, match=f"SAEConfig.{field}"):
        variant_cfg(**bad)


def test_variants_are_for_switch_only_and_the_split_counts_the_shared_expert():
    with pytest.raises(ConfigError, match="router_top_e is for arch='switch' only"):
        SAEConfig(arch="topk", d_in=D_IN, d_sae=64, k=4, router_top_e=2)
    with pytest.raises(ConfigError, match=r"d_sae \(100\) - shared_expert \(30\) = 70 must be divisible"):
        SAEConfig(arch="switch", d_in=D_IN, d_sae=100, k=4, n_experts=4, shared_expert=30, k_shared=2)
    cfg = variant_cfg(shared_expert=32, k_shared=3)
    assert (cfg.d_expert, cfg.d_routed, cfg.l0) == (64, 256, 9)


def test_the_ledger_and_the_matched_builders_count_the_variants():
    topk = SAEConfig(arch="topk", d_in=768, d_sae=24576, k=32)
    top2 = flop_matched(topk, 8, router_top_e=2)
    assert (top2.d_expert, top2.d_sae, top2.k) == (12288, 98304, 32)
    shared = flop_matched(topk, 8, shared_expert=8192, k_shared=8)
    assert (shared.d_expert, shared.d_sae, shared.k, shared.l0) == (16384, 8 * 16384 + 8192, 24, 32)
    for cfg in (top2, shared, flop_matched(topk, 8)):  # the encoder and decoder FLOPs stay the TopK's
        f, t = forward_flops(cfg), forward_flops(topk)
        assert (f["encoder"], f["decoder"], f["router"]) == (t["encoder"], t["decoder"], 2 * 768 * 8)
    wm = width_matched(topk, 16, router_top_e=2, shared_expert=4096, k_shared=4)
    assert (wm.d_sae, wm.d_expert, wm.k, wm.l0) == (24576, 1280, 28, 32)
    assert forward_flops(wm)["encoder"] == 2 * 768 * (2 * 1280 + 4096)
    assert param_counts(wm)["W_enc"] == param_counts(topk)["W_enc"]
    assert " e " in ssm.flops.ledger_table({"TopK": topk, "top-2": top2}).splitlines()[1] + " "
    with pytest.raises(ConfigError, match="k_shared"):
        flop_matched(topk, 8, shared_expert=8192, k_shared=32)
    with pytest.raises(ConfigError, match="router_top_e"):
        flop_matched(topk, 8, router_top_e=5)


@pytest.mark.parametrize("name", ["shared", "top2"])
def test_variants_train_save_and_load(name, tmp_path):
    cfg = variant_cfg(**VARIANTS[name], dead_after_tokens=2000)
    data = ToyData(d_in=D_IN, n_features=64, active=3, n_groups=4, seed=0)
    held_out = next(iter(ToyData(d_in=D_IN, n_features=64, active=3, n_groups=4, seed=0).batches(512)))
    torch.manual_seed(0)
    sae = make_sae(cfg)
    sae.init_from_batch(held_out)
    before = float(sae(held_out).mse_loss.detach())
    result = train(sae, data.batches(128), TrainConfig(n_steps=80, log_every=20, lr=3e-3), progress=False)
    after = float(result.sae(held_out).mse_loss.detach())
    assert after < 0.5 * before, (before, after)
    assert result.final["l0"] <= cfg.l0
    ssm.save(result.sae, tmp_path / "sae")
    loaded = ssm.load(tmp_path / "sae")
    assert loaded.cfg == cfg
    x = torch.randn(32, D_IN)
    assert torch.equal(loaded(x).x_hat, result.sae(x).x_hat)


def test_a_config_saved_before_the_variants_loads_as_plain_switch():
    old = variant_cfg().to_dict()
    for name in ("shared_expert", "k_shared", "router_top_e"):
        del old[name]
    cfg = SAEConfig.from_dict(old)
    assert cfg.is_plain_switch and cfg == variant_cfg()


def test_expert_parallelism_and_the_explorer_refuse_the_variants():
    for overrides in VARIANTS.values():
        sae = make_sae(variant_cfg(**overrides))
        with pytest.raises(ConfigError, match="--mode ddp"):
            ExpertShard(sae, rank=0, world_size=2)
    from switch_sae_mini.analysis.explorer.data import ExplorerData
    model = ssm.load_model()
    sae = make_sae(SAEConfig(arch="switch", d_in=model.cfg.d_model, d_sae=80, k=4, n_experts=4, shared_expert=16,
                             k_shared=2))
    with pytest.raises(ssm.errors.ArgumentError, match="shared_expert=16"):
        ExplorerData.build(model, {"shared": sae}, n_tokens=64, progress=False)


# ----------------------------------------------------------------------------- chapter 07's measures


def hand_codes(token_id):
    """4 tokens, 2 routed experts of 4 latents (0-3, 4-7) and a shared expert (8, 9); one routed + one shared each."""
    from switch_sae_mini.analysis import Encoded
    return Encoded(latent_acts=torch.tensor([[1.0, 3.0], [1.0, 3.0], [1.0, 3.0], [2.0, 1.0]]),
                   latent_idx=torch.tensor([[0, 8], [1, 8], [4, 8], [5, 9]]),
                   expert_idx=torch.tensor([0, 0, 1, 1]), router_prob=torch.ones(4)), torch.tensor(token_id)


def test_shared_expert_use_by_hand():
    from switch_sae_mini.analysis import shared_expert_use, shared_expert_verdict
    codes, tokens = hand_codes([5, 5, 5, 7])  # token 5 is the one common token
    use = shared_expert_use(codes, d_sae=10, shared_expert=2, n_experts=2, token_id=tokens, common_tokens=1,
                            dense_rate=0.6)
    assert use.shared_mass == pytest.approx(10 / 15)
    assert use.shared_dense == 0.5  # latent 8 fires on 3/4 of tokens, latent 9 on 1/4
    assert use.routed_dense == 0.0  # routed latents fire on at most 1 of their expert's 2 tokens
    assert use.common_token_share == pytest.approx(0.75)
    assert use.shared_common_share == pytest.approx(9 / 10)
    assert use.routed_common_share == pytest.approx(3 / 5)
    assert "it does hold dense, common-token features" in shared_expert_verdict(use)
    # a lower bar makes half the routed latents dense too (each fires on 1 of its expert's 2 tokens)
    lower = shared_expert_use(codes, d_sae=10, shared_expert=2, n_experts=2, token_id=tokens, common_tokens=1,
                              dense_rate=0.4)
    assert (lower.shared_dense, lower.routed_dense) == (0.5, 0.5)
    assert "mass leans to common tokens, but its latents are not denser" in shared_expert_verdict(lower)
    # the common token (7) now carries more of the routed mass than of the shared mass
    codes, tokens = hand_codes([7, 2, 7, 7])
    use = shared_expert_use(codes, d_sae=10, shared_expert=2, n_experts=2, token_id=tokens, common_tokens=1,
                            dense_rate=0.6)
    assert use.shared_common_share == pytest.approx(7 / 10) and use.routed_common_share == pytest.approx(4 / 5)
    assert "denser, but its mass does not lean" in shared_expert_verdict(use)
    use = use._replace(shared_dense=0.0)
    assert "not a store of dense or common-token features" in shared_expert_verdict(use)
    # top-e codes: every choice counts towards the tokens an expert sees
    top2 = codes._replace(expert_idx=torch.tensor([[0, 1], [0, 1], [1, 0], [1, 0]]))
    assert shared_expert_use(top2, 10, 2, 2, tokens, 1, dense_rate=0.2).routed_dense == 0.5  # 1 of 4 tokens
    with pytest.raises(ssm.errors.ArgumentError, match="shared_expert"):
        shared_expert_use(codes, d_sae=10, shared_expert=0, n_experts=2, token_id=tokens)
    with pytest.raises(ssm.errors.ArgumentError, match="token_id has 3"):
        shared_expert_use(codes, d_sae=10, shared_expert=2, n_experts=2, token_id=tokens[:3])
    with pytest.raises(ssm.errors.ArgumentError, match="Switch SAE"):
        shared_expert_use(codes._replace(expert_idx=None), d_sae=10, shared_expert=2, n_experts=2, token_id=tokens)


def test_routed_duplicates_leave_the_shared_expert_out():
    from switch_sae_mini.analysis import routed_duplicates
    a, b, c = torch.eye(3)
    W_dec = torch.stack([a, b, a + 0.01 * c, c, b])  # experts {a, b}, {a', c}; shared {b} duplicates b
    dup = routed_duplicates(W_dec, n_experts=2, d_routed=4, threshold=0.9)
    assert dup.twins == pytest.approx(0.5)  # a and a' only: the shared copy of b does not count
    # best cosine in another expert: a and a' find each other, b and c find nothing (orthogonal)
    cos = float(torch.nn.functional.cosine_similarity(a, a + 0.01 * c, 0))
    assert dup.mean_best_cos == pytest.approx(2 * cos / 4)


def test_a_plain_switch_folder_does_not_name_the_variant_fields(tmp_path):
    """Versions before the variants refuse unknown config fields, so a plain SAE's config.json leaves them out;
    a variant's config.json keeps them (and an older version then names them as unknown)."""
    from switch_sae_mini.training.checkpoint import read_config
    ssm.save(make_sae(variant_cfg()), tmp_path / "plain")
    ssm.save(make_sae(variant_cfg(router_top_e=2)), tmp_path / "top2")
    plain = read_config(tmp_path / "plain")[1]["sae_config"]
    top2 = read_config(tmp_path / "top2")[1]["sae_config"]
    assert not {"shared_expert", "k_shared", "router_top_e"} & set(plain)
    assert top2["router_top_e"] == 2 and ssm.load(tmp_path / "top2").cfg.router_top_e == 2
    assert ssm.load(tmp_path / "plain").cfg == variant_cfg()
