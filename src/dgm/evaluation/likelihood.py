"""Evaluation: ELBO and IWAE log-likelihood in nats, bits per dimension, active units."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dgm.latent.vae import VAE, elbo, iwae_bound
from dgm.profile import progress_enabled


@dataclass(frozen=True)
class LikelihoodReport:
    """Test-set averages in nats per example (higher ELBO/IWAE is better; NLL = −IWAE)."""

    elbo: float
    reconstruction: float
    kl: float
    iwae: float
    samples: int
    examples: int

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
    model: VAE,
    data: Tensor,
    *,
    samples: int,
    batch_size: int = 100,
    transform: Callable[[Tensor], Tensor] | None = None,
    progress: bool | None = None,
) -> LikelihoodReport:
    """Average ELBO and IWAE bound with ``samples`` importance samples over ``data`` ``(N, ...)``."""
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(4, dtype=torch.float64)
    chunk = max(1, 20_000 // max(batch_size, 1))  # importance samples per pass, to bound memory
    for start in tqdm(range(0, len(data), batch_size), desc="evaluating", disable=not (progress_enabled() if progress is None else progress)):
        x = data[start : start + batch_size].to(device)
        if transform is not None:
            x = transform(x)
        terms = elbo(model, x)
        # $\log \frac1k \sum_i w_i$ over all k samples, accumulated in chunks
        parts = [iwae_bound(model, x, min(chunk, samples - done)) + math.log(min(chunk, samples - done))
                 for done in range(0, samples, chunk)]
        iwae = torch.logsumexp(torch.stack(parts), dim=0) - math.log(samples)
        totals += torch.stack([terms.elbo.sum(), terms.reconstruction.sum(), terms.kl.sum(), iwae.sum()]).double().cpu()
    means = (totals / len(data)).tolist()
    return LikelihoodReport(*means, samples=samples, examples=len(data))


def bits_per_dim(nll_nats: float, dims: int, levels: int = 256) -> float:
    r"""Bits per dimension of a discrete image from the NLL of its dequantised density on $[0, 1)^D$.

    $-\log_2 P(x) / D \le (-\log p(y) + D \log \text{levels}) / (D \log 2)$ with $y = (x + u)/\text{levels}$.
    """
    return (nll_nats + dims * math.log(levels)) / (dims * math.log(2))


@torch.no_grad()
def active_units(model: VAE, data: Tensor, *, threshold: float = 0.01, batch_size: int = 500) -> tuple[int, Tensor]:
    r"""Latent dimensions the model uses (Burda et al., 2016, §5.2).

    Unit $u$ is active when $A_u = \operatorname{Cov}_x\big(\mathbb E_{q(z \mid x)}[z_u]\big) > 0.01$.

    Returns:
        the count of active units and ``(L,)`` the activity $A_u$ of each.
    """
    model.eval()
    device = next(model.parameters()).device
    means = torch.cat([model.encode(data[i : i + batch_size].to(device))[0].cpu() for i in range(0, len(data), batch_size)])
    activity = means.var(dim=0)
    return int((activity > threshold).sum()), activity


@torch.no_grad()
def posterior_spread(model: VAE, data: Tensor, batch_size: int = 500) -> Tensor:
    r"""``(L,)`` the average posterior standard deviation $\mathbb E_x[\sigma_{\phi,j}(x)]$ of each dimension."""
    model.eval()
    device = next(model.parameters()).device
    stds = [(0.5 * model.encode(data[i : i + batch_size].to(device))[1]).exp().cpu() for i in range(0, len(data), batch_size)]
    return torch.cat(stds).mean(dim=0)
