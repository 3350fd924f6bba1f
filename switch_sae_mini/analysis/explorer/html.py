"""HTML for the expert explorer's views: plain strings with inline styles and SVG, no JavaScript.

The same HTML fills the live widgets and the static summary shown where no widget front end runs (an HTML
export, GitHub's notebook viewer), so it must not depend on a kernel or on external CSS.
"""

from __future__ import annotations

import html

from torch import Tensor

DOMAIN_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
# line-height: ipywidgets' HTML widget inherits a 28 px line height (one control row) that spreads tables out
FONT = "font-family: ui-sans-serif, system-ui, sans-serif; font-size: 13px; line-height: 1.45;"
MONO = "font-family: ui-monospace, monospace; font-size: 12.5px; line-height: 1.45;"


def esc(text: str) -> str:
    """Escape for HTML and make whitespace visible (newlines as ⏎, leading spaces as ·)."""
    return html.escape(text).replace("\n", "⏎").replace("\t", "⇥")


def token_chip(text: str) -> str:
    """A token in a monospace box (leading spaces visible, as GPT-2 tokens often start with one)."""
    shown = esc(text)
    if shown.startswith(" "):
        shown = "·" + shown[1:]
    return (f"<code style='{MONO} background:#f2f2f2; border-radius:3px; padding:0 3px; white-space:pre'>"
            f"{shown}</code>")


def highlight(tokens: list[str], strengths: list[float], peak: int | None = None,
              scale: float | None = None) -> str:
    """Tokens with an orange background whose opacity is activation / scale; hover shows the value."""
    scale = scale or max(max(strengths, default=0.0), 1e-9)
    spans = []
    for i, (text, value) in enumerate(zip(tokens, strengths)):
        alpha = min(max(value / scale, 0.0), 1.0)
        border = "border-bottom:2px solid #b34700;" if i == peak else ""
        spans.append(f"<span title='{value:.3f}' style='background:rgba(255,127,14,{alpha:.2f});{border}"
                     f" white-space:pre'>{esc(text)}</span>")
    return f"<span style='{MONO}'>{''.join(spans)}</span>"


def histogram_svg(counts: Tensor, edges: Tensor, xlabel: str, width: int = 360, height: int = 110,
                  colour: str = "#4c72b0", marker: float | None = None) -> str:
    """A bar chart of a histogram as inline SVG (axis labels: first/last edge, the largest count)."""
    counts_list, edges_list = [int(c) for c in counts.tolist()], [float(e) for e in edges.tolist()]
    top = max(max(counts_list, default=0), 1)
    plot_h, bar_w = height - 30, (width - 40) / max(len(counts_list), 1)
    bars = []
    for i, c in enumerate(counts_list):
        h = plot_h * c / top
        bars.append(f"<rect x='{35 + i * bar_w:.1f}' y='{5 + plot_h - h:.1f}' "
                    f"width='{max(bar_w - 1, 1):.1f}' height='{h:.1f}' fill='{colour}'>"
                    f"<title>{edges_list[i]:.3g}–{edges_list[i + 1]:.3g}: {c}</title></rect>")
    if marker is not None and edges_list[-1] > edges_list[0]:
        x = 35 + (width - 40) * (marker - edges_list[0]) / (edges_list[-1] - edges_list[0])
        bars.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='5' y2='{5 + plot_h}' stroke='#333' "
                    "stroke-dasharray='3,2'/>")
    text = "font-size='10' fill='#444' font-family='sans-serif'"
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{''.join(bars)}"
            f"<line x1='35' x2='{width - 5}' y1='{5 + plot_h}' y2='{5 + plot_h}' stroke='#888'/>"
            f"<text x='30' y='14' text-anchor='end' {text}>{top}</text>"
            f"<text x='35' y='{plot_h + 18}' {text}>{edges_list[0]:.2g}</text>"
            f"<text x='{width - 5}' y='{plot_h + 18}' text-anchor='end' {text}>{edges_list[-1]:.2g}</text>"
            f"<text x='{(width + 30) / 2}' y='{height - 2}' text-anchor='middle' {text}>"
            f"{html.escape(xlabel)}</text></svg>")


