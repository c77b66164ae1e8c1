r"""Total correlation of the aggregate posterior, from the encoder's densities (chapter "β-VAE and FactorVAE", book/beta_vae.md).

The aggregate posterior of a data set $x_1, \dots, x_N$ is the mixture

$$q(z) = \frac1N \sum_{n=1}^N q(z \mid x_n),$$

and its total correlation is $\mathrm{TC} = \mathbb E_{q(z)}\big[\log q(z) - \sum_d \log q(z_d)\big]$,
where $q(z_d)$ is the same mixture of the encoder's one-dimensional marginals.
With a diagonal Gaussian encoder every term is a log-sum-exp over the data
set (:func:`aggregate_log_densities`): exact, but $N$ terms per code.

**Minibatch-weighted sampling** (MWS, Chen et al. 2018, book/beta_vae.md,
eq. {eq}`mws-unbiased`) replaces the sum over the data set by one over the
minibatch the codes came from. With $z_i \sim q(z \mid x_i)$ for the $M$
distinct points of a uniformly drawn minibatch,

$$\hat q(z_i) = \sum_{j=1}^M w_{ij}\, q(z_i \mid x_j), \qquad
  w_{ii} = \frac1N, \quad w_{ij} = \frac{N - 1}{N(M - 1)} \ (j \ne i),$$

whose weights sum to one (eq. {eq}`mws-weights`) and whose mean over the
minibatch is $q(z_i)$ (eq. {eq}`mws-unbiased`). Its log is biased downwards
(Jensen, eq. {eq}`mws-jensen`), and the bias vanishes as $M$ grows: at
$M = N$ every weight is $1/N$ and the estimate is the exact
:func:`aggregate_log_densities`. The density-ratio estimate of the same TC
(a discriminator on permuted codes) is :mod:`dgm.latent.factor_vae`'s.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from dgm.distributions import LOG_2PI


class LogDensities(NamedTuple):
    r"""$\log q(z_i)$ ``(B,)`` and $\log q(z_{i,d})$ ``(B, L)`` at codes ``z`` ``(B, L)``, true or estimated."""

    joint: Tensor
    marginals: Tensor


def _check_codes(z: Tensor, mean: Tensor, log_var: Tensor) -> None:
    if z.ndim != 2 or mean.ndim != 2 or mean.shape != log_var.shape or z.shape[1] != mean.shape[1]:
        raise ValueError(
            "expected codes z (B, L) and the encoder's mean and log_var (N, L) with the same L, "
            f"got z {tuple(z.shape)}, mean {tuple(mean.shape)}, log_var {tuple(log_var.shape)}"
        )


def log_posterior_matrix(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    r"""$\log \mathcal N(z_{i,d}; \mu_{n,d}, \sigma^2_{n,d})$ for every code $i$, data point $n$ and dimension $d$.

    Args:
        z: codes ``(B, L)``; mean, log_var: the encoder's outputs for the data points ``(N, L)``.
    Returns:
        ``(B, N, L)`` nats: summed over ``L`` it is $\log q(z_i \mid x_n)$.
    """
    _check_codes(z, mean, log_var)
    difference = z.unsqueeze(1) - mean.unsqueeze(0)  # (B, N, L)
    # $-\frac{(z - \mu)^2}{2\sigma^2} - \frac12 \log 2\pi\sigma^2$
    return -0.5 * (difference.pow(2) / log_var.exp().unsqueeze(0) + log_var.unsqueeze(0) + LOG_2PI)


def mixture_log_densities(z: Tensor, mean: Tensor, log_var: Tensor, log_weights: Tensor) -> LogDensities:
    r"""$\log \sum_n w_{in}\, q(z_i \mid x_n)$ and, per dimension, $\log \sum_n w_{in}\, q(z_{i,d} \mid x_n)$.

    Computed as log-sum-exps of ``log_weights`` ``(B, N)`` plus :func:`log_posterior_matrix`, so
    that a code far from every posterior mean does not underflow to $\log 0$.
    """
    log_posteriors = log_posterior_matrix(z, mean, log_var)  # (B, N, L)
    if log_weights.shape != log_posteriors.shape[:2]:
        raise ValueError(f"expected log_weights {tuple(log_posteriors.shape[:2])} (codes × data points), got {tuple(log_weights.shape)}")
    joint = torch.logsumexp(log_weights + log_posteriors.sum(dim=2), dim=1)  # (B,)
    marginals = torch.logsumexp(log_weights.unsqueeze(2) + log_posteriors, dim=1)  # (B, L)
    return LogDensities(joint, marginals)


def aggregate_log_densities(z: Tensor, mean: Tensor, log_var: Tensor, *, chunk: int = 2**22) -> LogDensities:
    r"""The exact $\log q(z)$ and $\log q(z_d)$ of the aggregate posterior of ``N`` data points, at codes ``z`` ``(B, L)``.

    $q(z) = \frac1N \sum_n q(z \mid x_n)$: every weight is $1/N$. Costs ``B · N · L`` terms, computed
    for a few codes at a time so that no intermediate holds more than about ``chunk`` numbers.
    """
    _check_codes(z, mean, log_var)
    rows = max(1, chunk // (len(mean) * mean.shape[1]))
    parts = []
    for start in range(0, len(z), rows):
        codes = z[start : start + rows]
        log_weights = torch.full((len(codes), len(mean)), -math.log(len(mean)), dtype=z.dtype, device=z.device)
        parts.append(mixture_log_densities(codes, mean, log_var, log_weights))
    return LogDensities(torch.cat([p.joint for p in parts]), torch.cat([p.marginals for p in parts]))


def minibatch_weights(batch_size: int, dataset_size: int, dtype: torch.dtype = torch.float64) -> Tensor:
    r"""The MWS weights ``(M, M)``: $w_{ii} = 1/N$ on the diagonal, $w_{ij} = (N - 1)/(N(M - 1))$ off it.

    Row $i$ weighs the minibatch's posteriors at the code $z_i \sim q(z \mid x_i)$:
    $x_i$ stands for itself (weight $1/N$, as in $q(z)$), the other $M - 1$
    points for the other $N - 1$ of the data set (book/beta_vae.md, eq. {eq}`mws-weights`).
    """
    if not (isinstance(batch_size, int) and isinstance(dataset_size, int)) or batch_size < 2 or dataset_size < batch_size:
        raise ValueError(f"expected integers 2 <= batch_size <= dataset_size, got batch_size={batch_size!r}, dataset_size={dataset_size!r}")
    # $w_{ij} = \frac{N - 1}{N (M - 1)}$ for $j \ne i$, $w_{ii} = \frac1N$
    weights = torch.full((batch_size, batch_size), (dataset_size - 1) / (dataset_size * (batch_size - 1)), dtype=dtype)
    weights.fill_diagonal_(1 / dataset_size)
    return weights


def minibatch_weighted_log_qz(z: Tensor, mean: Tensor, log_var: Tensor, dataset_size: int) -> LogDensities:
    r"""MWS estimates of $\log q(z_i)$ and $\log q(z_{i,d})$ from one minibatch of a data set of ``dataset_size`` points.

    Args:
        z: ``(M, L)``, row ``i`` drawn from $q(z \mid x_i)$ — the posterior of row ``i`` of ``mean``, ``log_var``;
        mean, log_var: the encoder's outputs ``(M, L)`` for the minibatch's ``M`` distinct points, drawn
            uniformly without replacement from the data set;
        dataset_size: ``N``, the number of points the aggregate posterior averages over.
    Returns:
        :class:`LogDensities`: ``joint`` ``(M,)`` and ``marginals`` ``(M, L)``, each a log of an unbiased
        estimate (book/beta_vae.md, eq. {eq}`mws-unbiased`).
    """
    _check_codes(z, mean, log_var)
    if len(z) != len(mean):
        raise ValueError(f"MWS evaluates each code against its own minibatch: expected as many codes as posteriors, got {len(z)} and {len(mean)}")
    log_weights = minibatch_weights(len(z), dataset_size, dtype=z.dtype).to(z.device).log()
    return mixture_log_densities(z, mean, log_var, log_weights)


def total_correlation(log_densities: LogDensities) -> Tensor:
    r"""$\frac1B \sum_i \big[\log q(z_i) - \sum_d \log q(z_{i,d})\big]$: the Monte Carlo TC from codes $z_i \sim q(z)$."""
    return (log_densities.joint - log_densities.marginals.sum(dim=1)).mean()


def total_correlation_mws(z: Tensor, mean: Tensor, log_var: Tensor, dataset_size: int) -> Tensor:
    r"""The MWS estimate of the total correlation from one minibatch (see :func:`minibatch_weighted_log_qz`): a scalar in nats.

    Biased for any ``M < N`` (a difference of two logs of means), exact in the mean over codes at ``M = N``;
    book/beta_vae.md measures its bias and spread against the exact TC of a Gaussian.
    """
    return total_correlation(minibatch_weighted_log_qz(z, mean, log_var, dataset_size))


def gaussian_total_correlation(covariance: Tensor) -> Tensor:
    r"""The exact TC of $\mathcal N(\mu, \Sigma)$: $\frac12\big(\sum_d \log \Sigma_{dd} - \log\det\Sigma\big)$ (book/beta_vae.md, eq. {eq}`gaussian-tc`).

    Args:
        covariance: ``(L, L)`` symmetric positive definite.
    """
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"expected a square covariance matrix (L, L), got {tuple(covariance.shape)}")
    cholesky, info = torch.linalg.cholesky_ex(covariance)
    if int(info) != 0 or not torch.allclose(covariance, covariance.T):
        raise ValueError("the covariance must be symmetric positive definite")
    # $\log\det\Sigma = 2 \sum_d \log L_{dd}$ for $\Sigma = L L^\top$
    log_det = 2 * cholesky.diagonal().log().sum()
    return 0.5 * (covariance.diagonal().log().sum() - log_det)
