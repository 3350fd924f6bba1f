"""Benchmark: activation-harvesting throughput (vectors/s) from the bundled tiny GPT-2 on this machine.

Run ``python -m switch_sae_mini bench-harvest`` (options: ``--help``). Two measurements:

- *model*: ``HookReader`` alone (the model run up to the hook via ``stop_at_layer``) on ready-made contexts, for a
  few contexts-per-forward batch sizes; median of ``--repeats`` timed runs after warm-up;
- *end to end*: ``ActivationBuffer.batches`` (tokenising the bundled corpus, harvesting, shuffling, yielding).

Vectors are kept activations (BOS dropped): ``context_len - 1`` per full context. Target: >= 25k vectors/s.
Not a timed test: numbers depend on the CPU and on whatever else is running (the load average is printed).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..data.activations import ActivationBuffer
from ..data.reading import HookReader, iter_context_batches
from ..data.models import BUNDLED_MODEL, BUNDLED_MODEL_DIR, ModelUnavailableError, load_model
from ..data.sources import make_source
from ..device import cpu_name


def stand_in_model(tmp: Path):
    """A randomly initialised model with the bundled architecture (4 layers, d_model 128), for when the trained
    weights are not there yet. Throughput does not depend on the weights' values."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=128, n_head=4, n_positions=256, n_ctx=256, vocab_size=50257,
                        bos_token_id=50256, eos_token_id=50256, pad_token_id=50256)
    GPT2LMHeadModel(config).save_pretrained(tmp)
    tokenizer_files = list(BUNDLED_MODEL_DIR.glob("tokenizer*"))
    if not tokenizer_files:
        raise SystemExit(f"no tokenizer files in {BUNDLED_MODEL_DIR}; cannot benchmark.")
    for file in tokenizer_files:
        shutil.copy(file, tmp)
    return load_model(str(tmp))


def time_model(reader: HookReader, contexts, repeats: int, warmup: int = 2) -> tuple[float, int]:
    """Median seconds per forward over ``repeats`` runs, and kept vectors per forward."""
    n_vectors = int((contexts.n_filled - 1).sum())
    for _ in range(warmup):
        reader(contexts.tokens)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reader(contexts.tokens)
        times.append(time.perf_counter() - start)
    return statistics.median(times), n_vectors


def time_end_to_end(model, hook, context_len, model_batch_size, n_tokens, repeats) -> float:
    """Median vectors/s of ``ActivationBuffer.batches(n_tokens)`` (buffer construction included)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        buffer = ActivationBuffer(model, hook, context_len=context_len, n_contexts=256, batch_size=4096,
                                  model_batch_size=model_batch_size, progress=False)
        for _ in buffer.batches(n_tokens):
            pass
        rates.append(n_tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def run(args) -> None:
    """`python -m switch_sae_mini bench-harvest` (flags: cli/bench.py)."""
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        try:
            model, label = load_model(BUNDLED_MODEL), f"bundled {BUNDLED_MODEL}"
        except ModelUnavailableError as err:
            print(f"NOTE: {err}\n      Benchmarking a randomly initialised model of the same architecture instead.")
            model, label = stand_in_model(Path(tmp)), "random stand-in (same architecture as the bundled model)"
        reader = HookReader(model, args.hook)
        source = make_source("bundled", split="train")
        print(f"model: {label}: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}; hook {reader.hook} "
              f"(stop_at_layer={reader.stop_at_layer}), d_in {reader.d_in}, context_len {args.context_len}")
        print(f"machine: {cpu_name()}; {os.cpu_count()} CPUs; torch {torch.__version__} with "
              f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f} at start")
        print(f"\n{'contexts/forward':>16} {'vectors/forward':>15} {'ms/forward':>10} {'vectors/s':>10}")
        best_batch, best_rate = args.batch_sizes[0], 0.0
        for batch_size in args.batch_sizes:
            contexts = next(iter_context_batches(source.documents(0, 0), model.tokenizer, source.domains,
                                                 args.context_len, batch_size))
            seconds, n_vectors = time_model(reader, contexts, args.repeats)
            rate = n_vectors / seconds
            if rate > best_rate:
                best_batch, best_rate = batch_size, rate
            print(f"{batch_size:>16} {n_vectors:>15} {seconds * 1e3:>10.1f} {rate:>10,.0f}")
        if args.end_to_end_tokens:
            rate = time_end_to_end(model, reader.hook, args.context_len, best_batch, args.end_to_end_tokens,
                                   repeats=3)
            print(f"\nend to end (ActivationBuffer, {best_batch} contexts/forward, {args.end_to_end_tokens:,} "
                  f"tokens incl. tokenising and shuffling, median of 3): {rate:,.0f} vectors/s")
        print(f"load average {os.getloadavg()[0]:.2f} at end (other processes share the CPU if this is > 0)")
