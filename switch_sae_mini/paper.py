"""The paper's published GPT-2 results (Mudide et al. 2024, arXiv 2410.08201), bundled for side-by-side plots.

Source: result CSVs of the reference repository amudide/switch_sae (results/primary/*.csv), GPT-2 small layer-8
residual stream, 819.2M training tokens per SAE. mse = squared error summed over the 768 dims, mean over tokens.
"""

from __future__ import annotations

import csv
from importlib import resources
from typing import NamedTuple


class PaperResult(NamedTuple):
    arch: str           # "topk" | "switch" | "relu" | "gated"
    regime: str         # "dense" | "flop_matched" | "width_matched"
    n_experts: int
    d_sae: int
    l0: float           # = k for TopK/Switch
    mse: float          # summed over d_in = 768
    one_minus_loss_recovered_pct: float
    delta_ce: float


def paper_results() -> list[PaperResult]:
    """All rows of the bundled CSV (comment lines starting with # hold the attribution)."""
    text = resources.files("switch_sae_mini").joinpath("assets/paper/switch_sae_paper_results.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return [PaperResult(r["arch"], r["regime"], int(r["n_experts"]), int(r["d_sae"]), float(r["l0"]),
                        float(r["mse"]), float(r["one_minus_loss_recovered_pct"]), float(r["delta_ce"]))
            for r in rows]


def series(arch: str, regime: str, n_experts: int) -> list[PaperResult]:
    """Rows of one SAE family sorted by L0, e.g. series("switch", "flop_matched", 8)."""
    rows = [r for r in paper_results() if (r.arch, r.regime, r.n_experts) == (arch, regime, n_experts)]
    if not rows:
        raise ValueError(f"no paper results for arch={arch!r}, regime={regime!r}, n_experts={n_experts}.")
    return sorted(rows, key=lambda r: r.l0)
