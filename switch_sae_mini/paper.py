"""Facts about the paper (Mudide et al. 2024, arXiv 2410.08201), in one place: its GPT-2 setting and experiment
grid (docs/design-notes.md §4-§5), and its published GPT-2 results, bundled for side-by-side plots.

Results source: result CSVs of the reference repository amudide/switch_sae (results/primary/*.csv), GPT-2 small
layer-8 residual stream, 819.2M training tokens per SAE. mse = squared error summed over the 768 dims, mean over
tokens.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from typing import NamedTuple

from . import flops
from .config import SAEConfig
from .errors import ArgumentError


class PaperResult(NamedTuple):
    arch: str           # "topk" | "switch" | "relu" | "gated"
    regime: str         # "dense" | "flop_matched" | "width_matched"
    n_experts: int
    d_sae: int
    l0: float           # = k for TopK/Switch
    mse: float          # summed over d_in = 768
    one_minus_loss_recovered_pct: float
    delta_ce: float


def _bundled_rows(name: str) -> csv.DictReader:
    """Rows of a CSV in assets/paper; its comment lines (starting with #) hold the attribution."""
    text = resources.files("switch_sae_mini").joinpath(f"assets/paper/{name}").read_text()
    return csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))


def paper_results() -> list[PaperResult]:
    """All rows of the bundled CSV of the main results."""
    rows = _bundled_rows("switch_sae_paper_results.csv")
    return [PaperResult(r["arch"], r["regime"], int(r["n_experts"]), int(r["d_sae"]), float(r["l0"]),
                        float(r["mse"]), float(r["one_minus_loss_recovered_pct"]), float(r["delta_ce"]))
            for r in rows]


def series(arch: str, regime: str, n_experts: int) -> list[PaperResult]:
    """Rows of one SAE family sorted by L0, e.g. series("switch", "flop_matched", 8)."""
    rows = [r for r in paper_results() if (r.arch, r.regime, r.n_experts) == (arch, regime, n_experts)]
    if not rows:
        raise ArgumentError(f"no paper results for arch={arch!r}, regime={regime!r}, n_experts={n_experts}.")
    return sorted(rows, key=lambda r: r.l0)


class AutointerpResult(NamedTuple):
    """One SAE of the paper's automated-interpretability evaluation (all k = 64); accuracies are fractions."""

    sae: str            # "TopK", "WM 16e" (width-matched), "FM 8e" (FLOP-matched), ...
    regime: str         # "dense" | "width_matched" | "flop_matched"
    n_experts: int
    n_features: int     # latents scored (of 1000 drawn)
    not_accuracy: float  # 1 - false-positive rate on random non-activating contexts
    decile_accuracy: tuple[float, ...]  # q1 (lowest activation decile) ... q10 (top)
    positives: float    # over all activating contexts
    balanced: float     # (positives + not_accuracy) / 2


def autointerp_results() -> list[AutointerpResult]:
    """The paper's LLM-scored detection results, from the reference repository's released results (the CSV's
    comment lines give the source and method; no value was read off a figure)."""
    rows = _bundled_rows("switch_sae_paper_autointerp.csv")
    return [AutointerpResult(sae=r["sae"], regime=r["regime"], n_experts=int(r["n_experts"]),
                             n_features=int(r["n_features"]), not_accuracy=float(r["not"]),
                             decile_accuracy=tuple(float(r[f"q{i}"]) for i in range(1, 11)),
                             positives=float(r["positives"]), balanced=float(r["balanced"])) for r in rows]


PAPER_STYLES = {  # (arch, regime, n_experts) -> label
    ("topk", "dense", 1): "TopK",
    ("switch", "flop_matched", 2): "FLOP-matched E=2",
    ("switch", "flop_matched", 4): "FLOP-matched E=4",
    ("switch", "flop_matched", 8): "FLOP-matched E=8",
    ("switch", "width_matched", 16): "width-matched E=16",
    ("switch", "width_matched", 32): "width-matched E=32",
    ("relu", "dense", 1): "ReLU",
}


def paper_series(metric: str = "mse", families=tuple(PAPER_STYLES)) -> dict[str, list[tuple[float, float]]]:
    """The paper's published GPT-2 points as {label: [(L0, metric), ...]}; metric is a PaperResult field."""
    rows = paper_results()
    return {PAPER_STYLES[f]: [(r.l0, getattr(r, metric)) for r in rows if (r.arch, r.regime, r.n_experts) == f]
            for f in families}


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
        raise ArgumentError(f"regime must be 'width' or 'flop', got {regime!r}.")
    dense = SAEConfig(arch="topk", d_in=PAPER_D_IN, d_sae=PAPER_D_SAE, k=k)
    if arch == "topk":
        return dense
    if arch != "switch":
        raise ArgumentError(f"the paper preset covers arch 'topk' and 'switch', got {arch!r}.")
    build = flops.width_matched if regime == "width" else flops.flop_matched
    return build(dense, n_experts)


def paper_grid() -> dict[str, SAEConfig]:
    """Every (TopK, width-matched, FLOP-matched) SAE of the paper's main results (docs/design-notes.md §5)."""
    grid = {}
    for k in PAPER_KS:
        grid[f"topk_k{k}"] = paper_sae_config("topk", k)
        for e in PAPER_WIDTH_MATCHED:
            grid[f"switch_wm{e}_k{k}"] = paper_sae_config("switch", k, e, "width")
        if k not in (48, 96):  # the FLOP-matched runs skipped these k (docs/design-notes.md §5)
            for e in PAPER_FLOP_MATCHED:
                grid[f"switch_fm{e}_k{k}"] = paper_sae_config("switch", k, e, "flop")
    return grid
