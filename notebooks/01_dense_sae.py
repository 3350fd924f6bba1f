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
# # 01 · A dense sparse autoencoder: ReLU + L1
#
# **Learning objectives**
# - Build a ReLU sparse autoencoder (SAE) from your own parts (initialisation, encoder, loss, Adam, the L1
#   warm-up), train it, and see it match the package's within a stated tolerance.
# - See the reconstruction–sparsity trade-off that the L1 coefficient controls.
# - Meet *dead latents*, the waste that later chapters fight.
#
# **Prerequisites:** 00 (the residual stream and the activation buffer); PyTorch basics.
#
# **Runtime** (AMD EPYC with AVX-512, 2 cores, bundled model; `python scripts/time_notebooks.py --cold`, the series in
# order from an empty course cache): FAST 0.3 min · default 5.4 min.
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


# %% [markdown]
# <details><summary>Hint</summary>
#
# `W_dec.norm(dim=-1)` gives one norm per latent, shape `[d_sae]`; it broadcasts against `latents`.
# Sum over latents (`dim=-1`), then average over tokens.
# </details>

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
# ### Exercise 1.2 — initialise the SAE
# > Difficulty ●○○○○ · Importance ●●○○○ · ~10 min
#
# Return `(W_enc, b_enc, W_dec, b_dec)` with shapes `[d_in, d_sae]`, `[d_sae]`, `[d_sae, d_in]` and `[d_in]`, as
# the recipe starts them: decoder rows of norm 0.1 in random directions, the encoder *tied* at init (a copy of
# `W_dec` transposed; the two are trained separately after that), both biases zero. Draw the directions with
# `torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(seed))`: the same draw as the package's
# `ReLUSAE` after `torch.manual_seed(seed)`, so later your SAE and the package's start from the same weights.

# %% nbgrader={"grade": false, "grade_id": "relu_init", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu_init(d_in: int, d_sae: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    ### BEGIN SOLUTION
    W_dec = torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(seed))
    W_dec = 0.1 * W_dec / W_dec.norm(dim=-1, keepdim=True)
    return W_dec.t().clone(), torch.zeros(d_sae), W_dec, torch.zeros(d_in)
    ### END SOLUTION


# %% [markdown]
# <details><summary>Hint</summary>
#
# `W / W.norm(dim=-1, keepdim=True)` gives unit rows. `.t()` alone is a *view* of the same memory: `.clone()` it,
# or a step on one matrix would move the other.
# </details>

# %% nbgrader={"grade": true, "grade_id": "check_relu_init", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_relu_init(relu_init)

# %% [markdown]
# ### Exercise 1.3 — the encoder
# > Difficulty ●○○○○ · Importance ●●●●○ · ~5 min
#
# Return the latents $f = \mathrm{ReLU}(x W_{enc} + b_{enc})$, shape `[batch, d_sae]`, for `x` `[batch, d_in]`,
# `W_enc` `[d_in, d_sae]` and `b_enc` `[d_sae]`. (This recipe has no pre-encoder bias: $x$ is not centred by
# $b_{dec}$ first. TopK and Switch SAEs centre it: chapters 02 and 03.)

# %% nbgrader={"grade": false, "grade_id": "relu_encode", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu_encode(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return torch.relu(x @ W_enc + b_enc)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_relu_encode", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_relu_encode(relu_encode)

# %% [markdown]
# ### Exercise 1.4 — the loss
# > Difficulty ●●○○○ · Importance ●●●●● · ~15 min
#
# Return `(loss, mse, l1)` for a batch `x` `[batch, d_in]`: `mse` the per-element MSE of the reconstruction
# $\hat x = f W_{dec} + b_{dec}$, `l1` your `l1_penalty(f, W_dec)` divided by $d_{in}$, and
# `loss = mse + l1_coeff * l1`. Use your `relu_encode` and `l1_penalty`; keep all three in the autograd graph.

# %% nbgrader={"grade": false, "grade_id": "relu_sae_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu_sae_loss(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor,
                  b_dec: torch.Tensor, l1_coeff: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ### BEGIN SOLUTION
    latents = relu_encode(x, W_enc, b_enc)
    x_hat = latents @ W_dec + b_dec
    mse = (x_hat - x).pow(2).mean()
    l1 = l1_penalty(latents, W_dec) / x.shape[-1]
    return mse + l1_coeff * l1, mse, l1
    ### END SOLUTION


# %% [markdown]
# <details><summary>Hint</summary>
#
# `(x_hat - x).pow(2).mean()` averages over tokens *and* dimensions: that is the per-element MSE. If
# `check_relu_sae_loss` names exercise 1.1 or 1.3, fix that exercise first: the loss is built on them.
# </details>

# %% nbgrader={"grade": true, "grade_id": "check_relu_sae_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_relu_sae_loss(relu_sae_loss)

