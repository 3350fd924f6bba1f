"""The controls of chapter 05 (issue 15): cross-expert duplicates against a TopK SAE split at random and a random
dictionary, the same-expert neighbour share against chance, their verdicts, and the t-SNE."""

import pytest
import torch
import torch.nn.functional as F

from switch_sae_mini import analysis
from switch_sae_mini.errors import ArgumentError


def _planted(d_sae=64, d_in=32, n_experts=4, twins_across=True, seed=0):
    """A decoder whose rows come in pairs of near-identical twins, either in different experts or in one."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(d_sae // 2, d_in, generator=g)
    twin = base + 0.01 * torch.randn(base.shape, generator=g)
    d_expert = d_sae // n_experts
    W = torch.empty(d_sae, d_in)
    if twins_across:  # first half of the experts holds the originals, second half the twins
        W[: d_sae // 2], W[d_sae // 2:] = base, twin
    else:  # each twin right after its original, inside one expert
        W[0::2], W[1::2] = base, twin
    assert d_expert % 2 == 0
    return W


def test_random_blocks_is_a_seeded_partition_into_equal_blocks():
    a, b = analysis.random_blocks(64, 4, seed=3), analysis.random_blocks(64, 4, seed=3)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(64))
    assert not torch.equal(a, analysis.random_blocks(64, 4, seed=4))
    with pytest.raises(ArgumentError, match="dividing"):
        analysis.random_blocks(64, 5)


def test_cross_block_fraction_counts_twins_in_other_blocks_only():
    across, within = _planted(twins_across=True), _planted(twins_across=False)
    assert analysis.cross_block_duplicate_fraction(across, 4) == 1.0
    assert analysis.cross_block_duplicate_fraction(within, 4) == 0.0
    # the same rows, split at random: most twins now land in different blocks
    shuffled = analysis.cross_block_duplicate_fraction(within, 4, order=analysis.random_blocks(64, 4))
    assert 0.5 < shuffled < 1.0
    with pytest.raises(ArgumentError, match="threshold"):
        analysis.cross_block_duplicate_fraction(across, 4, threshold=1.5)


def test_duplicates_with_control_and_its_verdict_both_ways():
    routed = {4: _planted(twins_across=True), 8: _planted(twins_across=True)}
    no_twins = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    rows = analysis.duplicates_with_control(routed, no_twins)
    assert [r.n_experts for r in rows] == [4, 8]
    assert all(r.switch == 1.0 and r.topk_blocks == 0.0 and r.random_dictionary == 0.0 for r in rows)
    assert analysis.duplicate_verdict(rows).startswith("Routing causes duplicates")
    # a TopK control with as many twins: nothing left to attribute to routing
    same = analysis.duplicates_with_control(routed, _planted(twins_across=False))
    assert all(r.topk_blocks > 0.5 for r in same)
    assert analysis.duplicate_verdict(same).startswith("Not attributable")
    nothing = analysis.duplicates_with_control({4: no_twins, 8: no_twins}, no_twins)
    assert analysis.duplicate_verdict(nothing).startswith("Twins (cos > 0.9) are too rare")
    assert nothing[0].switch_mean_cos == pytest.approx(float(analysis.cross_block_cosine(no_twins, 4).mean()))
    with pytest.raises(ArgumentError, match="same d_sae"):
        analysis.duplicates_with_control({4: torch.randn(32, 32)}, no_twins)


def _clustered(d_sae=64, d_in=32, n_experts=4, spread=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(n_experts, d_in, generator=g), dim=-1)
    return centres.repeat_interleave(d_sae // n_experts, 0) + spread * torch.randn(d_sae, d_in, generator=g)


def test_same_expert_neighbours_against_chance_and_a_random_split():
    clustered = analysis.same_expert_neighbours(_clustered(), 4, n_neighbours=5)
    assert clustered.mean == 1.0 and clustered.chance == pytest.approx(15 / 63)
    split = analysis.same_expert_neighbours(_clustered(), 4, n_neighbours=5, order=analysis.random_blocks(64, 4))
    assert abs(split.mean - split.chance) < 0.12
    noise = analysis.same_expert_neighbours(torch.randn(64, 32), 4, n_neighbours=5)
    assert abs(noise.mean - noise.chance) < 0.12 and noise.per_latent.shape == (64,)
    assert analysis.geometry_verdict(clustered, noise, split).startswith("Encoders cluster by expert and decoders")
    assert analysis.geometry_verdict(noise, noise).startswith("No clustering")
    assert analysis.geometry_verdict(clustered, clustered).startswith("Both encoders and decoders")
    with pytest.raises(ArgumentError, match="n_neighbours"):
        analysis.same_expert_neighbours(torch.randn(64, 32), 4, n_neighbours=64)


def test_tsne_separates_far_clusters_and_repeats_with_its_seed():
    points = torch.cat([torch.randn(40, 16) + 8, torch.randn(40, 16) - 8])
    a, b = analysis.tsne_2d(points, seed=1), analysis.tsne_2d(points, seed=1)
    assert a.shape == (80, 2) and torch.allclose(a, b)
    gap = (a[:40].mean(0) - a[40:].mean(0)).norm()
    assert gap > 3 * max(a[:40].std(0).max(), a[40:].std(0).max())
    with pytest.raises(ArgumentError, match="at least 4"):
        analysis.tsne_2d(torch.randn(3, 4))


def test_the_duplicates_plot_draws_three_lines():
    rows = analysis.duplicates_with_control({4: _planted(), 8: _planted()}, torch.randn(64, 32))
    fig = analysis.plotting.plot_duplicates_with_control(rows)
    assert len(fig.axes[0].lines) == 3
    assert [list(line.get_ydata()) for line in fig.axes[0].lines][0] == [100.0, 100.0]
