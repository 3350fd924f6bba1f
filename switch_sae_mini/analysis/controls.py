"""Controls for reading the Switch SAE's decoder geometry (Mudide et al. 2024, section 5.2 and appendix).

A fraction of latents with a near-duplicate "in another expert" means nothing by itself: any wide dictionary has
some near-parallel rows. So each number here comes with the same number for dictionaries that no router split:
- a TopK SAE of the same total width, data and steps, its latents split into E **random blocks** ("arbitrary
  experts", as in the paper's appendix, but shuffled so that no block follows the training order);
- a **random dictionary** of the same shape (the chance level of the cosine at this d_in).

If routing causes duplication, the Switch SAE sits clearly above both and grows with E. The same goes for the
geometry metric: an expert's encoder vectors are each other's nearest neighbours more often than chance (1/E),
its decoder vectors less so (docs/design-notes.md §7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import ArgumentError
from .geometry import cosine_neighbours, decoder_neighbours


def random_blocks(d_sae: int, n_experts: int, seed: int = 0) -> Tensor:
    """A permutation of the d_sae latents: block e (of E equal blocks) is perm[e*d_sae/E : (e+1)*d_sae/E]."""
    if n_experts < 2 or d_sae % n_experts:
        raise ArgumentError(f"random_blocks needs n_experts >= 2 dividing d_sae={d_sae}; got n_experts={n_experts}.")
    return torch.randperm(d_sae, generator=torch.Generator().manual_seed(seed))


def cross_block_cosine(W_dec: Float[Tensor, "d_sae d_in"], n_experts: int,
                       order: Tensor | None = None) -> Float[Tensor, " d_sae"]:
    """Each decoder row's largest cosine to a row in another block. Blocks are the E contiguous experts, or, with
    `order` (a permutation, see random_blocks), the blocks of W_dec[order] (rows then come in that order)."""
    rows = W_dec.detach().float().cpu()
    return decoder_neighbours(rows if order is None else rows[order], n_experts).cos_other_expert


def cross_block_duplicate_fraction(W_dec: Float[Tensor, "d_sae d_in"], n_experts: int, threshold: float = 0.9,
                                   order: Tensor | None = None) -> float:
    """Fraction of decoder rows whose nearest row in another block has cosine > threshold (see
    cross_block_cosine)."""
    if not 0.0 < threshold < 1.0:
        raise ArgumentError(f"threshold must be in (0, 1), got {threshold}.")
    return float((cross_block_cosine(W_dec, n_experts, order) > threshold).float().mean())


class DuplicateRow(NamedTuple):
    n_experts: int
    switch: float
    """Switch SAE with E experts: fraction of latents with a > threshold twin in another expert."""
    topk_blocks: float
    """The TopK SAE's decoder split into E random blocks (mean over `draws` partitions)."""
    random_dictionary: float
    """A Gaussian dictionary of the same shape, split into E contiguous blocks."""
    switch_mean_cos: float
    """The Switch SAE's mean, over latents, of the best cosine in another expert (no threshold)."""
    topk_mean_cos: float
    """The same mean for the TopK SAE split into random blocks (mean over the draws)."""


@torch.no_grad()
def duplicates_with_control(switch_decoders: Mapping[int, Tensor], topk_W_dec: Tensor, threshold: float = 0.9,
                            seed: int = 0, draws: int = 3) -> list[DuplicateRow]:
    """One DuplicateRow per E in `switch_decoders` ({E: W_dec}); every decoder must have topk_W_dec's shape."""
    if not 0.0 < threshold < 1.0:
        raise ArgumentError(f"threshold must be in (0, 1), got {threshold}.")
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for n_experts, W_dec in sorted(switch_decoders.items()):
        if W_dec.shape != topk_W_dec.shape:
            raise ArgumentError(f"the E={n_experts} decoder has shape {tuple(W_dec.shape)} but the TopK control has "
                                f"{tuple(topk_W_dec.shape)}: train the control with the same d_sae and d_in.")
        blocks = [cross_block_cosine(topk_W_dec, n_experts, random_blocks(len(topk_W_dec), n_experts, seed + draw))
                  for draw in range(draws)]
        switch = cross_block_cosine(W_dec, n_experts)
        noise = torch.randn(tuple(topk_W_dec.shape), generator=generator)
        rows.append(DuplicateRow(n_experts=n_experts, switch=float((switch > threshold).float().mean()),
                                 topk_blocks=sum(float((b > threshold).float().mean()) for b in blocks) / draws,
                                 random_dictionary=cross_block_duplicate_fraction(noise, n_experts, threshold),
                                 switch_mean_cos=float(switch.mean()),
                                 topk_mean_cos=sum(float(b.mean()) for b in blocks) / draws))
    return rows


