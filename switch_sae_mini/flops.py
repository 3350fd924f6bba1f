"""Itemised FLOP and parameter ledger for ReLU, TopK and Switch SAEs (docs/design-notes.md §5).

Counts are per token, with a multiply-add counted as 2 FLOPs. Only matmuls are counted: bias adds, ReLU,
TopK selection and the softmax are O(d_sae) or smaller and are left out, so the "encoder" item is exactly
the matmul cost of the per-token table in docs/design-notes.md §5, and its GPT-2 table is reproduced digit for
digit.
"""

from __future__ import annotations

from .config import ConfigError, SAEConfig
from .errors import ArgumentError

ITEMS = ("router", "encoder", "decoder")


def forward_flops(cfg: SAEConfig) -> dict[str, int]:
    """Theoretical forward FLOPs per token: {"router", "encoder", "decoder", "total"} (docs/design-notes.md §5)."""
    d_in, d_sae, k, n_experts = cfg.d_in, cfg.d_sae, cfg.k, cfg.n_experts
    if cfg.arch == "switch":
        router = 2 * d_in * n_experts  # logits W_router (x - b_router): one d_in-dot per expert
        # only the routed experts' latents are computed (e of them with top-e), plus the shared expert's
        encoder = 2 * d_in * (cfg.router_top_e * cfg.d_expert + cfg.shared_expert)
        decoder = 2 * cfg.l0 * d_in  # sparse: k (+ k_shared) decoder rows are summed
    elif cfg.arch == "topk":
        router, encoder, decoder = 0, 2 * d_in * d_sae, 2 * k * d_in
    else:  # relu: every latent may be non-zero, so the decoder is a dense matmul
        router, encoder, decoder = 0, 2 * d_in * d_sae, 2 * d_sae * d_in
    return _with_total({"router": router, "encoder": encoder, "decoder": decoder})


def reference_forward_flops(cfg: SAEConfig) -> dict[str, int]:
    """FLOPs per token the paper's masked-dense reference code executes (docs/design-notes.md §5).

    The reference Switch encoder computes all d_sae latents and then masks all but the routed expert, so its
    encoder costs 2*d_in*d_sae like a dense TopK SAE of the same total width. This is also what our Switch SAE
    runs with ``routed=False``. ReLU and TopK are unchanged.
    """
    fwd = forward_flops(cfg)
    flops = {name: fwd[name] for name in ITEMS}
    if cfg.arch == "switch":
        flops["encoder"] = 2 * cfg.d_in * cfg.d_sae
    return _with_total(flops)


def training_flops(cfg: SAEConfig, *, backward_factor: int = 2) -> dict[str, int]:
    """Forward + backward FLOPs per token, itemised like :func:`forward_flops`.

    The backward pass of a matmul costs about 2x its forward: one matmul for the gradient of its input and
    one for the gradient of its weight, restricted (for Switch) to the routed expert and (for TopK/Switch) to
    the k active decoder rows. So each item is (1 + backward_factor) x forward, the usual "6 N" rule. This
    slightly overcounts the encoder, whose input x is data and needs no gradient; the reference code's "crude"
    scaling-law formula (docs/design-notes.md §5) counts the encoder only, at 2x forward (4 d_in d_sae per token),
    and ignores the router and decoder.
    """
    if not isinstance(backward_factor, int) or isinstance(backward_factor, bool) or backward_factor < 0:
        raise ArgumentError(f"training_flops: backward_factor must be an int >= 0, got {backward_factor!r}.")
    fwd = forward_flops(cfg)
    return _with_total({name: (1 + backward_factor) * fwd[name] for name in ITEMS})


def param_counts(cfg: SAEConfig) -> dict[str, int]:
    """Trainable parameters per tensor name plus "total" (docs/design-notes.md §1: Switch has 2 M d + E d + 2 d)."""
    d_in, d_sae = cfg.d_in, cfg.d_sae
    counts = {"W_enc": d_in * d_sae, "W_dec": d_sae * d_in, "b_dec": d_in}
    if cfg.arch == "switch":
        # b_enc is a zero buffer in our Switch SAE (the reference encoder has no bias since commit d2b1f30).
        counts["W_router"] = d_in * cfg.n_experts
        counts["b_router"] = d_in
    else:
        counts["b_enc"] = d_sae
    return _with_total(counts)


