"""The VAE's losses against their SymPy derivations (book/vae.md) and against Monte Carlo."""

import math

import pytest
import sympy as sp
import torch
from torch.distributions import Bernoulli, Normal

from dgm import distributions
from dgm.derivations.instances import LinearGaussian, gaussian_expectation, normal_logpdf
from dgm.evaluation.likelihood import iwae_bound
from dgm.latent import vae

z = sp.Symbol("z", real=True)
mu, mu_z = sp.Symbol("mu", real=True), sp.Symbol("mu_z", real=True)
var, var_z = sp.Symbol("var", positive=True), sp.Symbol("var_z", positive=True)


def derived(expr: sp.Expr, symbols) -> callable:
    """A derivation's SymPy result as a function of floats."""
    return sp.lambdify(symbols, expr, "math")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_gaussian_kl_matches_the_sympy_derivation(gen):
    # KL(N(mu, var) || N(0, 1)) derived from the definition, coordinate by coordinate (eq. kl-closed)
    kl_1d = derived(gaussian_expectation(normal_logpdf(z, mu, var) - normal_logpdf(z, 0, 1), z, mu, var), (mu, var))
    mean = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    log_var = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    expected = torch.tensor(dtype=torch.float64, data=[[kl_1d(float(m), math.exp(float(s))) for m, s in zip(rm, rs)] for rm, rs in zip(mean, log_var)])
    torch.testing.assert_close(distributions.gaussian_kl(mean, log_var), expected.sum(1))


def test_gaussian_kl_matches_monte_carlo(gen):
    mean = torch.tensor([[0.3, -1.2, 0.7]], dtype=torch.float64)
    log_var = torch.tensor([[-0.5, 0.4, -1.5]], dtype=torch.float64)
    q = Normal(mean, (0.5 * log_var).exp())
    samples = q.sample((400_000,))
    estimate = (q.log_prob(samples) - Normal(0.0, 1.0).log_prob(samples)).sum(-1).mean()
    assert abs(estimate.item() - distributions.gaussian_kl(mean, log_var).item()) < 0.01


def test_kl_to_learned_prior_matches_sympy_and_reduces_to_standard(gen):
    kl = derived(gaussian_expectation(normal_logpdf(z, mu, var) - normal_logpdf(z, mu_z, var_z), z, mu, var), (mu, var, mu_z, var_z))
    mean, log_var = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)
    prior_mean, prior_log_var = torch.randn(3, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)
    expected = torch.tensor(
        dtype=torch.float64,
        data=[
            sum(kl(float(m), math.exp(float(s)), float(pm), math.exp(float(ps))) for m, s, pm, ps in zip(rm, rs, prior_mean, prior_log_var))
            for rm, rs in zip(mean, log_var)
        ]
    )
    torch.testing.assert_close(distributions.gaussian_kl_between(mean, log_var, prior_mean, prior_log_var), expected)
    zeros = torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(distributions.gaussian_kl_between(mean, log_var, zeros, zeros), distributions.gaussian_kl(mean, log_var))


def test_bernoulli_log_likelihood_matches_sympy_and_torch(gen):
    x, ell = sp.Symbol("x", real=True), sp.Symbol("ell", real=True)
    p = 1 / (1 + sp.exp(-ell))
    formula = derived(x * sp.log(p) + (1 - x) * sp.log(1 - p), (x, ell))  # the BCE form, eq. bernoulli-bce
    pixels = torch.bernoulli(torch.full((3, 5), 0.4, dtype=torch.float64), generator=gen)
    logits = 3 * torch.randn(3, 5, generator=gen, dtype=torch.float64)
    expected = torch.tensor(dtype=torch.float64, data=[sum(formula(float(a), float(b)) for a, b in zip(r, s)) for r, s in zip(pixels, logits)])
    torch.testing.assert_close(distributions.bernoulli_log_likelihood(pixels, logits), expected)
    torch.testing.assert_close(distributions.bernoulli_log_likelihood(pixels, logits), Bernoulli(logits=logits).log_prob(pixels).sum(-1))
    # stable where sigmoid(logit) rounds to 1: the exact value is -40, not -inf
    assert distributions.bernoulli_log_likelihood(torch.zeros(1, 1), torch.full((1, 1), 40.0)).item() == pytest.approx(-40.0)


