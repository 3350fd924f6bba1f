import itertools

import pytest
import torch

from switch_sae_mini import InputError, SAEConfig, TrainConfig, make_sae, metrics, train
from switch_sae_mini.data.toy import ToyData
from switch_sae_mini.training.step import lr_factor

from conftest import tiny_cfg

TOY = ToyData(d_in=16, n_features=64, active=3, n_groups=4, seed=0)


def _fvu(sae, n=4):
    return metrics.evaluate_sae(sae, ToyData(d_in=16, n_features=64, active=3, seed=0).batches(256, n))["fvu"]


@pytest.mark.parametrize("arch", ["relu", "topk", "switch"])
def test_training_learns_the_toy_data(arch):
    cfg = tiny_cfg(arch, l1_coeff=0.5)
    torch.manual_seed(0)
    sae = make_sae(cfg)
    before = _fvu(sae)
    result = train(sae, TOY.batches(256), TrainConfig(n_steps=150, lr=3e-3, log_every=50), progress=False)
    after = _fvu(result.sae)
    assert after < 0.5 * before, (before, after)
    assert [row["step"] for row in result.history] == [50, 100, 150]
    assert result.history[-1]["tokens"] == 150 * 256
    if arch != "relu":  # the decoder-norm constraint holds after training
        torch.testing.assert_close(result.sae.W_dec.norm(dim=-1), torch.ones(64), atol=1e-4, rtol=0)
    if arch == "switch":
        assert result.final["expert_balance"] < 2.0  # load balancing keeps all 4 experts in use


def test_lr_schedule_is_flat_then_linear_decay():
    cfg = TrainConfig(n_steps=100, decay_start=0.8)
    assert [lr_factor(s, cfg) for s in (0, 79, 80, 90, 99)] == pytest.approx([1, 1, 1, 0.5, 0.05])


def test_lr_is_applied_and_decays():
    rows = []
    train(tiny_cfg("topk"), TOY.batches(64), TrainConfig(n_steps=10, lr=1e-3, log_every=1),
          callbacks=[lambda step, row, sae: rows.append(row)], progress=False)
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[-1]["lr"] == pytest.approx(1e-3 * 0.5)


def test_first_batch_sets_b_dec_and_b_router_to_geometric_median():
    batches = list(TOY.batches(128, 1))
    sae = make_sae(tiny_cfg("switch"))
    sae.init_from_batch(batches[0])
    from switch_sae_mini.saes import geometric_median
    torch.testing.assert_close(sae.b_dec.data, geometric_median(batches[0]))
    torch.testing.assert_close(sae.b_router.data, sae.b_dec.data)


def test_dead_latents_are_tracked():
    cfg = tiny_cfg("topk", dead_after_tokens=500)
    sae = make_sae(cfg)
    with torch.no_grad():
        sae.W_enc[:, :8] = -10.0  # these latents can never win TopK on offset-positive data
        sae.b_enc[:8] = -100.0
    result = train(sae, TOY.batches(64), TrainConfig(n_steps=20, lr=1e-6), progress=False)
    dead = result.sae.dead_mask()
    assert dead[:8].all()
    assert result.final["dead_fraction"] == pytest.approx(float(dead.float().mean()))
    assert result.final["dead_fraction"] >= 8 / 64


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    cfg = tiny_cfg("switch")
    tcfg = TrainConfig(n_steps=20, lr=2e-3, log_every=5, decay_start=0.5)
    data = list(TOY.batches(64, 20))
    full = train(cfg, data, tcfg, progress=False).sae
    # interrupted after 12 steps (a checkpoint every 6), then resumed with the same data stream
    first = tcfg.replace(checkpoint_every=6)
    with pytest.raises(InputError, match="ran out after 12 batches"):
        train(cfg, data[:12], first, checkpoint_dir=tmp_path / "ck", progress=False)
    resumed = train(make_sae(cfg), data, first, checkpoint_dir=tmp_path / "ck", resume=True, progress=False)
    for name, tensor in full.state_dict().items():
        assert torch.equal(tensor, resumed.sae.state_dict()[name]), name
    assert resumed.history[-1]["step"] == 20


@pytest.mark.parametrize("bad, message", [
    (torch.full((8, 16), float("nan")), "NaN/inf"),
    (torch.randn(8, 16).index_fill(0, torch.tensor([3]), float("inf")), "NaN/inf"),
    (torch.randn(0, 16), "empty"),
    (torch.randn(8, 12), r"\[batch, 16\]"),
    ([1.0, 2.0], "not a torch.Tensor"),
])
def test_bad_batches_raise_naming_the_batch(bad, message):
    batches = itertools.chain([torch.randn(8, 16)], [bad])
    with pytest.raises(InputError, match=message):
        train(tiny_cfg("topk"), batches, TrainConfig(n_steps=3), progress=False)


def test_train_accepts_a_config_and_is_deterministic():
    a = train(tiny_cfg("topk"), TOY.batches(64, 5), TrainConfig(n_steps=5, seed=3), progress=False).sae
    b = train(tiny_cfg("topk"), TOY.batches(64, 5), TrainConfig(n_steps=5, seed=3), progress=False).sae
    assert torch.equal(a.W_enc, b.W_enc)


def test_progress_bar_runs():
    result = train(SAEConfig(arch="switch", d_in=16, d_sae=32, k=2, n_experts=2), TOY.batches(32),
                   TrainConfig(n_steps=3, log_every=1), progress=True)
    assert "expert_balance" in result.final and "lb_loss" in result.final