def flop_matched(cfg_topk: SAEConfig, n_experts: int, *, router_top_e: int = 1, shared_expert: int = 0,
                 k_shared: int = 0) -> SAEConfig:
    """Switch SAE whose per-token encoder is as wide as the dense TopK SAE (docs/design-notes.md §5): plain Switch
    experts are each cfg_topk.d_sae wide, so d_sae = cfg_topk.d_sae * E.

    The variants (docs/design-notes.md §12) keep the per-token computed width at cfg_topk.d_sae: with top-e
    routing each expert is d_sae / e wide, and a shared expert's width comes out of it, so
    router_top_e * d_expert + shared_expert = cfg_topk.d_sae. k_shared of the TopK's k go to the shared expert,
    so the L0 (and the decoder's FLOPs) stay the TopK's. Per-token encoder FLOPs equal the TopK's up to the
    router (+2 d_in E); parameters grow about E / e x.
    """
    _check_topk(cfg_topk, "flop_matched")
    _check_n_experts(n_experts, "flop_matched")
    d_topk = cfg_topk.d_sae
    per_token = d_topk - _check_shared(cfg_topk, shared_expert, k_shared, "flop_matched")
    if not _is_count(router_top_e) or per_token % router_top_e:
        raise ConfigError(f"flop_matched: router_top_e ({router_top_e!r}) must be an int >= 1 dividing "
                          f"cfg_topk.d_sae - shared_expert ({per_token}), the width its experts share.")
    d_expert = per_token // router_top_e
    return cfg_topk.replace(arch="switch", d_sae=d_expert * n_experts + shared_expert, n_experts=n_experts,
                            k=cfg_topk.k - k_shared, router_top_e=router_top_e, shared_expert=shared_expert,
                            k_shared=k_shared)


