"""The sparse autoencoders: ReLU, TopK and Switch modules, their routing and sparse-gradient kernels, and the
metrics computed on their outputs (training and evaluation both use them, so they sit here, below training).

    sae = make_sae(SAEConfig(arch="switch", d_in=128, d_sae=4096, k=32, n_experts=8))
"""

from ..config import SAEConfig
from ..errors import ArgumentTypeError
from .base import (ForwardOutput, InputError, SAEBase, check_input, geometric_median, mse_per_element,
                   sparse_decode, topk_activation)
from .relu import ReLUSAE
from .routing import Routing, gate_values, group_by_expert, load_balance_loss, route
from .switch import SwitchSAE
from .topk import TopKSAE, auxk_error, auxk_loss


def make_sae(cfg: SAEConfig) -> SAEBase:
    """Build the SAE module for a config (arch "relu", "topk" or "switch")."""
    if not isinstance(cfg, SAEConfig):
        raise ArgumentTypeError(f"make_sae needs an SAEConfig, got {type(cfg).__name__}; build one with SAEConfig(...).")
    modules = {"relu": ReLUSAE, "topk": TopKSAE, "switch": SwitchSAE}
    return modules[cfg.arch](cfg)


__all__ = [
    "ForwardOutput", "InputError", "SAEBase", "ReLUSAE", "TopKSAE", "SwitchSAE", "Routing", "make_sae", "route",
    "gate_values", "group_by_expert", "load_balance_loss", "check_input", "geometric_median", "mse_per_element",
    "sparse_decode", "topk_activation", "auxk_error", "auxk_loss",
]
