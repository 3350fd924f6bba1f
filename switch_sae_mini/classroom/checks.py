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

__all__ = ["CheckFailed", "check_adam_update", "check_auxk_loss", "check_domain_profile", "check_encoder_flops",
           "check_expert_balance", "check_expert_cluster_gap", "check_fvu", "check_geometric_median",
           "check_l1_penalty", "check_l1_warmup_scale", "check_load_balance_loss", "check_matched_switch_sizes",
           "check_nearest_other_expert", "check_project_decoder_grad", "check_relu_encode", "check_relu_init",
           "check_relu_sae_loss", "check_route", "check_switch_forward", "check_switch_latents",
           "check_topk_activation", "check_topk_sae_forward", "check_training_flops_per_token",
           "check_update_dead_counter"]


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
    if name not in getattr(getattr(fn, "__code__", None), "co_names", ()):
        return  # fn does not call it
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


def check_relu_init(fn: Callable) -> None:
    """fn(d_in, d_sae, seed) -> (W_enc, b_enc, W_dec, b_dec): rows of norm 0.1, tied encoder, zero biases."""
    _check("relu_init", fn)


def check_relu_encode(fn: Callable) -> None:
    """fn(x [batch, d_in], W_enc [d_in, d_sae], b_enc [d_sae]) -> latents [batch, d_sae]."""
    _check("relu_encode", fn)


def check_relu_sae_loss(fn: Callable) -> None:
    """fn(x, W_enc, b_enc, W_dec, b_dec, l1_coeff) -> (loss, mse, l1), per-element scale."""
    _check_dependency(fn, "relu_encode", "1.3")
    _check_dependency(fn, "l1_penalty", "1.1")
    _check("relu_sae_loss", fn)


def check_adam_update(fn: Callable) -> None:
    """fn(param, grad, exp_avg, exp_avg_sq, step, lr) -> (param, exp_avg, exp_avg_sq) after one Adam step."""
    _check("adam_update", fn)


def check_l1_warmup_scale(fn: Callable) -> None:
    """fn(step, n_steps, warmup_frac) -> the factor on l1_coeff at 0-based step."""
    _check("l1_warmup_scale", fn)


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


def check_topk_sae_forward(fn: Callable) -> None:
    """fn(x, W_enc, b_enc, W_dec, b_dec, k) -> (x_hat [batch, d_in], values [batch, k], indices [batch, k])."""
    _check_dependency(fn, "topk_activation", "2.1")
    _check("topk_sae_forward", fn)


def check_update_dead_counter(fn: Callable) -> None:
    """fn(tokens_since_fired [d_sae], latent_idx, latent_acts [batch, k], dead_after) -> (counter, dead mask)."""
    _check("update_dead_counter", fn)


def check_route(fn: Callable) -> None:
    """fn(x [batch, d_in], W_router [d_in, E], b_router [d_in]) -> (expert_idx [batch], gate [batch])."""
    _check("route", fn)


def check_switch_latents(fn: Callable) -> None:
    """fn(x, W_enc [d_in, d_sae], b_dec, W_router, b_router, n_experts, k) -> dense latents [batch, d_sae]."""
    _check_dependency(fn, "route", "3.1")
    _check("switch_latents", fn)


def check_switch_forward(fn: Callable) -> None:
    """fn(x, W_enc, W_dec, b_dec, W_router, b_router, n_experts, k) -> (x_hat, values, indices), tokens grouped
    per expert."""
    _check_dependency(fn, "route", "3.1")
    _check("switch_forward", fn)


def check_load_balance_loss(fn: Callable) -> None:
    """fn(router_probs [batch, E], expert_idx [batch], n_experts) -> scalar E * sum_i f_i P_i."""
    _check("load_balance_loss", fn)


def check_encoder_flops(fn: Callable) -> None:
    """fn(d_in, d_sae, n_experts) -> forward FLOPs per token of router + routed encoder (multiply-add = 2)."""
    _check("encoder_flops", fn)


def check_training_flops_per_token(fn: Callable) -> None:
    """fn(d_in, d_sae, k, n_experts) -> forward + backward FLOPs per token (router, routed encoder, sparse decoder)."""
    _check("training_flops_per_token", fn)


def check_matched_switch_sizes(fn: Callable) -> None:
    """fn(d_in, d_sae, n_experts) -> (FLOP-matched d_sae, its params, width-matched d_sae, its params)."""
    _check("matched_switch_sizes", fn)


def check_domain_profile(fn: Callable) -> None:
    """fn(expert_idx [n], domain [n], n_experts, n_domains) -> [E, D]: each expert's domain mix (rows sum to 1)."""
    _check("domain_profile", fn)


def check_nearest_other_expert(fn: Callable) -> None:
    """fn(W_dec [d_sae, d_in], n_experts) -> (cos [d_sae], idx [d_sae]): nearest decoder row in another expert."""
    _check("nearest_other_expert", fn)


def check_expert_cluster_gap(fn: Callable) -> None:
    """fn(vectors [d_sae, d], n_experts) -> float: mean within-expert cosine minus mean across-expert cosine."""
    _check("expert_cluster_gap", fn)


def check_fvu(fn: Callable) -> None:
    """fn(x [batch, d_in], x_hat [batch, d_in]) -> float: sum ||x - x_hat||^2 / sum ||x - x.mean(0)||^2."""
    _check("fvu", fn)


def check_expert_balance(fn: Callable) -> None:
    """fn(expert_idx [batch], n_experts) -> float: the largest expert's share of tokens times E."""
    _check("expert_balance", fn)
