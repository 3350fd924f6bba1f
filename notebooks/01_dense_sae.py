# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · A dense sparse autoencoder: ReLU + L1
#
# **Learning objectives**
# - Write the forward pass and loss of a ReLU sparse autoencoder (SAE) and check it against the package.
# - See the reconstruction–sparsity trade-off that the L1 coefficient controls.
# - Meet *dead latents*, the waste that later chapters fight.
#
# **Prerequisites:** 00 (the residual stream and the activation buffer); PyTorch basics.
#
# **Runtime** (AMD EPYC, 2 cores, bundled model; `python scripts/time_notebooks.py --cold`, the series in
# order from an empty course cache): FAST 0.3 min · default 6.2 min.
# It fills the course cache with the activations and the ReLU sweep that chapter 02 reads back.
# On one GPU with `MODEL = "gpt2"`: ≈ 2 min (estimate).

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

import torch

import switch_sae_mini as ssm
from switch_sae_mini import checks

device = ssm.notebook.setup(seed=0)

# %% [markdown]
# ## 1 · Config — the only cell you should need to edit
#
# `FAST` is set by `make test` (CI): it shrinks tokens, widths and steps but runs every cell.
# `MODEL = "gpt2"` reproduces the paper's setting (GPT-2 small) if you have the Hugging Face hub and a GPU.

# %%
FAST = ssm.notebook.fast()
MODEL = "tiny-gpt2"                       # bundled 4-layer GPT-2 (d_model 128); "gpt2" for GPT-2 small
N_TOKENS = 150_000 if FAST else 1_500_000  # activations harvested once, shared by every SAE below
D_SAE = 512 if FAST else 2048             # dictionary size (16 × d_in for the bundled model)
STEPS = 150 if FAST else 1500             # optimizer steps per SAE
BATCH = 1024                              # activations per step
LR = 1e-3                                 # larger than the paper's 5e-5: our runs are ~500x shorter
L1_COEFFS = [2, 8, 32] if FAST else [1, 2, 4, 8, 16, 32]

# %% [markdown]
# ## 2 · Activations
#
# We run the language model over the bundled corpus (Shakespeare, the Python docs, the King James Bible) and keep
# the residual stream at the default hook, dropping the BOS position (chapter 00 explains why). The same tensor
# feeds every SAE in this notebook, so differences between SAEs come from the SAEs, not the data. `harvest` keeps
# the activations in the course's cache on disk (`~/.cache/switch_sae_mini`, or the folder named by
# `SWITCH_SAE_MINI_CACHE`; `off` disables it): later chapters that ask for the same tokens read them back instead of
# running the model again, and get exactly the same rows.

# %% tags=["skip-in-grading"]
model = ssm.load_model(MODEL, device=device)
acts, meta, buffer = ssm.notebook.harvest(model, N_TOKENS)
held_out, train_acts = acts[:8192], acts[8192:]
print(f"hook={buffer.hook}  activations={tuple(acts.shape)}  mean norm={acts.norm(dim=-1).mean():.1f}")

# %% [markdown]
# ## 3 · The ReLU SAE
#
# An SAE writes an activation $x \in \mathbb{R}^{d_{in}}$ as a sparse, non-negative combination of learned
# directions (the rows of $W_{dec}$, "features"):
#
# $$f = \mathrm{ReLU}(x W_{enc} + b_{enc}) \in \mathbb{R}^{d_{sae}}, \qquad \hat x = f\, W_{dec} + b_{dec}.$$
#
# Training minimises reconstruction error plus an L1 penalty that pushes most $f_j$ to zero. The L1 term is
# weighted by each decoder row's norm: without it, the SAE could shrink $f$ and grow $W_{dec}$ and pay no penalty
# (Anthropic's "April 2024 update" recipe, which the paper uses as its ReLU baseline):
#
# $$\mathcal L = \underbrace{\tfrac{1}{d_{in}}\lVert x-\hat x\rVert^2}_{\text{per-element MSE}}
#   + \lambda\,\tfrac{1}{d_{in}} \sum_j f_j \lVert W_{dec}[j]\rVert .$$
#
# (The package divides the paper's losses by $d_{in}$, so $\lambda$ means what it means in the paper.)

# %% [markdown]
# ### Exercise 1.1 — the decoder-norm-weighted L1 penalty
# > Difficulty ●○○○○ · Importance ●●●○○ · ~5 min
#
# Return the mean over tokens of $\sum_j f_j \lVert W_{dec}[j] \rVert$ for `latents` `[batch, d_sae]` and
# `W_dec` `[d_sae, d_in]`.

