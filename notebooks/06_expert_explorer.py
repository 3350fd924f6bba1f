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
# # 06 · Expert explorer: what does each expert do?
#
# **Learning objectives**
# - Browse a Switch SAE expert by expert: its share of tokens, its domain mix (Shakespeare / Python docs /
#   Bible), the tokens routed to it most often and its most active features.
# - Read one feature: top-activating contexts highlighted by strength, its activation histogram, its nearest
#   decoder directions in other experts (duplicates marked) and its direct logit effect.
# - Type any text and see, per token, the expert it is routed to, the router probability and the features that
#   fire.
# - Compare feature duplication across experts for E = 8 and E = 32, side by side.
# - See how an interactive view is built: precomputed data plus one tested analysis function per control.
#
# **Prerequisites:** 03 (Switch SAEs) and 05 (feature analysis): the explorer calls chapter 5's functions.
#
# **Runtime** (AMD EPYC with AVX-512, 2 cores, bundled model; `python scripts/time_notebooks.py --cold`, the series in
# order from an empty course cache): FAST 0.1 min · default 0.2 min.
# Its two SAEs are chapter 05's, read from the course cache; on its own (`--alone`) it trains them: default
# 1.9 min.
# On one GPU with `MODEL = "gpt2"`: ≈ 5 min (estimate).

# %% [markdown]
# ## 0 · Setup

# %%
import os
import sys
from pathlib import Path

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:  # install the release this notebook was written for (set SSM_REPO_URL to your fork if needed)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    os.environ.get("SSM_REPO_URL", "git+https://github.com/switch-sae-mini/switch_sae_mini@v0.2.0")],
                   check=True)
    from google.colab import output
    output.enable_custom_widget_manager()  # Colab needs this for ipywidgets 8

import switch_sae_mini as ssm
from switch_sae_mini.analysis.explorer import ExplorerData, expert_explorer, interaction_latency

device = ssm.notebook.setup(seed=0)

# %% [markdown]
# ## 1 · Config — the only cell you should need to edit

# %%
FAST = ssm.notebook.fast()
MODEL = "tiny-gpt2"                       # bundled 4-layer GPT-2 (d_model 128); "gpt2" for GPT-2 small
N_TOKENS = 200_000 if FAST else 1_500_000  # training activations
D_SAE = 1024 if FAST else 4096            # total latents of each SAE
EXPERTS = [8, 32]                         # the two SAEs; the Compare tab puts them side by side
K = 16
STEPS = 150 if FAST else 1500
BATCH = 1024
LR = 1e-3
N_EXPLORE = 20_000 if FAST else 60_000    # held-out tokens, in document order, behind every view (at most)
CONTEXTS_PER_DOC = 3 if FAST else 8       # 128-token contexts taken per validation document (spreads domains)
CHECKPOINT_DIR = None                     # e.g. "checkpoints/explorer": load SAEs there (else train, save)
CHAPTER_05_HELD_OUT = 20_000 if FAST else 100_000  # chapter 05's split: the same SAEs, read from the course cache

# %% [markdown]
# ## 2 · Two Switch SAEs: trained here, or loaded from a checkpoint
#
# Both have the same width and k; only the number of experts differs, so every difference you see in the
# explorer comes from routing. With `CHECKPOINT_DIR` set, a second run loads them instead of training. They are
# chapter 05's E=8 and E=32 SAEs (the same data split, config and steps), so after chapter 05 `train_once` reads
# them from the course cache.

# %%
model = ssm.load_model(MODEL, device=device)
saes, train_acts = {}, None
for n_experts in EXPERTS:
    path = Path(CHECKPOINT_DIR) / f"switch_E{n_experts}" if CHECKPOINT_DIR else None
    if path is not None and ssm.has_checkpoint(path):
        saes[f"E={n_experts}"] = ssm.load(path, device=device)
        print(f"E={n_experts:<3} loaded from {path}")
        continue
    if train_acts is None:
        train_acts = ssm.notebook.harvest(model, N_TOKENS)[0][CHAPTER_05_HELD_OUT:]
    cfg = ssm.SAEConfig(arch="switch", d_in=train_acts.shape[1], d_sae=D_SAE, k=K, n_experts=n_experts)
    sae = ssm.notebook.train_once(cfg, train_acts, BATCH, ssm.TrainConfig(n_steps=STEPS, lr=LR, log_every=STEPS)).sae
    saes[f"E={n_experts}"] = sae
    if path is not None:
        ssm.save(sae, path)
    fvu = ssm.metrics.evaluate_sae(sae, train_acts[:8192].split(4096))["fvu"]
    print(f"E={n_experts:<3} trained; FVU on training activations {fvu:.4f}")

