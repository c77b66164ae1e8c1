"""Score-matching losses against their closed forms on Gaussians (book/scores.md).

Monte Carlo checks split the samples into chunks and compare the mean of the
chunk means with the closed form within five standard errors of that mean, so
they hold for any seed (the seeds are parametrised to show it).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dgm.diffusion.scores import (
    IsotropicMixture,
    denoising_score_matching,
    explicit_score_matching,
    geometric_sigmas,
    hyvarinen_score_matching,
    jacobian_trace,
    kernel_log_density,
    kernel_score,
    mode_fraction,
    noise_conditional_dsm,
    sliced_score_matching,
    two_mode_mixture,
)
from dgm.networks import NoiseConditionalConvNet, NoiseConditionalMLP

SEEDS = [0, 1, 2]


def gaussian(dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean and a full, well-conditioned covariance, float64."""
    mean = torch.randn(dim, generator=generator, dtype=torch.float64)
    factor = torch.randn(dim, dim, generator=generator, dtype=torch.float64) / math.sqrt(dim)
    return mean, factor @ factor.T + 0.5 * torch.eye(dim, dtype=torch.float64)


def sample_gaussian(mean: torch.Tensor, cov: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    eps = torch.randn(n, len(mean), generator=generator, dtype=torch.float64)
    return mean + eps @ torch.linalg.cholesky(cov).T


def affine(dim: int, generator: torch.Generator) -> nn.Linear:
    """A random affine score s(x) = A x + b, float64."""
    layer = nn.Linear(dim, dim).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        layer.bias.copy_(torch.randn(dim, generator=generator, dtype=torch.float64))
    return layer


def within_mc_error(chunk_values: list[float], expected: float, sigmas: float = 5.0) -> tuple[bool, str]:
    values = torch.tensor(chunk_values, dtype=torch.float64)
    mean, error = float(values.mean()), float(values.std() / math.sqrt(len(values)))
    return abs(mean - expected) <= sigmas * error + 1e-9, f"{mean:.5f} ± {error:.5f} (expected {expected:.5f})"


@pytest.mark.parametrize("seed", SEEDS)
def test_hyvarinen_equals_explicit_minus_the_constant_on_a_gaussian(seed: int):
    """J_ESM(θ) − J_H(θ) = C = ½ tr Σ⁻¹ for q = N(μ, Σ) and s(x) = Ax + b, whatever A, b."""
    generator = torch.Generator().manual_seed(seed)
    dim = 3
    mean, cov = gaussian(dim, generator)
    precision = torch.linalg.inv(cov)
    score_model = affine(dim, generator)

    def true_score(x: torch.Tensor) -> torch.Tensor:
        return -(x - mean) @ precision  # ∇ log N(x; μ, Σ) = −Σ⁻¹(x − μ)

    differences, explicit_values = [], []
    for _ in range(20):
        x = sample_gaussian(mean, cov, 5000, generator)
        esm = explicit_score_matching(score_model, x, true_score)["loss"].item()
        hyv = hyvarinen_score_matching(score_model, x)["loss"].item()
        differences.append(esm - hyv)
        explicit_values.append(esm)
    ok, message = within_mc_error(differences, 0.5 * float(precision.trace()))
    assert ok, message
    # and each against its own closed form: E ½‖Mx + c‖² = ½ (tr M Σ Mᵀ + ‖Mμ + c‖²), M = A + Σ⁻¹, c = b − Σ⁻¹μ
    weight, bias = score_model.weight.detach(), score_model.bias.detach()
    m, c = weight + precision, bias - precision @ mean
    closed = 0.5 * float((m @ cov @ m.T).trace() + ((m @ mean + c) ** 2).sum())
    ok, message = within_mc_error(explicit_values, closed)
    assert ok, message


def test_the_exact_trace_of_an_affine_score_is_tr_a():
    generator = torch.Generator().manual_seed(0)
    score_model = affine(4, generator)
    x = torch.randn(7, 4, generator=generator, dtype=torch.float64)
    terms = hyvarinen_score_matching(score_model, x)
    assert terms["trace"].detach().item() == pytest.approx(float(score_model.weight.detach().trace()), abs=1e-10)
    assert terms["norm"].detach().item() == pytest.approx(0.5 * float((score_model(x).detach() ** 2).sum(1).mean()), rel=1e-10)


def test_the_exact_trace_matches_the_full_jacobian_of_a_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    trace = jacobian_trace(net(x), x, create_graph=False)
    expected = torch.stack([torch.autograd.functional.jacobian(net, row).trace() for row in x.detach()])
    torch.testing.assert_close(trace, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("variance_reduced", [False, True])
def test_sliced_score_matching_is_unbiased_for_hyvarinen(seed: int, variance_reduced: bool):
    """On a nonlinear score network, the mean of the sliced objective over v equals Hyvärinen's (same x)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 3)).double()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2000, 3, generator=generator, dtype=torch.float64)
    hyvarinen = hyvarinen_score_matching(net, x)
    sliced = [sliced_score_matching(net, x, generator=generator, variance_reduced=variance_reduced) for _ in range(30)]
    for term in ("loss", "trace", "norm"):
        ok, message = within_mc_error([s[term].item() for s in sliced], hyvarinen[term].item())
        assert ok, f"{term}: {message}"
    if variance_reduced:  # the norm term is then exact
        assert sliced[0]["norm"].item() == pytest.approx(hyvarinen["norm"].item(), rel=1e-12)


def test_sliced_with_several_projections_averages_them():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    x = torch.randn(100, 2, dtype=torch.float64)
    single = [sliced_score_matching(net, x, generator=torch.Generator().manual_seed(k))["trace"] for k in range(2)]
    both = sliced_score_matching(net, x, projections=2, generator=torch.Generator().manual_seed(0))["trace"]
    assert both.item() != pytest.approx(single[0].item())  # it used more than one direction
    assert torch.isfinite(both)


@pytest.mark.parametrize("seed", SEEDS)
def test_denoising_equals_explicit_on_the_noisy_marginal_plus_a_constant(seed: int):
    """J_DSM(θ) = J_ESM(θ; q_σ) + C, C = d/(2σ²) − ½ tr (Σ + σ²I)⁻¹, for Gaussian data and affine scores."""
    generator = torch.Generator().manual_seed(seed)
    dim, sigma = 2, 0.7
    mean, cov = gaussian(dim, generator)
    noisy_cov = cov + sigma**2 * torch.eye(dim, dtype=torch.float64)
    noisy_precision = torch.linalg.inv(noisy_cov)
    constant = dim / (2 * sigma**2) - 0.5 * float(noisy_precision.trace())
    for _ in range(3):  # a few parameter settings: the identity holds for all of them
        score_model = affine(dim, generator)
        differences = []
        for _ in range(20):
            x = sample_gaussian(mean, cov, 5000, generator)
            dsm = denoising_score_matching(score_model, x, sigma, generator=generator)["loss"].item()
            x_noisy = sample_gaussian(mean, noisy_cov, 5000, generator)
            esm = explicit_score_matching(score_model, x_noisy, lambda y: -(y - mean) @ noisy_precision)["loss"].item()
            differences.append(dsm - esm)
        ok, message = within_mc_error(differences, constant)
        assert ok, message


@pytest.mark.parametrize("seed", SEEDS)
def test_the_denoising_minimiser_is_the_noisy_score(seed: int):
    """An affine score trained by DSM (Adam on the library's loss) reaches −(Σ + σ²I)⁻¹(x̃ − μ)."""
    generator = torch.Generator().manual_seed(seed)
    dim, sigma = 2, 0.5
    mean, cov = gaussian(dim, generator)
    noisy_precision = torch.linalg.inv(cov + sigma**2 * torch.eye(dim, dtype=torch.float64))
    target_weight, target_bias = -noisy_precision, noisy_precision @ mean
    # least squares on the DSM regression (the exact minimiser of the empirical loss) ...
    x = sample_gaussian(mean, cov, 200_000, generator)
    eps = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    design = torch.cat([x + sigma * eps, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    solution = torch.linalg.lstsq(design, -eps / sigma).solution  # (dim + 1, dim)
    torch.testing.assert_close(solution[:dim].T, target_weight, atol=0.03, rtol=0.0)
    torch.testing.assert_close(solution[dim], target_bias, atol=0.03, rtol=0.0)
    # ... and the library's loss, minimised by Adam, gets there too
    torch.manual_seed(seed)
    model = nn.Linear(dim, dim).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=150, gamma=0.3)
    for _ in range(600):
        batch = sample_gaussian(mean, cov, 2048, generator)
        loss = denoising_score_matching(model, batch, sigma, generator=generator)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    torch.testing.assert_close(model.weight.detach(), target_weight, atol=0.06, rtol=0.0)
    torch.testing.assert_close(model.bias.detach(), target_bias, atol=0.06, rtol=0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_conditional_dsm_at_the_exact_score_reaches_the_weighted_floor(seed: int):
    """For q = N(0, s²I) and the exact noisy score, λ(σ)·J_DSM = d s² / (2(s² + σ²)) at every level."""
    generator = torch.Generator().manual_seed(seed)
    dim, variance = 3, 2.0
    sigmas = geometric_sigmas(5.0, 0.1, 4).double()

    def exact(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return -x / (variance + sigma[:, None] ** 2)

    totals, largest, smallest = [], [], []
    for _ in range(20):
        x = math.sqrt(variance) * torch.randn(4000, dim, generator=generator, dtype=torch.float64)
        terms = noise_conditional_dsm(exact, x, sigmas, generator=generator)
        totals.append(terms["loss"].item())
        largest.append(terms["loss_largest"].item())
        smallest.append(terms["loss_smallest"].item())
    floors = [dim * variance / (2 * (variance + float(s) ** 2)) for s in sigmas]
    for values, expected in ((totals, sum(floors) / len(floors)), (largest, floors[0]), (smallest, floors[-1])):
        ok, message = within_mc_error(values, expected)
        assert ok, message


def test_noise_conditional_dsm_runs_on_images_and_trains_a_network():
    torch.manual_seed(0)
    net = NoiseConditionalConvNet(channels=8)
    x = torch.rand(6, 1, 28, 28)
    terms = noise_conditional_dsm(net, x, geometric_sigmas(1.0, 0.01, 10))
    terms["loss"].backward()
    assert terms["loss"].item() > 0
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("atoms", [2, 3, 50])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_kernel_score_is_the_gradient_of_the_log_kde(atoms: int, dim: int):
    generator = torch.Generator().manual_seed(atoms * 10 + dim)
    data = torch.randn(atoms, dim, generator=generator, dtype=torch.float64)
    x = torch.randn(9, dim, generator=generator, dtype=torch.float64, requires_grad=True)
    for sigma in (0.3, 1.0):
        (gradient,) = torch.autograd.grad(kernel_log_density(x, data, sigma).sum(), x)
        torch.testing.assert_close(kernel_score(x.detach(), data, sigma), gradient)


def test_kernel_log_density_is_normalised_in_one_dimension():
    data = torch.tensor([[-1.0], [0.5], [2.0]], dtype=torch.float64)
    grid = torch.linspace(-8, 10, 20001, dtype=torch.float64)[:, None]
    mass = torch.trapezoid(kernel_log_density(grid, data, 0.4).exp(), grid[:, 0])
    assert mass.item() == pytest.approx(1.0, abs=1e-8)


def test_kernel_score_collapses_onto_the_atoms_as_the_bandwidth_shrinks():
    """Near an atom, the score of the KDE points at that atom with size |x − x_i|/σ²."""
    data = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.2, 0.0]], dtype=torch.float64)
    for sigma in (0.1, 0.05):
        torch.testing.assert_close(kernel_score(x, data, sigma), (data[:1] - x) / sigma**2)


@pytest.mark.parametrize("noise_std", [0.0, 0.7, "per-example"])
def test_mixture_score_is_the_gradient_of_its_log_density(noise_std):
    mixture = IsotropicMixture(
        means=torch.tensor([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]], dtype=torch.float64),
        stds=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64),
        weights=torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64),
    )
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    if noise_std == "per-example":
        levels = torch.linspace(0.1, 3.0, 8, dtype=torch.float64)
        log_prob = sum(mixture.log_prob(x[k : k + 1], float(levels[k])).sum() for k in range(8))
        (gradient,) = torch.autograd.grad(log_prob, x)
        torch.testing.assert_close(mixture.score(x.detach(), levels), gradient)
    else:
        (gradient,) = torch.autograd.grad(mixture.log_prob(x, noise_std).sum(), x)
        torch.testing.assert_close(mixture.score(x.detach(), noise_std), gradient)


