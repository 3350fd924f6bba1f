"""Data: the bundled corpus and other text sources, language models, activation harvesting (streaming buffer,
disk cache, in-memory batches) and synthetic activations -- everything up to the [batch, d_in] tensors SAEs train on.
"""

from .activations import ActivationBuffer, HookReader, TokenMetadata, UnknownHookError
from .batches import ActivationFileError, harvest, load_activations, shuffled_batches
from .disk_cache import CacheMismatchError, DiskActivations, harvest_to_disk
from .models import BUNDLED_MODEL, ModelUnavailableError, default_hook, load_model
from .toy import ToyData, synthetic_batches

__all__ = [
    "ActivationBuffer", "ActivationFileError", "BUNDLED_MODEL", "CacheMismatchError", "DiskActivations", "HookReader",
    "ModelUnavailableError", "TokenMetadata", "ToyData", "UnknownHookError", "default_hook", "harvest",
    "harvest_to_disk", "load_activations", "load_model", "shuffled_batches", "synthetic_batches",
]