def expert_shares_svg(usage: Tensor, profile: Tensor, selected: int, labels: list[str], width: int = 560,
                      height: int = 120) -> str:
    """All experts' token shares as columns stacked by domain; the selected expert is outlined."""
    n = len(usage)
    plot_h, col_w = height - 22, (width - 40) / max(n, 1)
    top = max(float(usage.max()), 1e-9)
    shapes = []
    for e in range(n):
        y = 5 + plot_h
        for d, colour in zip(range(profile.shape[1]), DOMAIN_COLOURS):
            h = plot_h * float(usage[e] * profile[e, d]) / top
            y -= h
            shapes.append(f"<rect x='{35 + e * col_w:.1f}' y='{y:.1f}' width='{max(col_w - 1.5, 1):.1f}' "
                          f"height='{h:.1f}' fill='{colour}'><title>expert {e}: {labels[d]} "
                          f"{float(profile[e, d]):.0%}</title></rect>")
        if e == selected:
            h = plot_h * float(usage[e]) / top
            shapes.append(f"<rect x='{34 + e * col_w:.1f}' y='{4 + plot_h - h:.1f}' "
                          f"width='{col_w + 0.5:.1f}' height='{h + 2:.1f}' fill='none' stroke='#111' "
                          "stroke-width='2'/>")
    uniform = 5 + plot_h - plot_h * (1 / n) / top
    text = "font-size='10' fill='#444' font-family='sans-serif'"
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{''.join(shapes)}"
            f"<line x1='35' x2='{width - 5}' y1='{uniform:.1f}' y2='{uniform:.1f}' stroke='#333' "
            f"stroke-dasharray='3,2'><title>uniform share</title></line>"
            f"<text x='30' y='14' text-anchor='end' {text}>{top:.0%}</text>"
            f"<text x='{(width + 30) / 2}' y='{height - 4}' text-anchor='middle' {text}>expert "
            f"(0–{n - 1}); dashed: uniform share</text></svg>")


def stacked_bar(shares: dict[str, float], width: int = 360) -> str:
    """One horizontal bar split by domain share, with a legend."""
    parts, legend = [], []
    for (label, share), colour in zip(shares.items(), DOMAIN_COLOURS):
        parts.append(f"<div title='{html.escape(label)} {share:.1%}' style='width:{share * 100:.2f}%;"
                     f" background:{colour}'></div>")
        legend.append(f"<span style='color:{colour}'>■</span> {html.escape(label)} {share:.0%}")
    return (f"<div style='display:flex; width:{width}px; height:14px; border:1px solid #ccc'>"
            f"{''.join(parts)}</div><div style='{FONT} margin-top:2px'>{' &nbsp; '.join(legend)}</div>")


def table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th style='text-align:left; padding:1px 8px 1px 0'>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:1px 8px 1px 0'>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table style='{FONT} border-collapse:collapse'><tr>{head}</tr>{body}</table>"


def section(title: str, body: str) -> str:
    title = f"<div style='{FONT} font-weight:600; margin-bottom:3px'>{title}</div>"
    return f"<div style='margin:6px 0'>{title}{body}</div>"


def expert_html(name: str, view, n_experts: int, overview: str = "") -> str:
    """Expert tab: share of tokens, domain profile, most frequent tokens, most active features; ``overview``
    (e.g. ``expert_shares_svg``) goes on top."""
    tokens = table(["token", "count", "lift"], [[token_chip(t), str(c), f"{lift:.1f}×"]
                                                for t, c, lift in view.top_tokens])
    features = table(["feature", "fires on", "mean act."],
                     [[str(f.feature), f"{f.frequency:.2%}", f"{f.mean_activation:.2f}"]
                      for f in view.top_features])
    head = (f"<div style='{FONT}'><b>{html.escape(name)} · expert {view.expert}</b> of {n_experts} receives "
            f"<b>{view.share:.1%}</b> of tokens (uniform would be {1 / n_experts:.1%})</div>")
    return (f"<div class='ssm-expert' data-expert='{view.expert}'>{overview}{head}"
            + section("Domain mix of its tokens", stacked_bar(view.profile))
            + "<div style='display:flex; gap:28px'>"
            + section("Tokens routed here most often", tokens or "none")
            + section("Most active features", features) + "</div></div>")


