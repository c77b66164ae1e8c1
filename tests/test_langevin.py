"""Langevin samplers against what book/scores.md derives: the stationary variance, the step schedule, the modes."""

from __future__ import annotations

import math

import pytest
import torch

from dgm.diffusion.langevin import annealed_langevin, langevin, langevin_step, stationary_variance
from dgm.diffusion.scores import geometric_sigmas, mode_fraction, two_mode_mixture

SEEDS = [0, 1, 2, 3]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("variance", "step_size"), [(1.0, 0.5), (2.0, 1.6), (0.5, 0.1)])
def test_langevin_on_a_gaussian_has_the_derived_stationary_variance(seed: int, variance: float, step_size: float):
    """Var = s²/(1 − δ/(2s²)) within Monte Carlo error, and visibly not s² (the discretisation bias)."""
    chains = 20_000
    generator = torch.Generator().manual_seed(seed)
    start = torch.zeros(chains, 1, dtype=torch.float64)
    # contraction per step is |1 − δ/s²| ≤ 0.8 here, so 200 steps forget the start to 1e-19
    final = langevin(lambda x: -x / variance, start, step_size, 200, generator=generator)
    derived = stationary_variance(variance, step_size)
    # the sample variance of n Gaussian draws has standard error v √(2/(n − 1))
    error = derived * math.sqrt(2 / (chains - 1))
    measured = float(final.var())
    assert abs(measured - derived) < 5 * error, (measured, derived, error)
    assert abs(measured - variance) > 5 * error, "the step is too small for the bias to show"


def test_the_stationary_variance_formula_tends_to_the_target_and_rejects_unstable_steps():
    assert stationary_variance(1.0, 1e-6) == pytest.approx(1.0, rel=1e-5)
    assert stationary_variance(1.0, 0.5) == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="stable only"):
        stationary_variance(1.0, 2.0)


def test_without_noise_langevin_is_gradient_ascent_to_the_mode():
    mean = torch.tensor([[2.0, -1.0]])
    start = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)) * 5
    final = langevin(lambda x: -(x - mean), start, 0.1, 500, add_noise=False)
    torch.testing.assert_close(final, mean.expand(50, 2), atol=1e-6, rtol=0)


def test_one_step_is_the_update_of_the_page():
    x = torch.tensor([[1.0, 2.0]])
    generator = torch.Generator().manual_seed(3)
    stepped = langevin_step(lambda y: -y, x, 0.2, generator=generator)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(stepped, x + 0.2 * (-x) + math.sqrt(0.4) * noise)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_langevin_misweights_the_modes_and_annealed_recovers_them(seed: int):
    """The notebook's experiment, smaller: plain ends near 1:1 (the split of the starts), annealed near 4:1."""
    mixture = two_mode_mixture(0.8)
    n = 2000
    generator = torch.Generator().manual_seed(seed)
    start = 16 * torch.rand(n, 2, generator=generator) - 8
    plain = langevin(mixture.score, start, 0.1, 1000, generator=generator)
    annealed = annealed_langevin(lambda x, s: mixture.score(x, s), start, geometric_sigmas(20.0, 1.0, 10), 100, 0.1,
                                 generator=generator)
    starts_near_the_big_mode = mode_fraction(start, mixture)
    error = math.sqrt(0.25 / n)
    assert abs(mode_fraction(plain, mixture) - starts_near_the_big_mode) < 5 * error
    assert abs(mode_fraction(annealed, mixture) - 0.8) < 0.05


def test_annealed_steps_follow_the_schedule():
    """With a zero score each level only adds noise: the variance grows by 2·T·Σ δ (σ_i/σ_L)²."""
    sigmas = [4.0, 2.0, 1.0]
    steps, step_size = 5, 0.01
    start = torch.zeros(40_000, 1, dtype=torch.float64)
    final, levels = annealed_langevin(lambda x, s: torch.zeros_like(x), start, sigmas, steps, step_size,
                                      generator=torch.Generator().manual_seed(0), return_levels=True)
    per_level = [2 * steps * step_size * (s / sigmas[-1]) ** 2 for s in sigmas]
    assert len(levels) == 3
    for k, state in enumerate(levels):
        expected = sum(per_level[: k + 1])
        assert abs(float(state.var()) - expected) < 5 * expected * math.sqrt(2 / len(start))
    torch.testing.assert_close(levels[-1], final)


def test_the_denoising_step_is_tweedies_posterior_mean():
    """For data N(0, s²) and the exact noisy score, x + σ² s(x, σ) = E[x₀ | x] = s² x / (s² + σ²)."""
    variance, sigmas = 2.0, [1.0, 0.5]
    x = torch.randn(10, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def exact(y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return -y / (variance + sigma[:, None] ** 2)

    generator = torch.Generator().manual_seed(1)
    last = annealed_langevin(exact, x, sigmas, 3, 0.01, generator=generator)
    denoised = annealed_langevin(exact, x, sigmas, 3, 0.01, generator=torch.Generator().manual_seed(1), denoise=True)
    torch.testing.assert_close(denoised, variance * last / (variance + 0.5**2))


def test_chains_are_reproducible_with_a_generator():
    mixture = two_mode_mixture()
    start = torch.zeros(10, 2)
    runs = [langevin(mixture.score, start, 0.1, 20, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    torch.testing.assert_close(runs[0], runs[1])


def test_wrong_inputs_fail_with_a_clear_message():
    score = two_mode_mixture().score
    with pytest.raises(ValueError, match="step_size must be positive"):
        langevin(score, torch.zeros(3, 2), 0.0, 10)
    with pytest.raises(ValueError, match="non-empty batch"):
        langevin(score, torch.zeros(2), 0.1, 10)
    with pytest.raises(ValueError, match="non-negative integer"):
        langevin(score, torch.zeros(3, 2), 0.1, -1)
    with pytest.raises(ValueError, match="strictly decreasing"):
        annealed_langevin(lambda x, s: x, torch.zeros(3, 2), [1.0, 2.0], 10, 0.1)
