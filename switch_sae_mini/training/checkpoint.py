"""Checkpoints: safetensors tensors + JSON in snapshot folders that are atomic as a whole (snapshots.py).

    save(sae, folder)                    a weights-only snapshot: config.json + model.safetensors
    train(..., checkpoint_dir=folder)    training snapshots: + trainer.json (step, TrainConfig, history) and
                                         trainer.safetensors (Adam moments, RNG state)
    load(folder)                         the SAE of the latest snapshot, training or weights-only
    train(..., resume=True)              continues from the latest complete training snapshot

Every file of a snapshot is hashed in its manifest (config.json included), so damage or a hand edit is detected.
Folders written by 0.1.0 (config.json and model.safetensors at the top, format_version 1) still load; their
config.json was not hashed, only the weights. No pickles are ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import ConfigError, SAEConfig
from ..saes import SAEBase, make_sae
from .snapshots import CheckpointError, find_snapshot, is_snapshot_folder, write_snapshot

FORMAT = "switch_sae_mini.sae"
FORMAT_VERSION = 2
LEGACY_FILES = ("config.json", "model.safetensors", "trainer.json", "trainer.safetensors")

__all__ = ["CheckpointError", "load", "load_training_state", "read_config", "save", "save_training_state"]


class Checkpoint(NamedTuple):
    files: Path
    """The folder holding config.json, model.safetensors (and trainer.* for training checkpoints)."""
    cfg: SAEConfig
    raw: dict[str, Any]
    """config.json as read."""
    verified: bool
    """Every file was checked against a manifest (format 2); 0.1.0 folders only hashed the weights."""


def _write_json(data: dict[str, Any]):
    return lambda path: path.write_text(json.dumps(data, indent=2))


def _write_tensors(tensors: dict[str, torch.Tensor]):
    tensors = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    return lambda path: save_file(tensors, str(path))


# SAEConfig fields added with the Switch variants (docs/design-notes.md §12) and their "off" values: left out of
# config.json when off, so a plain SAE's folder still loads in versions that predate them.
_VARIANT_DEFAULTS = {"shared_expert": 0, "k_shared": 0, "router_top_e": 1}


def _config_dict(cfg) -> dict:
    return {name: value for name, value in cfg.to_dict().items() if _VARIANT_DEFAULTS.get(name, object()) != value}


def _sae_files(sae: SAEBase) -> dict:
    provenance = {**getattr(sae, "provenance", {}), "package_version": _package_version()}
    return {"config.json": _write_json({"format": FORMAT, "format_version": FORMAT_VERSION,
                                        "sae_config": _config_dict(sae.cfg), "provenance": provenance}),
            "model.safetensors": _write_tensors(sae.state_dict())}


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("switch_sae_mini")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _drop_legacy_files(folder: Path) -> None:
    """After a new snapshot is in place, remove a 0.1.0 checkpoint's top-level files (one truth per folder)."""
    for name in LEGACY_FILES:
        (folder / name).unlink(missing_ok=True)


def save(sae: SAEBase, path: str | os.PathLike, keep: int = 2) -> Path:
    """Save an SAE's weights and config as a new snapshot of folder `path` (created if needed); `keep` snapshots
    are kept in all. Returns the folder, which `load` reads."""
    folder = Path(path)
    write_snapshot(folder, _sae_files(sae), keep=keep)
    _drop_legacy_files(folder)
    return folder


def _read_tensors(path: Path, expected_sha: str | None = None) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint folder is incomplete.")
    if expected_sha is not None and hashlib.sha256(path.read_bytes()).hexdigest() != expected_sha:
        raise CheckpointError(f"{path} does not match the hash in config.json: the file is truncated or was "
                              f"replaced. Re-save the checkpoint or restore it from a backup.")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}).") from exc


