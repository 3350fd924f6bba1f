"""A Switch SAE that SAEBench's evaluations accept as a custom SAE (SAELens has no routed architecture to export).

SAEBench (sae_bench 0.6's `custom_saes/base_sae.py` and its README) asks of a custom SAE object: `encode(x)` ->
dense latents [..., d_sae], `decode(latents)`, `forward(x)`, parameters `W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`
(unit-norm rows), `b_enc`, `b_dec`, `device` and `dtype` attributes, and a `cfg` with the fields of its
`CustomSAEConfig` (model_name, d_in, d_sae, hook_layer, hook_name, context_size, architecture, dtype, device, and a
handful its core eval reads). `SAEBenchSwitchSAE` provides exactly that around one of our Switch SAEs, sharing its
tensors (no copy):

    bench_sae = SAEBenchSwitchSAE(sae, model_name="gpt2", hook_name="blocks.8.hook_resid_post")
    # then, on a machine with the model hub: sae_bench's run_all_evals_custom_saes with {"switch": bench_sae}

`encode` returns the routed expert's gate-scaled latents (the Switch SAE's feature activations), so
decode(encode(x)) is the Switch SAE's reconstruction.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError


@dataclass
class SAEBenchConfig:
    """The fields of SAEBench's CustomSAEConfig (sae_bench 0.6), filled for a Switch SAE."""

    model_name: str
    d_in: int
    d_sae: int
    hook_layer: int
    hook_name: str
    context_size: int | None = None
    hook_head_index: int | None = None
    architecture: str = "switch"
    apply_b_dec_to_input: bool = True
    finetuning_scaling_factor: bool = False
    activation_fn_str: str = "topk"
    activation_fn_kwargs: dict = field(default_factory=dict)
    prepend_bos: bool = True
    normalize_activations: str = "none"
    dtype: str = "float32"
    device: str = "cpu"
    model_from_pretrained_kwargs: dict = field(default_factory=dict)
    dataset_path: str = ""
    dataset_trust_remote_code: bool = True
    seqpos_slice: tuple = (None,)
    training_tokens: int = -100_000
    sae_lens_training_version: str | None = None
    neuronpedia_id: str | None = None
    n_experts: int = 1
    """Switch only (not read by SAEBench): routed experts, each owning (d_sae - shared_expert) / n_experts
    contiguous latents."""
    shared_expert: int = 0
    """Switch only (not read by SAEBench): width of the always-on expert, the last latents (SAEConfig)."""
    router_top_e: int = 1
    """Switch only (not read by SAEBench): experts per token (SAEConfig)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SAEBenchSwitchSAE(nn.Module):
    """SAEBench's custom-SAE interface around a Switch SAE (see the module docstring)."""

    def __init__(self, sae, model_name: str | None = None, hook_name: str | None = None,
                 hook_layer: int | None = None, context_size: int | None = None) -> None:
        super().__init__()
        if getattr(getattr(sae, "cfg", None), "arch", None) != "switch":
            raise ArgumentError("SAEBenchSwitchSAE wraps a Switch SAE (cfg.arch='switch'); ReLU and TopK SAEs go "
                                "to SAEBench through export_saelens instead.")
        provenance = dict(getattr(sae, "provenance", {}) or {})
        model_name = model_name or provenance.get("model_name")
        hook_name = hook_name or provenance.get("hook")
        if not model_name or not hook_name:
            raise ArgumentError("SAEBenchSwitchSAE needs model_name= and hook_name= (the SAE's provenance does not "
                                "record them).")
        if hook_layer is None:
            match = re.match(r"blocks\.(\d+)\.", hook_name)
            if not match:
                raise ArgumentError(f"cannot read the layer from hook_name={hook_name!r}; pass hook_layer=.")
            hook_layer = int(match.group(1))
        self.sae = sae.eval()
        cfg = sae.cfg
        self.cfg = SAEBenchConfig(
            model_name=model_name, d_in=cfg.d_in, d_sae=cfg.d_sae, hook_layer=hook_layer, hook_name=hook_name,
            context_size=context_size or provenance.get("context_len"), activation_fn_kwargs={"k": cfg.l0},
            prepend_bos=provenance.get("prepend_bos", True), dataset_path=str(provenance.get("source") or ""),
            training_tokens=int(provenance.get("tokens_trained", -100_000)), n_experts=cfg.n_experts,
            shared_expert=cfg.shared_expert, router_top_e=cfg.router_top_e,
            dtype=str(sae.W_dec.dtype).removeprefix("torch."), device=str(sae.W_dec.device))

    # SAEBench reads these as attributes: the wrapped SAE's own tensors
    W_enc = property(lambda self: self.sae.W_enc)
    W_dec = property(lambda self: self.sae.W_dec)
    b_enc = property(lambda self: self.sae.b_enc)
    b_dec = property(lambda self: self.sae.b_dec)
    device = property(lambda self: self.sae.W_dec.device)
    dtype = property(lambda self: self.sae.W_dec.dtype)

    def encode(self, x: Tensor) -> Tensor:
        """Dense latents [..., d_sae]: the routed expert's TopK values, scaled by the gate; zeros elsewhere."""
        return self.sae(x).latents

    def decode(self, feature_acts: Tensor) -> Tensor:
        return feature_acts.to(self.dtype) @ self.sae.W_dec + self.sae.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.sae(x).x_hat

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        self.cfg.dtype = str(self.dtype).removeprefix("torch.")
        self.cfg.device = str(self.device)
        return self

    @torch.no_grad()
    def check_decoder_norms(self) -> bool:
        """SAEBench expects unit-norm decoder rows (our Switch SAEs train with them)."""
        norms = self.sae.W_dec.norm(dim=1)
        return bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-5))
