r"""A two-layer hierarchical VAE (chapter "Hierarchical VAEs and posterior collapse", book/hvae.md).

The model and the inference network (eq. {eq}`hvae-model`):

$$p(x, z_1, z_2) = p(x \mid z_1)\, p(z_1 \mid z_2)\, p(z_2), \qquad
  q(z_1, z_2 \mid x) = q(z_1 \mid x)\, q(z_2 \mid z_1),$$

with $p(z_2) = \mathcal N(0, I)$ and every conditional a diagonal Gaussian
(Bernoulli for $x$) whose parameters an MLP computes. With ``skip=True`` the
decoder also sees $z_2$: $p(x \mid z_1, z_2)$, a skip connection from the top
layer to the data.

The ELBO (eq. {eq}`hvae-elbo`) is a reconstruction term and two KL terms:

$$\mathcal L(x) = \mathbb E_q[\log p(x \mid z_1)]
  - \mathbb E_q\Big[\log \frac{q(z_1 \mid x)}{p(z_1 \mid z_2)}\Big]
  - \mathbb E_{q(z_1 \mid x)}\big[\mathrm{KL}(q(z_2 \mid z_1) \,\|\, p(z_2))\big].$$

The middle term is estimated at the sampled $(z_1, z_2)$ (its two densities
share no closed form, because $z_2$ is drawn given $z_1$); the top one is
exact given $z_1$. Both remedies for posterior collapse are arguments of the
loss: a KL weight (warm-up) and a free-bits floor per latent dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dgm.distributions import (
    bernoulli_log_likelihood,
    diagonal_normal_log_prob,
    reparameterize,
    standard_normal_log_prob,
)
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
    r"""$q(z_1 \mid x)$, $q(z_2 \mid z_1)$, $p(z_1 \mid z_2)$, $p(x \mid z_1[, z_2])$; $p(z_2) = \mathcal N(0, I)$."""

    def __init__(self, settings: HVAESettings | None = None) -> None:
        super().__init__()
        self.settings = s = settings or HVAESettings()
        self.encoder1 = mlp([s.data_dim, *s.hidden, 2 * s.z1_dim])  # x → (μ, log σ²) of q(z1|x)
        self.encoder2 = mlp([s.z1_dim, *s.top_hidden, 2 * s.z2_dim])  # z1 → q(z2|z1)
        self.prior1 = mlp([s.z2_dim, *s.top_hidden, 2 * s.z1_dim])  # z2 → p(z1|z2)
        decoder_in = s.z1_dim + (s.z2_dim if s.skip else 0)
        self.decoder = mlp([decoder_in, *reversed(s.hidden), s.data_dim])  # (z1[, z2]) → logits of p(x|·)

    def flatten(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1)  # (B, D)
        if x.shape[1] != self.settings.data_dim:
            raise ValueError(f"expected inputs with {self.settings.data_dim} values each, got {x.shape[1]}")
        return x

    def decode(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Logits of $p(x \\mid z_1[, z_2])$: ``(..., D)``."""
        return self.decoder(torch.cat([z1, z2], dim=-1) if self.settings.skip else z1)

    @torch.no_grad()
    def sample(self, count: int) -> Tensor:
        r"""Ancestral samples' means: $z_2 \sim p(z_2)$, $z_1 \sim p(z_1 \mid z_2)$, then $\mathbb E[x \mid z_1, z_2]$: ``(count, D)``."""
        device = next(self.parameters()).device
        z2 = torch.randn(count, self.settings.z2_dim, device=device)
        z1 = reparameterize(*self.prior1(z2).chunk(2, dim=-1))
        return torch.sigmoid(self.decode(z1, z2))


class HVAETerms(NamedTuple):
    """Per-example terms, ``(B,)`` nats, and the per-dimension KLs ``(B, L)`` that free bits acts on."""

    elbo: Tensor
    reconstruction: Tensor
    kl1: Tensor
    kl2: Tensor
    kl1_dims: Tensor
    kl2_dims: Tensor


