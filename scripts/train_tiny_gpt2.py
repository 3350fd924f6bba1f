"""Train the bundled tiny GPT-2 (real GPT-2 architecture and tokenizer) on the bundled corpus, on CPU.

Writes ``switch_sae_mini/assets/tiny_gpt2/`` atomically: ``config.json``, ``model.safetensors``, the
tokenizer, ``training_log.json`` and a model card ``README.md`` with measured numbers. Needs the tokenizer
from ``scripts/build_tokenizer.py`` and the corpus from ``scripts/build_corpus.py``.

Usage::

    python scripts/train_tiny_gpt2.py --budget-minutes 35          # the bundled model
    python scripts/train_tiny_gpt2.py --max-steps 20 --out scratch/tiny_gpt2  # smoke test

Training samples are random windows of the training token stream (documents joined by ``<|endoftext|>``),
each prefixed with ``<|endoftext|>`` so position 0 always holds BOS, exactly like transformer-lens inputs with
``prepend_bos=True``. The learning rate follows a linear warm-up then a cosine over the *wall-clock* budget,
so the schedule ends when the time does, whatever the machine's speed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from switch_sae_mini.device import cpu_name  # noqa: E402
from switch_sae_mini.data.corpus import load_corpus  # noqa: E402

ASSET_DIR = REPO / "switch_sae_mini" / "assets" / "tiny_gpt2"
EOT_ID = 50256
VOCAB = 50257


# ---------------------------------------------------------------------------------------------- data


def token_stream(tokenizer, split: str) -> np.ndarray:
    """All documents of a split as one int64 array: ``EOT doc0 EOT doc1 ...`` (EOT doubles as BOS)."""
    texts = [doc.text for doc in load_corpus(split)]
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]  # no max-length warning
    pieces = []
    for doc_ids in ids:
        pieces.append(np.array([EOT_ID] + doc_ids, dtype=np.int64))
    return np.concatenate(pieces)


def eval_windows(stream: np.ndarray, seq_len: int) -> torch.Tensor:
    """Non-overlapping validation windows ``[EOT, s_i .. s_{i+seq_len-2}]`` covering the whole stream."""
    body = seq_len - 1
    n = len(stream) // body
    windows = stream[: n * body].reshape(n, body)
    return torch.from_numpy(np.concatenate([np.full((n, 1), EOT_ID), windows], axis=1))


def random_batch(stream: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - seq_len, (batch,), generator=gen)
    rows = torch.stack([stream[s: s + seq_len - 1] for s in starts.tolist()])
    return torch.cat([torch.full((batch, 1), EOT_ID), rows], dim=1)


# ---------------------------------------------------------------------------------------------- baselines


def pair_codes(windows: np.ndarray) -> np.ndarray:
    """(previous, next) token pairs of every prediction the model makes in ``windows``, as prev * V + next."""
    return (windows[:, :-1].astype(np.int64) * VOCAB + windows[:, 1:]).ravel()


def unigram_logprobs(tokens: np.ndarray, alpha: float) -> np.ndarray:
    counts = np.bincount(tokens, minlength=VOCAB).astype(np.float64) + alpha
    return np.log(counts / counts.sum())


def bigram_parts(fit: np.ndarray, eval_pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (prev, next) pair: ML estimate of p(next | prev) from ``fit``, and whether prev was seen in it."""
    fit_codes, fit_counts = np.unique(fit[:-1] * VOCAB + fit[1:], return_counts=True)
    prev_totals = np.bincount(fit[:-1], minlength=VOCAB).astype(np.float64)
    pos = np.searchsorted(fit_codes, eval_pairs).clip(max=len(fit_codes) - 1)
    pair_counts = np.where(fit_codes[pos] == eval_pairs, fit_counts[pos], 0).astype(np.float64)
    totals = prev_totals[eval_pairs // VOCAB]
    p_ml = np.divide(pair_counts, totals, out=np.zeros_like(pair_counts), where=totals > 0)
    return p_ml, totals > 0


def bigram_nll(fit: np.ndarray, eval_pairs: np.ndarray, alpha: float, lam: float, parts=None) -> float:
    """Mean NLL (nats) of ``p = lam * p_ML(next | prev) + (1 - lam) * p_unigram(next)`` (Jelinek-Mercer)."""
    p_ml, seen = parts if parts is not None else bigram_parts(fit, eval_pairs)
    unigram = np.exp(unigram_logprobs(fit, alpha))[eval_pairs % VOCAB]
    lam_eff = np.where(seen, lam, 0.0)  # an unseen previous token falls back to the unigram entirely
    return float(-np.log(lam_eff * p_ml + (1 - lam_eff) * unigram).mean())


def baselines(train: np.ndarray, val_windows: torch.Tensor) -> dict:
    """Unigram and interpolated-bigram NLL on exactly the validation predictions the model is scored on.

    Smoothing (add-alpha for the unigram, lambda for the interpolation) is tuned on the last 5% of the
    training stream with counts from the first 95%, then counts are refitted on all of train.
    """
    cut = int(len(train) * 0.95)
    fit, tune = train[:cut], train[cut:]
    tune_pairs = tune[:-1] * VOCAB + tune[1:]
    alphas = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    alpha = min(alphas, key=lambda a: -unigram_logprobs(fit, a)[tune[1:]].mean())
    lams = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    parts = bigram_parts(fit, tune_pairs)
    lam = min(lams, key=lambda lm: bigram_nll(fit, tune_pairs, alpha, lm, parts))
    val_pairs = pair_codes(val_windows.numpy())
    return {
        "unigram_nll": float(-unigram_logprobs(train, alpha)[val_pairs % VOCAB].mean()),
        "bigram_nll": bigram_nll(train, val_pairs, alpha, lam),
        "unigram_add_alpha": alpha,
        "bigram_lambda": lam,
        "n_val_predictions": len(val_pairs),
    }


# ---------------------------------------------------------------------------------------------- model


def make_model(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB, n_positions=args.n_ctx, n_ctx=args.n_ctx,  # transformer-lens reads n_ctx
        n_embd=args.d_model, n_layer=args.n_layers, n_head=args.n_heads, n_inner=4 * args.d_model,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True, bos_token_id=EOT_ID, eos_token_id=EOT_ID,
        # No pad_token_id: with pad == BOS, transformers warns about "padding" on every unmasked input.
    )
    torch.manual_seed(args.seed)
    return GPT2LMHeadModel(config)


def head_nll_sum(model, x: torch.Tensor, backward: bool, chunk: int = 128) -> tuple[float, int]:
    """Summed next-token NLL of batch ``x``; with ``backward`` also accumulates gradients (loss = mean NLL).

    The 50,257-way unembedding is applied ``chunk`` positions at a time, backpropagating each chunk at once,
    so the full [batch, seq, vocab] logits (400 MB+ in fp32) never exist. On this CPU that is 2-3x faster than
    ``model(x, labels=x)``: small buffers stay in malloc's heap instead of being mmapped and page-faulted
    anew.
    """
    hidden = model.transformer(x).last_hidden_state[:, :-1].reshape(-1, model.config.n_embd)
    targets = x[:, 1:].reshape(-1)
    detached = hidden.detach().requires_grad_(backward)
    unembed = model.lm_head.weight  # tied to transformer.wte.weight
    total = 0.0
    for i in range(0, len(targets), chunk):
        logits = detached[i: i + chunk] @ unembed.T
        nll = torch.nn.functional.cross_entropy(logits, targets[i: i + chunk], reduction="sum")
        if backward:
            (nll / len(targets)).backward()
        total += nll.item()
    if backward:
        hidden.backward(detached.grad)
    return total, len(targets)


@torch.no_grad()
def evaluate(model, windows: torch.Tensor, batch: int = 16) -> float:
    """Mean next-token NLL (nats) over every position of ``windows``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        nll, n = head_nll_sum(model, windows[i: i + batch], backward=False)
        total, count = total + nll, count + n
    model.train()
    return total / count


def lr_at(step: int, elapsed: float, args) -> float:
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    if args.max_steps:
        progress = step / args.max_steps
    else:
        progress = elapsed / (args.budget_minutes * 60)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cosine)


# ---------------------------------------------------------------------------------------------- card + saving


def model_card(info: dict) -> str:
    """The saved model's README.md, from the run's ``training_log.json`` record (measured numbers only)."""
    c, b, a = info["config"], info["baselines"], info["args"]
    precision = ("bf16 autocast for the training forward and backward passes (weights, optimizer state, "
                 "gradients and all evaluation in fp32)" if a.get("bf16") else "fp32 throughout")
    curve = "\n".join(f"| {h['step']:,} | {h['minutes']:.1f} | {h['tokens'] / 1e6:.2f}M | {h['lr']:.2e} | "
                      f"{h['train_loss']:.3f} | {h['val_loss_subset']:.3f} |"
                      for h in info["history"] if h["step"] % 500 == 0 or h is info["history"][-1])
    return f"""# tiny_gpt2: a {info['n_params'] / 1e6:.2f}M-parameter GPT-2 trained on CPU

A small model with the real GPT-2 architecture (`transformers.GPT2LMHeadModel`) and the real GPT-2 tokenizer
(50,257 tokens), trained from scratch in {info['wall_minutes']:.0f} minutes on a 2-core CPU so that the notebooks
have a genuine language model to study offline. It is a teaching stand-in for GPT-2 small, not a useful LM.

## Architecture

| | |
|---|---|
| layers / heads / d_model / d_mlp | {c['n_layer']} / {c['n_head']} / {c['n_embd']} / {c['n_inner']} |
| context (n_positions = n_ctx) | {c['n_positions']} |
| vocabulary | {c['vocab_size']:,} (GPT-2 BPE; `<\\|endoftext\\|>` = 50256 is BOS and EOS) |
| activation, norm | {c['activation_function']}, pre-LayerNorm (as GPT-2) |
| embeddings | tied (unembedding = token embedding) |
| parameters | {info['n_params']:,} ({info['n_params'] - c['vocab_size'] * c['n_embd']:,} without the token embedding) |
| weights file | `model.safetensors`, fp32, {info['weights_mb']:.1f} MB |

## Training

- **Data:** the train split of the bundled corpus (`switch_sae_mini/assets/corpus/`: Shakespeare, Python 3.11 docs,
  King James Bible), {info['train_tokens']:,} tokens; each document is preceded by `<|endoftext|>`.
- **Samples:** random windows of {c['n_positions']} tokens whose first token is always `<|endoftext|>` (BOS), as
  transformer-lens feeds inputs with `prepend_bos=True`.
- **Optimiser:** AdamW (betas 0.9/0.95, weight decay {a['weight_decay']} on weight matrices, none on embeddings,
  biases and LayerNorms), peak LR {a['lr']}, {a['warmup_steps']}-step linear warm-up, then cosine decay to
  {a['min_lr_ratio']}x over the wall-clock budget; grad-norm clip 1.0; batch {a['batch_size']} x
  {c['n_positions']} tokens; {precision}; seed {a['seed']}; no dropout.
- **Run:** {info['steps']:,} steps, {info['tokens_seen']:,} tokens seen
  ({info['tokens_seen'] / info['train_tokens']:.2f} epochs), {info['wall_minutes']:.1f} minutes of training,
  {info['tokens_per_s']:,.0f} tokens/s.
- **Machine:** {info['machine']}; torch {info['torch']}, transformers {info['transformers']}. Other jobs shared
  the two cores during the run, so the speed is not a benchmark.

## Validation loss (nats per token)

Measured on the whole validation split: {b['n_val_predictions']:,} next-token predictions in non-overlapping
{c['n_positions']}-token windows, each starting with BOS. The baselines are scored on exactly the same predictions.

| model | val loss |
|---|---|
| uniform over the vocabulary (ln 50257) | {math.log(VOCAB):.3f} |
| unigram (add-{b['unigram_add_alpha']} smoothing) | {b['unigram_nll']:.3f} |
| bigram: maximum likelihood, Jelinek-Mercer-interpolated with the unigram (lambda {b['bigram_lambda']}) | {b['bigram_nll']:.3f} |
| **tiny_gpt2** | **{info['final_val_nll']:.3f}** |

The smoothing constants were tuned on the last 5% of the training stream (counts from the rest), then the counts
were refitted on the whole train split. The model is {b['bigram_nll'] - info['final_val_nll']:.2f} nats/token
below the bigram baseline.

Loss curve (`val subset` = {a['eval_windows']} fixed random validation windows; `training_log.json` has every row):

| step | minutes | tokens | LR | train loss (mean since last row) | val subset |
|---|---|---|---|---|---|
{curve}

## Loading

```python
from transformers import AutoTokenizer, GPT2LMHeadModel
model = GPT2LMHeadModel.from_pretrained(path)          # path = this directory
tokenizer = AutoTokenizer.from_pretrained(path)

from transformer_lens.model_bridge import TransformerBridge
bridge = TransformerBridge.boot_transformers(str(path), device="cpu")   # a local path: no network access
```

## Reproduce

```
python scripts/build_corpus.py && python scripts/build_tokenizer.py
{info['command']}
```

The LR schedule follows the wall clock, so a faster or less busy machine takes more steps and ends lower.

## Licence

The weights are released with this project (MIT). Training text: Shakespeare and the King James Bible are public
domain; the Python documentation is (c) Python Software Foundation, PSF License 2.0 (see
`../corpus/NOTICE.md`). The tokenizer is GPT-2's BPE, taken from `openai-whisper` 20250625 (`gpt2.tiktoken`,
MIT, (c) OpenAI).
"""


def save_atomically(model, tokenizer, info: dict, out: Path) -> None:
    """Write everything to a sibling temp dir, then swap it in, so readers never see a half-written model."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    info["weights_mb"] = (tmp / "model.safetensors").stat().st_size / 1e6
    (tmp / "training_log.json").write_text(json.dumps(info, indent=1) + "\n")
    (tmp / "README.md").write_text(model_card(info))
    for path in tmp.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; the assets must be readable by everyone
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-minutes", type=float, default=35.0, help="wall-clock training budget")
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop after this many steps instead (0: use the budget)")
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--n-ctx", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-windows", type=int, default=64, help="validation windows for the periodic evals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast for training steps (evaluation stays fp32)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokenizer-dir", type=Path, default=ASSET_DIR)
    p.add_argument("--out", type=Path, default=ASSET_DIR)
    p.add_argument("--card-only", action="store_true",
                   help="only rewrite README.md from OUT/training_log.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.card_only:
        info = json.loads((args.out / "training_log.json").read_text())
        (args.out / "README.md").write_text(model_card(info))
        return
    cli_args = sys.argv[1:] if argv is None else argv
    command = ("python scripts/train_tiny_gpt2.py " + shlex.join(cli_args)).strip()
    torch.set_num_threads(args.threads)
    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_dir)
    t0 = time.time()
    train = token_stream(tokenizer, "train")
    val_windows = eval_windows(token_stream(tokenizer, "validation"), args.n_ctx)
    print(f"tokenised: train {len(train):,} tokens, validation {val_windows.numel():,} in {len(val_windows)} "
          f"windows ({time.time() - t0:.0f} s)", flush=True)
    base = baselines(train, val_windows)
    print(f"baselines (nats/token): unigram {base['unigram_nll']:.3f}, bigram {base['bigram_nll']:.3f} "
          f"(alpha {base['unigram_add_alpha']}, lambda {base['bigram_lambda']}); "
          f"uniform {math.log(VOCAB):.3f}",
          flush=True)

    model = make_model(args)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters", flush=True)
    def decays(name: str, param: torch.Tensor) -> bool:  # weight matrices only, not embeddings/biases/norms
        return param.dim() >= 2 and "wte" not in name and "wpe" not in name

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    train_t = torch.from_numpy(train)
    quick_val = val_windows[torch.randperm(len(val_windows), generator=torch.Generator().manual_seed(1))
                            [: args.eval_windows]]
    history, running = [], []
    start = time.time()
    step = 0
    while True:
        elapsed = time.time() - start
        out_of_time = not args.max_steps and elapsed >= args.budget_minutes * 60
        if out_of_time or (args.max_steps and step >= args.max_steps):
            break
        lr = lr_at(step, elapsed, args)
        for group in opt.param_groups:
            group["lr"] = lr
        x = random_batch(train_t, args.batch_size, args.n_ctx, gen)
        opt.zero_grad(set_to_none=True)
        # bf16 autocast (weights and optimizer stay fp32): ~2.5x faster matmuls on CPUs with AVX512-BF16.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            nll, n = head_nll_sum(model, x, backward=True)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append(nll / n)
        step += 1
        if step % args.eval_every == 0 or step == args.max_steps:
            elapsed = time.time() - start
            record = {"step": step, "minutes": round(elapsed / 60, 2), "tokens": step * x.numel(), "lr": lr,
                      "train_loss": round(float(np.mean(running)), 4),
                      "val_loss_subset": round(evaluate(model, quick_val), 4)}
            running = []
            history.append(record)
            print(json.dumps(record), f"{step * x.numel() / elapsed:,.0f} tok/s", flush=True)
    wall = time.time() - start
    final = evaluate(model, val_windows)
    print(f"final val loss {final:.4f} nats/token on the full validation split; "
          f"unigram {base['unigram_nll']:.3f}, bigram {base['bigram_nll']:.3f}", flush=True)
    info = {
        "command": command, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "config": model.config.to_dict(), "n_params": n_params, "steps": step,
        "tokens_seen": step * args.batch_size * args.n_ctx, "train_tokens": len(train),
        "wall_minutes": wall / 60, "tokens_per_s": step * args.batch_size * args.n_ctx / wall,
        "final_val_nll": final, "baselines": base, "history": history,
        "machine": f"{cpu_name()} ({platform.machine()}), {torch.get_num_threads()} torch threads, no GPU",
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    save_atomically(model, tokenizer, info, args.out)
    print(f"saved to {args.out}", flush=True)


if __name__ == "__main__":
    main()
