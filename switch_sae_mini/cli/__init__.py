"""The command line: ``python -m switch_sae_mini <subcommand>`` (also installed as ``switch-sae-mini``).

    train, demo, ledger      training on saved activations, the end-to-end demo, the FLOP ledger  (train.py)
    paper                    the paper's GPT-2 setting                                            (paper.py)
    distributed              data-/expert-parallel training under torchrun                        (distributed.py)
    bench, bench-harvest,    benchmarks                                                           (bench.py)
    bench-memory
    assignments, grade       the classroom tools                                                  (classroom.py)
    info                     a checkpoint's config, provenance and snapshots                      (info.py)

Flags that mirror a config field are derived from SAEConfig / TrainConfig (flags.py), so they cannot drift.
Heavy imports happen inside the commands, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import bench, classroom, distributed, info, paper, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m switch_sae_mini",
                                     description="Switch Sparse Autoencoders (Mudide et al. 2024) from scratch.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for module in (train, paper, distributed, bench, classroom, info):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..config import ConfigError
    from ..data.batches import ActivationFileError
    from ..saes import InputError
    from ..training import CheckpointError

    args = build_parser().parse_args(argv)
    if getattr(args, "resume", False) and not args.out:
        raise SystemExit("error: --resume needs --out pointing at the run's checkpoint folder.")
    try:
        return args.run(args)
    except (ConfigError, InputError, ActivationFileError, CheckpointError) as exc:
        raise SystemExit(f"error: {exc}") from None
