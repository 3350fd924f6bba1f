"""The visible exercise checks the notebooks call: each runs the exercise's visible cases (exercises/) on the
learner's function, raises CheckFailed with a teaching message on a wrong answer, and prints one line on success.

Passing here is feedback, not a grade: `python -m switch_sae_mini grade` decides points in its own process, on
inputs it draws from the instructor's secret seed plus the instructor's hidden cases (classroom/grading/).
tests/test_checks.py proves every check rejects a stub and the typical wrong answers it names.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

from .exercises import EXERCISES, CheckFailed, judge, run_case

__all__ = ["CheckFailed", "check_auxk_loss", "check_encoder_flops", "check_project_decoder_grad", "check_geometric_median", "check_l1_penalty",
           "check_load_balance_loss", "check_route", "check_switch_latents", "check_topk_activation"]


def _check(name: str, fn: Callable) -> None:
    exercise = EXERCISES[name]
    for case in exercise.visible_cases():
        message = judge(exercise, case, run_case(exercise, fn, case))
        if message is not None:
            raise CheckFailed(message)
    print(f"✓ check_{name} passed (the grader also runs hidden cases: other sizes and edge cases)")


def _check_dependency(fn: Callable, name: str, exercise: str) -> None:
    """If fn's notebook defines its own `name` (an earlier exercise), check that first: a mistake there is then
    reported as its own, not as an unexplained failure here. (Grading substitutes the reference instead.)"""
    own = getattr(fn, "__globals__", {}).get(name)
    if own is None or (getattr(own, "__module__", None) or "").startswith("switch_sae_mini"):
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _check(name, own)
    except CheckFailed as exc:
        raise CheckFailed(f"your {name} fails check_{name} (exercise {exercise}), and {fn.__name__} calls it: fix "
                          f"{exercise} first. Its message: {exc}") from None


def check_l1_penalty(fn: Callable) -> None:
    """fn(latents [batch, d_sae], W_dec [d_sae, d_in]) -> scalar: mean over tokens of sum_j f_j * ||W_dec[j]||."""
    _check("l1_penalty", fn)


def check_topk_activation(fn: Callable) -> None:
    """fn(pre_acts [batch, d_sae], k) -> (values [batch, k], indices [batch, k]), ReLU applied."""
    _check("topk_activation", fn)


def check_geometric_median(fn: Callable) -> None:
    """fn(points [n, d]) -> [d]: the point minimising the sum of Euclidean distances."""
    _check("geometric_median", fn)


def check_project_decoder_grad(fn: Callable) -> None:
    """fn(W_dec [d_sae, d_in] with unit rows, grad [d_sae, d_in]) -> grad without its component along each row."""
    _check("project_decoder_grad", fn)


def check_auxk_loss(fn: Callable) -> None:
    """fn(pre_acts, dead_mask [d_sae], residual, W_dec, k_aux, x) -> scalar AuxK loss (Gao et al. 2024)."""
    _check("auxk_loss", fn)


def check_route(fn: Callable) -> None:
    """fn(x [batch, d_in], W_router [d_in, E], b_router [d_in]) -> (expert_idx [batch], gate [batch])."""
    _check("route", fn)


def check_switch_latents(fn: Callable) -> None:
    """fn(x, W_enc [d_in, d_sae], b_dec, W_router, b_router, n_experts, k) -> dense latents [batch, d_sae]."""
    _check_dependency(fn, "route", "3.1")
    _check("switch_latents", fn)


def check_load_balance_loss(fn: Callable) -> None:
    """fn(router_probs [batch, E], expert_idx [batch], n_experts) -> scalar E * sum_i f_i P_i."""
    _check("load_balance_loss", fn)


def check_encoder_flops(fn: Callable) -> None:
    """fn(d_in, d_sae, n_experts) -> forward FLOPs per token of router + routed encoder (multiply-add = 2)."""
    _check("encoder_flops", fn)