def width_matched(cfg_topk: SAEConfig, n_experts: int, *, router_top_e: int = 1, shared_expert: int = 0,
                  k_shared: int = 0) -> SAEConfig:
    """Switch SAE with the dense TopK SAE's total width split into E experts of d_sae / E latents
    (docs/design-notes.md §5); a shared expert's width comes out of the total, and k_shared out of k, so the
    width and the L0 stay the TopK's (docs/design-notes.md §12).

    Parameters are equal up to the router (d_in E + d_in, minus the d_sae encoder bias); per token the encoder
    computes e * d_expert + shared_expert latents instead of d_sae.
    """
    _check_topk(cfg_topk, "width_matched")
    _check_n_experts(n_experts, "width_matched")
    d_sae = cfg_topk.d_sae
    routed = d_sae - _check_shared(cfg_topk, shared_expert, k_shared, "width_matched")
    if not _is_count(router_top_e):
        raise ConfigError(f"width_matched: router_top_e must be an int >= 1, got {router_top_e!r}.")
    k = cfg_topk.k - k_shared
    if routed % n_experts:
        raise ConfigError(f"width_matched: n_experts ({n_experts}) must divide cfg_topk.d_sae"
                          f"{' - shared_expert' if shared_expert else ''} ({routed}); choose a divisor of "
                          f"{routed} or change d_sae.")
    if k > router_top_e * (routed // n_experts):
        raise ConfigError(f"width_matched: each of the {n_experts} experts would have {routed // n_experts} "
                          f"latents, fewer than {'the routed k' if k_shared else 'cfg_topk.k'} ({k}); use fewer "
                          f"experts or a smaller k.")
    return cfg_topk.replace(arch="switch", n_experts=n_experts, k=k, router_top_e=router_top_e,
                            shared_expert=shared_expert, k_shared=k_shared)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_shared(cfg_topk: SAEConfig, shared_expert: int, k_shared: int, fn: str) -> int:
    """The shared expert's width, once its k_shared fits inside the TopK's k (the rest are routed)."""
    if not (isinstance(shared_expert, int) and not isinstance(shared_expert, bool) and shared_expert >= 0):
        raise ConfigError(f"{fn}: shared_expert must be an int >= 0, got {shared_expert!r}.")
    if shared_expert and not 1 <= k_shared < cfg_topk.k:
        raise ConfigError(f"{fn}: k_shared ({k_shared!r}) must be in 1..cfg_topk.k - 1 ({cfg_topk.k - 1}): "
                          f"it is taken out of the TopK's k, and the routed experts need at least one.")
    if shared_expert and not shared_expert < cfg_topk.d_sae:
        raise ConfigError(f"{fn}: shared_expert ({shared_expert}) must be below cfg_topk.d_sae "
                          f"({cfg_topk.d_sae}); the routed experts need latents too.")
    return shared_expert


def ledger_table(cfgs: dict[str, SAEConfig]) -> str:
    """Plain-text table of forward MFLOP per token and parameters, one row per named config.

    "e" is the experts per token (top-e routing), "shared" the shared expert's width, "L0" the active latents
    per token. "x first" is the total forward FLOPs relative to the first row. (The ratio column of the GPT-2 table in
    docs/design-notes.md §5 is encoder + router only, without the decoder's 2 k d_in.)
    """
    if not isinstance(cfgs, dict) or not cfgs:
        raise ArgumentError("ledger_table: cfgs must be a non-empty dict {name: SAEConfig}.")
    for name, cfg in cfgs.items():
        if not isinstance(cfg, SAEConfig):
            raise ArgumentError(f"ledger_table: cfgs[{name!r}] must be an SAEConfig, got {type(cfg).__name__}.")
    header = ("name", "arch", "d_sae", "E", "e", "shared", "L0", "router", "encoder", "decoder", "total",
              "x first", "params")
    first_total = forward_flops(next(iter(cfgs.values())))["total"]
    rows = [header]
    for name, cfg in cfgs.items():
        f = forward_flops(cfg)
        rows.append((str(name), cfg.arch, str(cfg.d_sae), str(cfg.n_experts), str(cfg.router_top_e),
                     str(cfg.shared_expert), str(cfg.l0),
                     *(f"{f[item] / 1e6:.2f}" for item in ITEMS), f"{f['total'] / 1e6:.2f}",
                     f"{f['total'] / first_total:.3f}", f"{param_counts(cfg)['total'] / 1e6:.2f}M"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        # Text columns left-aligned, numbers right-aligned.
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = ["forward MFLOP per token (multiply-add = 2 FLOPs)", fmt(header), "-" * len(fmt(header))]
    return "\n".join(lines + [fmt(row) for row in rows[1:]])


def steps_for_flop_budget(cfg: SAEConfig, budget_flops: float, batch_size: int) -> int:
    """Whole training steps that fit in budget_flops at training_flops(cfg)["total"] * batch_size a step."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ArgumentError(f"steps_for_flop_budget: batch_size must be a positive int, got {batch_size!r}.")
    if isinstance(budget_flops, bool) or not isinstance(budget_flops, (int, float)) or not budget_flops > 0 \
            or budget_flops == float("inf"):
        raise ArgumentError(f"steps_for_flop_budget: budget_flops must be a finite number > 0, "
                         f"got {budget_flops!r}.")
    per_step = training_flops(cfg)["total"] * batch_size
    steps = int(budget_flops // per_step)
    if steps < 1:
        raise ArgumentError(f"steps_for_flop_budget: budget_flops ({budget_flops:.3g}) is less than one "
                         f"training step ({per_step:.3g} FLOPs at batch_size={batch_size}); raise the budget "
                         f"or lower batch_size.")
    return steps


def _with_total(items: dict[str, int]) -> dict[str, int]:
    return {**items, "total": sum(items.values())}


def _check_topk(cfg_topk: SAEConfig, fn: str) -> None:
    if not isinstance(cfg_topk, SAEConfig) or cfg_topk.arch != "topk":
        got = cfg_topk.arch if isinstance(cfg_topk, SAEConfig) else type(cfg_topk).__name__
        raise ConfigError(f"{fn}: cfg_topk must be an SAEConfig with arch='topk' (the dense baseline), "
                          f"got {got!r}.")


def _check_n_experts(n_experts: int, fn: str) -> None:
    if not isinstance(n_experts, int) or isinstance(n_experts, bool) or n_experts < 1:
        raise ConfigError(f"{fn}: n_experts must be an int >= 1, got {n_experts!r}.")
