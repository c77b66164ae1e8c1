r"""The variational autoencoder (chapter "The variational autoencoder", book/vae.md).

The objective, per data point (book/vae.md, eq. {eq}`vae-objective`):

$$\mathcal L(x) = \mathbb E_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]
  - \mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z)).$$

:class:`VAE` is a :class:`dgm.latent.model.LatentVariableModel`; the
importance-weighted bound and active units that serve it are in
:mod:`dgm.evaluation.likelihood`. The loss is a small pure function that
returns its terms; nothing here steps an optimizer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from dgm.distributions import (
    bernoulli_log_likelihood,
    diagonal_normal_log_prob,
    gaussian_log_likelihood,
    reparameterize,
    standard_normal_log_prob,
)
from dgm.latent.model import ELBOTerms, flatten_to, kl_per_dimension
from dgm.networks import ConvDecoder, ConvEncoder, mlp

Likelihood = Literal["bernoulli", "gaussian"]


@dataclass
class VAESettings:
    """The architecture: an MLP encoder and decoder (defaults run on a CPU)."""

    data_dim: int = 784
    latent_dim: int = 32
    hidden: tuple[int, ...] = (512, 256)
    likelihood: Likelihood = "bernoulli"

    def __post_init__(self) -> None:
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', not {self.likelihood!r}")
        if min(self.data_dim, self.latent_dim) < 1:
            raise ValueError(f"data_dim and latent_dim must be positive, got {self}")


class VAE(nn.Module):
    r"""Encoder $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$,
    prior $p(z) = \mathcal N(0, I)$, decoder $p_\theta(x \mid z)$ Bernoulli (logits) or
    Gaussian (mean, with a learned per-pixel variance)."""

    def __init__(
        self, settings: VAESettings | None = None, *, encoder: nn.Module | None = None, decoder: nn.Module | None = None
    ) -> None:
        """``encoder`` ``(B, D) → (B, 2L)`` and ``decoder`` ``(..., L) → (..., D)`` replace the MLPs of ``settings.hidden``
        when given (:class:`ConvVAE` passes convolutional ones)."""
        super().__init__()
        self.settings = settings = settings or VAESettings()
        self.encoder = encoder or mlp([settings.data_dim, *settings.hidden, 2 * settings.latent_dim])
        self.decoder = decoder or mlp([settings.latent_dim, *reversed(settings.hidden), settings.data_dim])
        if settings.likelihood == "gaussian":
            # $\log \sigma^2_i$ of the decoder, one per pixel, learned
            self.decoder_log_var = nn.Parameter(torch.full((settings.data_dim,), -4.0))

    @property
    def latent_layers(self) -> dict[str, int]:
        """One layer, ``{"z": L}``."""
        return {"z": self.settings.latent_dim}

    def flatten(self, x: Tensor) -> Tensor:
        """``(B, ...) → (B, D)``; a ``ValueError`` when the examples do not have ``D`` values."""
        return flatten_to(x, self.settings.data_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, ...) → (mean, log_var)``, each ``(B, L)``."""
        mean, log_var = self.encoder(self.flatten(x)).chunk(2, dim=-1)
        return mean, log_var

    def decode(self, z: Tensor) -> Tensor:
        """``(..., L) → (..., D)``: logits (Bernoulli) or means (Gaussian)."""
        return self.decoder(z)

    def mean_image(self, z: Tensor) -> Tensor:
        """The decoder's mean of ``x`` given ``z``: probabilities (Bernoulli) or means (Gaussian)."""
        output = self.decode(z)
        return torch.sigmoid(output) if self.settings.likelihood == "bernoulli" else output

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Decoder means of $z \sim p(z)$: ``(n, D)`` in pixel space."""
        device = next(self.parameters()).device
        return self.mean_image(torch.randn(n, self.settings.latent_dim, generator=generator, device=device))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r"""$\log p_\theta(x \mid z)$: x ``(B, D)``, z ``(..., B, L)`` → ``(..., B)``."""
        output = self.decode(z)
        if self.settings.likelihood == "bernoulli":
            return bernoulli_log_likelihood(x.expand_as(output), output)
        return gaussian_log_likelihood(x, output, self.decoder_log_var)

    def elbo(self, x: Tensor) -> ELBOTerms:
        r"""One-sample estimate of $\mathcal L(x) = \mathbb E_q[\log p(x \mid z)] - \mathrm{KL}(q \,\|\, p)$ per row of ``x`` ``(B, ...)``.

        The reconstruction term uses one reparameterised sample; the KL is exact
        (book/vae.md, eq. {eq}`kl-closed`).
        """
        x = self.flatten(x)
        mean, log_var = self.encode(x)
        z = reparameterize(mean, log_var)  # (B, L)
        reconstruction = self.log_likelihood(x, z)
        kl_dims = kl_per_dimension(mean, log_var)  # (B, L)
        kl = kl_dims.sum(-1)
        return ELBOTerms(reconstruction - kl, reconstruction, kl, {"z": kl_dims}, z)

    def proposal(self, x: Tensor, samples: int) -> tuple[Tensor, Tensor]:
        r"""$z_i \sim q_\phi(z \mid x)$ ``(k, B, L)`` and $\log q_\phi(z_i \mid x)$ ``(k, B)``."""
        mean, log_var = self.encode(x)
        z = reparameterize(mean, log_var, samples)  # (k, B, L)
        return z, diagonal_normal_log_prob(z, mean, log_var)

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        r"""$\log p(x, z) = \log p_\theta(x \mid z) + \log p(z)$: x ``(B, ...)``, z ``(..., B, L)`` → ``(..., B)``."""
        return self.log_likelihood(self.flatten(x), z) + standard_normal_log_prob(z)

    def posterior_means(self, x: Tensor, samples: int = 10) -> dict[str, Tensor]:
        r"""$\mathbb E_q[z \mid x] = \mu_\phi(x)$ ``(B, L)``, in closed form (``samples`` is not used)."""
        return {"z": self.encode(x)[0]}


def vae_loss(model: VAE, x: Tensor) -> dict[str, Tensor]:
    """The training loss (minus the mean ELBO) and its parts, for :func:`dgm.training.fit`."""
    terms = model.elbo(x)
    return {
        "loss": -terms.elbo.mean(),
        "reconstruction": terms.reconstruction.mean().detach(),
        "kl": terms.kl.mean().detach(),
    }


@dataclass
class ConvVAESettings(VAESettings):
    """A VAE with convolutional networks (:class:`dgm.networks.ConvEncoder`, :class:`dgm.networks.ConvDecoder`).

    ``image_shape`` is ``(C, H, W)``; ``channels`` the encoder's widths, one stride-2
    convolution each (the decoder mirrors them); ``hidden`` holds the one fully
    connected layer between the feature map and the code. ``data_dim`` follows from
    ``image_shape``. Defaults: 28×28 MNIST, 28 → 14 → 7. For 64×64 dSprites,
    ``image_shape=(1, 64, 64), channels=(32, 32, 64, 64)`` (Higgins et al.'s β-VAE networks).
    """

    data_dim: int = field(init=False, default=0)
    hidden: tuple[int, ...] = (256,)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    channels: tuple[int, ...] = (32, 64)

    def __post_init__(self) -> None:
        if len(self.hidden) != 1:
            raise ValueError(f"hidden must hold the width of the one fully connected layer, e.g. (256,), got {self.hidden}")
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {self.image_shape}")
        self.data_dim = math.prod(self.image_shape)
        super().__post_init__()


class ConvVAE(VAE):
    r"""The :class:`VAE` with a convolutional encoder and decoder; everything else (prior, likelihoods,
    ELBO, importance weights, ``flatten``/``decode`` on flattened images) is the VAE's, so
    :func:`vae_loss`, :func:`dgm.evaluation.likelihood.iwae_bound` and ``active_units`` work unchanged.

    >>> ConvVAE(ConvVAESettings(latent_dim=10, image_shape=(1, 64, 64), channels=(32, 32, 64, 64)))  # doctest: +ELLIPSIS
    ConvVAE(...)
    """

    settings: ConvVAESettings

    def __init__(self, settings: ConvVAESettings | None = None) -> None:
        settings = settings or ConvVAESettings()
        if not isinstance(settings, ConvVAESettings):
            raise TypeError(f"ConvVAE takes ConvVAESettings, got {type(settings).__name__}; VAESettings is for the MLP VAE")
        (width,) = settings.hidden
        encoder = ConvEncoder(settings.image_shape, 2 * settings.latent_dim, settings.channels, width)
        decoder = ConvDecoder(settings.latent_dim, settings.image_shape, tuple(reversed(settings.channels)), width)
        super().__init__(settings, encoder=encoder, decoder=decoder)


def attribute_vector(codes: Tensor, has_attribute: Tensor) -> Tensor:
    r"""The mean code of the examples with an attribute minus the mean code of those without (White, 2016's "smile vector").

    $v = \frac{1}{|A|}\sum_{i \in A} \mu_\phi(x_i) - \frac{1}{|\bar A|}\sum_{i \notin A} \mu_\phi(x_i)$;
    adding $\alpha v$ to a code and decoding is meant to add the attribute (more of it for larger $\alpha$).
    Shapes: ``codes (N, L)``, ``has_attribute (N,)`` booleans (or 0/1) → ``(L,)``.
    """
    if codes.dim() != 2 or has_attribute.shape != (len(codes),):
        raise ValueError(f"need codes (N, L) and has_attribute (N,), got {tuple(codes.shape)} and {tuple(has_attribute.shape)}")
    has_attribute = has_attribute.to(codes.device).bool()
    count = int(has_attribute.sum())
    if count in (0, len(codes)):
        raise ValueError(f"both groups must be non-empty: {count} of {len(codes)} examples have the attribute")
    return codes[has_attribute].mean(0) - codes[~has_attribute].mean(0)


class HeldOutELBO:
    r"""The mean ELBO of held-out data after every epoch: pass it as :func:`dgm.training.fit`'s ``on_epoch``.

    ``fit`` calls it before epoch ``e`` (from 0), that is after ``e`` finished epochs;
    it records the mean one-sample ELBO (nats per example) of ``data`` for ``e ≥ 1``,
    and :meth:`finish` records the last epoch after ``fit`` returns. Each evaluation
    draws its codes from its own seeded generator state (``torch.random.fork_rng``),
    so it leaves the training's random numbers as they were and two evaluations of
    the same weights agree. With ``path`` the values are kept in a JSON file, so a
    resumed run keeps the curve of the epochs before the interruption.
    """

    def __init__(
        self, model: VAE, data: Tensor, *, batch_size: int = 500, seed: int = 0, path: Path | None = None
    ) -> None:
        if len(data) == 0:
            raise ValueError("HeldOutELBO needs at least one held-out example")
        self.model, self.data, self.batch_size, self.seed, self.path = model, data, batch_size, seed, path
        self.values: dict[int, float] = {}
        if path is not None and path.exists():
            self.values = {int(epoch): value for epoch, value in json.loads(path.read_text()).items()}

    @torch.no_grad()
    def evaluate(self) -> float:
        """The mean ELBO of the held-out data under the model's current weights, in nats."""
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        total = 0.0
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            for start in range(0, len(self.data), self.batch_size):
                total += float(self.model.elbo(self.data[start : start + self.batch_size].to(device)).elbo.sum())
        self.model.train(was_training)
        return total / len(self.data)

    def __call__(self, epoch: int) -> None:
        if epoch >= 1:
            self.record(epoch)

    def record(self, epoch: int) -> None:
        """Evaluate now and store the value as the one after ``epoch`` epochs."""
        self.values[epoch] = self.evaluate()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.values))

    def finish(self, epochs: int) -> list[float]:
        """Record epoch ``epochs`` (the last one ``fit`` ran) and return the values of epochs ``1..epochs``, in order.

        An epoch without a value (trained in a session that kept no ``path``) is ``nan``.
        """
        self.record(epochs)
        return [self.values.get(epoch, float("nan")) for epoch in range(1, epochs + 1)]
