"""Language-model fixtures (loaded from tests/conftest.py via ``pytest_plugins``).

One random tiny GPT-2 (2 layers, d_model 64, context 128, GPT-2 vocabulary) saved once per session with the
bundled GPT-2 tokenizer and loaded through ``models.load_model`` like any local model directory.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from switch_sae_mini.data.corpus import Document
from switch_sae_mini.data.models import BUNDLED_MODEL_DIR, load_model

TINY_LM_CONFIG = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 128, "n_ctx": 128,
                  "vocab_size": 50257, "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256}

SAMPLE_TEXTS = {
    "shakespeare": "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer "
                   "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles.",
    "python_docs": "The :func:`len` function returns the number of items of an object. The argument may be a "
                   "sequence (such as a string, bytes, tuple, list, or range) or a collection.",
    "bible": "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
             "and darkness was upon the face of the deep.",
}


def save_tiny_gpt2(directory) -> None:
    """Save a random tiny ``GPT2LMHeadModel`` plus the bundled GPT-2 tokenizer into ``directory``."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    tokenizer_files = list(BUNDLED_MODEL_DIR.glob("tokenizer*"))
    if not tokenizer_files:
        pytest.skip(f"the bundled GPT-2 tokenizer is missing from {BUNDLED_MODEL_DIR}")
    torch.manual_seed(0)
    hf_logging.disable_progress_bar()
    GPT2LMHeadModel(GPT2Config(**TINY_LM_CONFIG)).save_pretrained(directory)
    hf_logging.enable_progress_bar()
    for file in tokenizer_files:
        shutil.copy(file, directory)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_gpt2_random")
    save_tiny_gpt2(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_lm(tiny_lm_dir):
    """A ``TransformerBridge`` over the random tiny GPT-2 (shared; do not modify it)."""
    return load_model(str(tiny_lm_dir))


@pytest.fixture(scope="session")
def sample_docs():
    """Six short documents, two per domain, with distinct doc_ids (some longer than one 32-token context)."""
    docs = []
    for i, (domain, text) in enumerate(SAMPLE_TEXTS.items()):
        docs.append(Document(10 * i, domain, f"{domain} short", text))
        docs.append(Document(10 * i + 1, domain, f"{domain} long", " ".join([text] * 4)))
    return docs


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run a module's tiny-model tests on one torch thread: on a shared 2-core machine with background load, two
    OpenMP threads make every small op wait ~10 ms for a descheduled thread (5-30x slower); one thread does not."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
