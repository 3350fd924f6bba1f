"""The expert explorer widget: controls set from code change the displayed data, which matches the analysis
functions; the static fallback carries a useful summary (switch_sae_mini/widgets.py, explorer_data.py)."""

import re

import nbformat
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch_sae_mini import SwitchSAEError, analysis, make_sae, metrics
from switch_sae_mini.analysis.explorer import html as explorer_html
from switch_sae_mini.config import SAEConfig
from switch_sae_mini.analysis.explorer.data import ExplorerData
from switch_sae_mini.analysis.explorer import ExpertExplorer, expert_explorer, interaction_latency

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _switch(n_experts: int, seed: int):
    torch.manual_seed(seed)
    sae = make_sae(SAEConfig(arch="switch", d_in=64, d_sae=64, k=4, n_experts=n_experts))
    with torch.no_grad():  # spread tokens over experts, and plant one duplicate across experts
        sae.W_router.normal_(0, 1.0)
        sae.W_dec[40] = sae.W_dec[3]
    return sae


@pytest.fixture(scope="module")
def data(tiny_lm, sample_docs):
    return ExplorerData.build(tiny_lm, {"E=4": _switch(4, 0), "E=8": _switch(8, 1)}, n_tokens=10_000,
                              source=sample_docs, progress=False)


@pytest.fixture
def app(data):
    return expert_explorer(data)


def _used_experts(view):
    return [e for e in range(view.n_experts) if view.usage[e] > 0]


def test_build_precomputes_codes_and_statistics(data):
    v = data.view("E=8")
    assert len(v.codes.expert_idx) == len(data.meta.doc_id) > 100
    torch.testing.assert_close(v.usage, metrics.expert_share(v.codes.expert_idx, 8))
    assert v.profile.shape == (8, 3) and data.domains == ("bible", "python_docs", "shakespeare")
    assert data.W_U.shape == (64, 50257) and len(_used_experts(v)) >= 3
    with pytest.raises(KeyError, match="choose one of"):
        data.view("E=99")


def test_build_rejects_bad_saes(tiny_lm, sample_docs):
    relu = make_sae(SAEConfig(arch="relu", d_in=64, d_sae=64))
    with pytest.raises(ValueError, match=r"saes\['t'\] is not a Switch or TopK SAE"):
        ExplorerData.build(tiny_lm, {"t": relu}, n_tokens=50, source=sample_docs, progress=False)
    wrong = make_sae(SAEConfig(arch="switch", d_in=32, d_sae=64, k=4, n_experts=4))
    with pytest.raises(ValueError, match="d_in=32"):
        ExplorerData.build(tiny_lm, wrong, n_tokens=50, source=sample_docs, progress=False)
    with pytest.raises(ValueError, match="saes is empty"):
        ExplorerData.build(tiny_lm, {}, n_tokens=50, source=sample_docs, progress=False)
    with pytest.raises(TypeError, match="ExplorerData"):
        ExpertExplorer("not data")


def test_choosing_an_expert_shows_its_share_domains_tokens_and_features(app, data):
    v = data.view(app.sae_selector.value)
    assert app.expert_selector.value == int(v.usage.argmax())  # opens on the busiest expert
    before = app.expert_view.value
    target = next(e for e in _used_experts(v) if e != app.expert_selector.value)
    app.expert_selector.value = target
    html = app.expert_view.value
    assert html != before and f"data-expert='{target}'" in html
    assert f"<b>{float(v.usage[target]):.1%}</b> of tokens" in html
    rows = analysis.top_tokens_per_expert(v.codes.expert_idx, data.meta.token_id, target, top=10)
    for token_id, count, lift in rows:
        cell = "</td><td style='padding:1px 8px 1px 0'>"
        assert f"{explorer_html.token_chip(data.token_text(token_id))}{cell}{count}</td>" in html
    for label, share in zip(data.domain_labels(), v.profile[target].tolist()):
        assert f"{label} {share:.0%}" in html
    top = analysis.expert_top_features(v.stats, target, v.n_experts)
    assert top and all(f"<td style='padding:1px 8px 1px 0'>{f.feature}</td>" in html for f in top)


