"""The diffusion process: q_sample and v against diffusers, the posterior and the KL weight against SymPy,
the loss and the ELBO's terms against closed forms on Gaussian data, the U-Net, and DDPM training through
``fit`` with the EMA hook."""

import math

import pytest
import sympy as sp
import torch

from dgm.diffusion.process import GaussianDiffusion, discretised_gaussian_log_likelihood
from dgm.diffusion.samplers import DDIMSampler
from dgm.diffusion.schedules import cosine_schedule, linear_schedule
from dgm.networks import UNet, sinusoidal_embedding
from dgm.training import EMA, TrainSettings, fit

torch.set_default_dtype(torch.float32)
MEAN, STD = torch.tensor([1.5, -0.5], dtype=torch.float64), torch.tensor([0.5, 1.2], dtype=torch.float64)


def optimal_models(process: GaussianDiffusion):
    r"""For data N(m, diag s^2): E[eps | x_t], E[x_0 | x_t] and E[v | x_t], the minimisers of the three losses.

    With $v_t = \bar\alpha_t s^2 + 1 - \bar\alpha_t$: $\varepsilon^* = \sqrt{1 - \bar\alpha_t}(x_t - \sqrt{\bar\alpha_t}m)/v_t$,
    $x_0^* = m + \sqrt{\bar\alpha_t}s^2(x_t - \sqrt{\bar\alpha_t}m)/v_t$, $v^* = (\sqrt{\bar\alpha_t}x_t - x_0^*)/\sqrt{1 - \bar\alpha_t}$.
    """
    alpha_bar = process.schedule.alpha_bar

    def parts(x, t):
        a = alpha_bar[t].view(-1, 1)
        return a, a * STD**2 + 1 - a

    def eps(x, t):
        a, v = parts(x, t)
        return (1 - a).sqrt() * (x - a.sqrt() * MEAN) / v

    def x0(x, t):
        a, v = parts(x, t)
        return MEAN + a.sqrt() * STD**2 * (x - a.sqrt() * MEAN) / v

    def velocity(x, t):
        a, _ = parts(x, t)
        return (a.sqrt() * x - x0(x, t)) / (1 - a).sqrt()

    return {"epsilon": eps, "x0": x0, "v": velocity}


def gaussian_data(n: int, seed: int = 0) -> torch.Tensor:
    return MEAN + STD * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- against diffusers -------------------------------------------------------------------------------


