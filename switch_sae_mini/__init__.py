"""switch_sae_mini: Switch Sparse Autoencoders (Mudide et al. 2024, arXiv 2410.08201) from scratch.

    import switch_sae_mini as ssm
    cfg = ssm.SAEConfig(arch="switch", d_in=128, d_sae=4096, k=32, n_experts=8)
    result = ssm.train(cfg, batches, ssm.TrainConfig(n_steps=1000))
    ssm.save(result.sae, "checkpoints/switch8")
"""

from . import activations, analysis, checks, corpus, evaluation, flops, gpu, metrics, models, notebook, plotting
from .checkpoint import CheckpointError, load, save
from .config import ConfigError, SAEConfig, TrainConfig
from .models import BUNDLED_MODEL, load_model
from .sae import ForwardOutput, InputError, ReLUSAE, TopKSAE, make_sae
from .switch import SwitchSAE, load_balance_loss, route
from .train import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "SAEConfig", "TrainConfig", "ConfigError", "InputError", "CheckpointError",
    "make_sae", "ReLUSAE", "TopKSAE", "SwitchSAE", "ForwardOutput", "route", "load_balance_loss",
    "train", "TrainResult", "save", "load", "load_model", "BUNDLED_MODEL",
    "activations", "analysis", "checks", "corpus", "evaluation", "models", "flops", "gpu", "metrics", "notebook", "plotting", "__version__",
]
