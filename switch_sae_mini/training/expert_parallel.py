"""Expert parallelism for the Switch SAE: experts sharded across ranks, tokens exchanged with all_to_all.

With world size N and E experts, rank r owns experts [r*E/N, (r+1)*E/N): their W_enc columns, W_dec rows, Adam
moments and dead-latent counters. The router, b_dec and b_router are replicated (their gradients are summed across
ranks). One forward on a rank's local batch:

    route locally -> all_gather per-rank expert counts [N, E] (split sizes, and the global f of the LB loss)
    -> all_to_all: each token (and its local expert id) goes to the rank owning its expert
    -> owner: routed TopK encode + sparse decode (kernels.py) -> all_to_all: reconstructions go back
    -> source: x_hat = gate * reconstruction + b_dec

Only the return exchange carries gradients (the tokens themselves need none: b_dec's encoder gradient is formed on
the owner and summed with the other replicated gradients). The gate is applied on the source rank: decoding is
linear in the latent values, so gate * decode(values) = decode(gate * values) as in SwitchSAE.forward.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch
import torch.distributed as dist
from jaxtyping import Float
from torch import Tensor, nn

from ..config import ConfigError, TrainConfig
from ..saes import SAEBase, SwitchSAE, check_input, geometric_median, kernels, mse_per_element
from ..saes.metrics import fired_mask
from ..saes.routing import expert_counts, gate_values, group_by_expert, load_balance_loss, route
from .distributed import DistributedHooks, StepResult, grads_or_zeros, sum_across_ranks
from .step import training_step


def check_expert_split(n_experts: int, world_size: int) -> int:
    """Experts per rank; a clear error when n_experts does not split evenly over the ranks."""
    if world_size < 1 or n_experts % world_size:
        raise ConfigError(
            f"SAEConfig.n_experts ({n_experts}) must be divisible by the world size ({world_size}) for expert "
            f"parallelism: launch torchrun with --nproc_per_node dividing {n_experts}, pick n_experts as a multiple "
            f"of {world_size}, or use --mode ddp (data parallel) instead.")
    return n_experts // world_size


class ExpertShard(nn.Module):
    """Rank `rank`'s part of a SwitchSAE. Parameters keep SwitchSAE's names; W_enc [d_in, d_local] (column-major,
    as in SwitchSAE) and W_dec [d_local, d_in] hold only this rank's latents [latent_offset, latent_offset + d_local).
    """

    # Row-wise operations on W_dec work unchanged on a block of rows: reuse SAEBase's.
    normalize_decoder = SAEBase.normalize_decoder
    project_decoder_grad = SAEBase.project_decoder_grad
    uses_decoder_norm = True

    def __init__(self, sae: SwitchSAE, rank: int, world_size: int) -> None:
        super().__init__()
        if sae.cfg.arch != "switch":
            raise ConfigError(f"expert parallelism needs SAEConfig.arch='switch', got {sae.cfg.arch!r}; "
                              f"use data parallel (--mode ddp) for other architectures.")
        if sae.cfg.shared_expert or sae.cfg.router_top_e > 1:
            raise ConfigError(f"expert parallelism shards top-1 routed experts only; this SAE has shared_expert="
                              f"{sae.cfg.shared_expert} and router_top_e={sae.cfg.router_top_e}. Train it with data "
                              f"parallel (--mode ddp), which runs every variant.")
        self.cfg, self.rank, self.world_size = sae.cfg, rank, world_size
        self.n_local_experts = check_expert_split(sae.cfg.n_experts, world_size)
        self.d_local = self.n_local_experts * sae.cfg.d_expert
        self.latent_offset = rank * self.d_local
        block = slice(self.latent_offset, self.latent_offset + self.d_local)
        with torch.no_grad():
            self.W_enc = nn.Parameter(sae.W_enc.t()[block].clone().t())  # keep the column-major layout
            self.W_dec = nn.Parameter(sae.W_dec[block].clone())
            self.b_dec = nn.Parameter(sae.b_dec.clone())
            self.W_router = nn.Parameter(sae.W_router.clone())
            self.b_router = nn.Parameter(sae.b_router.clone())
        self.register_buffer("tokens_since_fired", sae.tokens_since_fired[block].clone())
        self.register_buffer("initialized", sae.initialized.clone())

    def sharded_parameters(self) -> list[nn.Parameter]:
        return [self.W_enc, self.W_dec]

    def replicated_parameters(self) -> list[nn.Parameter]:
        return [self.b_dec, self.W_router, self.b_router]

    @torch.no_grad()
    def init_from_batch(self, x: Float[Tensor, "n d_in"]) -> None:
        """b_dec = b_router = geometric median of x (pass the global first batch so every rank agrees)."""
        self.b_dec.copy_(geometric_median(x.reshape(-1, self.cfg.d_in)))
        self.b_router.copy_(self.b_dec)
        self.initialized.fill_(True)

    @torch.no_grad()
    def update_dead_counter(self, fired: Tensor, n_tokens: int) -> None:
        """fired: bool [d_local]. The owner sees every token routed to its experts, so this is already global."""
        self.tokens_since_fired.add_(n_tokens).masked_fill_(fired, 0)


def _timed_all_to_all(x: Tensor, out_splits: list[int], in_splits: list[int],
                      timings: dict[str, float] | None) -> Tensor:
    """Rows of x (grouped by destination, in_splits[j] rows for rank j) -> out_splits[j] rows from rank j."""
    out = x.new_empty(sum(out_splits), *x.shape[1:])
    t0 = time.perf_counter()
    dist.all_to_all_single(out, x.contiguous(), out_splits, in_splits)
    if timings is not None:
        if out.is_cuda:
            torch.cuda.synchronize(out.device)
        timings["all_to_all"] = timings.get("all_to_all", 0.0) + time.perf_counter() - t0
    return out


class _AllToAll(torch.autograd.Function):
    """all_to_all_single whose backward sends the gradients back along the reverse route. Written here (rather
    than torch.distributed.nn.functional.all_to_all_single) so the backward exchange is timed as well."""

    @staticmethod
    def forward(ctx, x, out_splits, in_splits, timings):
        ctx.splits, ctx.timings = (out_splits, in_splits), timings
        return _timed_all_to_all(x, out_splits, in_splits, timings)

    @staticmethod
    def backward(ctx, grad):
        out_splits, in_splits = ctx.splits
        return _timed_all_to_all(grad, in_splits, out_splits, ctx.timings), None, None, None


class ExpertForward(NamedTuple):
    x_hat: Float[Tensor, "batch d_in"]
    mse_loss: Tensor
    """Per-element MSE on this rank's tokens."""
    lb_loss: Tensor
    """E * sum_i f_i P_i with the global f and this rank's P: the n-weighted average over ranks is the global LB
    loss, and so is its gradient (f carries none)."""
    n_global: int
    """Tokens on all ranks together."""
    fired: Tensor
    """Bool [d_local]: which of this rank's latents fired on any token of any rank."""
    l0_sum: Tensor
    """Active latents summed over the tokens this rank encoded (for the global L0)."""