def test_q_sample_and_velocity_match_diffusers():
    diffusers = pytest.importorskip("diffusers", reason="diffusers (the test extra) is needed for the cross-check")
    reference = diffusers.DDPMScheduler(num_train_timesteps=1000)
    reference.alphas_cumprod = torch.cumprod(1 - reference.betas.double(), 0)  # the same formulas, in float64
    process = GaussianDiffusion(linear_schedule(1000))
    generator = torch.Generator().manual_seed(1)
    x0, noise = (torch.randn(6, 1, 4, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([1, 2, 10, 500, 999, 1000])
    torch.testing.assert_close(process.q_sample(x0, t, noise), reference.add_noise(x0, noise, t - 1), rtol=0, atol=1e-6)
    torch.testing.assert_close(process.v_target(x0, t, noise), reference.get_velocity(x0, noise, t - 1), rtol=0, atol=1e-6)


# --- the posterior and the KL weight against SymPy ---------------------------------------------------------


def sympy_posterior():
    r"""Complete the square in $x_{t-1}$ of $\log q(x_t \mid x_{t-1}) + \log q(x_{t-1} \mid x_0)$ (one dimension)."""
    x_t, x_prev, x0 = sp.symbols("x_t x_prev x_0", real=True)
    alpha, alpha_bar_prev = sp.symbols("alpha alpha_bar_prev", positive=True)
    exponent = -((x_t - sp.sqrt(alpha) * x_prev) ** 2) / (2 * (1 - alpha)) - (x_prev - sp.sqrt(alpha_bar_prev) * x0) ** 2 / (
        2 * (1 - alpha_bar_prev)
    )
    quadratic = sp.Poly(sp.expand(exponent), x_prev)
    a, b = quadratic.coeff_monomial(x_prev**2), quadratic.coeff_monomial(x_prev)
    variance, mean = sp.simplify(-1 / (2 * a)), sp.simplify(-b / (2 * a))
    return (x_t, x0, alpha, alpha_bar_prev), mean, variance


def test_posterior_matches_the_completed_square():
    """The library's beta~_t and mu~_t equal SymPy's completed square, at every t of two schedules."""
    (x_t, x0, alpha, alpha_bar_prev), mean, variance = sympy_posterior()
    beta, alpha_bar = 1 - alpha, alpha * alpha_bar_prev
    # the book's closed forms, symbolically
    assert sp.simplify(variance - (1 - alpha_bar_prev) / (1 - alpha_bar) * beta) == 0
    book_mean = sp.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar) * x0 + sp.sqrt(alpha) * (1 - alpha_bar_prev) / (1 - alpha_bar) * x_t
    assert sp.simplify(mean - book_mean) == 0
    mean_fn = sp.lambdify((x_t, x0, alpha, alpha_bar_prev), mean, "math")
    variance_fn = sp.lambdify((alpha, alpha_bar_prev), variance, "math")
    for schedule in (linear_schedule(200, 1e-3, 0.05), cosine_schedule(200)):
        process = GaussianDiffusion(schedule)
        steps = torch.tensor([2, 3, 50, 150, 199])
        values_x0 = torch.tensor([[0.3], [-1.0], [0.8], [0.1], [-0.4]], dtype=torch.float64)
        values_xt = torch.tensor([[1.2], [0.5], [-0.7], [2.0], [0.0]], dtype=torch.float64)
        ours_mean, ours_variance = process.posterior_mean_variance(values_x0, values_xt, steps)
        for row, t in enumerate(steps.tolist()):
            a, abp = schedule.alpha[t].item(), schedule.alpha_bar_prev[t].item()
            assert ours_mean[row, 0].item() == pytest.approx(mean_fn(values_xt[row, 0].item(), values_x0[row, 0].item(), a, abp), rel=1e-12)
            assert ours_variance[row, 0].item() == pytest.approx(variance_fn(a, abp), rel=1e-12)


def test_posterior_mean_in_the_noise():
    """mu~_t(x_0, x_t) = (x_t - beta_t/sqrt(1 - alpha_bar_t) eps)/sqrt(alpha_t) when x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    (x_t, x0, alpha, alpha_bar_prev), mean, _ = sympy_posterior()
    eps = sp.symbols("epsilon", real=True)
    alpha_bar = alpha * alpha_bar_prev
    in_noise = mean.subs(x0, (x_t - sp.sqrt(1 - alpha_bar) * eps) / sp.sqrt(alpha_bar))
    assert sp.simplify(in_noise - (x_t - (1 - alpha) / sp.sqrt(1 - alpha_bar) * eps) / sp.sqrt(alpha)) == 0
    process = GaussianDiffusion(cosine_schedule(100))
    generator = torch.Generator().manual_seed(2)
    x0_values, noise = (torch.randn(4, 3, generator=generator, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([2, 10, 60, 100])
    xt_values = process.q_sample(x0_values, t, noise)
    torch.testing.assert_close(process.posterior_mean_from_eps(xt_values, t, noise),
                               process.posterior_mean_variance(x0_values, xt_values, t)[0])


@pytest.mark.parametrize("variance", ["small", "large"])
def test_kl_weight_matches_sympy_and_the_elbo_term(variance):
    """KL(q(x_{t-1}|x_t,x_0) || p_theta) = beta_t^2/(2 sigma^2 alpha_t (1 - alpha_bar_t)) ||eps - eps_theta||^2 (+ a constant for sigma^2 = beta_t)."""
    x_t, eps, eps_model = sp.symbols("x_t epsilon epsilon_theta", real=True)
    alpha, alpha_bar, sigma2 = sp.symbols("alpha alpha_bar sigma2", positive=True)
    mean = lambda e: (x_t - (1 - alpha) / sp.sqrt(1 - alpha_bar) * e) / sp.sqrt(alpha)
    kl_equal_variances = (mean(eps) - mean(eps_model)) ** 2 / (2 * sigma2)  # the Gaussian KL with sigma_1 = sigma_2
    weight = sp.simplify(kl_equal_variances / (eps - eps_model) ** 2)
    assert sp.simplify(weight - (1 - alpha) ** 2 / (2 * sigma2 * alpha * (1 - alpha_bar))) == 0
    weight_fn = sp.lambdify((alpha, alpha_bar, sigma2), weight, "math")

    process = GaussianDiffusion(linear_schedule(100, 1e-3, 0.1))
    s = process.schedule
    t = torch.tensor([2, 7, 40, 100])
    sigma2_values = (s.posterior_variance if variance == "small" else s.beta)[t]
    expected = [weight_fn(s.alpha[i].item(), s.alpha_bar[i].item(), v.item()) for i, v in zip(t, sigma2_values)]
    torch.testing.assert_close(process.kl_weight(t, variance), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)

    # the library's ELBO term (a general Gaussian KL) is the weighted squared error, plus the variance mismatch
    generator = torch.Generator().manual_seed(3)
    x0, noise, eps_guess = (torch.randn(5, 6, generator=generator, dtype=torch.float64) for _ in range(3))
    for step in (2, 40, 100):
        term = process.elbo_term(lambda x, tt: eps_guess, x0, step, noise, variance)
        ratio = (s.posterior_variance[step] / (s.posterior_variance if variance == "small" else s.beta)[step]).item()
        constant = 0.5 * 6 * (ratio - 1 - math.log(ratio))  # 0 when sigma^2 = beta~_t
        torch.testing.assert_close(term, process.kl_weight(step, variance) * (noise - eps_guess).pow(2).sum(1) + constant)


# --- the loss and the ELBO's terms against closed forms on Gaussian data ------------------------------------


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_loss_of_the_optimal_model_is_the_posterior_variance(prediction):
    """At the optimum the simple loss is the target's posterior variance: a_t s^2/v_t (eps), s^2(1-a_t)/v_t (x_0), s^2/v_t (v)."""
    process = GaussianDiffusion(cosine_schedule(1000), prediction=prediction)
    model = optimal_models(process)[prediction]
    x0 = gaussian_data(100_000)
    for t in (1, 100, 500, 900):
        torch.manual_seed(t)
        terms = process.loss(model, x0, t=torch.full((len(x0),), t))
        a = process.schedule.alpha_bar[t]
        v = a * STD**2 + 1 - a
        expected = {"epsilon": a * STD**2 / v, "x0": STD**2 * (1 - a) / v, "v": STD**2 / v}[prediction].mean()
        assert terms["loss"].item() == pytest.approx(expected.item(), rel=0.02)
        assert terms["mse"].shape == (len(x0),) and bool((terms["t"] == t).all())


def test_loss_draws_t_uniformly_and_returns_per_example_terms():
    process = GaussianDiffusion(linear_schedule(10, 0.01, 0.3))
    terms = process.loss(lambda x, t: torch.zeros_like(x), torch.zeros(20_000, 3))
    counts = torch.bincount(terms["t"], minlength=11)
    assert counts[0] == 0 and bool((counts[1:] > 1_800).all()) and bool((counts[1:] < 2_200).all())
    assert terms["loss"].item() == pytest.approx(1.0, rel=0.02)  # predicting 0 for eps ~ N(0, I) costs E eps^2 = 1


def test_elbo_terms_of_the_optimal_model_on_gaussian_data():
    r"""E[L_{t-1}] = sum_d c_t^2 Var(x_0|x_t)/(2 beta~_t), c_t = sqrt(alpha_bar_{t-1}) beta_t/(1 - alpha_bar_t), for the optimal model."""
    process = GaussianDiffusion(linear_schedule(1000))
    model = optimal_models(process)["epsilon"]
    x0 = gaussian_data(50_000, seed=4)
    s = process.schedule
    for t in (2, 30, 300):
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
        a, v = s.alpha_bar[t], s.alpha_bar[t] * STD**2 + 1 - s.alpha_bar[t]
        coefficient = s.alpha_bar_prev[t].sqrt() * s.beta[t] / (1 - a)
        expected = (coefficient**2 * STD**2 * (1 - a) / v / (2 * s.posterior_variance[t])).sum()
        assert process.elbo_term(model, x0, t, noise).mean().item() == pytest.approx(expected.item(), rel=0.03)


def test_prior_term_is_the_gaussian_kl():
    process = GaussianDiffusion(linear_schedule(50, 1e-3, 0.2))
    x0 = gaussian_data(7, seed=5)
    a = process.schedule.alpha_bar[-1]
    q = torch.distributions.Normal(a.sqrt() * x0, (1 - a).sqrt())
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(process.prior_kl(x0), expected)


def test_discretised_decoder_is_a_distribution_over_the_256_levels():
    """The masses of all levels sum to one; a middle bin holds density × width when sigma is wide; the tails are finite."""
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)[:, None]  # (256, 1)
    for mean, std in [(0.1, 0.5), (-0.97, 0.01), (0.6, 1e-4), (3.0, 0.2)]:
        log_mass = discretised_gaussian_log_likelihood(levels, torch.tensor(mean), torch.tensor(2 * math.log(std)))
        assert bool(torch.isfinite(log_mass).all())
        assert log_mass.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    log_mass = discretised_gaussian_log_likelihood(levels, torch.tensor(0.0), torch.tensor(2 * math.log(0.5)))
    density = torch.distributions.Normal(0.0, 0.5).log_prob(levels[128]).exp()
    assert log_mass[128].exp().item() == pytest.approx((density * 2 / 255).item(), rel=1e-4)


