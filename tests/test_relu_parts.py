"""Chapter 01 trains a ReLU SAE made of the learner's own functions (classroom/relu_parts.py): with right answers it
ends where the package's `ssm.train` does; USE_REFERENCE swaps in the package's version part by part."""

import pytest
import torch

import switch_sae_mini as ssm
from switch_sae_mini.classroom.relu_parts import train_learner_relu
from switch_sae_mini.errors import TrainingDivergedError
from test_checks_relu import own_adam, own_init, own_warmup

CFG = ssm.SAEConfig(arch="relu", d_in=16, d_sae=48, l1_coeff=4.0)
TRAIN = ssm.TrainConfig(n_steps=40, lr=1e-3)
ACTS = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.3, 2, 16)
NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")


def relu_encode(x, W_enc, b_enc):
    return torch.relu(x @ W_enc + b_enc)


def l1_penalty(f, W_dec):
    return (f * W_dec.norm(dim=-1)).sum(-1).mean()


def relu_sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f = relu_encode(x, W_enc, b_enc)  # by name, as in the notebook: USE_REFERENCE swaps it
    mse = (f @ W_dec + b_dec - x).pow(2).mean()
    l1 = l1_penalty(f, W_dec) / x.shape[-1]
    return mse + l1_coeff * l1, mse, l1


PARTS = dict(relu_init=own_init, relu_encode=relu_encode, l1_penalty=l1_penalty, relu_sae_loss=relu_sae_loss,
             adam_update=own_adam, l1_warmup_scale=own_warmup)


def _learner(use_reference=None, **overrides):
    return train_learner_relu(CFG, ssm.notebook.shuffled_batches(ACTS, 256), TRAIN, use_reference=use_reference,
                              **{**PARTS, **overrides})


@pytest.fixture(scope="module")
def package():
    return ssm.train(CFG, ssm.notebook.shuffled_batches(ACTS, 256), TRAIN, progress=False).sae


def _gap(a, b) -> float:
    return max((getattr(a, n) - getattr(b, n)).abs().max().item() for n in NAMES)


def test_right_parts_end_where_the_package_does(package):
    run = _learner()
    assert _gap(run.sae, package) < 1e-4  # not bit-identical: two Adam implementations round differently
    assert len(run.losses) == TRAIN.n_steps and run.losses[-1] < run.losses[0]
    fvu = [ssm.metrics.evaluate_sae(s, [ACTS[:2048]])["fvu"] for s in (run.sae, package)]
    assert abs(fvu[0] - fvu[1]) < 1e-5


@pytest.mark.parametrize("part", list(PARTS))
def test_each_reference_stands_in_for_a_part(package, part):
    def broken(*args):
        raise NotImplementedError()
    run = _learner({part: True}, **{part: broken})  # the learner's broken part is never called
    assert _gap(run.sae, package) < 1e-4


@pytest.mark.parametrize("part, wrong", [
    ("adam_update", lambda *a: own_adam(*a, correct=False)),
    ("l1_warmup_scale", lambda s, n, f: 1.0),
    ("relu_init", lambda *a: own_init(*a, norm=1.0)),
    ("relu_encode", lambda x, W, b: torch.relu(x @ W)),  # the loss calls the encoder passed here, by name
    ("l1_penalty", lambda f, W: f.sum(-1).mean()),
])
def test_a_wrong_part_shows(package, part, wrong):
    assert _gap(_learner(**{part: wrong}).sae, package) > 1e-3


def test_a_diverging_part_stops_with_a_message():
    with pytest.raises(TrainingDivergedError, match="relu_sae_loss and adam_update"):
        _learner(adam_update=lambda p, g, m, v, step, lr: (p + float("nan"), m, v))


def test_bad_arguments_are_refused_with_the_fix():
    with pytest.raises(ssm.InputError, match="arch='relu'"):
        train_learner_relu(CFG.replace(arch="topk", k=4), [], TRAIN, **PARTS)
    with pytest.raises(ValueError, match="unknown part"):
        train_learner_relu(CFG, [], TRAIN, route=relu_encode, **PARTS)
    with pytest.raises(ValueError, match="USE_REFERENCE\\['adam_update'\\] = True"):
        train_learner_relu(CFG, [], TRAIN, **{k: v for k, v in PARTS.items() if k != "adam_update"})


def test_the_chapters_comparison_line(package, capsys):
    gap = ssm.notebook.compare_with_package(_learner().sae, package, ACTS[:4096], TRAIN.n_steps, {"adam_update": True})
    line = capsys.readouterr().out
    assert gap < 1e-3 and "within the tolerance of 0.001" in line and "['adam_update']" in line
    wrong = _learner(relu_init=lambda *a: own_init(*a, norm=1.0)).sae
    assert ssm.notebook.compare_with_package(wrong, package, ACTS[:4096], 40, {}, tolerance=1e-9) > 1e-9
    assert "OUTSIDE the tolerance of 1e-09 (parts from the package: none)" in capsys.readouterr().out
