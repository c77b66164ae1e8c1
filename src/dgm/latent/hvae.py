r"""A two-layer hierarchical VAE (chapter "Hierarchical VAEs and posterior collapse", book/hvae.md).

The model and the inference network (book/hvae.md, eq. {eq}`hvae-model`):

$$p(x, z_1, z_2) = p(x \mid z_1)\, p(z_1 \mid z_2)\, p(z_2), \qquad
  q(z_1, z_2 \mid x) = q(z_1 \mid x)\, q(z_2 \mid z_1),$$

with $p(z_2) = \mathcal N(0, I)$ and every conditional a diagonal Gaussian
(Bernoulli for $x$) whose parameters an MLP computes. With ``skip=True`` the
decoder also sees $z_2$: $p(x \mid z_1, z_2)$, a skip connection from the top
layer to the data.

The ELBO (book/hvae.md, eq. {eq}`hvae-elbo`) is a reconstruction term and two KL terms:

$$\mathcal L(x) = \mathbb E_q[\log p(x \mid z_1)]
  - \mathbb E_q\Big[\log \frac{q(z_1 \mid x)}{p(z_1 \mid z_2)}\Big]
  - \mathbb E_{q(z_1 \mid x)}\big[\mathrm{KL}(q(z_2 \mid z_1) \,\|\, p(z_2))\big].$$

The middle term is estimated at the sampled $(z_1, z_2)$ (its two densities
share no closed form, because $z_2$ is drawn given $z_1$); the top one is
exact given $z_1$. Both remedies for posterior collapse are arguments of the
loss: a KL weight (warm-up) and a free-bits floor per latent dimension.
:class:`HVAE` is a :class:`dgm.latent.model.LatentVariableModel`, so the
importance-weighted bound and active units of :mod:`dgm.evaluation.likelihood`
serve it as they serve the one-layer VAE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dgm.distributions import (
    bernoulli_log_likelihood,
    diagonal_normal_log_prob,
    reparameterize,
    standard_normal_log_prob,
)
from dgm.latent.model import ELBOTerms, flatten_to, kl_per_dimension
from dgm.networks import mlp


@dataclass
class HVAESettings:
    """The architecture (defaults run on a CPU): MLPs for the four conditionals."""

    data_dim: int = 784
    z1_dim: int = 32
    z2_dim: int = 16
    hidden: tuple[int, ...] = (512, 256)  # x ↔ z1
    top_hidden: tuple[int, ...] = (128,)  # z1 ↔ z2
    skip: bool = False  # the decoder sees z2 as well: p(x | z1, z2)

    def __post_init__(self) -> None:
        if min(self.data_dim, self.z1_dim, self.z2_dim) < 1:
            raise ValueError(f"data_dim, z1_dim and z2_dim must be positive, got {self}")


class HVAE(nn.Module):
    r"""$q(z_1 \mid x)$, $q(z_2 \mid z_1)$, $p(z_1 \mid z_2)$, $p(x \mid z_1[, z_2])$; $p(z_2) = \mathcal N(0, I)$.

    A :class:`dgm.latent.model.LatentVariableModel` whose code is $z = (z_1, z_2)$,
    ``(..., L1 + L2)`` with $z_1$ first.
    """

    def __init__(self, settings: HVAESettings | None = None) -> None:
        super().__init__()
        self.settings = s = settings or HVAESettings()
        self.encoder1 = mlp([s.data_dim, *s.hidden, 2 * s.z1_dim])  # x → (μ, log σ²) of q(z1|x)
        self.encoder2 = mlp([s.z1_dim, *s.top_hidden, 2 * s.z2_dim])  # z1 → q(z2|z1)
        self.prior1 = mlp([s.z2_dim, *s.top_hidden, 2 * s.z1_dim])  # z2 → p(z1|z2)
        decoder_in = s.z1_dim + (s.z2_dim if s.skip else 0)
        self.decoder = mlp([decoder_in, *reversed(s.hidden), s.data_dim])  # (z1[, z2]) → logits of p(x|·)

    @property
    def latent_layers(self) -> dict[str, int]:
        """``{"z1": L1, "z2": L2}``, in the order of ``z``."""
        return {"z1": self.settings.z1_dim, "z2": self.settings.z2_dim}

    def flatten(self, x: Tensor) -> Tensor:
        """``(B, ...) → (B, D)``; a ``ValueError`` when the examples do not have ``D`` values."""
        return flatten_to(x, self.settings.data_dim)

    def split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(..., L1 + L2) → (z1 (..., L1), z2 (..., L2))``."""
        z1, z2 = z.split([self.settings.z1_dim, self.settings.z2_dim], dim=-1)
        return z1, z2

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, ...) → (mean, log_var)`` of $q(z_1 \\mid x)$, each ``(B, L1)``."""
        mean1, log_var1 = self.encoder1(self.flatten(x)).chunk(2, dim=-1)
        return mean1, log_var1

    def decode(self, z: Tensor) -> Tensor:
        """Logits of $p(x \\mid z_1[, z_2])$: ``(..., L1 + L2) → (..., D)``."""
        return self.decoder(z if self.settings.skip else self.split(z)[0])

    def mean_image(self, z: Tensor) -> Tensor:
        """Pixel probabilities $\\mathbb E[x \\mid z]$: ``(..., L1 + L2) → (..., D)``."""
        return torch.sigmoid(self.decode(z))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Ancestral samples' means: $z_2 \sim p(z_2)$, $z_1 \sim p(z_1 \mid z_2)$, then $\mathbb E[x \mid z_1, z_2]$: ``(n, D)``."""
        device = next(self.parameters()).device
        z2 = torch.randn(n, self.settings.z2_dim, generator=generator, device=device)
        prior_mean1, prior_log_var1 = self.prior1(z2).chunk(2, dim=-1)
        z1 = reparameterize(prior_mean1, prior_log_var1, generator=generator)
        return self.mean_image(torch.cat([z1, z2], dim=-1))

    def elbo(self, x: Tensor) -> ELBOTerms:
        """One-sample estimates of the ELBO and its three terms (book/hvae.md, eq. {eq}`hvae-elbo`), per row of ``x`` ``(B, ...)``.

        ``kl_dims["z1"]`` is the middle term per dimension, estimated at the
        sampled $(z_1, z_2)$; ``kl_dims["z2"]`` the top one, exact given $z_1$.
        """
        x = self.flatten(x)
        mean1, log_var1 = self.encode(x)  # (B, L1) each
        z1 = reparameterize(mean1, log_var1)
        mean2, log_var2 = self.encoder2(z1).chunk(2, dim=-1)  # (B, L2) each
        z2 = reparameterize(mean2, log_var2)
        z = torch.cat([z1, z2], dim=-1)  # (B, L1 + L2)
        prior_mean1, prior_log_var1 = self.prior1(z2).chunk(2, dim=-1)
        reconstruction = bernoulli_log_likelihood(x, self.decode(z))
        # $\log q(z_1 \mid x) - \log p(z_1 \mid z_2)$ per dimension, at the sampled $z_1, z_2$
        kl1_dims = -0.5 * ((z1 - mean1).pow(2) / log_var1.exp() + log_var1) + 0.5 * (
            (z1 - prior_mean1).pow(2) / prior_log_var1.exp() + prior_log_var1
        )
        # $\mathrm{KL}(q(z_2 \mid z_1) \,\|\, \mathcal N(0, I))$ per dimension, exact given $z_1$
        kl2_dims = kl_per_dimension(mean2, log_var2)
        kl1, kl2 = kl1_dims.sum(-1), kl2_dims.sum(-1)
        return ELBOTerms(reconstruction - kl1 - kl2, reconstruction, kl1 + kl2, {"z1": kl1_dims, "z2": kl2_dims}, z)

    def proposal(self, x: Tensor, samples: int) -> tuple[Tensor, Tensor]:
        r"""$(z_1, z_2) \sim q(z_1 \mid x)\, q(z_2 \mid z_1)$ ``(k, B, L1 + L2)`` and $\log q(z_1, z_2 \mid x)$ ``(k, B)``."""
        mean1, log_var1 = self.encode(x)
        z1 = reparameterize(mean1, log_var1, samples)  # (k, B, L1)
        mean2, log_var2 = self.encoder2(z1).chunk(2, dim=-1)
        z2 = reparameterize(mean2, log_var2)  # (k, B, L2)
        log_q = diagonal_normal_log_prob(z1, mean1, log_var1) + diagonal_normal_log_prob(z2, mean2, log_var2)
        return torch.cat([z1, z2], dim=-1), log_q

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        r"""$\log p(x, z_1, z_2) = \log p(x \mid z_1[, z_2]) + \log p(z_1 \mid z_2) + \log p(z_2)$: x ``(B, ...)``, z ``(..., B, L1 + L2)`` → ``(..., B)``."""
        x = self.flatten(x)
        z1, z2 = self.split(z)
        prior_mean1, prior_log_var1 = self.prior1(z2).chunk(2, dim=-1)
        logits = self.decode(z)
        return (bernoulli_log_likelihood(x.expand_as(logits), logits)
                + diagonal_normal_log_prob(z1, prior_mean1, prior_log_var1) + standard_normal_log_prob(z2))

    def posterior_means(self, x: Tensor, samples: int = 10) -> dict[str, Tensor]:
        r"""$\mathbb E_q[z_1 \mid x] = \mu_1(x)$ and $\mathbb E_q[z_2 \mid x] = \mathbb E_{q(z_1 \mid x)}[\mu_2(z_1)]$, the latter over ``samples`` draws of $z_1$; each ``(B, L)``."""
        mean1, log_var1 = self.encode(x)
        z1 = reparameterize(mean1, log_var1, samples)  # (S, B, L1)
        mean2 = self.encoder2(z1).chunk(2, dim=-1)[0].mean(dim=0)  # (B, L2)
        return {"z1": mean1, "z2": mean2}


