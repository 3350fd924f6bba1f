"""The package's own errors: one base class, so callers can catch everything this package raises on bad input
(`except SwitchSAEError`). Every subclass also derives from the built-in exception it stands for (ValueError,
OSError, KeyError, FloatingPointError, ...), so `except ValueError` clauses written for 0.1.0 keep working.
Each message names the field or file at fault and the fix.
"""


class SwitchSAEError(Exception):
    """Base class of every error switch_sae_mini raises on purpose."""


class TrainingDivergedError(SwitchSAEError, FloatingPointError):
    """The loss became NaN or inf; the message names the step. Checkpoints written before it are intact."""


class ArgumentError(SwitchSAEError, ValueError):
    """An argument has a value the function cannot use."""


class ArgumentTypeError(SwitchSAEError, TypeError):
    """An argument has the wrong type."""


class OutOfRangeError(SwitchSAEError, IndexError):
    """An index (row, expert, feature) is outside the valid range."""


class UnknownNameError(SwitchSAEError, KeyError):
    """A name (an SAE in the explorer, a document id) is not known; the message lists what is."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


class UnavailableError(SwitchSAEError, RuntimeError):
    """Something the call needs is not available here (a device, a torchrun environment)."""


class MissingFileError(SwitchSAEError, FileNotFoundError):
    """A file the package needs is missing; the message says how to make it."""
