"""The course's exercises as data: for each, its reference, its cases and the diagnosis of an answer. The visible
checks (classroom/checks.py) and the trusted grader (classroom/grading/) both use them."""

from .dense import ENCODER_FLOPS, GEOMETRIC_MEDIAN, L1_PENALTY, TOPK_ACTIVATION
from .spec import Answer, Case, Exercise, judge, run_case
from .switch import LOAD_BALANCE_LOSS, ROUTE, SWITCH_LATENTS, manual_latents, switch_case
from .topk import AUXK_LOSS, PROJECT_DECODER_GRAD
from .tripwire import REFERENCES, CheckFailed, tripwire

EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in (L1_PENALTY, TOPK_ACTIVATION, GEOMETRIC_MEDIAN,
                                                         PROJECT_DECODER_GRAD, AUXK_LOSS, ROUTE, SWITCH_LATENTS,
                                                         LOAD_BALANCE_LOSS, ENCODER_FLOPS)}

__all__ = ["EXERCISES", "REFERENCES", "Answer", "Case", "CheckFailed", "Exercise", "judge", "manual_latents",
           "run_case", "switch_case", "tripwire"]
