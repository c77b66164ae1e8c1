r"""Disentanglement metrics on data with known factors (chapter "β-VAE and FactorVAE", book/beta_vae.md).

Both metrics look at a *representation*: a function from factor values
``(B, K)`` to codes ``(B, L)`` — for a VAE, render the images and take the
encoder's means. Factors are independent and uniform on their grid
(:func:`random_factors`), as in dSprites.

* **The FactorVAE metric** {cite}`kim2018disentangling`. Normalise each code
  dimension by its standard deviation over the data. A *vote*: fix one factor
  $k$ at a random value, draw ``batch`` inputs with the others random, and
  record the dimension $d$ whose normalised code varies least. A majority-vote
  classifier (each dimension predicts the factor it was most often the
  answer for) is fitted on training votes; the score is its accuracy on fresh
  votes. 1 when each factor has a dimension of its own.
* **The mutual information gap (MIG)** {cite}`chen2018isolating`. For each
  factor $v_k$, the gap between the two largest $I(z_j; v_k)$ over the code
  dimensions, divided by $H(v_k)$, averaged over factors. Here, as in
  disentanglement_lib, the codes are discretised into equal-width bins and the
  mutual information is that of the histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from dgm.data.factors import random_factors

Representation = Callable[[Tensor], Tensor]


def codes_of(represent: Representation, factors: Tensor, batch_size: int = 500) -> Tensor:
    """``represent`` applied in batches, without gradients: ``(N, K) → (N, L)`` on the CPU."""
    with torch.no_grad():
        return torch.cat([represent(factors[i : i + batch_size]).float().cpu() for i in range(0, len(factors), batch_size)])


class FactorVAEScore(NamedTuple):
    """The metric and what it was computed from.

    ``votes[d, k]`` counts the evaluation votes in which dimension ``d`` varied
    least while factor ``k`` was fixed; ``active`` marks the dimensions kept.
    """

    accuracy: float
    votes: Tensor
    active: Tensor


def _votes(represent: Representation, sizes: Sequence[int], count: int, batch: int, scale: Tensor,
           active: Tensor, generator: torch.Generator, chunk: int = 5000) -> Tensor:
    # the factors of every vote first (cheap, and in the order a vote-by-vote loop draws them) ...
    fixed = []  # (factor, value) of each vote
    inputs = []  # (batch, K) factor values of each vote
    for _ in range(count):
        factor = int(torch.randint(len(sizes), (1,), generator=generator))
        value = int(torch.randint(sizes[factor], (1,), generator=generator))
        fixed.append(factor)
        inputs.append(random_factors(batch, sizes, generator, fixed=(factor, value)))
    # ... then the representation of all of them in a few large batches
    codes = codes_of(represent, torch.cat(inputs), batch_size=chunk).view(count, batch, -1)  # (count, batch, L)
    candidates = active.nonzero().squeeze(1)
    # the normalised dimension that varies least over inputs sharing factor k
    variance = (codes[:, :, candidates] / scale[candidates]).var(dim=1)  # (count, C)
    least = candidates[variance.argmin(dim=1)]  # (count,)
    votes = torch.zeros(len(scale), len(sizes), dtype=torch.long)
    votes.index_put_((least, torch.tensor(fixed)), torch.ones(count, dtype=torch.long), accumulate=True)
    return votes


def factor_vae_metric(
    represent: Representation,
    sizes: Sequence[int],
    *,
    train_votes: int = 500,
    eval_votes: int = 500,
    batch: int = 100,
    scale_samples: int = 10_000,
    prune_below: float = 0.05,
    seed: int = 0,
) -> FactorVAEScore:
    """The FactorVAE disentanglement metric of ``represent`` on a factor grid with ``sizes``.

    Dimensions whose code has a standard deviation below ``prune_below`` over
    the data (collapsed to the prior) are not candidates, as in Kim & Mnih; when
    every dimension has collapsed the score is 0.
    """
    generator = torch.Generator().manual_seed(seed)
    scale = codes_of(represent, random_factors(scale_samples, sizes, generator)).std(dim=0)  # (L,)
    active = scale >= prune_below
    if not bool(active.any()):  # a code that has collapsed entirely separates nothing: score 0 (as disentanglement_lib)
        return FactorVAEScore(0.0, torch.zeros(len(scale), len(sizes), dtype=torch.long), active)
    train = _votes(represent, sizes, train_votes, batch, scale, active, generator)  # (L, K)
    evaluation = _votes(represent, sizes, eval_votes, batch, scale, active, generator)
    # each dimension predicts the factor it was most often the answer for
    prediction = train.argmax(dim=1)  # (L,)
    correct = evaluation.gather(1, prediction.unsqueeze(1)).sum()
    return FactorVAEScore(float(correct) / eval_votes, evaluation, active)


def discretize(codes: Tensor, bins: int = 20) -> Tensor:
    """Each column of ``codes`` ``(N, L)`` cut into ``bins`` equal-width bins between its min and max: ``(N, L)`` ints."""
    low, high = codes.min(dim=0).values, codes.max(dim=0).values
    width = (high - low).clamp_min(1e-12) / bins
    return ((codes - low) / width).floor().clamp(0, bins - 1).long()


def entropy(labels: Tensor) -> Tensor:
    r"""$H(v) = -\sum_a p(a) \log p(a)$ in nats of the empirical distribution of ``labels`` ``(N,)``."""
    p = torch.bincount(labels).double() / len(labels)
    p = p[p > 0]
    return -(p * p.log()).sum()


def mutual_information(a: Tensor, b: Tensor) -> Tensor:
    r"""$I(a; b) = H(a) + H(b) - H(a, b)$ in nats, of two integer label vectors ``(N,)``."""
    joint = a * (int(b.max()) + 1) + b
    return entropy(a) + entropy(b) - entropy(joint)


class MIGScore(NamedTuple):
    """The gap averaged over factors, the gap per factor, and ``information[j, k]`` $= I(z_j; v_k)$ in nats."""

    mig: float
    per_factor: Tensor
    information: Tensor


def mig(codes: Tensor, factors: Tensor, *, bins: int = 20) -> MIGScore:
    r"""The mutual information gap of ``codes`` ``(N, L)`` for ``factors`` ``(N, K)``, $L \ge 2$.

    $\mathrm{MIG} = \frac1K \sum_k \frac{I(z_{j_1}; v_k) - I(z_{j_2}; v_k)}{H(v_k)}$,
    with $j_1, j_2$ the dimensions of largest and second-largest information
    about $v_k$ (Chen et al. 2018, eq. 4).
    """
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors) or codes.shape[1] < 2:
        raise ValueError(f"expected codes (N, L ≥ 2) and factors (N, K), got {tuple(codes.shape)} and {tuple(factors.shape)}")
    binned = discretize(codes, bins)
    information = torch.tensor(
        [[float(mutual_information(binned[:, j], factors[:, k])) for k in range(factors.shape[1])] for j in range(codes.shape[1])]
    )  # (L, K)
    top = information.sort(dim=0, descending=True).values  # (L, K)
    entropies = torch.stack([entropy(factors[:, k]) for k in range(factors.shape[1])]).float()
    per_factor = (top[0] - top[1]) / entropies
    return MIGScore(float(per_factor.mean()), per_factor, information)
