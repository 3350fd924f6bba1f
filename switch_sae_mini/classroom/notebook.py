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
from ..saes import metrics as _metrics
from ..data.batches import harvest, shuffled_batches
from ..training.run_cache import train_once

__all__ = ["compare_with_package", "fast", "harvest", "setup", "shuffled_batches", "train_once"]


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


def compare_with_package(yours, package, held_out: torch.Tensor, n_steps: int, use_reference: dict[str, bool],
                         tolerance: float = 1e-3) -> float:
    """Print the held-out FVU of the learner's SAE and the package's (trained from the same seed on the same
    batches), their difference and whether it is within `tolerance`; return the difference. Chapters 01-03."""
    fvu_yours, fvu_package = (_metrics.evaluate_sae(s, held_out.split(2048))["fvu"] for s in (yours, package))
    gap = abs(fvu_yours - fvu_package)
    print(f"held-out FVU after {n_steps} steps: yours {fvu_yours:.5f}, the package's {fvu_package:.5f}; "
          f"difference {gap:.1e}, {'within' if gap < tolerance else 'OUTSIDE'} the tolerance of {tolerance:g} "
          f"(parts from the package: {[n for n, v in use_reference.items() if v] or 'none'})")
    return gap
