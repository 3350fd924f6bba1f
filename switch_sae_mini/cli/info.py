"""Subcommand info: what a checkpoint folder holds, as JSON, without loading its weights.

    python -m switch_sae_mini info checkpoints/switch8

Prints the SAE config, the provenance record (model and its fingerprint, hook, text source and split, context
length, BOS handling, tokens trained, package version; "unknown" for checkpoints written before 0.2.0), the
snapshots in the folder (newest last) and which one `load` reads. Every file of that snapshot is verified.
"""

from __future__ import annotations

import argparse
import json


def _info(args: argparse.Namespace) -> int:
    from ..training.checkpoint import open_checkpoint, provenance_of
    from ..training.snapshots import read_pointer, snapshot_names

    ckpt = open_checkpoint(args.path)
    folder = ckpt.files if not ckpt.verified else ckpt.files.parent
    report = {"path": str(args.path), "format_version": ckpt.raw.get("format_version", 1),
              "loads": ckpt.files.name if ckpt.verified else ".", "sae_config": ckpt.cfg.to_dict(),
              "provenance": provenance_of(ckpt), "snapshots": snapshot_names(folder),
              "latest": (read_pointer(folder) or (None,))[0],
              "training_state": (ckpt.files / "trainer.json").exists()}
    if report["training_state"]:
        trainer = json.loads((ckpt.files / "trainer.json").read_text())
        report["step"], report["train_config"] = trainer.get("step"), trainer.get("train_config")
    print(json.dumps(report, indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="show a checkpoint's config, provenance and snapshots (JSON)")
    p.add_argument("path", help="a checkpoint folder (written by save() or train(checkpoint_dir=...))")
    p.set_defaults(run=_info)
