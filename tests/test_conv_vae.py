"""The convolutional encoder/decoder (dgm.networks), the ConvVAE built from them (dgm.latent.vae) and CelebA's loader."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from torch.distributions import Bernoulli, Normal

from dgm.data import celeba, mnist
from dgm.data.mnist import DatasetNotFoundError
from dgm.evaluation.likelihood import active_units, evaluate_likelihood, iwae_bound
from dgm.latent.model import LatentVariableModel
from dgm.latent.vae import ConvVAE, ConvVAESettings, HeldOutELBO, VAESettings, attribute_vector, vae_loss
from dgm.networks import ConvDecoder, ConvEncoder
from dgm.training import TrainSettings, fit

DSPRITES = {"image_shape": (1, 64, 64), "channels": (8, 8, 16, 16), "hidden": (32,), "latent_dim": 4}


def small_mnist_vae(likelihood: str = "bernoulli") -> ConvVAE:
    return ConvVAE(ConvVAESettings(latent_dim=3, channels=(4, 8), hidden=(16,), likelihood=likelihood))


@pytest.mark.parametrize("shape, channels, side", [((1, 28, 28), (32, 64), 7), ((1, 64, 64), (32, 32, 64, 64), 4), ((3, 64, 64), (16, 32, 64), 8)])
def test_encoder_and_decoder_shapes(shape, channels, side):
    torch.manual_seed(0)
    encoder = ConvEncoder(shape, 10, channels, hidden=32)
    x = torch.rand(5, *shape)
    assert encoder.convs(x).shape == (5, channels[-1], side, side)  # each stride-2 convolution halves H and W
    out = encoder(x)
    assert out.shape == (5, 10)
    torch.testing.assert_close(encoder(x.flatten(1)), out)  # the flattened images, as the VAE passes them, give the same
    decoder = ConvDecoder(4, shape, tuple(reversed(channels)), hidden=32)
    z = torch.randn(3, 5, 4)  # (k, B, L), as the importance-weighted bound decodes
    assert decoder(z).shape == (3, 5, math.prod(shape))
    assert decoder.images(z).shape == (3, 5, *shape)
    torch.testing.assert_close(decoder(z)[1], decoder(z[1]))  # leading dimensions are independent examples


def test_wrong_sizes_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"divisible by 8; got 28×28"):
        ConvEncoder((1, 28, 28), 10, channels=(8, 8, 8))
    with pytest.raises(ValueError, match=r"divisible by 4; got 30×30"):
        ConvDecoder(4, (1, 30, 30), channels=(8, 8))
    with pytest.raises(ValueError, match=r"\(channels, height, width\)"):
        ConvEncoder((28, 28), 10)
    with pytest.raises(ValueError, match="non-empty"):
        ConvEncoder((1, 28, 28), 10, channels=())
    encoder, decoder = ConvEncoder((1, 28, 28), 6), ConvDecoder(3, (1, 28, 28))
    with pytest.raises(ValueError, match=r"expects images \(B, 1, 28, 28\) or \(B, 784\), got \(2, 1, 64, 64\)"):
        encoder(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match=r"expects codes \(\.\.\., 3\), got \(2, 4\)"):
        decoder(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="one fully connected layer"):
        ConvVAESettings(hidden=(64, 32))
    with pytest.raises(TypeError, match="ConvVAESettings"):
        ConvVAE(VAESettings())  # type: ignore[arg-type]
    model = ConvVAE(ConvVAESettings(**DSPRITES))
    with pytest.raises(ValueError, match="4096 values each, got 784"):
        model.elbo(torch.zeros(2, 1, 28, 28))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_conv_vae_is_a_latent_variable_model_with_the_vaes_likelihoods(likelihood):
    torch.manual_seed(0)
    model = small_mnist_vae(likelihood)
    assert isinstance(model, LatentVariableModel) and model.settings.data_dim == 784
    x = torch.rand(6, 1, 28, 28)
    x = x.round() if likelihood == "bernoulli" else x
    z = torch.randn(2, 6, 3)
    output = model.decode(z)  # (k, B, D)
    if likelihood == "bernoulli":
        expected = Bernoulli(logits=output).log_prob(x.flatten(1)).sum(-1)
    else:
        assert model.decoder_log_var.shape == (784,)
        expected = Normal(output, (0.5 * model.decoder_log_var).exp()).log_prob(x.flatten(1)).sum(-1)
    prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(model.log_joint(x, z), expected + prior)
    terms = model.elbo(x)
    torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl)
    assert model.sample(4).shape == (4, 784) and model.mean_image(z).shape == (2, 6, 784)
    # the evaluation code takes it unchanged: IWAE bound, likelihood report, active units
    assert iwae_bound(model, x, samples=5, chunk=2).shape == (6,)
    report = evaluate_likelihood(model, x, samples=4, batch_size=4, progress=False)
    assert report.examples == 6 and math.isfinite(report.iwae)
    assert 0 <= active_units(model, x).count <= 3


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    for model in (small_mnist_vae("gaussian"), ConvVAE(ConvVAESettings(**DSPRITES))):
        x = torch.rand(4, *model.settings.image_shape).round()
        vae_loss(model, x)["loss"].backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
            assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("size", [28, 64])
def test_a_short_seeded_training_lowers_the_loss(size):
    torch.manual_seed(0)
    if size == 28:
        model, images = small_mnist_vae(), mnist.binarize(mnist.subset("train").floats()[:256], torch.Generator().manual_seed(0))
    else:
        from dgm.data import dsprites

        model, images = ConvVAE(ConvVAESettings(**DSPRITES)), dsprites.random_images(128, torch.Generator().manual_seed(0))[0]
    with torch.no_grad():
        before = -model.elbo(images).elbo.mean().item()
    history = fit(model, vae_loss, images, TrainSettings(epochs=6, batch_size=32, lr=3e-3, progress=False))
    with torch.no_grad():
        after = -model.elbo(images).elbo.mean().item()
    assert history.terms["loss"][-1] < history.terms["loss"][0]
    # an untrained decoder pays about D·log 2 nats; a few epochs take off a good part of it
    assert after < 0.6 * before, (before, after)


def test_held_out_elbo_is_deterministic_leaves_the_rng_alone_and_survives_a_resume(tmp_path):
    torch.manual_seed(0)
    model = small_mnist_vae()
    images = mnist.binarize(mnist.subset("train").floats()[:96], torch.Generator().manual_seed(0))
    held_out = images[64:]
    trace = HeldOutELBO(model, held_out, path=tmp_path / "held_out.json")
    state = torch.get_rng_state()
    first, second = trace.evaluate(), trace.evaluate()
    assert first == second and torch.equal(torch.get_rng_state(), state)
    with torch.no_grad():
        torch.manual_seed(0)  # the same seed draws the same codes: the value is the mean one-sample ELBO
        assert first == pytest.approx(model.elbo(held_out).elbo.mean().item(), rel=1e-5)
    settings = TrainSettings(epochs=2, batch_size=32, progress=False, checkpoint=tmp_path / "model.pt")
    history = fit(model, vae_loss, images[:64], settings, on_epoch=trace)
    values = trace.finish(history.epochs)
    assert len(values) == 2 and values[1] > values[0] > first  # trained epochs raise the held-out ELBO
    resumed = HeldOutELBO(model, held_out, path=tmp_path / "held_out.json")
    longer = TrainSettings(epochs=3, batch_size=32, progress=False, checkpoint=tmp_path / "model.pt")
    history = fit(model, vae_loss, images[:64], longer, on_epoch=resumed)
    again = resumed.finish(history.epochs)
    assert len(again) == 3 and again[0] == values[0]  # epoch 1 comes back from the file
    assert again[1] == pytest.approx(values[1], rel=1e-6)  # epoch 2 is evaluated again on resuming (the same weights)
    fresh = HeldOutELBO(model, held_out)
    assert math.isnan(fresh.finish(3)[0])  # no file: epochs trained elsewhere have no value
    with pytest.raises(ValueError, match="at least one"):
        HeldOutELBO(model, held_out[:0])


def test_attribute_vector_is_the_difference_of_the_group_means():
    codes = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 0.0], [0.0, -2.0], [0.0, 2.0]])
    smiling = torch.tensor([1, 1, 0, 0, 0])
    torch.testing.assert_close(attribute_vector(codes, smiling), torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="both groups must be non-empty: 5 of 5"):
        attribute_vector(codes, torch.ones(5))
    with pytest.raises(ValueError, match=r"has_attribute \(N,\)"):
        attribute_vector(codes, torch.ones(4))


def test_missing_celeba_is_one_clear_message(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        celeba.load("train", root=tmp_path, count=10)
    message = str(caught.value)
    assert message == celeba.missing_message(tmp_path)
    assert str(tmp_path / "celeba") in message and "DGM_DATA" in message and "list_attr_celeba.txt" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained torchvision traceback
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)  # the images without the label files: still missing
    with pytest.raises(DatasetNotFoundError, match="not downloaded automatically"):
        celeba.load("train", root=tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        celeba.load("validation", root=tmp_path)


class FakeCelebA:
    """Stands in for torchvision's CelebA (whose files carry checksums): 178×218 photographs with 40 labels."""

    def __init__(self, root, split, target_type, transform, download):
        assert download is False and target_type == "attr"
        self.transform = transform
        generator = torch.Generator().manual_seed(0)
        self.attr = torch.randint(0, 2, (7, 40), generator=generator)
        self.attr_names = [f"attribute_{i}" for i in range(31)] + ["Smiling"] + [f"attribute_{i}" for i in range(32, 40)] + [""]
        self.pictures = torch.randint(0, 256, (7, 218, 178, 3), dtype=torch.uint8, generator=generator)

    def __len__(self):
        return len(self.attr)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.pictures[index].numpy())), self.attr[index]


def test_celeba_when_present_gives_cropped_faces_and_labels(monkeypatch, tmp_path):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CelebA", FakeCelebA)
    faces = celeba.load("valid", root=tmp_path, size=32, count=5)
    assert faces.images.shape == (5, 3, 32, 32) and faces.images.dtype == torch.uint8
    assert len(faces.names) == 40 and faces.floats().max() <= 1.0
    torch.testing.assert_close(faces.attribute("Smiling"), faces.attributes[:, 31].bool())
    with pytest.raises(ValueError, match="no attribute 'smile'"):
        faces.attribute("smile")
    # a colour ConvVAE takes the faces as they come
    model = ConvVAE(ConvVAESettings(image_shape=(3, 32, 32), channels=(4, 8), hidden=(16,), latent_dim=2, likelihood="gaussian"))
    assert model.elbo(faces.floats()).elbo.shape == (5,)
