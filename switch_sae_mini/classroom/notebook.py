"""Helpers shared by the notebooks: the setup cell and the FAST switch; `harvest` and `shuffled_batches` (from
data/batches.py) are re-exported here because every chapter uses them as ``ssm.notebook.harvest`` etc.

FAST (environment variable SSM_FAST=1, set by `make test`) only shrinks sizes - tokens, widths, steps - so that
CI executes every cell of every notebook quickly. It never skips a cell.
"""

from __future__ import annotations

import os
import platform

import torch

from .. import device as _device
from ..data.batches import harvest, shuffled_batches

__all__ = ["fast", "harvest", "setup", "shuffled_batches"]


def fast() -> bool:
    """True when SSM_FAST=1 (CI); notebooks pick small sizes then."""
    return os.environ.get("SSM_FAST", "0") == "1"


def setup(seed: int = 0, device: str | None = None) -> torch.device:
    """Seed everything, pick the device (cuda > mps > cpu), print one line about the environment."""
    _device.set_seed(seed)
    dev = _device.get_device(device)
    print(f"device={dev} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"python={platform.python_version()} FAST={fast()}")
    return dev
