"""The offline interpretability evaluation (analysis/detection.py, analysis/interpretability.py, the blind rating
in analysis/explorer/rating.py, paper.autointerp_results): each measure is checked on features whose answer is
known by construction: token features must score near 1, features that fire at random near chance."""

import math

import pytest
import torch

from switch_sae_mini import SwitchSAEError, analysis, paper, plotting
from switch_sae_mini.analysis import detection, interpretability
from switch_sae_mini.analysis.explorer import BlindRating, rating_widget
from switch_sae_mini.analysis.features import Encoded
from switch_sae_mini.data.reading import TokenMetadata

N, VOCAB, DOC_LEN = 20_000, 40, 50


def _tokens(seed=0):
    gen = torch.Generator().manual_seed(seed)
    token_id = torch.randint(0, VOCAB, (N,), generator=gen)
    doc_id, position = torch.arange(N) // DOC_LEN, torch.arange(N) % DOC_LEN
    prev = torch.where(position > 0, token_id.roll(1), torch.full_like(token_id, -1))
    domain = (doc_id % 3).long()
    return TokenMetadata(doc_id=doc_id, position=position, token_id=token_id, domain=domain), prev, gen


def _codes(fires: list[torch.Tensor], gen) -> Encoded:
    """Codes with one slot per feature: feature f has a random positive activation wherever fires[f]."""
    acts = torch.stack([f.float() * (0.5 + torch.rand(N, generator=gen)) for f in fires], 1)
    idx = torch.arange(len(fires)).expand(N, -1).contiguous()
    return Encoded(latent_acts=acts, latent_idx=idx, expert_idx=None, router_prob=None)


@pytest.fixture(scope="module")
def world():
    meta, prev, gen = _tokens()
    token_feature = meta.token_id == 7                            # fires on one token
    pair_feature = (prev == 3) & (meta.token_id < 20)             # fires after token 3
    random_feature = torch.rand(N, generator=gen) < 0.03          # fires regardless of the text
    return meta, prev, gen, [token_feature, pair_feature, random_feature]


def test_rule_recovers_token_and_previous_token_features(world):
    meta, prev, _, fires = world
    explain = detection.document_halves(meta.doc_id)
    rule = detection.fit_rule(fires[0][explain], meta.token_id[explain], prev[explain])
    assert 7 in rule.current and len(rule.current) + len(rule.previous) <= 2
    rule = detection.fit_rule(fires[1][explain], meta.token_id[explain], prev[explain])
    assert rule.previous[:1] == (3,)
    assert detection.apply_rule(rule, meta.token_id, prev)[fires[1]].all()


def test_detection_scores_token_features_high_and_random_features_at_chance(world):
    meta, prev, gen, fires = world
    codes = _codes(fires, gen)
    explain = detection.document_halves(meta.doc_id)
    scores = [detection.detection_score(analysis.feature_activations(codes, f), meta.token_id, prev, explain, f)
              for f in range(3)]
    assert scores[0].balanced > 0.99 and scores[0].not_accuracy > 0.99
    assert scores[1].balanced > 0.8
    assert abs(scores[2].balanced - 0.5) < 0.08, scores[2]
    assert scores[0].n_explain + scores[0].n_score == int(fires[0].sum())
    assert abs(scores[0].positive_accuracy - float(scores[0].decile_accuracy.mean())) < 0.02


def test_deciles_follow_activation_strength():
    # fires strongly on token 7 and weakly on 5% of other tokens: only the top deciles are detectable
    meta, prev, gen = _tokens(1)
    strong = meta.token_id == 7
    weak = (torch.rand(N, generator=gen) < 0.05) & ~strong
    acts = strong * (5 + torch.rand(N, generator=gen)) + weak * torch.rand(N, generator=gen)
    score = detection.detection_score(acts, meta.token_id, prev, detection.document_halves(meta.doc_id))
    assert score.decile_accuracy[-1] > 0.9 and score.decile_accuracy[0] < 0.1
    assert torch.bincount(detection.decile_of(torch.rand(1000)), minlength=10).tolist() == [100] * 10


