r"""The variational autoencoder (chapter "The variational autoencoder", book/vae.md).

The objective, per data point (eq. {eq}`vae-objective`):

$$\mathcal L(x) = \mathbb E_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]
  - \mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z)).$$

The losses are small pure functions that return their terms; the network is a
plain module; nothing here steps an optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from dgm.distributions import (
    bernoulli_log_likelihood,
    diagonal_normal_log_prob,
    gaussian_kl,
    gaussian_log_likelihood,
    reparameterize,
    standard_normal_log_prob,
)
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

    def _flatten(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1)  # (B, D)
        if x.shape[1] != self.settings.data_dim:
            raise ValueError(f"expected inputs with {self.settings.data_dim} values each, got {x.shape[1]}")
        return x

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, ...) → (mean, log_var)``, each ``(B, L)``."""
        mean, log_var = self.encoder(self._flatten(x)).chunk(2, dim=-1)
        return mean, log_var

    def decode(self, z: Tensor) -> Tensor:
        """``(..., L) → (..., D)``: logits (Bernoulli) or means (Gaussian)."""
        return self.decoder(z)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r"""$\log p_\theta(x \mid z)$: x ``(B, D)``, z ``(..., B, L)`` → ``(..., B)``."""
        output = self.decode(z)
        if self.settings.likelihood == "bernoulli":
            return bernoulli_log_likelihood(x.expand_as(output), output)
        return gaussian_log_likelihood(x, output, self.decoder_log_var)

    @torch.no_grad()
    def sample(self, count: int) -> Tensor:
        r"""Decoder means of $z \sim p(z)$: ``(count, D)`` in pixel space."""
        device = next(self.parameters()).device
        return self.mean_image(torch.randn(count, self.settings.latent_dim, device=device))

    def mean_image(self, z: Tensor) -> Tensor:
        """The decoder's mean of ``x`` given ``z``: probabilities (Bernoulli) or means (Gaussian)."""
        output = self.decode(z)
        return torch.sigmoid(output) if self.settings.likelihood == "bernoulli" else output


class ELBOTerms(NamedTuple):
    """Per-example terms of the ELBO, each ``(B,)`` in nats."""

    elbo: Tensor
    reconstruction: Tensor
    kl: Tensor


def elbo(model: VAE, x: Tensor) -> ELBOTerms:
    r"""One-sample estimate of $\mathcal L(x) = \mathbb E_q[\log p(x \mid z)] - \mathrm{KL}(q \,\|\, p)$.

    The reconstruction term uses one reparameterised sample; the KL is exact
    (eq. {eq}`kl-closed`).
    """
    x = model._flatten(x)
    mean, log_var = model.encode(x)
    z = reparameterize(mean, log_var)
    reconstruction = model.log_likelihood(x, z)
    kl = gaussian_kl(mean, log_var)
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


def vae_loss(model: VAE, x: Tensor) -> dict[str, Tensor]:
    """The training loss (minus the mean ELBO) and its parts, for :func:`dgm.training.fit`."""
    terms = elbo(model, x)
    return {
        "loss": -terms.elbo.mean(),
        "reconstruction": terms.reconstruction.mean().detach(),
        "kl": terms.kl.mean().detach(),
    }


def iwae_bound(model: VAE, x: Tensor, samples: int) -> Tensor:
    r"""The importance-weighted bound (Burda et al., 2016) with $k$ samples, per row.

    $\mathcal L_k(x) = \mathbb E\big[\log \tfrac1k \sum_{i=1}^k p(x, z_i)/q(z_i \mid x)\big]
    \le \log p(x)$, with $z_i \sim q(z \mid x)$; $\mathcal L_1$ is the ELBO and
    $\mathcal L_k$ grows with $k$ (book/vae.md, eq. {eq}`iwae`).

    Args:
        x: ``(B, ...)``; samples: $k \ge 1$.
    Returns:
        ``(B,)`` nats (one draw of the estimator).
    """
    if samples < 1:
        raise ValueError(f"the IWAE bound needs at least one sample, got {samples}")
    x = model._flatten(x)
    mean, log_var = model.encode(x)
    z = reparameterize(mean, log_var, samples)  # (k, B, L)
    # $\log w_i = \log p(x \mid z_i) + \log p(z_i) - \log q(z_i \mid x)$
    log_w = model.log_likelihood(x, z) + standard_normal_log_prob(z) - diagonal_normal_log_prob(z, mean, log_var)
    # $\log \frac1k \sum_i w_i$, computed stably
    return torch.logsumexp(log_w, dim=0) - math.log(samples)
