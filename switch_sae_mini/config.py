"""Validated configuration dataclasses for SAEs and their training.

Every loss in this package is the paper's loss divided by ``d_in``: reconstruction is the per-element MSE
(the paper's summed squared error / d), so the load-balancing coefficient ``lb_coeff = 3`` means exactly what the
paper's "alpha = 3" means (docs/design-notes.md §2), and ReLU ``l1_coeff`` values are the paper's lambda values.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import SwitchSAEError

ARCHS = ("relu", "topk", "switch")


class ConfigError(SwitchSAEError, ValueError):
    """A configuration field has an invalid value; the message names the field and the fix."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Config:
    """replace / to_dict / from_dict shared by the config dataclasses."""

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a dict, refusing unknown fields (a misspelt key would otherwise be ignored silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        _check(not unknown, f"{cls.__name__} got unknown fields {unknown}; known fields are {sorted(known)}.")
        return cls(**data)


@dataclass(frozen=True)
class SAEConfig(_Config):
    """Architecture and loss coefficients of one sparse autoencoder.

    Build with keywords, e.g. ``SAEConfig(arch="switch", d_in=768, d_sae=24576, k=32, n_experts=16)``.
    """

    arch: Literal["relu", "topk", "switch"] = "topk"
    """"relu" (dense ReLU + L1), "topk" (Gao et al.) or "switch" (routed experts); docs/design-notes.md §1."""
    d_in: int = 128
    """Width of the input activations (768 for GPT-2 small's residual stream)."""
    d_sae: int = 4096
    """Total number of latents (dictionary size M). For Switch: all experts together."""
    k: int = 32
    """Active latents per token (TopK and Switch; for Switch, chosen inside the routed expert). Unused by ReLU."""
    n_experts: int = 1
    """Number of experts E. Must be 1 unless arch == "switch"; d_sae must be divisible by it."""
    l1_coeff: float = 5.0
    """ReLU only: lambda of the decoder-norm-weighted L1 penalty (paper values 1-95 at d_in=768)."""
    auxk_coeff: float = 1 / 32
    """TopK only: weight of the AuxK dead-latent loss (Gao et al.: 1/32). Switch trains without it
    (docs/design-notes.md §2)."""
    auxk_k: int | None = None
    """TopK only: latents used by AuxK; None means d_in // 2 as in Gao et al."""
    dead_after_tokens: int = 10_000_000
    """A latent is dead if it has not fired in this many training tokens (Gao et al.; the paper uses 10M)."""
    lb_coeff: float = 3.0
    """Switch only: alpha of the load-balancing loss E * sum_i f_i P_i, relative to per-element MSE (paper: 3)."""
    gate: Literal["prob", "heaviside"] = "prob"
    """Switch only: scale the routed expert's latents by its router probability ("prob", the paper) or by 1."""
    routed: bool = True
    """Switch only: compute only the routed expert's encoder (fast). False runs the masked-dense reference."""
    fused: bool = True
    """TopK and Switch: sparse-gradient kernels (kernels.py): encoder and decoder gradients touch only the k active
    latents per token. False runs plain autograd, the reference the kernels are tested against (same values)."""
    shared_expert: int = 0
    """Switch only: width of an always-on ("shared") expert that every token uses besides its routed expert; 0 for
    none. Its latents are the last `shared_expert` of d_sae, after the n_experts routed blocks, so d_sae -
    shared_expert must split into n_experts blocks. Its gate is 1 and it is not in the router or the
    load-balancing loss, which count the n_experts routed experts only (as the reference repository's
    switch1on.py after its fix). docs/design-notes.md §12."""
    k_shared: int = 0
    """Switch only: active latents per token from the shared expert, its own TopK beside the routed expert's k,
    so the L0 is k + k_shared (the reference's switch1on.py took one TopK over both; a separate k keeps each
    part's L0 fixed). Must be >= 1 with a shared expert and 0 without."""
    router_top_e: int = 1
    """Switch only: experts per token (top-e routing, the reference repository's moe.py). k counts in total over
    the e experts: each chosen expert's latents are scaled by its own softmax probability (not renormalised over
    the e, so that e = 1 is exactly the Switch SAE; renormalising would make e = 1 the "heaviside" gate) and one
    TopK of k runs over their union. The load-balancing loss counts each of a token's e choices (f sums to 1).
    Encoder FLOPs grow by e. docs/design-notes.md §12."""

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, f"SAEConfig.arch must be one of {ARCHS}, got {self.arch!r}.")
        _check(_is_int(self.d_in) and self.d_in > 0, f"SAEConfig.d_in must be a positive int, got {self.d_in!r}.")
        _check(_is_int(self.d_sae) and self.d_sae > 0,
               f"SAEConfig.d_sae must be a positive int, got {self.d_sae!r}.")
        _check(_is_int(self.n_experts) and self.n_experts >= 1,
               f"SAEConfig.n_experts must be an int >= 1, got {self.n_experts!r}.")
        if self.arch != "switch":
            _check(self.n_experts == 1, f"SAEConfig.n_experts must be 1 for arch={self.arch!r} "
                                        f"(got {self.n_experts}); use arch='switch' for experts.")
        self._check_variants()
        if self.arch != "relu":
            _check(_is_int(self.k) and self.k > 0, f"SAEConfig.k must be a positive int, got {self.k!r}.")
            e = self.router_top_e
            _check(self.k <= e * self.d_expert,
                   f"SAEConfig.k ({self.k}) is larger than the {'expert ' if self.arch == 'switch' else ''}"
                   f"width {self.d_expert}{f' times router_top_e ({e})' if e > 1 else ''}; lower k or widen d_sae.")
        for name in ("l1_coeff", "auxk_coeff", "lb_coeff"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                   f"SAEConfig.{name} must be a finite number >= 0, got {value!r}.")
        if self.auxk_k is not None:
            _check(_is_int(self.auxk_k) and 0 < self.auxk_k <= self.d_sae,
                   f"SAEConfig.auxk_k must be None or an int in 1..d_sae, got {self.auxk_k!r}.")
        _check(_is_int(self.dead_after_tokens) and self.dead_after_tokens > 0,
               f"SAEConfig.dead_after_tokens must be a positive int, got {self.dead_after_tokens!r}.")
        _check(self.gate in ("prob", "heaviside"), f"SAEConfig.gate must be 'prob' or 'heaviside', got {self.gate!r}.")
        _check(isinstance(self.routed, bool), f"SAEConfig.routed must be a bool, got {self.routed!r}.")
        _check(isinstance(self.fused, bool), f"SAEConfig.fused must be a bool, got {self.fused!r}.")

    def _check_variants(self) -> None:
        """The shared expert and top-e routing (Switch only), then the split of the routed latents."""
        for name in ("shared_expert", "k_shared"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 0, f"SAEConfig.{name} must be an int >= 0, got {value!r}.")
        _check(_is_int(self.router_top_e) and self.router_top_e >= 1,
               f"SAEConfig.router_top_e must be an int >= 1, got {self.router_top_e!r}.")
        if self.arch != "switch":
            for name, none in (("shared_expert", 0), ("k_shared", 0), ("router_top_e", 1)):
                _check(getattr(self, name) == none, f"SAEConfig.{name} is for arch='switch' only (got "
                                                    f"{getattr(self, name)} with arch={self.arch!r}); leave it {none}.")
        _check(self.router_top_e <= self.n_experts,
               f"SAEConfig.router_top_e ({self.router_top_e}) exceeds n_experts ({self.n_experts}); lower it.")
        _check(self.shared_expert < self.d_sae,
               f"SAEConfig.shared_expert ({self.shared_expert}) must leave routed latents: it is not below d_sae "
               f"({self.d_sae}); widen d_sae or shrink the shared expert.")
        routed = self.d_sae - self.shared_expert
        shared = f" - shared_expert ({self.shared_expert}) = {routed}" if self.shared_expert else ""
        example = self.shared_expert + self.n_experts * max(1, routed // self.n_experts)
        _check(routed % self.n_experts == 0,
               f"SAEConfig.d_sae ({self.d_sae}){shared} must be divisible by n_experts ({self.n_experts}); "
               f"pick d_sae as a multiple{' plus shared_expert' if self.shared_expert else ''}, e.g. {example}.")
        if self.shared_expert:
            _check(1 <= self.k_shared <= self.shared_expert,
                   f"SAEConfig.k_shared must be in 1..shared_expert ({self.shared_expert}) with a shared expert, "
                   f"got {self.k_shared}.")
        else:
            _check(self.k_shared == 0, f"SAEConfig.k_shared ({self.k_shared}) needs a shared expert: set "
                                       f"shared_expert > 0 or leave k_shared 0.")

    @property
    def d_expert(self) -> int:
        """Latents per routed expert (d_sae for non-Switch SAEs)."""
        return (self.d_sae - self.shared_expert) // self.n_experts

    @property
    def d_routed(self) -> int:
        """Latents of the routed experts together: d_sae without the shared expert."""
        return self.d_sae - self.shared_expert

    @property
    def l0(self) -> int:
        """Active latents per token, the most a token can have: k (+ k_shared with a shared expert)."""
        return self.k + self.k_shared if self.arch != "relu" else self.d_sae

    @property
    def is_plain_switch(self) -> bool:
        """A Switch SAE without the variants (top-1 routing, no shared expert)."""
        return self.arch == "switch" and self.shared_expert == 0 and self.router_top_e == 1

    @property
    def k_aux(self) -> int:
        """Latents used by the AuxK loss."""
        return self.auxk_k if self.auxk_k is not None else max(1, self.d_in // 2)



@dataclass(frozen=True)
class TrainConfig(_Config):
    """Optimisation recipe (docs/design-notes.md §3): Adam, no warm-up, linear LR decay over the last 20%, clip 1.0."""

    n_steps: int = 1000
    """Number of optimizer steps (one batch each)."""
    lr: float | None = None
    """Adam learning rate; None means 2e-4 / sqrt(d_sae / 2**14) (Gao et al. rule on total width)."""
    decay_start: float = 0.8
    """Fraction of n_steps after which the LR decays linearly to 0."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (0 disables)."""
    l1_warmup: float = 0.05
    """ReLU only: fraction of steps over which the L1 coefficient ramps up linearly from 0 (docs/design-notes.md §3)."""
    seed: int = 0
    """Seed for initialisation and any sampling inside training."""
    log_every: int = 10
    """Record metrics in the history every this many steps (and at the last step)."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every this many steps into checkpoint_dir (0: only at the end if a dir is set)."""
    keep_checkpoints: int = 2
    """How many training snapshots checkpoint_dir keeps (the newest ones); a damaged newest one then falls back."""

    def __post_init__(self) -> None:
        _check(_is_int(self.n_steps) and self.n_steps > 0,
               f"TrainConfig.n_steps must be a positive int, got {self.n_steps!r}.")
        if self.lr is not None:
            _check(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
                   f"TrainConfig.lr must be None or a positive number, got {self.lr!r}.")
        for name in ("decay_start", "l1_warmup"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and 0 <= value <= 1,
                   f"TrainConfig.{name} must be a fraction in [0, 1], got {value!r}.")
        _check(isinstance(self.grad_clip, (int, float)) and self.grad_clip >= 0,
               f"TrainConfig.grad_clip must be >= 0, got {self.grad_clip!r}.")
        for name in ("seed", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 0, f"TrainConfig.{name} must be an int >= 0, got {value!r}.")
        _check(self.log_every > 0, "TrainConfig.log_every must be >= 1.")
        _check(_is_int(self.keep_checkpoints) and self.keep_checkpoints >= 1,
               f"TrainConfig.keep_checkpoints must be an int >= 1, got {self.keep_checkpoints!r}.")

    def learning_rate(self, d_sae: int) -> float:
        """The configured LR, or the paper's width-scaled default."""
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(d_sae / 2**14)