def _parse_config(config_path: Path) -> tuple[SAEConfig, dict[str, Any]]:
    try:
        raw = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); the checkpoint is damaged.") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{config_path} is not a switch_sae_mini checkpoint (format tag missing).")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{config_path.parent} was written by a newer switch_sae_mini (format "
                              f"{raw['format_version']}); upgrade the package to load it.")
    try:
        return SAEConfig.from_dict(raw["sae_config"]), raw
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{config_path} holds an invalid SAE config: {exc}") from exc


def open_checkpoint(path: str | os.PathLike, *, training: bool = False, fallback: bool = False) -> Checkpoint:
    """Locate and verify a checkpoint: a snapshot folder (format 2) or a 0.1.0 folder.

    training=True wants training state (the newest snapshot that has it). fallback=True skips damaged snapshots
    (with a warning) instead of raising.
    """
    folder = Path(path)
    if folder.is_file():
        raise CheckpointError(f"{folder} is a file, not a checkpoint folder written by switch_sae_mini.save(); "
                              f"pass the folder that holds the checkpoint.")
    if is_snapshot_folder(folder):
        if training:
            try:
                snapshot, _ = find_snapshot(folder, fallback=True, accept=_has_trainer)
            except CheckpointError:
                if _holds_weights_only(folder):
                    raise CheckpointError(f"{folder} holds weights only (no training state); it cannot resume "
                                          f"training. Load it with switch_sae_mini.load() instead.") from None
                raise
        else:
            snapshot, _ = find_snapshot(folder, fallback=fallback)
        cfg, raw = _parse_config(snapshot / "config.json")
        return Checkpoint(snapshot, cfg, raw, verified=True)
    if not (folder / "config.json").exists():
        raise CheckpointError(f"No checkpoint at {folder}: expected a folder written by switch_sae_mini.save().")
    cfg, raw = _parse_config(folder / "config.json")  # a 0.1.0 checkpoint
    if training and not (folder / "trainer.json").exists():
        raise CheckpointError(f"{folder} holds weights only (no trainer.json); it cannot resume training. "
                              f"Load it with switch_sae_mini.load() instead.")
    return Checkpoint(folder, cfg, raw, verified=False)


def _has_trainer(manifest: dict[str, Any]) -> bool:
    return "trainer.json" in manifest["files"]


def _holds_weights_only(folder: Path) -> bool:
    try:
        find_snapshot(folder, fallback=True, accept=lambda m: not _has_trainer(m))
    except CheckpointError:
        return False
    return True


def read_config(path: str | os.PathLike) -> tuple[SAEConfig, dict[str, Any]]:
    """(SAEConfig, raw config.json) of a checkpoint folder, with clear errors for anything else."""
    ckpt = open_checkpoint(path)
    return ckpt.cfg, ckpt.raw


def load(path: str | os.PathLike, arch: str | None = None, device: str | torch.device = "cpu",
         fallback: bool = False) -> SAEBase:
    """Load the SAE of the latest snapshot in `path` (or a 0.1.0 checkpoint folder).

    arch: if given, a checkpoint of another architecture is an error. fallback=True: if the latest snapshot is
    damaged, load the newest complete one instead (with a warning); by default damage raises CheckpointError.
    """
    ckpt = open_checkpoint(path, fallback=fallback)
    if arch is not None and ckpt.cfg.arch != arch:
        raise CheckpointError(f"{path} holds a {ckpt.cfg.arch!r} SAE but arch={arch!r} was requested; load it "
                              f"without arch= or pick a {arch!r} checkpoint.")
    legacy_sha = None if ckpt.verified else ckpt.raw.get("weights_sha256")
    tensors = _read_tensors(ckpt.files / "model.safetensors", legacy_sha)
    sae = make_sae(ckpt.cfg)
    load_state(sae, tensors, source=str(path))
    sae.provenance = provenance_of(ckpt)
    return sae.to(device)


def provenance_of(ckpt: Checkpoint) -> dict[str, Any]:
    """The checkpoint's provenance record; checkpoints written before 0.2.0 have none (marked unknown)."""
    return dict(ckpt.raw.get("provenance") or {"unknown": "saved before switch_sae_mini 0.2.0 recorded provenance"})


