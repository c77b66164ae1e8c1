"""Noise schedules: the same numbers as diffusers' DDPMScheduler, the closed forms they come from, and clear errors."""

import dataclasses
import math

import pytest
import torch

from dgm.diffusion.schedules import Schedule, at, cosine_schedule, from_betas, linear_schedule

DIFFUSERS_NAME = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def diffusers_scheduler(kind: str, T: int):
    diffusers = pytest.importorskip("diffusers", reason="diffusers (the test extra) is needed for the cross-check")
    return diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=DIFFUSERS_NAME[kind])


def build(kind: str, T: int) -> Schedule:
    # diffusers' linear defaults are the DDPM paper's, as are ours
    return linear_schedule(T) if kind == "linear" else cosine_schedule(T)


@pytest.mark.parametrize("T", [1000, 50])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_matches_diffusers(kind, T):
    """beta, alpha, alpha_bar and the posterior variance agree with diffusers' (float32) to 1e-6; diffusers' t is ours + 1."""
    reference = diffusers_scheduler(kind, T)
    ours = build(kind, T)
    assert ours.T == T and len(ours.beta) == T + 1
    torch.testing.assert_close(ours.beta[1:], reference.betas.double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.alpha[1:], reference.alphas.double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.alpha_bar[1:], reference.alphas_cumprod.double(), rtol=0, atol=1e-6)
    previous = torch.cat([torch.ones(1), reference.alphas_cumprod[:-1]]).double()  # diffusers' "prev_t < 0 → one"
    torch.testing.assert_close(ours.alpha_bar_prev[1:], previous, rtol=0, atol=1e-6)
    variance = torch.stack([reference._get_variance(t) for t in range(1, T)]).double()  # diffusers clamps t = 0 to 1e-20
    torch.testing.assert_close(ours.posterior_variance[2:], variance, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_the_data_entry_and_the_marginal_products(kind):
    """Entry 0 is the data (beta_0 = 0, alpha_bar_0 = 1); alpha_bar_t is the running product and falls to ~0 at T."""
    s = build(kind, 1000)
    assert s.beta[0] == 0 and s.alpha[0] == 1 and s.alpha_bar[0] == 1 and s.alpha_bar_prev[1] == 1
    product = torch.tensor([math.prod(s.alpha[1 : t + 1].tolist()) for t in range(0, 1001, 50)], dtype=torch.float64)
    torch.testing.assert_close(s.alpha_bar[::50], product, rtol=1e-12, atol=0)
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())
    assert s.alpha_bar[-1] < 5e-5  # q(x_T | x_0) is then N(0, I) up to sqrt(alpha_bar_T) x_0 < 0.007 |x_0|
    torch.testing.assert_close(s.alpha_bar_prev[1:], s.alpha_bar[:-1])


def test_cosine_follows_its_closed_form_below_the_cap():
    """alpha_bar_t = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2), wherever beta_t is below the 0.999 cap."""
    T, s = 1000, 0.008
    schedule = cosine_schedule(T, s)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    closed = torch.tensor([value / f[0] for value in f], dtype=torch.float64)
    capped = schedule.beta >= 0.999
    assert capped.nonzero().flatten().tolist() == [T]  # only the last step hits the cap
    torch.testing.assert_close(schedule.alpha_bar[:T], closed[:T], rtol=1e-10, atol=1e-14)


def test_posterior_variance_and_its_clipped_log():
    """beta~_t = (1 - alpha_bar_{t-1})/(1 - alpha_bar_t) beta_t; beta~_1 = 0, and its log is clipped to beta~_2's."""
    s = linear_schedule(100, 1e-3, 0.1)
    t = torch.arange(1, 101)
    expected = (1 - s.alpha_bar[t - 1]) / (1 - s.alpha_bar[t]) * s.beta[t]
    torch.testing.assert_close(s.posterior_variance[1:], expected)
    assert s.posterior_variance[1] == 0
    torch.testing.assert_close(s.posterior_log_variance_clipped[2:], expected[1:].log())
    assert s.posterior_log_variance_clipped[1] == s.posterior_log_variance_clipped[2]
    assert bool((s.posterior_variance[2:] < s.beta[2:]).all())  # beta~_t < beta_t: the two choices of sigma_t^2


def test_from_betas_rebuilds_a_schedule():
    s = cosine_schedule(40)
    rebuilt = from_betas(s.beta[1:])
    for field in dataclasses.fields(Schedule):
        torch.testing.assert_close(getattr(rebuilt, field.name), getattr(s, field.name))


def test_a_schedule_holds_tensors_not_weights():
    """Frozen, no parameters, moved (and cast) with .to; `at` picks entries shaped for a batch."""
    s = linear_schedule(10, 0.01, 0.2)
    assert not isinstance(s, torch.nn.Module)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.beta = s.beta * 2  # type: ignore[misc]
    moved = s.to("cpu", torch.float32)
    assert moved.alpha_bar.dtype == torch.float32 and s.alpha_bar.dtype == torch.float64
    x = torch.zeros(3, 1, 4, 4, dtype=torch.float32)
    picked = at(s.alpha_bar, torch.tensor([1, 5, 10]), x)
    assert picked.shape == (3, 1, 1, 1) and picked.dtype == torch.float32
    torch.testing.assert_close(picked.flatten(), s.alpha_bar[[1, 5, 10]].float())
    assert at(s.alpha_bar, 5, x).shape == ()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: linear_schedule(1), "T must be at least 2"),
        (lambda: linear_schedule(10, 0.2, 0.1), "beta_start <= beta_end"),
        (lambda: cosine_schedule(10, s=-0.1), "s >= 0"),
        (lambda: from_betas(torch.tensor([0.1, 1.5])), r"\(0, 1\]"),
        (lambda: from_betas(torch.ones(2, 2) * 0.1), "1-D"),
    ],
)
def test_bad_schedules_fail_with_a_message(make, message):
    with pytest.raises(ValueError, match=message):
        make()
