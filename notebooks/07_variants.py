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
# # 07 · Variants: an always-on shared expert and top-e routing
#
# **Learning objectives**
# - Build two variants of the Switch SAE from its config: an always-on **shared expert** next to the routed ones,
#   and **top-e routing**, each token sent to its e most probable experts.
# - Count their FLOPs with the ledger and build them at the same FLOPs per token as a TopK SAE.
# - Train them beside TopK and the plain Switch SAE on identical activations and compare reconstruction and
#   language-model loss recovered.
# - Measure duplicate features among the routed experts with each variant, and what the shared expert learns.
#
# **Prerequisites:** 04 (FLOP matching), 05 (duplicates across experts).
#
# **Runtime** (AMD EPYC with AVX-512, 2 cores, bundled model; `python scripts/time_notebooks.py --cold`, the series in
# order from an empty course cache): FAST 0.2 min · default 1.0 min.
# It reuses chapter 04's activations and its TopK and Switch SAEs from the course cache; on its own it trains them.
# On one GPU with `MODEL = "gpt2"`: ≈ 10 min (estimate).

# %% [markdown]
# ## 0 · Setup

# %%
import math
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
from switch_sae_mini import analysis

device = ssm.notebook.setup(seed=0)

# %% [markdown]
# ## 1 · Config — the only cell you should need to edit
#
# The sizes, steps and learning rate are chapter 04's, so its TopK and FLOP-matched Switch SAEs at `K` come
# back from the course cache instead of being trained again.

# %%
FAST = ssm.notebook.fast()
MODEL = "tiny-gpt2"                        # bundled 4-layer GPT-2 (d_model 128); "gpt2" for GPT-2 small
N_TOKENS = 200_000 if FAST else 1_500_000
D_SAE = 512 if FAST else 1024              # the dense TopK width that every SAE below matches in FLOPs
K = 8 if FAST else 16                      # active latents per token (L0), the same for every SAE
N_EXPERTS = 8
TOP_E = 2                                  # experts per token in the top-e SAE
SHARED = D_SAE // 4                        # the shared expert's width ...
K_SHARED = K // 4                          # ... and its share of the K active latents
STEPS = 120 if FAST else 1200
BATCH = 1024
LR = 1e-3
EVAL_CONTEXTS = 16 if FAST else 64         # held-out contexts for loss recovered (identical for every SAE)
THRESHOLD = 0.9                            # cosine above which two decoder rows count as duplicates
NO_CHANGE = 0.005                          # mean-cosine changes smaller than this count as no change (one seed)

# %% [markdown]
# ## 2 · Two questions, two variants
#
# Chapter 05 measured what routing costs: a token sees one expert, so a feature that tokens of several experts
# need is learned once per expert. Two changes to the architecture follow from that, and the paper's reference
# repository tried both, outside the paper:
#
# - **A shared expert** (its `switch1on.py`): one expert that every token uses besides its routed one, which could
#   hold the features everybody needs, once. In the reference repository's GPT-2 runs (its
#   `results/1on/switch-heavy.csv`, against `results/primary/primary-switch-fast.csv`) it did *not* help:
#   against a plain Switch SAE that computes as many latents per token, it reconstructed worse at every k tried.
#   We test it here at equal FLOPs.
# - **Top-e routing** (its `moe.py`, an early prototype): each token goes to its e most probable experts, so a
#   feature can be shared by the pairs of experts that tokens use together.
#
# Both are `SAEConfig` fields (docs/design-notes.md §12 gives each choice and why):
#
# - `shared_expert=W, k_shared=k_s`: the last `W` latents form an expert that every token uses, with gate 1 and
#   its own TopK of `k_s`. A token has `k + k_s` active latents.
# - `router_top_e=e`: each chosen expert's latents are scaled by its own router probability, and one TopK of `k`
#   runs over the union. The gates are not renormalised over the e: renormalised, a single expert's gate would be
#   1, the "heaviside" gate of chapter 03, and `e = 1` would no longer be the Switch SAE.
#
# `flops.flop_matched` builds each at the TopK SAE's FLOPs per token: per token the encoder computes
# `e · d_expert + W` latents, which it keeps at `D_SAE`, and `k_s` comes out of `K`, so the L0 and the decoder's
# FLOPs stay the TopK's. The ledger shows it:

