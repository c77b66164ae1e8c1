"""Every VAE-type model offers the same API, and one IWAE bound and one active-units function serve them all."""

from __future__ import annotations

import pytest
import torch

from dgm.evaluation.likelihood import active_units, evaluate_likelihood, iwae_bound
from dgm.latent.factor_vae import objective_loss, tc_discriminator
from dgm.latent.hvae import HVAE, HVAESettings
from dgm.latent.model import ELBOTerms, LatentVariableModel
from dgm.latent.vae import VAE, VAESettings

MODELS = {
    "VAE, Bernoulli": lambda: VAE(VAESettings(data_dim=12, latent_dim=3, hidden=(8,))),
    "VAE, Gaussian": lambda: VAE(VAESettings(data_dim=12, latent_dim=3, hidden=(8,), likelihood="gaussian")),
    "β-VAE/FactorVAE's VAE (dSprites size)": lambda: VAE(VAESettings(data_dim=64 * 64, latent_dim=4, hidden=(8,))),
    "HVAE": lambda: HVAE(HVAESettings(data_dim=12, z1_dim=3, z2_dim=2, hidden=(8,), top_hidden=(4,))),
    "HVAE, skip connection": lambda: HVAE(HVAESettings(data_dim=12, z1_dim=3, z2_dim=2, hidden=(8,), top_hidden=(4,), skip=True)),
}


def _data_dim(model: LatentVariableModel) -> int:
    return model.settings.data_dim  # type: ignore[attr-defined]


def data_for(model: LatentVariableModel, n: int, seed: int = 0) -> torch.Tensor:
    """``(n, 1, D)`` binary images (an extra axis, so that ``flatten`` has work to do)."""
    return torch.rand(n, 1, _data_dim(model), generator=torch.Generator().manual_seed(seed)).round()


# the statistical checks need thousands of copies of x: the small models only
SMALL = [name for name in MODELS if "dSprites" not in name]


@pytest.fixture(params=list(MODELS), ids=list(MODELS))
def model(request) -> LatentVariableModel:
    torch.manual_seed(0)
    return MODELS[request.param]()


@pytest.fixture(params=SMALL, ids=SMALL)
def small_model(request) -> LatentVariableModel:
    torch.manual_seed(0)
    return MODELS[request.param]()


def test_every_method_of_the_protocol_runs_with_the_documented_shapes(model):
    assert isinstance(model, LatentVariableModel)
    layers = model.latent_layers
    L, D, B, k = sum(layers.values()), _data_dim(model), 5, 4
    x = data_for(model, B)
    assert model.flatten(x).shape == (B, D)
    with pytest.raises(ValueError, match=f"{D} values"):
        model.flatten(torch.zeros(B, D + 1))
    mean, log_var = model.encode(x)
    first = next(iter(layers.values()))
    assert mean.shape == log_var.shape == (B, first)
    z = torch.randn(k, B, L)
    assert model.decode(z).shape == model.mean_image(z).shape == (k, B, D)
    assert model.decode(z[0]).shape == (B, D)

    state = torch.get_rng_state()
    draws = [model.sample(3, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator, not the global one
    assert draws[0].shape == (3, D) and torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], model.sample(3, generator=torch.Generator().manual_seed(8)))
    assert model.sample(2).shape == (2, D)

    terms = model.elbo(x)
    assert isinstance(terms, ELBOTerms)
    assert terms.elbo.shape == terms.reconstruction.shape == terms.kl.shape == (B,)
    assert terms.z.shape == (B, L)
    assert {name: dims.shape for name, dims in terms.kl_dims.items()} == {name: (B, size) for name, size in layers.items()}
    torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl)
    torch.testing.assert_close(terms.kl, sum(terms.kl_layers.values()))

    z, log_q = model.proposal(x, k)
    assert z.shape == (k, B, L) and log_q.shape == (k, B)
    assert model.log_joint(x, z).shape == (k, B)
    means = model.posterior_means(x)
    assert {name: m.shape for name, m in means.items()} == {name: (B, size) for name, size in layers.items()}
    assert torch.equal(means[next(iter(layers))], mean)  # the first layer's mean is the encoder's


def coupled_bounds(model: LatentVariableModel, x: torch.Tensor, ks: tuple[int, ...], repeats: int) -> dict[int, torch.Tensor]:
    """``iwae_bound`` of each k over ``repeats`` copies of ``x``: ``(repeats · B,)`` per k, one seed for all k."""
    copies = x.repeat(repeats, *([1] * (x.dim() - 1)))
    out = {}
    with torch.no_grad():
        for k in ks:
            torch.manual_seed(1)
            out[k] = iwae_bound(model, copies, k)
    return out


