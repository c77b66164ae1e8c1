"""β-VAE and FactorVAE: the permutation, the two losses and their separate updates, training and resuming."""

import pytest
import torch

from dgm.data import dsprites
from dgm.distributions import bernoulli_log_likelihood, gaussian_kl
from dgm.latent.factor_vae import (
    FactorVAESettings,
    objective_loss,
    permute_dims,
    reconstruction_error,
    tc_discriminator,
    tc_discriminator_loss,
    train_factor_vae,
)
from dgm.latent.vae import VAE, VAESettings


def small_vae() -> VAE:
    return VAE(VAESettings(data_dim=4096, latent_dim=4, hidden=(32,)))


def images(n: int) -> torch.Tensor:
    return dsprites.random_images(n)[0]


def test_permute_dims_shuffles_each_column_on_its_own():
    z = torch.randn(2000, 1).repeat(1, 3)  # three copies of one column: perfectly dependent
    permuted = permute_dims(z, torch.Generator().manual_seed(0))
    for j in range(3):
        assert torch.equal(permuted[:, j].sort().values, z[:, j].sort().values)
    correlation = torch.corrcoef(permuted.T)
    assert correlation[0, 1].abs() < 0.1 and correlation[1, 2].abs() < 0.1


def test_objective_weighs_kl_by_beta_and_tc_by_gamma():
    torch.manual_seed(0)
    model, discriminator, x = small_vae(), tc_discriminator(4, (16,)), images(8)
    parts = {}
    for beta, gamma in [(1.0, 0.0), (3.0, 0.0), (1.0, 5.0)]:
        torch.manual_seed(1)
        parts[beta, gamma] = objective_loss(model, discriminator, x, beta, gamma)
    plain = parts[1.0, 0.0]
    assert torch.allclose(plain["loss"], -plain["reconstruction"] + plain["kl"])
    assert torch.allclose(parts[3.0, 0.0]["loss"], plain["loss"] + 2 * plain["kl"])
    assert torch.allclose(parts[1.0, 5.0]["loss"], plain["loss"] + 5 * plain["tc"])
    assert torch.allclose(plain["tc"], discriminator(plain["z"]).mean())


def test_the_discriminator_loss_reaches_only_the_discriminator():
    model, discriminator, x = small_vae(), tc_discriminator(4, (16,)), images(16)
    z = objective_loss(model, discriminator, x, 1.0, 1.0)["z"]
    tc_discriminator_loss(discriminator, z[:8], z[8:])["loss"].backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in discriminator.parameters())


def test_training_leaves_the_discriminator_to_its_own_optimizer():
    """With the discriminator's learning rate tiny, its weights barely move, however large γ is."""
    torch.manual_seed(0)
    model, discriminator = small_vae(), tc_discriminator(4, (16,))
    before = [p.detach().clone() for p in discriminator.parameters()]
    train_factor_vae(model, discriminator, images, FactorVAESettings(gamma=1000.0, steps=3, batch_size=8, lr=1e-2,
                                                                     discriminator_lr=1e-12, progress=False))
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(before, discriminator.parameters()))


def test_seeded_training_improves_the_reconstruction():
    torch.manual_seed(0)
    model, discriminator = small_vae(), tc_discriminator(4, (32,))
    x = images(256)
    start = float(reconstruction_error(model, x).mean())
    history = train_factor_vae(model, discriminator, images, FactorVAESettings(gamma=10.0, steps=150, batch_size=32,
                                                                               lr=1e-3, log_every=50, progress=False))
    assert set(history.terms) == {"loss", "reconstruction", "kl", "tc", "d_loss"} and history.epochs == 3
    assert float(reconstruction_error(model, x).mean()) < 0.25 * start


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    def run(steps, path):
        torch.manual_seed(0)
        model, discriminator = small_vae(), tc_discriminator(4, (16,))
        settings = FactorVAESettings(gamma=5.0, steps=steps, batch_size=8, lr=1e-3, log_every=5, checkpoint=path,
                                     checkpoint_every=5, progress=False)
        return model, discriminator, settings

    model, discriminator, settings = run(10, tmp_path / "straight.pt")
    train_factor_vae(model, discriminator, images, settings)
    first, d_first, settings = run(5, tmp_path / "resumed.pt")
    train_factor_vae(first, d_first, images, settings)
    second, d_second, settings = run(10, tmp_path / "resumed.pt")
    history = train_factor_vae(second, d_second, images, settings)
    assert history.epochs == 2
    for a, b in zip([*model.parameters(), *discriminator.parameters()], [*second.parameters(), *d_second.parameters()]):
        assert torch.equal(a, b)


def test_a_checkpoint_from_another_model_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    train_factor_vae(small_vae(), None, images, FactorVAESettings(steps=1, batch_size=4, checkpoint=path, progress=False))
    other = VAE(VAESettings(data_dim=4096, latent_dim=6, hidden=(32,)))
    with pytest.raises(RuntimeError, match="different model"):
        train_factor_vae(other, None, images, FactorVAESettings(steps=2, batch_size=4, checkpoint=path, progress=False))


def test_gamma_without_a_discriminator_is_refused():
    with pytest.raises(ValueError, match="needs a discriminator"):
        train_factor_vae(small_vae(), None, images, FactorVAESettings(gamma=1.0, steps=1, progress=False))
    with pytest.raises(ValueError, match=">= 0"):
        FactorVAESettings(beta=-1.0)


def test_reconstruction_error_is_the_cross_entropy_at_the_code_mean():
    model, x = small_vae(), images(4)
    mean, log_var = model.encode(x)
    expected = -bernoulli_log_likelihood(x.reshape(4, -1), model.decode(mean))
    assert torch.allclose(reconstruction_error(model, x), expected)
    assert (gaussian_kl(mean, log_var) >= 0).all()