def free_bits(kl_dims: Tensor, floor: float) -> Tensor:
    r"""$\sum_j \max(\lambda, \bar{\mathrm{KL}}_j)$: each dimension's batch-mean KL, floored at $\lambda$ nats (Kingma et al. 2016).

    Below the floor a dimension's KL costs nothing to grow, so the optimiser
    has no reason to switch it off. ``floor = 0`` is the plain KL's batch mean.
    """
    means = kl_dims.mean(dim=0)  # (L,)
    # with no floor, the plain batch-mean KL (a Monte Carlo mean may dip below 0 and must not be clipped)
    return means.sum() if floor <= 0 else means.clamp_min(floor).sum()


def hvae_loss(model: HVAE, x: Tensor, *, kl_weight: float = 1.0, floor: float = 0.0) -> dict[str, Tensor]:
    r"""The training loss $-\big(\mathbb E[\log p(x \mid z)] - w\,(\mathrm{KL}_1 + \mathrm{KL}_2)\big)$ with warm-up weight $w$ and free bits, and its parts.

    The logged ``elbo`` is always the true ELBO ($w = 1$, no floor), so runs with
    and without the remedies compare on the same scale.
    """
    terms = model.elbo(x)
    penalty = free_bits(terms.kl_dims["z1"], floor) + free_bits(terms.kl_dims["z2"], floor)
    loss = -terms.reconstruction.mean() + kl_weight * penalty
    kl1, kl2 = terms.kl_layers.values()
    return {
        "loss": loss,
        "elbo": terms.elbo.mean().detach(),
        "reconstruction": terms.reconstruction.mean().detach(),
        "kl1": kl1.mean().detach(),
        "kl2": kl2.mean().detach(),
    }


@dataclass
class HVAEObjective:
    """A loss for :func:`dgm.training.fit` whose KL weight follows a linear warm-up over ``warmup_epochs``.

    Pass :meth:`start_epoch` as ``fit``'s ``on_epoch`` hook; the weight is set
    from the epoch number alone, so a resumed run continues the same schedule.
    """

    warmup_epochs: int = 0
    floor: float = 0.0
    kl_weight: float = 1.0

    def start_epoch(self, epoch: int) -> None:
        # $w = \min(1, (e + 1) / E_{\text{warm-up}})$
        self.kl_weight = 1.0 if self.warmup_epochs == 0 else min(1.0, (epoch + 1) / self.warmup_epochs)

    def __call__(self, model: nn.Module, x: Tensor) -> dict[str, Tensor]:
        return hvae_loss(model, x, kl_weight=self.kl_weight, floor=self.floor)
