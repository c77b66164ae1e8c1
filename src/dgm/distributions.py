r"""Distributions shared by the VAEs, score matching and diffusion.

Log-densities per row (sums over the last axis), closed-form KL divergences and
the reparameterised draw. Each formula cites the page that derives it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    r"""$\mathrm{KL}(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal N(0, I))$ per row.

    Closed form (book/vae.md, eq. {eq}`kl-closed`):
    $\tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)$.

    Args:
        mean, log_var: ``(B, L)``.
    Returns:
        ``(B,)`` nats.
    """
    # $\frac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2)$
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)


def gaussian_kl_between(mean: Tensor, log_var: Tensor, prior_mean: Tensor, prior_log_var: Tensor) -> Tensor:
    r"""$\mathrm{KL}(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(\mu_z, \sigma_z^2))$ per row, diagonal covariances.

    Closed form (book/vae.md, eq. {eq}`kl-learned-prior`):
    $\tfrac12 \sum_j \big(\sigma_j^2/\sigma_{z,j}^2 + (\mu_j - \mu_{z,j})^2/\sigma_{z,j}^2
    - 1 - \log(\sigma_j^2/\sigma_{z,j}^2)\big)$.

    Returns:
        ``(B,)`` nats; the prior's tensors broadcast against ``(B, L)``.
    """
    ratio = (log_var - prior_log_var).exp()
    return 0.5 * (ratio + (mean - prior_mean).pow(2) / prior_log_var.exp() - 1.0 - (log_var - prior_log_var)).sum(-1)


def bernoulli_log_likelihood(x: Tensor, logits: Tensor) -> Tensor:
    r"""$\log \mathrm{Bern}(x; \operatorname{sigmoid}(\ell)) = \sum_i x_i \ell_i - \log(1 + e^{\ell_i})$ per row.

    Minus the binary cross-entropy (book/vae.md, eq. {eq}`bernoulli-bce`), computed
    from logits for stability.

    Args:
        x: ``(B, D)`` in [0, 1]; logits: ``(B, D)``.
    Returns:
        ``(B,)`` nats.
    """
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def gaussian_log_likelihood(x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    r"""$\log \mathcal N(x; \mu, \operatorname{diag}\sigma^2)$ per row.

    Book/vae.md, eq. {eq}`gaussian-decoder`:
    $-\sum_i \big[(x_i - \mu_i)^2 / (2\sigma_i^2) + \tfrac12 \log(2\pi\sigma_i^2)\big]$.

    Args:
        x, mean: ``(B, D)``; log_var: ``(B, D)`` or ``(D,)``.
    Returns:
        ``(B,)`` nats.
    """
    # $-\frac{(x - \mu)^2}{2\sigma^2} - \frac12 \log 2\pi\sigma^2$, summed over pixels
    return -0.5 * ((x - mean).pow(2) / log_var.exp() + log_var + LOG_2PI).sum(-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    r"""$\log \mathcal N(z; 0, I)$ per row: ``(..., L) → (...)``."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def diagonal_normal_log_prob(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    r"""$\log \mathcal N(z; \mu, \operatorname{diag}\sigma^2)$ per row: ``(..., L) → (...)``."""
    return gaussian_log_likelihood(z, mean, log_var)


def standard_normal_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""$\varepsilon \sim \mathcal N(0, I)$ of ``x``'s shape and dtype, on ``x``'s device.

    Drawn on ``generator``'s device when one is given (a CPU generator gives the same
    numbers on any device), then moved to ``x``'s.
    """
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


def reparameterize(
    mean: Tensor, log_var: Tensor, samples: int | None = None, *, generator: torch.Generator | None = None
) -> Tensor:
    r"""$z = \mu + \sigma \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$ (from ``generator`` when given).

    Returns ``(B, L)``, or ``(samples, B, L)`` when ``samples`` is given.
    """
    shape = mean.shape if samples is None else (samples, *mean.shape)
    eps = torch.randn(shape, dtype=mean.dtype, device=mean.device, generator=generator)
    return mean + (0.5 * log_var).exp() * eps


def density_ratio_loss(p_logits: Tensor, q_logits: Tensor) -> dict[str, Tensor]:
    r"""The logistic loss of a classifier telling samples of $p$ (label 1) from samples of $q$ (label 0).

    $-\mathbb E_p[\log D] - \mathbb E_q[\log(1 - D)]$ with $D = \operatorname{sigmoid}(h)$. Its minimiser's
    logit is the log density ratio $h^* = \log p/q$ (book/gan, eq. {eq}`optimal-discriminator`), which is
    why the GAN's discriminator and FactorVAE's total-correlation estimator both train with it.
    At the minimum the loss is $\log 4 - 2\,\mathrm{JS}(p \,\|\, q)$, so it also yields an estimate of JS.

    Args:
        p_logits: ``(N,)`` logits on samples of $p$; q_logits: ``(M,)`` logits on samples of $q$.
    Returns:
        ``{"loss", "js"}``, the loss to minimise and the (detached) JS estimate.
    """
    # $-\log D = \mathrm{softplus}(-h)$, $-\log(1 - D) = \mathrm{softplus}(h)$
    loss = F.softplus(-p_logits).mean() + F.softplus(q_logits).mean()
    return {"loss": loss, "js": (math.log(4) - loss.detach()) / 2}
