"""Synthetic activations: the one home for made-up data (tests, exercises, quick demos and benchmarks).

``ToyData``: each vector is a sparse non-negative combination of `n_features` random unit "true features" plus a
mean offset and a little noise. Features come in `n_groups` groups and a vector only mixes features of one group, which
mimics the domain structure a Switch SAE's router can exploit.

``synthetic_batches``: activation-like batches for timing training steps, where only shapes and a realistic
offset matter (``python -m switch_sae_mini bench``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ..errors import ArgumentError


class ToyData:
    """A seeded generator of [batch, d_in] activations; `batches(batch_size)` iterates forever."""

    def __init__(self, d_in: int = 32, n_features: int = 256, active: int = 4, n_groups: int = 4,
                 noise: float = 0.01, offset: float = 1.0, seed: int = 0) -> None:
        if n_features % n_groups:
            raise ArgumentError(f"n_features ({n_features}) must be divisible by n_groups ({n_groups}).")
        if not 0 < active <= n_features // n_groups:
            raise ArgumentError(f"active must be in 1..n_features/n_groups={n_features // n_groups}, got {active}.")
        self.d_in, self.n_features, self.active, self.n_groups = d_in, n_features, active, n_groups
        self.noise, self.seed = noise, seed
        gen = torch.Generator().manual_seed(seed)
        features = torch.randn(n_features, d_in, generator=gen)
        self.features = features / features.norm(dim=-1, keepdim=True)  # [n_features, d_in]
        self.mean = offset * torch.randn(d_in, generator=gen) / d_in ** 0.5

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(activations [batch, d_in], group of each row [batch])."""
        per_group = self.n_features // self.n_groups
        group = torch.randint(self.n_groups, (batch_size,), generator=generator)
        local = torch.rand(batch_size, per_group, generator=generator).argsort(-1)[:, : self.active]
        idx = group[:, None] * per_group + local
        coef = torch.rand(batch_size, self.active, generator=generator) + 0.5
        x = (coef[..., None] * self.features[idx]).sum(1) + self.mean
        x = x + self.noise * torch.randn(batch_size, self.d_in, generator=generator)
        return x, group

    def batches(self, batch_size: int = 256, n_batches: int | None = None) -> Iterator[Tensor]:
        """Deterministic stream of batches (the same seed gives the same stream)."""
        gen = torch.Generator().manual_seed(self.seed + 1)
        i = 0
        while n_batches is None or i < n_batches:
            yield self.sample(batch_size, gen)[0]
            i += 1


def synthetic_batches(d_in: int, batch: int, n: int = 4, seed: int = 0) -> list[Tensor]:
    """Activation-like data: a random low-rank signal plus noise and a common offset (what b_dec centres)."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.randn(64, d_in, generator=gen)
    offset = torch.randn(d_in, generator=gen)
    return [torch.randn(batch, 64, generator=gen) @ basis / 8 + 0.3 * torch.randn(batch, d_in, generator=gen)
            + offset for _ in range(n)]
