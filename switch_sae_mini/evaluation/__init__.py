"""Evaluation in the language model: splice an SAE's reconstruction into the model at its hook and measure the
next-token loss (CE, loss recovered against zero-ablation, KL). Metrics on the SAE's own outputs are saes.metrics.
"""

from .splice import EvalTokens, SpliceEvaluator, SpliceResult, as_reconstruct, evaluate_splice, make_eval_tokens

__all__ = ["EvalTokens", "SpliceEvaluator", "SpliceResult", "as_reconstruct", "evaluate_splice", "make_eval_tokens"]
