"""Training-step throughput of TopK and Switch SAEs on this machine (not part of the test suite).

    python -m switch_sae_mini bench                    # GPT-2 size at batch 4096 and 16384, bundled-model size
    python -m switch_sae_mini bench --quick            # GPT-2 size, batch 4096, the variants behind the targets
    python -m switch_sae_mini bench --shape bundled    # d_in 128, d_sae 4096 only
    python -m switch_sae_mini bench --peers .venv-peers/bin/python   # + SAELens / sparsify in the same run
    python -m switch_sae_mini bench --distributed 2    # torchrun, 2 CPU ranks: expert- and data-parallel Switch
    python -m switch_sae_mini bench --device cuda --json out/bench.json   # on a GPU; JSON next to the tables

One step is exactly what `train()` runs (`train.training_step`: decoder renorm, forward, backward, clip, decoder-grad
projection, Adam, dead-latent counters), on synthetic activations with a fixed seed: fp32 on CPU, the package's
autocast on CUDA (bf16 where supported; `--device cuda`), with timers that synchronise the device. Each variant: `--warmup`
steps, then the median of `--steps` timed steps. Every ratio in the printed table comes from this one run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import SAEConfig, TrainConfig
from ..data.toy import synthetic_batches
from ..device import autocast_context, autocast_dtype, cpu_name, peak_memory_bytes, synchronize
from ..flops import flop_matched, reference_forward_flops, training_flops, width_matched
from ..saes import make_sae
from ..training.step import make_optimizer, training_step
from .report import SHAPES, print_table, table_json, write_json

# Runs in the peers' own interpreter, so it lives outside the package (a source checkout has it).
PEER_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


@dataclass
class Result:
    shape: str
    batch: int
    name: str
    cfg: SAEConfig | None
    ms_per_step: float
    phases_ms: dict[str, float]
    flops_per_step: float
    peak_mib: float = 0.0

    @property
    def acts_per_s(self) -> float:
        return self.batch / (self.ms_per_step / 1000)


def variants(shape: str, quick: bool) -> dict[str, SAEConfig]:
    """Named configs: dense TopK (plain autograd and ours), width-/FLOP-matched Switch (plain, top-2 and with a
    shared expert), the masked reference."""
    topk = SAEConfig(arch="topk", **SHAPES[shape])
    out = {"TopK, plain autograd": topk.replace(fused=False), "TopK (ours)": topk}
    width_es = (8, 32) if quick else (4, 8, 16, 32, 64)
    for n_experts in width_es:
        out[f"Switch width-matched E={n_experts}"] = width_matched(topk, n_experts)
    out["Switch width-matched E=32, plain autograd"] = width_matched(topk, 32).replace(fused=False)
    if not quick:
        for n_experts in (2, 4, 8):
            out[f"Switch FLOP-matched E={n_experts}"] = flop_matched(topk, n_experts)
        # the variants at the same per-token FLOPs (docs/design-notes.md §12): top-2 experts of half the width,
        # and a shared expert of a quarter of the width with k/4 of the TopK's k
        out["Switch top-2 FLOP-matched E=8"] = flop_matched(topk, 8, router_top_e=2)
        out["Switch + shared expert FLOP-matched E=8"] = flop_matched(topk, 8, shared_expert=topk.d_sae // 4,
                                                                     k_shared=topk.k // 4)
        out["Switch E=32, masked reference (paper code)"] = width_matched(topk, 32).replace(routed=False,
                                                                                          fused=False)
    return out


def time_training(cfg: SAEConfig, data: list[torch.Tensor], warmup: int, steps: int,
                  device: torch.device = torch.device("cpu")) -> tuple[float, dict, float]:
    """Median ms per training step, the median ms of each phase (forward / backward / optimizer) and the peak
    memory in MiB. On CUDA the step runs under the package's autocast (bf16 where supported) and every timer
    synchronises the device first."""
    torch.manual_seed(0)
    sae = make_sae(cfg).to(device)
    sae.train()
    train_cfg = TrainConfig(n_steps=10 ** 9)  # never reaches the LR decay
    base_lr = train_cfg.learning_rate(cfg.d_sae)
    optimizer = make_optimizer(sae, base_lr)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    totals, phases = [], {"forward": [], "backward": [], "optimizer": []}
    for step in range(warmup + steps):
        x = data[step % len(data)]
        split: dict[str, float] = {}
        synchronize(device)
        start = time.perf_counter()
        with autocast_context(device):
            training_step(sae, x, optimizer, train_cfg, step, base_lr, phases=split)
        synchronize(device)
        elapsed = time.perf_counter() - start
        if step >= warmup:
            totals.append(elapsed * 1000)
            for name in phases:
                phases[name].append(split[name] * 1000)
    peak = peak_memory_bytes(device) / 2 ** 20  # CUDA: since the reset above; CPU: the process's peak RSS
    del sae, optimizer
    return statistics.median(totals), {n: statistics.median(v) for n, v in phases.items()}, peak


def time_encoder_matmul(shape: str, data: list[torch.Tensor], repeats: int,
                        device: torch.device = torch.device("cpu")) -> float:
    """Median ms of the dense encoder's forward matmul alone: (x - b_dec) @ W_enc + b_enc. No TopK SAE training
    step can be faster than this, so it is the lower bound the issue measures TopK against."""
    d_in, d_sae = SHAPES[shape]["d_in"], SHAPES[shape]["d_sae"]
    W_enc = torch.randn(d_in, d_sae, device=device) / d_in ** 0.5
    b_enc, b_dec = torch.zeros(d_sae, device=device), torch.zeros(d_in, device=device)
    out = torch.empty(data[0].shape[0], d_sae, device=device)  # preallocated: the matmul alone, no page faults
    dtype = autocast_dtype(device)
    if dtype != torch.float32:  # what autocast runs the encoder in
        W_enc, b_enc, b_dec, out = W_enc.to(dtype), b_enc.to(dtype), b_dec.to(dtype), out.to(dtype)
    times = []
    for i in range(repeats + 2):
        x = data[i % len(data)].to(dtype)
        synchronize(device)
        start = time.perf_counter()
        torch.addmm(b_enc, x - b_dec, W_enc, out=out)
        synchronize(device)
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def resolve_device(name: str) -> torch.device:
    """--device: cpu, cuda or auto (cuda when torch sees a GPU, else cpu)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {name}: torch sees no CUDA GPU here (torch {torch.__version__}); use "
                         f"--device cpu, or --device auto to take a GPU only when there is one")
    return torch.device(name)


