"""Plot helpers for the notebooks. Each returns a matplotlib Figure (the notebook's last expression shows it);
nothing is saved to disk. Light theme, titled, labelled axes with units.

A figure left open in pyplot is shown by Jupyter's inline backend when the cell ends *and* again as the cell's
returned value, so each helper closes its figure in pyplot before returning it (tests/test_plotting.py counts the
images). Outside Jupyter, call ``fig.savefig(...)`` on the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def _new_figure(**kwargs) -> Figure:
    # Created through pyplot, so that Jupyter's inline backend loads and renders the returned figure; closed at
    # once, so that the backend does not also show it when the cell ends (that made every plot appear twice).
    fig = plt.figure(**kwargs)
    plt.close(fig)
    return fig


def plot_history(histories: Mapping[str, Sequence[Mapping[str, float]]],
                 keys: Sequence[str] = ("fvu", "l0", "dead_fraction"), title: str = "Training curves") -> Figure:
    """One panel per metric, one line per run, x = training tokens."""
    fig = _new_figure(figsize=(4.2 * len(keys), 3.2))
    axes = fig.subplots(1, len(keys), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, history in histories.items():
            rows = [r for r in history if key in r]
            ax.plot([r["tokens"] for r in rows], [r[key] for r in rows], label=name)
        ax.set_xlabel("training tokens")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        if key == "fvu":
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_tradeoff(series: Mapping[str, Sequence[tuple[float, float]]], ylabel: str, xlabel: str = "L0 (active "
                  "latents per token)", title: str = "", logx: bool = True, logy: bool = True, ax=None) -> Figure:
    """Sparsity-reconstruction trade-off: one line of (x, y) points per SAE family."""
    fig = ax.figure if ax is not None else _new_figure(figsize=(5.5, 4))
    ax = ax or fig.add_subplot()
    markers = "osv^D<>px*h"
    for i, (name, points) in enumerate(series.items()):
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=markers[i % len(markers)], label=name)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def plot_expert_usage(usage, profile=None, domains: Sequence[str] = (), title: str = "Expert usage") -> Figure:
    """Bar chart of each expert's token share; if a domain profile is given, bars are stacked by domain."""
    n = len(usage)
    fig = _new_figure(figsize=(max(5, 0.35 * n + 2), 3.2))
    ax = fig.subplots()
    if profile is None:
        ax.bar(range(n), usage.tolist(), color="#4c72b0")
    else:
        bottom = [0.0] * n
        for d, name in enumerate(domains):
            heights = (profile[:, d] * usage).tolist()
            ax.bar(range(n), heights, bottom=bottom, label=name)
            bottom = [b + h for b, h in zip(bottom, heights)]
        ax.legend(fontsize=8)
    ax.axhline(1 / n, color="k", ls="--", lw=1, label="uniform")
    ax.set_xlabel("expert")
    ax.set_ylabel("share of tokens")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_duplicates_with_control(rows, threshold: float = 0.9,
                                 title: str = "Cross-expert duplicates, with controls") -> Figure:
    """Fraction of latents with a twin (cos > threshold) in another expert against E: the Switch SAEs, a TopK SAE
    of the same width split into E random blocks, and a random dictionary (analysis.duplicates_with_control)."""
    fig = _new_figure(figsize=(5.6, 3.4))
    ax = fig.subplots()
    experts = [r.n_experts for r in rows]
    for field, label, style in [("switch", "Switch SAE (experts chosen by the router)", "o-"),
                                ("topk_blocks", "TopK SAE, latents split into E random blocks", "s--"),
                                ("random_dictionary", "random dictionary (chance)", "x:")]:
        ax.plot(experts, [100 * getattr(r, field) for r in rows], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(experts, [str(e) for e in experts])
    ax.set_xlabel("number of experts E")
    ax.set_ylabel(f"% of latents with a twin (cos > {threshold:g})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_embeddings(panels: Mapping[str, object], colour, title: str = "", label: str = "expert") -> Figure:
    """Side-by-side 2-D scatter plots ({panel title: [n, 2] points}), each point coloured by `colour` [n]."""
    fig = _new_figure(figsize=(5.4 * len(panels), 4.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, xy) in zip(axes, panels.items()):
        points = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="tab20", s=3)
        ax.set(title=name, xticks=[], yticks=[])
    fig.colorbar(points, ax=list(axes), label=label)
    fig.suptitle(title)
    return fig


def plot_detection_by_decile(ours: Mapping[str, Sequence[float]], paper: Mapping[str, Sequence[float]] | None = None,
                             title: str = "Detection accuracy by activation decile") -> Figure:
    """Fraction of activating tokens (contexts) detected, per activation decile Q1 (lowest) ... Q10 (top): our
    rule-based scores (analysis.interpretability) beside the paper's LLM-scored ones (paper.autointerp_results)."""
    fig = _new_figure(figsize=(10.4 if paper else 5.4, 3.6))
    axes = fig.subplots(1, 2 if paper else 1, squeeze=False)[0]
    for ax, (panel, series) in zip(axes, [("this run: a learnt token rule", ours),
                                          ("the paper: an LLM's explanation (k = 64, GPT-2 small)", paper or {})]):
        for name, accuracy in series.items():
            ax.plot(range(1, len(accuracy) + 1), [100 * a for a in accuracy], "o-", ms=3, label=name)
        ax.set(xlabel="activation decile (1 = weakest, 10 = strongest)", ylabel="% detected", title=panel,
               ylim=(0, 100), xticks=range(1, 11))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
