"""The residual stream of a Hugging Face GPT-2-style model read with ``transformers`` alone (no transformer-lens).

For machines that have transformers but not transformer-lens and its dependency tree (``datasets`` pulls in
pyarrow and pandas, over 60 MB of wheels): scripts/device_check.sh harvests the bundled model on a bare GPU machine
with it. It reads the same numbers as ``HookReader`` on a ``load_model`` bridge, which keeps HF numerics raw
(tests/test_hf_reading.py checks the two agree). Only residual-stream hooks are supported:
``blocks.L.hook_resid_pre`` is ``hidden_states[L]`` and ``blocks.L.hook_resid_post`` is ``hidden_states[L + 1]``,
except after the last block, where transformers applies the final LayerNorm to the last hidden state.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import ArgumentError
from .models import _quiet_loading

_RESID = re.compile(r"blocks\.(\d+)\.hook_(resid_pre|resid_post)")


class HFResidReader:
    """``reader(tokens) -> [b, pos, d_model]`` float32 at one residual-stream hook, like ``HookReader``; the whole
    model runs (it is small). ``.tokenizer``, ``.hook``, ``.d_in`` and ``.n_ctx`` are set."""

    def __init__(self, model_dir: str | Path, hook: str, device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        with _quiet_loading():
            self.model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        n_layers = self.model.config.num_hidden_layers
        match = _RESID.fullmatch(hook)
        if match is None:
            raise ArgumentError(f"hook={hook!r}: HFResidReader reads only 'blocks.<L>.hook_resid_pre' or "
                                f"'blocks.<L>.hook_resid_post'; use load_model + HookReader for other hooks.")
        index = int(match.group(1)) + (match.group(2) == "resid_post")
        if index >= n_layers:  # hidden_states[n_layers] is after ln_f, not a residual stream
            raise ArgumentError(f"hook={hook!r}: the model has {n_layers} blocks; the last block's resid_post is "
                                f"not readable from hidden_states (ln_f is applied); pick L < {n_layers - 1}.")
        self.hook, self.index, self.device = hook, index, torch.device(device)
        self.n_ctx = self.model.config.n_positions
        self.d_in = self.model.config.hidden_size

    @torch.no_grad()
    def __call__(self, tokens: Int[Tensor, "b pos"]) -> Float[Tensor, "b pos d_in"]:
        out = self.model(tokens.to(self.device), output_hidden_states=True)  # all blocks: simple over fast
        return out.hidden_states[self.index].float()