def run_peers(python: str, shape: str, data: list[torch.Tensor], warmup: int, steps: int,
              device: torch.device = torch.device("cpu")) -> list[dict]:
    """SAELens / sparsify TopK steps on the same batches, in their own interpreter (SAELens pins
    transformer-lens < 4; this package needs 4). Returns one dict per peer (name, ms_per_step or error)."""
    from safetensors.torch import save_file

    if not PEER_SCRIPT.is_file():
        raise SystemExit(f"error: --peers needs a source checkout: {PEER_SCRIPT} is missing (the peer benchmark runs "
                         "in the peers' own interpreter, so it is not installed with the package).")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batches.safetensors"
        save_file({f"batch_{i}": x.cpu().contiguous() for i, x in enumerate(data)}, str(path))
        cmd = [python, str(PEER_SCRIPT), "--d-in", str(SHAPES[shape]["d_in"]), "--d-sae",
               str(SHAPES[shape]["d_sae"]), "--k", str(SHAPES[shape]["k"]), "--batch", str(data[0].shape[0]),
               "--warmup", str(warmup), "--steps", str(steps), "--data", str(path), "--device", device.type]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        print(f"  peers failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}", file=sys.stderr)
    peers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for peer in peers:
        if "error" in peer:
            print(f"  peer {peer['name']} skipped: {peer['error']}", file=sys.stderr)
    return [peer for peer in peers if "ms_per_step" in peer]