# %% [markdown]
# Your parts make a whole ReLU SAE. Next to the package's `ReLUSAE` (`switch_sae_mini/saes/relu.py`), built after
# `torch.manual_seed(0)`, your `relu_init(..., seed=0)` must give the same weights and your `relu_sae_loss` the
# same loss: the package is the same few lines. (If an exercise above is not done yet, the second cell fails;
# nothing below depends on it.)

# %% tags=["skip-in-grading"]
cfg = ssm.SAEConfig(arch="relu", d_in=acts.shape[1], d_sae=D_SAE, l1_coeff=8.0)
torch.manual_seed(0)
sae = ssm.make_sae(cfg)
x = held_out[:256]

# %% tags=["skip-in-grading"]
init = relu_init(cfg.d_in, cfg.d_sae, seed=0)
same_init = all(torch.equal(mine, theirs.detach()) for mine, theirs in zip(init, (sae.W_enc, sae.b_enc, sae.W_dec,
                                                                                   sae.b_dec)))
yours, package = relu_sae_loss(x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, cfg.l1_coeff)[0], sae(x).loss
print(f"init: {'the same weights' if same_init else 'DIFFERENT weights (recheck 1.2)'};  "
      f"loss: yours {yours.item():.5f}, the package's {package.item():.5f} "
      f"({'equal' if torch.allclose(yours, package) else 'DIFFERENT: recheck 1.4'})")

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

