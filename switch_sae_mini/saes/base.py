"""What every SAE shares: the forward output, input checks, the functional core and the SAEBase module.

Parameters follow SAELens/SAEBench names and shapes: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
b_dec [d_in]. The algorithmic steps are small module-level functions so notebooks and exercise checks can call
exactly the code the classes use.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..config import SAEConfig
from ..errors import SwitchSAEError


class InputError(SwitchSAEError, ValueError):
    """Activations of the wrong shape or with non-finite values."""


class ForwardOutput(NamedTuple):
    """What every SAE's forward returns. Unused loss terms are zero tensors; unused fields are None."""

    x_hat: Float[Tensor, "batch d_in"]
    latent_acts: Tensor
    """TopK/Switch: the k active values per token [batch, k] (Switch: already scaled by the gate).
    ReLU: the dense latents [batch, d_sae]."""
    latent_idx: Int[Tensor, "batch k"] | None
    """TopK/Switch: global latent index of each value in latent_acts; None for ReLU."""
    d_sae: int
    """Dictionary size, so the dense `latents` view can be built."""
    loss: Tensor
    """Total training loss = mse_loss + the architecture's auxiliary terms (already weighted)."""
    mse_loss: Tensor
    """Per-element mean squared error (the paper's summed squared error divided by d_in)."""
    l1_loss: Tensor
    """ReLU: sum_j f_j * ||W_dec[j]|| averaged over tokens, divided by d_in (unweighted)."""
    auxk_loss: Tensor
    """TopK: Gao et al.'s normalised error of the AuxK dead-latent reconstruction of the residual, in per-element
    MSE units (see auxk_error; unweighted)."""
    lb_loss: Tensor
    """Switch: load-balancing loss E * sum_i f_i P_i (unweighted; 1 under uniform routing)."""
    expert_idx: Int[Tensor, " batch"] | None = None
    router_probs: Float[Tensor, "batch n_experts"] | None = None

    @property
    def latents(self) -> Float[Tensor, "batch d_sae"]:
        """Dense latents [batch, d_sae] with zeros where inactive (built on demand)."""
        if self.latent_idx is None:
            return self.latent_acts
        dense = self.latent_acts.new_zeros(*self.latent_acts.shape[:-1], self.d_sae)
        return dense.scatter(-1, self.latent_idx, self.latent_acts)


# ----------------------------------------------------------------------------- functional core


def topk_activation(pre_acts: Float[Tensor, "... d"], k: int) -> tuple[Tensor, Tensor]:
    """Keep the k largest (ReLU'd) pre-activations per row: returns (values [..., k], indices [..., k]).

    ReLU is applied before TopK (Gao et al. 2024), so fewer than k values may be positive.
    """
    values, indices = torch.relu(pre_acts).topk(k, dim=-1, sorted=False)
    return values, indices


def sparse_decode(values: Float[Tensor, "batch k"], indices: Int[Tensor, "batch k"],
                  W_dec: Float[Tensor, "d_sae d_in"]) -> Float[Tensor, "batch d_in"]:
    """sum_j values_j * W_dec[indices_j] without materialising dense latents.

    embedding_bag is a fused gather-and-sum: 12-20x faster than indexing on CPU (docs/design-notes.md §9).
    """
    flat_vals, flat_idx = values.reshape(-1, values.shape[-1]), indices.reshape(-1, indices.shape[-1])
    flat_vals = flat_vals.to(W_dec.dtype)  # under autocast the values may be bf16; embedding_bag needs one dtype
    out = F.embedding_bag(flat_idx, W_dec, per_sample_weights=flat_vals, mode="sum")
    return out.reshape(*values.shape[:-1], W_dec.shape[-1])


