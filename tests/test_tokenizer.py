"""The bundled GPT-2 tokenizer reproduces GPT-2's token ids exactly."""

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
