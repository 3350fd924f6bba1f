import pytest
import torch

from switch_sae_mini import analysis, make_sae, metrics
from switch_sae_mini.config import SAEConfig

from conftest import tiny_cfg


def test_encode_all_matches_forward_and_feature_activations():
    sae = make_sae(tiny_cfg("switch"))
    x = torch.randn(50, 16)
    codes = analysis.encode_all(sae, x, batch_size=16)
    dense = sae(x).latents
    for f in (0, 17, 63):
        torch.testing.assert_close(analysis.feature_activations(codes, f), dense[:, f])
    values, pos = analysis.top_activations(codes, 17, top=3)
    assert torch.all(values[:-1] >= values[1:]) and torch.equal(dense[pos, 17], values)
    assert analysis.feature_stats(codes, 64).frequency.sum() == pytest.approx(float((dense > 0).sum()) / 50)
    with pytest.raises(ValueError, match="TopK or Switch"):
        analysis.encode_all(make_sae(tiny_cfg("relu")), x)


def test_usage_profile_and_specialisation():
    expert_idx = torch.tensor([0, 0, 0, 1, 1, 2])
    domain = torch.tensor([0, 0, 1, 2, 2, 1])
    usage = metrics.expert_share(expert_idx, 4)
    torch.testing.assert_close(usage, torch.tensor([0.5, 1 / 3, 1 / 6, 0.0]))
    profile = analysis.domain_profile(expert_idx, domain, 4, 3)
    torch.testing.assert_close(profile[0], torch.tensor([2 / 3, 1 / 3, 0.0]))
    assert profile[3].sum() == 0
    assert analysis.specialisation(profile, usage) == pytest.approx(0.5 * 2 / 3 + 1 / 3 + 1 / 6)
    perfect = analysis.domain_profile(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), 3, 3)
    assert analysis.specialisation(perfect, torch.full((3,), 1 / 3)) == pytest.approx(1.0)


def test_top_tokens_per_expert_counts_and_lift():
    expert_idx = torch.tensor([0, 0, 0, 1, 1, 1])
    token_id = torch.tensor([5, 5, 7, 7, 7, 9])
    rows = analysis.top_tokens_per_expert(expert_idx, token_id, expert=0, min_count=1)
    assert rows[0][:2] == (5, 2) and rows[0][2] == pytest.approx((2 / 3) / (2 / 6))
    assert analysis.top_tokens_per_expert(expert_idx, token_id, expert=3) == []


def test_decoder_neighbours_find_planted_duplicates_across_experts():
    torch.manual_seed(1)
    W = torch.randn(32, 64)
    W[20] = W[3] + 0.01 * torch.randn(64)  # expert 0 latent 3 duplicated in expert 2 (8 latents per expert)
    W[5] = W[4] + 0.01 * torch.randn(64)   # a duplicate inside expert 0
    nn = analysis.decoder_neighbours(W, n_experts=4, chunk=7)
    assert nn.idx[3] == 20 and nn.idx_other_expert[3] == 20 and nn.cos_other_expert[3] > 0.99
    assert nn.idx[4] == 5 and nn.cos[4] > 0.99 and nn.cos_other_expert[4] < 0.9
    assert analysis.duplicate_fraction(nn) == pytest.approx(2 / 32)
    assert analysis.duplicate_fraction(nn, across_experts=False) == pytest.approx(4 / 32)
    sim = analysis.inter_expert_similarity(W, 4)
    assert sim.shape == (4, 4) and sim[0, 2] > sim[0, 1] and sim[0, 0] > sim[1, 1]


def test_pca_and_logit_effect():
    pts = torch.randn(100, 5) * torch.tensor([10.0, 3.0, 0.1, 0.1, 0.1])
    proj = analysis.pca_2d(pts)
    assert proj.shape == (100, 2) and proj[:, 0].var() > proj[:, 1].var() > 0.5
    W_U = torch.eye(6)
    up, down = analysis.logit_effect(torch.tensor([0.0, 3, -2, 0, 1, 0]), W_U, top=2)
    assert up == [1, 4] and down[0] == 2  # the remaining logits tie at 0


def test_concat_codes_and_expert_of_feature():
    sae = make_sae(SAEConfig(arch="switch", d_in=8, d_sae=32, k=2, n_experts=4))
    a, b = analysis.encode_all(sae, torch.randn(5, 8)), analysis.encode_all(sae, torch.randn(3, 8))
    both = analysis.concat_codes([a, b])
    assert both.latent_idx.shape == (8, 2) and both.expert_idx.shape == (8,)
    assert analysis.expert_of_feature(17, 32, 4) == 2


class _FakeTokenizer:
    """Whitespace tokenizer with the HF call/decode interface."""

    def __init__(self):
        self.vocab = {}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]}

    def decode(self, ids):
        inverse = {v: k for k, v in self.vocab.items()}
        return " ".join(inverse[i] for i in ids)


def test_context_lookup_recovers_the_token_window():
    from collections import namedtuple
    Doc = namedtuple("Doc", "doc_id text")
    lookup = analysis.ContextLookup([Doc(7, "in the beginning was the word")], _FakeTokenizer())
    assert lookup.window(7, 3, left=2, right=1) == ("the beginning", "was", "the")
    assert lookup.show(7, 0, left=3, right=2) == "[[in]]the beginning"
    with pytest.raises(KeyError, match="doc_id 8"):
        lookup.window(8, 0)
