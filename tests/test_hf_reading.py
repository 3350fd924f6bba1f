"""HFResidReader (transformers only, used by scripts/device_check.sh) reads what HookReader reads on the bridge."""

from __future__ import annotations

import pytest
import torch

from switch_sae_mini.data.hf_reading import HFResidReader
from switch_sae_mini.data.models import BUNDLED_MODEL_DIR
from switch_sae_mini.data.reading import HookReader
from switch_sae_mini.errors import ArgumentError


def _compare(model, model_dir, hook):
    tokens = torch.randint(0, 50000, (3, 17), generator=torch.Generator().manual_seed(0))
    expected = HookReader(model, hook)(tokens)
    got = HFResidReader(model_dir, hook)(tokens)
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got.std() > 1e-3  # a real residual stream, not zeros


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"])
def test_hf_reader_matches_hook_reader(tiny_lm, tiny_lm_dir, hook):
    _compare(tiny_lm, tiny_lm_dir, hook)


def test_hf_reader_matches_on_the_bundled_model():  # what device_check.sh harvests
    from switch_sae_mini.data.models import BUNDLED_MODEL, default_hook, load_model

    model = load_model(BUNDLED_MODEL)
    _compare(model, BUNDLED_MODEL_DIR, default_hook(model))


def test_hf_reader_refuses_what_it_cannot_read():
    with pytest.raises(ArgumentError, match="only 'blocks.<L>.hook_resid_pre'"):
        HFResidReader(BUNDLED_MODEL_DIR, "blocks.1.hook_mlp_out")
    with pytest.raises(ArgumentError, match="ln_f is applied"):
        HFResidReader(BUNDLED_MODEL_DIR, "blocks.3.hook_resid_post")
