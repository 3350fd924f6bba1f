"""Throughput summary for `torchrun ... -m switch_sae_mini distributed --bench` (README "Scaling out").

Per rank: median step time, activations per second (its own batch / step time) and the median seconds per step
spent inside all_to_all (expert parallel: the token exchange and both directions of the reconstruction exchange)
and all_reduce (gradients). Collective times include waiting for the slowest rank, so load imbalance between
ranks shows up there, not as compute.
"""

from __future__ import annotations

import statistics

import torch.distributed as dist


def rank_summary(seconds: list[float], timings: list[dict[str, float]], batch_size: int, warmup: int) -> dict:
    """Medians over the steps after `warmup` (at least the last step) for this rank."""
    timed = range(min(warmup, len(seconds) - 1), len(seconds))
    step_s = statistics.median(seconds[i] for i in timed)
    row = {"rank": dist.get_rank(), "steps": f"{timed.start + 1}-{len(seconds)}", "step_ms": 1e3 * step_s,
           "activations_per_s": batch_size / step_s}
    for name in ("all_to_all", "all_reduce"):
        row[f"{name}_ms"] = 1e3 * statistics.median(timings[i].get(name, 0.0) for i in timed)
    return row


def report(row: dict, header: str) -> list[dict] | None:
    """Gather every rank's summary; rank 0 prints a table and returns the rows (other ranks return None)."""
    rows = [None] * dist.get_world_size()
    dist.all_gather_object(rows, row)
    if dist.get_rank() != 0:
        return None
    print(f"{header}; median over steps {row['steps']}")
    print("rank  step ms  activations/s  all_to_all ms  all_reduce ms")
    for r in rows:
        print(f"{r['rank']:>4} {r['step_ms']:8.1f} {r['activations_per_s']:14,.0f} "
              f"{r['all_to_all_ms']:14.1f} {r['all_reduce_ms']:14.1f}")
    print(f"total {sum(r['activations_per_s'] for r in rows):,.0f} activations/s")
    return rows
