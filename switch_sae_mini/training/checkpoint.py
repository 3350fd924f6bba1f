"""Checkpoints: a folder with safetensors tensors + JSON, each file written atomically (temp file + rename).

    <dir>/config.json        format tag, SAEConfig, sha256 of the weights file
    <dir>/model.safetensors  parameters and buffers (dead-latent counters included)
    <dir>/trainer.json       (training checkpoints) step, TrainConfig, history, optimizer hyperparameters
    <dir>/trainer.safetensors  Adam moments and the RNG state

No pickles are ever read. A truncated or foreign file raises CheckpointError with what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import ConfigError, SAEConfig
from ..saes import SAEBase, make_sae

FORMAT = "switch_sae_mini.sae"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The path is not a usable checkpoint of this package (missing, truncated, foreign or mismatched)."""


def _atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    tensors = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp))
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def save(sae: SAEBase, path: str | os.PathLike) -> Path:
    """Save an SAE's weights and config into folder `path` (created if needed). Returns the folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"save() needs a folder path, but {folder} is a file; pick another path.")
    sha = _write_tensors(folder / "model.safetensors", sae.state_dict())
    _write_json(folder / "config.json", {"format": FORMAT, "format_version": FORMAT_VERSION,
                                         "sae_config": sae.cfg.to_dict(), "weights_sha256": sha})
    return folder


def read_config(path: str | os.PathLike) -> tuple[SAEConfig, dict[str, Any]]:
    """(SAEConfig, raw config.json) of a checkpoint folder, with clear errors for anything else."""
    folder = Path(path)
    config_path = folder / "config.json" if folder.is_dir() else folder
    if not config_path.exists():
        raise CheckpointError(f"No checkpoint at {folder}: expected a folder written by switch_sae_mini.save().")
    if config_path.name != "config.json":
        raise CheckpointError(f"{folder} is a file, not a checkpoint folder written by switch_sae_mini.save(); "
                              f"pass the folder that holds config.json and model.safetensors.")
    try:
        raw = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); the checkpoint is damaged.") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{config_path} is not a switch_sae_mini checkpoint (format tag missing).")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{folder} was written by a newer switch_sae_mini (format "
                              f"{raw['format_version']}); upgrade the package to load it.")
    try:
        return SAEConfig.from_dict(raw["sae_config"]), raw
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{config_path} holds an invalid SAE config: {exc}") from exc


def load(path: str | os.PathLike, arch: str | None = None, device: str | torch.device = "cpu") -> SAEBase:
    """Load an SAE saved by `save`. If `arch` is given, a checkpoint of another architecture is an error."""
    cfg, raw = read_config(path)
    if arch is not None and cfg.arch != arch:
        raise CheckpointError(f"{path} holds a {cfg.arch!r} SAE but arch={arch!r} was requested; load it "
                              f"without arch= or pick a {arch!r} checkpoint.")
    tensors = _read_tensors(Path(path) / "model.safetensors", raw.get("weights_sha256"))
    sae = make_sae(cfg)
    load_state(sae, tensors, source=str(path))
    return sae.to(device)


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
                        trainer_state: dict[str, Any]) -> Path:
    """A resumable checkpoint: the SAE (as `save`) plus Adam moments, RNG and the trainer's JSON state."""
    folder = save(sae, path)
    names = {id(p): n for n, p in sae.named_parameters()}
    params = optimizer.param_groups[0]["params"]
    tensors = {"rng.torch": torch.get_rng_state()}
    for p in params:
        for key, value in optimizer.state.get(p, {}).items():
            tensors[f"adam.{names[id(p)]}.{key}"] = torch.as_tensor(value)
    sha = _write_tensors(folder / "trainer.safetensors", tensors)
    hyper = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    _write_json(folder / "trainer.json", {**trainer_state, "optimizer": hyper, "trainer_sha256": sha})
    return folder


def load_training_state(path: str | os.PathLike, sae: SAEBase,
                        optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore `sae`, `optimizer` and the torch RNG from `path`; returns the trainer's JSON state."""
    cfg, raw = read_config(path)
    if cfg != sae.cfg:
        raise CheckpointError(f"{path} was trained with {cfg} but the SAE to resume has {sae.cfg}; resume "
                              f"with the same SAEConfig (or start a new run).")
    folder = Path(path)
    trainer_json = folder / "trainer.json"
    if not trainer_json.exists():
        raise CheckpointError(f"{folder} holds weights only (no trainer.json); it cannot resume training. "
                              f"Load it with switch_sae_mini.load() instead.")
    state = json.loads(trainer_json.read_text())
    load_state(sae, _read_tensors(folder / "model.safetensors", raw.get("weights_sha256")), str(path))
    tensors = _read_tensors(folder / "trainer.safetensors", state.get("trainer_sha256"))
    for name, p in sae.named_parameters():
        entries = {k.split(".")[-1]: v for k, v in tensors.items() if k.startswith(f"adam.{name}.")}
        if entries:
            # moments take the parameter's memory layout: the fused Adam walks param and state as flat memory
            optimizer.state[p] = {k: (v if k == "step" else torch.empty_like(p).copy_(v))
                                  for k, v in entries.items()}
    for key, value in state["optimizer"].items():
        optimizer.param_groups[0][key] = tuple(value) if isinstance(value, list) else value
    torch.set_rng_state(tensors["rng.torch"])
    return state