def test_elbo_adds_its_terms_and_reports_bits_per_dim():
    process = GaussianDiffusion(linear_schedule(20, 1e-3, 0.3))
    x0 = torch.randint(0, 256, (3, 1, 4, 4), generator=torch.Generator().manual_seed(6)).double() / 127.5 - 1
    report = process.elbo(lambda x, t: torch.zeros_like(x), x0, generator=torch.Generator().manual_seed(7))
    assert report.terms.shape == (20, 3) and report.prior.shape == (3,) and report.timesteps.tolist() == list(range(1, 21))
    torch.testing.assert_close(report.total, report.prior + report.terms.sum(0))
    torch.testing.assert_close(report.bits_per_dim, report.total / (16 * math.log(2)))
    assert bool((report.terms >= 0).all())  # KLs and a -log probability of a discrete outcome
    with pytest.raises(ValueError, match=r"scaled to \[-1, 1\]"):
        process.elbo(lambda x, t: x, x0 * 2)
    with pytest.raises(ValueError, match=r"steps must be None \(all T\) or lie in 2\.\.T=20"):
        process.elbo(lambda x, t: x, x0, steps=1)


def test_elbo_from_a_few_steps_is_unbiased():
    """K = 4 of T = 20 steps (L_0 always, 3 drawn from 2..20, weighted 19/3): the mean of many estimates is the full ELBO."""
    process = GaussianDiffusion(linear_schedule(20, 1e-3, 0.3))
    x0 = torch.randint(0, 256, (2, 3), generator=torch.Generator().manual_seed(9)).double() / 127.5 - 1
    model = lambda x, t: 0.5 * x
    generator = torch.Generator().manual_seed(10)
    full = torch.stack([process.elbo(model, x0, generator=generator).total for _ in range(200)])  # (200, B)
    few = torch.stack([process.elbo(model, x0, generator=generator, steps=4).total for _ in range(800)])
    estimate = process.elbo(model, x0, generator=generator, steps=4)
    assert estimate.terms.shape == (4, 2) and estimate.timesteps[0] == 1 and len(set(estimate.timesteps.tolist())) == 4
    standard_error = (full.var(0) / len(full) + few.var(0) / len(few)).sqrt()
    assert bool(((few.mean(0) - full.mean(0)).abs() < 4 * standard_error).all()), (few.mean(0), full.mean(0), standard_error)
    assert bool((few.std(0) > full.std(0)).all())  # the price of K < T evaluations


