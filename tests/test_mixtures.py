"""The 2-D mixtures and the mode-coverage score, on samples whose answer is known."""

import math

import pytest
import torch

from dgm.data import mixtures


def test_ring_and_grid_geometry():
    ring = mixtures.ring()
    assert ring.modes == 8
    assert torch.allclose(ring.centers.norm(dim=1), torch.full((8,), 2.0))
    grid = mixtures.grid()
    assert grid.modes == 25
    assert sorted(set(grid.centers[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_samples_sit_on_the_modes_with_the_stated_spread():
    ring = mixtures.ring(std=0.05)
    samples = ring.sample(20_000, torch.Generator().manual_seed(0))
    mode, distance = ring.nearest(samples)
    # the distance to the centre of a 2-D isotropic Gaussian is Rayleigh: mean std·√(π/2)
    assert distance.mean().item() == pytest.approx(0.05 * math.sqrt(math.pi / 2), rel=0.02)
    assert torch.bincount(mode, minlength=8).min() > 2000  # every mode is drawn (2,500 expected)


def test_score_of_the_data_itself():
    grid = mixtures.grid()
    score = grid.score(grid.sample(2500, torch.Generator().manual_seed(1)))
    assert score.modes_covered == 25
    assert score.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(|ε| ≤ 3) in 2-D
    assert score.mode_kl < 0.02


def test_score_of_a_collapsed_and_of_a_scattered_sampler():
    ring = mixtures.ring()
    collapsed = ring.centers[3].repeat(2500, 1)
    score = ring.score(collapsed)
    assert (score.modes_covered, score.high_quality) == (1, 1.0)
    assert score.mode_kl == pytest.approx(math.log(8))
    assert score.counts.tolist() == [0, 0, 0, 2500, 0, 0, 0, 0]
    nowhere = torch.zeros(2500, 2)  # the ring's centre is 2 away from every mode
    assert (ring.score(nowhere).modes_covered, ring.score(nowhere).high_quality) == (0, 0.0)


def test_the_counting_rules_at_their_boundaries():
    ring = mixtures.ring()
    # 19 samples on mode 0 do not cover it, 20 on mode 1 do; a sample at 2.9σ is good, one at 3.1σ is not
    near = ring.centers[2] + torch.tensor([2.9 * ring.std, 0.0])
    far = ring.centers[2] + torch.tensor([3.1 * ring.std, 0.0])
    samples = torch.cat([ring.centers[0].repeat(19, 1), ring.centers[1].repeat(20, 1), near[None], far[None]])
    score = ring.score(samples)
    assert score.counts.tolist()[:3] == [19, 20, 1]
    assert score.modes_covered == 1
    assert score.high_quality == pytest.approx(40 / 41)
    # the papers' count: a mode with one high-quality sample is covered (0, 1 and 2 here), a sample at 3.1σ is not
    assert [score.modes_with_at_least(k) for k in (1, 2, 19, 20, 21)] == [3, 2, 2, 1, 0]
    assert ring.score(far[None]).modes_with_at_least(1) == 0
    with pytest.raises(ValueError, match="at least 1"):
        score.modes_with_at_least(0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        mixtures.ring().score(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="std"):
        mixtures.ring(std=0.0)
    with pytest.raises(ValueError, match="min_count must be at least 1"):
        mixtures.ring().score(torch.zeros(10, 2), min_count=0)


def test_samples_are_drawn_on_the_requested_device():
    # the "meta" device stands in for a GPU: it proves the draw happens there, not on the CPU and copied over
    ring = mixtures.ring()
    assert ring.sample(5, device="meta").device.type == "meta"
    on_meta, cpu_state = ring.to("meta"), torch.get_rng_state()
    assert on_meta.centers.device.type == "meta" and on_meta.sample(3).shape == (3, 2)
    assert torch.equal(torch.get_rng_state(), cpu_state)  # nothing was drawn on the CPU
    # on the CPU the device argument changes nothing: the same generator gives the same samples
    first = ring.sample(4, torch.Generator().manual_seed(0))
    assert torch.equal(first, ring.sample(4, torch.Generator().manual_seed(0), device="cpu"))