# %% nbgrader={"grade": false, "grade_id": "l1_penalty", "locked": false, "schema_version": 3, "solution": true, "task": false}
def l1_penalty(latents: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return (latents * W_dec.norm(dim=-1)).sum(-1).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_l1_penalty", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_l1_penalty(l1_penalty)

# %% [markdown]
# **Question 1.a** Why weight the L1 penalty by the decoder rows' norms? What would a ReLU SAE trained with a plain
# L1 penalty, and no constraint on $W_{dec}$, do to lower its loss without becoming any sparser?

# %% [markdown] tags=["answer-key"]
# <details><summary>Answer</summary>
#
# Divide latent $j$ by any factor $c > 1$ and multiply row $W_{dec}[j]$ by $c$: the reconstruction is unchanged
# and the plain L1 term falls by $c$. Training would shrink latents and grow decoder rows forever, and the penalty
# would stop measuring sparsity. $\sum_j f_j \lVert W_{dec}[j]\rVert$ is unchanged by that rescaling, so the only
# way to lower it is to use fewer or smaller *contributions* $f_j W_{dec}[j]$. (TopK SAEs fix the norm instead:
# chapter 02.)
# </details>

# %% [markdown]
# <details><summary>Hint</summary>
#
# `W_dec.norm(dim=-1)` gives one norm per latent, shape `[d_sae]`; it broadcasts against `latents`.
# Sum over latents (`dim=-1`), then average over tokens.
# </details>

# %% [markdown]
# Now the whole loss by hand, next to the package's `ReLUSAE` with the same weights. They must agree: the
# package is the same few lines.

# %%
cfg = ssm.SAEConfig(arch="relu", d_in=acts.shape[1], d_sae=D_SAE, l1_coeff=8.0)
sae = ssm.make_sae(cfg)
x = held_out[:256]
latents = torch.relu(x @ sae.W_enc + sae.b_enc)
x_hat = latents @ sae.W_dec + sae.b_dec
by_hand = (x_hat - x).pow(2).mean() + cfg.l1_coeff * l1_penalty(latents, sae.W_dec) / cfg.d_in
print(f"by hand {by_hand.item():.5f}   package {sae(x).loss.item():.5f}")
torch.testing.assert_close(by_hand, sae(x).loss)

# %% [markdown]
# ## 4 · Train one SAE
#
# `ssm.train` runs Adam with the paper's recipe: constant learning rate, linear decay over the last 20 % of steps,
# gradient clipping at 1.0, and an L1 warm-up over the first 5 % of steps for ReLU SAEs. It accepts any iterable
# of `[batch, d_in]` tensors; `shuffled_batches` cycles through our activations in a seeded random order.
# `ssm.notebook.train_once(cfg, train_acts, BATCH, train_cfg)` is exactly
# `ssm.train(cfg, shuffled_batches(train_acts, BATCH), train_cfg)`, and it keeps the trained SAE in the course's
# cache on disk: re-running the cell, or a later chapter asking for the very same SAE (chapter 02 compares TopK with
# this chapter's ReLU sweep), loads it instead of training again. Any change (config, steps, data, the package's
# training code) is a new SAE and trains.
#
# We track **FVU**, the fraction of variance unexplained ($\sum\lVert x-\hat x\rVert^2 / \sum \lVert x - \bar x
# \rVert^2$: 0 is perfect, 1 is no better than predicting the mean), and **L0**, the average number of nonzero
# latents per token.

# %%
train_cfg = ssm.TrainConfig(n_steps=STEPS, lr=LR, log_every=max(1, STEPS // 30))
result = ssm.notebook.train_once(cfg, train_acts, BATCH, train_cfg, progress=True)
ssm.metrics.evaluate_sae(result.sae, held_out.split(2048))

# %%
ssm.plotting.plot_history({f"λ={cfg.l1_coeff}": result.history}, keys=("fvu", "l0", "l1_loss"),
                          title="ReLU SAE training on the bundled model's residual stream")

# %% [markdown]
# L0 first rises (the L1 penalty is still warming up), then falls as the penalty bites, while FVU keeps dropping.
# The SAE is trading reconstruction against sparsity, and λ sets the exchange rate.
#
# ## 5 · The trade-off: sweep λ
#
# Each λ gives one point (L0, FVU). Good SAEs sit low and to the left. Later chapters compare architectures by
# whole curves like this one, never by a single point.

# %%
sweep = {}
for l1_coeff in L1_COEFFS:
    run = ssm.notebook.train_once(cfg.replace(l1_coeff=l1_coeff), train_acts, BATCH, train_cfg)
    sweep[l1_coeff] = (run.sae, ssm.metrics.evaluate_sae(run.sae, held_out.split(2048)))
    print(f"λ={l1_coeff:<5} L0={sweep[l1_coeff][1]['l0']:7.1f}  FVU={sweep[l1_coeff][1]['fvu']:.4f}")

# %%
ssm.plotting.plot_tradeoff({"ReLU SAE (λ sweep)": [(m["l0"], m["fvu"]) for _, m in sweep.values()]},
                           ylabel="FVU (held-out)", title=f"Sparsity vs reconstruction, d_sae={D_SAE}")

# %% [markdown]
# ## 6 · Dead latents
#
# A latent that never fires wastes its row of $W_{enc}$ and $W_{dec}$. With a strong L1 penalty many latents
# die early and never recover: nothing pushes a latent back once its pre-activation is negative for every token.
# We count latents that never fired on the held-out tokens.

# %%
for l1_coeff, (run_sae, m) in sweep.items():
    print(f"λ={l1_coeff:<5} never fired on held-out tokens: {m['never_fired_fraction']:6.1%}   "
          f"fire on >10% of tokens (dense): {m['dense_fraction']:6.1%}")

# %% [markdown]
# Dead latents and the awkward λ knob (you cannot ask for "32 active latents") are why Gao et al. replaced the
# L1 penalty by choosing the top k latents directly. That TopK SAE is the building block of a Switch SAE: next
# chapter.
#
# **Takeaways**
# - An SAE is an encoder, a ReLU and a decoder; the loss trades reconstruction against an L1 sparsity penalty.
# - The decoder-norm weighting keeps the penalty honest.
# - Sparsity is controlled only indirectly (λ), and some latents die.
