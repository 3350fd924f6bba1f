"""Subcommands train, demo and ledger.

    python -m switch_sae_mini train --activations acts.safetensors --arch switch --d-sae 4096 --k 32 \
        --n-experts 8 --steps 2000 --out checkpoints/switch8
    python -m switch_sae_mini demo                      # TopK vs FLOP-matched Switch on the bundled model
    python -m switch_sae_mini ledger --d-in 768 --d-sae 24576 --k 32

Activations: a .safetensors file (tensor "activations", or its only tensor) or a .npy file, shaped [n, d_in].
Pickle formats (.pt) are refused on purpose: loading a pickle can run arbitrary code.
"""

from __future__ import annotations

import argparse
import json

import torch

from .. import flops, paper
from ..config import SAEConfig, TrainConfig
from .flags import add_config_flags, config_from_args


def _train(args: argparse.Namespace) -> int:
    from ..data.batches import load_activations, shuffled_batches
    from ..saes import metrics
    from ..training import train

    acts = load_activations(args.activations, args.key)
    n_eval = max(1, int(args.eval_fraction * acts.shape[0]))
    if acts.shape[0] - n_eval < 1:
        raise SystemExit(f"error: only {acts.shape[0]} activations; need more than the held-out {n_eval}.")
    perm = torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(args.seed))
    eval_acts, train_acts = acts[perm[:n_eval]], acts[perm[n_eval:]]
    sae_cfg = config_from_args(SAEConfig, args, d_in=acts.shape[1])
    if args.batch_size > len(train_acts):
        raise SystemExit(f"error: --batch-size {args.batch_size} exceeds the {len(train_acts)} training activations.")
    train_cfg = config_from_args(TrainConfig, args, log_every=max(1, args.n_steps // 20))
    result = train(sae_cfg, shuffled_batches(train_acts, args.batch_size, args.seed), train_cfg,
                   checkpoint_dir=args.out, resume=args.resume, progress=not args.quiet)
    final = metrics.evaluate_sae(result.sae, eval_acts.split(args.batch_size))
    final["dead_fraction"] = metrics.dead_fraction(result.sae)
    final["train_seconds"] = round(result.wall_time, 2)
    print(json.dumps({"sae": sae_cfg.to_dict(), "held_out_metrics": final}, indent=2))
    return 0


def _ledger(args: argparse.Namespace) -> int:
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

    from ..data import harvest, load_model, shuffled_batches
    from ..evaluation import SpliceEvaluator, make_eval_tokens
    from ..saes import metrics
    from ..training import train

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model = load_model(args.model)
    acts, _, buffer = harvest(model, args.tokens, seed=args.seed, progress=not args.quiet)
    held_out, train_acts = acts[:8192], acts[8192:]
    evaluator = SpliceEvaluator(model, make_eval_tokens(model, n_contexts=args.eval_contexts), hook=buffer.hook)
    print(f"{args.model} {buffer.hook}: {len(acts):,} activations (d_in={acts.shape[1]}) harvested in "
          f"{time.perf_counter() - t0:.0f} s; clean CE {evaluator.evaluate(lambda x: x).ce_clean:.3f} nats")
    dense = config_from_args(SAEConfig, args, arch="topk", d_in=acts.shape[1], n_experts=1)
    configs = {"TopK": dense, f"Switch FLOP-matched E={args.n_experts}": flops.flop_matched(dense, args.n_experts),
               f"Switch width-matched E={args.n_experts}": flops.width_matched(dense, args.n_experts)}
    header = f"{'SAE':30s} {'d_sae':>6s} {'MFLOP/tok':>9s} {'FVU':>7s} {'L0':>5s} {'loss rec.':>9s} " \
             f"{'dead':>6s} {'train s':>7s}"
    rows = []
    for name, cfg in configs.items():
        result = train(cfg, shuffled_batches(train_acts, args.batch_size, args.seed),
                       config_from_args(TrainConfig, args), progress=not args.quiet)
        m = metrics.evaluate_sae(result.sae, held_out.split(2048))
        splice = evaluator.evaluate(result.sae)
        rows.append(f"{name:30s} {cfg.d_sae:6d} {flops.forward_flops(cfg)['total'] / 1e6:9.3f} {m['fvu']:7.4f} "
                    f"{m['l0']:5.1f} {splice.loss_recovered:9.4f} {metrics.dead_fraction(result.sae):6.1%} "
                    f"{result.wall_time:7.1f}")
    print(f"\n{args.n_steps} steps x {args.batch_size} activations per SAE; held-out FVU and L0 on 8192 activations; "
          f"loss recovered on {args.eval_contexts} validation contexts; dead = not fired in the last "
          f"{args.dead_after_tokens:,} training tokens")
    print(header, "-" * len(header), *rows, sep="\n")
    return 0




SAE_FIELDS = ("arch", "d_sae", "k", "n_experts", "l1_coeff", "lb_coeff", "auxk_coeff", "dead_after_tokens", "gate")
TRAIN_FIELDS = ("n_steps", "lr", "seed", "checkpoint_every", "keep_checkpoints")


def register(sub) -> None:
    t = sub.add_parser("train", help="train an SAE on saved activations and print held-out metrics")
    t.add_argument("--activations", required=True, help=".safetensors or .npy file of shape [n, d_in]")
    t.add_argument("--key", help="tensor name inside a .safetensors file")
    add_config_flags(t, SAEConfig, SAE_FIELDS, group="SAE (SAEConfig)")
    add_config_flags(t, TrainConfig, TRAIN_FIELDS, group="training (TrainConfig)")
    t.add_argument("--batch-size", type=int, default=4096, help="activations per step (default: %(default)s)")
    t.add_argument("--eval-fraction", type=float, default=0.05,
                   help="held out for the final metrics (default: %(default)s)")
    t.add_argument("--out", help="checkpoint folder: training snapshots, the last one at the end (load it with "
                                 "switch_sae_mini.load)")
    t.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=_train)

    g = sub.add_parser("ledger", help="print the FLOP ledger of a TopK SAE and its Switch counterparts")
    add_config_flags(g, SAEConfig, ("d_in", "d_sae", "k"),
                     defaults={"d_in": paper.PAPER_D_IN, "d_sae": paper.PAPER_D_SAE, "k": 32})
    g.add_argument("--flop-matched", type=int, nargs="*", default=list(paper.PAPER_FLOP_MATCHED),
                   help="expert counts E of the FLOP-matched rows (default: %(default)s)")
    g.add_argument("--width-matched", type=int, nargs="*", default=list(paper.PAPER_WIDTH_MATCHED),
                   help="expert counts E of the width-matched rows (default: %(default)s)")
    g.set_defaults(run=_ledger)

    d = sub.add_parser("demo", help="TopK vs FLOP-/width-matched Switch SAEs on the bundled model, end to end")
    d.add_argument("--model", default="tiny-gpt2", help="language model (default: %(default)s)")
    d.add_argument("--tokens", type=int, default=1_000_000, help="activations to harvest (default: %(default)s)")
    # the demo's own defaults: a small dense SAE and a short run at a higher LR, sized for the bundled model
    add_config_flags(d, SAEConfig, ("d_sae", "k", "n_experts", "dead_after_tokens"), group="SAE (SAEConfig)",
                     defaults={"d_sae": 1024, "k": 16, "n_experts": 8, "dead_after_tokens": 200_000})
    add_config_flags(d, TrainConfig, ("n_steps", "lr", "seed"), group="training (TrainConfig)",
                     defaults={"n_steps": 800, "lr": 1e-3})
    d.add_argument("--batch-size", type=int, default=1024, help="activations per step (default: %(default)s)")
    d.add_argument("--eval-contexts", type=int, default=32,
                   help="validation contexts for loss recovered (default: %(default)s)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(run=_demo)
