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

from dataclasses import dataclass
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
from dgm.networks import mlp

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

    def __init__(self, settings: VAESettings | None = None) -> None:
        super().__init__()
        self.settings = settings = settings or VAESettings()
        self.encoder = mlp([settings.data_dim, *settings.hidden, 2 * settings.latent_dim])
        self.decoder = mlp([settings.latent_dim, *reversed(settings.hidden), settings.data_dim])
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
