"""dgm.diffusion.continuous against book/vdm.md: the schedules' ends, the two forms of the loss, and L_∞ by Monte Carlo.

The Monte Carlo test uses Gaussian data N(m, s²), where the best denoiser is
known in closed form, and compares the library's estimate of L_∞ under two
schedules with the same ends with the value the page derives (its checked
chain for the change of variables, evaluated at the same numbers).
"""

import math
from pathlib import Path

import mutations
import pytest
import sympy as sp
import torch

from dgm.derivations.notation import evaluate
from dgm.diffusion.continuous import LogSNRSchedule, continuous_loss, q_sample, signal_and_noise

SCHEDULES = [LogSNRSchedule("linear", 6.0, -4.0), LogSNRSchedule("cosine", 6.0, -4.0)]


@pytest.fixture(scope="module")
def page() -> dict:
    return mutations.run_page(Path(__file__).resolve().parents[1] / "book" / "vdm.md")[1]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.kind)
def test_the_schedule_has_its_ends_and_the_process_preserves_variance(schedule):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    log_snr = schedule.log_snr(t)
    assert log_snr[0].item() == pytest.approx(6.0) and log_snr[-1].item() == pytest.approx(-4.0)
    assert bool((log_snr[1:] < log_snr[:-1]).all())
    a, sigma = signal_and_noise(log_snr)
    torch.testing.assert_close(a**2 + sigma**2, torch.ones_like(t))
    torch.testing.assert_close(a**2 / sigma**2, log_snr.exp())


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.kind)
def test_the_snr_derivative_is_the_derivative_of_the_snr(schedule):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(schedule.log_snr(t).exp().sum(), t)
    torch.testing.assert_close(schedule.snr_derivative(t.detach()), slope)
    torch.testing.assert_close(schedule.gamma_derivative(t.detach()), -slope / schedule.log_snr(t.detach()).exp())


def best_denoiser(mean: float, var: float):
    """E[x | z_t] for data N(mean, var) per coordinate (book/vdm.md, eq. vdm-best-denoiser), as a model of (z_t, log_snr)."""

    def model(z, log_snr):
        a, sigma = signal_and_noise(log_snr.reshape(-1, 1))
        return mean + a * var / (a**2 * var + sigma**2) * (z - a * mean)

    return model


def test_the_noise_form_equals_the_x_form_for_the_same_prediction():
    """book/vdm.md, eq. vdm-eps-form: with ε̂ = (z_t − a_t x̂)/σ_t the two estimates agree draw by draw."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64, generator=generator)
    t = torch.rand(64, dtype=torch.float64, generator=generator)
    noise = torch.randn(64, 3, dtype=torch.float64, generator=generator)
    guess = best_denoiser(0.3, 0.7)
    for schedule in SCHEDULES:

        def noise_model(z, log_snr):
            a, sigma = signal_and_noise(log_snr.reshape(-1, 1))
            return (z - a * guess(z, log_snr)) / sigma

        x_form = continuous_loss(guess, x, schedule, "x", t=t, noise=noise)["per_example"]
        eps_form = continuous_loss(noise_model, x, schedule, "epsilon", t=t, noise=noise)["per_example"]
        torch.testing.assert_close(x_form, eps_form)


def test_monte_carlo_matches_the_page_and_the_schedules_differ_in_variance(page):
    mean, var, n = 0.5, 0.64, 400_000
    ends = {page["lam_max"]: 6.0, page["lam_min"]: -4.0, page["s2"]: var}
    generator = torch.Generator().manual_seed(1)
    x = mean + math.sqrt(var) * torch.randn(n, 1, dtype=torch.float64, generator=generator)
    t = torch.rand(n, dtype=torch.float64, generator=generator)
    noise = torch.randn(n, 1, dtype=torch.float64, generator=generator)
    variances = {}
    for schedule in SCHEDULES:
        name = "linear log-SNR" if schedule.kind == "linear" else "cosine"
        exact = float(sp.N(evaluate(page["invariance"][name].result).subs(ends)))
        draws = continuous_loss(best_denoiser(mean, var), x, schedule, "x", t=t, noise=noise)["per_example"]
        error = draws.std().item() / math.sqrt(n)
        assert abs(draws.mean().item() - exact) < 4 * error, (schedule.kind, draws.mean().item(), exact, error)
        variances[schedule.kind] = draws.var().item()
    assert variances["cosine"] > 2 * variances["linear"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="kind"):
        LogSNRSchedule("quadratic")
    with pytest.raises(ValueError, match="must fall"):
        LogSNRSchedule("linear", -2.0, 3.0)
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="log_snr"):
        q_sample(x, torch.zeros(3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="prediction"):
        continuous_loss(lambda z, s: z, x, SCHEDULES[0], "v")
    with pytest.raises(ValueError, match="output"):
        continuous_loss(lambda z, s: z[:, :1], x, SCHEDULES[0])
    with pytest.raises(ValueError, match="batch"):
        continuous_loss(lambda z, s: z, torch.zeros(4), SCHEDULES[0])