# %% [markdown]
# ## 3 · Precompute once, answer every click from memory
#
# An interaction must answer in well under a second, so everything that touches many tokens happens here,
# once: held-out validation text is run through the model **in document order** (so each token's neighbours
# are known and a context can be shown with every token's activation), encoded by both SAEs, and each SAE's
# decoder neighbours, feature statistics, expert usage and domain profile are computed (chapter 5's
# functions). The bar shows progress.

# %%
data = ExplorerData.build(model, saes, n_tokens=N_EXPLORE, contexts_per_doc=CONTEXTS_PER_DOC)
print(f"{len(data.meta.doc_id):,} held-out tokens from {len(data.meta.doc_id.unique())} documents; "
      f"domains {data.domain_labels()}")

# %% [markdown]
# ## 4 · The explorer
#
# - **Experts**: pick an expert. The columns on top are all experts' token shares, coloured by domain; the
#   outlined one is selected. Below: its domain mix, the tokens it receives most often (lift = how
#   over-represented a token is there) and its most frequently firing features.
# - **Feature**: type a feature index (the explorer opens on the busiest expert's most frequent feature).
#   Orange marks how strongly each token of a context activates it (hover for the value); the underlined token
#   is the peak. Neighbours are the closest decoder directions in *other* experts; cosine > 0.9 is marked as a
#   duplicate.
# - **Text**: type anything; each token's expert, router probability and strongest features appear.
# - **Compare**: the duplication view for two SAEs side by side; move the threshold.
# - **SAE** (top left) switches the first three tabs between the two SAEs.
#
# Without a running kernel (e.g. this notebook exported to HTML) you see a static summary instead.

# %%
app = expert_explorer(data)
app

# %% [markdown]
# ## 5 · Under the hood: every control is one tested function
#
# Each callback reads one `ExplorerData` method, which calls the analysis functions of chapter 5
# (`switch_sae_mini.analysis`, each unit-tested); the widget only renders HTML. You can call them directly — and
# drive the widget from code, which is how `tests/test_widgets.py` checks it.

# %%
small = data.view(f"E={EXPERTS[0]}")
quiet = int(small.usage.argmin())
app.expert_selector.value = quiet  # the widget above now shows the least used expert
view = data.expert_view(small.name, quiet)
print(f"expert {quiet}: {view.share:.1%} of tokens; domains "
      + ", ".join(f"{d} {s:.0%}" for d, s in view.profile.items()))
print("tokens routed here most:", [t for t, _, _ in view.top_tokens[:6]])

feature = view.top_features[0].feature if view.top_features else 0
fv = data.feature_view(small.name, feature)
print(f"feature {feature}: fires on {fv.frequency:.2%} of tokens; strongest context:",
      repr("".join(fv.contexts[0][0])) if fv.contexts else "none")
print("nearest in other experts:", [(n.feature, n.expert, round(n.cos, 3)) for n in fv.neighbours[:3]])
print("promotes", fv.promoted[:5], "suppresses", fv.suppressed[:5])

# %%
for name in saes:
    stats = data.duplication_view(name, threshold=0.9)
    print(f"{name:5} duplicates across experts: {stats.fraction:6.2%}   "
          f"mean nearest cosine {stats.mean_cos:.3f}")

# %% [markdown]
# ### Responsiveness
#
# A second, undisplayed explorer is driven from code: each control changed three times, the worst time kept.
# The target is well under a second per interaction; only the Text tab runs the model (on the typed text).

# %% tags=["nbval-ignore-output"]
probe = expert_explorer(data)
for name, seconds in interaction_latency(probe).items():
    print(f"{name:8} {seconds * 1000:6.1f} ms")

# %% [markdown]
# ## 6 · Things to try
#
# 1. Find an expert whose domain mix is almost one colour. Are its top tokens what you expect of that domain?
# 2. Pick a feature with a duplicate in another expert. Do both twins fire on similar contexts? (Switch to the
#    twin's index.) Why must a Switch SAE learn such a feature twice?
# 3. In the Text tab, type a line of Python and a line of Shakespeare. Do their tokens go to different
#    experts? Where is the router unsure (probability close to 1/E)?
# 4. In Compare, is the duplicate fraction higher for E = 32 than for E = 8, as chapter 5 found?
#
# **Takeaways**
# - Experts are readable units: a share of tokens, a domain mix, typical tokens and a set of features.
# - Duplicated features across experts are directly visible as decoder twins — the parameter cost of routing.
# - Interactive tools stay fast by precomputing the expensive parts once; each view is a small tested
#   function.