# %% tags=["skip-in-grading"]
train_cfg = ssm.TrainConfig(n_steps=STEPS, lr=LR, log_every=max(1, STEPS // 30))
result = ssm.notebook.train_once(cfg, train_acts, BATCH, train_cfg, progress=True)
ssm.metrics.evaluate_sae(result.sae, held_out.split(2048))

# %% tags=["skip-in-grading"]
ssm.plotting.plot_history({f"λ={cfg.l1_coeff}": result.history}, keys=("fvu", "l0", "l1_loss"),
                          title="ReLU SAE training on the bundled model's residual stream")

# %% [markdown]
# L0 first rises (the L1 penalty is still warming up), then falls as the penalty bites, while FVU keeps dropping.
# The SAE is trading reconstruction against sparsity, and λ sets the exchange rate.
#
# ### Exercise 1.5 — the fraction of variance unexplained
# > Difficulty ●○○○○ · Importance ●●●●○ · ~10 min
#
# Every chapter reads FVU, so write it once yourself: for activations `x` and reconstructions `x_hat`, both
# `[batch, d_in]`, return $\sum_t \lVert x_t - \hat x_t\rVert^2 / \sum_t \lVert x_t - \bar x\rVert^2$ as a Python
# float, where $\bar x$ is the mean activation over the batch's tokens (one mean per dimension).

# %% nbgrader={"grade": false, "grade_id": "fvu", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    ### BEGIN SOLUTION
    return float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    ### END SOLUTION


# %% [markdown]
# <details><summary>Hint</summary>
#
# `x.mean(0)` is the `[d_in]` mean over tokens. Why centre at all: chapter 00 showed that the residual stream has a
# large shared offset; without centring, even predicting that offset alone would look like a good reconstruction.
# </details>

# %% nbgrader={"grade": true, "grade_id": "check_fvu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_fvu(fvu)

# %% tags=["skip-in-grading"]
with torch.no_grad():
    x_eval = held_out[:4096]
    yours = fvu(x_eval, result.sae(x_eval).x_hat)
    package = ssm.metrics.fvu(result.sae(x_eval).x_hat, x_eval)
print(f"held-out FVU of section 4's SAE: yours {yours:.5f}, the package's {package:.5f}")

# %% [markdown]
# ## 5 · Your own training step
#
# `ssm.train` hides two pieces you now write yourself: the optimizer, and the L1 warm-up. Then you train an SAE
# made entirely of your functions and compare it with the one above.
#
# ### Exercise 1.6 — one Adam update
# > Difficulty ●●○○○ · Importance ●●●○○ · ~15 min
#
# Adam (Kingma & Ba 2015), the optimizer of the paper's recipe, keeps two running averages per parameter entry:
# `exp_avg` $m$ of the gradient $g$ and `exp_avg_sq` $v$ of its square. One update at step $t$, counted from 1,
# with $\beta_1 = 0.9$, $\beta_2 = 0.999$ and $\varepsilon = 10^{-8}$:
#
# $$m \leftarrow \beta_1 m + (1-\beta_1)\,g, \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2, \qquad
#   \theta \leftarrow \theta - \mathrm{lr}\; \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \varepsilon}.$$
#
# Return the new `(param, exp_avg, exp_avg_sq)`, each with the parameter's shape.

# %% nbgrader={"grade": false, "grade_id": "adam_update", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adam_update(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                step: int, lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    ### BEGIN SOLUTION
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), exp_avg, exp_avg_sq
    ### END SOLUTION


# %% [markdown]
# <details><summary>Hint</summary>
#
# The divisions by $1-\beta^t$ are the *bias corrections*: both averages start at 0, so without them the first
# steps would use averages that are far too small. $\varepsilon$ sits outside the square root, as in
# `torch.optim.Adam`.
# </details>

# %% nbgrader={"grade": true, "grade_id": "check_adam_update", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_adam_update(adam_update)

# %% [markdown]
# **Question 1.b** At the first step ($t = 1$, $m = v = 0$), how far does each parameter entry move, whatever the
# size of its gradient? And what happens to Adam's updates if the whole loss is multiplied by a constant $c > 0$
# (as the package does when it divides both loss terms by $d_{in}$)?

# %% [markdown] tags=["answer-key"]
# <details><summary>Answer</summary>
#
# At $t = 1$ the corrected averages are $\hat m = g$ and $\hat v = g^2$, so the step is
# $\mathrm{lr}\cdot g/(|g| + \varepsilon) \approx \mathrm{lr}\cdot\mathrm{sign}(g)$: every entry with a non-negligible
# gradient moves by about lr, whether its gradient is $10^{-6}$ or $10^{3}$. Multiplying the loss by $c$ multiplies
# $g$ and $m$ by $c$ and $\sqrt v$ by $c$, so the update is unchanged (up to $\varepsilon$). That is why dividing
# both loss terms by $d_{in}$ changes Adam's steps so little: only the meaning of the coefficients changes, and the
# package keeps the paper's. (One exception in our recipe: gradient clipping at norm 1.0 has its threshold in
# gradient units, so a rescaled loss changes when clipping binds.) lr is a step size in parameter units, not a
# multiplier of the loss.
# </details>

# %% [markdown]
# ### Exercise 1.7 — the L1 warm-up
# > Difficulty ●○○○○ · Importance ●●○○○ · ~5 min
#
# The recipe does not apply the full L1 penalty from the first step: it ramps the coefficient up linearly over the
# first `warmup_frac` of the steps (`TrainConfig.l1_warmup`, 5 % by default), while the encoder is still finding
# directions. Return the factor on `l1_coeff` at the 0-based `step`: $\min(1, (\mathrm{step}+1)/W)$ with
# $W = \max(1, \lfloor \mathrm{warmup\_frac} \cdot \mathrm{n\_steps} \rfloor)$, and 1 when `warmup_frac` is 0 (no
# warm-up). The result is a Python float.

# %% nbgrader={"grade": false, "grade_id": "l1_warmup_scale", "locked": false, "schema_version": 3, "solution": true, "task": false}
def l1_warmup_scale(step: int, n_steps: int, warmup_frac: float) -> float:
    ### BEGIN SOLUTION
    if warmup_frac <= 0:
        return 1.0
    return min(1.0, (step + 1) / max(1, int(warmup_frac * n_steps)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_l1_warmup_scale", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
checks.check_l1_warmup_scale(l1_warmup_scale)

# %% [markdown]
# ### Your ReLU SAE, trained
#
# `train_learner_relu` (`switch_sae_mini/classroom/relu_parts.py`) is the package's training loop for a ReLU SAE
# with six of your functions in it: your initialisation, your loss (through your encoder and L1 penalty),
# your warm-up and your Adam. Only gradient clipping and the learning-rate decay of the last 20 % of steps stay the
# package's. It trains from the same seed on the same batches as section 4's `result`, so the two should end in
# the same place: the float32 rounding of two Adam implementations differs, so the weights are not bit-identical,
# and the tolerance is on the held-out FVU. If one of your exercises still fails its check, set its entry of
# `USE_REFERENCE` to `True`: the package's version stands in for it and the rest is still yours.

# %% tags=["skip-in-grading"]
from switch_sae_mini.classroom.relu_parts import train_learner_relu

USE_REFERENCE = {"l1_penalty": False, "relu_init": False, "relu_encode": False, "relu_sae_loss": False,
                 "adam_update": False, "l1_warmup_scale": False}
mine = train_learner_relu(cfg, ssm.notebook.shuffled_batches(train_acts, BATCH), train_cfg, progress=True,
                          relu_init=relu_init, relu_encode=relu_encode, l1_penalty=l1_penalty,
                          relu_sae_loss=relu_sae_loss, adam_update=adam_update, l1_warmup_scale=l1_warmup_scale,
                          use_reference=USE_REFERENCE)
gap = ssm.notebook.compare_with_package(mine.sae, result.sae, held_out, STEPS, USE_REFERENCE)

# %% [markdown]
# ## 6 · The trade-off: sweep λ
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
# ## 7 · Dead latents
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
# - Training it is a loop of forward, backward, clip and one Adam update per parameter: you wrote every part.
# - The decoder-norm weighting keeps the penalty honest.
# - Sparsity is controlled only indirectly (λ), and some latents die.