def run_distributed(n_procs: int, steps: int, warmup: int) -> None:
    """Distributed mode: the same Switch SAE step with torchrun across n_procs CPU ranks (gloo), expert parallel and
    data parallel; prints per-rank throughput and the time in all_to_all / all_reduce (training/distributed.py)."""
    threads = max(1, (os.cpu_count() or 1) // n_procs)  # ranks share the cores: no oversubscription
    for mode in ("expert", "ddp"):
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n_procs}",
               "-m", "switch_sae_mini", "distributed", "--mode", mode, "--arch", "switch", "--d-in", "128",
               "--d-sae", "4096", "--k", "32", "--n-experts", "8", "--batch-size", "4096",
               "--steps", str(warmup + steps), "--warmup", str(warmup), "--log-every", str(warmup + steps), "--bench"]
        print(f"\n### distributed, {mode} parallel, {n_procs} ranks x {threads} threads\n$ {' '.join(cmd[1:])}",
              flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def run(args) -> None:
    """`python -m switch_sae_mini bench` (flags: cli/bench.py)."""
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("error: --steps must be >= 1 and --warmup >= 0")
    if args.distributed:
        if args.distributed < 1:
            raise SystemExit("error: --distributed needs a number of processes >= 1")
        run_distributed(args.distributed, args.steps, args.warmup)
        return
    device = resolve_device(args.device)
    threads = torch.get_num_threads()
    where = (f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), host {cpu_name()}"
             if device.type == "cuda" else f"{cpu_name()}, {os.cpu_count()} cores, {threads} threads")
    precision = "bf16 autocast" if autocast_dtype(device) == torch.bfloat16 else "fp32"
    print(f"switch_sae_mini bench: {where}, torch {torch.__version__}, {precision}, median of {args.steps} "
          f"steps after {args.warmup} warm-up")
    print(f"command: python -m switch_sae_mini bench {' '.join(sys.argv[2:])}")
    shapes = list(SHAPES) if args.shape == "all" else [args.shape]
    tables: list[dict] = []
    if args.peers is None:
        print("peers: skipped (pass --peers .venv-peers/bin/python after `make bench-peers`; SAELens pins "
              "transformer-lens < 4, so peers live in their own virtualenv)")
    for shape in shapes:
        batches = args.batch or ([4096] if args.quick or shape == "bundled" else [4096, 16384])
        for batch in batches:
            data = [x.to(device) for x in synthetic_batches(SHAPES[shape]["d_in"], batch)]
            lower_bound = time_encoder_matmul(shape, data, max(5, args.steps), device)
            results = []
            # at the large batch only the variants the targets compare (the rest would take ~30 more minutes)
            for name, cfg in variants(shape, args.quick or batch > 4096).items():
                required = name == "TopK (ours)"
                if args.only and not required and not any(s in name for s in args.only):
                    continue
                ms, phases, peak = time_training(cfg, data, args.warmup, args.steps, device)
                # the masked reference executes the dense encoder: count what it runs (docs/design-notes.md §5)
                flops = (training_flops(cfg)["total"] if cfg.routed or cfg.arch != "switch"
                         else 3 * reference_forward_flops(cfg)["total"]) * batch
                results.append(Result(shape, batch, name, cfg, ms, phases, flops, peak))
                print(f"  {shape} b={batch} {name}: {ms:.0f} ms/step", file=sys.stderr, flush=True)
            peers = run_peers(args.peers, shape, data, args.warmup, args.steps, device) \
                if args.peers and batch <= 4096 else []
            print_table(shape, batch, results, lower_bound, peers, device)
            tables.append(table_json(shape, batch, results, lower_bound, peers))
    if args.json:
        write_json(args.json, where, precision, device, tables)