# --- conversions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_predict_recovers_eps_and_x0_from_any_parameterisation(prediction):
    process = GaussianDiffusion(cosine_schedule(100), prediction=prediction)
    generator = torch.Generator().manual_seed(8)
    x0, noise = (torch.randn(4, 2, 3, 3, generator=generator, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([1, 30, 70, 100])
    x_t = process.q_sample(x0, t, noise)
    output = {"epsilon": noise, "x0": x0, "v": process.v_target(x0, t, noise)}[prediction]
    eps, x0_hat = process.predict(output, x_t, t)
    torch.testing.assert_close(eps, noise)
    torch.testing.assert_close(x0_hat, x0)
    eps_clipped, x0_clipped = process.predict(output, x_t, t, clip=0.5)
    assert x0_clipped.abs().max() <= 0.5
    torch.testing.assert_close(process.q_sample(x0_clipped, t, eps_clipped), x_t)  # still a consistent pair


# --- wrong input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda p, x: p.q_sample(x, 11, torch.randn_like(x)), ValueError, r"t must lie in 0\.\.10"),
        (lambda p, x: p.q_sample(x, torch.tensor([1, 2, 11, 3]), torch.randn_like(x)), ValueError, r"values in 1\.\.11"),
        (lambda p, x: p.q_sample(x, torch.tensor([1.0, 2, 3, 4]), torch.randn_like(x)), ValueError, "integer tensor"),
        (lambda p, x: p.q_sample(x, torch.tensor([1, 2]), torch.randn_like(x)), ValueError, r"\(4,\) integer tensor"),
        (lambda p, x: p.q_sample(x, 3, torch.randn(4, 5)), ValueError, "noise must have the shape of x0"),
        (lambda p, x: p.q_sample(x, 2.5, torch.randn_like(x)), TypeError, "int or a"),
        (lambda p, x: p.posterior_mean_variance(x, x, 0), ValueError, r"t must lie in 1\.\.10"),
        (lambda p, x: p.loss(lambda xt, t: xt[:, :2], x), ValueError, "the model's output must have the shape"),
        (lambda p, x: p.loss(lambda xt, t: xt, x[0]), ValueError, "non-empty batch"),
        (lambda p, x: p.kl_weight(1), ValueError, r"t must lie in 2\.\.10"),
        (lambda p, x: p.sigma_squared(3, x, "medium"), ValueError, "'small'"),
    ],
)
def test_wrong_input_fails_with_a_message(call, error, message):
    process = GaussianDiffusion(linear_schedule(10, 0.01, 0.2))
    with pytest.raises(error, match=message):
        call(process, torch.randn(4, 3))


