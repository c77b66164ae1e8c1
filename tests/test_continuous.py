"""dgm.diffusion.continuous with a DDPM network: the log-SNR of the steps, fractional steps, the DDPM schedule in continuous time.

A network trained at DDPM's integer steps serves every continuous schedule in its
trained log-SNR range (notebooks/vdm_schedules): these tests check the map from
log-SNR to step against the schedule's own tensors, the continuous DDPM schedule's
derivative against finite differences, and that L_∞ estimated through it matches the
closed form of book/vdm.md for Gaussian data, as the log-SNR-linear schedule does.
"""

import math

import pytest
import torch

from dgm.diffusion.continuous import (
    LogSNRSchedule,
    TabulatedLogSNR,
    continuous_loss,
    ddpm_log_snr,
    ddpm_model,
    estimate,
    q_sample,
    signal_and_noise,
    step_at_log_snr,
)
from dgm.diffusion.process import GaussianDiffusion
from dgm.diffusion.schedules import cosine_schedule, linear_schedule


@pytest.mark.parametrize("schedule", [linear_schedule(1000), cosine_schedule(200)], ids=["linear", "cosine"])
def test_the_steps_log_snr_and_its_inverse(schedule):
    table = ddpm_log_snr(schedule)
    alpha_bar = schedule.alpha_bar[1:]
    torch.testing.assert_close(table, torch.log(alpha_bar / (1 - alpha_bar)))
    assert bool((table[1:] < table[:-1]).all())
    steps = torch.arange(1, schedule.T + 1, dtype=torch.float64)
    torch.testing.assert_close(step_at_log_snr(table, schedule), steps)
    # halfway between two steps' log-SNRs is halfway between the steps
    middle = (table[:-1] + table[1:]) / 2
    torch.testing.assert_close(step_at_log_snr(middle, schedule), steps[:-1] + 0.5)


def test_the_network_sees_the_ddpm_marginal_at_its_own_step():
    """z_t at λ_k is DDPM's x_k for the same noise: the network's training input, at the step it was trained."""
    schedule = linear_schedule(1000)
    process = GaussianDiffusion(schedule)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 1, 4, 4, dtype=torch.float64, generator=generator)
    noise = torch.randn(5, 1, 4, 4, dtype=torch.float64, generator=generator)
    k = torch.tensor([1, 10, 300, 999, 1000])
    log_snr = ddpm_log_snr(schedule)[k - 1]
    torch.testing.assert_close(q_sample(x0, log_snr, noise), process.q_sample(x0, k, noise))
    seen = []

    def eps_model(x_t, step):
        seen.append(step)
        return torch.zeros_like(x_t)

    ddpm_model(eps_model, schedule)(torch.zeros(5, 1, 4, 4), log_snr.float())
    assert seen[0].dtype == torch.float32
    torch.testing.assert_close(seen[0], k.float(), atol=1e-3, rtol=0)


