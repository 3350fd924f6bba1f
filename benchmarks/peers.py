"""Training-step time of peer TopK SAEs (SAELens, sparsify) on CPU or CUDA, for `switch_sae_mini.bench --peers`.

This is a standalone script, not part of the package: SAELens 6.x pins transformer-lens < 4 while switch_sae_mini
needs transformer-lens 4, so the peers live in their own virtualenv (.venv-peers) and `bench.run_peers` runs this
file with that interpreter. Hence it imports only the standard library, torch, safetensors, sae_lens and sparsify.

    .venv-peers/bin/python benchmarks/peers.py --d-in 768 --d-sae 24576 --k 32 --batch 4096 \
        --warmup 2 --steps 10 --data batches.safetensors

--data is a safetensors file with float32 [batch, d_in] tensors "batch_0".."batch_{n-1}" (the activations our own
variants train on); step i uses batch i mod n. Without --data: 4 batches of torch.randn(batch, d_in) from a
torch.Generator seeded with 0. Each peer's parameters are initialised after torch.manual_seed(0).

One step = what the peer's own trainer does per optimisation step, fp32 (on CUDA too), default code paths (see each peer's
"notes"), with torch.optim.Adam as the optimiser. Output: one JSON line per peer on stdout,
{"name", "ms_per_step" (median of --steps timed steps after --warmup), "version", "notes", "loss_first",
"loss_last"} or {"name", "error"}. The two losses (first and last step, in the peer's own loss units) are a sanity
check that the step trains, not a metric. Progress goes to stderr.
"""

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import time
import traceback
import types
from importlib.metadata import PackageNotFoundError, version

import torch


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_batches(path: str | None, batch: int, d_in: int) -> list[torch.Tensor]:
    if path is None:
        gen = torch.Generator().manual_seed(0)
        return [torch.randn(batch, d_in, generator=gen) for _ in range(4)]
    from safetensors.torch import load_file

    tensors = load_file(path)
    batches = [tensors[f"batch_{i}"].float().contiguous() for i in range(len(tensors))]
    if any(x.shape[1] != d_in for x in batches):
        raise SystemExit(f"--data batches have shape {batches[0].shape}, expected [*, {d_in}]")
    return batches


def saelens_topk(d_in: int, d_sae: int, k: int, sparse: bool, first_batch: torch.Tensor):
    """SAELens TopKTrainingSAE with the per-step work of sae_lens.training.sae_trainer.SAETrainer._train_step."""
    device = str(first_batch.device)
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    # Config defaults kept: aux_loss_coefficient=1, decoder_init_norm=0.1, apply_b_dec_to_input=True, and
    # rescale_acts_by_decoder_norm=True except with sparse activations: there the decode multiplies the COO acts by
    # 1/||W_dec|| and, with torch 2.13 on CPU, that product's backward fails ("aten::view ... SparseCPU"), so the
    # sparse variant has to turn the rescale off. The trainer never sets b_dec from data: first_batch is unused.
    cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, use_sparse_activations=sparse,
                                rescale_acts_by_decoder_norm=not sparse, dtype="float32", device=device)
    sae = TopKTrainingSAE(cfg)
    sae.train()
    optimizer = torch.optim.Adam(sae.parameters(), lr=3e-4, betas=(0.9, 0.999))  # LanguageModelSAERunnerConfig
    dead_feature_window = 1000  # runner-config default: a latent is "dead" after 1000 steps without firing
    passes_since_fired = torch.zeros(d_sae, device=device)
    act_freq_scores = torch.zeros(d_sae, device=device)
    n_steps = 0

    def step(x: torch.Tensor) -> torch.Tensor:
        nonlocal n_steps
        out = sae.training_forward_pass(TrainStepInput(
            sae_in=x, coefficients={}, dead_neuron_mask=(passes_since_fired > dead_feature_window).bool(),
            n_training_steps=n_steps, is_logging_step=False))
        with torch.no_grad():  # the trainer's dead-latent bookkeeping, copied as is (works on COO acts too)
            firing = out.feature_acts.bool().float()
            did_fire = firing.sum(-2).bool()
            if did_fire.is_sparse:
                did_fire = did_fire.to_dense()
            passes_since_fired.add_(1)
            passes_since_fired[did_fire] = 0
            act_freq_scores.add_(firing.sum(0))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        n_steps += 1
        return out.loss.detach()

    notes = ("TopKTrainingSAE.training_forward_pass (encode"
             + (", TopK as a sparse COO tensor, torch.sparse.mm decode; rescale_acts_by_decoder_norm=False because "
                "its sparse backward fails on CPU" if sparse
                else " with decoder-norm rescaled pre-acts (default), TopK, dense scatter + dense decode")
             + ", MSE summed over d_in; AuxK term included but 0 here: nothing is dead before 1000 steps) + "
             "dead-latent counters + backward + clip_grad_norm_(1.0) + Adam(lr 3e-4) + zero_grad; SAELens does "
             "no per-step decoder renorm; constant-LR scheduler step omitted")
    return sae, step, notes


def import_sparse_coder():
    """sparsify's SparseCoder and its config. sparsify/__init__ also imports its trainer, which needs `datasets`
    (pyarrow and pandas: over 60 MB of wheels that a bare GPU machine lacks, scripts/device_check.sh); the SAE
    itself needs none of it, so where that import fails, sparsify.sparse_coder is loaded under an empty package."""
    with contextlib.redirect_stdout(sys.stderr):  # sparsify prints "Triton not installed ..." on import
        try:
            from sparsify import SparseCoder, SparseCoderConfig
        except ModuleNotFoundError as err:
            spec = importlib.util.find_spec("sparsify")
            if spec is None or spec.submodule_search_locations is None:
                raise
            log(f"  sparsify: `import sparsify` failed ({err}); loading sparsify.sparse_coder without its trainer")
            package = types.ModuleType("sparsify")
            package.__path__ = list(spec.submodule_search_locations)
            sys.modules["sparsify"] = package
            from sparsify.config import SparseCoderConfig
            from sparsify.sparse_coder import SparseCoder
    return SparseCoder, SparseCoderConfig


