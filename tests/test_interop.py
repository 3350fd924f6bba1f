"""SAELens interop: our export read by the real SAELens, SAELens SAEs read by us (through the peer virtualenv,
which `.ci/run` builds; skipped with a reason where it is absent), plus the bad-input cases on our side."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from switch_sae_mini import SAEConfig, SwitchSAEError, make_sae
from switch_sae_mini.interop import SAELensFormatError, export_saelens, load_saelens

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = Path(os.environ.get("SSM_PEERS_PYTHON", ROOT / ".venv-peers" / "bin" / "python"))
PEER_SCRIPT = ROOT / "tests" / "peers" / "saelens_side.py"
# In CI (.ci/run builds the peer virtualenv) these tests must run: a missing virtualenv fails there, not skips.
needs_saelens = pytest.mark.skipif(not PEER_PYTHON.exists() and os.environ.get("CI") != "true",
                                   reason=f"no peer virtualenv at {PEER_PYTHON} (make bench-peers builds it)")


def _trained_like(arch: str) -> torch.nn.Module:
    torch.manual_seed(1)
    sae = make_sae(SAEConfig(arch=arch, d_in=16, d_sae=64, k=4))
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    sae.provenance = {"model_name": "tiny-gpt2", "hook": "blocks.2.hook_resid_post", "context_len": 128,
                      "prepend_bos": True, "source": "bundled", "tokens_trained": 1000}
    return sae.eval()


def _ours(sae, x):
    with torch.no_grad():
        return {"feature_acts": sae.encode(x), "forward": sae(x).x_hat}


def _peer(*args: str) -> str:
    proc = subprocess.run([str(PEER_PYTHON), str(PEER_SCRIPT), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("arch", ["topk", "relu"])
def test_export_writes_saelens_config_and_round_trips_exactly(tmp_path, arch):
    sae = _trained_like(arch)
    folder = export_saelens(sae, tmp_path / arch)
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == ("topk" if arch == "topk" else "standard") and cfg["d_in"] == 16
    assert cfg["metadata"]["hook_name"] == "blocks.2.hook_resid_post" and cfg["metadata"]["hook_layer"] == 2
    assert cfg["metadata"]["model_name"] == "tiny-gpt2" and cfg["metadata"]["context_size"] == 128
    back = load_saelens(folder)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name  # ours -> SAELens -> ours: bit-exact
    assert back.provenance["hook"] == "blocks.2.hook_resid_post"


@needs_saelens
@pytest.mark.parametrize("arch", ["topk", "relu"])
def test_real_saelens_loads_our_export_with_equal_outputs(tmp_path, arch):
    sae = _trained_like(arch)
    folder = export_saelens(sae, tmp_path / arch)
    x = torch.randn(64, 16)
    save_file({"x": x}, tmp_path / "x.safetensors")
    printed = _peer("load", str(folder), str(tmp_path / "x.safetensors"), str(tmp_path / "out.safetensors"))
    assert ("TopKSAE" if arch == "topk" else "StandardSAE") in printed
    theirs, ours = load_file(tmp_path / "out.safetensors"), _ours(sae, x)
    torch.testing.assert_close(theirs["feature_acts"], ours["feature_acts"], rtol=0, atol=1e-5)
    torch.testing.assert_close(theirs["forward"], ours["forward"], rtol=0, atol=1e-5)
    torch.testing.assert_close(theirs["decoded"], ours["forward"], rtol=0, atol=1e-5)


@needs_saelens
@pytest.mark.parametrize("arch", ["topk", "standard"])
def test_a_random_saelens_sae_loads_here_with_equal_outputs(tmp_path, arch):
    x = torch.randn(64, 16)
    save_file({"x": x}, tmp_path / "x.safetensors")
    _peer("make", arch, str(tmp_path / "sae"), str(tmp_path / "x.safetensors"), str(tmp_path / "out.safetensors"))
    theirs, sae = load_file(tmp_path / "out.safetensors"), load_saelens(tmp_path / "sae")
    ours = _ours(sae, x)
    # standard SAEs subtract b_dec before encoding and ours does not: folded into b_enc, equal to float tolerance
    torch.testing.assert_close(ours["feature_acts"], theirs["feature_acts"], rtol=0, atol=1e-5)
    torch.testing.assert_close(ours["forward"], theirs["forward"], rtol=0, atol=1e-5)
    assert sae.provenance["imported_from"] == "saelens"


def _write_folder(folder: Path, cfg: dict, tensors: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(tensors, folder / "sae_weights.safetensors")
    return folder


GOOD_CFG = {"d_in": 4, "d_sae": 8, "architecture": "topk", "k": 2, "apply_b_dec_to_input": True,
            "normalize_activations": "none", "dtype": "float32"}
GOOD = {"W_enc": torch.randn(4, 8), "b_enc": torch.zeros(8), "W_dec": torch.randn(8, 4), "b_dec": torch.zeros(4)}


@pytest.mark.parametrize("change,message", [
    ({"architecture": "jumprelu"}, "architecture 'jumprelu' is not supported"),
    ({"architecture": "gated"}, "architecture 'gated' is not supported"),
    ({"normalize_activations": "expected_average_only_in"}, "normalize_activations"),
    ({"rescale_acts_by_decoder_norm": True}, "rescale_acts_by_decoder_norm"),
    ({"d_in": None}, "field 'd_in'"),
    ({"k": 100}, "SAEConfig.k"),
])
def test_unsupported_saelens_configs_are_refused_naming_the_field(tmp_path, change, message):
    cfg = {k: v for k, v in {**GOOD_CFG, **change}.items() if v is not None}
    folder = _write_folder(tmp_path / "sae", cfg, GOOD)
    with pytest.raises(SAELensFormatError, match=message):
        load_saelens(folder)


@pytest.mark.parametrize("tensors,message", [
    ({k: v for k, v in GOOD.items() if k != "b_dec"}, r"missing tensors \['b_dec'\]"),
    ({**GOOD, "threshold": torch.zeros(8)}, r"unexpected \['threshold'\]"),
    ({**GOOD, "W_enc": torch.randn(8, 4)}, r"W_enc has shape \(8, 4\).*need \(4, 8\)"),
])
def test_bad_saelens_weights_are_refused(tmp_path, tensors, message):
    folder = _write_folder(tmp_path / "sae", GOOD_CFG, tensors)
    with pytest.raises(SAELensFormatError, match=message):
        load_saelens(folder)


def test_what_cannot_be_exported_or_read(tmp_path):
    with pytest.raises(SAELensFormatError, match="no routed"):
        export_saelens(make_sae(SAEConfig(arch="switch", d_in=4, d_sae=8, k=2, n_experts=2)), tmp_path / "sw")
    with pytest.raises(SAELensFormatError, match="cfg.json is missing"):
        load_saelens(tmp_path / "nothing")
    assert issubclass(SAELensFormatError, SwitchSAEError)


# The attribute contract of SAEBench's custom SAEs (sae_bench 0.6: custom_saes/base_sae.py, custom_sae_config.py
# and its README). sae-bench itself does not install beside our torch (it pulls torchvision and numpy < 2), so the
# contract is checked here rather than by importing its BaseSAE.
SAEBENCH_CFG_FIELDS = ["model_name", "d_in", "d_sae", "hook_layer", "hook_name", "context_size", "hook_head_index",
                       "architecture", "apply_b_dec_to_input", "finetuning_scaling_factor", "activation_fn_str",
                       "prepend_bos", "normalize_activations", "dtype", "device", "dataset_path",
                       "dataset_trust_remote_code", "seqpos_slice", "training_tokens", "sae_lens_training_version",
                       "neuronpedia_id"]


def test_switch_sae_meets_saebenchs_custom_sae_contract():
    from switch_sae_mini.interop import SAEBenchSwitchSAE

    torch.manual_seed(0)
    sae = make_sae(SAEConfig(arch="switch", d_in=16, d_sae=64, k=4, n_experts=4))
    sae.provenance = {"model_name": "gpt2", "hook": "blocks.8.hook_resid_post", "context_len": 128,
                      "tokens_trained": 4096}
    bench = SAEBenchSwitchSAE(sae)
    for name in SAEBENCH_CFG_FIELDS:
        assert hasattr(bench.cfg, name), name
    assert (bench.cfg.hook_layer, bench.cfg.d_sae, bench.cfg.dtype, bench.cfg.training_tokens) == (8, 64, "float32", 4096)
    assert isinstance(bench.cfg.to_dict(), dict) and bench.cfg.architecture == "switch"
    assert bench.W_enc.shape == (16, 64) and bench.W_dec.shape == (64, 16)
    assert bench.b_enc.shape == (64,) and bench.b_dec.shape == (16,)
    assert isinstance(bench.W_dec, torch.nn.Parameter) and bench.W_dec is sae.W_dec  # shared, not copied
    assert bench.device == torch.device("cpu") and bench.dtype == torch.float32 and bench.check_decoder_norms()
    x = torch.randn(3, 5, 16)  # SAEBench passes [batch, pos, d_in]
    feature_acts = bench.encode(x)
    assert feature_acts.shape == (3, 5, 64) and (feature_acts != 0).sum(-1).max() <= 4
    expert_of_latent = torch.arange(64) // 16
    active = feature_acts.reshape(-1, 64) != 0
    assert all(expert_of_latent[row].unique().numel() <= 1 for row in active)  # one expert per token
    torch.testing.assert_close(bench.decode(feature_acts), bench(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(bench(x), sae(x).x_hat, rtol=0, atol=0)
    bench.to(dtype=torch.float64)
    assert bench.cfg.dtype == "float64" and bench.dtype == torch.float64
    with pytest.raises(SwitchSAEError, match="wraps a Switch SAE"):
        SAEBenchSwitchSAE(make_sae(SAEConfig(arch="topk", d_in=16, d_sae=64, k=4)))
    with pytest.raises(SwitchSAEError, match="model_name= and hook_name="):
        SAEBenchSwitchSAE(make_sae(SAEConfig(arch="switch", d_in=16, d_sae=64, k=4, n_experts=4)))
