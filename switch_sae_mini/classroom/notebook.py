"""Helpers shared by the notebooks: the setup cell and the FAST switch; `harvest` and `shuffled_batches` (from
data/batches.py) and `train_once` (training/run_cache.py) are re-exported here because every chapter uses them as
``ssm.notebook.harvest`` etc. Both `harvest` and `train_once` keep their results in the course's shared cache on
disk, so a chapter re-run, or a later chapter asking for the same activations or SAE, reads them back.

FAST (environment variable SSM_FAST=1, set by `make test`) only shrinks sizes - tokens, widths, steps - so that
CI executes every cell of every notebook quickly. It never skips a cell.
"""

from __future__ import annotations

import os
import platform

import torch

from .. import device as _device
from ..data.batches import harvest, shuffled_batches
from ..training.run_cache import train_once

__all__ = ["fast", "harvest", "setup", "shuffled_batches", "train_once"]


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
