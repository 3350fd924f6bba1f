"""The bundled tiny_gpt2 assets: GPT-2-exact tokenizer; small, tied, trained weights."""

from pathlib import Path

import pytest

ASSET_DIR = Path(__file__).resolve().parents[1] / "switch_sae_mini" / "assets" / "tiny_gpt2"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ASSET_DIR)


@pytest.mark.parametrize("text, ids", [
    ("Hello world", [15496, 995]),
    (" the", [262]),
    ("<|endoftext|>", [50256]),
    ("Hello, world.\n\n", [15496, 11, 995, 13, 628]),  # GPT-2 has a single token for "\n\n"
])
def test_known_gpt2_ids(tokenizer, text, ids):
    assert tokenizer.encode(text, add_special_tokens=False) == ids


def test_special_tokens_and_size(tokenizer):
    assert len(tokenizer) == 50257
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 50256


def test_round_trip(tokenizer):
    text = "def f(x):\n    return x ** 2  # Ünïcödé, 'quotes' and\ttabs\n\n"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


# ---- the trained model stored next to the tokenizer (scripts/train_tiny_gpt2.py) ----


def test_weights_file_is_small_fp32_and_tied():
    from safetensors import safe_open

    weights = ASSET_DIR / "model.safetensors"
    assert weights.stat().st_size <= 30 * 1000 * 1000
    with safe_open(weights, framework="pt") as f:
        names = set(f.keys())
        assert f.get_slice("transformer.wte.weight").get_shape()[0] == 50257
        assert {f.get_slice(n).get_dtype() for n in names} == {"F32"}
    assert "lm_head.weight" not in names  # tied to the token embedding, stored once


def test_config_matches_the_card_and_transformer_lens_needs():
    import json

    config = json.loads((ASSET_DIR / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["tie_word_embeddings"]
    assert config["vocab_size"] == 50257
    assert config["n_ctx"] == config["n_positions"] >= 128  # transformer-lens reads n_ctx
    log = json.loads((ASSET_DIR / "training_log.json").read_text())
    assert log["config"]["n_layer"] == config["n_layer"]
    assert f"**{log['final_val_nll']:.3f}**" in (ASSET_DIR / "README.md").read_text()


def test_model_beats_the_bigram_baseline():
    import json

    log = json.loads((ASSET_DIR / "training_log.json").read_text())
    assert log["final_val_nll"] < log["baselines"]["bigram_nll"] < log["baselines"]["unigram_nll"]
