"""Exercises of chapter 02 that assemble a TopK SAE (Gao et al. 2024): its forward pass built on the learner's
TopK activation, and the dead-latent counter that AuxK reads. Chapter 02 then trains a TopK SAE made of the
learner's parts (classroom/topk_parts.py)."""

from __future__ import annotations

import torch

from .spec import Answer, Case, Exercise, close, dense_codes, grads_close, randint


# 2.5 — topk_sae_forward(x, W_enc, b_enc, W_dec, b_dec, k) -> (x_hat [batch, d_in], values, indices [batch, k])

def _forward_reference(x, W_enc, b_enc, W_dec, b_dec, k):
    values, indices = torch.relu((x - b_dec) @ W_enc + b_enc).topk(k, dim=-1)
    return (values[..., None] * W_dec[indices]).sum(-2) + b_dec, values, indices


def _forward_variant(x, W_enc, b_enc, W_dec, b_dec, k, centre=True, add_b_dec=True):
    values, indices = torch.relu(((x - b_dec) if centre else x) @ W_enc + b_enc).topk(k, dim=-1)
    return (values[..., None] * W_dec[indices]).sum(-2) + (b_dec if add_b_dec else 0)


def _forward_case(gen, n_tokens, d_in, d_sae, k, label):
    x = torch.randn(n_tokens, d_in, generator=gen) + 2.0
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    W_enc = W_dec.t().clone() + 0.3 * torch.randn(d_in, d_sae, generator=gen)
    b_enc = 0.2 * torch.randn(d_sae, generator=gen)
    b_dec = torch.randn(d_in, generator=gen) + 2.0  # far from zero, so forgetting to centre changes the top k
    weights = (torch.randn(n_tokens, d_in, generator=gen), None, None)
    return Case((x, W_enc, b_enc, W_dec, b_dec, k), label, grad_of=(1, 2, 3, 4), weights=weights)


def _forward_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    x, W_enc, b_enc, W_dec, b_dec, k = case.args
    x_hat, values, indices = got.outputs
    if indices.is_floating_point() and not values.is_floating_point():
        return "You returned (x_hat, indices, values): return (x_hat, values, indices), values first as torch.topk."
    if x_hat.shape != x.shape:
        return f"x_hat must have x's shape {tuple(x.shape)}; got {tuple(x_hat.shape)}."
    if values.shape != (x.shape[0], k) or indices.shape != (x.shape[0], k):
        return f"values and indices must have shape [batch, k] = {(x.shape[0], k)}; got {tuple(values.shape)}."
    if indices.is_floating_point() or (indices < 0).any() or (indices >= W_enc.shape[1]).any():
        return "indices must be integer positions of latents in [0, d_sae)."
    d_sae = W_enc.shape[1]
    latents = dense_codes(values, indices, d_sae)
    if not close(latents, dense_codes(*exp.outputs[1:], d_sae)):
        uncentred = torch.relu(x @ W_enc + b_enc).topk(k, dim=-1)
        if close(latents, dense_codes(*uncentred, d_sae)):
            return ("Centre the input first: pre-activations are (x - b_dec) @ W_enc + b_enc (the pre-encoder bias; "
                    "this case has a b_dec far from 0).")
        return ("The latents differ: (x - b_dec) @ W_enc + b_enc, then your topk_activation (ReLU, the k largest "
                "per token).")
    if not close(x_hat, exp.outputs[0], atol=1e-4):
        if close(x_hat, _forward_variant(*case.args, add_b_dec=False), atol=1e-4):
            return "Add b_dec back after decoding: x_hat = sum_i values_i * W_dec[indices_i] + b_dec."
        return "x_hat differs: decode the k chosen rows, sum_i values_i * W_dec[indices_i], plus b_dec."
    if not grads_close(got, exp, atol=1e-4):
        return ("The outputs are right but the gradient of x_hat is not: keep values in the graph (no .detach() or "
                "torch.no_grad()) and decode with W_dec's rows, so W_enc, b_enc, W_dec and b_dec all learn.")
    return None