def test_bad_prediction_is_refused():
    with pytest.raises(ValueError, match="'epsilon', 'x0' or 'v'"):
        GaussianDiffusion(linear_schedule(10, 0.01, 0.2), prediction="score")  # type: ignore[arg-type]


# --- the U-Net and training with EMA -----------------------------------------------------------------------


def test_sinusoidal_embedding():
    t = torch.tensor([0, 1, 500])
    code = sinusoidal_embedding(t, 8)
    assert code.shape == (3, 8)
    torch.testing.assert_close(code[0], torch.tensor([0.0] * 4 + [1.0] * 4))  # sin 0, cos 0
    torch.testing.assert_close(code[1, 0], torch.tensor(math.sin(1.0)))  # the fastest frequency is 1
    torch.testing.assert_close(code[2, 3], torch.tensor(math.sin(500 * 10_000 ** (-3 / 4))))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


@pytest.mark.parametrize("channels, low, high", [(16, 0.2e6, 0.35e6), (32, 0.8e6, 1.2e6), (64, 3e6, 6e6)])
def test_unet_sizes(channels, low, high):
    """The CPU sizes (16-32 channels) have 0.3-1 M parameters, the GPU size (64) a few million."""
    size = sum(p.numel() for p in UNet(channels).parameters())
    assert low < size < high