def expert_parallel_forward(shard: ExpertShard, x: Float[Tensor, "batch d_in"],
                            timings: dict[str, float] | None = None) -> ExpertForward:
    """One expert-parallel forward of this rank's batch; every rank must call it (collectives inside).
    Always the routed sparse-gradient kernels (SAEConfig.fused=True's path; same values as the other paths)."""
    cfg, n_local = shard.cfg, shard.n_local_experts
    x = check_input(x, cfg.d_in, shard.W_dec)
    routing = route(x, shard.W_router, shard.b_router)
    gate = gate_values(routing, cfg.gate)

    counts = expert_counts(routing.expert_idx, cfg.n_experts)
    parts = [torch.empty_like(counts) for _ in range(shard.world_size)]
    dist.all_gather(parts, counts)
    all_counts = torch.stack(parts)  # [rank, expert]: tokens that rank sends to that expert
    send_splits = counts.view(shard.world_size, n_local).sum(1).tolist()
    mine = slice(shard.rank * n_local, (shard.rank + 1) * n_local)
    recv_splits = all_counts[:, mine].sum(1).tolist()

    # Sorting by expert groups tokens by owner rank; the local expert id rides along as an extra column.
    groups = group_by_expert(routing.expert_idx, cfg.n_experts)
    order = groups.order
    local_expert = (routing.expert_idx[order] % n_local).to(x.dtype)
    payload = torch.cat([x[order], local_expert[:, None]], dim=1)
    received = _timed_all_to_all(payload, recv_splits, send_splits, timings)
    x_recv, expert_recv = received[:, :cfg.d_in], received[:, cfg.d_in].long()

    values, indices = kernels.routed_topk_encode(x_recv, shard.b_dec, shard.W_enc, expert_recv, n_local, cfg.k)
    recon = kernels.sparse_decode(values, indices, shard.W_dec)  # [tokens received, d_in], no b_dec yet
    recon_sorted = _AllToAll.apply(recon, send_splits, recv_splits, timings)
    x_hat = gate[:, None] * recon_sorted[groups.inverse()] + shard.b_dec

    with torch.no_grad():
        fired = fired_mask(indices, values, shard.d_local)
        l0_sum = (values != 0).sum().to(x.dtype)
    lb = load_balance_loss(routing.probs, routing.expert_idx, cfg.n_experts, counts=all_counts.sum(0))
    return ExpertForward(x_hat=x_hat, mse_loss=mse_per_element(x_hat, x), lb_loss=lb, n_global=int(all_counts.sum()),
                         fired=fired, l0_sum=l0_sum)