def test_the_bound_is_the_elbo_at_one_sample_and_grows_with_k(small_model):
    x, repeats = data_for(small_model, 4), 2000
    bounds = coupled_bounds(small_model, x, (1, 4, 16, 64), repeats)
    with torch.no_grad():
        torch.manual_seed(1)  # the same draws of z as the bound with k = 1
        elbo = small_model.elbo(x.repeat(repeats, *([1] * (x.dim() - 1)))).elbo
    # L_1 = E_q[log p(x, z) - log q(z | x)] = ELBO; each side may compute a term in closed form,
    # so they agree in expectation: per example, within four standard errors of their difference
    difference = (bounds[1] - elbo).view(repeats, -1)
    standard_error = difference.std(0) / repeats**0.5
    assert (difference.mean(0).abs() < 4 * standard_error + 1e-4).all()
    # L_k is non-decreasing in k in expectation (means over copies), and here strictly growing:
    # the untrained encoder is far from the posterior
    means = {k: b.view(repeats, -1).mean(0) for k, b in bounds.items()}
    errors = {k: b.view(repeats, -1).std(0) / repeats**0.5 for k, b in bounds.items()}
    ks = sorted(means)
    for small, large in zip(ks, ks[1:]):
        assert (means[large] > means[small] - 3 * (errors[small] + errors[large])).all()
    assert (means[ks[-1]] > means[1] + 3 * (errors[1] + errors[ks[-1]])).all()


def test_the_chunked_bound_averages_the_same_weights(small_model):
    """Drawing the k samples in chunks changes which samples are drawn, not what is estimated."""
    x, repeats = data_for(small_model, 3), 2000
    copies = x.repeat(repeats, *([1] * (x.dim() - 1)))
    with torch.no_grad():
        torch.manual_seed(2)
        whole = iwae_bound(small_model, copies, 12).view(repeats, -1)
        torch.manual_seed(3)
        chunked = iwae_bound(small_model, copies, 12, chunk=5).view(repeats, -1)  # 5 + 5 + 2
    error = (whole.var(0) / repeats + chunked.var(0) / repeats).sqrt()
    assert ((whole.mean(0) - chunked.mean(0)).abs() < 4 * error).all()


def test_evaluate_likelihood_reports_every_layer(small_model):
    data = data_for(small_model, 30)
    torch.manual_seed(0)
    report = evaluate_likelihood(small_model, data, samples=8, batch_size=7, progress=False)
    assert report.examples == 30 and report.samples == 8
    assert list(report.kl_layers) == list(small_model.latent_layers)
    assert report.kl == pytest.approx(sum(report.kl_layers.values()), rel=1e-5)
    assert report.elbo == pytest.approx(report.reconstruction - report.kl, rel=1e-5)
    assert report.iwae > report.elbo  # an untrained model is far from its posterior: the gap shows at k = 8
    with pytest.raises(ValueError, match="chunk"):
        evaluate_likelihood(small_model, data, samples=8, chunk=0, progress=False)


def test_active_units_follow_the_posterior_means_layer_by_layer(small_model):
    data = data_for(small_model, 300)
    with torch.no_grad():
        layer = small_model.encoder if isinstance(small_model, VAE) else small_model.encoder1  # the layer that reads x
        layer[-1].weight[0].zero_()  # the mean of the first unit of the first layer ignores x
    units = active_units(small_model, data, batch_size=64)
    assert list(units.activity) == list(small_model.latent_layers)
    first = next(iter(units.activity.values()))
    assert first[0] < 1e-10
    torch.testing.assert_close(first, small_model.encode(data)[0].detach().var(0))  # batches of 64, the same variance
    assert units.counts == {name: int((a > 0.01).sum()) for name, a in units.activity.items()}
    assert units.count == sum(units.counts.values())
    assert active_units(small_model, data, threshold=-1.0).count == sum(small_model.latent_layers.values())


def test_the_factor_vae_objective_reads_the_protocol_terms():
    torch.manual_seed(0)
    model = MODELS["β-VAE/FactorVAE's VAE (dSprites size)"]()
    x, discriminator = data_for(model, 6), tc_discriminator(4, (8,))
    torch.manual_seed(1)
    parts = objective_loss(model, discriminator, x, 2.0, 0.0)
    torch.manual_seed(1)
    terms = model.elbo(x)
    assert torch.equal(parts["z"], terms.z)
    torch.testing.assert_close(parts["loss"], -terms.reconstruction.mean() + 2.0 * terms.kl.mean())
