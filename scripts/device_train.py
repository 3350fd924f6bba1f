"""The device check's training run (scripts/device_check.py): harvest the bundled tiny GPT-2's residual stream on
the device, then train a Switch SAE and a TopK SAE of the same width on it with the package's `train()` under
its autocast policy, and report time per step and the final FVU, L0 and dead fraction of each.

    python scripts/device_train.py --device cuda --json out/train.json
    python scripts/device_train.py --device cpu --quick --json out/train.json   # what CI runs

Activations are read with transformers alone (data/hf_reading.py), as a bare GPU machine has no transformer-lens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from switch_sae_mini.config import SAEConfig, TrainConfig
from switch_sae_mini.data.batches import shuffled_batches
from switch_sae_mini.data.hf_reading import HFResidReader
from switch_sae_mini.data.models import BUNDLED_MODEL_DIR
from switch_sae_mini.data.reading import activations_from_contexts, iter_context_batches
from switch_sae_mini.data.sources import make_source
from switch_sae_mini.device import autocast_context, autocast_dtype, synchronize
from switch_sae_mini.training.train import train

HOOK = "blocks.2.hook_resid_post"  # default_hook of the bundled 4-layer model


def harvest(reader: HFResidReader, n_tokens: int, context_len: int = 128) -> torch.Tensor:
    """[n_tokens, d_in] activations of the bundled corpus' train split, BOS dropped, on the reader's device."""
    source = make_source("bundled", split="train")
    chunks, total = [], 0
    for batch in iter_context_batches(source.documents(0, 0), reader.tokenizer, source.domains, context_len, 64):
        acts, _ = activations_from_contexts(reader, batch)
        chunks.append(acts)
        total += acts.shape[0]
        if total >= n_tokens:
            break
    if total < n_tokens:
        raise SystemExit(f"error: the bundled corpus gave {total} tokens, fewer than --tokens {n_tokens}")
    return torch.cat(chunks)[:n_tokens]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="CI sizes: 40k tokens, 30 steps")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    n_tokens, n_steps = (40_000, 30) if args.quick else (400_000, 600)
    start = time.perf_counter()
    reader = HFResidReader(BUNDLED_MODEL_DIR, HOOK, device)
    acts = harvest(reader, n_tokens)
    synchronize(device)
    harvest_s = time.perf_counter() - start
    print(f"harvested {acts.shape[0]:,} activations of {HOOK} on {device} in {harvest_s:.1f} s", flush=True)
    rows = []
    for name, cfg in {"Switch E=8": SAEConfig(arch="switch", d_in=acts.shape[1], d_sae=4096, k=32, n_experts=8),
                      "TopK": SAEConfig(arch="topk", d_in=acts.shape[1], d_sae=4096, k=32)}.items():
        train_cfg = TrainConfig(n_steps=n_steps, log_every=max(1, n_steps // 5))
        with autocast_context(device):
            result = train(cfg, shuffled_batches(acts, 4096), train_cfg, device=device,
                           progress=False)
        final = result.final
        rows.append({"name": name, "steps": result.steps, "ms_per_step": 1000 * result.wall_time / result.steps,
                     "fvu": final["fvu"], "l0": final["l0"], "dead_fraction": final["dead_fraction"],
                     "first_fvu": result.history[0]["fvu"]})
        print(f"{name}: {result.steps} steps, {rows[-1]['ms_per_step']:.1f} ms/step, FVU {final['fvu']:.3f} "
              f"(first log {rows[-1]['first_fvu']:.3f}), L0 {final['l0']:.1f}, dead {final['dead_fraction']:.3f}",
              flush=True)
        if not final["fvu"] < rows[-1]["first_fvu"]:
            raise SystemExit(f"error: {name} did not learn: FVU {rows[-1]['first_fvu']:.3f} -> {final['fvu']:.3f}")
    doc = {"device": str(device), "precision": str(autocast_dtype(device)).replace("torch.", ""), "hook": HOOK,
           "tokens": acts.shape[0], "harvest_s": harvest_s, "runs": rows}
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
