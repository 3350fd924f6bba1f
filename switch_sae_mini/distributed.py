"""Multi-process training with torch.distributed: data parallel (every architecture) and expert parallel (Switch).

    torchrun --nproc_per_node=8 -m switch_sae_mini.distributed --mode expert --arch switch --n-experts 32 ...

One step of either mode equals `train.training_step` on the concatenation of the ranks' batches (rank order), up to
float rounding (tests/test_distributed.py):

- gradients: each rank backpropagates its local mean loss; the gradients are summed weighted by n_local / n_global
  (data parallel: one all_reduce of all gradients; expert parallel: of the replicated ones only).
- Switch load balancing, E * sum_i f_i P_i, is nonlinear in the batch: f (no gradient) is computed from the global
  expert counts, P locally; the n-weighted average of the local terms is then exactly the global loss and gradient.
  Likewise TopK's AuxK term, a token mean times the batch's mean squared activation, uses the global mean square.
- the first-batch geometric-median init of b_dec / b_router uses the all-gathered global first batch.
- dead-latent counters see which latents fired on any rank and advance by the global token count (AuxK of TopK SAEs
  reads them, so this keeps AuxK identical too).
- gradient clipping uses the global norm (expert parallel: sharded squared norms summed over ranks).

The step order mirrors training_step: init, renormalise decoder rows, LR, forward, backward, reduce, clip, project the
decoder gradient, Adam, dead counters.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import torch
import torch.distributed as dist
from jaxtyping import Float
from torch import Tensor

from . import metrics
from .config import TrainConfig
from .expert_parallel import ExpertShard, expert_parallel_forward
from .sae import SAEBase
from .train import lr_factor


class StepResult(NamedTuple):
    """Global values of one step (all ranks' tokens): what training_step reports on the full batch."""

    loss: float
    mse_loss: float
    lb_loss: float
    l0: float
    n_tokens: int


def init_from_env() -> tuple[int, int, torch.device]:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Backend nccl when CUDA is available (one GPU per local rank), gloo on CPU. Returns (rank, world_size, device).
    """
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise RuntimeError(f"environment variables {missing} are not set; launch with torchrun, e.g. "
                           f"`torchrun --nproc_per_node=2 -m switch_sae_mini.distributed ...`.")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def shutdown() -> None:
    """Leave the process group and let gloo's worker threads finish before the interpreter exits.

    A gloo worker thread releases each finished collective (and the Python-owned tensors it holds, which needs the
    GIL) only after the caller has already been woken. If Python starts finalising in that window, the thread
    cannot take the GIL and the process aborts with "terminate called without an active exception" (seen here in
    about 1 of 10 two-rank CPU runs, torch 2.13; see pytorch/pytorch#179291). Sleeping briefly releases the GIL.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        time.sleep(0.2)


def all_gather_rows(x: Float[Tensor, "n d"]) -> Float[Tensor, "n_total d"]:
    """Concatenate every rank's rows in rank order (ranks may hold different row counts)."""
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    padded = x.new_zeros(max(sizes), *x.shape[1:])
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def _prepare(model, x: Tensor, optimizer, cfg: TrainConfig, step: int, base_lr: float) -> None:
    """training_step's first three moves: init biases from the (global) first batch, renormalise, set the LR."""
    if not bool(model.initialized):
        model.init_from_batch(all_gather_rows(x))
    if model.uses_decoder_norm:
        model.normalize_decoder()
    for group in optimizer.param_groups:
        group["lr"] = base_lr * lr_factor(step, cfg)


def _grads(params) -> list[Tensor]:
    """Gradients, zeros for parameters without one (so every rank reduces the same layout)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return [p.grad for p in params]


def _reduce(grads: list[Tensor], extra: list[Tensor],
            timings: dict[str, float] | None) -> tuple[list[Tensor], Tensor]:
    """One all_reduce (sum) of the gradients and some extra 1-D tensors; gradients are written back in place."""
    flat = torch.cat([g.reshape(-1) for g in grads] + extra)
    t0 = time.perf_counter()
    dist.all_reduce(flat)
    if timings is not None:
        if flat.is_cuda:
            torch.cuda.synchronize(flat.device)
        timings["all_reduce"] = timings.get("all_reduce", 0.0) + time.perf_counter() - t0
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view(g.shape))
        offset += g.numel()
    return grads, flat[offset:]


def _check_finite(loss: float, step: int) -> None:
    if not torch.isfinite(torch.tensor(loss)):
        raise FloatingPointError(f"loss became {loss} at step {step}; lower the learning rate "
                                 f"(TrainConfig.lr) or check the activations' scale.")


def data_parallel_step(sae: SAEBase, x: Float[Tensor, "batch d_in"], optimizer: torch.optim.Optimizer,
                       cfg: TrainConfig, step: int, base_lr: float,
                       timings: dict[str, float] | None = None) -> StepResult:
    """One data-parallel step: every rank holds the whole SAE and its own batch; all ranks stay identical.
    `timings["all_reduce"]` accumulates the seconds spent in the gradient all_reduce."""
    _prepare(sae, x, optimizer, cfg, step, base_lr)
    if sae.cfg.arch == "relu":
        warm = max(1, int(cfg.l1_warmup * cfg.n_steps))
        out = sae(x, l1_scale=min(1.0, (step + 1) / warm) if cfg.l1_warmup > 0 else 1.0)
    else:
        out = sae(x)
    loss, lb = out.loss, out.lb_loss
    if sae.cfg.arch == "switch":  # swap the local LB term for one with the global f (see the module docstring)
        counts = torch.bincount(out.expert_idx.reshape(-1), minlength=sae.cfg.n_experts).to(x.dtype)
        dist.all_reduce(counts)
        lb = sae.cfg.n_experts * (counts / counts.sum() * out.router_probs.mean(0)).sum()
        loss = loss + sae.cfg.lb_coeff * (lb - out.lb_loss)
    if sae.cfg.arch == "topk":  # AuxK's error is scaled by the batch's mean squared activation (sae.auxk_error):
        sums = torch.stack([x.detach().pow(2).sum(), x.new_tensor(x.numel())])  # use the global one instead
        dist.all_reduce(sums)
        aux = out.auxk_loss * (sums[0] / sums[1]) / x.detach().pow(2).mean().clamp_min(1e-30)
        loss = loss + sae.cfg.auxk_coeff * (aux - out.auxk_loss)
    loss.backward()

    n = x.shape[0]
    params = list(sae.parameters())
    fired = metrics.fired_latents(out).to(x.dtype)
    stats = torch.stack([torch.ones(()), loss.detach(), out.mse_loss.detach(), lb.detach(),
                         torch.tensor(metrics.l0(out))]).to(x)
    # scaled by n_local so that the sum over ranks, divided by the summed n, is the global mean
    grads, extra = _reduce([g.mul_(n) for g in _grads(params)], [fired, stats * n], timings)
    fired_any, (n_global, *means) = extra[:-5] > 0, extra[-5:].tolist()
    for g in grads:
        g.div_(n_global)
    result = StepResult(*(m / n_global for m in means), n_tokens=int(n_global))
    _check_finite(result.loss, step)
    if cfg.grad_clip > 0:  # the gradients are identical on every rank now: a local clip is the global one
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    if sae.uses_decoder_norm:
        sae.project_decoder_grad()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sae.update_dead_counter(fired_any, int(n_global))
    return result


def expert_parallel_step(shard: ExpertShard, x: Float[Tensor, "batch d_in"], optimizer: torch.optim.Optimizer,
                         cfg: TrainConfig, step: int, base_lr: float,
                         timings: dict[str, float] | None = None) -> StepResult:
    """One expert-parallel step of a Switch SAE; `timings` accumulates "all_to_all" (token and gradient
    exchanges) and "all_reduce" (replicated gradients) seconds."""
    _prepare(shard, x, optimizer, cfg, step, base_lr)
    fwd = expert_parallel_forward(shard, x, timings)
    loss = fwd.mse_loss + shard.cfg.lb_coeff * fwd.lb_loss
    weight = x.shape[0] / fwd.n_global
    (loss * weight).backward()  # owners accumulate every source rank's weighted contribution

    sharded, replicated = _grads(shard.sharded_parameters()), _grads(shard.replicated_parameters())
    shard_sq = torch.stack([g.pow(2).sum() for g in sharded]).sum()
    stats = torch.stack([loss.detach(), fwd.mse_loss.detach(), fwd.lb_loss.detach()]) * weight
    replicated, extra = _reduce(replicated, [shard_sq[None], stats, fwd.l0_sum[None]], timings)
    total_sq, (loss_g, mse_g, lb_g, l0_sum) = extra[0], extra[1:].tolist()
    result = StepResult(loss_g, mse_g, lb_g, l0_sum / fwd.n_global, fwd.n_global)
    _check_finite(result.loss, step)
    if cfg.grad_clip > 0:  # clip_grad_norm_'s rule with the global norm (replicated gradients counted once)
        total_norm = (total_sq + sum(g.pow(2).sum() for g in replicated)).sqrt()
        torch._foreach_mul_(sharded + replicated, (cfg.grad_clip / (total_norm + 1e-6)).clamp(max=1.0))
    shard.project_decoder_grad()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    shard.update_dead_counter(fwd.fired, fwd.n_global)
    return result


# ----------------------------------------------------------------------------- torchrun entry point


def synthetic_batches(d_in: int, global_batch: int, seed: int):
    """The CLI's default data: ToyData batches of global_batch rows; rank r trains on its r-th slice."""
    from .toy import ToyData

    return ToyData(d_in=d_in, seed=seed).batches(global_batch)


def _parse(argv):
    import argparse

    p = argparse.ArgumentParser(prog="torchrun --nproc_per_node=N -m switch_sae_mini.distributed",
                                description="Data-parallel (ddp) or expert-parallel (expert, Switch only) training.")
    p.add_argument("--mode", choices=("ddp", "expert"), default="ddp")
    p.add_argument("--arch", choices=("relu", "topk", "switch"), default="switch")
    p.add_argument("--activations", help="[n, d_in] .safetensors/.npy file; default: synthetic ToyData")
    p.add_argument("--d-in", type=int, default=128, help="synthetic data only (a file sets d_in)")
    p.add_argument("--d-sae", type=int, default=4096)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--n-experts", type=int, default=8)
    p.add_argument("--lb-coeff", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=4096, help="activations per rank per step")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="checkpoint folder, written by rank 0 (loads with switch_sae_mini.load)")
    p.add_argument("--bench", action="store_true", help="report per-rank throughput and communication time")
    p.add_argument("--warmup", type=int, default=2, help="--bench: steps left out of the medians")
    p.add_argument("--log-every", type=int, default=10)
    return p.parse_args(argv)


def main(argv=None) -> int:
    import json

    from . import SAEConfig, make_sae, save
    from .bench_distributed import rank_summary, report
    from .expert_parallel import gather_switch_sae
    from .train import make_optimizer

    args = _parse(argv)
    rank, world, device = init_from_env()
    try:
        global_batch = args.batch_size * world
        if args.activations:
            from .__main__ import load_activations
            from .notebook import shuffled_batches

            acts = load_activations(args.activations)
            d_in, batches = acts.shape[1], shuffled_batches(acts, global_batch, args.seed)
        else:
            d_in, batches = args.d_in, synthetic_batches(args.d_in, global_batch, args.seed)
        sae_cfg = SAEConfig(arch=args.arch, d_in=d_in, d_sae=args.d_sae, k=args.k,
                            n_experts=args.n_experts if args.arch == "switch" else 1, lb_coeff=args.lb_coeff)
        train_cfg = TrainConfig(n_steps=args.steps, lr=args.lr, seed=args.seed, grad_clip=args.grad_clip)
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        sae = make_sae(sae_cfg).to(device)
        model = ExpertShard(sae, rank, world) if args.mode == "expert" else sae
        step_fn = expert_parallel_step if args.mode == "expert" else data_parallel_step
        base_lr = train_cfg.learning_rate(sae_cfg.d_sae)
        optimizer = make_optimizer(model, base_lr)
        model.train()
        seconds, comm = [], []
        for step in range(args.steps):
            x = next(batches)[rank * args.batch_size:(rank + 1) * args.batch_size].to(device, torch.float32)
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            result = step_fn(model, x, optimizer, train_cfg, step, base_lr, timings=timings)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - t0)
            comm.append(timings)
            if rank == 0 and ((step + 1) % args.log_every == 0 or step == args.steps - 1):
                print(json.dumps({"step": step + 1, **{k: round(v, 6) for k, v in result._asdict().items()}}))
        final = gather_switch_sae(model) if args.mode == "expert" else model
        if rank == 0 and args.out:
            save(final, args.out)
            print(f"saved {args.out}")
        if args.bench:
            header = (f"{args.mode} {args.arch}: world_size={world}, {args.batch_size} activations per rank, "
                      f"d_in={d_in} d_sae={args.d_sae} k={args.k} E={sae_cfg.n_experts}")
            report(rank_summary(seconds, comm, args.batch_size, args.warmup), header)
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
