"""Tests for switch_sae_mini.flops: the GPT-2 table of docs/design-notes.md §5, parameter counts vs real modules,
bad inputs."""

from __future__ import annotations

import pytest

from switch_sae_mini.config import ConfigError, SAEConfig
from switch_sae_mini.flops import (
    flop_matched,
    forward_flops,
    ledger_table,
    param_counts,
    reference_forward_flops,
    steps_for_flop_budget,
    training_flops,
    width_matched,
)

# The paper's baseline (docs/design-notes.md §5): GPT-2 small residual stream, M = 32 * 768 latents.
TOPK = SAEConfig(arch="topk", d_in=768, d_sae=24576, k=32)


def mflop(n: int) -> float:
    return round(n / 1e6, 2)


def enc_router(flops: dict[str, int]) -> int:
    return flops["encoder"] + flops["router"]


# Columns of the GPT-2 table in docs/design-notes.md §5: theoretical encoder fwd incl. router, reference-code encoder fwd, params (in millions).
WM_ROWS = {16: (2.38, 37.77, 37.76), 32: (1.23, 37.80, 37.77),
           64: (0.69, 37.85, 37.80), 128: (0.49, 37.95, 37.85)}
FM_ROWS = {2: (37.75, 75.5, 75.5), 4: (37.75, 151.0, 151.0), 8: (37.76, 302.0, 302.0)}


def test_topk_row_of_spec_table():
    assert forward_flops(TOPK)["encoder"] == 2 * 768 * 24576
    assert mflop(enc_router(forward_flops(TOPK))) == 37.75
    assert mflop(enc_router(reference_forward_flops(TOPK))) == 37.75
    assert round(param_counts(TOPK)["total"] / 1e6, 2) == 37.77


@pytest.mark.parametrize("n_experts", sorted(WM_ROWS))
def test_width_matched_rows_of_spec_table(n_experts):
    theory, reference, params = WM_ROWS[n_experts]
    cfg = width_matched(TOPK, n_experts)
    assert (cfg.arch, cfg.d_sae, cfg.k, cfg.d_in) == ("switch", 24576, 32, 768)
    assert cfg.d_expert == 24576 // n_experts
    assert mflop(enc_router(forward_flops(cfg))) == theory
    assert mflop(enc_router(reference_forward_flops(cfg))) == reference
    assert round(param_counts(cfg)["total"] / 1e6, 2) == params


@pytest.mark.parametrize("n_experts", sorted(FM_ROWS))
def test_flop_matched_rows_of_spec_table(n_experts):
    theory, reference, params = FM_ROWS[n_experts]
    cfg = flop_matched(TOPK, n_experts)
    assert (cfg.arch, cfg.d_sae, cfg.d_expert, cfg.k) == ("switch", 24576 * n_experts, 24576, 32)
    assert mflop(enc_router(forward_flops(cfg))) == theory
    assert round(enc_router(reference_forward_flops(cfg)) / 1e6, 1) == reference
    assert round(param_counts(cfg)["total"] / 1e6, 1) == params


@pytest.mark.parametrize("n_experts", [2, 4, 8, 16])
def test_flop_matched_encoder_equals_topk_up_to_router(n_experts):
    fm, dense = forward_flops(flop_matched(TOPK, n_experts)), forward_flops(TOPK)
    assert fm["encoder"] == dense["encoder"]
    assert fm["router"] == 2 * 768 * n_experts
    assert 0 < enc_router(fm) - enc_router(dense) <= 2 * 768 * n_experts
    assert fm["decoder"] == dense["decoder"] == 2 * 32 * 768


@pytest.mark.parametrize("n_experts", [16, 32, 64, 128])
def test_width_matched_encoder_is_one_over_e(n_experts):
    wm, dense = forward_flops(width_matched(TOPK, n_experts)), forward_flops(TOPK)
    assert wm["encoder"] * n_experts == dense["encoder"]
    assert enc_router(wm) == dense["encoder"] // n_experts + 2 * 768 * n_experts


def test_relu_decoder_is_dense_and_totals_add_up():
    relu = SAEConfig(arch="relu", d_in=768, d_sae=24576)
    f = forward_flops(relu)
    assert f == {"router": 0, "encoder": 2 * 768 * 24576, "decoder": 2 * 24576 * 768,
                 "total": 4 * 768 * 24576}
    for cfg in (relu, TOPK, width_matched(TOPK, 16)):
        for ledger in (forward_flops(cfg), reference_forward_flops(cfg), training_flops(cfg)):
            assert ledger["total"] == ledger["router"] + ledger["encoder"] + ledger["decoder"]


def test_training_is_forward_plus_twice_forward():
    for cfg in (TOPK, width_matched(TOPK, 32), SAEConfig(arch="relu", d_in=64, d_sae=512)):
        fwd, train = forward_flops(cfg), training_flops(cfg)
        assert all(train[key] == 3 * fwd[key] for key in fwd)
    # With backward_factor=1 the encoder matches the scaling-law plot's 4 M d per token (docs/design-notes.md §5).
    assert training_flops(TOPK, backward_factor=1)["encoder"] == 4 * 24576 * 768