def mse_per_element(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean over tokens and dimensions of (x_hat - x)^2; multiply by d_in for the paper's "MSE"."""
    return (x_hat - x).pow(2).mean()


def geometric_median(points: Float[Tensor, "n d"], max_iter: int = 100, tol: float = 1e-5) -> Tensor:
    """Weiszfeld iteration from the mean (docs/design-notes.md §3): a robust centre to initialise b_dec and b_router."""
    points = points.detach().float()
    median = points.mean(0)
    for _ in range(max_iter):
        weights = 1.0 / (points - median).norm(dim=-1).clamp_min(1e-8)
        new = (weights[:, None] * points).sum(0) / weights.sum()
        if (new - median).norm() < tol:
            return new
        median = new
    return median



def check_input(x: Tensor, d_in: int, like: Tensor | None = None) -> Tensor:
    """Raise InputError for activations that cannot be encoded; return them in `like`'s dtype.

    The dtype boundary: activations in any floating dtype (float16 and bfloat16 as a GPU harvest gives them,
    float64) are cast to the SAE's parameter dtype, so x_hat and the losses come back in the SAE's dtype. To run
    an SAE in another precision, convert the SAE (``sae.double()``); autocast works on CUDA.
    """
    if not isinstance(x, Tensor):
        raise InputError(f"activations must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim < 1 or x.shape[-1] != d_in:
        raise InputError(f"activations have last dimension {tuple(x.shape)[-1:] or '()'} but the SAE has "
                         f"d_in={d_in}; pass tensors shaped [..., {d_in}] (or build the SAE with d_in="
                         f"{x.shape[-1] if x.ndim else '?'}).")
    if x.numel() == 0:
        raise InputError(f"activations are empty (shape {tuple(x.shape)}); pass at least one token.")
    if not x.is_floating_point():
        raise InputError(f"activations must be floating point, got dtype {x.dtype}.")
    if like is not None and x.device != like.device:
        raise InputError(f"activations are on device {x.device} but the SAE is on {like.device}; move one of "
                         f"them (x.to({str(like.device)!r}) or sae.to(...)).")
    if x.device.type == "meta":
        raise InputError("activations are on the meta device (shapes only, no values); pass real tensors.")
    # one summing pass first: a finite sum means no NaN/inf (either would make the sum NaN/inf); only a
    # non-finite sum (or a finite-but-huge overflow) pays for the element-wise check (python -m switch_sae_mini bench)
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise InputError(f"activations contain {int((~torch.isfinite(x)).sum())} NaN/inf values; clean them first "
                         f"(fp16 activations overflow easily: harvest in bf16 or fp32).")
    if like is None:
        return x
    if torch.is_autocast_enabled(like.device.type):
        return x  # autocast chooses the matmul precision
    return x.to(like.dtype)


# ----------------------------------------------------------------------------- modules


class SAEBase(nn.Module):
    """Shared parts: decoder-norm constraint, dead-latent counter and bias initialisation."""

    cfg: SAEConfig

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Tokens since each latent last fired (docs/design-notes.md §2); a buffer so it is saved with checkpoints.
        self.register_buffer("tokens_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))
        # Whether b_dec (and b_router) were set from data yet.
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        # Where the training activations came from (model, hook, source, ...): saved with checkpoints, filled by
        # train() when its batches know it, settable by hand; {} means unknown.
        self.provenance: dict = {}

    def _init_unit_decoder_and_tied_encoder(self) -> None:
        """TopK and Switch init (Gao et al.): random unit-norm decoder rows, encoder = decoder transpose, kept
        column-major (row j of the memory is latent j's encoder vector, the layout the sparse kernels write)."""
        W_dec = torch.randn(self.cfg.d_sae, self.cfg.d_in)
        W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.clone().t())

    @property
    def uses_decoder_norm(self) -> bool:
        return self.cfg.arch != "relu"

    def dead_mask(self) -> Tensor:
        return self.tokens_since_fired > self.cfg.dead_after_tokens

    @torch.no_grad()
    def update_dead_counter(self, fired: Tensor, n_tokens: int) -> None:
        """fired: bool [d_sae], which latents were active anywhere in the last batch of n_tokens."""
        self.tokens_since_fired.add_(n_tokens).masked_fill_(fired, 0)

    @torch.no_grad()
    def init_from_batch(self, x: Tensor) -> None:
        """Set b_dec to the geometric median of the first batch (docs/design-notes.md §3); ReLU keeps zero biases."""
        if self.uses_decoder_norm:
            flat = x.reshape(-1, x.shape[-1])
            self.b_dec.copy_(geometric_median(flat))
        self.initialized.fill_(True)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Unit-norm decoder rows (the decoder-norm constraint, docs/design-notes.md §3)."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each unit-norm decoder row (keeps the norm fixed)."""
        if self.W_dec.grad is None:
            return
        parallel = torch.linalg.vecdot(self.W_dec.grad, self.W_dec)  # one pass, no [d_sae, d_in] temporary
        self.W_dec.grad.addcmul_(parallel.unsqueeze(-1), self.W_dec, value=-1)

    def decode(self, latents: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """Dense latents -> reconstruction."""
        return latents @ self.W_dec + self.b_dec

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Dense latents (zeros where inactive)."""
        return self.forward(x).latents

    def _zero(self, x: Tensor) -> Tensor:
        return x.new_zeros(())