TOPK_SAE_FORWARD = Exercise(
    "topk_sae_forward", ("x_hat", "values", "indices"), ("tensor",) * 3, _forward_reference,
    visible_cases=lambda: [_forward_case(torch.Generator().manual_seed(21), 6, 5, 16, 3, "visible")],
    random_cases=lambda gen: [_forward_case(gen, randint(gen, 1, 8), randint(gen, 2, 7), randint(gen, 6, 20),
                                            randint(gen, 1, 5), "random sizes")],
    diagnose=_forward_diagnose, depends_on=("topk_activation",))


# 2.6 — update_dead_counter(tokens_since_fired [d_sae], latent_idx, latent_acts [batch, k], dead_after)
#       -> (tokens_since_fired [d_sae], dead [d_sae] bool)

def _counter_reference(counter, latent_idx, latent_acts, dead_after):
    fired = torch.zeros(counter.shape[0], dtype=torch.bool)
    fired[latent_idx[latent_acts > 0]] = True
    counter = torch.where(fired, torch.zeros_like(counter), counter + latent_idx.shape[0])
    return counter, counter > dead_after


def _counter_case(gen, d_sae, n_tokens, k, dead_after, label):
    counter = torch.randint(0, 3 * dead_after, (d_sae,), generator=gen)
    counter[0] = dead_after - n_tokens  # reaches dead_after exactly if it does not fire: not dead yet
    scores = torch.rand(n_tokens, d_sae, generator=gen)
    scores[:, 0] = -1.0  # latent 0 never fires
    latent_acts, latent_idx = torch.relu(scores).topk(k, dim=-1)
    latent_acts[:, -1] = 0.0  # each token's last slot was chosen with value 0: it did not fire
    return Case((counter, latent_idx, latent_acts, dead_after), label)


def _counter_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    counter, latent_idx, latent_acts, dead_after = case.args
    new, dead = got.outputs
    if new.shape != counter.shape or dead.shape != counter.shape:
        return f"Both outputs have one entry per latent, shape [d_sae] = {tuple(counter.shape)}."
    if new.is_floating_point():
        return "Keep the counter an integer tensor (torch.long): it counts tokens."
    if dead.dtype != torch.bool:
        return "dead must be a boolean mask: new_counter > dead_after."
    expected_counter, expected_dead = exp.outputs
    if not torch.equal(new.long(), expected_counter):
        selected = torch.zeros(counter.shape[0], dtype=torch.bool)
        selected[latent_idx.reshape(-1)] = True
        if torch.equal(new.long(), torch.where(selected, torch.zeros_like(counter), counter + latent_idx.shape[0])):
            return ("A latent in the top k with activation 0 did not fire (after the ReLU fewer than k may be "
                    "positive): reset only where latent_acts > 0.")
        if torch.equal(new.long(), torch.where(expected_counter == 0, 0, counter + 1)):
            return ("The counter counts tokens, not steps: add the batch size latent_idx.shape[0] to latents that "
                    "did not fire.")
        if torch.equal(new.long(), counter + latent_idx.shape[0]):
            return "Reset the counter to 0 for every latent that fired in this batch."
        return ("The counter differs: tokens since each latent last fired; + batch size for latents that did not "
                "fire, 0 for those that did.")
    if not torch.equal(dead, expected_dead):
        if torch.equal(dead, new.long() >= dead_after):
            return "A latent is dead once its counter is *above* dead_after (>, not >=), as in the package."
        return "dead = new_counter > dead_after, one flag per latent."
    return None


UPDATE_DEAD_COUNTER = Exercise(
    "update_dead_counter", ("tokens_since_fired", "dead"), ("tensor", "tensor"), _counter_reference,
    visible_cases=lambda: [_counter_case(torch.Generator().manual_seed(22), 12, 5, 3, 20, "visible")],
    random_cases=lambda gen: [_counter_case(gen, randint(gen, 6, 30), randint(gen, 1, 9), randint(gen, 2, 5),
                                            randint(gen, 10, 1000), "random sizes")],
    diagnose=_counter_diagnose)
