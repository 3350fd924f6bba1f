"""The analysis functions behind the expert explorer (switch_sae_mini/analysis.py)."""

import pytest
import torch

from switch_sae_mini import analysis, make_sae
from switch_sae_mini.data.activations import HookReader
from switch_sae_mini.config import SAEConfig

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def in_order(tiny_lm, sample_docs):
    return analysis.harvest_in_order(tiny_lm, 10_000, source=sample_docs, context_len=16, contexts_per_doc=2,
                                    progress=False)


def test_harvest_in_order_keeps_document_order_and_caps_contexts_per_doc(tiny_lm, sample_docs, in_order):
    acts, meta, domains = in_order
    assert domains == ("bible", "python_docs", "shakespeare") and acts.shape == (len(meta.doc_id), 64)
    tokenizer = tiny_lm.tokenizer
    for doc in sample_docs:
        rows = (meta.doc_id == doc.doc_id).nonzero().squeeze(1)
        ids = tokenizer(doc.text, add_special_tokens=False)["input_ids"]
        assert len(rows) == min(len(ids), 2 * 15)  # two contexts of 15 text tokens (BOS dropped)
        assert torch.equal(rows, torch.arange(rows[0], rows[0] + len(rows)))  # contiguous
        assert meta.position[rows].tolist() == list(range(len(rows)))
        assert meta.token_id[rows].tolist() == ids[:len(rows)]
        assert (meta.domain[rows] == domains.index(doc.domain)).all()
        # the first context's activations are the model's on [BOS] + its first 15 tokens
        first = HookReader(tiny_lm)(torch.tensor([[tokenizer.bos_token_id] + ids[:15]]))[0, 1:]
        torch.testing.assert_close(acts[rows[:15]], first, atol=1e-5, rtol=1e-4)


def test_harvest_in_order_stops_at_n_tokens_and_checks_arguments(tiny_lm, sample_docs, in_order):
    few = analysis.harvest_in_order(tiny_lm, 20, source=sample_docs, context_len=16, progress=False)
    assert few.acts.shape[0] == 20 and len(few.meta.doc_id) == 20
    with pytest.raises(ValueError, match="n_tokens"):
        analysis.harvest_in_order(tiny_lm, 0, source=sample_docs)
    with pytest.raises(ValueError, match="contexts_per_doc"):
        analysis.harvest_in_order(tiny_lm, 10, source=sample_docs, contexts_per_doc=0)


def test_context_rows_stay_inside_one_run_of_one_document():
    doc = torch.tensor([0, 0, 0, 1, 1, 0, 0])
    pos = torch.tensor([0, 1, 2, 0, 1, 5, 6])
    assert analysis.context_rows(doc, pos, 1, left=5, right=5) == range(0, 3)
    assert analysis.context_rows(doc, pos, 5, left=5, right=5) == range(5, 7)  # doc 0 again, not contiguous
    assert analysis.context_rows(doc, pos, 3, left=0, right=9) == range(3, 5)
    assert analysis.context_rows(doc, pos, 2, left=1, right=0) == range(1, 3)
    with pytest.raises(IndexError, match="row=7"):
        analysis.context_rows(doc, pos, 7)


def test_feature_stats_and_expert_top_features():
    codes = analysis.Encoded(torch.tensor([[2.0, 1.0], [4.0, 0.0], [1.0, 3.0]]),
                             torch.tensor([[5, 1], [5, 2], [6, 1]]), None, None)
    stats = analysis.feature_stats(codes, d_sae=8)
    torch.testing.assert_close(stats.frequency, torch.tensor([0, 2, 0, 0, 0, 2, 1, 0]) / 3)
    assert stats.mean_activation[5] == pytest.approx(3.0) and stats.mean_activation[1] == pytest.approx(2.0)
    assert stats.mean_activation[2] == 0  # the 0.0 entry is not a firing
    top = analysis.expert_top_features(stats, expert=1, n_experts=2)  # features 4..7
    assert [f.feature for f in top] == [5, 6] and top[0].frequency == pytest.approx(2 / 3)
    assert [f.feature for f in analysis.expert_top_features(stats, 0, 2)] == [1]
    with pytest.raises(ValueError, match="expert=2"):
        analysis.expert_top_features(stats, 2, 2)


