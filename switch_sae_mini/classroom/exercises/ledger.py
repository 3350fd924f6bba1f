"""Exercises of chapter 04's FLOP ledger (Mudide et al. 2024's FLOP-matched comparison; flops.py is the package's
version): the training FLOPs per token of a TopK or Switch SAE, and the sizes of the FLOP- and width-matched
Switch SAEs built from a dense TopK SAE. Written out here: the package's ledger is tripwired while they run."""

from __future__ import annotations

import torch

from .spec import Answer, Case, Exercise, randint


def _forward_items(d_in, d_sae, k, n_experts, dense_decoder=False, masked=False):
    router = 2 * d_in * n_experts if n_experts > 1 else 0
    encoder = 2 * d_in * (d_sae if masked else d_sae // n_experts)
    decoder = 2 * d_in * (d_sae if dense_decoder else k)
    return router, encoder, decoder


# 4.2 — training_flops_per_token(d_in, d_sae, k, n_experts) -> forward + backward FLOPs per token

def _training_reference(d_in, d_sae, k, n_experts):
    return 3 * sum(_forward_items(d_in, d_sae, k, n_experts))


def _training_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    d_in, d_sae, k, n_experts = case.args
    value, expected = got.outputs[0], exp.outputs[0]
    if value == expected:
        return None
    router, encoder, decoder = _forward_items(d_in, d_sae, k, n_experts)
    if value == router + encoder + decoder:
        return ("That is the forward pass only. Training adds the backward pass, about twice the forward (one "
                "matmul for the input's gradient, one for the weight's): 3 x forward per item.")
    if value == 2 * (router + encoder + decoder):
        return "The backward pass costs about 2 x the forward, so training is 3 x forward, not 2 x."
    if value == 3 * sum(_forward_items(d_in, d_sae, k, n_experts, dense_decoder=True)):
        return "The decoder only sums the k active rows: 2 * k * d_in per token, not 2 * d_sae * d_in."
    if n_experts > 1 and value == 3 * (encoder + decoder):
        return "Count the router too: its [d_in, E] matmul is 2 * d_in * E forward FLOPs per token."
    if n_experts > 1 and value == 3 * sum(_forward_items(d_in, d_sae, k, n_experts, masked=True)):
        return ("That encoder computes all d_sae latents (what the paper's masked reference code runs); a routed "
                "token only touches its expert's d_sae / E.")
    if value == 3 * (router + encoder):
        return "Add the decoder: 2 * k * d_in forward FLOPs per token for the k active rows."
    return (f"For d_in={d_in}, d_sae={d_sae}, k={k}, E={n_experts} the count differs: 3 x (router + encoder + "
            "decoder), each 2 FLOPs per multiply-add.")


def _training_random(gen):
    n_experts = 2 ** randint(gen, 1, 6)
    return [Case((64 * randint(gen, 1, 13), 256 * n_experts * randint(gen, 1, 5), 2 ** randint(gen, 2, 7),
                  n_experts), "random sizes"),
            Case((96, 3072, 16, 1), "a single expert (plain TopK)")]


TRAINING_FLOPS = Exercise(
    "training_flops_per_token", ("flops",), ("int",), _training_reference,
    visible_cases=lambda: [Case(shape, "visible") for shape in [(768, 24576, 32, 1), (768, 24576 * 8, 32, 8),
                                                                 (128, 1024, 8, 4)]],
    random_cases=_training_random, diagnose=_training_diagnose)


# 4.3 — matched_switch_sizes(d_in, d_sae, n_experts) -> (flop d_sae, flop params, width d_sae, width params)

def _params(d_in, d_sae, n_experts):
    """Switch SAE parameters: W_enc and W_dec (2 d_sae d_in), b_dec, W_router (d_in E) and b_router."""
    return 2 * d_sae * d_in + d_in + d_in * n_experts + d_in


def _matched_reference(d_in, d_sae, n_experts):
    return (d_sae * n_experts, _params(d_in, d_sae * n_experts, n_experts), d_sae, _params(d_in, d_sae, n_experts))


def _matched_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    d_in, d_sae, n_experts = case.args
    if tuple(got.outputs) == tuple(exp.outputs):
        return None
    flop_d_sae, flop_params, width_d_sae, width_params = got.outputs
    if (flop_d_sae, width_d_sae) == (d_sae, d_sae * n_experts):
        return ("The two regimes are swapped. FLOP-matched: every expert as wide as the dense SAE, so E x d_sae in "
                "total; width-matched: the dense SAE's d_sae split over E experts.")
    if flop_d_sae != d_sae * n_experts:
        return ("FLOP-matched keeps the encoder cost per token: each of the E experts has the dense SAE's d_sae "
                "latents, so the total is E x d_sae.")
    if width_d_sae != d_sae:
        return "Width-matched keeps the total width d_sae (each expert has d_sae / E latents)."
    for got_params, total in ((flop_params, flop_d_sae), (width_params, width_d_sae)):
        if got_params == 2 * total * d_in + d_in + total:  # the TopK count: b_enc instead of the router
            return "A Switch SAE has no encoder bias here; it has a router: W_router (d_in x E) and b_router (d_in)."
        if got_params == 2 * total * d_in:
            return "Count the biases and the router too: b_dec (d_in), W_router (d_in x E), b_router (d_in)."
    return ("The parameter counts differ: 2 * d_sae_total * d_in (W_enc, W_dec) + d_in (b_dec) + d_in * E "
            "(W_router) + d_in (b_router).")


MATCHED_SIZES = Exercise(
    "matched_switch_sizes", ("flop_matched_d_sae", "flop_matched_params", "width_matched_d_sae",
                             "width_matched_params"), ("int",) * 4, _matched_reference,
    visible_cases=lambda: [Case((768, 24576, 8), "visible"), Case((128, 1024, 4), "visible")],
    random_cases=lambda gen: [Case((64 * randint(gen, 1, 13), 128 * randint(gen, 1, 9), 2 ** randint(gen, 1, 7)),
                                   "random sizes")],
    diagnose=_matched_diagnose)

