"""Exercises on the two numbers the course reads most: FVU, the fraction of variance unexplained (chapter 01), and
expert balance, the largest expert's token share times E (chapter 03). saes/metrics.py is the package's version."""

from __future__ import annotations

import torch

from ...saes import metrics as _metrics
from .spec import Answer, Case, Exercise, randint


# 1.5 — fvu(x [batch, d_in], x_hat [batch, d_in]) -> sum ||x - x_hat||^2 / sum ||x - mean_t x||^2

def _fvu_reference(x, x_hat):
    return _metrics.fvu(x_hat, x)


def _fvu_case(gen, n_tokens, d_in, label):
    offset = 5.0 * torch.randn(d_in, generator=gen)  # a large shared mean, as in the residual stream (chapter 00)
    x = offset + torch.randn(n_tokens, d_in, generator=gen) * torch.linspace(0.2, 2.0, d_in)
    x_hat = x + 0.4 * torch.randn(n_tokens, d_in, generator=gen)
    return Case((x, x_hat), label)


def _fvu_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    x, x_hat = case.args
    value, expected = got.outputs[0], exp.outputs[0]
    if abs(value - expected) <= 1e-5 * max(1.0, abs(expected)):
        return None
    error = (x - x_hat).pow(2)
    near = lambda v: abs(value - float(v)) <= 1e-5 * max(1.0, abs(float(v)))  # noqa: E731
    if near(1 - expected):
        return "That is the variance *explained* (1 - FVU). FVU is the unexplained part: 0 is a perfect reconstruction."
    if near(error.sum() / x.pow(2).sum()):
        return ("You divided by sum ||x||^2. Centre first: the variance is sum ||x - mean||^2 with the mean over "
                "tokens; this case has a large shared offset, as the residual stream does, which makes the "
                "uncentred ratio look far too good.")
    if near(error.sum() / (x - x.mean()).pow(2).sum()):
        return ("Centre each dimension by its own mean over tokens (x.mean(0)), not by one scalar x.mean() over all "
                "entries.")
    if near((error.sum(-1) / (x - x.mean(0)).pow(2).sum(-1)).mean()):
        return ("You averaged a per-token ratio. FVU is one ratio of sums over the whole batch: sum of squared "
                "errors over sum of squared deviations.")
    if near(error.mean() / x.var(0).mean()) or near(error.mean() / x.var()):
        return ("Close: the variance must use the same normalisation as the error. Compute both as plain sums, "
                "sum (x - x_hat)^2 / sum (x - x.mean(0))^2.")
    return f"FVU differs: expected about {expected:.4f}, got {value:.4f}."


FVU = Exercise(
    "fvu", ("fvu",), ("float",), _fvu_reference,
    visible_cases=lambda: [_fvu_case(torch.Generator().manual_seed(51), 20, 6, "visible")],
    random_cases=lambda gen: [_fvu_case(gen, randint(gen, 2, 40), randint(gen, 2, 10), "random sizes")],
    diagnose=_fvu_diagnose)


# 3.5 — expert_balance(expert_idx [batch], n_experts) -> max_i (share of tokens routed to i) * E

def _balance_reference(expert_idx, n_experts):
    return _metrics.balance(_metrics.expert_share(expert_idx, n_experts))


def _balance_case(gen, n_tokens, n_experts, label, skew=True):
    weights = torch.rand(n_experts, generator=gen) + (torch.arange(n_experts) == 0) * (3.0 if skew else 0.0)
    return Case((torch.multinomial(weights, n_tokens, replacement=True, generator=gen), n_experts), label)


def _balance_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    expert_idx, n_experts = case.args
    value, expected = got.outputs[0], exp.outputs[0]
    if abs(value - expected) <= 1e-6:
        return None
    counts = torch.bincount(expert_idx, minlength=n_experts).float()
    share = counts / expert_idx.numel()
    near = lambda v: abs(value - float(v)) <= 1e-6  # noqa: E731
    if near(share.max()):
        return ("Multiply the largest share by E: the balance is 1 under uniform routing and E when every token "
                "goes to one expert, whatever E is.")
    if near(counts.max() * n_experts):
        return "Use the *fraction* of tokens (counts / number of tokens), not the count."
    if near(share.min() * n_experts):
        return "Take the largest share (the most loaded expert), not the smallest."
    if near(share.max() / n_experts):
        return "Multiply by E, do not divide: uniform routing (every share 1/E) must read 1."
    return f"The balance differs: max over experts of share_i * E (expected {expected:.4f}, got {value:.4f})."


EXPERT_BALANCE = Exercise(
    "expert_balance", ("balance",), ("float",), _balance_reference,
    visible_cases=lambda: [_balance_case(torch.Generator().manual_seed(52), 40, 4, "visible")],
    random_cases=lambda gen: [_balance_case(gen, randint(gen, 1, 60), randint(gen, 2, 9), "random sizes"),
                              Case((torch.full((7,), 2), 5), "every token to one expert")],
    diagnose=_balance_diagnose)
