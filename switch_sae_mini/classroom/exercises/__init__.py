"""The course's exercises as data: for each, its reference, its cases and the diagnosis of an answer. The visible
checks (classroom/checks.py) and the trusted grader (classroom/grading/) both use them."""

import contextlib

from .dense import ENCODER_FLOPS, GEOMETRIC_MEDIAN, L1_PENALTY, TOPK_ACTIVATION
from .features import DOMAIN_PROFILE, EXPERT_CLUSTER_GAP, NEAREST_OTHER_EXPERT
from .ledger import MATCHED_SIZES, TRAINING_FLOPS
from .metrics import EXPERT_BALANCE, FVU
from .optim import ADAM_UPDATE, L1_WARMUP_SCALE
from .relu import RELU_ENCODE, RELU_INIT, RELU_SAE_LOSS
from .spec import Answer, Case, Exercise, judge, run_case
from .switch import LOAD_BALANCE_LOSS, ROUTE, SWITCH_LATENTS, manual_latents, switch_case
from .switch_forward import SWITCH_FORWARD
from .topk import AUXK_LOSS, PROJECT_DECODER_GRAD
from .topk_sae import TOPK_SAE_FORWARD, UPDATE_DEAD_COUNTER
from .tripwire import REFERENCES, CheckFailed, tripwire

EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in (
    L1_PENALTY, RELU_INIT, RELU_ENCODE, RELU_SAE_LOSS, FVU, ADAM_UPDATE, L1_WARMUP_SCALE,  # 01
    TOPK_ACTIVATION, GEOMETRIC_MEDIAN, PROJECT_DECODER_GRAD, AUXK_LOSS, TOPK_SAE_FORWARD, UPDATE_DEAD_COUNTER,  # 02
    ROUTE, SWITCH_LATENTS, LOAD_BALANCE_LOSS, SWITCH_FORWARD, EXPERT_BALANCE,  # 03
    ENCODER_FLOPS, TRAINING_FLOPS, MATCHED_SIZES,  # 04
    DOMAIN_PROFILE, NEAREST_OTHER_EXPERT, EXPERT_CLUSTER_GAP)}  # 05


@contextlib.contextmanager
def substituted(fn, names: tuple[str, ...], replacements: dict | None = None):
    """While active, the earlier exercises `names` that fn calls through its globals are their references (or
    replacements[name]): an exercise graded (or trained) on top of a wrong earlier one then costs that mistake
    once."""
    namespace = getattr(fn, "__globals__", None)
    if (getattr(fn, "__module__", None) or "").startswith("switch_sae_mini."):
        namespace = None  # the package's own reference calls nothing by these names: leave its module alone
    saved = {n: namespace[n] for n in names if namespace is not None and n in namespace}
    replacements = replacements or {}
    try:
        if namespace is not None:
            namespace.update({n: replacements.get(n, EXERCISES[n].reference) for n in names})
        yield
    finally:
        if namespace is not None:
            for n in names:
                namespace.pop(n, None)
            namespace.update(saved)


__all__ = ["EXERCISES", "REFERENCES", "Answer", "Case", "CheckFailed", "Exercise", "judge", "manual_latents",
           "run_case", "substituted", "switch_case", "tripwire"]
