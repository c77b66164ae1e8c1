"""DDPM and DDIM samplers: one step and a seeded loop against diffusers, marginals on Gaussian data, DDIM's
theorem (any sub-sequence and any eta keep q(x_t | x_0)), DDIM encode → decode, the chain, and clear errors."""

import pytest
import torch

from dgm.diffusion.process import GaussianDiffusion
from dgm.diffusion.samplers import DDIMSampler, DDPMSampler, ddim_timesteps
from dgm.diffusion.schedules import cosine_schedule, from_betas, linear_schedule

MEAN, STD = torch.tensor([2.0, -1.0], dtype=torch.float64), torch.tensor([0.5, 1.2], dtype=torch.float64)


def optimal_eps(process: GaussianDiffusion):
    r"""$\varepsilon^*(x_t, t) = \sqrt{1 - \bar\alpha_t}(x_t - \sqrt{\bar\alpha_t}m)/(\bar\alpha_t s^2 + 1 - \bar\alpha_t)$ for data N(m, diag s^2)."""
    alpha_bar = process.schedule.alpha_bar

    def model(x, t):
        a = alpha_bar[t].view(-1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * MEAN) / (a * STD**2 + 1 - a)

    return model


def fake_model(x, t):
    """A smooth, t-dependent stand-in for a network, the same in both libraries' loops (t in the book's indexing)."""
    return torch.tanh(x) * 0.5 + 1e-3 * t.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def gaussian_noise(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def import_diffusers():
    return pytest.importorskip("diffusers", reason="diffusers (the test extra) is needed for the cross-check")


def in_float64(reference):
    """diffusers' scheduler with its own betas' products in float64, so the comparison is of formulas, not of rounding."""
    reference.alphas_cumprod = torch.cumprod(1 - reference.betas.double(), 0)
    reference.one = reference.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return reference, GaussianDiffusion(from_betas(reference.betas.double()), prediction=PREDICTION[reference.config.prediction_type])


PREDICTION = {"epsilon": "epsilon", "sample": "x0", "v_prediction": "v"}


# --- against diffusers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("variance, clip", [("small", None), ("large", None), ("small", 1.0)])
def test_ddpm_step_matches_diffusers(variance, clip, prediction):
    diffusers = import_diffusers()
    reference, process = in_float64(diffusers.DDPMScheduler(
        num_train_timesteps=1000, variance_type={"small": "fixed_small", "large": "fixed_large"}[variance],
        clip_sample=clip is not None, clip_sample_range=clip or 1.0, prediction_type=prediction,
    ))
    sampler = DDPMSampler(process, variance=variance, clip=clip)
    x_t, output = gaussian_noise((3, 1, 4, 4), 0), gaussian_noise((3, 1, 4, 4), 1)
    for t in (1, 2, 37, 500, 1000):
        expected = reference.step(output, t - 1, x_t, generator=torch.Generator().manual_seed(t))
        ours, x0 = sampler.step(output, t, x_t, gaussian_noise(x_t.shape, t))
        torch.testing.assert_close(ours, expected.prev_sample, rtol=0, atol=1e-6)
        torch.testing.assert_close(x0, expected.pred_original_sample, rtol=0, atol=1e-6)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("eta, clip", [(0.0, None), (0.5, None), (1.0, None), (0.0, 1.0)])
def test_ddim_step_matches_diffusers(eta, clip, spacing, prediction):
    """Same sub-sequence of steps; one step from its first, a middle and its last step (clipping with the clipped model output)."""
    diffusers = import_diffusers()
    reference, process = in_float64(diffusers.DDIMScheduler(
        num_train_timesteps=1000, clip_sample=clip is not None, clip_sample_range=clip or 1.0,
        prediction_type=prediction, timestep_spacing=spacing, set_alpha_to_one=True,
    ))
    reference.set_timesteps(10)
    sampler = DDIMSampler(process, steps=10, eta=eta, spacing=spacing, clip=clip)
    assert sampler.timesteps == [t + 1 for t in reference.timesteps.tolist()] + [0]
    x_t, output = gaussian_noise((3, 1, 4, 4), 2), gaussian_noise((3, 1, 4, 4), 3)
    for index in (0, 5, 9):
        t, t_prev = sampler.timesteps[index], sampler.timesteps[index + 1]
        noise = gaussian_noise(x_t.shape, index)
        expected = reference.step(output, t - 1, x_t, eta=eta, use_clipped_model_output=True, variance_noise=noise)
        ours, x0 = sampler.step(output, t, t_prev, x_t, noise)
        torch.testing.assert_close(ours, expected.prev_sample, rtol=0, atol=1e-6)
        torch.testing.assert_close(x0, expected.pred_original_sample, rtol=0, atol=1e-6)


def test_seeded_loops_match_diffusers():
    """A whole DDPM loop (T = 50) and a DDIM loop (eta = 1, 10 of 100 steps) with the same seed give diffusers' samples."""
    diffusers = import_diffusers()
    reference, process = in_float64(diffusers.DDPMScheduler(num_train_timesteps=50, beta_end=0.2, clip_sample=False))
    x_T = gaussian_noise((2, 1, 4, 4), 4)
    x, generator = x_T, torch.Generator().manual_seed(5)
    for t in reference.timesteps:  # 49, ..., 0
        x = reference.step(fake_model(x, torch.full((2,), int(t) + 1)), t, x, generator=generator).prev_sample
    ours = DDPMSampler(process).sample(fake_model, x_T, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-6)

    reference, process = in_float64(diffusers.DDIMScheduler(num_train_timesteps=100, beta_end=0.1, clip_sample=False,
                                                            timestep_spacing="leading", set_alpha_to_one=True))
    reference.set_timesteps(10)
    x, generator = x_T, torch.Generator().manual_seed(6)
    for t in reference.timesteps:
        x = reference.step(fake_model(x, torch.full((2,), int(t) + 1)), t, x, eta=1.0, generator=generator).prev_sample
    ours = DDIMSampler(process, steps=10, eta=1.0, spacing="leading").sample(fake_model, x_T, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-6)


def test_ddim_with_every_step_and_eta_one_is_ddpm():
    """DDIM(eta = 1, S = T) is DDPM's ancestral sampler with sigma_t^2 = beta~_t: the same noise gives the same samples."""
    process = GaussianDiffusion(cosine_schedule(40))
    x_T = gaussian_noise((3, 2), 7)
    ddim = DDIMSampler(process, steps=40, eta=1.0).sample(fake_model, x_T, generator=torch.Generator().manual_seed(8))
    ddpm = DDPMSampler(process, "small").sample(fake_model, x_T, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(ddim, ddpm, rtol=0, atol=1e-10)


# --- marginals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_keeps_the_marginals_q_xt_given_x0_with_few_steps(eta):
    """DDIM's theorem (book/ddim.md, eq. ddim-marginals): with x_0 known (the oracle eps = (x_t - sqrt(a_t) x_0)/sqrt(1 - a_t))
    and x_T ~ q(x_T | x_0), every state of a 5-step run has q(x_t | x_0) = N(sqrt(a_t) x_0, (1 - a_t) I): the standardised
    residual is N(0, 1) within Monte Carlo error, for any eta, and the run ends on x_0."""
    process = GaussianDiffusion(linear_schedule(1000))
    x0 = MEAN + STD * gaussian_noise((20_000, 2), 9)
    oracle = lambda x, t: process.eps_from_x0(x, t, x0)
    x_T = process.q_sample(x0, process.T, gaussian_noise(x0.shape, 10))
    sampler = DDIMSampler(process, steps=5, eta=eta)
    final, chain = sampler.sample(oracle, x_T, generator=torch.Generator().manual_seed(11), chain_every=1)
    for t, state in zip(sampler.timesteps[1:-1], chain[1:-1]):
        a = process.schedule.alpha_bar[t]
        residual = (state - a.sqrt() * x0) / (1 - a).sqrt()
        assert residual.mean(0).abs().max() < 0.04  # Monte Carlo sd 0.007
        assert (residual.var(0) - 1).abs().max() < 0.06  # Monte Carlo sd 0.01
    torch.testing.assert_close(final, x0)


def test_ddpm_small_variance_keeps_the_marginals_given_x0():
    """The ancestral step with sigma_t^2 = beta~_t *is* the posterior q(x_{t-1} | x_t, x_0) when x_0 is known: marginals kept."""
    process = GaussianDiffusion(linear_schedule(50, 1e-3, 0.2))
    x0 = MEAN + STD * gaussian_noise((20_000, 2), 12)
    oracle = lambda x, t: process.eps_from_x0(x, t, x0)
    x_T = process.q_sample(x0, process.T, gaussian_noise(x0.shape, 13))
    _, chain = DDPMSampler(process, "small").sample(oracle, x_T, generator=torch.Generator().manual_seed(14), chain_every=1)
    for t in (49, 25, 5, 2):
        a = process.schedule.alpha_bar[t]
        residual = (chain[process.T - t] - a.sqrt() * x0) / (1 - a).sqrt()  # chain[k] is x_{T - k}
        assert residual.mean(0).abs().max() < 0.04 and (residual.var(0) - 1).abs().max() < 0.06


def exact_chain_moments(process, pairs, sigmas, noise_sigmas=None):
    """Mean and variance (each (2,)) of the sampler's output with the optimal eps on N(m, diag s^2), from x_T ~ N(0, I).

    Every step is affine in x_t: x_prev = A x_t + B + sigma' z, so the moments follow exactly. A and B are DDIM's
    with ``sigmas``; DDPM's mean mu~_t is DDIM's with t_prev = t - 1 and sigma_t^2 = beta~_t, while its noise
    ``noise_sigmas`` may be sqrt(beta_t)."""
    alpha_bar = process.schedule.alpha_bar
    mean, var = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    for (t, t_prev), sigma, noise_sigma in zip(pairs, sigmas, noise_sigmas or sigmas):
        a, a_prev = alpha_bar[t], alpha_bar[t_prev]
        v = a * STD**2 + 1 - a
        slope = (a_prev.sqrt() * a.sqrt() * STD**2 + (1 - a_prev - sigma**2).sqrt() * (1 - a).sqrt()) / v
        mean = slope * mean + a_prev.sqrt() * MEAN - slope * a.sqrt() * MEAN
        var = slope**2 * var + noise_sigma**2
    return mean, var


def check_moments(samples, mean, var, n):
    """Sample mean and variance within 5 Monte Carlo standard deviations of the exact ones."""
    assert bool(((samples.mean(0) - mean).abs() < 5 * (var / n).sqrt()).all()), (samples.mean(0), mean)
    assert bool(((samples.var(0) - var).abs() < 5 * var * (2 / n) ** 0.5).all()), (samples.var(0), var)


def test_ddpm_marginal_on_gaussian_data():
    """With the optimal eps (T = 1000, cosine), DDPM's samples have the exact chain's moments (within Monte Carlo
    error), and those are q(x_0) = N(m, s^2) up to the discretisation: the variance is 0.5-0.8% short for beta~_t
    and 0.05-0.2% over for beta_t (the exact chain, this schedule and these s)."""
    process = GaussianDiffusion(cosine_schedule(1000))
    n = 20_000
    x_T = gaussian_noise((n, 2), 15)
    pairs = [(t, t - 1) for t in range(1000, 0, -1)]
    for variance, relative_bias in [("small", 0.012), ("large", 0.003)]:
        samples = DDPMSampler(process, variance).sample(optimal_eps(process), x_T, generator=torch.Generator().manual_seed(16))
        s = process.schedule
        sigma2 = torch.where(torch.arange(1001) == 1, 0.0, s.posterior_variance if variance == "small" else s.beta)
        mean, var = exact_chain_moments(process, pairs, [s.posterior_variance[t].sqrt() for t, _ in pairs],
                                        [sigma2[t].sqrt() for t, _ in pairs])
        check_moments(samples, mean, var, n)
        torch.testing.assert_close(mean, MEAN, rtol=0, atol=1e-3)
        assert bool(((var / STD**2 - 1).abs() < relative_bias).all()), var


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_marginal_on_gaussian_data(eta):
    """With the optimal eps, DDIM's samples have the exact chain's moments at 10 steps and at 1000; at 1000 steps the
    chain is q(x_0) up to the discretisation (variance 0.3% short for eta = 0, 0.8% for eta = 1); at 10 steps each
    jump shrinks the spread: the variance falls 22-40% short even with the optimal model (the few-step bias)."""
    process = GaussianDiffusion(cosine_schedule(1000))
    n = 20_000
    x_T = gaussian_noise((n, 2), 17)
    for steps in (10, 1000):
        sampler = DDIMSampler(process, steps=steps, eta=eta)
        samples = sampler.sample(optimal_eps(process), x_T, generator=torch.Generator().manual_seed(18))
        pairs = list(zip(sampler.timesteps[:-1], sampler.timesteps[1:]))
        sigmas = [sampler.sigma(t, t_prev, x_T) for t, t_prev in pairs]
        mean, var = exact_chain_moments(process, pairs, sigmas)
        check_moments(samples, mean, var, n)
        torch.testing.assert_close(mean, MEAN, rtol=0, atol=1e-3)
        if steps == 1000:
            assert bool(((var / STD**2 - 1).abs() < (0.005 if eta == 0 else 0.012)).all()), var
        else:
            assert bool((var < 0.95 * STD**2).all()), var


def test_ddim_encode_then_decode_reconstructs():
    """eta = 0 inversion: encode → decode returns x_0, the error shrinking like 1/steps (11%, 1.3%, 0.13% here)."""
    process = GaussianDiffusion(cosine_schedule(1000))
    x0 = MEAN + STD * gaussian_noise((500, 2), 19)
    errors = []
    for steps in (10, 100, 1000):
        sampler = DDIMSampler(process, steps=steps)
        x_T = sampler.encode(optimal_eps(process), x0)
        errors.append(((sampler.sample(optimal_eps(process), x_T) - x0).norm() / x0.norm()).item())
    assert errors[1] < errors[0] / 5 and errors[2] < errors[1] / 5 and errors[2] < 2e-3, errors
    assert (x_T.mean(0).abs() < 0.2).all() and ((x_T.var(0) - 1).abs() < 0.2).all()  # the codes look like N(0, I)


# --- the loop's bookkeeping -------------------------------------------------------------------------------------


def test_chains_for_strips_and_determinism():
    process = GaussianDiffusion(linear_schedule(50, 1e-3, 0.2))
    x_T = gaussian_noise((3, 1, 4, 4), 20)
    final, chain = DDPMSampler(process).sample(fake_model, x_T, generator=torch.Generator().manual_seed(0), chain_every=10)
    assert chain.shape == (6, 3, 1, 4, 4)  # x_50, x_40, ..., x_0
    torch.testing.assert_close(chain[0], x_T)
    torch.testing.assert_close(chain[-1], final)
    final, chain = DDIMSampler(process, steps=5).sample(fake_model, x_T, chain_every=2)
    assert chain.shape == (4, 3, 1, 4, 4)  # x_T, after steps 2 and 4, and x_0
    torch.testing.assert_close(chain[-1], final)
    torch.testing.assert_close(final, DDIMSampler(process, steps=5).sample(fake_model, x_T))  # eta = 0: deterministic
    assert ddim_timesteps(1000, 10, "trailing")[:3] == [1000, 900, 800] and ddim_timesteps(1000, 10, "leading")[:2] == [901, 801]


def test_sampling_loops_never_read_back_from_the_device(monkeypatch):
    """No .item(), bool() or float() of a tensor inside the loops: on a GPU nothing would wait for the device."""
    process = GaussianDiffusion(linear_schedule(20, 1e-3, 0.3))
    x_T = gaussian_noise((2, 3), 21)

    def refuse(*args, **kwargs):
        raise AssertionError("a host read-back inside a sampling loop")

    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    DDPMSampler(process).sample(fake_model, x_T)
    DDIMSampler(process, steps=5, eta=0.5).sample(fake_model, x_T)
    DDIMSampler(process, steps=5).encode(fake_model, x_T)


# --- wrong input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p, x: DDIMSampler(p, steps=21), r"steps must lie in 1\.\.T=20"),
        (lambda p, x: DDIMSampler(p, eta=-0.1), "eta must be >= 0"),
        (lambda p, x: DDIMSampler(p, steps=5, spacing="middle"), "'trailing' or 'leading'"),
        (lambda p, x: DDPMSampler(p, variance="tiny"), "'small'"),
        (lambda p, x: DDPMSampler(p).step(x, 0, x, x), r"t must lie in 1\.\.20"),
        (lambda p, x: DDPMSampler(p).step(x, 5, x, None), "needs noise"),
        (lambda p, x: DDPMSampler(p).step(x, 5, x, x[:1]), "noise must have the shape"),
        (lambda p, x: DDPMSampler(p).step(x[:, :1], 5, x, x), "model_output must have the shape"),
        (lambda p, x: DDIMSampler(p, steps=5).step(x, 5, 5, x), "t_prev < t"),
        (lambda p, x: DDIMSampler(p, steps=5, eta=1.0).step(x, 5, 4, x), "needs noise"),
        (lambda p, x: DDIMSampler(p, steps=5, eta=1.0).encode(fake_model, x), "use eta=0"),
        (lambda p, x: DDPMSampler(p).sample(fake_model, x[0]), "non-empty batch"),
    ],
)
def test_wrong_input_fails_with_a_message(call, message):
    process = GaussianDiffusion(linear_schedule(20, 1e-3, 0.3))
    with pytest.raises(ValueError, match=message):
        call(process, gaussian_noise((2, 3), 22))