def duplicate_verdict(rows: list[DuplicateRow], threshold: float = 0.9, margin: float = 2.0,
                      rare: float = 0.005) -> str:
    """The sentence the numbers support. Routing-caused duplication needs the Switch fraction above `margin` x the
    TopK control (and above the random dictionary) at every E, and growing with E. Where twins are `rare` (under
    0.5% of latents in every SAE: a handful of rows), the verdict reads the threshold-free mean cosine instead."""
    span = ", ".join(f"E={r.n_experts}: {r.switch:.2%} vs {r.topk_blocks:.2%}" for r in rows)
    if max(max(r.switch, r.topk_blocks, r.random_dictionary) for r in rows) < rare:
        means = ", ".join(f"E={r.n_experts}: {r.switch_mean_cos:.3f} vs {r.topk_mean_cos:.3f}" for r in rows)
        closer = sum(r.switch_mean_cos > r.topk_mean_cos for r in rows)
        grows = all(b.switch_mean_cos >= a.switch_mean_cos for a, b in zip(rows, rows[1:]))
        return (f"Twins (cos > {threshold}) are too rare here to attribute (Switch vs TopK control: {span}). "
                f"Without a threshold, each latent's best cosine in another expert averages above the TopK "
                f"control's at {closer}/{len(rows)} values of E{' and grows with E' if grows else ''} ({means}).")
    above = [r for r in rows if r.switch > margin * max(r.topk_blocks, r.random_dictionary) and r.switch > 0]
    grows = all(b.switch >= a.switch for a, b in zip(rows, rows[1:]))
    if len(above) == len(rows) and grows and len(rows) > 1:
        return (f"Routing causes duplicates here: at every E the Switch SAE has more than {margin:g}x the TopK "
                f"control's rate of cross-expert twins (cos > {threshold}), and the rate grows with E ({span}).")
    if above:
        return (f"Partly: the Switch SAE is above {margin:g}x the TopK control at {len(above)}/{len(rows)} values "
                f"of E{'' if grows else ', and the rate does not grow steadily with E'} ({span}).")
    return (f"Not attributable to routing at this scale: the Switch SAE's rate of twins (cos > {threshold}) is "
            f"within {margin:g}x of a TopK SAE split at random ({span}).")


class NeighbourShare(NamedTuple):
    per_latent: Float[Tensor, " d_sae"]
    """Fraction of each latent's n_neighbours nearest vectors (by cosine) that belong to its own expert."""
    mean: float
    chance: float
    """The expected fraction if experts ignored geometry: (d_expert - 1) / (d_sae - 1), about 1/E."""


@torch.no_grad()
def same_expert_neighbours(vectors: Float[Tensor, "d_sae d"], n_experts: int, n_neighbours: int = 10,
                           order: Tensor | None = None) -> NeighbourShare:
    """For encoder columns or decoder rows (expert e owns a contiguous block, or the blocks of vectors[order]):
    how often a latent's nearest neighbours sit in its own expert, against chance."""
    d_sae = vectors.shape[0]
    if n_experts < 2 or d_sae % n_experts:
        raise ArgumentError(f"same_expert_neighbours needs n_experts >= 2 dividing the {d_sae} vectors; got "
                            f"n_experts={n_experts}.")
    if not 1 <= n_neighbours < d_sae:
        raise ArgumentError(f"n_neighbours must be in 1..{d_sae - 1}, got {n_neighbours}.")
    rows = vectors.detach().float().cpu()
    rows = rows if order is None else rows[order]
    idx = cosine_neighbours(rows, 1, top=n_neighbours).idx  # [d_sae, n_neighbours]
    expert_of = torch.arange(d_sae) // (d_sae // n_experts)
    share = (expert_of[idx] == expert_of[:, None]).float().mean(-1)
    return NeighbourShare(per_latent=share, mean=float(share.mean()),
                          chance=(d_sae // n_experts - 1) / (d_sae - 1))


def geometry_verdict(encoder: NeighbourShare, decoder: NeighbourShare, control: NeighbourShare | None = None,
                     clear: float = 1.5) -> str:
    """The paper's reading (encoders cluster by expert, decoders intermix), stated only as far as the numbers go:
    `clear` x chance counts as clustering; a decoder below chance has its nearest rows in *other* experts."""
    enc, dec = encoder.mean / encoder.chance, decoder.mean / decoder.chance
    text = (f"encoder neighbours share their expert {encoder.mean:.1%} of the time ({enc:.1f}x chance), decoder "
            f"neighbours {decoder.mean:.1%} ({dec:.1f}x chance)")
    if control is not None:
        text += f"; a TopK encoder split at random: {control.mean:.1%} ({control.mean / control.chance:.1f}x)"
    if enc >= clear and enc > clear * dec:
        head = "Encoders cluster by expert and decoders do not, as in the paper"
    elif enc >= clear:
        head = "Both encoders and decoders cluster by expert"
    elif enc > dec * clear:
        head = "Encoders sit closer to their own expert than decoders, but neither clusters clearly"
    else:
        head = "No clustering by expert beyond chance at this scale"
    if dec < 1 / clear:
        head += "; decoder rows find their nearest neighbours in other experts more often than chance"
    return f"{head}: {text}."
