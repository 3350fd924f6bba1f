"""Subcommand distributed: data-parallel (every architecture) or expert-parallel (Switch) training under torchrun.

    torchrun --nproc_per_node=2 -m switch_sae_mini distributed --mode expert --arch switch --n-experts 8

Every rank runs this command; rank 0 prints the log and writes --out (training snapshots every
--checkpoint-every steps and at the end; --resume continues from the newest). The step itself is training/distributed.py
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
    from ..training.distributed import data_parallel_step, init_from_env, shutdown
    from ..training.distributed_checkpoint import resume_distributed, save_distributed
    from ..training.expert_parallel import expert_parallel_step

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
        base_lr = train_cfg.learning_rate(sae_cfg.d_sae)
        model, optimizer, state = resume_distributed(args.out if args.resume else None,
                                                     make_sae(sae_cfg).to(device), args.mode, base_lr)
        start_step = state["step"] if state else 0
        if rank == 0 and args.resume:
            print(f"resuming {args.out} at step {start_step}" if state else
                  f"no checkpoint in {args.out} yet: starting at step 0")
        for _ in range(start_step):  # the data stream is deterministic: skip what the checkpoint has seen
            next(batches)
        step_fn = expert_parallel_step if args.mode == "expert" else data_parallel_step
        model.train()
        seconds, comm = [], []
        for step in range(start_step, train_cfg.n_steps):
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
            due = train_cfg.checkpoint_every and (step + 1) % train_cfg.checkpoint_every == 0
            if args.out and (due or step == train_cfg.n_steps - 1):
                save_distributed(args.out, model, optimizer, {"step": step + 1, "train_config": train_cfg.to_dict(),
                                                              "history": []}, keep=train_cfg.keep_checkpoints)
        if rank == 0 and args.out:
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
    add_config_flags(p, SAEConfig, ("arch", "d_in", "d_sae", "k", "n_experts", "lb_coeff", "shared_expert",
                                    "k_shared", "router_top_e"), group="SAE (SAEConfig)",
                     defaults={"arch": "switch", "n_experts": 8})
    add_config_flags(p, TrainConfig, ("n_steps", "lr", "grad_clip", "seed", "log_every", "checkpoint_every",
                                      "keep_checkpoints"),
                     group="training (TrainConfig)", defaults={"n_steps": 100})
    p.add_argument("--batch-size", type=int, default=4096, help="activations per rank per step (default: %(default)s)")
    p.add_argument("--out", help="checkpoint folder, written by rank 0 in the single-process format (loads with "
                                 "switch_sae_mini.load; resumes single-process too)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out (any world size)")
    p.add_argument("--bench", action="store_true", help="report per-rank throughput and communication time")
    p.add_argument("--warmup", type=int, default=2, help="--bench: steps left out of the medians (default: %(default)s)")
    p.set_defaults(run=_run)
