"""Subcommand paper: the paper's GPT-2 setting (docs/design-notes.md §4). `--dry-run` prints the resolved
configuration anywhere; training needs a CUDA GPU, the `datasets` package and the Hugging Face hub, and stops at
once, saying which is missing, without them.

    python -m switch_sae_mini paper --arch switch --k 32 --n-experts 16 --dry-run
"""

from __future__ import annotations

import argparse
import importlib.util
import json

import torch

from .. import flops
from ..config import SAEConfig, TrainConfig
from ..paper import PAPER, paper_sae_config
from .flags import add_config_flags


def missing_for_paper(check_hub: bool = True) -> list[str]:
    """What this machine lacks to run the paper preset (empty list: good to go)."""
    from ..data.models import hub_is_offline, hub_reachable

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (819M tokens per SAE take about a day on this 2-core CPU even for the "
                       "routed Switch SAE; use the bundled-model demo instead)")
    if importlib.util.find_spec("datasets") is None:
        missing.append("the `datasets` package (pip install datasets) to stream OpenWebText")
    if check_hub and (hub_is_offline() or not hub_reachable()):
        missing.append("the Hugging Face hub (GPT-2 weights and OpenWebText are downloaded from it)")
    return missing


def _paper(args: argparse.Namespace) -> int:
    """The paper's GPT-2 setting. Prints the resolved configuration; trains only with a GPU and the hub."""
    cfg = paper_sae_config(args.arch, args.k, args.n_experts, args.regime)
    n_steps = args.n_steps
    print(json.dumps({"data": PAPER.__dict__ | {"n_steps": n_steps}, "sae": cfg.to_dict(),
                      "lr": TrainConfig(n_steps=n_steps).learning_rate(cfg.d_sae),
                      "forward_flops_per_token": flops.forward_flops(cfg),
                      "params": flops.param_counts(cfg)["total"]}, indent=2))
    if args.dry_run:
        return 0
    missing = missing_for_paper()
    if missing:
        raise SystemExit("error: the paper preset needs " + "; ".join(missing) + ". Nothing was run.")
    from ..data import ActivationBuffer, load_model  # pragma: no cover - needs a GPU and the hub
    from ..evaluation import evaluate_splice, make_eval_tokens
    from ..training import save, train

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


def register(sub) -> None:
    p = sub.add_parser("paper", help="the paper's GPT-2 setting (needs a GPU and the Hugging Face hub)")
    add_config_flags(p, SAEConfig, ("arch", "k", "n_experts"), choices={"arch": ["topk", "switch"]},
                     defaults={"n_experts": 16})
    p.add_argument("--regime", choices=["width", "flop"], default="width",
                   help="Switch SAEs: width-matched (total d_sae 24576) or FLOP-matched (each expert 24576 wide) "
                        "(default: %(default)s)")
    add_config_flags(p, TrainConfig, ("n_steps",), defaults={"n_steps": PAPER.n_steps})
    p.add_argument("--out", default="checkpoints/paper", help="checkpoint folder (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--dry-run", action="store_true", help="print the configuration and exit")
    p.set_defaults(run=_paper)
