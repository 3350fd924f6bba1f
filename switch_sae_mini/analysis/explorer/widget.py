"""The expert explorer: one ipywidgets app to ask "what does each expert of a Switch SAE do?" (notebook 06).

    from switch_sae_mini.analysis.explorer import expert_explorer
    app = expert_explorer(model, {"E=8": sae8, "E=32": sae32})   # precomputes (progress bar); one widget
    app                                                          # show it; or set controls from code:
    app.expert_selector.value = 3                                # -> app.expert_view.value is expert 3's view

Four tabs, each control calling one method of ``ExplorerData`` (which calls the tested analysis functions):
Experts (share, domain mix, frequent tokens, active features), Feature (top contexts, histogram, decoder
neighbours, logit effect), Text (per-token routing of typed text), Compare (two SAEs' duplication, side by
side).

Works in JupyterLab 4 / Notebook 7 with ipywidgets 8. Where no widget front end runs (an HTML export, a plain
terminal) the display falls back to a static HTML / text summary carried in the same output.
"""

from __future__ import annotations

import time

import ipywidgets as widgets

from ...errors import ArgumentTypeError
from . import html as render
from .data import ExplorerData

DEFAULT_TEXT = "To be, or not to be: that is the question.\nimport os\nprint(os.getcwd())"


class ExpertExplorer(widgets.VBox):
    """The explorer widget. Controls and views are public attributes so code (and tests) can drive it."""

    def __init__(self, data: ExplorerData, text: str = DEFAULT_TEXT):
        if not isinstance(data, ExplorerData):
            raise ArgumentTypeError(f"data must be an ExplorerData (see ExplorerData.build), got "
                            f"{type(data).__name__}; or call expert_explorer(model, saes) to build it.")
        self.data = data
        names = list(data.saes)
        self.latency: dict[str, float] = {}  # seconds taken by the last update of each view
        self.sae_selector = widgets.Dropdown(options=names, value=names[0], description="SAE")
        self.expert_selector = widgets.Dropdown(description="expert")
        self.feature_selector = widgets.BoundedIntText(description="feature", min=0)
        self.text_input = widgets.Textarea(value=text, continuous_update=False, description="text",
                                           layout=widgets.Layout(width="640px", height="70px"))
        self.compare_left = widgets.Dropdown(options=names, value=names[0], description="left")
        self.compare_right = widgets.Dropdown(options=names, value=names[-1], description="right")
        self.threshold = widgets.FloatSlider(value=0.9, min=0.5, max=0.99, step=0.01, continuous_update=False,
                                             description="duplicate if cos >",
                                             style={"description_width": "130px"})
        self.expert_view, self.feature_view, self.text_view = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.compare_left_view = widgets.HTML(layout=widgets.Layout(margin="0 32px 0 0"))
        self.compare_right_view = widgets.HTML()
        self.status = widgets.HTML()
        for w, cls in [(self.expert_selector, "ssm-expert-selector"), (self.expert_view, "ssm-expert-view"),
                       (self.feature_selector, "ssm-feature-selector"),
                       (self.feature_view, "ssm-feature-view"),
                       (self.text_view, "ssm-text-view"), (self.compare_left_view, "ssm-compare-view"),
                       (self.compare_right_view, "ssm-compare-view")]:
            w.add_class(cls)
        self.tabs = widgets.Tab(children=[
            widgets.VBox([self.expert_selector, self.expert_view]),
            widgets.VBox([self.feature_selector, self.feature_view]),
            widgets.VBox([self.text_input, self.text_view]),
            widgets.VBox([widgets.HBox([self.compare_left, self.compare_right, self.threshold]),
                          widgets.HBox([self.compare_left_view, self.compare_right_view])]),
        ])
        self.tabs.titles = ("Experts", "Feature", "Text", "Compare")
        super().__init__([widgets.HBox([self.sae_selector, self.status]), self.tabs])
        self.add_class("ssm-explorer")

        self.sae_selector.observe(lambda _: self._on_sae(), "value")
        self.expert_selector.observe(lambda _: self._timed("expert", self._update_expert), "value")
        self.feature_selector.observe(lambda _: self._timed("feature", self._update_feature), "value")
        self.text_input.observe(lambda _: self._timed("text", self._update_text), "value")
        for control in (self.compare_left, self.compare_right, self.threshold):
            control.observe(lambda _: self._timed("compare", self._update_compare), "value")
        self._on_sae()  # fills the expert, feature and text views
        self._timed("compare", self._update_compare)

    # -- callbacks: each reads one ExplorerData view and renders it ---------------------------------------
    @property
    def sae_view(self):
        return self.data.view(self.sae_selector.value)

    def _timed(self, name: str, update) -> None:
        start = time.perf_counter()
        update()
        self.latency[name] = time.perf_counter() - start
        self.status.value = (f"<span style='color:#777; font-size:12px'>{name} view updated in "
                             f"{self.latency[name] * 1000:.0f} ms</span>")

    def _on_sae(self) -> None:
        """A new SAE: new expert list (labelled with shares) and feature range; both views refresh."""
        v = self.sae_view
        with self.expert_selector.hold_trait_notifications():
            self.expert_selector.options = [(f"{e} ({float(v.usage[e]):.1%} of tokens)", e)
                                            for e in range(v.n_experts)]
        busiest = int(v.usage.argmax())
        self.feature_selector.max = v.d_sae - 1
        top = self.data.expert_view(v.name, busiest).top_features
        if self.expert_selector.value == busiest:
            self._timed("expert", self._update_expert)
        self.expert_selector.value = busiest  # triggers the expert view
        target = top[0].feature if top else 0
        if self.feature_selector.value == target:
            self._timed("feature", self._update_feature)
        self.feature_selector.value = target
        self._timed("text", self._update_text)

    def _update_expert(self) -> None:
        v = self.sae_view
        view = self.data.expert_view(v.name, int(self.expert_selector.value))
        overview = render.expert_shares_svg(v.usage, v.profile, view.expert, self.data.domain_labels())
        self.expert_view.value = render.expert_html(v.name, view, v.n_experts, overview)

    def _update_feature(self) -> None:
        name = self.sae_selector.value
        view = self.data.feature_view(name, int(self.feature_selector.value))
        self.feature_view.value = render.feature_html(name, view)

    def _update_text(self) -> None:
        name = self.sae_selector.value
        tokens, routing = self.data.text_view(name, self.text_input.value)
        self.text_view.value = render.text_html(name, tokens, routing)

    def _update_compare(self) -> None:
        threshold = float(self.threshold.value)
        for selector, out in ((self.compare_left, self.compare_left_view),
                              (self.compare_right, self.compare_right_view)):
            v = self.data.view(selector.value)
            out.value = render.duplication_html(v.name, self.data.duplication_view(v.name, threshold),
                                                v.n_experts, threshold)

    # -- static fallback -----------------------------------------------------------------------------------
    def summary_html(self) -> str:
        return render.summary_html(self.data)

    def _repr_mimebundle_(self, **kwargs):
        """The widget view plus text/html and text/plain summaries: front ends without widget support (an HTML
        export without widget state, a terminal) show those instead of an empty output."""
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/html"] = self.summary_html()
        bundle["text/plain"] = render.summary_text(self.data)
        return bundle


