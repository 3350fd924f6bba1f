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
# # 00 · Activations: what a sparse autoencoder will read
#
# **Learning objectives**
# - Load a GPT-2-architecture model through transformer-lens and read its residual stream at a hook point.
# - See three facts that shape SAE training: residual norms grow with depth, the first position is an outlier,
#   and activations carry a large shared offset.
# - Build the shuffled activation buffer that feeds every SAE in this series, with metadata for each token.
#
# **Prerequisites:** Python and PyTorch basics; what a transformer's residual stream is.
#
# **Runtime** (AMD EPYC with AVX-512, 2 cores, bundled model; `python scripts/time_notebooks.py --cold`, the series in
# order from an empty course cache): FAST 0.2 min · default 0.7 min.
# On one GPU with `MODEL = "gpt2"`: ≈ 1 min (estimate).

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

device = ssm.notebook.setup(seed=0)

# %% [markdown]
# ## 1 · Config — the only cell you should need to edit
#
# The series runs offline on a CPU with a small GPT-2 trained for this project on the bundled corpus
# (`MODEL = "tiny-gpt2"`). `MODEL = "gpt2"` loads GPT-2 small from the Hugging Face hub — the paper's model — and
# the same code runs unchanged (use a GPU).

# %%
FAST = ssm.notebook.fast()
MODEL = "tiny-gpt2"
N_TOKENS = 50_000 if FAST else 400_000     # activations to harvest for the statistics below
N_CONTEXTS_STATS = 32 if FAST else 128     # contexts for the per-layer / per-position norms

# %% [markdown]
# ## 2 · The model and its hook points

# %%
model = ssm.load_model(MODEL, device=device)
hook = ssm.models.default_hook(model)
print(f"{MODEL}: {model.cfg.n_layers} layers, d_model={model.cfg.d_model}, n_ctx={model.cfg.n_ctx}, "
      f"vocab={model.cfg.d_vocab}; default hook: {hook}")
print(model.to_str_tokens("Hello world! The quick brown fox."))

# %% [markdown]
# The tokenizer is GPT-2's real byte-pair encoding, so the tokens above are exactly what GPT-2 sees. The default
# hook is the residual stream after a block two thirds of the way up — for GPT-2 small that is
# `blocks.8.hook_resid_post`, the paper's choice; for the 4-layer bundled model, block 2.
#
# ## 3 · Residual-stream norms by layer and position

# %%
eval_tokens = ssm.evaluation.make_eval_tokens(model, n_contexts=N_CONTEXTS_STATS)
names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
with torch.no_grad():
    _, cache = model.run_with_cache(eval_tokens.tokens.to(device), names_filter=lambda n: n in names)
norms = torch.stack([cache[n].norm(dim=-1) for n in names])  # [layer, context, position]
mask = torch.arange(eval_tokens.tokens.shape[1])[None] < eval_tokens.n_filled[:, None]  # not padding

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
ax1.plot(range(model.cfg.n_layers), [norms[i][:, 1:][mask[:, 1:]].mean() for i in range(len(names))], "o-",
         label="text tokens")
ax1.plot(range(model.cfg.n_layers), [norms[i][:, 0].mean() for i in range(len(names))], "s--",
         label="position 0 (BOS)")
ax1.set(xlabel="layer (resid_post)", ylabel="mean L2 norm", title="Residual norm by layer")
ax1.legend()
layer = int(hook.split(".")[1])
per_position = (norms[layer] * mask).sum(0) / mask.sum(0).clamp_min(1)
ax2.plot(per_position.tolist())
ax2.set(xlabel="position in context", ylabel="mean L2 norm", title=f"Norm by position at {hook}", yscale="log")
fig.tight_layout()

# %% [markdown]
# Norms grow with depth, and position 0 — which always holds the BOS token `<|endoftext|>` here — looks nothing like
# the others (for real GPT-2 its norm is many times larger). An SAE trained on it would spend capacity on one
# outlier, so the buffer **drops BOS positions** by default. Padding positions are dropped too.
#
# ## 4 · The activation buffer
#
# `ActivationBuffer` tokenises documents into fixed-length contexts, runs the model only up to the hook
# (`stop_at_layer`, so later blocks cost nothing), keeps a pool of activations from many contexts, shuffles them
# (neighbouring tokens are highly correlated; SAEs train better on shuffled batches), refills when half consumed,
# and yields `[batch, d_in]` batches. With `with_metadata=True` each activation carries its document, position,
# token id and domain.

# %%
buffer = ssm.activations.ActivationBuffer(model, hook=hook, batch_size=4096, n_contexts=256, seed=0)
x, meta = next(buffer.batches(n_tokens=4096, with_metadata=True))
print(f"batch {tuple(x.shape)} {x.dtype}; domains: {buffer.domains}")
print("first rows:", [(int(d), int(p), model.tokenizer.decode([int(t)]), buffer.domains[int(dom)])
                      for d, p, t, dom in zip(meta.doc_id[:4], meta.position[:4], meta.token_id[:4], meta.domain[:4])])

# %% [markdown]
# ## 5 · The shared offset and the domains
#
# Residual activations are not centred: their mean vector is large compared with their spread. This is why SAEs
# subtract a learned $b_{dec}$ before encoding (chapter 02 initialises it at the geometric median). The corpus
# mixes three domains; their activations differ in norm and direction — later chapters ask whether Switch SAE
# experts specialise by domain.

# %%
acts, meta, _ = ssm.notebook.harvest(model, N_TOKENS, hook=hook)
mean = acts.mean(0)
print(f"mean norm of activations {acts.norm(dim=-1).mean():.2f}; norm of the mean vector {mean.norm():.2f}; "
      f"typical distance to the mean {(acts - mean).norm(dim=-1).mean():.2f}")
fig, ax = plt.subplots(figsize=(6, 3.5))
for d, name in enumerate(buffer.domains):
    sel = meta.domain == d
    ax.hist(acts[sel].norm(dim=-1).numpy(), bins=60, alpha=0.5, density=True,
            label=f"{name} ({int(sel.sum()):,} tokens)")
ax.set(xlabel="L2 norm of the activation", ylabel="density", title=f"Activation norms by domain at {hook}")
ax.legend()

# %%
domain_means = torch.stack([acts[meta.domain == d].mean(0) - mean for d in range(len(buffer.domains))])
cos = torch.nn.functional.cosine_similarity(domain_means[:, None], domain_means[None], dim=-1)
print("cosine between domain mean offsets (after removing the global mean):")
for name, row in zip(buffer.domains, cos.tolist()):
    print(f"  {name:12s}", " ".join(f"{v:+.2f}" for v in row))

# %% [markdown]
# Different domains push the residual stream in different directions — a router can use that.
#
# **Takeaways**
# - `ssm.load_model` gives a transformer-lens model; the bundled one is offline, `"gpt2"` is the paper's.
# - SAEs read one hook point; we drop BOS/padding, shuffle across contexts, and keep per-token metadata.
# - Activations have a large shared offset and domain structure.
