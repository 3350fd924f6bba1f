"""Subcommand distributed: data-parallel (every architecture) or expert-parallel (Switch) training under torchrun.

    torchrun --nproc_per_node=2 -m switch_sae_mini distributed --mode expert --arch switch --n-experts 8

Every rank runs this command; rank 0 prints the log and writes --out. The step itself is training/distributed.py
(data parallel) or training/expert_parallel.py (expert parallel).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ..config import SAEConfig, TrainConfig
from .flags import add_config_flags, config_from_args


def _run(args: argparse.Namespace) -> int:
    from ..bench.distributed import rank_summary, report
    from ..data.batches import load_activations, shuffled_batches
    from ..data.toy import ToyData
    from ..saes import make_sae
    from ..training import save
    from ..training.distributed import data_parallel_step, init_from_env, shutdown
    from ..training.expert_parallel import ExpertShard, expert_parallel_step, gather_switch_sae
    from ..training.step import make_optimizer

    rank, world, device = init_from_env()
    try:
        global_batch = args.batch_size * world
        if args.activations:
            acts = load_activations(args.activations)
            d_in, batches = acts.shape[1], shuffled_batches(acts, global_batch, args.seed)
        else:  # rank r trains on the r-th slice of each global batch
            d_in, batches = args.d_in, ToyData(d_in=args.d_in, seed=args.seed).batches(global_batch)
        sae_cfg = config_from_args(SAEConfig, args, d_in=d_in,
                                   n_experts=args.n_experts if args.arch == "switch" else 1)
        train_cfg = config_from_args(TrainConfig, args)
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        sae = make_sae(sae_cfg).to(device)
        model = ExpertShard(sae, rank, world) if args.mode == "expert" else sae
        step_fn = expert_parallel_step if args.mode == "expert" else data_parallel_step
        base_lr = train_cfg.learning_rate(sae_cfg.d_sae)
        optimizer = make_optimizer(model, base_lr)
        model.train()
        seconds, comm = [], []
        for step in range(train_cfg.n_steps):
            x = next(batches)[rank * args.batch_size:(rank + 1) * args.batch_size].to(device, torch.float32)
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            result = step_fn(model, x, optimizer, train_cfg, step, base_lr, timings=timings)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - t0)
            comm.append(timings)
            if rank == 0 and ((step + 1) % train_cfg.log_every == 0 or step == train_cfg.n_steps - 1):
                print(json.dumps({"step": step + 1, **{k: round(v, 6) for k, v in result._asdict().items()}}))
        final = gather_switch_sae(model) if args.mode == "expert" else model
        if rank == 0 and args.out:
            save(final, args.out)
            print(f"saved {args.out}")
        if args.bench:
            header = (f"{args.mode} {args.arch}: world_size={world}, {args.batch_size} activations per rank, "
                      f"d_in={d_in} d_sae={sae_cfg.d_sae} k={sae_cfg.k} E={sae_cfg.n_experts}")
            report(rank_summary(seconds, comm, args.batch_size, args.warmup), header)
    finally:
        shutdown()
    return 0


def register(sub) -> None:
    p = sub.add_parser("distributed", help="data- or expert-parallel training; launch with torchrun",
                       description="Run under torchrun, e.g. torchrun --nproc_per_node=2 -m switch_sae_mini "
                                   "distributed --mode expert. Data parallel (ddp) or expert parallel (expert, "
                                   "Switch only).")
    p.add_argument("--mode", choices=("ddp", "expert"), default="ddp", help="(default: %(default)s)")
    p.add_argument("--activations", help="[n, d_in] .safetensors/.npy file; default: synthetic ToyData")
    add_config_flags(p, SAEConfig, ("arch", "d_in", "d_sae", "k", "n_experts", "lb_coeff"), group="SAE (SAEConfig)",
                     defaults={"arch": "switch", "n_experts": 8})
    add_config_flags(p, TrainConfig, ("n_steps", "lr", "grad_clip", "seed", "log_every"),
                     group="training (TrainConfig)", defaults={"n_steps": 100})
    p.add_argument("--batch-size", type=int, default=4096, help="activations per rank per step (default: %(default)s)")
    p.add_argument("--out", help="checkpoint folder, written by rank 0 (loads with switch_sae_mini.load)")
    p.add_argument("--bench", action="store_true", help="report per-rank throughput and communication time")
    p.add_argument("--warmup", type=int, default=2, help="--bench: steps left out of the medians (default: %(default)s)")
    p.set_defaults(run=_run)
