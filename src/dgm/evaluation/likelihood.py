r"""Evaluation of latent-variable models: ELBO and IWAE log-likelihood in nats, bits per dimension, active units.

Every function here takes any :class:`dgm.latent.model.LatentVariableModel` —
the VAE, the β-VAE/FactorVAE (a VAE) and the hierarchical VAE — and uses only
its protocol: ``elbo``, ``proposal`` and ``log_joint`` for the bounds,
``posterior_means`` for active units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dgm.latent.model import LatentVariableModel
from dgm.profile import progress_enabled


def iwae_bound(model: LatentVariableModel, x: Tensor, samples: int, *, chunk: int | None = None) -> Tensor:
    r"""The importance-weighted bound (Burda et al., 2016) with $k$ samples, per row.

    $\mathcal L_k(x) = \mathbb E\big[\log \tfrac1k \sum_{i=1}^k p(x, z_i)/q(z_i \mid x)\big]
    \le \log p(x)$, with $z_i \sim q(z \mid x)$; $\mathcal L_1$ is the ELBO and
    $\mathcal L_k$ grows with $k$ (book/vae.md, eq. {eq}`iwae`).

    Args:
        x: ``(B, ...)``; samples: $k \ge 1$; chunk: draw at most this many
            samples at a time (to bound memory), ``None`` for all at once.
    Returns:
        ``(B,)`` nats (one draw of the estimator).
    """
    if samples < 1:
        raise ValueError(f"the IWAE bound needs at least one sample, got {samples}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be a positive number of samples or None, got {chunk}")
    x = model.flatten(x)
    chunk = samples if chunk is None else min(chunk, samples)
    sums = []  # $\log \sum_i w_i$ over each chunk of samples
    for done in range(0, samples, chunk):
        z, log_q = model.proposal(x, min(chunk, samples - done))  # (k', B, L), (k', B)
        # $\log w_i = \log p(x, z_i) - \log q(z_i \mid x)$
        log_w = model.log_joint(x, z) - log_q  # (k', B)
        sums.append(torch.logsumexp(log_w, dim=0))
    # $\log \frac1k \sum_i w_i$, computed stably
    total = sums[0] if len(sums) == 1 else torch.logsumexp(torch.stack(sums), dim=0)
    return total - math.log(samples)


@dataclass(frozen=True)
class LikelihoodReport:
    """Test-set averages in nats per example (higher ELBO/IWAE is better; NLL = −IWAE).

    ``kl_layers`` holds each latent layer's KL term (one entry, ``"z"``, for a one-layer VAE).
    """

    elbo: float
    reconstruction: float
    kl: float
    iwae: float
    samples: int
    examples: int
    kl_layers: dict[str, float] = field(default_factory=dict)

    @property
    def nll(self) -> float:
        """The IWAE estimate of −log p(x) (an upper bound on the true NLL, in expectation)."""
        return -self.iwae

    def __str__(self) -> str:
        return (
            f"ELBO {self.elbo:.2f} nats (reconstruction {self.reconstruction:.2f}, KL {self.kl:.2f}); "
            f"IWAE NLL (k={self.samples}) {self.nll:.2f} nats; {self.examples} test examples"
        )


@torch.no_grad()
def evaluate_likelihood(
    model: LatentVariableModel,
    data: Tensor,
    *,
    samples: int,
    batch_size: int = 100,
    chunk: int | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    progress: bool | None = None,
) -> LikelihoodReport:
    """Average ELBO, its terms and the IWAE bound with ``samples`` importance samples over ``data`` ``(N, ...)``.

    The importance samples are drawn at most ``chunk`` at a time (default ``20,000 / batch_size``),
    to bound memory; a larger ``chunk`` is faster where memory allows.
    """
    model.eval()
    device = next(model.parameters()).device
    layers = list(model.latent_layers)
    totals = torch.zeros(4 + len(layers), dtype=torch.float64)
    chunk = max(1, 20_000 // max(batch_size, 1)) if chunk is None else chunk
    for start in tqdm(range(0, len(data), batch_size), desc="evaluating", disable=not (progress_enabled() if progress is None else progress)):
        x = data[start : start + batch_size].to(device)
        if transform is not None:
            x = transform(x)
        terms = model.elbo(x)
        iwae = iwae_bound(model, x, samples, chunk=chunk)
        parts = [terms.elbo, terms.reconstruction, terms.kl, iwae, *terms.kl_layers.values()]
        totals += torch.stack([part.sum() for part in parts]).double().cpu()
    means = (totals / len(data)).tolist()
    return LikelihoodReport(*means[:4], samples=samples, examples=len(data), kl_layers=dict(zip(layers, means[4:])))


def bits_per_dim(nll_nats: float, dims: int, levels: int = 256) -> float:
    r"""Bits per dimension of a discrete image from the NLL of its dequantised density on $[0, 1)^D$.

    $-\log_2 P(x) / D \le (-\log p(y) + D \log \text{levels}) / (D \log 2)$ with $y = (x + u)/\text{levels}$.
    """
    return (nll_nats + dims * math.log(levels)) / (dims * math.log(2))


@dataclass(frozen=True)
class ActiveUnits:
    r"""The activity $A_u$ of every latent unit, per layer, and which count as active ($A_u >$ ``threshold``)."""

    activity: dict[str, Tensor]  # layer name → (L_layer,)
    threshold: float

    @property
    def counts(self) -> dict[str, int]:
        """The number of active units of each layer."""
        return {name: int((values > self.threshold).sum()) for name, values in self.activity.items()}

    @property
    def count(self) -> int:
        """The number of active units over all layers."""
        return sum(self.counts.values())


@torch.no_grad()
def active_units(
    model: LatentVariableModel, data: Tensor, *, threshold: float = 0.01, batch_size: int = 1000, samples: int = 10
) -> ActiveUnits:
    r"""Latent units the model uses (Burda et al., 2016, §5.2), layer by layer.

    Unit $u$ is active when $A_u = \operatorname{Cov}_x\big(\mathbb E_{q(u \mid x)}[u]\big) >$ ``threshold``
    (0.01 in the paper). For a layer whose posterior mean has no closed form
    (the top layer $z_2$ of the hierarchical VAE) the inner expectation averages
    over ``samples`` draws of the layers below (:meth:`~dgm.latent.model.LatentVariableModel.posterior_means`).

    Args:
        data: ``(N, ...)``, on any device; it is encoded ``batch_size`` rows at a time.
    Returns:
        :class:`ActiveUnits`: ``activity[layer]`` ``(L_layer,)`` on the CPU, ``counts`` and ``count``.
    """
    model.eval()
    device = next(model.parameters()).device
    means: dict[str, list[Tensor]] = {name: [] for name in model.latent_layers}
    for start in range(0, len(data), batch_size):
        for name, mean in model.posterior_means(data[start : start + batch_size].to(device), samples).items():
            means[name].append(mean.cpu())
    return ActiveUnits({name: torch.cat(chunks).var(dim=0) for name, chunks in means.items()}, threshold)


@torch.no_grad()
def posterior_spread(model: LatentVariableModel, data: Tensor, batch_size: int = 500) -> Tensor:
    r"""``(L,)`` the average posterior standard deviation $\mathbb E_x[\sigma_{\phi,j}(x)]$ of each dimension of the encoder's (first) layer."""
    model.eval()
    device = next(model.parameters()).device
    stds = [(0.5 * model.encode(data[i : i + batch_size].to(device))[1]).exp().cpu() for i in range(0, len(data), batch_size)]
    return torch.cat(stds).mean(dim=0)