def load_state(sae: SAEBase, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Copy tensors into `sae`, refusing missing, extra or mis-shaped entries."""
    expected = sae.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{source} does not fit this SAE (missing {missing}, unexpected {extra}); "
                              f"was it saved from another architecture?")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{source}: {name} has shape {tuple(tensor.shape)}, the SAE expects "
                                  f"{tuple(expected[name].shape)}; the configs differ.")
    sae.load_state_dict(tensors)


def save_training_state(path: str | os.PathLike, sae: SAEBase, optimizer: torch.optim.Optimizer,
                        trainer_state: dict[str, Any], keep: int = 2, data_state: dict[str, Any] | None = None) -> Path:
    """A resumable snapshot: the SAE (as `save`) plus Adam moments, RNG, the trainer's JSON state
    (trainer_state["step"] names the snapshot) and, if given, the data iterator's state (its tensors go to
    trainer.safetensors as "data.<key>", the rest to trainer.json). All files become visible together or not at
    all."""
    names = {id(p): n for n, p in sae.named_parameters()}
    tensors = {"rng.torch": torch.get_rng_state()}
    if data_state is not None:
        tensors |= {f"data.{k}": v for k, v in data_state.items() if isinstance(v, torch.Tensor)}
        trainer_state = {**trainer_state,
                         "data_state": {k: v for k, v in data_state.items() if not isinstance(v, torch.Tensor)}}
    for p in optimizer.param_groups[0]["params"]:
        for key, value in optimizer.state.get(p, {}).items():
            tensors[f"adam.{names[id(p)]}.{key}"] = torch.as_tensor(value)
    hyper = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    files = {**_sae_files(sae), "trainer.safetensors": _write_tensors(tensors),
             "trainer.json": _write_json({**trainer_state, "optimizer": hyper})}
    folder = Path(path)
    write_snapshot(folder, files, step=int(trainer_state["step"]), keep=keep)
    _drop_legacy_files(folder)
    return folder


def has_checkpoint(path: str | os.PathLike) -> bool:
    """Whether `path` holds any checkpoint (a snapshot or a 0.1.0 folder)."""
    folder = Path(path)
    return is_snapshot_folder(folder) or (folder / "config.json").exists()


def load_training_state(path: str | os.PathLike, sae: SAEBase,
                        optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore `sae`, `optimizer` and the torch RNG from the newest complete training snapshot in `path`
    (a damaged newer one is skipped with a warning); returns the trainer's JSON state."""
    ckpt = open_checkpoint(path, training=True)
    if ckpt.cfg != sae.cfg:
        raise CheckpointError(f"{path} was trained with {ckpt.cfg} but the SAE to resume has {sae.cfg}; resume "
                              f"with the same SAEConfig (or start a new run).")
    state = json.loads((ckpt.files / "trainer.json").read_text())
    sae.provenance = provenance_of(ckpt)
    legacy = not ckpt.verified
    load_state(sae, _read_tensors(ckpt.files / "model.safetensors",
                                  ckpt.raw.get("weights_sha256") if legacy else None), str(path))
    tensors = _read_tensors(ckpt.files / "trainer.safetensors", state.get("trainer_sha256") if legacy else None)
    for name, p in sae.named_parameters():
        entries = {k.split(".")[-1]: v for k, v in tensors.items() if k.startswith(f"adam.{name}.")}
        if entries:
            # moments take the parameter's memory layout: the fused Adam walks param and state as flat memory
            optimizer.state[p] = {k: (v if k == "step" else torch.empty_like(p).copy_(v))
                                  for k, v in entries.items()}
    for key, value in state["optimizer"].items():
        optimizer.param_groups[0][key] = tuple(value) if isinstance(value, list) else value
    torch.set_rng_state(tensors["rng.torch"])
    if "data_state" in state:  # the data iterator's position (its tensors were stored beside the moments)
        state["data_state"] |= {k[len("data."):]: v for k, v in tensors.items() if k.startswith("data.")}
    return state
