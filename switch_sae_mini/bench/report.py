"""The benchmark's output: the Markdown table per shape and batch (README "Speed") and the JSON document
(`bench --json`, what scripts/device_check.sh collects)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..flops import param_counts

SHAPES = {"gpt2": dict(d_in=768, d_sae=24576, k=32), "bundled": dict(d_in=128, d_sae=4096, k=32)}


def explain(result, topk, limit: float) -> str:
    """Which fixed cost keeps a Switch SAE below its FLOP-ratio limit."""
    speedup = topk.ms_per_step / result.ms_per_step
    if speedup >= 0.9 * limit or result.cfg is None or result.cfg.arch != "switch":
        return ""
    params = param_counts(result.cfg)["total"] / 1e6
    opt, bwd = result.phases_ms["optimizer"], result.phases_ms["backward"]
    biggest = max(("optimizer", opt), ("backward", bwd), ("forward", result.phases_ms["forward"]), key=lambda t: t[1])
    why = {"optimizer": f"Adam + clip + decoder-gradient projection over all {params:.1f}M parameters, which does "
                        "not shrink with E",
           "backward": "the dense W_enc / W_dec gradients (every row written, most of them zero) and the sort of "
                       "the (token, latent) pairs",
           "forward": "routing overhead (sort by expert, the experts' padded batched matmul and top-k) and the decoder"}
    return f"{biggest[0]} {biggest[1]:.0f} ms of {result.ms_per_step:.0f}: {why[biggest[0]]}"


def print_table(shape: str, batch: int, results: list, lower_bound_ms: float, peers: list[dict],
                device: torch.device = torch.device("cpu")) -> None:
    topk = next(r for r in results if r.name == "TopK (ours)")
    topk_flops = topk.flops_per_step
    cfg = SHAPES[shape]
    print(f"\n### {shape}: d_in {cfg['d_in']}, d_sae {cfg['d_sae']}, k {cfg['k']}, batch {batch}")
    peak = "peak MiB" if device.type == "cuda" else "peak RSS MiB (process, so far)"
    print(f"| variant | GFLOP/step | ms/step (fwd / bwd / opt) | act/s | GFLOP/s | speed-up vs TopK (ours) "
          f"| FLOP-ratio limit | {peak} | held back by |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        limit = topk_flops / r.flops_per_step
        p = r.phases_ms
        print(f"| {r.name} | {r.flops_per_step / 1e9:.1f} | {r.ms_per_step:.0f} ({p['forward']:.0f} / "
              f"{p['backward']:.0f} / {p['optimizer']:.0f}) | {r.acts_per_s:,.0f} | "
              f"{r.flops_per_step / r.ms_per_step / 1e6:.0f} | {topk.ms_per_step / r.ms_per_step:.2f}x "
              f"| {limit:.2f}x | {r.peak_mib:,.0f} | {explain(r, topk, limit)} |")
    for peer in peers:
        print(f"| peer: {peer['name']} | {topk_flops / 1e9:.1f} | {peer['ms_per_step']:.0f} | "
              f"{batch / peer['ms_per_step'] * 1000:,.0f} | {topk_flops / peer['ms_per_step'] / 1e6:.0f} | "
              f"{topk.ms_per_step / peer['ms_per_step']:.2f}x | 1.00x | | |")
    print(f"| encoder forward matmul alone (lower bound for TopK) | {2 * cfg['d_in'] * cfg['d_sae'] * batch / 1e9:.1f}"
          f" | {lower_bound_ms:.0f} | {batch / lower_bound_ms * 1000:,.0f} | | | | | |")
    print(f"\nTopK (ours) reaches {lower_bound_ms / topk.ms_per_step:.2f} of the encoder-matmul lower bound.")
    for peer in peers:
        print(f"TopK (ours) is {peer['ms_per_step'] / topk.ms_per_step:.2f}x {peer['name']}.")


def table_json(shape: str, batch: int, results: list, lower_bound_ms: float, peers: list[dict]) -> dict:
    topk = next(r for r in results if r.name == "TopK (ours)")
    return {"shape": shape, **SHAPES[shape], "batch": batch, "lower_bound_ms": lower_bound_ms,
            "topk_fraction_of_bound": lower_bound_ms / topk.ms_per_step,
            "variants": [{"name": r.name, "ms_per_step": r.ms_per_step, "phases_ms": r.phases_ms,
                          "gflop_per_step": r.flops_per_step / 1e9, "acts_per_s": r.acts_per_s,
                          "peak_mib": r.peak_mib, "speedup_vs_topk": topk.ms_per_step / r.ms_per_step}
                         for r in results],
            "peers": [{**peer, "topk_speedup_over_peer": peer["ms_per_step"] / topk.ms_per_step} for peer in peers]}


def write_json(path: str, where: str, precision: str, device: torch.device, tables: list[dict]) -> None:
    doc = {"machine": where, "device": device.type, "precision": precision, "torch": torch.__version__,
           "tables": tables}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