def test_feature_neighbours_agree_with_decoder_neighbours_and_mark_duplicates():
    torch.manual_seed(1)
    W = torch.randn(32, 64)
    W[20] = W[3] + 0.01 * torch.randn(64)  # expert 0's feature 3 duplicated in expert 2
    W[5] = W[4] + 0.01 * torch.randn(64)  # a twin inside expert 0: not an "other expert" neighbour
    nn = analysis.decoder_neighbours(W, n_experts=4)
    for f in range(32):
        assert analysis.feature_neighbours(W, f, 4, top=1)[0].feature == nn.idx_other_expert[f]
    first = analysis.feature_neighbours(W, 3, 4, top=3)
    assert first[0] == (20, 2, pytest.approx(float(nn.cos_other_expert[3])), True)
    assert not first[1].duplicate and first[0].cos > first[1].cos > first[2].cos
    assert all(n.expert != 0 for n in analysis.feature_neighbours(W, 4, 4, top=24))
    assert len(analysis.feature_neighbours(W, 4, 4, top=100)) == 24  # only other experts' 24 features
    assert analysis.feature_neighbours(W, 4, 1, top=1)[0].feature == 5  # one expert: any other feature
    with pytest.raises(ValueError, match="feature=32"):
        analysis.feature_neighbours(W, 32, 4)


def test_activation_histogram_counts_only_firings():
    counts, edges = analysis.activation_histogram(torch.tensor([0.0, 0.0, 1.0, 2.0, 4.0]), bins=4)
    assert counts.tolist() == [0, 1, 1, 1] and edges[0] == 0 and edges[-1] == 4
    counts, _ = analysis.activation_histogram(torch.zeros(10), bins=3)
    assert counts.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="bins"):
        analysis.activation_histogram(torch.ones(3), bins=0)


def test_duplication_stats_match_duplicate_fraction_and_list_pairs_once():
    torch.manual_seed(1)
    W = torch.randn(32, 64)
    W[20] = W[3] + 0.01 * torch.randn(64)
    nn = analysis.decoder_neighbours(W, n_experts=4)
    stats = analysis.duplication_stats(nn, 4, threshold=0.9, bins=10, top_pairs=3)
    assert stats.fraction == pytest.approx(analysis.duplicate_fraction(nn)) == pytest.approx(2 / 32)
    torch.testing.assert_close(stats.per_expert, torch.tensor([1 / 8, 0, 1 / 8, 0]))
    assert int(stats.counts.sum()) == 32 and stats.counts[-1] == 2 and stats.edges[-1] == 1
    assert stats.pairs[0][2] > 0.99 and {stats.pairs[0][0], stats.pairs[0][1]} == {3, 20}
    assert all({f, g} != {3, 20} for f, g, _ in stats.pairs[1:])  # the twin pair appears once
    assert stats.mean_cos == pytest.approx(float(nn.cos_other_expert.mean()))
    with pytest.raises(ValueError, match="threshold"):
        analysis.duplication_stats(nn, 4, threshold=1.5)


def test_route_text_matches_the_sae_on_harvested_activations(tiny_lm, sample_docs, in_order):
    sae = make_sae(SAEConfig(arch="switch", d_in=64, d_sae=64, k=4, n_experts=4))
    reader = HookReader(tiny_lm)
    doc = sample_docs[0]
    ids = tiny_lm.tokenizer(doc.text, add_special_tokens=False)["input_ids"][:15]
    routing = analysis.route_text(reader, sae, tiny_lm.tokenizer.decode(ids), top_features=2)
    assert routing.token_ids == ids
    rows = (in_order.meta.doc_id == doc.doc_id).nonzero().squeeze(1)[:15]  # same tokens, same context
    out = sae(in_order.acts[rows])
    assert torch.equal(routing.expert_idx, out.expert_idx)
    torch.testing.assert_close(routing.router_prob, out.router_probs.max(-1).values, atol=1e-5, rtol=1e-4)
    best = out.latents.topk(2, dim=-1)
    torch.testing.assert_close(routing.feature_acts, best.values, atol=1e-5, rtol=1e-4)
    assert torch.equal(routing.feature_idx, best.indices)
    assert routing.feature_idx.shape == (15, 2)
    assert (routing.feature_acts[:, 0] >= routing.feature_acts[:, 1]).all()
    assert analysis.route_text(reader, sae, "").token_ids == []
    with pytest.raises(ValueError, match="Switch or TopK SAE"):
        analysis.route_text(reader, make_sae(SAEConfig(arch="relu", d_in=64, d_sae=64)), "hi")
    topk_routing = analysis.route_text(reader, make_sae(SAEConfig(arch="topk", d_in=64, d_sae=64, k=4)), "hi there")
    assert topk_routing.expert_idx.eq(0).all() and topk_routing.router_prob.eq(1).all()  # one expert, no router
    with pytest.raises(ValueError, match="d_in=64"):
        narrow = make_sae(SAEConfig(arch="switch", d_in=32, d_sae=64, k=4, n_experts=4))
        analysis.route_text(reader, narrow, "hi")
    with pytest.raises(TypeError, match="text must be a str"):
        analysis.route_text(reader, sae, 123)