def test_the_continuous_ddpm_schedule():
    schedule = linear_schedule(1000)
    continuous = TabulatedLogSNR.from_ddpm(schedule)
    table = ddpm_log_snr(schedule)
    assert continuous.log_snr_max == table[0].item() and continuous.log_snr_min == table[-1].item()
    t = torch.rand(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(step_at_log_snr(continuous.log_snr(t), schedule), 1 + 999 * t)
    # between steps λ is linear in t: its slope is the finite difference inside the segment
    inside = (torch.arange(999, dtype=torch.float64) + 0.5) / 999
    h = 1e-4 / 999
    slope = (continuous.log_snr(inside + h) - continuous.log_snr(inside - h)) / (2 * h)
    torch.testing.assert_close(continuous.log_snr_derivative(inside), slope)
    torch.testing.assert_close(continuous.gamma_derivative(inside), -slope)
    torch.testing.assert_close(continuous.snr_derivative(inside), slope * continuous.log_snr(inside).exp())
    assert continuous.log_snr(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist() == [table[0].item(), table[-1].item()]
    with pytest.raises(ValueError, match="t must lie"):
        continuous.log_snr(torch.tensor([1.5]))


def gaussian_denoiser(mean: float, var: float):
    """E[x | z_t] for data N(mean, var) per coordinate (book/vdm.md, eq. vdm-best-denoiser), as a model of (z_t, log_snr)."""

    def model(z, log_snr):
        a, sigma = signal_and_noise(log_snr.reshape(-1, 1))
        return mean + a * var / (a**2 * var + sigma**2) * (z - a * mean)

    return model


def test_the_continuous_ddpm_schedule_gives_the_same_loss_as_the_log_snr_linear_one():
    """book/vdm.md, eq. vdm-invariance: for Gaussian data, ½ log((1 + s² SNR_max)/(1 + s² SNR_min)) for both schedules."""
    mean, var, n = 0.5, 0.64, 400_000
    continuous = TabulatedLogSNR.from_ddpm(linear_schedule(200))
    others = [LogSNRSchedule(kind, continuous.log_snr_max, continuous.log_snr_min) for kind in ("linear", "cosine")]
    exact = 0.5 * math.log((1 + var * math.exp(continuous.log_snr_max)) / (1 + var * math.exp(continuous.log_snr_min)))
    generator = torch.Generator().manual_seed(2)
    x = mean + math.sqrt(var) * torch.randn(n, 1, dtype=torch.float64, generator=generator)
    t = torch.rand(n, dtype=torch.float64, generator=generator)
    noise = torch.randn(n, 1, dtype=torch.float64, generator=generator)
    variances = []
    for schedule in (continuous, *others):
        found = estimate(continuous_loss(gaussian_denoiser(mean, var), x, schedule, "x", t=t, noise=noise)["per_example"], dims=1)
        assert abs(found.mean - exact) < 4 * found.standard_error, (schedule, found, exact)
        variances.append(found.variance)
    assert len({round(math.log10(v), 1) for v in variances}) == 3  # three schedules, three different variances


def test_the_noise_form_through_a_ddpm_network_equals_the_x_form():
    """A DDPM ε-network fed fractional steps gives the same draws in the ε-form as its implied x̂ in the x-form."""
    schedule = linear_schedule(100)

    def eps_model(x_t, step):  # any smooth function of (x_t, step)
        return torch.tanh(x_t * (1 + step[:, None] / 100))

    model = ddpm_model(eps_model, schedule)

    def x_model(z, log_snr):
        a, sigma = signal_and_noise(log_snr.reshape(-1, 1))
        return (z - sigma * model(z, log_snr)) / a

    generator = torch.Generator().manual_seed(3)
    x = torch.randn(256, 3, dtype=torch.float64, generator=generator)
    t = torch.rand(256, dtype=torch.float64, generator=generator)
    noise = torch.randn(256, 3, dtype=torch.float64, generator=generator)
    for continuous in (TabulatedLogSNR.from_ddpm(schedule), LogSNRSchedule("cosine", *ddpm_log_snr(schedule)[[0, -1]].tolist())):
        eps_form = continuous_loss(model, x, continuous, "epsilon", t=t, noise=noise)["per_example"]
        x_form = continuous_loss(x_model, x, continuous, "x", t=t, noise=noise)["per_example"]
        torch.testing.assert_close(eps_form, x_form)


def test_estimate_summarises_the_draws():
    draws = torch.tensor([1.0, 2.0, 3.0, 6.0])
    found = estimate(draws, dims=2)
    assert found.mean == 3.0 and found.n == 4
    assert found.variance == pytest.approx(14 / 3)
    assert found.standard_error == pytest.approx(math.sqrt(14 / 3 / 4))
    assert found.bits_per_dim == pytest.approx(3.0 / (2 * math.log(2)))


def test_bad_input_is_refused():
    schedule = linear_schedule(100)
    table = ddpm_log_snr(schedule)
    with pytest.raises(ValueError, match="trained range"):
        step_at_log_snr(torch.tensor([table[0].item() + 1.0]), schedule)
    with pytest.raises(ValueError, match="trained range"):
        ddpm_model(lambda x, k: x, schedule)(torch.zeros(1, 2), torch.tensor([table[-1].item() - 1.0]))
    with pytest.raises(ValueError, match="draws"):
        estimate(torch.ones(1), dims=1)
    with pytest.raises(ValueError, match="dims"):
        estimate(torch.ones(3), dims=0)


def test_the_least_variance_schedule_for_gaussian_data_is_the_exercises_closed_form():
    """book/vdm.md, ex-vdm-best-schedule: SNR(t) = ((1 + s² SNR_max)^{1−t} (1 + s² SNR_min)^t − 1)/s² for data N(m, s²)."""
    var, lam_max, lam_min = 0.64, 8.0, -9.0
    grid = torch.linspace(lam_min, lam_max, 4001, dtype=torch.float64)
    snr = grid.exp()
    error = var * snr / (1 + var * snr)  # the best ε-prediction's error at SNR v: v ẽ(v) = s² v/(1 + s² v)
    fitted = TabulatedLogSNR.least_variance(grid, error, points=501)
    assert fitted.log_snr_max == lam_max and fitted.log_snr_min == lam_min
    t = torch.linspace(0, 1, 501, dtype=torch.float64)
    low, high = 1 + var * math.exp(lam_max), 1 + var * math.exp(lam_min)
    closed_form = ((low ** (1 - t) * high**t - 1) / var).log()
    torch.testing.assert_close(fitted.log_snr(t), closed_form, atol=2e-3, rtol=0)
    # between grid times the mean of one draw, ½ γ'(t) e(λ(t)), has the same integral, L_∞/(points − 1), on every segment
    # (with e(λ) = s² e^λ/(1 + s² e^λ), ½ ∫ e dλ = ½ log(1 + s² e^λ)), so that it is constant as the grid is refined
    levels = fitted.table
    segments = 0.5 * ((1 + var * levels[:-1].exp()).log() - (1 + var * levels[1:].exp()).log())
    torch.testing.assert_close(segments, torch.full_like(segments, 0.5 * math.log(low / high) / 500), rtol=1e-3, atol=0)


def test_the_least_variance_schedule_has_the_least_variance():
    """For Gaussian data and the best denoiser, draws along the fitted schedule vary less than along the others."""
    mean, var, n = 0.5, 0.64, 200_000
    ends = ddpm_log_snr(linear_schedule(200))[[0, -1]].tolist()
    grid = torch.linspace(ends[1], ends[0], 2001, dtype=torch.float64)
    fitted = TabulatedLogSNR.least_variance(grid, var * grid.exp() / (1 + var * grid.exp()))
    generator = torch.Generator().manual_seed(4)
    x = mean + math.sqrt(var) * torch.randn(n, 1, dtype=torch.float64, generator=generator)
    t = torch.rand(n, dtype=torch.float64, generator=generator)
    noise = torch.randn(n, 1, dtype=torch.float64, generator=generator)
    found = {}
    for name, schedule in (("fitted", fitted), ("linear", LogSNRSchedule("linear", *ends)), ("cosine", LogSNRSchedule("cosine", *ends))):
        found[name] = estimate(continuous_loss(gaussian_denoiser(mean, var), x, schedule, "x", t=t, noise=noise)["per_example"], 1)
    exact = 0.5 * math.log((1 + var * math.exp(ends[0])) / (1 + var * math.exp(ends[1])))
    assert abs(found["fitted"].mean - exact) < 4 * found["fitted"].standard_error
    assert found["fitted"].variance == pytest.approx(2 * exact**2, rel=0.05)  # the exercise: 3 L² − L², at its minimum
    assert found["fitted"].variance < 0.9 * found["linear"].variance and found["fitted"].variance < 0.2 * found["cosine"].variance


def test_a_bad_table_or_error_curve_is_refused():
    with pytest.raises(ValueError, match="falling"):
        TabulatedLogSNR(torch.tensor([1.0, 2.0], dtype=torch.float64))
    grid = torch.linspace(-1, 1, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="positive"):
        TabulatedLogSNR.least_variance(grid, torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="rise"):
        TabulatedLogSNR.least_variance(grid.flip(0), torch.ones(5, dtype=torch.float64))
