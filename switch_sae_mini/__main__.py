"""Command line: train any architecture on a saved tensor of activations, without notebooks.

    python -m switch_sae_mini train --activations acts.safetensors --arch switch --d-sae 4096 --k 32 \
        --n-experts 8 --steps 2000 --out checkpoints/switch8
    python -m switch_sae_mini ledger --d-in 768 --d-sae 24576 --k 32
    python -m switch_sae_mini demo                      # TopK vs FLOP-matched Switch on the bundled model
    python -m switch_sae_mini paper --arch switch --k 32 --n-experts 16 --dry-run   # the paper's GPT-2 setting

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


def _demo(args: argparse.Namespace) -> int:
    """Harvest bundled-model activations, train TopK and a FLOP-matched Switch SAE, print a comparison."""
    import time

    from . import SAEConfig, TrainConfig, flops, metrics, train
    from .evaluation import SpliceEvaluator, make_eval_tokens
    from .models import load_model
    from .notebook import harvest, shuffled_batches

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model = load_model(args.model)
    acts, _, buffer = harvest(model, args.tokens, seed=args.seed, progress=not args.quiet)
    held_out, train_acts = acts[:8192], acts[8192:]
    evaluator = SpliceEvaluator(model, make_eval_tokens(model, n_contexts=args.eval_contexts), hook=buffer.hook)
    print(f"{args.model} {buffer.hook}: {len(acts):,} activations (d_in={acts.shape[1]}) harvested in "
          f"{time.perf_counter() - t0:.0f} s; clean CE {evaluator.evaluate(lambda x: x).ce_clean:.3f} nats")
    dense = SAEConfig(arch="topk", d_in=acts.shape[1], d_sae=args.d_sae, k=args.k,
                      dead_after_tokens=args.dead_after)
    configs = {"TopK": dense, f"Switch FLOP-matched E={args.n_experts}": flops.flop_matched(dense, args.n_experts),
               f"Switch width-matched E={args.n_experts}": flops.width_matched(dense, args.n_experts)}
    header = f"{'SAE':30s} {'d_sae':>6s} {'MFLOP/tok':>9s} {'FVU':>7s} {'L0':>5s} {'loss rec.':>9s} " \
             f"{'dead':>6s} {'train s':>7s}"
    rows = []
    for name, cfg in configs.items():
        result = train(cfg, shuffled_batches(train_acts, args.batch_size, args.seed),
                       TrainConfig(n_steps=args.steps, lr=args.lr, seed=args.seed), progress=not args.quiet)
        m = metrics.evaluate_sae(result.sae, held_out.split(2048))
        splice = evaluator.evaluate(result.sae)
        rows.append(f"{name:30s} {cfg.d_sae:6d} {flops.forward_flops(cfg)['total'] / 1e6:9.3f} {m['fvu']:7.4f} "
                    f"{m['l0']:5.1f} {splice.loss_recovered:9.4f} {metrics.dead_fraction(result.sae):6.1%} "
                    f"{result.wall_time:7.1f}")
    print(f"\n{args.steps} steps x {args.batch_size} activations per SAE; held-out FVU and L0 on 8192 activations; "
          f"loss recovered on {args.eval_contexts} validation contexts; dead = not fired in the last "
          f"{args.dead_after:,} training tokens")
    print(header, "-" * len(header), *rows, sep="\n")
    return 0


def _paper(args: argparse.Namespace) -> int:
    """The paper's GPT-2 setting. Prints the resolved configuration; trains only with a GPU and the hub."""
    from . import TrainConfig, flops
    from .presets import PAPER, missing_for_paper, paper_sae_config

    cfg = paper_sae_config(args.arch, args.k, args.n_experts, args.regime)
    n_steps = args.steps or PAPER.n_steps
    print(json.dumps({"data": PAPER.__dict__ | {"n_steps": n_steps}, "sae": cfg.to_dict(),
                      "lr": TrainConfig(n_steps=n_steps).learning_rate(cfg.d_sae),
                      "forward_flops_per_token": flops.forward_flops(cfg),
                      "params": flops.param_counts(cfg)["total"]}, indent=2))
    if args.dry_run:
        return 0
    missing = missing_for_paper()
    if missing:
        raise SystemExit("error: the paper preset needs " + "; ".join(missing) + ". Nothing was run.")
    from . import save, train  # pragma: no cover - needs a GPU and the hub
    from .activations import ActivationBuffer
    from .evaluation import evaluate_splice, make_eval_tokens
    from .models import load_model

    model = load_model(PAPER.model, device="cuda")
    buffer = ActivationBuffer(model, hook=PAPER.hook, source=PAPER.source, context_len=PAPER.context_len,
                              prepend_bos=PAPER.prepend_bos, batch_size=PAPER.batch_size, n_contexts=10_000,
                              device="cuda")
    result = train(cfg, buffer.batches(), TrainConfig(n_steps=n_steps, checkpoint_every=5000), device="cuda",
                   checkpoint_dir=args.out, resume=args.resume)
    save(result.sae, args.out)
    eval_tokens = make_eval_tokens(model, source=PAPER.source, split="train", prepend_bos=PAPER.prepend_bos)
    print(json.dumps({"final": result.final, "splice": evaluate_splice(model, result.sae, eval_tokens,
                                                                       PAPER.hook)._asdict()}, indent=2))
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

    d = sub.add_parser("demo", help="TopK vs FLOP-/width-matched Switch SAEs on the bundled model, end to end")
    d.add_argument("--model", default="tiny-gpt2")
    d.add_argument("--tokens", type=int, default=1_000_000, help="activations to harvest")
    d.add_argument("--d-sae", type=int, default=1024, help="width of the dense TopK SAE")
    d.add_argument("--k", type=int, default=16)
    d.add_argument("--n-experts", type=int, default=8)
    d.add_argument("--steps", type=int, default=800)
    d.add_argument("--batch-size", type=int, default=1024)
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--dead-after", type=int, default=200_000)
    d.add_argument("--eval-contexts", type=int, default=32)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(run=_demo)

    p = sub.add_parser("paper", help="the paper's GPT-2 setting (needs a GPU and the Hugging Face hub)")
    p.add_argument("--arch", choices=["topk", "switch"], default="topk")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--n-experts", type=int, default=16)
    p.add_argument("--regime", choices=["width", "flop"], default="width")
    p.add_argument("--steps", type=int, default=0, help="default: the paper's 100k")
    p.add_argument("--out", default="checkpoints/paper")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the configuration and exit")
    p.set_defaults(run=_paper)
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