def sparsify_topk(d_in: int, d_sae: int, k: int, first_batch: torch.Tensor):
    """sparsify SparseCoder with the per-step work of sparsify.trainer.Trainer.fit for loss_fn="fvu"."""
    SparseCoder, SparseCoderConfig = import_sparse_coder()

    device = first_batch.device
    sae = SparseCoder(d_in, SparseCoderConfig(num_latents=d_sae, k=k), device=device, dtype=torch.float32)
    # Trainer, first step only: b_dec <- mean of the first batch (centres the pre-activations). Not timed.
    sae.b_dec.data = first_batch.mean(0).clone()
    # sparsify's default optimiser is signum (schedule-free SignSGD); we use its "adam" option (which falls back
    # to torch.optim.Adam without bitsandbytes) with its default LR, to compare like with like.
    optimizer = torch.optim.Adam(sae.parameters(), lr=2e-4 / (d_sae / 2 ** 14) ** 0.5)
    tokens_since_fired = torch.zeros(d_sae, dtype=torch.long, device=device)
    did_fire = torch.zeros(d_sae, dtype=torch.bool, device=device)

    def step(x: torch.Tensor) -> torch.Tensor:
        sae.set_decoder_norm_to_unit_norm()  # trainer: every step, before the forward
        total_variance = (x - x.mean(0)).pow(2).sum()
        # auxk_alpha defaults to 0, so the trainer passes dead_mask=None (no AuxK pass)
        out = sae(x=x, y=x, dead_mask=None, total_variance=total_variance)
        did_fire[out.latent_indices.flatten()] = True
        loss = out.fvu + out.multi_topk_fvu / 8  # trainer's loss; multi_topk_fvu is 0 (multi_topk=False)
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            tokens_since_fired.add_(x.shape[0])
            tokens_since_fired[did_fire] = 0
            did_fire.zero_()
        return loss.detach()

    notes = ("decoder renorm to unit norm + SparseCoder forward (fused_encoder: linear+ReLU+topk with index_add "
             "backward; eager embedding_bag decoder, no Triton on CPU) + FVU loss (auxk_alpha=0 default: no AuxK) "
             "+ backward + remove_gradient_parallel_to_decoder_directions + Adam(lr 2e-4/sqrt(d_sae/2^14)) + "
             "zero_grad + dead-latent counters; no grad clipping (sparsify has none); LR-schedule step omitted; "
             "sparsify's default optimiser is signum, Adam used here for comparability")
    return sae, step, notes


PEERS = {  # name -> (distribution whose version is reported, builder)
    "SAELens {v} TopK": ("sae-lens", lambda d, m, k, x: saelens_topk(d, m, k, sparse=False, first_batch=x)),
    "SAELens {v} TopK, sparse activations, no decoder-norm rescale": (
        "sae-lens", lambda d, m, k, x: saelens_topk(d, m, k, sparse=True, first_batch=x)),
    "sparsify {v} SparseCoder TopK": ("eai-sparsify", sparsify_topk),
}


def time_peer(build, args, batches: list[torch.Tensor]) -> dict:
    torch.manual_seed(0)
    sae, step, notes = build(args.d_in, args.d_sae, args.k, batches[0])
    times_ms, losses = [], []
    for i in range(args.warmup + args.steps):
        x = batches[i % len(batches)]
        sync(x.device)
        start = time.perf_counter()
        loss = step(x)
        sync(x.device)
        elapsed_ms = (time.perf_counter() - start) * 1000
        losses.append(float(loss))  # outside the timed region
        if i >= args.warmup:
            times_ms.append(elapsed_ms)
        log(f"    step {i}: {elapsed_ms:.0f} ms, loss {losses[-1]:.4g}")
    del sae, step
    return {"ms_per_step": statistics.median(times_ms), "notes": notes,
            "loss_first": losses[0], "loss_last": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d-in", type=int, required=True)
    parser.add_argument("--d-sae", type=int, required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--batch", type=int, default=4096, help="batch size when --data is absent")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data", help="safetensors file with batch_0..batch_{n-1}, each [batch, d_in] float32")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the peers train (default: cpu)")
    args = parser.parse_args()
    batches = [x.to(args.device) for x in load_batches(args.data, args.batch, args.d_in)]
    log(f"bench_peers: torch {torch.__version__}, {torch.get_num_threads()} threads, {len(batches)} batches of "
        f"{tuple(batches[0].shape)}, d_sae {args.d_sae}, k {args.k}")
    for template, (dist, build) in PEERS.items():
        name = template.format(v="?")
        try:
            peer_version = version(dist)
            name = template.format(v=peer_version)
            log(f"  {name}")
            timing = time_peer(build, args, batches)
            result = {"name": name, "ms_per_step": timing.pop("ms_per_step"), "version": peer_version, **timing}
        except PackageNotFoundError:  # not in this interpreter (a GPU machine may carry sparsify only)
            log(f"  {name}: {dist} is not installed here")
            result = {"name": name, "error": f"{dist} is not installed in {sys.executable}"}
        except Exception as exc:  # one broken peer must not hide the others
            log(traceback.format_exc())
            first_line = (str(exc).splitlines() or [""])[0][:300]  # torch errors list every backend after it
            result = {"name": name, "error": f"{type(exc).__name__}: {first_line}"}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