def test_choosing_a_feature_shows_contexts_histogram_neighbours_and_logits(app, data):
    v = data.view(app.sae_selector.value)
    feature = int(v.stats.frequency.argmax())
    if app.feature_selector.value == feature:
        app.feature_selector.value = (feature + 1) % v.d_sae
    before = app.feature_view.value
    app.feature_selector.value = feature
    html = app.feature_view.value
    assert html != before and f"data-feature='{feature}'" in html
    values, rows = analysis.top_activations(v.codes, feature, top=6)
    shown = [float(x) for x in re.findall(r"color:#666'>\s*([0-9.]+)</span>", html)]
    assert shown == pytest.approx(values.tolist(), abs=0.006)  # peak activation of each context, in order
    assert data.token_text(data.meta.token_id[rows[0]]) in html
    nn = analysis.decoder_neighbours(v.sae.W_dec.detach(), v.n_experts)
    assert f"<td style='padding:1px 8px 1px 0'>{int(nn.idx_other_expert[feature])}</td>" in html
    up, down = analysis.logit_effect(v.sae.W_dec[feature].detach(), data.W_U, top=8)
    assert explorer_html.token_chip(data.token_text(up[0])) in html
    assert html.count("<rect") == 20  # the activation histogram's bars
    app.feature_selector.value = 3  # planted twin of 40, in another expert
    assert "duplicate</b>" in app.feature_view.value


def test_typing_text_routes_every_token(app, data):
    app.text_input.value = "In the beginning God created the heaven"
    html = app.text_view.value
    routing = analysis.route_text(data.reader, data.view(app.sae_selector.value).sae, app.text_input.value)
    assert html.count("<tr>") == len(routing.token_ids) + 1 and len(routing.token_ids) >= 6  # + header row
    cells = re.findall(r"</code></td><td style='padding:1px 8px 1px 0'>(\d+)</td>"
                       r"<td style='padding:1px 8px 1px 0'>([0-9.]+)</td>", html)
    assert [int(e) for e, _ in cells] == routing.expert_idx.tolist()
    assert [float(p) for _, p in cells] == pytest.approx(routing.router_prob.tolist(), abs=0.006)
    app.text_input.value = ""
    assert "type some text" in app.text_view.value


def test_compare_view_shows_both_saes_and_follows_the_threshold(app, data):
    assert "<b>E=4</b>" in app.compare_left_view.value and "<b>E=8</b>" in app.compare_right_view.value
    for threshold in (0.5, 0.95):
        app.threshold.value = threshold
        for name, view in (("E=4", app.compare_left_view), ("E=8", app.compare_right_view)):
            stats = data.duplication_view(name, threshold)
            assert f"<b>{stats.fraction:.1%}</b> of features have a twin" in view.value
            assert f"cos &gt; {threshold:.2f}" in view.value
    assert data.duplication_view("E=8", 0.95).fraction == pytest.approx(2 / 64)  # the planted pair
    app.compare_left.value = "E=8"
    assert "<b>E=8</b>" in app.compare_left_view.value


def test_switching_sae_updates_expert_choices_and_all_views(app, data):
    assert len(app.expert_selector.options) == 4
    before = (app.expert_view.value, app.text_view.value)
    app.sae_selector.value = "E=8"
    assert len(app.expert_selector.options) == 8 and app.feature_selector.max == 63
    assert "E=8 · expert" in app.expert_view.value and "<b>E=8</b> routing" in app.text_view.value
    assert (app.expert_view.value, app.text_view.value) != before
    latency = interaction_latency(app, repeats=2)
    assert set(latency) == {"expert", "feature", "text", "compare", "sae"}
    assert all(0 < s < 5 for s in latency.values())  # generous: a smoke check, not a benchmark