# %%
model = ssm.load_model(MODEL, device=device)
d_in = model.cfg.d_model
dense = ssm.SAEConfig(arch="topk", d_in=d_in, d_sae=D_SAE, k=K)
names = {"TopK": dense,
         f"Switch E={N_EXPERTS}": ssm.flops.flop_matched(dense, N_EXPERTS),
         f"top-{TOP_E} E={N_EXPERTS}": ssm.flops.flop_matched(dense, N_EXPERTS, router_top_e=TOP_E),
         f"shared + E={N_EXPERTS}": ssm.flops.flop_matched(dense, N_EXPERTS, shared_expert=SHARED, k_shared=K_SHARED)}
print(ssm.flops.ledger_table(names))
for name, cfg in names.items():
    print(f"{name:14s} d_expert {cfg.d_expert:5d}  routed k {cfg.k:3d}  + shared k {cfg.k_shared}  "
          f"encoder MFLOP/token {ssm.flops.forward_flops(cfg)['encoder'] / 1e6:.3f}")

# %% [markdown]
# **Question 7.a** The top-2 SAE has the same FLOPs per token as the plain Switch SAE, but how wide is each of its
# experts, and how many latents does it have in total? What does it give up for routing each token twice?

# %% [markdown] tags=["answer-key"]
# <details><summary>Answer</summary>
#
# Each token's encoder computes two experts, so at the same FLOPs each expert is half as wide (`D_SAE / 2`
# latents) and the dictionary has half the latents: `N_EXPERTS · D_SAE / 2` against `N_EXPERTS · D_SAE` (the
# ledger's `d_sae` column). It gives up width, which chapter 04 showed is what FLOP matching buys; what it gets is
# a choice of latents from two experts per token, so features that tokens of two experts share need not be
# duplicated.
# </details>

# %% [markdown]
# ## 3 · Activations and a fixed evaluation set
#
# Chapter 04's: the same harvest, held-out split and evaluation contexts.

# %%
acts, meta, buffer = ssm.notebook.harvest(model, N_TOKENS)
held_out, train_acts = acts[:8192], acts[8192:]
held_tokens = meta.token_id[:8192]
evaluator = ssm.evaluation.SpliceEvaluator(
    model, ssm.evaluation.make_eval_tokens(model, n_contexts=EVAL_CONTEXTS), hook=buffer.hook)

# %% [markdown]
# ## 4 · Train the four at equal FLOPs
#
# Same batches in the same order, same steps and learning rate; one seed, so read small differences with care.

# %%
train_cfg = ssm.TrainConfig(n_steps=STEPS, lr=LR, log_every=STEPS)
configs = names
trained, results = {}, {}
for name, cfg in configs.items():
    trained[name] = ssm.notebook.train_once(cfg, train_acts, BATCH, train_cfg).sae
    m = ssm.metrics.evaluate_sae(trained[name], held_out.split(2048))
    results[name] = {**m, "loss_recovered": evaluator.evaluate(trained[name]).loss_recovered}
    print(f"{name:14s} L0 {m['l0']:5.1f}  FVU {m['fvu']:.4f}  MSE(sum) {m['mse_summed']:7.3f}  "
          f"loss recovered {results[name]['loss_recovered']:.4f}")

# %% [markdown]
# The verdicts, printed from the numbers above: each variant against the plain Switch SAE and against TopK.

# %%
switch_name = f"Switch E={N_EXPERTS}"
verdicts = {}
for name in list(configs)[2:]:
    vs_switch = 100 * (results[name]["mse_summed"] / results[switch_name]["mse_summed"] - 1)
    vs_topk = 100 * (results[name]["mse_summed"] / results["TopK"]["mse_summed"] - 1)
    verdicts[name] = vs_switch < 0
    print(f"{name:14s} MSE {vs_switch:+5.1f}% vs {switch_name} ({'better' if vs_switch < 0 else 'worse'}), "
          f"{vs_topk:+5.1f}% vs TopK ({'better' if vs_topk < 0 else 'worse'}); loss recovered "
          f"{results[name]['loss_recovered']:.4f} vs {results[switch_name]['loss_recovered']:.4f} (Switch)")

# %% [markdown]
# ## 5 · Duplicates among the routed experts
#
# Chapter 05's measure on the routed experts of each SAE (a shared expert's rows are left out: no router splits
# them): the fraction of latents with a twin above `THRESHOLD` in another expert, and, threshold-free, the mean of
# each latent's best cosine in another expert. If a variant lets experts stop relearning each other's features,
# both fall.

# %%
duplicates = {}
for name in list(configs)[1:]:
    cfg = configs[name]
    duplicates[name] = analysis.routed_duplicates(trained[name].W_dec.detach().cpu(), cfg.n_experts, cfg.d_routed,
                                                  THRESHOLD)
    print(f"{name:14s} twins (cos > {THRESHOLD}) {duplicates[name].twins:6.2%}   mean best cosine in another "
          f"expert {duplicates[name].mean_best_cos:.3f}")