def feature_html(name: str, view) -> str:
    """Feature tab: top contexts highlighted, activation histogram, decoder neighbours, logit effect."""
    scale = max((max(acts, default=0.0) for _, acts, _ in view.contexts), default=0.0)
    contexts = "".join(f"<div style='margin:2px 0; {MONO}'><span style='{MONO} color:#666'>"
                       f"{acts[peak]:6.2f}</span> {highlight(tokens, acts, peak, scale)}</div>"
                       for tokens, acts, peak in view.contexts)
    duplicate = "<b style='color:#c44e52'>duplicate</b>"
    neighbours = table(["feature", "expert", "cosine", ""],
                       [[str(n.feature), str(n.expert), f"{n.cos:.3f}", duplicate if n.duplicate else ""]
                        for n in view.neighbours])
    logits = table(["promoted", "suppressed"], [[token_chip(u), token_chip(d)]
                                                for u, d in zip(view.promoted, view.suppressed)])
    hist = histogram_svg(view.hist_counts, view.hist_edges, "activation when firing", colour="#dd8452")
    return (f"<div class='ssm-feature' data-feature='{view.feature}'><div style='{FONT}'>"
            f"<b>{html.escape(name)} · feature {view.feature}</b> (expert {view.expert}) fires on "
            f"<b>{view.frequency:.2%}</b> of tokens</div>"
            + section("Top-activating contexts (orange = activation, underlined = peak)",
                      contexts or f"<i style='{FONT}'>never fires on this data</i>")
            + "<div style='display:flex; gap:28px'>" + section("Activation histogram", hist)
            + section("Nearest decoder directions in other experts", neighbours)
            + section("Logit effect (direct path)", logits) + "</div></div>")


def text_html(name: str, tokens: list[str], routing) -> str:
    """Text tab: one row per token with its expert, router probability and firing features."""
    rows = []
    for i, text in enumerate(tokens):
        fired = [f"{int(f)} ({a:.2f})" for f, a in zip(routing.feature_idx[i].tolist(),
                                                        routing.feature_acts[i].tolist()) if a > 0]
        rows.append([token_chip(text), str(int(routing.expert_idx[i])),
                     f"{float(routing.router_prob[i]):.2f}", ", ".join(fired)])
    body = table(["token", "expert", "router p", "strongest features (activation)"], rows) if rows else \
        f"<i style='{FONT}'>type some text</i>"
    return f"<div class='ssm-text'><div style='{FONT}'><b>{html.escape(name)}</b> routing</div>{body}</div>"


def duplication_html(name: str, stats, n_experts: int, threshold: float) -> str:
    """Compare tab, one column: duplicate fraction, histogram of cross-expert cosines, top duplicate pairs."""
    hist = histogram_svg(stats.counts, stats.edges, "max cosine to another expert's feature",
                         marker=threshold)
    pairs = table(["feature", "twin", "cosine"], [[str(f), str(g), f"{c:.3f}"] for f, g, c in stats.pairs])
    worst = int(stats.per_expert.argmax())
    return (f"<div class='ssm-dup' style='{FONT}'><b>{html.escape(name)}</b> ({n_experts} experts): "
            f"<b>{stats.fraction:.1%}</b> of features have a twin in another expert "
            f"(cos &gt; {threshold:.2f}); "
            f"mean nearest cosine {stats.mean_cos:.3f}; most duplicated expert {worst} "
            f"({float(stats.per_expert[worst]):.0%})<div>{hist}</div>"
            f"{section('Closest pairs across experts', pairs)}</div>")


def summary_html(data) -> str:
    """The static summary: per SAE, each expert's share and domain mix, and the duplicate fraction."""
    parts = [f"<div style='{FONT}'><b>Switch SAE expert explorer</b> — static summary (the interactive "
             "version needs a running kernel and a widget front end such as JupyterLab).</div>"]
    labels = data.domain_labels()
    for name, v in data.saes.items():
        stats = data.duplication_view(name)
        rows = [[str(e), f"{float(v.usage[e]):.1%}"] + [f"{float(p):.0%}" for p in v.profile[e]]
                for e in range(v.n_experts)]
        parts.append(section(f"{html.escape(name)}: {v.n_experts} experts, {v.d_sae} features, "
                             f"{stats.fraction:.1%} duplicated across experts (cos &gt; 0.9)",
                             table(["expert", "share"] + [html.escape(d) for d in labels], rows)))
    return "<div class='ssm-summary'>" + "".join(parts) + "</div>"


def summary_text(data) -> str:
    lines = ["Switch SAE expert explorer (static summary; interactive in JupyterLab)"]
    for name, v in data.saes.items():
        shares = ", ".join(f"{float(u):.0%}" for u in v.usage)
        lines.append(f"{name}: {v.n_experts} experts, token shares {shares}; "
                     f"{data.duplication_view(name).fraction:.1%} duplicated across experts")
    return "\n".join(lines)