def test_unet_shapes_time_dependence_and_bad_input():
    torch.manual_seed(0)
    net = UNet(8, attention=True)
    torch.nn.init.normal_(net.head[-1].weight)  # the output layer starts at zero; give it weights to see the t-dependence
    x = torch.randn(2, 1, 28, 28)
    out = net(x, torch.tensor([1, 1]))
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, torch.tensor([900, 900])))  # the step changes the output
    assert UNet(8, in_channels=3)(torch.randn(1, 3, 32, 32), torch.tensor([5])).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"x must be \(B, 1, H, W\) with H and W divisible by 4"):
        net(torch.randn(2, 1, 27, 27), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r"t must be a \(2,\) tensor"):
        net(x, torch.tensor([1]))
    with pytest.raises(ValueError, match="multiple of 8"):
        UNet(12)


def test_ddpm_training_through_fit_with_ema_and_sampling_from_the_average():
    """A few steps of fit(..., hooks=[ema]) on tiny data: the loss falls, the EMA weights trail the trained ones,
    and the samples come from ema.model (a deterministic DDIM run gives other images than the raw network's)."""
    torch.manual_seed(0)
    images = (torch.rand(64, 1, 28, 28) < 0.2).float() * 2 - 1  # sparse dots, in [-1, 1]
    process = GaussianDiffusion(linear_schedule(100, 1e-3, 0.2))
    net = UNet(8)
    ema = EMA(net, decay=0.9)
    history = fit(net, process.loss, images, TrainSettings(epochs=6, batch_size=16, lr=2e-3, progress=False), hooks=[ema])
    losses = history.terms["loss"]
    assert set(history.terms) == {"loss"} and losses[-1] < losses[0] < 1.5
    trained, averaged = dict(net.named_parameters()), dict(ema.model.named_parameters())
    assert all(not torch.equal(trained[name], averaged[name]) for name in trained if trained[name].requires_grad)
    sampler = DDIMSampler(process, steps=5)
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    from_ema = sampler.sample(ema.model, x_T)
    torch.testing.assert_close(from_ema, sampler.sample(ema.model, x_T))  # eta = 0: same noise, same images
    assert not torch.allclose(from_ema, sampler.sample(net, x_T))


def test_held_out_loss_uses_the_same_draws_for_every_model():
    from dgm.diffusion.process import GaussianDiffusion
    from dgm.diffusion.schedules import linear_schedule

    process = GaussianDiffusion(linear_schedule(100))
    x0 = torch.rand(64, 3) * 2 - 1
    zero = process.held_out_loss(lambda x, t: torch.zeros_like(x), x0, seed=3)
    assert zero == process.held_out_loss(lambda x, t: torch.zeros_like(x), x0, seed=3)  # reproducible
    generator = torch.Generator().manual_seed(3)
    torch.randint(1, 101, (64,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    assert abs(zero - noise.pow(2).mean().item()) < 1e-6  # the zero model's loss is the mean square of the drawn noise
    exact = process.held_out_loss(lambda x, t: process.eps_from_x0(x, t, x0), x0, seed=3)  # knows x0: recovers the noise
    assert exact < 1e-8 < zero
