"""Command line: train any architecture on a saved tensor of activations, without notebooks.

    python -m switch_sae_mini train --activations acts.safetensors --arch switch --d-sae 4096 --k 32 \
        --n-experts 8 --steps 2000 --out checkpoints/switch8
    python -m switch_sae_mini ledger --d-in 768 --d-sae 24576 --k 32

Activations: a .safetensors file (tensor "activations", or its only tensor) or a .npy file, shaped [n, d_in].
Pickle formats (.pt) are refused on purpose: loading a pickle can run arbitrary code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor


def load_activations(path: str | Path, key: str | None = None) -> Tensor:
    """Read an [n, d_in] float tensor from .safetensors or .npy (never from a pickle)."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: --activations {path} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(path)
        if key is None and len(tensors) != 1 and "activations" not in tensors:
            raise SystemExit(f"error: {path} holds tensors {sorted(tensors)}; choose one with --key.")
        name = key or ("activations" if "activations" in tensors else next(iter(tensors)))
        if name not in tensors:
            raise SystemExit(f"error: --key {name!r} not in {path} (it has {sorted(tensors)}).")
        acts = tensors[name]
    elif path.suffix == ".npy":
        import numpy as np

        acts = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        raise SystemExit(f"error: --activations must be a .safetensors or .npy file, got {path.name} "
                         f"(pickled .pt files are not loaded: convert with safetensors.torch.save_file).")
    if acts.ndim != 2 or not acts.is_floating_point():
        raise SystemExit(f"error: activations must be a float matrix [n, d_in], got {tuple(acts.shape)} "
                         f"{acts.dtype}.")
    return acts.float()


def _train(args: argparse.Namespace) -> int:
    from . import SAEConfig, TrainConfig, metrics, save, train
    from .notebook import shuffled_batches

    acts = load_activations(args.activations, args.key)
    n_eval = max(1, int(args.eval_fraction * acts.shape[0]))
    if acts.shape[0] - n_eval < 1:
        raise SystemExit(f"error: only {acts.shape[0]} activations; need more than the held-out {n_eval}.")
    perm = torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(args.seed))
    eval_acts, train_acts = acts[perm[:n_eval]], acts[perm[n_eval:]]
    sae_cfg = SAEConfig(arch=args.arch, d_in=acts.shape[1], d_sae=args.d_sae, k=args.k,
                        n_experts=args.n_experts, l1_coeff=args.l1_coeff, lb_coeff=args.lb_coeff)
    if args.batch_size > len(train_acts):
        raise SystemExit(f"error: --batch-size {args.batch_size} exceeds the {len(train_acts)} training activations.")
    train_cfg = TrainConfig(n_steps=args.steps, lr=args.lr, seed=args.seed,
                            log_every=max(1, args.steps // 20), checkpoint_every=args.checkpoint_every)
    result = train(sae_cfg, shuffled_batches(train_acts, args.batch_size, args.seed), train_cfg,
                   checkpoint_dir=args.out, resume=args.resume, progress=not args.quiet)
    final = metrics.evaluate_sae(result.sae, eval_acts.split(args.batch_size))
    final["dead_fraction"] = metrics.dead_fraction(result.sae)
    final["train_seconds"] = round(result.wall_time, 2)
    if args.out:
        save(result.sae, args.out)
    print(json.dumps({"sae": sae_cfg.to_dict(), "held_out_metrics": final}, indent=2))
    return 0


def _ledger(args: argparse.Namespace) -> int:
    from . import SAEConfig, flops

    dense = SAEConfig(arch="topk", d_in=args.d_in, d_sae=args.d_sae, k=args.k)
    cfgs = {"TopK": dense}
    for e in args.flop_matched:
        cfgs[f"FLOP-matched E={e}"] = flops.flop_matched(dense, e)
    for e in args.width_matched:
        cfgs[f"width-matched E={e}"] = flops.width_matched(dense, e)
    print(flops.ledger_table(cfgs))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m switch_sae_mini", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an SAE on saved activations and print held-out metrics")
    t.add_argument("--activations", required=True, help=".safetensors or .npy file of shape [n, d_in]")
    t.add_argument("--key", help="tensor name inside a .safetensors file")
    t.add_argument("--arch", choices=["relu", "topk", "switch"], default="topk")
    t.add_argument("--d-sae", type=int, default=4096)
    t.add_argument("--k", type=int, default=32)
    t.add_argument("--n-experts", type=int, default=1)
    t.add_argument("--l1-coeff", type=float, default=5.0)
    t.add_argument("--lb-coeff", type=float, default=3.0)
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=4096)
    t.add_argument("--lr", type=float, default=None, help="default: 2e-4 / sqrt(d_sae / 2**14)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-fraction", type=float, default=0.05, help="held out for the final metrics")
    t.add_argument("--out", help="checkpoint folder (training state is saved there too)")
    t.add_argument("--checkpoint-every", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=_train)

    g = sub.add_parser("ledger", help="print the FLOP ledger of a TopK SAE and its Switch counterparts")
    g.add_argument("--d-in", type=int, default=768)
    g.add_argument("--d-sae", type=int, default=24576)
    g.add_argument("--k", type=int, default=32)
    g.add_argument("--flop-matched", type=int, nargs="*", default=[2, 4, 8])
    g.add_argument("--width-matched", type=int, nargs="*", default=[16, 32, 64, 128])
    g.set_defaults(run=_ledger)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .config import ConfigError
    from .sae import InputError

    args = build_parser().parse_args(argv)
    if getattr(args, "resume", False) and not args.out:
        raise SystemExit("error: --resume needs --out pointing at the run's checkpoint folder.")
    try:
        return args.run(args)
    except (ConfigError, InputError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
