"""What every exercise check shares: the CheckFailed error, calling the learner's function, comparing tensors, and
the planted Switch SAE case. checks.py (visible) and hidden_checks.py (run by the grader) build on it."""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator

import torch

from ..config import SAEConfig
from ..errors import SwitchSAEError
from ..saes import SwitchSAE, route


class CheckFailed(SwitchSAEError, AssertionError):
    """The learner's function gave a wrong answer; the message says what to look at."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of the traceback: the teaching message alone, not 12-15 lines of this
        # module (which would also print the wording of the other failure messages). tests/test_checks.py
        return [f"CheckFailed: {self}"]


# The package's own implementation of each exercise, as "module:qualname". While the learner's function runs in a
# check, these are tripwired: an answer that calls (or imports) the package's solution fails with a message saying
# so, whatever name it reached it by (tests/test_checks.py).
REFERENCES: dict[str, tuple[str, ...]] = {
    "l1_penalty": ("switch_sae_mini.saes.relu:ReLUSAE.forward",),
    "topk_activation": ("switch_sae_mini.saes.base:topk_activation",),
    "geometric_median": ("switch_sae_mini.saes.base:geometric_median",),
    "route": ("switch_sae_mini.saes.routing:route", "switch_sae_mini.saes.switch:SwitchSAE.route"),
    "switch_latents": ("switch_sae_mini.saes.switch:SwitchSAE.forward", "switch_sae_mini.saes.kernels:routed_topk_encode",
                       "switch_sae_mini.saes.switch:SwitchSAE._routed_topk",
                       "switch_sae_mini.saes.switch:SwitchSAE._masked_topk"),
    "load_balance_loss": ("switch_sae_mini.saes.routing:load_balance_loss",),
    "encoder_flops": ("switch_sae_mini.flops:forward_flops", "switch_sae_mini.flops:reference_forward_flops",
                      "switch_sae_mini.flops:training_flops"),
}
_HOOK = "__switch_sae_mini_tripwire__"


def _resolve(target: str):
    module_name, qualname = target.split(":")
    obj = module = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return module, obj


def _reference_message(target: str) -> str:
    return (f"this calls {target.replace(':', '.')}, the package's own implementation of this exercise; write it "
            "yourself.")


@functools.cache
def _tripwire_code(n_free: int, target: str):
    """A code object that reports `target`, with as many free variables as the function it replaces needs."""
    names = [f"_free{i}" for i in range(n_free)]
    lines = ["def _outer():", *(f"    {v} = None" for v in names), "    def _trip(*args, **kwargs):"]
    if names:
        lines.append(f"        ({', '.join(names)},)")
    lines += [f"        return {_HOOK}({target!r})", "    return _trip"]
    namespace: dict = {}
    exec("\n".join(lines), namespace)
    return namespace["_outer"]().__code__


@contextlib.contextmanager
def tripwire(name: str) -> Iterator[list[str]]:
    """While active, calling the package's implementation of exercise `name` raises CheckFailed (and is listed)."""
    hits: list[str] = []

    def hit(target: str):
        hits.append(target)
        raise CheckFailed(_reference_message(target))
    swapped = []
    try:
        for target in REFERENCES.get(name, ()):
            module, fn = _resolve(target)
            fn = getattr(fn, "__func__", fn)
            swapped.append((module, fn, fn.__code__))
            module.__dict__[_HOOK] = hit
            fn.__code__ = _tripwire_code(len(fn.__code__.co_freevars), target)
        yield hits
    finally:
        for module, fn, code in swapped:
            fn.__code__ = code
            module.__dict__.pop(_HOOK, None)


def _call(name: str, fn: Callable, *args):
    try:
        with tripwire(name) as hits:
            out = fn(*args)
    except NotImplementedError:
        raise CheckFailed(f"{name} still raises NotImplementedError: replace the stub with your code.") from None
    except CheckFailed:
        raise
    except Exception as exc:  # the learner's code crashed: show what and where, not a stack of ours
        raise CheckFailed(f"{name} raised {type(exc).__name__}: {exc}") from exc
    if hits:  # the learner's code caught the tripwire's error and went on
        raise CheckFailed(_reference_message(hits[0]))
    return out


def _close(a, b, atol=1e-5) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


def _passed(name: str) -> None:
    print(f"✓ {name} passed")


def _switch_case(d_in: int, d_sae: int, k: int, n_experts: int, seed: int, n_tokens: int):
    """A reference SwitchSAE with nonzero biases (so forgetting to centre by them shows) and a batch of inputs."""
    torch.manual_seed(seed)
    sae = SwitchSAE(SAEConfig(arch="switch", d_in=d_in, d_sae=d_sae, k=k, n_experts=n_experts))
    x = torch.randn(n_tokens, d_in)
    with torch.no_grad():
        sae.b_dec.normal_(0, 0.3)
        sae.b_router.normal_(0, 0.3)
        # token 0: every pre-activation of its expert is negative (so a missing ReLU shows as negative latents)
        e0, block = int(route(x[:1], sae.W_router, sae.b_router).expert_idx), d_sae // n_experts
        direction = (x[0] - sae.b_dec) / (x[0] - sae.b_dec).norm()
        sae.W_enc[:, e0 * block:(e0 + 1) * block] = -direction[:, None] + 0.1 * torch.randn(d_in, block)
    return sae, x


def _manual_latents(sae, x, centre: bool = True, relu: bool = True) -> torch.Tensor:
    """Switch latents written out token by token; centre=False / relu=False give two typical wrong answers."""
    routing = route(x, sae.W_router, sae.b_router)
    block = sae.cfg.d_sae // sae.cfg.n_experts
    latents = torch.zeros(x.shape[0], sae.cfg.d_sae)
    for t, e in enumerate(routing.expert_idx.tolist()):
        pre = ((x[t] - sae.b_dec) if centre else x[t]) @ sae.W_enc[:, e * block:(e + 1) * block]
        values, local = (torch.relu(pre) if relu else pre).topk(sae.cfg.k)
        latents[t, e * block + local] = values * routing.gate[t]
    return latents
