r"""What every latent-variable model here offers: the protocol the evaluation code is written against.

A latent-variable model has a prior $p(z)$, a decoder $p_\theta(x \mid z)$ and an
encoder (inference network) $q_\phi(z \mid x)$. The VAE (:mod:`dgm.latent.vae`,
also the β-VAE and FactorVAE of :mod:`dgm.latent.factor_vae`) has one latent
layer $z$; the hierarchical VAE (:mod:`dgm.latent.hvae`) has two,
$z = (z_1, z_2)$, concatenated along the last axis wherever one tensor stands
for the whole code. Everything that measures a model — the ELBO, the
importance-weighted bound, active units (:mod:`dgm.evaluation.likelihood`) —
needs only the methods of :class:`LatentVariableModel`:

* ``flatten(x)``: ``(B, ...) → (B, D)``, refusing inputs of the wrong size;
* ``encode(x)``: the mean and log-variance of $q(z \mid x)$ (for the
  hierarchical VAE, of the layer that reads $x$, $q(z_1 \mid x)$);
* ``decode(z)``: the parameters of $p(x \mid z)$ (logits or means);
  ``mean_image(z)``: $\mathbb E[x \mid z]$;
* ``sample(n, generator=...)``: $\mathbb E[x \mid z]$ for $z \sim p(z)$, ancestrally;
* ``elbo(x)``: a one-sample estimate of the ELBO and its terms, :class:`ELBOTerms`;
* ``proposal(x, samples)`` and ``log_joint(x, z)``: draws $z_i \sim q(z \mid x)$
  with $\log q(z_i \mid x)$, and $\log p(x, z_i)$ — the two halves of the
  importance weight $w_i = p(x, z_i) / q(z_i \mid x)$ (book/vae.md, eq. {eq}`iwae`);
* ``posterior_means(x)``: $\mathbb E_{q}[z \mid x]$ of each layer, for active units.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from dgm.distributions import gaussian_kl


class ELBOTerms(NamedTuple):
    """The terms of a one-sample ELBO estimate, per example, in nats.

    ``elbo``, ``reconstruction`` ($\\log p(x \\mid z)$ at the sampled code) and
    ``kl`` (the KL terms of all layers, summed) are ``(B,)``. ``kl_dims`` maps
    each latent layer's name to its KL term per dimension ``(B, L_layer)``
    (what free bits floors); ``z`` ``(B, L)`` is the sampled code, its layers
    concatenated.
    """

    elbo: Tensor
    reconstruction: Tensor
    kl: Tensor
    kl_dims: dict[str, Tensor]
    z: Tensor

    @property
    def kl_layers(self) -> dict[str, Tensor]:
        """Each layer's KL term ``(B,)``."""
        return {name: dims.sum(-1) for name, dims in self.kl_dims.items()}


@runtime_checkable
class LatentVariableModel(Protocol):
    """The methods every VAE in :mod:`dgm.latent` has (shapes: ``B`` examples, ``k`` samples, ``D`` data, ``L`` latent values)."""

    @property
    def latent_layers(self) -> dict[str, int]:
        """The name and size of each latent layer, in the order they are concatenated in ``z``."""
        ...

    def flatten(self, x: Tensor) -> Tensor:
        """``(B, ...) → (B, D)``; a ``ValueError`` when the examples do not have ``D`` values."""
        ...

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, ...) → (mean, log_var)`` of the encoder's (first) Gaussian layer, each ``(B, L_1)``."""
        ...

    def decode(self, z: Tensor) -> Tensor:
        """``(..., L) → (..., D)``: the parameters of $p(x \\mid z)$ (logits or means)."""
        ...

    def mean_image(self, z: Tensor) -> Tensor:
        """``(..., L) → (..., D)``: $\\mathbb E[x \\mid z]$."""
        ...

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``(n, D)``: $\\mathbb E[x \\mid z]$ for $z \\sim p(z)$, with noise from ``generator`` (on the model's device) if given."""
        ...

    def elbo(self, x: Tensor) -> ELBOTerms:
        """A one-sample estimate of the ELBO of each row of ``x`` ``(B, ...)`` and its terms."""
        ...

    def proposal(self, x: Tensor, samples: int) -> tuple[Tensor, Tensor]:
        """``samples`` draws $z_i \\sim q(z \\mid x)$ ``(k, B, L)`` and $\\log q(z_i \\mid x)$ ``(k, B)``."""
        ...

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """$\\log p(x, z)$: x ``(B, ...)``, z ``(..., B, L)`` → ``(..., B)``."""
        ...

    def posterior_means(self, x: Tensor, samples: int = 10) -> dict[str, Tensor]:
        """$\\mathbb E_q[z_\\ell \\mid x]$ ``(B, L_ℓ)`` of each layer ℓ (by Monte Carlo with ``samples`` draws where not closed-form)."""
        ...


def flatten_to(x: Tensor, data_dim: int) -> Tensor:
    """``(B, ...) → (B, D)``, with a clear error when an example does not have ``data_dim`` values."""
    x = x.reshape(x.shape[0], -1)  # (B, D)
    if x.shape[1] != data_dim:
        raise ValueError(f"expected inputs with {data_dim} values each, got {x.shape[1]}")
    return x


def kl_per_dimension(mean: Tensor, log_var: Tensor) -> Tensor:
    r"""$\mathrm{KL}(\mathcal N(\mu_j, \sigma_j^2) \,\|\, \mathcal N(0, 1))$ of each coordinate: ``(..., L) → (..., L)``.

    :func:`dgm.distributions.gaussian_kl` (book/vae.md, eq. {eq}`kl-closed`) applied to one coordinate at a time.
    """
    return gaussian_kl(mean.unsqueeze(-1), log_var.unsqueeze(-1))
