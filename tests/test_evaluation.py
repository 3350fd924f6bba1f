"""evaluation.py: spliced CE, zero-ablation, loss recovered, KL; fixed eval tokens; SAE interfaces."""

from typing import NamedTuple

import pytest
import torch

from switch_sae_mini.data.activations import iter_context_batches
from switch_sae_mini.data.corpus import DOMAINS
from switch_sae_mini.evaluation import EvalTokens, SpliceEvaluator, evaluate_splice, make_eval_tokens

pytestmark = pytest.mark.usefixtures("torch_single_thread")

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def eval_tokens(tiny_lm, sample_docs):
    return make_eval_tokens(tiny_lm, source=sample_docs, n_contexts=6, context_len=32)


@pytest.fixture(scope="module")
def greedy_tokens(tiny_lm):
    """Text the random model predicts well (its own greedy continuations), so that the clean loss is clearly below
    the zero-ablation loss (about ln V: zeroed residuals give near-uniform logits) and damage is measurable."""
    tokens = torch.cat([torch.full((6, 1), 50256), torch.randint(0, 50000, (6, 1),
                                                                 generator=torch.Generator().manual_seed(0))], 1)
    with torch.no_grad():
        while tokens.shape[1] < 32:
            tokens = torch.cat([tokens, tiny_lm(tokens)[:, -1].argmax(-1, keepdim=True)], 1)
    return EvalTokens(tokens, torch.full((6,), 32), prepend_bos=True)


@pytest.fixture(scope="module")
def evaluator(tiny_lm, greedy_tokens):
    return SpliceEvaluator(tiny_lm, greedy_tokens, hook=HOOK, batch_size=4)


def test_eval_tokens_are_deterministic_and_fixed(tiny_lm, sample_docs, eval_tokens):
    again = make_eval_tokens(tiny_lm, source=sample_docs, n_contexts=6, context_len=32)
    assert torch.equal(again.tokens, eval_tokens.tokens) and torch.equal(again.n_filled, eval_tokens.n_filled)
    assert eval_tokens.tokens.shape == (6, 32) and (eval_tokens.tokens[:, 0] == 50256).all()
    other = make_eval_tokens(tiny_lm, source=sample_docs, n_contexts=6, context_len=32, seed=1)
    assert not torch.equal(other.tokens, eval_tokens.tokens)


def test_bundled_validation_eval_tokens(tiny_lm):
    tokens = make_eval_tokens(tiny_lm, n_contexts=8, context_len=64)
    assert tokens.tokens.shape == (8, 64) and tokens.prepend_bos
    assert torch.equal(tokens.tokens, make_eval_tokens(tiny_lm, n_contexts=8, context_len=64).tokens)


def test_identity_recovers_everything(evaluator):
    result = evaluator.evaluate(lambda x: x)
    assert result.loss_recovered == pytest.approx(1.0, abs=1e-9)
    assert result.delta_ce == pytest.approx(0.0, abs=1e-9) and result.kl == pytest.approx(0.0, abs=1e-7)
    assert result.ce_zero > result.ce_clean + 0.3  # zero-ablation must hurt, or the ratio is meaningless


def test_zero_ablation_recovers_nothing(evaluator):
    result = evaluator.evaluate(torch.zeros_like)
    assert result.loss_recovered == pytest.approx(0.0, abs=1e-6)
    assert result.ce_spliced == pytest.approx(result.ce_zero, abs=1e-6)
    assert result.delta_ce > 0 and result.kl > 0


def test_noisy_reconstruction_lands_in_between(evaluator):
    generator = torch.Generator().manual_seed(0)

    def noisy(x):
        return x + 0.3 * x.std() * torch.randn(x.shape, generator=generator)

    result = evaluator.evaluate(noisy)
    assert 0.0 < result.loss_recovered < 1.0
    assert result.delta_ce > 0 and result.kl > 0
    assert result.ce_clean < result.ce_spliced < result.ce_zero


def test_sae_module_with_x_hat_and_training_mode_restored(tiny_lm, evaluator):
    class Output(NamedTuple):
        x_hat: torch.Tensor

    class HalfIdentitySAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, x):
            assert not self.training
            return Output(x * self.scale)

    sae = HalfIdentitySAE().train()
    assert evaluator.evaluate(sae).loss_recovered == pytest.approx(1.0, abs=1e-9)
    assert sae.training


def test_only_non_bos_non_pad_positions_are_spliced(tiny_lm, sample_docs):
    batch = next(iter_context_batches(sample_docs, tiny_lm.tokenizer, DOMAINS, 32, contexts_per_batch=100))
    eval_tokens = EvalTokens(batch.tokens, batch.n_filled, prepend_bos=True)
    assert (eval_tokens.n_filled < 32).any()  # some rows are padded
    evaluator = SpliceEvaluator(tiny_lm, eval_tokens, hook=HOOK, batch_size=8)
    seen = []

    def record(x):
        seen.append(x.clone())
        return x

    evaluator.evaluate(record)
    assert sum(len(x) for x in seen) == int((eval_tokens.n_filled - 1).sum())
    n_predicted = int((eval_tokens.n_filled - 1).sum())  # every real token after the first is predicted
    assert evaluator.evaluate(lambda x: x).n_tokens == n_predicted


def test_splice_changes_only_the_hooked_positions(tiny_lm):
    # With BOS unspliced, zero-ablating everything else must leave the prediction made at BOS unchanged.
    tokens = EvalTokens(torch.tensor([[50256, 464, 3290, 318, 257]]), torch.tensor([5]), True)
    evaluator = SpliceEvaluator(tiny_lm, tokens, hook=HOOK)
    logits = evaluator._logits(tokens.tokens, torch.tensor([[False, True, True, True, True]]), torch.zeros_like)
    clean = tiny_lm(tokens.tokens)
    torch.testing.assert_close(logits[:, 0], clean[:, 0])
    assert not torch.allclose(logits[:, 1:], clean[:, 1:])


def test_wrong_reconstruction_shape_and_type_raise(evaluator):
    with pytest.raises(ValueError, match="shape"):
        evaluator.evaluate(lambda x: x[:, :3])
    with pytest.raises(TypeError, match="x_hat"):
        evaluator.evaluate(lambda x: "nope")


def test_other_hooks_and_one_off_helper(tiny_lm, greedy_tokens):
    result = evaluate_splice(tiny_lm, lambda x: x, greedy_tokens, hook="blocks.1.hook_mlp_out")
    assert result.loss_recovered == pytest.approx(1.0, abs=1e-9) and result.kl == pytest.approx(0, abs=1e-7)
    halved = evaluate_splice(tiny_lm, lambda x: 0.5 * x, greedy_tokens, hook="blocks.1.hook_mlp_out")
    assert halved.delta_ce != 0 and halved.kl > 0
    with pytest.raises(KeyError, match="close matches"):
        SpliceEvaluator(tiny_lm, eval_tokens, hook="blocks.0.hook_resid_postt")