def test_detection_refuses_too_few_examples_and_mismatched_lengths(world):
    meta, prev, _, _ = world
    acts = torch.zeros(N)
    acts[:5] = 1.0
    explain = detection.document_halves(meta.doc_id)
    assert detection.detection_score(acts, meta.token_id, prev, explain, min_examples=20) is None
    with pytest.raises(SwitchSAEError, match="one entry per token"):
        detection.detection_score(acts[:-1], meta.token_id, prev, explain)
    with pytest.raises(SwitchSAEError, match="both activating and non-activating"):
        detection.fit_rule(torch.ones(10, dtype=torch.bool), torch.arange(10), torch.arange(10))


def test_previous_token_ids_reads_each_document():
    class Lookup:
        def tokens(self, doc):
            return [100 * doc + i for i in range(6)]
    doc_id, position = torch.tensor([2, 1, 2, 1, 2]), torch.tensor([0, 3, 5, 1, -1])
    assert detection.previous_token_ids(doc_id, position, Lookup()).tolist() == [-1, 102, 204, 100, -1]


def test_top_purity():
    acts = torch.tensor([5.0, 4.0, 3.0, 2.0, 0.0, 1.0])
    labels = torch.tensor([1, 1, 2, 1, 3, 4])
    assert interpretability.top_purity(acts, labels, top=4) == 0.75
    assert interpretability.top_purity(acts, labels, top=100) == 0.6  # only the 5 firing tokens count
    with pytest.raises(SwitchSAEError, match="never fires"):
        interpretability.top_purity(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def _many_features(seed=0):
    """40 token features (feature t fires on token t; their frequencies spread over bands) and 40 random ones."""
    meta, prev, gen = _tokens(seed)
    rate = torch.linspace(0.002, 0.05, 40)
    fires = [meta.token_id == t for t in range(40)] + [torch.rand(N, generator=gen) < r for r in rate]
    return meta, prev, _codes(fires, gen)


def test_sample_by_band_draws_eligible_features_in_each_band():
    meta, _, codes = _many_features()
    edges = (5e-3, 2e-2, 1.0)
    bands = interpretability.sample_by_band(codes, 80, meta.doc_id, edges, per_band=5, min_examples=10)
    freq = analysis.feature_stats(codes, 80).frequency
    assert list(bands) == ["0.50%–2.00%", "≥ 2.00%"]
    for (lo, hi), features in zip([(5e-3, 2e-2), (2e-2, 1.0)], bands.values()):
        assert len(features) == 5 and all(lo <= freq[f] < hi for f in features)
    assert bands == interpretability.sample_by_band(codes, 80, meta.doc_id, edges, per_band=5, min_examples=10)
    assert bands != interpretability.sample_by_band(codes, 80, meta.doc_id, edges, 5, 10, seed=1)
    with pytest.raises(SwitchSAEError, match="increasing"):
        interpretability.sample_by_band(codes, 80, meta.doc_id, (1e-2, 1e-3))


def test_scores_summaries_and_verdict_tell_token_features_from_random_ones():
    meta, prev, codes = _many_features()
    bands = {"token": list(range(5, 30, 2)), "random": list(range(45, 70, 2))}
    rows = interpretability.score_features("A", codes, bands, meta, prev, min_examples=10)
    by_band = {s.band: s for s in interpretability.summarise(rows)}
    assert by_band["token"].detection > 0.95 and by_band["token"].token_purity == 1.0
    assert abs(by_band["random"].detection - 0.5) < 0.06 and by_band["random"].token_purity < 0.5
    assert by_band["all"].n_features == 26
    tokens_only = interpretability.score_features("tokens", codes, {"b": bands["token"]}, meta, prev,
                                                  min_examples=10)
    random_only = interpretability.score_features("random", codes, {"b": bands["random"]}, meta, prev,
                                                  min_examples=10)
    summary = interpretability.summarise(tokens_only + random_only)
    assert [(s.sae, s.band) for s in summary] == [("tokens", "b"), ("tokens", "all"), ("random", "b"),
                                                  ("random", "all")]
    assert "less detectable than tokens" in interpretability.interpretability_verdict(summary, "tokens", "random")
    twin = interpretability.score_features("twin", codes, {"b": bands["token"]}, meta, prev, min_examples=10)
    verdict = interpretability.interpretability_verdict(interpretability.summarise(tokens_only + twin), "tokens",
                                                        "twin")
    assert "as detectable as" in verdict and "1/1 frequency bands" in verdict
    with pytest.raises(SwitchSAEError, match="too few activating"):
        interpretability.score_features("A", codes, {"b": [79]}, meta, prev, min_examples=N)


def test_paper_autointerp_results_are_consistent():
    rows = paper.autointerp_results()
    assert [r.sae for r in rows] == ["TopK", "WM 16e", "WM 32e", "WM 64e", "WM 128e", "FM 2e", "FM 4e", "FM 8e"]
    for r in rows:
        assert len(r.decile_accuracy) == 10 and 0 < r.n_features <= 1000
        assert abs((r.positives + r.not_accuracy) / 2 - r.balanced) < 0.0011, r.sae
        assert abs(sum(r.decile_accuracy) / 10 - r.positives) < 0.003, r.sae
    assert rows[0].balanced == 0.659 and rows[-1].n_features == 863


def _rating(n_items=6):
    meta, _, codes = _many_features()
    return BlindRating.build({"TopK": (codes, [1, 2, 3, 4]), "Switch": (codes, [41, 42, 43])},
                             lambda row: f"context of row {row}", n_items=n_items, top=3)


def test_blind_rating_hides_the_sae_until_reveal():
    rating = _rating()
    assert sorted(i.sae for i in rating.items) == ["Switch"] * 3 + ["TopK"] * 3
    assert all(len(i.contexts) == 3 for i in rating.items)
    assert rating.reveal_text().startswith("No feature rated")
    scores = [5, None, 3, 1, 4, 2]
    for s in scores:
        rating.rate(s)
    assert rating.done
    means = {m.sae: m for m in rating.reveal()}
    expected = {name: [s for i, s in zip(rating.items, scores) if i.sae == name and s is not None]
                for name in ("TopK", "Switch")}
    for name, got in expected.items():
        assert means[name].n_rated == len(got) and math.isclose(means[name].mean, sum(got) / len(got))
    with pytest.raises(SwitchSAEError, match="every feature is rated"):
        rating.rate(3)
    with pytest.raises(SwitchSAEError, match="1-5"):
        _rating().rate(7)
    with pytest.raises(SwitchSAEError, match="non-empty"):
        BlindRating.build({"TopK": (None, [])}, str)


def test_rating_widget_buttons_rate_and_reveal():
    rating = _rating(4)
    box = rating_widget(rating)
    assert "TopK" not in box.view.value and "Switch" not in box.view.value and "Feature 1 of 4" in box.view.value
    box.buttons[3].click()   # "4 one clear pattern"
    box.buttons[-1].click()  # skip
    assert rating.ratings == [4, None] and "Feature 3 of 4" in box.view.value
    box.reveal_button.click()
    assert "mean 4.00 over 1 rated" in box.result.value and "skipped" in box.result.value


def test_plot_detection_by_decile():
    fig = plotting.plot_detection_by_decile({"ours": [0.1] * 10}, {"TopK": paper.autointerp_results()[0]
                                                                   .decile_accuracy})
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 1
    assert len(plotting.plot_detection_by_decile({"ours": [0.1] * 10}).axes) == 1