def test_static_fallback_summary_in_bundle_and_html_export(app, data):
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "static summary" in bundle["text/html"] and "E=8: 8 experts" in bundle["text/html"]
    v = data.view("E=4")
    assert f"<td style='padding:1px 8px 1px 0'>{float(v.usage[0]):.1%}</td>" in bundle["text/html"]
    assert "E=4: 4 experts, token shares" in bundle["text/plain"]
    # An HTML export without saved widget state (what nbconvert gives a reader without a kernel).
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("app", outputs=[
        nbformat.v4.new_output("display_data", data=bundle)])])
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert "static summary" in page and "E=8: 8 experts" in page


def test_expert_explorer_arguments():
    with pytest.raises(TypeError, match="pass the Switch SAE"):
        expert_explorer(object())
    with pytest.raises(TypeError, match="no saes or build arguments"):
        expert_explorer(ExplorerData.__new__(ExplorerData), saes={})


def test_html_helpers():
    html = explorer_html.highlight(["a", "\nb"], [1.0, 4.0], peak=1)
    assert "rgba(255,127,14,0.25)" in html and "rgba(255,127,14,1.00)" in html and "⏎b" in html
    assert html.count("border-bottom") == 1
    svg = explorer_html.histogram_svg(torch.tensor([1, 3]), torch.tensor([0.0, 0.5, 1.0]), "x <label>")
    assert svg.count("<rect") == 2 and "x &lt;label&gt;" in svg
    assert explorer_html.token_chip(" the").count("·the") == 1


GENERATED = dict(derandomize=True, database=None, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=300, **GENERATED)
@given(text=st.one_of(st.text(max_size=200), st.just("x " * 3000),
                      st.sampled_from(["", " ", "\x00\x07\r\n\t\x1b[31m", "🙂🚀 naïve café", "\u202e\u200b"])))
def test_any_typed_text_is_routed(data, text):
    """Generated text (control characters, emoji, longer than the model's context): every token is routed."""
    tokens, routing = data.text_view("E=4", text)
    assert len(tokens) == len(routing.token_ids) == routing.expert_idx.numel() == routing.feature_acts.shape[0]
    assert len(tokens) <= int(data.reader.model.cfg.n_ctx) - 1
    assert ((routing.router_prob > 0) & (routing.router_prob <= 1)).all()


@settings(max_examples=400, **GENERATED)
@given(expert=st.integers(-3, 12), feature=st.integers(-3, 70), threshold=st.one_of(st.floats(-1, 2), st.just(float("nan"))),
       name=st.sampled_from(["E=4", "E=8", "E=5", ""]))
def test_out_of_range_indices_raise_package_errors(data, expert, feature, threshold, name):
    for call in (lambda: data.expert_view(name, expert), lambda: data.feature_view(name, feature),
                 lambda: data.duplication_view(name, threshold)):
        try:
            call()
        except SwitchSAEError as exc:
            assert any(w in str(exc) for w in ("outside", "threshold", "no SAE named")), str(exc)


def test_the_explorer_opens_on_an_imported_saelens_topk_sae(tiny_lm, sample_docs, tmp_path):
    """A TopK SAE in SAELens's format (as SAELens writes it, apply_b_dec_to_input true) opens as one expert."""
    from switch_sae_mini.interop import export_saelens, load_saelens

    torch.manual_seed(3)
    source = make_sae(SAEConfig(arch="topk", d_in=64, d_sae=64, k=4))
    imported = load_saelens(export_saelens(source, tmp_path / "topk", model_name="tiny", hook_name="blocks.0.x"))
    data = ExplorerData.build(tiny_lm, {"saelens": imported}, n_tokens=2_000, source=sample_docs, progress=False)
    app = expert_explorer(data)
    view = data.view("saelens")
    assert view.n_experts == 1 and float(view.usage[0]) == 1.0
    assert "expert 0</b> of 1 receives <b>100.0%</b>" in app.expert_view.value
    busiest = int(view.stats.frequency.argmax())
    app.feature_selector.value = (busiest + 1) % 64
    app.feature_selector.value = busiest
    assert f"feature {busiest}" in app.feature_view.value
    app.text_input.value = "In the beginning"
    assert app.text_view.value.count("<tr>") >= 3
