"""switch_sae_mini: Switch Sparse Autoencoders (Mudide et al. 2024, arXiv 2410.08201) from scratch.

    import switch_sae_mini as ssm
    cfg = ssm.SAEConfig(arch="switch", d_in=128, d_sae=4096, k=32, n_experts=8)
    result = ssm.train(cfg, batches, ssm.TrainConfig(n_steps=1000))
    ssm.save(result.sae, "checkpoints/switch8")

The package follows the data path (README "Architecture"): data/ (text -> tokens -> activations), saes/ (the
SAEs, their kernels and metrics), training/, evaluation/ (in the language model), analysis/ (features, geometry,
the explorer), with classroom/, bench/ and cli/ on top and config, flops, device, paper beside them. The public
face stays flat: the names below, and the modules notebooks use (ssm.activations, ssm.metrics, ...).
"""

from . import analysis, device, evaluation, flops, interop, paper
from .analysis import plotting
from .classroom import checks, notebook
from .config import ConfigError, SAEConfig, TrainConfig
from .data import activations, corpus, models
from .data.models import BUNDLED_MODEL, load_model
from .errors import SwitchSAEError, TrainingDivergedError
from .interop import export_saelens, load_saelens
from .saes import (ForwardOutput, InputError, ReLUSAE, SwitchSAE, TopKSAE, load_balance_loss, make_sae, metrics,
                   route)
from .training import CheckpointError, TrainResult, has_checkpoint, load, save, train

gpu = device  # the module's name before 0.2.0 (see CHANGELOG.md)

__version__ = "0.2.0"

__all__ = [
    "SAEConfig", "TrainConfig", "ConfigError", "InputError", "CheckpointError", "SwitchSAEError",
    "TrainingDivergedError",
    "make_sae", "ReLUSAE", "TopKSAE", "SwitchSAE", "ForwardOutput", "route", "load_balance_loss",
    "train", "TrainResult", "save", "load", "has_checkpoint", "load_model", "BUNDLED_MODEL", "export_saelens",
    "load_saelens", "interop",
    "activations", "analysis", "checks", "corpus", "device", "evaluation", "models", "flops", "gpu", "metrics",
    "notebook", "paper", "plotting", "__version__",
]