def expert_explorer(model_or_data, saes=None, **build_kwargs) -> ExpertExplorer:
    """Build the explorer: ``expert_explorer(model, saes, n_tokens=..., ...)`` precomputes an ``ExplorerData``
    (keyword arguments go to ``ExplorerData.build``); ``expert_explorer(data)`` reuses one."""
    if isinstance(model_or_data, ExplorerData):
        if saes is not None or build_kwargs:
            raise ArgumentTypeError("expert_explorer(data) takes no saes or build arguments; they were used to build "
                            "data.")
        return ExpertExplorer(model_or_data)
    if saes is None:
        raise ArgumentTypeError("expert_explorer(model, saes): pass the Switch SAE(s) to explore, e.g. {'E=8': sae}.")
    return ExpertExplorer(ExplorerData.build(model_or_data, saes, **build_kwargs))


def interaction_latency(app: ExpertExplorer, repeats: int = 3) -> dict[str, float]:
    """Worst seconds per interaction over ``repeats`` changes of each control (expert, feature, text, compare,
    SAE). Used by notebook 06 to report responsiveness; the app records each update in ``app.latency``."""
    worst: dict[str, float] = {}
    names = list(app.data.saes)
    for i in range(repeats):
        v = app.sae_view
        for name, control, value in [
            ("expert", app.expert_selector, (app.expert_selector.value + 1) % v.n_experts),
            ("feature", app.feature_selector, (app.feature_selector.value + 1 + i) % v.d_sae),
            ("text", app.text_input, f"{DEFAULT_TEXT} {i}"),
            ("compare", app.threshold, 0.8 + 0.05 * i),
            ("sae", app.sae_selector, names[(names.index(app.sae_selector.value) + 1) % len(names)]),
        ]:
            start = time.perf_counter()
            control.value = value
            worst[name] = max(worst.get(name, 0.0), time.perf_counter() - start)
    return worst
