import pytest

from switch_sae_mini import ConfigError, SAEConfig, TrainConfig


@pytest.mark.parametrize("kwargs, field", [
    (dict(arch="gated"), "arch"),
    (dict(d_in=0), "d_in"),
    (dict(d_sae=-4), "d_sae"),
    (dict(arch="switch", d_sae=100, n_experts=3), "divisible by n_experts"),
    (dict(arch="topk", n_experts=4), "n_experts must be 1"),
    (dict(k=0), "k must be a positive int"),
    (dict(k=-3), "k must be a positive int"),
    (dict(d_sae=64, k=65), "larger than the width 64"),
    (dict(arch="switch", d_sae=64, n_experts=16, k=5), "larger than the expert width 4"),
    (dict(lb_coeff=float("nan")), "lb_coeff"),
    (dict(l1_coeff=-1.0), "l1_coeff"),
    (dict(gate="soft"), "gate"),
    (dict(auxk_k=0), "auxk_k"),
    (dict(d_in=2.5), "d_in"),
])
def test_sae_config_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SAEConfig(**kwargs)


def test_sae_config_defaults_and_derived_fields():
    cfg = SAEConfig(arch="switch", d_in=768, d_sae=24576, k=32, n_experts=16)
    assert cfg.d_expert == 1536 and cfg.k_aux == 384
    assert SAEConfig(arch="relu", k=0).arch == "relu"  # k is unused by ReLU
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown fields"):
        SAEConfig.from_dict({**cfg.to_dict(), "experts": 3})
    with pytest.raises(ConfigError, match="n_experts"):
        cfg.replace(n_experts=5)


def test_train_config_lr_rule_and_validation():
    assert TrainConfig().learning_rate(2**14) == pytest.approx(2e-4)
    assert TrainConfig().learning_rate(24576) == pytest.approx(1.633e-4, rel=1e-3)  # docs/design-notes.md §3
    assert TrainConfig(lr=1e-3).learning_rate(24576) == 1e-3
    with pytest.raises(ConfigError, match="n_steps"):
        TrainConfig(n_steps=0)
    with pytest.raises(ConfigError, match="decay_start"):
        TrainConfig(decay_start=1.5)
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1.0)
