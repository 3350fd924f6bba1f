"""Draw docs/switch_sae.png: the Switch SAE forward pass (left) and the paper's published trade-off (right).

    python scripts/make_readme_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from switch_sae_mini.paper import series  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "switch_sae.png"


def box(ax, x, y, w, h, text, color, fontsize=9):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="#333", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def arrow(ax, a, b, **kw):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color="#333", lw=1.2, **kw))


def draw_architecture(ax):
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)
    ax.axis("off")
    ax.set_title("Switch SAE: a router picks one expert per token", fontsize=11)
    box(ax, 0.1, 2.6, 1.4, 0.8, "activation\nx (d_in)", "#e8eef7")
    box(ax, 2.0, 4.4, 2.0, 0.9, "router\nsoftmax(W_r(x - b_r))", "#fde9c9", 8)
    colors = ["#d9ead3", "#d9ead3", "#d9ead3", "#d9ead3"]
    for i, y in enumerate([3.3, 2.4, 1.5, 0.6]):
        chosen = i == 1
        box(ax, 4.8, y, 2.0, 0.7, f"expert {i}: TopK SAE\nwidth d_sae / E", "#b6d7a8" if chosen else colors[i], 8)
        if chosen:
            arrow(ax, (1.5, 3.0), (4.8, y + 0.35))
    arrow(ax, (1.5, 3.2), (2.0, 4.7))
    arrow(ax, (4.0, 4.85), (8.7, 3.25), linestyle="--")
    ax.text(6.3, 4.35, "top-1 choice i* and its\nprobability p_i* (the gate)", fontsize=8)
    box(ax, 7.35, 2.25, 2.6, 0.95, "x_hat = p_i* · expert_i*(x)\n+ b_dec", "#e8eef7", 8)
    arrow(ax, (6.8, 2.75), (7.35, 2.72))
    ax.text(5.0, 0.05, "only the routed expert's encoder runs: ~1/E of the encoder FLOPs", fontsize=8,
            ha="center", style="italic")


def draw_results(ax):
    styles = [(("topk", "dense", 1), "TopK (dense)", "k", "o"),
              (("switch", "flop_matched", 8), "Switch, FLOP-matched, 8 experts", "#1f77b4", "s"),
              (("switch", "width_matched", 16), "Switch, width-matched, 16 experts (1/16 enc. FLOPs)",
               "#ff7f0e", "^"),
              (("relu", "dense", 1), "ReLU (dense)", "#999", "x")]
    for key, label, color, marker in styles:
        rows = [r for r in series(*key) if 8 <= r.l0 <= 200]
        ax.plot([r.l0 for r in rows], [r.mse for r in rows], marker=marker, color=color, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("L0 (active latents per token)")
    ax.set_ylabel("reconstruction MSE (summed over 768 dims)")
    ax.set_title("Paper's GPT-2 results (layer 8, 819M tokens)", fontsize=11)
    ax.legend(fontsize=7.5, loc="lower left")
    ax.grid(alpha=0.3, which="both")
    ax.text(0.99, 0.97, "data: Mudide et al. 2024 (arXiv 2410.08201)", fontsize=7,
            transform=ax.transAxes, ha="right", va="top", color="#555")


def main() -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.25, 1]})
    draw_architecture(left)
    draw_results(right)
    fig.tight_layout()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=110, facecolor="white")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
