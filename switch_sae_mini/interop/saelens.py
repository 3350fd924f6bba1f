"""SAELens's on-disk format, both ways: `export_saelens` writes our ReLU and TopK SAEs as a folder that
`sae_lens.SAE.load_from_disk` reads; `load_saelens` turns a SAELens standard or TopK SAE folder into our module.

A SAELens folder is `cfg.json` + `sae_weights.safetensors` (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec:
the same names and shapes as ours). The conventions that differ, and how they are bridged:

- Our ReLU SAE does not subtract b_dec before encoding (the April-update recipe); SAELens's "standard" SAE does
  when `apply_b_dec_to_input` is true. Export writes `apply_b_dec_to_input: false` (exact); import folds it into
  the encoder bias, b_enc - b_dec @ W_enc, so outputs agree to float rounding, not bit for bit.
- TopK: both compute TopK(ReLU((x - b_dec) @ W_enc + b_enc)) and decode with W_dec + b_dec; exact both ways.
  A SAELens TopK SAE with `apply_b_dec_to_input: false` is folded the other way (b_enc + b_dec @ W_enc).
- Not representable, refused with the reason: Switch SAEs (SAELens has no routed architecture; use
  `interop.saebench.SAEBenchSwitchSAE`), other architectures (gated, JumpReLU, ...), activation normalisation,
  `rescale_acts_by_decoder_norm`, reshaped activations.
- Lost on export: the dead-latent counters (`tokens_since_fired`) and our training state. Provenance goes into
  `metadata` (model_name, hook_name, context_size, prepend_bos, dataset_path, and the rest under
  `switch_sae_mini_provenance`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..config import SAEConfig
from ..errors import ArgumentError, SwitchSAEError
from ..saes import SAEBase, make_sae

CFG, WEIGHTS = "cfg.json", "sae_weights.safetensors"
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


class SAELensFormatError(SwitchSAEError, ValueError):
    """A SAELens folder this package cannot take (or an SAE it cannot write); the message names the field."""


def _hook_layer(hook_name: str | None) -> int | None:
    match = re.match(r"blocks\.(\d+)\.", hook_name or "")
    return int(match.group(1)) if match else None


def export_saelens(sae: SAEBase, path: str | os.PathLike, *, model_name: str | None = None,
                   hook_name: str | None = None, context_size: int | None = None, dataset_path: str | None = None,
                   prepend_bos: bool | None = None) -> Path:
    """Write a ReLU or TopK SAE as a SAELens folder (`cfg.json` + `sae_weights.safetensors`) at `path`.

    Metadata defaults come from `sae.provenance` (filled by `train` from its activation source); pass them to
    override or when the SAE has none.
    """
    arch = sae.cfg.arch
    if arch == "switch":
        raise SAELensFormatError("export_saelens: SAELens has no routed (Switch) architecture; for SAEBench use "
                                 "switch_sae_mini.interop.SAEBenchSwitchSAE(sae, ...) instead.")
    provenance = dict(getattr(sae, "provenance", {}) or {})
    metadata = {
        "model_name": model_name or provenance.get("model_name"),
        "hook_name": hook_name or provenance.get("hook"),
        "context_size": context_size or provenance.get("context_len"),
        "prepend_bos": prepend_bos if prepend_bos is not None else provenance.get("prepend_bos"),
        "dataset_path": dataset_path or provenance.get("source"),
        "switch_sae_mini_provenance": provenance,
    }
    metadata["hook_layer"] = _hook_layer(metadata["hook_name"])
    cfg = {"d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "dtype": str(sae.W_dec.dtype).removeprefix("torch."),
           "device": "cpu", "apply_b_dec_to_input": arch == "topk", "normalize_activations": "none",
           "reshape_activations": "none", "architecture": "topk" if arch == "topk" else "standard",
           "metadata": {k: v for k, v in metadata.items() if v is not None}}
    if arch == "topk":
        cfg |= {"k": sae.cfg.k, "rescale_acts_by_decoder_norm": False}
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(sae, name).detach().contiguous().cpu() for name in TENSORS}
    save_file(tensors, str(folder / WEIGHTS))
    (folder / CFG).write_text(json.dumps(cfg, indent=2))
    return folder


def load_saelens(path: str | os.PathLike, device: str | torch.device = "cpu") -> SAEBase:
    """A SAELens standard or TopK SAE on disk as our ReLUSAE / TopKSAE (float32), with its metadata as provenance."""
    folder = Path(path)
    try:
        cfg = json.loads((folder / CFG).read_text())
    except FileNotFoundError:
        raise SAELensFormatError(f"{folder / CFG} is missing; a SAELens folder holds {CFG} and {WEIGHTS}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAELensFormatError(f"{folder / CFG} is not valid JSON ({exc}).") from exc
    for field in ("d_in", "d_sae"):
        if not isinstance(cfg.get(field), int) or cfg[field] <= 0:
            raise SAELensFormatError(f"{folder / CFG}: field {field!r} must be a positive int, got "
                                     f"{cfg.get(field)!r}.")
    architecture = cfg.get("architecture", "standard")
    if architecture not in ("standard", "topk"):
        raise SAELensFormatError(f"{folder / CFG}: architecture {architecture!r} is not supported; this package "
                                 f"takes 'standard' (ReLU) and 'topk' SAEs.")
    for field, fine in (("normalize_activations", ("none", None)), ("reshape_activations", ("none", None)),
                        ("rescale_acts_by_decoder_norm", (False, None)), ("hook_head_index", (None,))):
        if cfg.get(field) not in fine:
            raise SAELensFormatError(f"{folder / CFG}: {field}={cfg[field]!r} is not supported (only "
                                     f"{fine[0]!r}); the SAE's outputs would not mean the same here.")
    try:
        tensors = load_file(folder / WEIGHTS)
    except FileNotFoundError:
        raise SAELensFormatError(f"{folder / WEIGHTS} is missing.") from None
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise SAELensFormatError(f"{folder / WEIGHTS} is not a readable safetensors file ({exc}).") from exc
    missing, extra = sorted(set(TENSORS) - set(tensors)), sorted(set(tensors) - set(TENSORS))
    if missing or extra:
        raise SAELensFormatError(f"{folder / WEIGHTS}: missing tensors {missing}, unexpected {extra}; expected "
                                 f"exactly {list(TENSORS)}.")
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise SAELensFormatError(f"{folder / WEIGHTS}: {name} has shape {tuple(tensors[name].shape)}, but "
                                     f"cfg.json's d_in={d_in}, d_sae={d_sae} need {shape}.")
    t = {name: tensors[name].float() for name in TENSORS}
    apply_b_dec = cfg.get("apply_b_dec_to_input", True)
    try:
        if architecture == "topk":
            our = SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=int(cfg.get("k", 0)))
            if not apply_b_dec:  # SAELens encodes x itself; ours encodes x - b_dec: fold b_dec @ W_enc back in
                t["b_enc"] = t["b_enc"] + t["b_dec"] @ t["W_enc"]
        else:
            our = SAEConfig(arch="relu", d_in=d_in, d_sae=d_sae)
            if apply_b_dec:  # SAELens encodes x - b_dec; ours encodes x: fold -b_dec @ W_enc into b_enc
                t["b_enc"] = t["b_enc"] - t["b_dec"] @ t["W_enc"]
    except SwitchSAEError as exc:
        raise SAELensFormatError(f"{folder / CFG}: {exc}") from exc
    sae = make_sae(our)
    with torch.no_grad():
        for name in TENSORS:
            getattr(sae, name).copy_(t[name])  # copy_ keeps our W_enc's column-major layout
        sae.initialized.fill_(True)
    metadata = cfg.get("metadata") or {}
    sae.provenance = {"imported_from": "saelens", "path": str(folder), "model_name": metadata.get("model_name"),
                      "hook": metadata.get("hook_name"), "context_len": metadata.get("context_size"),
                      "prepend_bos": metadata.get("prepend_bos"), "source": metadata.get("dataset_path"),
                      "sae_lens_version": metadata.get("sae_lens_version")}
    if not isinstance(device, (str, torch.device)):
        raise ArgumentError(f"device must be a str or torch.device, got {type(device).__name__}.")
    return sae.eval().to(device)