@torch.no_grad()
def gather_switch_sae(shard: ExpertShard) -> SwitchSAE:
    """Collect every rank's experts into one ordinary SwitchSAE (on every rank; save it from rank 0)."""

    def cat_ranks(t: Tensor) -> Tensor:
        parts = [torch.empty_like(t) for _ in range(shard.world_size)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    W_enc_rows = cat_ranks(shard.W_enc.t())  # [d_sae, d_in]
    W_dec = cat_ranks(shard.W_dec)
    dead = cat_ranks(shard.tokens_since_fired)
    with torch.random.fork_rng(devices=[]):  # building the module draws random weights; keep the run's RNG
        sae = SwitchSAE(shard.cfg).to(shard.W_dec.device)
    sae.W_enc.copy_(W_enc_rows.t())
    sae.W_dec.copy_(W_dec)
    for name in ("b_dec", "W_router", "b_router"):
        getattr(sae, name).copy_(getattr(shard, name))
    sae.tokens_since_fired.copy_(dead)
    sae.initialized.copy_(shard.initialized)
    return sae


class ExpertParallel(DistributedHooks):
    """Hooks of training_step for an ExpertShard: the expert-parallel forward, a reduction of the replicated
    gradients only, and a clip by the global norm (sharded squared norms summed over ranks)."""

    def forward(self, shard, x, step, cfg):
        fwd = expert_parallel_forward(shard, x, self.timings)
        self._loss = fwd.mse_loss + shard.cfg.lb_coeff * fwd.lb_loss
        self._weight = x.shape[0] / fwd.n_global
        return fwd, self._loss * self._weight  # owners accumulate every source rank's weighted contribution

    def reduce(self, shard, fwd, x, loss):
        sharded = grads_or_zeros(shard.sharded_parameters())
        replicated = grads_or_zeros(shard.replicated_parameters())
        shard_sq = torch.stack([g.pow(2).sum() for g in sharded]).sum()
        stats = torch.stack([self._loss.detach(), fwd.mse_loss.detach(), fwd.lb_loss.detach()]) * self._weight
        replicated, extra = sum_across_ranks(replicated, [shard_sq[None], stats, fwd.l0_sum[None]], self.timings)
        self._total_sq, (loss_g, mse_g, lb_g, l0_sum) = extra[0], extra[1:].tolist()
        self._sharded, self._replicated = sharded, replicated
        self.result = StepResult(loss_g, mse_g, lb_g, l0_sum / fwd.n_global, fwd.n_global)
        return fwd.fired, fwd.n_global, torch.tensor(loss_g)

    def clip(self, shard, max_norm):
        # clip_grad_norm_'s rule with the global norm (replicated gradients, now identical, counted once)
        total_norm = (self._total_sq + sum(g.pow(2).sum() for g in self._replicated)).sqrt()
        torch._foreach_mul_(self._sharded + self._replicated, (max_norm / (total_norm + 1e-6)).clamp(max=1.0))


def expert_parallel_step(shard: ExpertShard, x: Float[Tensor, "batch d_in"], optimizer: torch.optim.Optimizer,
                         cfg: TrainConfig, step: int, base_lr: float,
                         timings: dict[str, float] | None = None) -> StepResult:
    """One expert-parallel step of a Switch SAE (training_step with ExpertParallel hooks); `timings` accumulates
    "all_to_all" (token and gradient exchanges) and "all_reduce" (replicated gradients) seconds."""
    hooks = ExpertParallel(timings)
    training_step(shard, x, optimizer, cfg, step, base_lr, hooks=hooks)
    return hooks.result