def test_param_counts_itemised():
    switch = SAEConfig(arch="switch", d_in=16, d_sae=64, k=4, n_experts=4)
    assert param_counts(switch) == {"W_enc": 1024, "W_dec": 1024, "b_dec": 16, "W_router": 64, "b_router": 16,
                                    "total": 2 * 64 * 16 + 16 * 4 + 2 * 16}
    topk = SAEConfig(arch="topk", d_in=16, d_sae=64, k=4)
    assert param_counts(topk) == {"W_enc": 1024, "W_dec": 1024, "b_dec": 16, "b_enc": 64, "total": 2128}


@pytest.mark.parametrize("cfg", [
    SAEConfig(arch="relu", d_in=24, d_sae=96),
    SAEConfig(arch="topk", d_in=24, d_sae=96, k=4),
    SAEConfig(arch="switch", d_in=24, d_sae=96, k=4, n_experts=4),
    SAEConfig(arch="switch", d_in=24, d_sae=96, k=4, n_experts=4, routed=False),
], ids=["relu", "topk", "switch", "switch-reference"])
def test_param_counts_match_real_modules(cfg):
    from switch_sae_mini import make_sae

    sae = make_sae(cfg)
    named = {name.split(".")[-1]: p.numel() for name, p in sae.named_parameters()}
    assert sum(p.numel() for p in sae.parameters()) == param_counts(cfg)["total"]
    expected = {name: n for name, n in param_counts(cfg).items() if name != "total"}
    assert named == expected


def test_ledger_table_lists_every_row():
    table = ledger_table({"TopK": TOPK, "WM16": width_matched(TOPK, 16), "FM2": flop_matched(TOPK, 2)})
    lines = table.splitlines()
    assert len(lines) == 3 + 3  # title, header, rule, 3 rows
    topk_row, wm_row, fm_row = lines[3:]
    assert topk_row.split()[0] == "TopK" and "1.000" in topk_row and "37.77M" in topk_row
    assert "2.36" in wm_row and "0.02" in wm_row  # WM16 encoder 2.36 MFLOP, router 0.02 MFLOP
    assert fm_row.split()[3] == "2" and "75.50M" in fm_row
    with pytest.raises(ValueError, match="non-empty"):
        ledger_table({})
    with pytest.raises(ValueError, match="SAEConfig"):
        ledger_table({"bad": {"arch": "topk"}})


def test_steps_for_flop_budget():
    cfg = SAEConfig(arch="topk", d_in=64, d_sae=512, k=8)
    per_step = training_flops(cfg)["total"] * 256
    assert per_step == 3 * (2 * 64 * 512 + 2 * 8 * 64) * 256
    assert steps_for_flop_budget(cfg, 10 * per_step, 256) == 10
    assert steps_for_flop_budget(cfg, 10 * per_step - 1, 256) == 9
    assert steps_for_flop_budget(cfg, 1e15, 1) == int(1e15 // (per_step // 256))
    with pytest.raises(ValueError, match="less than one training step"):
        steps_for_flop_budget(cfg, per_step - 1, 256)
    for bad_budget in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="budget_flops"):
            steps_for_flop_budget(cfg, bad_budget, 256)
    for bad_batch in (0, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            steps_for_flop_budget(cfg, 1e12, bad_batch)


def test_matching_rejects_bad_inputs():
    relu = SAEConfig(arch="relu", d_in=768, d_sae=24576)
    for fn in (flop_matched, width_matched):
        with pytest.raises(ConfigError, match="cfg_topk"):
            fn(relu, 4)
        with pytest.raises(ConfigError, match="cfg_topk"):
            fn(width_matched(TOPK, 4), 4)
        for bad in (0, -2, 2.0, True):
            with pytest.raises(ConfigError, match="n_experts"):
                fn(TOPK, bad)
    with pytest.raises(ConfigError, match="must divide"):
        width_matched(TOPK, 7)
    with pytest.raises(ConfigError, match="fewer than cfg_topk.k"):
        width_matched(TOPK.replace(k=256), 128)  # 192 latents per expert < k = 256
    with pytest.raises(ValueError, match="backward_factor"):
        training_flops(TOPK, backward_factor=-1)


def test_matching_keeps_other_fields():
    base = TOPK.replace(lb_coeff=1.5, dead_after_tokens=123, gate="heaviside")
    for cfg in (flop_matched(base, 4), width_matched(base, 4)):
        kept = (cfg.lb_coeff, cfg.dead_after_tokens, cfg.gate, cfg.k, cfg.d_in)
        assert kept == (1.5, 123, "heaviside", 32, 768)


def test_router_and_routed_encoder_cost_the_same_near_sqrt_width():
    """04's Question 4.a: width-matched at M = 24576, the router (2 d_in E) overtakes the routed encoder
    (2 d_in M / E) between E = 128 and E = 192, around sqrt(M) = 156.8, where their sum is smallest."""
    from switch_sae_mini.flops import forward_flops

    ledgers = {e: forward_flops(SAEConfig(arch="switch", d_in=768, d_sae=24576, k=32, n_experts=e))
               for e in (64, 128, 192, 384)}
    assert ledgers[128]["router"] < ledgers[128]["encoder"] and ledgers[192]["router"] > ledgers[192]["encoder"]
    assert 128 < 24576 ** 0.5 < 192 and round(24576 ** 0.5) == 157
    total = {e: ledger["router"] + ledger["encoder"] for e, ledger in ledgers.items()}
    assert min(total, key=total.get) in (128, 192) and total[64] > total[128] and total[384] > total[192]
