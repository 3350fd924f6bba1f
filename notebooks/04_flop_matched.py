# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · FLOP-matched training: Switch SAEs vs TopK at equal compute
#
# **Learning objectives**
# - Count an SAE's FLOPs per token with an itemised ledger, and build FLOP-matched and width-matched Switch SAEs.
# - Train TopK and both kinds of Switch SAE on identical activations over several k.
# - Compare them on reconstruction and on language-model loss recovered, next to the paper's published GPT-2 numbers.
# - Measure wall-clock per training step next to the ledger's FLOPs.
#
# **Prerequisites:** 02 (TopK), 03 (Switch SAE, load balancing).
#
# **Runtime** (AMD EPYC with AVX-512, 2 cores, bundled model; `python scripts/time_notebooks.py --cold`, the series in
# order from an empty course cache): FAST 0.4 min · default 4.7 min.
# On its own it also harvests the activations that chapter 01 caches (51 s at default sizes).
# On one GPU with `MODEL = "gpt2"`: ≈ 30 min (estimate).

# %% [markdown]
# ## 0 · Setup

# %%
import os
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:  # install the release this notebook was written for (set SSM_REPO_URL to your fork if needed)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    os.environ.get("SSM_REPO_URL", "git+https://github.com/switch-sae-mini/switch_sae_mini@v0.2.0")],
                   check=True)

import matplotlib.pyplot as plt
import torch

import switch_sae_mini as ssm
from switch_sae_mini import checks

device = ssm.notebook.setup(seed=0)

# %% [markdown]
# ## 1 · Config — the only cell you should need to edit

# %%
FAST = ssm.notebook.fast()
MODEL = "tiny-gpt2"                        # bundled 4-layer GPT-2 (d_model 128); "gpt2" for GPT-2 small
N_TOKENS = 200_000 if FAST else 1_500_000
D_SAE = 512 if FAST else 1024              # the dense TopK width (the paper: 32 x d_in = 24576 for GPT-2)
KS = [8] if FAST else [8, 16, 32]
FLOP_MATCHED = [2, 8] if FAST else [2, 4, 8]
WIDTH_MATCHED = [8, 32] if FAST else [4, 8, 16, 32]
STEPS = 120 if FAST else 1200
BATCH = 1024
LR = 1e-3
EVAL_CONTEXTS = 16 if FAST else 64         # held-out contexts for loss recovered (identical for every SAE)

# %% [markdown]
# ## 2 · The FLOP ledger
#
# Per token, a multiply-add counts 2 FLOPs. A dense TopK encoder costs $2\,d_{in}\,d_{sae}$; the decoder only
# touches k rows, $2\,k\,d_{in}$. A Switch SAE adds a router, $2\,d_{in}E$, and its routed encoder costs
# $2\,d_{in}\,d_{sae}/E$.
#
# ### Exercise 4.1 — encoder FLOPs per token
# > Difficulty ●○○○○ · Importance ●●●●○ · ~5 min
#
# Return the forward FLOPs per token of the router plus the routed encoder, for `n_experts = 1` a plain TopK
# encoder (no router).

