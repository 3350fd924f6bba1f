"""Exercises of chapter 01's training step: one Adam update of a tensor (Kingma & Ba 2015, the optimizer of the
paper's recipe, training/step.py) and the L1 warm-up schedule of ReLU SAEs. Chapter 01 trains with both."""

from __future__ import annotations

import torch

from .spec import Answer, Case, Exercise, close, randint

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


# 1.6 — adam_update(param, grad, exp_avg, exp_avg_sq, step, lr) -> (param, exp_avg, exp_avg_sq), step counted from 1

def _adam_reference(param, grad, exp_avg, exp_avg_sq, step, lr):
    exp_avg = BETA1 * exp_avg + (1 - BETA1) * grad
    exp_avg_sq = BETA2 * exp_avg_sq + (1 - BETA2) * grad * grad
    m_hat = exp_avg / (1 - BETA1 ** step)
    v_hat = exp_avg_sq / (1 - BETA2 ** step)
    return param - lr * m_hat / (v_hat.sqrt() + EPS), exp_avg, exp_avg_sq


def _adam_variant(param, grad, exp_avg, exp_avg_sq, step, lr, correct=True, eps_inside=False, sign=-1.0,
                  square=True, eps=EPS):
    exp_avg = BETA1 * exp_avg + (1 - BETA1) * grad
    exp_avg_sq = BETA2 * exp_avg_sq + (1 - BETA2) * (grad * grad if square else grad.abs())
    m_hat = exp_avg / (1 - BETA1 ** step) if correct else exp_avg
    v_hat = exp_avg_sq / (1 - BETA2 ** step) if correct else exp_avg_sq
    denom = (v_hat + eps).sqrt() if eps_inside else v_hat.sqrt() + eps
    return param + sign * lr * m_hat / denom, exp_avg, exp_avg_sq


def _adam_case(gen, shape, step, lr, label):
    param = torch.randn(*shape, generator=gen)
    grad = torch.randn(*shape, generator=gen)
    grad.view(-1)[::3] *= 1e-5  # tiny gradients, where the place of eps matters
    if step == 1:
        exp_avg, exp_avg_sq = torch.zeros(shape), torch.zeros(shape)
    else:
        exp_avg = 0.1 * torch.randn(*shape, generator=gen)
        exp_avg_sq = 0.01 * torch.rand(*shape, generator=gen)
        exp_avg.view(-1)[::3] *= 1e-5  # the tiny-gradient entries have tiny moments too, so eps matters there
        exp_avg_sq.view(-1)[::3] = 1e-14
    return Case((param, grad, exp_avg, exp_avg_sq, step, lr), label)


def _same_update(got, expected, param) -> bool:
    """Compare the *updates* (new - old), so the tolerance is relative to the step, not to the parameter (atol: a
    few float32 ulps of a parameter of size ~1, the rounding of a differently ordered but right formula)."""
    return isinstance(got, torch.Tensor) and got.shape == expected.shape and bool(
        torch.allclose(got.float() - param, expected - param, rtol=1e-3, atol=3e-7))


def _adam_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    names = ("param", "exp_avg", "exp_avg_sq")
    for name, value, expected in zip(names, got.outputs, exp.outputs):
        if value.shape != expected.shape:
            return f"{name} must keep the parameter's shape {tuple(expected.shape)}; got {tuple(value.shape)}."
    if not torch.isfinite(got.outputs[0]).all():
        return ("The new parameter has NaN/inf. Two usual causes: eps missing from the denominator (a zero "
                "gradient then gives 0/0), or `step` counted from 0 (it counts from 1, so the bias corrections "
                "1 - beta**step are never 0).")
    if not close(got.outputs[1], exp.outputs[1], atol=1e-6):
        return "exp_avg is the first moment: beta1 * exp_avg + (1 - beta1) * grad, with beta1 = 0.9."
    if not close(got.outputs[2], exp.outputs[2], atol=1e-8):
        if close(got.outputs[2], _adam_variant(*case.args, square=False)[2], atol=1e-8):
            return "exp_avg_sq averages the *squared* gradient: beta2 * exp_avg_sq + (1 - beta2) * grad**2."
        return "exp_avg_sq is the second moment: beta2 * exp_avg_sq + (1 - beta2) * grad**2, with beta2 = 0.999."
    param = case.args[0]
    if _same_update(got.outputs[0], exp.outputs[0], param):
        return None
    for kwargs, message in [
            ({"correct": False}, "You skipped the bias corrections. Both moments start at 0, so divide them by "
                                 "1 - beta1**step and 1 - beta2**step before the update."),
            ({"eps_inside": True}, "eps goes outside the square root: m_hat / (sqrt(v_hat) + eps), as in "
                                   "torch.optim.Adam (this case has tiny gradients, where it matters)."),
            ({"eps": 0.0}, "eps is missing: divide by sqrt(v_hat) + eps, with eps = 1e-8 (a zero gradient would "
                           "give 0/0)."),
            ({"sign": 1.0}, "Wrong sign: Adam steps *against* the gradient, param - lr * m_hat / (...)."),
    ]:
        if _same_update(got.outputs[0], _adam_variant(*case.args, **kwargs)[0], param):
            return message
    step = case.args[4]
    for other in (step - 1, step + 1):
        if other >= 1 and _same_update(got.outputs[0], _adam_reference(*case.args[:4], other, case.args[5])[0], param):
            return "The bias corrections use the wrong step: with step counted from 1, use beta**step."
    return "The new parameter differs: param - lr * m_hat / (sqrt(v_hat) + eps), with bias-corrected moments."