for name in list(configs)[2:]:
    change = duplicates[name].mean_best_cos - duplicates[switch_name].mean_best_cos
    reading = "no clear change in" if abs(change) < NO_CHANGE else "less" if change < 0 else "more"
    print(f"{name}: mean best cosine {change:+.3f} vs {switch_name} ({reading} duplication among routed "
          f"experts; changes under NO_CHANGE = {NO_CHANGE} count as none)")

# %% [markdown]
# ## 6 · What does the shared expert learn?
#
# If it holds the features every token needs, more of its latents are **dense**, firing on a large share of the
# tokens they see (for a routed latent: its own expert's tokens, the only ones it can fire on), and its activation
# mass leans to the most common tokens. Mean firing rates cannot tell: a TopK of `K_SHARED` over `SHARED` latents
# fires `K_SHARED / SHARED` of them per token on average, fixed by the config, just as a routed expert fires
# `k / d_expert`. What can differ is the spread: a few dense latents, or many rare ones.
# `analysis.shared_expert_use` measures both on the held-out activations. (A natural guess is that it takes the
# BOS and common-token features. Our harvest drops the BOS position, whose residual norm is an outlier
# (chapter 00), so the common tokens are what is left to ask about.)

# %%
shared_name = f"shared + E={N_EXPERTS}"
shared_cfg = configs[shared_name]
shared_codes = analysis.encode_all(trained[shared_name], held_out)
use = analysis.shared_expert_use(shared_codes, shared_cfg.d_sae, shared_cfg.shared_expert, shared_cfg.n_experts,
                                 held_tokens)
shared_verdict = analysis.shared_expert_verdict(use)
print(shared_verdict)
common = torch.bincount(held_tokens).topk(use.common_tokens).indices.tolist()
print("the common tokens:", ", ".join(repr(model.tokenizer.decode([t])) for t in common))

fig, ax = plt.subplots(figsize=(6, 3.5))
for rates, label in ((use.routed_rates, "routed latents (over their expert's tokens)"),
                     (use.shared_rates, "shared latents (over all tokens)")):
    ax.hist(rates.clamp_min(1e-5).log10().numpy(), bins=50, histtype="step", density=True, label=label)
ax.axvline(math.log10(use.dense_rate), color="k", ls="--", lw=1)
ax.set(xlabel="log10 fraction of the tokens a latent sees that it fires on", ylabel="density",
       title=f"Dense latents (right of the line, > {use.dense_rate:.0%}): shared vs routed")
ax.legend()

# %% [markdown]
# **Question 7.b** The shared expert takes `K_SHARED` of every token's `K` active latents. Suppose its latents do
# hold common features. Why could the SAE still reconstruct worse than the plain Switch SAE at equal FLOPs?

# %% [markdown] tags=["answer-key"]
# <details><summary>Answer</summary>
#
# Two costs come with it. The routed experts lose width: at equal FLOPs the shared expert's `SHARED` latents come
# out of each token's encoder budget, so every routed expert is narrower (the ledger's `d_expert`). And the
# routed TopK gets `K - K_SHARED` latents instead of `K`, even for tokens that need few common features: a fixed
# split of the L0 cannot follow the token. If the shared latents save less than that, the SAE loses, which is
# what the reference repository found at matched per-token width.
# </details>

# %% [markdown]
# **Takeaways**, printed from this run's numbers:

# %%
better = [name for name, won in verdicts.items() if won]
print(f"- At equal FLOPs, {len(better)}/{len(verdicts)} variants reconstruct better than the plain Switch SAE"
      f"{': ' + ', '.join(better) if better else ''}.")
for name in list(configs)[2:]:
    print(f"- {name}: mean best cosine in another routed expert {duplicates[name].mean_best_cos:.3f} vs "
          f"{duplicates[switch_name].mean_best_cos:.3f} for the plain Switch SAE.")
print(f"- {shared_verdict}")

# %% [markdown]
# ## Where next
#
# - Change `TOP_E`, `SHARED` and `K_SHARED` in the config cell: a wider shared expert, or more of the L0 for it.
# - `SAEConfig(..., gate="heaviside")` with a shared expert comes close to the reference repository's other arm
#   (which took one TopK over both experts).
# - The variants train with data parallelism too (`python -m switch_sae_mini distributed --mode ddp
#   --shared-expert ... --k-shared ...`); expert parallelism shards top-1 routed experts only.