# %% nbgrader={"grade": false, "grade_id": "encoder_flops", "locked": false, "schema_version": 3, "solution": true, "task": false}
def encoder_flops(d_in: int, d_sae: int, n_experts: int) -> int:
    ### BEGIN SOLUTION
    router = 2 * d_in * n_experts if n_experts > 1 else 0
    return router + 2 * d_in * (d_sae // n_experts)
    ### END SOLUTION


# %% [markdown]
# <details><summary>Hint</summary>
#
# A `[d_in] @ [d_in, m]` product is m dot products of length d_in: m·d_in multiplies and as many adds.
# </details>

# %% nbgrader={"grade": true, "grade_id": "check_encoder_flops", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_encoder_flops(encoder_flops)

# %% [markdown]
# The paper's two comparisons, built from a dense TopK config:
# - **FLOP-matched**: every expert as wide as the dense SAE, so total width $E \times d_{sae}$ at the same encoder
#   FLOPs per token.
# - **Width-matched**: the same total width, so $1/E$ of the encoder FLOPs.
#
# Here is the ledger at the paper's GPT-2 size and at ours:

# %%
print(ssm.flops.ledger_table({
    "TopK (GPT-2 size)": ssm.SAEConfig(arch="topk", d_in=768, d_sae=24576, k=32),
    "FLOP-matched E=8": ssm.flops.flop_matched(ssm.SAEConfig(arch="topk", d_in=768, d_sae=24576, k=32), 8),
    "width-matched E=32": ssm.flops.width_matched(ssm.SAEConfig(arch="topk", d_in=768, d_sae=24576, k=32), 32),
}))

# %% [markdown]
# ### Exercise 4.2 — training FLOPs per token
# > Difficulty ●●○○○ · Importance ●●●●○ · ~10 min
#
# The FLOP-matched comparison counts *training* compute. Return the forward + backward FLOPs per token of a TopK
# SAE (`n_experts = 1`) or a Switch SAE: router, routed encoder and the decoder of the k active rows, each counted
# at 3 × its forward cost (the backward pass of a matmul is about two matmuls of the same size: one for the
# input's gradient, one for the weight's).

# %% nbgrader={"grade": false, "grade_id": "training_flops_per_token", "locked": false, "schema_version": 3, "solution": true, "task": false}
def training_flops_per_token(d_in: int, d_sae: int, k: int, n_experts: int) -> int:
    ### BEGIN SOLUTION
    router = 2 * d_in * n_experts if n_experts > 1 else 0
    encoder = 2 * d_in * (d_sae // n_experts)
    decoder = 2 * k * d_in
    return 3 * (router + encoder + decoder)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_training_flops_per_token", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_training_flops_per_token(training_flops_per_token)

# %% [markdown]
# ### Exercise 4.3 — the two matched Switch SAEs
# > Difficulty ●●○○○ · Importance ●●●●○ · ~10 min
#
# From a dense TopK SAE of width `d_sae`, return `(flop_matched_d_sae, flop_matched_params, width_matched_d_sae,
# width_matched_params)` for Switch SAEs with `n_experts` experts: the total width of each, and its trainable
# parameters ($W_{enc}$ and $W_{dec}$, $b_{dec}$, $W_{router}$ `[d_in, E]` and $b_{router}$; this Switch SAE has no
# encoder bias).

# %% nbgrader={"grade": false, "grade_id": "matched_switch_sizes", "locked": false, "schema_version": 3, "solution": true, "task": false}
def matched_switch_sizes(d_in: int, d_sae: int, n_experts: int) -> tuple[int, int, int, int]:
    ### BEGIN SOLUTION
    def params(total):
        return 2 * total * d_in + d_in + d_in * n_experts + d_in
    return d_sae * n_experts, params(d_sae * n_experts), d_sae, params(d_sae)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_matched_switch_sizes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_matched_switch_sizes(matched_switch_sizes)

# %% [markdown]
# Your ledger against the package's (`switch_sae_mini/flops.py`) on the paper's GPT-2 sizes, for every E the
# paper trains. (If 4.2 or 4.3 is not done yet this cell fails; nothing below depends on it.)

# %%
paper_topk = ssm.SAEConfig(arch="topk", d_in=768, d_sae=24576, k=32)
for e in (1, 2, 4, 8, 16, 32, 64, 128):
    cfgs = [paper_topk] if e == 1 else [ssm.flops.flop_matched(paper_topk, e), ssm.flops.width_matched(paper_topk, e)]
    yours = [training_flops_per_token(c.d_in, c.d_sae, c.k, c.n_experts) for c in cfgs]
    theirs = [ssm.flops.training_flops(c)["total"] for c in cfgs]
    sizes = "" if e == 1 else (
        "   sizes and params " + ("agree" if matched_switch_sizes(768, 24576, e) == (
            cfgs[0].d_sae, ssm.flops.param_counts(cfgs[0])["total"], cfgs[1].d_sae,
            ssm.flops.param_counts(cfgs[1])["total"]) else "DIFFER (recheck 4.3)"))
    print(f"E={e:<4} training MFLOP/token ({'TopK' if e == 1 else 'FLOP-, width-matched'}): "
          f"{[round(v / 1e6, 2) for v in yours]}  "
          f"{'agree' if yours == theirs else 'DIFFER (recheck 4.2)'}{sizes}")

# %% [markdown]
# **Question 4.a** In a width-matched Switch SAE of total width $M$, the routed encoder costs $2\,d_{in} M/E$ FLOPs
# per token and the router $2\,d_{in} E$. For which $E$ do the two cost the same at the paper's $M = 24{,}576$,
# and what happens to the total past that point?

# %% [markdown] tags=["answer-key"]
# <details><summary>Answer</summary>
#
# They are equal when $M/E = E$, at $E = \sqrt{M} \approx 157$ (tests/test_flops.py pins this with the
# package's ledger). Their sum $2\,d_{in}(M/E + E)$ is smallest there: past it the router costs more than the
# experts save, so adding experts stops paying in FLOPs (and more experts also mean more duplicated features,
# chapter 05). The E values in this chapter, up to 32, sit far below it.
# </details>

# %% [markdown]
# ## 3 · Activations and a fixed evaluation set

# %%
model = ssm.load_model(MODEL, device=device)
acts, meta, buffer = ssm.notebook.harvest(model, N_TOKENS)
held_out, train_acts = acts[:8192], acts[8192:]
d_in = acts.shape[1]
evaluator = ssm.evaluation.SpliceEvaluator(
    model, ssm.evaluation.make_eval_tokens(model, n_contexts=EVAL_CONTEXTS), hook=buffer.hook)
print(f"hook={buffer.hook}; clean CE and zero-ablation CE on the eval set: "
      f"{evaluator.evaluate(lambda x: x).ce_clean:.3f} / {evaluator.ce_zero():.3f} nats")

# %% [markdown]
# ## 4 · Train the grid
#
# Every SAE sees the same batches in the same order and is evaluated on the same held-out activations and the
# same held-out contexts. "Loss recovered" splices the SAE's reconstruction into the model at the hook: 1 means
# the language-model loss is unchanged, 0 means as bad as zeroing the activation.

# %%
train_cfg = ssm.TrainConfig(n_steps=STEPS, lr=LR, log_every=STEPS)
configs = {}
for k in KS:
    dense = ssm.SAEConfig(arch="topk", d_in=d_in, d_sae=D_SAE, k=k)
    configs[("TopK", 1, k)] = dense
    for e in FLOP_MATCHED:
        configs[("FLOP-matched", e, k)] = ssm.flops.flop_matched(dense, e)
    for e in WIDTH_MATCHED:
        if D_SAE // e >= k:  # each expert needs at least k latents
            configs[("width-matched", e, k)] = ssm.flops.width_matched(dense, e)

results, trained = {}, {}
for key, cfg in configs.items():
    run = ssm.notebook.train_once(cfg, train_acts, BATCH, train_cfg)
    trained[key] = run.sae
    m = ssm.metrics.evaluate_sae(run.sae, held_out.split(2048))
    splice = evaluator.evaluate(run.sae)
    results[key] = {**m, "loss_recovered": splice.loss_recovered, "delta_ce": splice.delta_ce,
                    "sec_per_step": run.wall_time / STEPS,
                    "train_flops_per_step": ssm.flops.training_flops(cfg)["total"] * BATCH}
    print(f"{key[0]:13s} E={key[1]:<3} k={key[2]:<3} FVU={m['fvu']:.4f} MSE(sum)={m['mse_summed']:8.3f} "
          f"loss recovered={splice.loss_recovered:.4f}")


# %% [markdown]
# ## 5 · Pareto plots, ours beside the paper's

# %%
def family(kind, e):
    return "TopK" if kind == "TopK" else f"{kind} E={e}"


def by_family(metric, transform=lambda v: v):
    series = {}
    for (kind, e, k), m in results.items():
        series.setdefault(family(kind, e), []).append((m["l0"], transform(m[metric])))
    return series


fig, axes = plt.subplots(2, 2, figsize=(12, 9))
ssm.plotting.plot_tradeoff(by_family("mse_summed"), ylabel="MSE (summed over d_in)", ax=axes[0, 0],
                           title=f"Ours: {MODEL}, {STEPS * BATCH / 1e6:.1f}M tokens per SAE")
ssm.plotting.plot_tradeoff(ssm.paper.paper_series("mse"), ylabel="MSE (summed over 768 dims)", ax=axes[0, 1],
                           title="Paper: GPT-2 small, 819M tokens per SAE")
ssm.plotting.plot_tradeoff(by_family("loss_recovered", lambda v: 100 * (1 - v)), ylabel="1 − loss recovered (%)",
                           ax=axes[1, 0], title="Ours: language-model loss not recovered")
ssm.plotting.plot_tradeoff(ssm.paper.paper_series("one_minus_loss_recovered_pct"),
                           ylabel="1 − loss recovered (%)", ax=axes[1, 1], title="Paper")
fig.suptitle("Sparsity vs reconstruction: TopK vs FLOP-matched and width-matched Switch SAEs")
fig.tight_layout()

# %% [markdown]
# Published numbers: Mudide et al. 2024 (arXiv 2410.08201), reference-repository result CSVs, bundled in
# `switch_sae_mini/assets/paper/`.
#
# ## 6 · Do the paper's claims hold at this scale?
#
# The cell below compares each Switch SAE with the TopK SAE of the same k and prints a verdict computed from the
# numbers above — read it rather than trusting the prose, because small runs are noisy.

# %%
for (kind, e, k), m in results.items():
    if kind == "TopK":
        continue
    base = results[("TopK", 1, k)]
    change = 100 * (m["mse_summed"] / base["mse_summed"] - 1)
    flops_ratio = ssm.flops.forward_flops(configs[(kind, e, k)])["total"] / \
        ssm.flops.forward_flops(configs[("TopK", 1, k)])["total"]
    print(f"k={k:<3} {kind:13s} E={e:<3} MSE vs TopK {change:+6.1f}%   loss recovered "
          f"{m['loss_recovered']:.4f} vs {base['loss_recovered']:.4f}   forward FLOPs x{flops_ratio:.2f}")

fm_wins = [results[(kind, e, k)]["mse_summed"] < results[("TopK", 1, k)]["mse_summed"]
           for (kind, e, k) in results if kind == "FLOP-matched"]
print(f"\nFLOP-matched Switch beats TopK at equal FLOPs in {sum(fm_wins)}/{len(fm_wins)} comparisons "
      f"(paper: all of them).")
wm_losses = [results[(kind, e, k)]["mse_summed"] > results[("TopK", 1, k)]["mse_summed"]
             for (kind, e, k) in results if kind == "width-matched"]
print(f"Width-matched Switch reconstructs worse than TopK in {sum(wm_losses)}/{len(wm_losses)} comparisons "
      f"(paper: all of them, at 1/E of the encoder FLOPs).")

# %% [markdown]
# **Question 4.b** A width-matched Switch SAE has as many latents as the TopK SAE it is compared with, and every
# token still gets k of them. Why does it reconstruct worse? What does it buy in exchange, and by how much at
# E = 8?

# %% [markdown] tags=["answer-key"]
# <details><summary>Answer</summary>
#
# Each token chooses its k latents from its own expert's $d_{sae}/E$ only, not from all $d_{sae}$: its effective
# dictionary is E times narrower, and a narrower dictionary reconstructs worse at the same k (chapter 02's wider
# SAEs do better). On top of that, features useful to several experts' tokens are learned once per expert
# (chapter 05's duplicates), so the distinct directions are fewer than $d_{sae}$. What it buys is compute: the
# routed encoder costs $2\,d_{in}\,d_{sae}/E$ per token plus the router's $2\,d_{in}E$; at the paper's size and
# E = 8 the ledger above gives 14.34 against 113.39 training MFLOP per token, about 8 times less. The paper's point is
# that this trade is worth it when the saved FLOPs buy width (the FLOP-matched row).
# </details>

# %% [markdown]
# ## 7 · Wall-clock per step next to the ledger
#
# FLOPs are a proxy. On this CPU at the bundled model's width, per-step time includes fixed costs the ledger
# ignores (the Adam update over every parameter, Python overhead per expert). Timings vary run to run.

# %% tags=["nbval-ignore-output"]
print(f"{'SAE':26s} {'train GFLOP/step':>16s} {'ms/step':>8s} {'params':>9s}")
for (kind, e, k), m in results.items():
    if k != KS[-1]:
        continue
    params = ssm.flops.param_counts(configs[(kind, e, k)])["total"]
    print(f"{family(kind, e):26s} {m['train_flops_per_step'] / 1e9:16.2f} {1e3 * m['sec_per_step']:8.1f} "
          f"{params / 1e6:8.2f}M")

# %% [markdown]
# **Takeaways**
# - The ledger makes "FLOP-matched" precise: same encoder FLOPs per token, $E\times$ the width and parameters.
# - In the paper, FLOP-matched Switch SAEs beat TopK at every k, and width-matched ones trade a little
#   reconstruction for $E\times$ fewer encoder FLOPs. Check the verdict lines above for what this small run shows.
# - FLOP-matched SAEs cost $E\times$ the parameters (and Adam state): compute-efficient, not memory-efficient.

# %% [markdown]
# ## 8 · Using this SAE elsewhere
#
# Most interpretability tools (SAELens, SAEBench, SAEDashboard) read SAELens's folder format. `export_saelens`
# writes a TopK or ReLU SAE in it, with the model and hook recorded; `load_saelens` reads such a folder back, or
# one trained with SAELens. The round trip below is exact. (Switch SAEs have no SAELens architecture; see the README,
# "Using your SAEs elsewhere".)

# %%
import tempfile
from pathlib import Path

topk = trained[("TopK", 1, KS[-1])]
export_dir = Path(tempfile.mkdtemp()) / "topk_saelens"
ssm.export_saelens(topk, export_dir, model_name=MODEL, hook_name=buffer.hook)
print(sorted(p.name for p in export_dir.iterdir()))
back = ssm.load_saelens(export_dir)
with torch.no_grad():
    difference = (back(held_out[:512]).x_hat - topk(held_out[:512]).x_hat).abs().max()
print(f"loaded back as {type(back).__name__} (k={back.cfg.k}); max |x_hat difference| = {float(difference):.1e}")

