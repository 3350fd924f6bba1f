"""How many steps the chapters' SAEs need: each chapter's representative SAEs trained with full schedules of
several lengths (the learning-rate decay always covers the last 20 %), held-out FVU and L0 for each.

    python scripts/convergence.py                      # steps 300 600 1000 1500, every chapter's SAEs
    python scripts/convergence.py --steps 400 800 --only 04

A chapter could use the shortest schedule whose FVU is within ``--tolerance`` of the longest one's for every SAE
and which keeps the chapter's comparison (the order of the SAEs by FVU). On the AMD EPYC no chapter's SAEs had
converged by 1500 steps (README "Notebooks"), so the notebooks keep their step counts.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

import switch_sae_mini as ssm

BATCH, LR = 1024, 1e-3


def chapter_configs(d_in: int) -> dict[str, dict[str, ssm.SAEConfig]]:
    """The SAEs each chapter compares, at the notebooks' default sizes."""
    C = ssm.SAEConfig
    dense16 = C(arch="topk", d_in=d_in, d_sae=1024, k=16)
    return {
        "01": {"ReLU λ=2": C(arch="relu", d_in=d_in, d_sae=2048, l1_coeff=2.0),
               "ReLU λ=16": C(arch="relu", d_in=d_in, d_sae=2048, l1_coeff=16.0)},
        "02": {"TopK k=16": C(arch="topk", d_in=d_in, d_sae=2048, k=16),
               "TopK k=64": C(arch="topk", d_in=d_in, d_sae=2048, k=64)},
        "03": {"Switch E=8 α=3": C(arch="switch", d_in=d_in, d_sae=4096, k=16, n_experts=8),
               "Switch E=8 α=0": C(arch="switch", d_in=d_in, d_sae=4096, k=16, n_experts=8, lb_coeff=0.0)},
        "04": {"TopK k=16": dense16, "FLOP-matched E=8": ssm.flops.flop_matched(dense16, 8),
               "width-matched E=8": ssm.flops.width_matched(dense16, 8)},
        "05": {"Switch E=32 k=16": C(arch="switch", d_in=d_in, d_sae=4096, k=16, n_experts=32)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 600, 1000, 1500])
    parser.add_argument("--only", nargs="*", help="chapters, e.g. 01 04 (default: all)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="relative FVU gap counted as converged")
    parser.add_argument("--n-tokens", type=int, default=1_500_000)
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    ssm.notebook.setup(seed=0)
    model = ssm.load_model("tiny-gpt2")
    acts, _, _ = ssm.notebook.harvest(model, args.n_tokens)
    held_out, train_acts = acts[:8192], acts[8192:]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}; batch {BATCH}, lr {LR}, "
          f"{len(train_acts):,} training activations")
    longest = max(args.steps)
    for chapter, configs in chapter_configs(acts.shape[1]).items():
        if args.only and chapter not in args.only:
            continue
        table = {}
        for name, cfg in configs.items():
            for steps in sorted(args.steps):
                start = time.perf_counter()
                run = ssm.train(cfg, ssm.notebook.shuffled_batches(train_acts, BATCH),
                                ssm.TrainConfig(n_steps=steps, lr=LR, log_every=steps), progress=False)
                m = ssm.metrics.evaluate_sae(run.sae, held_out.split(2048))
                table[name, steps] = (m["fvu"], m["l0"], time.perf_counter() - start)
        print(f"\nchapter {chapter}")
        print("| SAE | " + " | ".join(f"{s} steps" for s in sorted(args.steps)) + " |")
        print("|---|" + "---|" * len(args.steps))
        for name in configs:
            ref = table[name, longest][0]
            cells = [f"{table[name, s][0]:.4f} (L0 {table[name, s][1]:.0f}, {table[name, s][2]:.0f} s)"
                     + (" ✔" if table[name, s][0] <= ref * (1 + args.tolerance) else "")
                     for s in sorted(args.steps)]
            print(f"| {name} | " + " | ".join(cells) + " |")
        for s in sorted(args.steps):
            order = sorted(configs, key=lambda n: table[n, s][0])
            print(f"order by FVU at {s} steps: {' < '.join(order)}")


if __name__ == "__main__":
    main()
