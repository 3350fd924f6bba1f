"""The package's own errors: one base class, so callers can catch everything this package raises on bad input
(`except SwitchSAEError`). Every subclass also derives from the built-in exception it stands for (ValueError,
OSError, KeyError, FloatingPointError, ...), so `except ValueError` clauses written for 0.1.0 keep working.
Each message names the field or file at fault and the fix.
"""


class SwitchSAEError(Exception):
    """Base class of every error switch_sae_mini raises on purpose."""


class TrainingDivergedError(SwitchSAEError, FloatingPointError):
    """The loss became NaN or inf; the message names the step. Checkpoints written before it are intact."""
