"""Training: the shared optimisation step, the training loop with checkpoints and callbacks, and data- and
expert-parallel training over torch.distributed (which reuse the same step through hooks).
"""

from .checkpoint import CheckpointError, has_checkpoint, load, load_training_state, save, save_training_state
from .step import StepHooks, lr_factor, make_optimizer, training_step
from .train import TrainResult, train

__all__ = ["CheckpointError", "StepHooks", "has_checkpoint", "TrainResult", "load", "load_training_state", "lr_factor",
           "make_optimizer", "save", "save_training_state", "train", "training_step"]
