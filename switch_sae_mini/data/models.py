"""Load a language model as a transformer-lens 4.x ``TransformerBridge``: the bundled tiny GPT-2 or any HF model.

Every model goes through the same ``TransformerBridge.boot_transformers`` call that real GPT-2 uses, so the
notebooks' code path is identical offline (bundled model) and online ("gpt2"). ``boot_transformers`` accepts a
local Hugging Face directory as the model name and then reads only local files (config, safetensors, tokenizer):
loading the bundled model makes no network attempt. Weights are kept raw (HF numerics, no LayerNorm folding:
docs/design-notes.md §4), in fp32 (bf16/fp16 CPU speed depends on the CPU, and fp32 keeps runs reproducible:
docs/design-notes.md §9).

Example::

    from switch_sae_mini import load_model
    from switch_sae_mini.data.models import default_hook
    model = load_model()            # bundled tiny GPT-2, offline
    hook = default_hook(model)      # "blocks.2.hook_resid_post" for 4 layers; "blocks.8.hook_resid_post" for GPT-2
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..errors import SwitchSAEError

BUNDLED_MODEL = "tiny-gpt2"
BUNDLED_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny_gpt2"


class ModelUnavailableError(SwitchSAEError, OSError):
    """The requested model cannot be loaded here (e.g. a hub name while offline)."""


def resolve_model_dir(name: str) -> Path | None:
    """The local directory for ``name`` (the bundled model or an existing HF directory), or None for a hub name."""
    if name == BUNDLED_MODEL:
        if not (BUNDLED_MODEL_DIR / "config.json").exists():
            raise ModelUnavailableError(
                f"the bundled model's weights are missing from {BUNDLED_MODEL_DIR} (no config.json); "
                "rebuild them with scripts/train_tiny_gpt2.py or reinstall the package.")
        return BUNDLED_MODEL_DIR
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelUnavailableError(f"load_model(name={name!r}): the directory has no config.json; "
                                        "pass a directory written by save_pretrained (model + tokenizer).")
        return path.resolve()
    return None


def hub_is_offline() -> bool:
    """True if huggingface_hub's offline mode is on (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, even if set after
    huggingface_hub was imported)."""
    import huggingface_hub.constants as hf_constants

    env = (os.environ.get(var, "").strip().lower() for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(hf_constants.HF_HUB_OFFLINE) or any(value in ("1", "true", "yes", "on") for value in env)


def _is_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except (ValueError, OSError):  # malformed repo id etc.: not cached; the hub path reports it
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub endpoint, so an offline machine fails in seconds, not after 30 s of retries."""
    import huggingface_hub.constants as hf_constants

    url = urlparse(hf_constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except Exception:  # noqa: BLE001 - any failure means unreachable (sandboxes patch sockets to raise anything)
        return False


def _unavailable(name: str, reason: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"load_model({name!r}) needs the Hugging Face hub ({reason}); use the bundled model "
        f"(load_model() or load_model({BUNDLED_MODEL!r})), pass a local save_pretrained directory, "
        "or set HF_HOME to a cache that has it.")


@contextlib.contextmanager
def _hub_offline(enabled: bool):
    """Force huggingface_hub's offline mode (read at call time from its constants) while loading local files."""
    import huggingface_hub.constants as hf_constants

    previous = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = previous or enabled
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = previous


@contextlib.contextmanager
def _quiet_loading():
    """Silence transformers' 'Loading weights' progress bar (noisy in notebooks and tests)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_model(name: str = BUNDLED_MODEL, device: str | torch.device | None = None):
    """Load ``name`` as a ``TransformerBridge`` in fp32 eval mode.

    Args:
        name: ``"tiny-gpt2"`` (the bundled model, default), a local directory written by ``save_pretrained``
            (model + tokenizer), or a Hugging Face hub name such as ``"gpt2"`` (needs the hub or a local HF cache).
        device: torch device; None means CPU.

    Returns:
        ``transformer_lens.TransformerBridge`` with ``.tokenizer`` set and ``.cfg.model_name`` = ``name``.

    Raises:
        ModelUnavailableError: the bundled weights are missing, or a hub model is neither cached nor reachable.
    """
    from transformer_lens import TransformerBridge

    device = torch.device(device) if device is not None else torch.device("cpu")
    local_dir = resolve_model_dir(name)
    offline = local_dir is not None  # local files only: never touch the network
    if local_dir is None:  # a hub name: fail fast and clearly instead of retrying DNS for 30 s
        cached = _is_cached(name)
        offline = hub_is_offline() or not hub_reachable()
        if offline and not cached:
            reason = ("HF_HUB_OFFLINE is set" if hub_is_offline() else "the hub is unreachable from this machine")
            raise _unavailable(name, f"{reason} and it is not in the local HF cache")
    with _quiet_loading(), _hub_offline(offline):
        try:
            model = TransformerBridge.boot_transformers(str(local_dir or name), device=device, dtype=torch.float32)
        except OSError as err:
            if local_dir is not None:
                raise
            raise _unavailable(name, f"loading failed: {err}") from err
    model.eval()
    model.cfg.model_name = name  # a stable, human-readable name (recorded in activation-cache manifests)
    return model


def default_hook(model) -> str:
    """The default hook point: the residual stream after block ``min(2 * n_layers // 3, n_layers - 2)``.

    Two thirds of the way through the model, like the paper's ``blocks.8.hook_resid_post`` for 12-layer GPT-2
    small (docs/design-notes.md §4); but never the last block's output, which feeds the unembedding directly.
    12 layers -> 8, 4 layers -> 2, 2 layers -> 0.
    """
    n_layers = int(model.cfg.n_layers)
    return f"blocks.{max(0, min(2 * n_layers // 3, n_layers - 2))}.hook_resid_post"


def model_fingerprint(model) -> str:
    """A short hash of the model's name, shapes and a few weight tensors (detects a cache from other weights)."""
    digest = hashlib.sha1(str(model.cfg.model_name).encode())
    params = list(model.parameters())
    for param in params[:2] + params[-2:]:
        tensor = param.detach().to("cpu", torch.float32).contiguous()
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]