def test_gaussian_log_likelihood_matches_sympy_and_torch(gen):
    x = sp.Symbol("x", real=True)
    formula = derived(normal_logpdf(x, mu, var), (x, mu, var))  # eq. gaussian-decoder
    data, mean = torch.rand(4, 6, generator=gen, dtype=torch.float64), torch.rand(4, 6, generator=gen, dtype=torch.float64)
    log_var = torch.randn(6, generator=gen, dtype=torch.float64)
    expected = torch.tensor(dtype=torch.float64, data=[sum(formula(float(a), float(b), math.exp(float(c))) for a, b, c in zip(r, s, log_var)) for r, s in zip(data, mean)])
    torch.testing.assert_close(distributions.gaussian_log_likelihood(data, mean, log_var), expected)
    torch.testing.assert_close(distributions.gaussian_log_likelihood(data, mean, log_var), Normal(mean, (0.5 * log_var).exp()).log_prob(data).sum(-1))


def linear_gaussian_vae(w=1.5, b=0.3, s2=0.25, encoder_mean=0.3, encoder_var=0.5) -> vae.VAE:
    """The linear-Gaussian model as a VAE with no hidden layers, its encoder off the posterior."""
    model = vae.VAE(vae.VAESettings(data_dim=1, latent_dim=1, hidden=(), likelihood="gaussian")).double()
    with torch.no_grad():
        model.decoder[0].weight.fill_(w)
        model.decoder[0].bias.fill_(b)
        model.decoder_log_var.fill_(math.log(s2))
        model.encoder[0].weight.copy_(torch.tensor([[encoder_mean], [0.0]]))
        model.encoder[0].bias.copy_(torch.tensor([0.0, math.log(encoder_var)]))
    return model


def exact_terms(x_value: float, w=1.5, b=0.3, s2=0.25, encoder_mean=0.3, encoder_var=0.5) -> tuple[float, float]:
    """log p(x) and the ELBO of the linear-Gaussian VAE, from the SymPy instance."""
    lg = LinearGaussian()
    m, v = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)
    values = {lg.x: x_value, lg.w: w, lg.b: b, lg.s2: s2, m: encoder_mean * x_value, v: encoder_var}
    elbo = lg.expect(lg.log_joint() - normal_logpdf(lg.z, m, v), m, v)
    return float(lg.log_marginal().subs(values)), float(elbo.subs(values))


def test_elbo_and_iwae_match_the_exact_instance():
    torch.manual_seed(0)
    model = linear_gaussian_vae()
    x = torch.full((200_000, 1), 1.2, dtype=torch.float64)
    log_evidence, elbo = exact_terms(1.2)
    assert model.elbo(x).elbo.mean().item() == pytest.approx(elbo, abs=0.01)
    assert iwae_bound(model, x, 1).mean().item() == pytest.approx(elbo, abs=0.01)  # L_1 is the ELBO
    bounds = [iwae_bound(model, x[:20_000], k).mean().item() for k in (1, 4, 16, 64, 256)]
    assert all(a < b + 1e-3 for a, b in zip(bounds, bounds[1:]))  # L_k grows with k
    assert bounds[-1] <= log_evidence + 0.01 and bounds[-1] == pytest.approx(log_evidence, abs=0.01)


def test_iwae_is_exact_when_the_encoder_is_the_posterior():
    torch.manual_seed(0)
    w, s2 = 1.5, 0.25
    model = linear_gaussian_vae(w=w, b=0.0, s2=s2, encoder_mean=w / (w**2 + s2), encoder_var=s2 / (w**2 + s2))
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    exact = Normal(0.0, math.sqrt(w**2 + s2)).log_prob(x[:, 0])
    torch.testing.assert_close(iwae_bound(model, x, 3), exact)
    torch.testing.assert_close(iwae_bound(model, x, 7, chunk=3), exact)  # drawn 3 + 3 + 1 at a time


def test_shapes_and_bad_input():
    model = vae.VAE(vae.VAESettings(latent_dim=8, hidden=(32,)))
    images = torch.rand(5, 1, 28, 28)
    terms = model.elbo(images)
    assert terms.elbo.shape == terms.kl.shape == terms.reconstruction.shape == (5,)
    assert terms.kl_dims["z"].shape == (5, 8) and torch.allclose(terms.kl_dims["z"].sum(-1), terms.kl)
    assert iwae_bound(model, images, 7).shape == (5,)
    assert model.sample(3).shape == (3, 784)
    with pytest.raises(ValueError, match="chunk"):
        iwae_bound(model, images, 7, chunk=0)
    with pytest.raises(ValueError, match="784"):
        model.elbo(torch.rand(5, 100))
    with pytest.raises(ValueError, match="at least one sample"):
        iwae_bound(model, images, 0)
    with pytest.raises(ValueError, match="likelihood"):
        vae.VAESettings(likelihood="poisson")  # type: ignore[arg-type]