def hvae_terms(model: HVAE, x: Tensor) -> HVAETerms:
    """One-sample estimates of the ELBO and its three terms (eq. {eq}`hvae-elbo`)."""
    x = model.flatten(x)
    mean1, log_var1 = model.encoder1(x).chunk(2, dim=-1)  # (B, L1) each
    z1 = reparameterize(mean1, log_var1)
    mean2, log_var2 = model.encoder2(z1).chunk(2, dim=-1)  # (B, L2) each
    z2 = reparameterize(mean2, log_var2)
    prior_mean1, prior_log_var1 = model.prior1(z2).chunk(2, dim=-1)
    reconstruction = bernoulli_log_likelihood(x, model.decode(z1, z2))
    # $\log q(z_1 \mid x) - \log p(z_1 \mid z_2)$ per dimension, at the sampled $z_1, z_2$
    kl1_dims = -0.5 * ((z1 - mean1).pow(2) / log_var1.exp() + log_var1) + 0.5 * (
        (z1 - prior_mean1).pow(2) / prior_log_var1.exp() + prior_log_var1
    )
    # $\mathrm{KL}(q(z_2 \mid z_1) \,\|\, \mathcal N(0, I))$ per dimension, exact given $z_1$
    kl2_dims = 0.5 * (mean2.pow(2) + log_var2.exp() - 1.0 - log_var2)
    kl1, kl2 = kl1_dims.sum(-1), kl2_dims.sum(-1)
    return HVAETerms(reconstruction - kl1 - kl2, reconstruction, kl1, kl2, kl1_dims, kl2_dims)


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
    terms = hvae_terms(model, x)
    penalty = free_bits(terms.kl1_dims, floor) + free_bits(terms.kl2_dims, floor)
    loss = -terms.reconstruction.mean() + kl_weight * penalty
    return {
        "loss": loss,
        "elbo": terms.elbo.mean().detach(),
        "reconstruction": terms.reconstruction.mean().detach(),
        "kl1": terms.kl1.mean().detach(),
        "kl2": terms.kl2.mean().detach(),
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


@torch.no_grad()
def active_units(model: HVAE, x: Tensor, *, threshold: float = 0.01, samples: int = 10) -> tuple[Tensor, Tensor]:
    r"""Activity $A_u = \mathrm{Cov}_x\big(\mathbb E_{q(u \mid x)}[u]\big)$ of every unit of $z_1$ and $z_2$ (Burda et al. 2016).

    A unit is active when $A_u > $ ``threshold``. For $z_2$ the inner
    expectation averages $\mu_2(z_1)$ over ``samples`` draws of $z_1 \sim q(z_1 \mid x)$.

    Returns:
        the activities ``(L1,)`` and ``(L2,)``.
    """
    x = model.flatten(x)
    mean1, log_var1 = model.encoder1(x).chunk(2, dim=-1)
    z1 = reparameterize(mean1, log_var1, samples)  # (S, B, L1)
    mean2 = model.encoder2(z1).chunk(2, dim=-1)[0].mean(dim=0)  # (B, L2): E_q[z2 | x]
    return mean1.var(dim=0), mean2.var(dim=0)


@torch.no_grad()
def iwae_bound(model: HVAE, x: Tensor, samples: int) -> Tensor:
    r"""$\log \frac1k \sum_i p(x, z_1^i, z_2^i) / q(z_1^i, z_2^i \mid x)$ per row ``(B,)``: a bound on $\log p(x)$ that tightens with $k$."""
    x = model.flatten(x)
    mean1, log_var1 = model.encoder1(x).chunk(2, dim=-1)
    z1 = reparameterize(mean1, log_var1, samples)  # (k, B, L1)
    mean2, log_var2 = model.encoder2(z1).chunk(2, dim=-1)
    z2 = reparameterize(mean2, log_var2)  # (k, B, L2)
    prior_mean1, prior_log_var1 = model.prior1(z2).chunk(2, dim=-1)
    log_p = (bernoulli_log_likelihood(x.expand(samples, *x.shape), model.decode(z1, z2))
             + diagonal_normal_log_prob(z1, prior_mean1, prior_log_var1) + standard_normal_log_prob(z2))
    log_q = diagonal_normal_log_prob(z1, mean1, log_var1) + diagonal_normal_log_prob(z2, mean2, log_var2)
    return torch.logsumexp(log_p - log_q, dim=0) - math.log(samples)



@torch.no_grad()
def evaluate(model: HVAE, data: Tensor, *, samples: int, batch_size: int = 100) -> dict[str, float]:
    """Mean ELBO, its three terms and the IWAE bound with ``samples`` importance samples over ``data`` ``(N, ...)``, in nats."""
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(5, dtype=torch.float64)
    for start in range(0, len(data), batch_size):
        x = data[start : start + batch_size].to(device)
        terms = hvae_terms(model, x)
        parts = [terms.elbo, terms.reconstruction, terms.kl1, terms.kl2, iwae_bound(model, x, samples)]
        totals += torch.stack([part.sum() for part in parts]).double().cpu()
    means = (totals / len(data)).tolist()
    return dict(zip(["elbo", "reconstruction", "kl1", "kl2", "iwae"], means))
