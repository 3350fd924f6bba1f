"""One exercise, written once for two uses: the visible check a learner runs in the notebook, and the trusted
grading in which the grader picks the inputs, the learner's kernel only computes, and the grader compares.

An Exercise knows its reference, how to build cases (visible ones, and random ones from a secret seed), and how to
read an Answer: `diagnose` gets plain data (the case, the learner's answer, the reference's answer) and returns a
teaching message, or None when the answer is right. So the same message appears in the notebook and in the
grader's feedback, and the decision never depends on code that ran beside the learner's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .tripwire import CheckFailed, _reference_message, tripwire


class Case(NamedTuple):
    """The inputs of one call, and (optionally) the scalar whose backward the check takes."""

    args: tuple
    """Positional arguments: tensors, ints or floats."""
    label: str
    """What the case is, in words that reveal no input values ("visible", "random sizes", ...)."""
    grad_of: tuple[int, ...] = ()
    """Indices of the tensor arguments whose gradient is part of the answer."""
    weights: tuple = ()
    """Per output, a tensor of its shape (or None): the scalar is sum_i (output_i * weights_i).sum()."""


class Answer(NamedTuple):
    """What a function returned for one case, as plain data (tensors, ints, floats; never objects)."""

    outputs: tuple = ()
    grads: tuple = ()
    """One entry per Case.grad_of: the gradient tensor, or None when the output had no gradient there."""
    error: str = ""
    """Non-empty when the function raised or returned the wrong type: the teaching message."""
    reference_hits: tuple[str, ...] = ()
    """Package implementations of this exercise that the function called (reported by the tripwire)."""


@dataclass(frozen=True)
class Exercise:
    name: str                      # the function the learner writes, also its solution cell's grade_id
    outputs: tuple[str, ...]       # output names, in return order
    kinds: tuple[str, ...]         # per output: "tensor", "int" or "float"
    reference: Callable            # the right answer, with the exercise's own signature
    visible_cases: Callable[[], list[Case]]
    random_cases: Callable[[torch.Generator], list[Case]]
    diagnose: Callable[[Case, Answer, Answer], str | None]
    depends_on: tuple[str, ...] = ()  # earlier exercises it calls; graded with their references substituted
    error_hint: Callable[[Case], str] | None = None  # what about this case may explain a crash

    def __post_init__(self):
        if len(self.outputs) != len(self.kinds) or set(self.kinds) - {"tensor", "int", "float"}:
            raise ValueError(f"Exercise {self.name}: give one kind ('tensor', 'int' or 'float') per output name.")


def _plain(value):
    """A tensor subclass or a tensor with an overridden __eq__ becomes a plain detached tensor."""
    with torch._C.DisableTorchFunctionSubclass():
        return torch.Tensor.detach(value).clone()


def _normalise(ex: Exercise, out) -> tuple[tuple, str]:
    """The outputs as a tuple of tensors/ints, or ((), teaching message) for a wrong type or arity."""
    names = ", ".join(ex.outputs)
    if len(ex.outputs) > 1:
        if not isinstance(out, (tuple, list)) or len(out) < len(ex.outputs):
            return (), f"Return a tuple ({names}); got {type(out).__name__}."
        out = tuple(out[: len(ex.outputs)])
    else:
        out = (out,)
    values = []
    for name, kind, value in zip(ex.outputs, ex.kinds, out):
        if kind == "tensor":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return (), (f"{name} is a Python {type(value).__name__}, not a tensor: keep it a torch.Tensor "
                            "(.item() and float() drop the autograd graph).")
            if not isinstance(value, torch.Tensor):
                return (), f"{name} must be a torch.Tensor; got {type(value).__name__}."
            values.append(value)
        elif kind == "float":
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = float(value)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return (), f"{name} must be a number (a Python float); got {type(value).__name__}."
            values.append(float(value))
        else:
            if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
                value = int(value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                return (), f"{name} must be an int; got {type(value).__name__}."
            values.append(int(value))
    return tuple(values), ""


def _args_for_call(case: Case) -> tuple:
    return tuple(_plain(a).requires_grad_(i in case.grad_of) if isinstance(a, torch.Tensor) else a
                 for i, a in enumerate(case.args))


def run_case(ex: Exercise, fn: Callable, case: Case, guard: bool = True) -> Answer:
    """Call fn on a fresh copy of the case's inputs; its outputs and gradients as plain data.

    guard=True (the learner's function) tripwires the package's own implementation of this exercise while fn runs.
    """
    args = _args_for_call(case)
    hits: list[str] = []
    try:
        if guard:
            with tripwire(ex.name) as hits:
                out = fn(*args)
        else:
            out = fn(*args)
    except NotImplementedError:
        return Answer(error=f"{ex.name} still raises NotImplementedError: replace the stub with your code.")
    except CheckFailed as exc:  # the tripwire
        return Answer(error=str(exc), reference_hits=tuple(hits))
    except Exception as exc:  # the learner's code crashed: say what, not where in our code
        return Answer(error=f"{ex.name} raised {type(exc).__name__}: {str(exc)[:300]}")
    if hits:  # the learner's code caught the tripwire's error and went on
        return Answer(error=_reference_message(hits[0]), reference_hits=tuple(hits))
    outputs, error = _normalise(ex, out)
    if error:
        return Answer(error=error)
    grads: tuple = ()
    if case.grad_of:
        terms = [(o.float() * w).sum() for o, w in zip(outputs, case.weights)
                 if w is not None and isinstance(o, torch.Tensor) and o.requires_grad and o.shape == w.shape]
        targets = [args[i] for i in case.grad_of]
        grads = (None,) * len(targets)
        if terms:
            try:
                grads = torch.autograd.grad(sum(terms), targets, allow_unused=True)
            except RuntimeError as exc:
                return Answer(error=f"the backward pass through {ex.name} failed: {str(exc)[:200]}")
    return Answer(tuple(_plain(o) if isinstance(o, torch.Tensor) else o for o in outputs),
                  tuple(None if g is None else _plain(g) for g in grads))


ONE = torch.tensor(1.0)  # the weight of a scalar output whose gradient a case checks


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """One integer in [low, high) from the case generator (the grader's secret seed for random cases)."""
    return int(torch.randint(low, high, (1,), generator=gen))


def dense_codes(values, indices, d_sae: int):
    """[batch, d_sae] latents from sparse (values, indices) codes, so the order of the k entries does not matter."""
    return torch.zeros(values.shape[0], d_sae).scatter_add(-1, indices.long(), values.float())


def close(a, b, atol: float = 1e-5) -> bool:
    """Same shape and values (a must be a tensor; b the reference)."""
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and bool(torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4)))


def grads_close(got: Answer, expected: Answer, atol: float = 1e-5) -> bool:
    """Gradients equal, a missing gradient (None) counting as zero: no path from the output to that input."""
    if len(got.grads) != len(expected.grads):
        return False
    for g, e in zip(got.grads, expected.grads):
        if g is None and e is None:
            continue
        g = g if g is not None else torch.zeros_like(e)
        e = e if e is not None else torch.zeros_like(g)
        if not close(g, e, atol):
            return False
    return True


def judge(ex: Exercise, case: Case, got: Answer, expected: Answer | None = None) -> str | None:
    """None when `got` is right for `case`; otherwise the teaching message (computed from data only)."""
    if got.error:
        return got.error + (ex.error_hint(case) if ex.error_hint and not got.reference_hits else "")
    if len(got.outputs) != len(ex.outputs):
        return f"the answer has {len(got.outputs)} outputs; {ex.name} returns {len(ex.outputs)}."
    expected = expected if expected is not None else run_case(ex, ex.reference, case, guard=False)
    return ex.diagnose(case, got, expected)
