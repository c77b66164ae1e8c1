r"""Two-dimensional Gaussian mixtures and how well a sampler covers their modes.

The standard test beds for mode collapse (notebook ``notebooks/gan_mixtures``): eight
Gaussians on a ring of radius 2 with $\sigma = 0.02$ (Metz et al.'s unrolled-GAN
ring, used by VEEGAN and PacGAN) and twenty-five on the grid $\{-4, -2, 0, 2, 4\}^2$
with $\sigma = 0.05$ (variance 0.0025, the grid of the VEEGAN and PacGAN papers). A generated sample is **high quality** when it lies within
$3\sigma$ of its nearest mode; a mode is **covered** when at least
``min_count`` high-quality samples land on it (20 of the usual 2,500 by
default, a fifth of a mode's fair share). The papers' own count is looser:
PacGAN's released evaluation code counts every mode with at least one
high-quality sample, which :meth:`ModeScore.modes_with_at_least` gives with
``1``; compare with their tables in that count. Both scores use 2,500
samples, as the papers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ModeScore:
    """How a set of samples sits on a mixture's modes.

    Attributes:
        counts: high-quality samples per mode, ``(K,)``.
        high_quality: the fraction of all samples within ``threshold`` standard deviations of a mode.
        min_count: the high-quality samples a mode needs to count as covered (:attr:`modes_covered`).
        mode_kl: KL(covered-mode histogram ‖ uniform) in nats, over the high-quality samples
            (0 when they spread evenly over all modes; ``log K`` when all sit on one mode).
    """

    counts: Tensor
    high_quality: float
    min_count: int
    mode_kl: float

    @property
    def modes_covered(self) -> int:
        """The modes with at least ``min_count`` high-quality samples."""
        return self.modes_with_at_least(self.min_count)

    def modes_with_at_least(self, samples: int) -> int:
        """The modes on which at least ``samples`` high-quality samples land.

        ``1`` is the count of PacGAN's released evaluation code, in which the papers' tables are given.
        """
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        return int((self.counts >= samples).sum())


@dataclass(frozen=True)
class Mixture:
    """An equal-weight mixture of isotropic Gaussians ``N(center_k, std² I)``."""

    name: str
    centers: Tensor  # (K, 2)
    std: float

    def __post_init__(self) -> None:
        if self.centers.dim() != 2 or self.centers.shape[0] < 1:
            raise ValueError(f"centers must have shape (K, D) with K >= 1, got {tuple(self.centers.shape)}")
        if self.std <= 0:
            raise ValueError(f"std must be positive, got {self.std}")

    @property
    def modes(self) -> int:
        return self.centers.shape[0]

    @property
    def spread(self) -> float:
        """The root of the mixture's variance per coordinate, averaged over coordinates: $\\sqrt{\\overline{\\mathrm{Var}}[\\mu_k] + \\sigma^2}$.

        $2\\sqrt 2 \\approx 2.83$ for the grid and $\\sqrt 2 \\approx 1.41$ for the ring; a GAN given it as
        ``GANSettings.scale`` works on data of unit spread.
        """
        centers = self.centers.double()
        return math.sqrt(float(centers.var(dim=0, unbiased=False).mean()) + self.std**2)

    def to(self, device: torch.device | str) -> Mixture:
        """The same mixture with its centres on ``device``, so that :meth:`sample` draws there without a copy."""
        return Mixture(self.name, self.centers.to(device), self.std)

    def sample(self, n: int, generator: torch.Generator | None = None, *, device: torch.device | str | None = None) -> Tensor:
        """``n`` samples, ``(n, D)``, drawn on ``device``: pick a mode uniformly, add Gaussian noise.

        ``device`` defaults to the device of ``generator`` if one is given, else
        to that of the centres (see :meth:`to`); the centres are copied only when
        it differs from theirs.
        """
        if device is None:
            device = generator.device if generator is not None else self.centers.device
        centers = self.centers.to(device)
        mode = torch.randint(self.modes, (n,), generator=generator, device=device)
        noise = torch.randn(n, self.centers.shape[1], generator=generator, device=device)
        return centers[mode] + self.std * noise

    def nearest(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        """For each sample ``(N, D)``: the index of its nearest mode and the distance to it, both ``(N,)``."""
        distances = torch.cdist(samples.float(), self.centers.to(samples.device))  # (N, K)
        distance, mode = distances.min(dim=1)
        return mode, distance

    def score(self, samples: Tensor, *, threshold: float = 3.0, min_count: int = 20) -> ModeScore:
        """Score ``samples`` ``(N, D)``: the fraction within ``threshold``·std of a mode, and the modes covered.

        A mode counts as covered when at least ``min_count`` high-quality
        samples land on it (20 of the usual 2,500, so a few stray points do not
        count as a mode).
        """
        if samples.dim() != 2 or samples.shape[1] != self.centers.shape[1]:
            raise ValueError(f"samples must have shape (N, {self.centers.shape[1]}), got {tuple(samples.shape)}")
        if len(samples) == 0:
            raise ValueError("score needs at least one sample")
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        mode, distance = self.nearest(samples)
        good = distance <= threshold * self.std
        counts = torch.bincount(mode[good], minlength=self.modes).cpu()
        total = int(counts.sum())
        if total == 0:
            mode_kl = math.log(self.modes)
        else:
            share = counts[counts > 0].double() / total
            mode_kl = float((share * (share * self.modes).log()).sum())
        return ModeScore(
            counts=counts,
            high_quality=total / len(samples),
            min_count=min_count,
            mode_kl=mode_kl,
        )


def ring(modes: int = 8, radius: float = 2.0, std: float = 0.02) -> Mixture:
    """``modes`` Gaussians evenly spaced on a circle of ``radius`` (the "2-D ring")."""
    angles = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)
    centers = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return Mixture(f"ring of {modes}", centers, std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    """``side``² Gaussians on a square grid centred at the origin (the "2-D grid": {-4, -2, 0, 2, 4}²)."""
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(ticks, ticks, indexing="xy")
    centers = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return Mixture(f"grid of {side * side}", centers, std)
