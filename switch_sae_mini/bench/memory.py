"""Memory over a long run: resident set size (RSS) while training many steps, to show nothing accumulates.

    python -m switch_sae_mini bench-memory --steps 10000

Trains a Switch SAE at the bundled model's size (d_in 128, d_sae 4096, k 32, E 8; TopK with --arch topk) on
synthetic batches through `train()` (history, progress and dead-latent counters included, as a real run), and
samples the process's RSS every --every steps. Growth is measured from the end of the warm-up (the first
--warmup steps: allocator pools, the reused pre-activation buffer and Adam's moments settle), so the number says
whether anything grows per step. README "Reliability" records a run.
"""

from __future__ import annotations

import os
import resource
import time

import torch

from ..config import SAEConfig, TrainConfig
from ..data.toy import synthetic_batches
from ..device import cpu_name
from ..training import train


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(args) -> None:
    """`python -m switch_sae_mini bench-memory` (flags: cli/bench.py)."""
    if args.steps <= args.warmup or args.every < 1:
        raise SystemExit("error: --steps must exceed --warmup, and --every must be >= 1")
    extra = {"n_experts": args.n_experts} if args.arch == "switch" else {}
    cfg = SAEConfig(arch=args.arch, d_in=128, d_sae=4096, k=32, **extra)
    data = synthetic_batches(128, args.batch, n=8)
    batches = (data[i % len(data)] for i in range(args.steps))
    samples: list[tuple[int, float]] = []

    def sample(step: int, row: dict, sae) -> None:
        samples.append((step + 1, rss_bytes() / 2**20))

    print(f"switch_sae_mini bench-memory: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {cfg.arch} d_in 128 d_sae 4096 k 32"
          f"{f' E={args.n_experts}' if args.arch == 'switch' else ''}, batch {args.batch}, {args.steps} steps")
    start = time.perf_counter()
    train(cfg, batches, TrainConfig(n_steps=args.steps, log_every=args.every), callbacks=[sample],
          progress=not args.quiet)
    after_warmup = next(mb for step, mb in samples if step >= args.warmup)
    final, peak = samples[-1][1], max(mb for _, mb in samples)
    growth = (final - after_warmup) / after_warmup
    print(f"{'step':>8} {'RSS MiB':>9}")
    for step, mb in samples[:: max(1, len(samples) // 10)] + [samples[-1]]:
        print(f"{step:>8} {mb:>9.1f}")
    print(f"RSS after warm-up (step {args.warmup}) {after_warmup:.1f} MiB, at the end {final:.1f} MiB, "
          f"peak {peak:.1f} MiB: growth {growth:+.2%} over {args.steps - args.warmup} steps "
          f"({time.perf_counter() - start:.0f} s)")