ADAM_UPDATE = Exercise(
    "adam_update", ("param", "exp_avg", "exp_avg_sq"), ("tensor",) * 3, _adam_reference,
    visible_cases=lambda: [_adam_case(torch.Generator().manual_seed(13), (4, 6), 1, 1e-2, "the first step"),
                           _adam_case(torch.Generator().manual_seed(14), (5,), 7, 3e-3, "a later step")],
    random_cases=lambda gen: [_adam_case(gen, (randint(gen, 1, 9), randint(gen, 1, 9)), randint(gen, 2, 500),
                                         1e-3, "random sizes and step")],
    diagnose=_adam_diagnose)


# 1.7 — l1_warmup_scale(step, n_steps, warmup_frac) -> the factor on l1_coeff at 0-based `step`

def _warmup_reference(step, n_steps, warmup_frac):
    """training/step.py's l1_scale, written out (tests/test_checks_relu.py shows that the two agree)."""
    if warmup_frac <= 0:
        return 1.0
    return min(1.0, (step + 1) / max(1, int(warmup_frac * n_steps)))


def _warmup_diagnose(case: Case, got: Answer, exp: Answer) -> str | None:
    step, n_steps, frac = case.args
    value, expected = got.outputs[0], exp.outputs[0]
    if abs(value - expected) <= 1e-9:
        return None
    warmup_steps = max(1, int(frac * n_steps))
    if frac <= 0:
        return "warmup_frac = 0 means no warm-up: the factor is 1 from the first step."
    if value > 1 + 1e-9:
        return f"The factor passed 1 (got {value:.3g} at step {step}): cap it, min(1, ...), after the warm-up."
    if abs(value - min(1.0, step / warmup_steps)) <= 1e-9:
        return (f"Off by one: `step` counts from 0, and step 0 already trains with the L1 penalty at "
                f"1/{warmup_steps}, so use (step + 1) / warmup_steps.")
    if abs(value - min(1.0, (step + 1) / n_steps)) <= 1e-9:
        return "The warm-up lasts warmup_frac of the steps, int(warmup_frac * n_steps), not all n_steps."
    return (f"At step {step} of {n_steps} with warmup_frac={frac} the factor is {expected:.4g}; got {value:.4g}: "
            "min(1, (step + 1) / max(1, int(warmup_frac * n_steps))).")


def _warmup_cases(pairs, label):
    return [Case(args, label) for args in pairs]


def _warmup_random(gen):
    n_steps = randint(gen, 20, 3000)
    steps = [0, randint(gen, 1, n_steps // 20 + 1), randint(gen, n_steps // 10, n_steps)]
    return (_warmup_cases([(s, n_steps, 0.05) for s in steps], "random step counts")
            + _warmup_cases([(3, n_steps, 0.0)], "no warm-up"))


L1_WARMUP_SCALE = Exercise(
    "l1_warmup_scale", ("scale",), ("float",), _warmup_reference,
    visible_cases=lambda: _warmup_cases([(0, 1000, 0.05), (24, 1000, 0.05), (49, 1000, 0.05), (700, 1000, 0.05),
                                         (5, 30, 0.1)], "visible"),
    random_cases=_warmup_random, diagnose=_warmup_diagnose)
