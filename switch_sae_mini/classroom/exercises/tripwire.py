"""CheckFailed, and the tripwire on the package's own implementation of each exercise: while a learner's function
runs in a check (in the notebook or in grading), calling the package's solution raises, whatever name it was
reached by (tests/test_checks.py)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
from collections.abc import Iterator

from ...errors import SwitchSAEError


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
    "relu_init": ("switch_sae_mini.saes.relu:ReLUSAE.__init__",),
    "relu_encode": ("switch_sae_mini.saes.relu:ReLUSAE.forward", "switch_sae_mini.saes.base:SAEBase.encode"),
    "relu_sae_loss": ("switch_sae_mini.saes.relu:ReLUSAE.forward",),
    "fvu": ("switch_sae_mini.saes.metrics:fvu", "switch_sae_mini.saes.metrics:evaluate_sae"),
    "adam_update": ("switch_sae_mini.training.step:make_optimizer",),
    "l1_warmup_scale": ("switch_sae_mini.training.step:l1_scale",),
    "topk_activation": ("switch_sae_mini.saes.base:topk_activation",),
    "geometric_median": ("switch_sae_mini.saes.base:geometric_median",),
    "project_decoder_grad": ("switch_sae_mini.saes.base:SAEBase.project_decoder_grad",),
    "auxk_loss": ("switch_sae_mini.saes.topk:auxk_loss", "switch_sae_mini.saes.topk:auxk_error"),
    "topk_sae_forward": ("switch_sae_mini.saes.topk:TopKSAE.forward",
                         "switch_sae_mini.saes.topk:TopKSAE._fused_forward",
                         "switch_sae_mini.saes.topk:TopKSAE.pre_activations",
                         "switch_sae_mini.saes.kernels:topk_encode"),
    "update_dead_counter": ("switch_sae_mini.saes.base:SAEBase.update_dead_counter",
                            "switch_sae_mini.saes.base:SAEBase.dead_mask", "switch_sae_mini.saes.metrics:fired_mask",
                            "switch_sae_mini.saes.metrics:fired_latents"),
    "route": ("switch_sae_mini.saes.routing:route", "switch_sae_mini.saes.switch:SwitchSAE.route"),
    "switch_latents": ("switch_sae_mini.saes.switch:SwitchSAE.forward",
                       "switch_sae_mini.saes.kernels:routed_topk_encode",
                       "switch_sae_mini.saes.switch:SwitchSAE._routed_topk",
                       "switch_sae_mini.saes.switch:SwitchSAE._masked_topk"),
    "switch_forward": ("switch_sae_mini.saes.switch:SwitchSAE.forward",
                       "switch_sae_mini.saes.kernels:routed_topk_encode",
                       "switch_sae_mini.saes.switch:SwitchSAE._routed_topk",
                       "switch_sae_mini.saes.switch:SwitchSAE._masked_topk"),
    "load_balance_loss": ("switch_sae_mini.saes.routing:load_balance_loss",),
    "expert_balance": ("switch_sae_mini.saes.metrics:balance", "switch_sae_mini.saes.metrics:expert_share",
                       "switch_sae_mini.saes.metrics:share_of"),
    "encoder_flops": ("switch_sae_mini.flops:forward_flops", "switch_sae_mini.flops:reference_forward_flops",
                      "switch_sae_mini.flops:training_flops"),
    "training_flops_per_token": ("switch_sae_mini.flops:forward_flops", "switch_sae_mini.flops:training_flops",
                                 "switch_sae_mini.flops:reference_forward_flops"),
    "domain_profile": ("switch_sae_mini.analysis.experts:domain_profile",),
    "nearest_other_expert": ("switch_sae_mini.analysis.geometry:cosine_neighbours",
                             "switch_sae_mini.analysis.geometry:decoder_neighbours"),
    "expert_cluster_gap": ("switch_sae_mini.analysis.geometry:expert_cluster_gap",),
    "matched_switch_sizes": ("switch_sae_mini.flops:flop_matched", "switch_sae_mini.flops:width_matched",
                             "switch_sae_mini.flops:param_counts"),
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
            fn = inspect.unwrap(getattr(fn, "__func__", fn))  # through @torch.no_grad() and functools.wraps
            swapped.append((fn.__globals__, fn, fn.__code__))
            fn.__globals__[_HOOK] = hit
            fn.__code__ = _tripwire_code(len(fn.__code__.co_freevars), target)
        yield hits
    finally:
        for namespace, fn, code in swapped:
            fn.__code__ = code
            namespace.pop(_HOOK, None)