def test_mixture_samples_have_its_weights():
    mixture = two_mode_mixture(0.8)
    samples = mixture.sample(20_000, torch.Generator().manual_seed(0))
    fraction = mode_fraction(samples, mixture)
    assert abs(fraction - 0.8) < 5 * math.sqrt(0.8 * 0.2 / 20_000)


def test_noise_conditional_networks_have_the_right_shapes_and_use_sigma():
    torch.manual_seed(0)
    mlp_net, conv_net = NoiseConditionalMLP(dim=2), NoiseConditionalConvNet(channels=8)
    points, images = torch.randn(5, 2), torch.rand(3, 1, 28, 28)
    assert mlp_net(points, 0.5).shape == (5, 2)
    assert conv_net(images, torch.full((3,), 0.1)).shape == (3, 1, 28, 28)
    # f(x, log σ)/σ: the output changes with σ beyond the 1/σ factor
    assert not torch.allclose(0.5 * mlp_net(points, 0.5), 2.0 * mlp_net(points, 2.0))
    assert not torch.allclose(0.1 * conv_net(images, 0.1), 1.0 * conv_net(images, 1.0))


def test_wrong_inputs_fail_with_a_clear_message():
    net = NoiseConditionalMLP(dim=2)
    with pytest.raises(ValueError, match=r"x must be \(B, 2\)"):
        net(torch.randn(4, 3), 1.0)
    with pytest.raises(ValueError, match="sigma must be a float or a"):
        net(torch.randn(4, 2), torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        net(torch.randn(4, 2), 0.0)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        NoiseConditionalConvNet(channels=8)(torch.rand(2, 784), 1.0)
    with pytest.raises(ValueError, match="shape of its input"):
        explicit_score_matching(lambda x: x[:, :1], torch.randn(4, 2), lambda x: x)
    with pytest.raises(ValueError, match="non-empty batch"):
        hyvarinen_score_matching(lambda x: x, torch.randn(4))
    with pytest.raises(ValueError, match="sigma must be positive"):
        denoising_score_matching(lambda x: x, torch.randn(4, 2), 0.0)
    with pytest.raises(ValueError, match="positive levels"):
        noise_conditional_dsm(lambda x, s: x, torch.randn(4, 2), torch.tensor([1.0, -0.1]))
    with pytest.raises(ValueError, match="same D"):
        kernel_score(torch.randn(4, 2), torch.randn(3, 3), 1.0)
    with pytest.raises(ValueError, match="projections"):
        sliced_score_matching(lambda x: x, torch.randn(4, 2), projections=0)
    with pytest.raises(ValueError, match="weights must sum to one"):
        IsotropicMixture(torch.zeros(2, 2), torch.ones(2), torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="largest > smallest"):
        geometric_sigmas(1.0, 2.0, 5)
