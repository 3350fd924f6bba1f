"""Chapter 02 trains a TopK SAE whose hooks are the learner's own functions (classroom/topk_parts.py): with right
answers it follows the package's TopKSAE step for step; USE_REFERENCE swaps in the package's version part by part;
a wrong part shows."""

import pytest
import torch

import switch_sae_mini as ssm
from switch_sae_mini.classroom.topk_parts import PARTS, learner_topk_sae
from test_checks_recipe import own_auxk, own_projection
from test_checks_topk_sae import own_counter, topk_activation


def geometric_median(points):
    median = points.mean(0)
    for _ in range(100):
        weights = 1.0 / (points - median).norm(dim=-1).clamp_min(1e-8)
        median = (weights[:, None] * points).sum(0) / weights.sum()
    return median


def topk_sae_forward(x, W_enc, b_enc, W_dec, b_dec, k):
    values, indices = topk_activation((x - b_dec) @ W_enc + b_enc, k)  # by name: USE_REFERENCE swaps it
    return (values[..., None] * W_dec[indices]).sum(-2) + b_dec, values, indices


OWN = dict(topk_activation=topk_activation, geometric_median=geometric_median, project_decoder_grad=own_projection,
           auxk_loss=own_auxk, topk_sae_forward=topk_sae_forward, update_dead_counter=own_counter)
CFG = ssm.SAEConfig(arch="topk", d_in=16, d_sae=64, k=4, dead_after_tokens=1000)
TRAIN = ssm.TrainConfig(n_steps=30, lr=1e-3)
ACTS = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.3, 2, 16) + 1.0
NAMES = ("W_enc", "b_enc", "W_dec", "b_dec", "tokens_since_fired")


def _train(sae):
    """As chapter 02 does, a quarter of the latents start too weak to win the top k: they die, so the dead-latent
    counter and AuxK shape the run."""
    with torch.no_grad():
        sae.W_enc[:, :16] *= 0.1
    return ssm.train(sae, ssm.notebook.shuffled_batches(ACTS, 256), TRAIN, progress=False).sae


def _learner(use_reference=None, **overrides):
    torch.manual_seed(TRAIN.seed)
    return _train(learner_topk_sae(CFG, use_reference=use_reference, **{**OWN, **overrides}))


@pytest.fixture(scope="module")
def package():
    torch.manual_seed(TRAIN.seed)
    return _train(ssm.make_sae(CFG))


def _gap(a, b) -> float:
    return max((getattr(a, n).float() - getattr(b, n).float()).abs().max().item() for n in NAMES)


def test_own_parts_follow_the_package(package):
    sae = _learner()
    assert set(OWN) == set(PARTS)
    assert _gap(sae, package) < 1e-5
    assert int(package.dead_mask().sum()) > 0  # latents died in the run, so the counter and AuxK mattered


@pytest.mark.parametrize("part", PARTS)
def test_each_reference_stands_in_for_a_part(package, part):
    def broken(*args):
        raise NotImplementedError()
    assert _gap(_learner({part: True}, **{part: broken}), package) < 1e-5


@pytest.mark.parametrize("part, wrong", [
    ("geometric_median", lambda points: points.mean(0)),
    ("project_decoder_grad", lambda W, g: g),
    ("auxk_loss", lambda *a: own_auxk(*a, sign=-1.0)),
    ("update_dead_counter", lambda *a: own_counter(*a, per_token=False)),
    ("topk_activation", lambda pre, k: _topk_of_magnitude(pre, k)),
])
def test_a_wrong_part_shows(package, part, wrong):
    assert _gap(_learner(**{part: wrong}), package) > 1e-4


def _topk_of_magnitude(pre, k):
    indices = pre.abs().topk(k, dim=-1).indices
    return torch.relu(pre.gather(-1, indices)), indices


def test_bad_arguments_are_refused_with_the_fix():
    with pytest.raises(ssm.InputError, match="arch='topk'"):
        learner_topk_sae(CFG.replace(arch="relu"), **OWN)
    with pytest.raises(ValueError, match="USE_REFERENCE\\['auxk_loss'\\] = True"):
        learner_topk_sae(CFG, **{k: v for k, v in OWN.items() if k != "auxk_loss"})
