"""Run presets: the paper's GPT-2 setting (spec §6-§7) and the small demo on the bundled model.

The paper trains on GPT-2 small's residual stream after block 8, OpenWebText streamed in order, the first 128 tokens
of each document without BOS, batch 8192, 100k steps (819.2M tokens) per SAE, d_sae = 24576 for the dense TopK
baseline, k in {8, ..., 192}, width-matched E in {16, ..., 128} and FLOP-matched E in {2, 4, 8}.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from . import flops
from .config import SAEConfig


@dataclass(frozen=True)
class DataPreset:
    """Where activations come from and how much training they feed."""

    model: str
    hook: str
    source: str
    context_len: int
    prepend_bos: bool
    batch_size: int
    n_steps: int


PAPER = DataPreset(model="gpt2", hook="blocks.8.hook_resid_post", source="hf:Skylion007/openwebtext",
                   context_len=128, prepend_bos=False, batch_size=8192, n_steps=100_000)
PAPER_D_IN, PAPER_D_SAE = 768, 24576
PAPER_KS = (8, 16, 32, 48, 64, 96, 128, 192)
PAPER_WIDTH_MATCHED = (16, 32, 64, 128)
PAPER_FLOP_MATCHED = (2, 4, 8)


def paper_sae_config(arch: str = "topk", k: int = 32, n_experts: int = 1, regime: str = "width") -> SAEConfig:
    """One SAE of the paper's grid. regime: "width" (total d_sae 24576) or "flop" (each expert 24576 wide)."""
    if regime not in ("width", "flop"):
        raise ValueError(f"regime must be 'width' or 'flop', got {regime!r}.")
    dense = SAEConfig(arch="topk", d_in=PAPER_D_IN, d_sae=PAPER_D_SAE, k=k)
    if arch == "topk":
        return dense
    if arch != "switch":
        raise ValueError(f"the paper preset covers arch 'topk' and 'switch', got {arch!r}.")
    build = flops.width_matched if regime == "width" else flops.flop_matched
    return build(dense, n_experts)


def paper_grid() -> dict[str, SAEConfig]:
    """Every (TopK, width-matched, FLOP-matched) SAE of the paper's main results (spec §7)."""
    grid = {}
    for k in PAPER_KS:
        grid[f"topk_k{k}"] = paper_sae_config("topk", k)
        for e in PAPER_WIDTH_MATCHED:
            grid[f"switch_wm{e}_k{k}"] = paper_sae_config("switch", k, e, "width")
        if k not in (48, 96):  # the FLOP-matched runs skipped these k (spec §7)
            for e in PAPER_FLOP_MATCHED:
                grid[f"switch_fm{e}_k{k}"] = paper_sae_config("switch", k, e, "flop")
    return grid


def missing_for_paper(check_hub: bool = True) -> list[str]:
    """What this machine lacks to run the paper preset (empty list: good to go)."""
    from .models import hub_is_offline, hub_reachable

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (819M tokens per SAE take about a day on this 2-core CPU even for the "
                       "routed Switch SAE; use the bundled-model demo instead)")
    if importlib.util.find_spec("datasets") is None:
        missing.append("the `datasets` package (pip install datasets) to stream OpenWebText")
    if check_hub and (hub_is_offline() or not hub_reachable()):
        missing.append("the Hugging Face hub (GPT-2 weights and OpenWebText are downloaded from it)")
    return missing
