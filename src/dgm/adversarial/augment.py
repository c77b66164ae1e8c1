r"""Differentiable augmentation for GANs trained on little data: DiffAugment (Zhao et al., 2020).

With a few hundred training images the discriminator **memorises** them: its
output $D(x)$ on its own training images climbs towards 1 while on held-out
images of the same distribution it falls, and the generator, which learns only
through $D$'s gradient, is steered towards the training images it can never
reach exactly, or nowhere useful at all. The cure of classifiers — augment the
data — fails when applied to the real images alone: the discriminator then
calls "real" whatever looks augmented, and the generator learns to produce
translated, cut-out, recoloured images (the augmentation *leaks*).

DiffAugment's rule: pass **every** image the discriminator sees through the
same kind of random transformation $T$ — the real images and the fakes in the
discriminator's loss, and the fakes again in the generator's loss,

$$
L_D = \mathbb E_{x}[f(-h(T(x)))] + \mathbb E_{z}[f(h(T(G(z))))],\qquad
L_G = \mathbb E_{z}[f(-h(T(G(z))))],
$$

with $f = \operatorname{softplus}$ for the non-saturating game (Zhao et al., 2020, eqs. 3–4). The
discriminator then tells $T(x)$ from $T(G(z))$; $T$ is differentiable, so the
generator's gradient flows back through it to $G$. ADA (Karras et al., 2020)
reaches the same end with a larger set of transformations applied with a
probability $p$ that it tunes during training; this module is DiffAugment's
fixed policy.

The policy ``("color", "translation", "cutout")`` of the reference code, each
drawn independently per image:

* ``color``: brightness $x + b$, $b \sim U(-\tfrac12, \tfrac12)$; saturation
  $\bar x_c + s (x - \bar x_c)$ around the mean over channels, $s \sim U(0, 2)$
  (nothing for one channel); contrast $\bar x + c (x - \bar x)$ around the
  image's mean, $c \sim U(\tfrac12, \tfrac32)$;
* ``translation``: a shift by up to ``translation_ratio`` of the side (4 pixels
  of 28 at 1/8) in each direction, the uncovered border filled with zeros;
* ``cutout``: a square of ``cutout_ratio`` of the side (14 of 28 at 1/2) set
  to zero at a random centre, cut off at the border.

Every draw comes from a :class:`torch.Generator` on the images' device, so a
seeded run is reproducible and leaves torch's global random state alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS: tuple[str, ...] = ("color", "translation", "cutout")


@dataclass(frozen=True)
class AugmentSettings:
    """Which augmentations, in order, and how far translation and cutout reach (fractions of the image side)."""

    policy: tuple[str, ...] = AUGMENTATIONS
    translation_ratio: float = 0.125
    cutout_ratio: float = 0.5

    def __post_init__(self) -> None:
        unknown = [name for name in self.policy if name not in AUGMENTATIONS]
        if unknown or not self.policy:
            raise ValueError(f"policy must be a non-empty tuple of names from {AUGMENTATIONS}, got {self.policy!r}")
        if not 0 <= self.translation_ratio < 0.5 or not 0 < self.cutout_ratio <= 1:
            raise ValueError(
                f"translation_ratio must be in [0, 0.5) and cutout_ratio in (0, 1], got {self.translation_ratio}, {self.cutout_ratio}"
            )


def _uniform(x: Tensor, low: float, high: float, generator: torch.Generator) -> Tensor:
    """One draw of $U(\\text{low}, \\text{high})$ per image, shaped ``(N, 1, 1, 1)`` to broadcast over it."""
    u = torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)
    return low + (high - low) * u


def color(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random brightness, saturation and contrast of images ``(N, C, H, W)``; the same shape back."""
    # $x + b$, $b \sim U(-1/2, 1/2)$
    x = x + _uniform(x, -0.5, 0.5, generator)
    # $\bar x_c + s (x - \bar x_c)$, $s \sim U(0, 2)$, around the mean over channels (drawn even for C = 1, where it does nothing)
    channel_mean = x.mean(dim=1, keepdim=True)  # (N, 1, H, W)
    x = channel_mean + _uniform(x, 0.0, 2.0, generator) * (x - channel_mean)
    # $\bar x + c (x - \bar x)$, $c \sim U(1/2, 3/2)$, around each image's mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    return image_mean + _uniform(x, 0.5, 1.5, generator) * (x - image_mean)


def _offsets(x: Tensor, low: int, high: int, generator: torch.Generator) -> Tensor:
    """One integer per image, uniform on ``low .. high`` inclusive: ``(N,)``."""
    return torch.randint(low, high + 1, (len(x),), generator=generator, device=x.device)


def translation(x: Tensor, generator: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image ``(N, C, H, W)`` by up to ``round(ratio · side)`` pixels each way, filling with zeros."""
    n, _, height, width = x.shape
    reach_y, reach_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y, shift_x = _offsets(x, -reach_y, reach_y, generator), _offsets(x, -reach_x, reach_x, generator)  # (N,) each
    padded = F.pad(x, [reach_x, reach_x, reach_y, reach_y])  # (N, C, H + 2 reach_y, W + 2 reach_x), zeros around
    # output pixel (i, j) of image k reads padded pixel (i + reach_y - shift_y[k], j + reach_x - shift_x[k])
    rows = torch.arange(height, device=x.device) + (reach_y - shift_y)[:, None]  # (N, H)
    cols = torch.arange(width, device=x.device) + (reach_x - shift_x)[:, None]  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]  # (N, 1, 1)
    shifted = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return shifted.permute(0, 3, 1, 2)  # (N, C, H, W)


def cutout(x: Tensor, generator: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Zero a square of ``round(ratio · side)`` pixels at a random centre of each image ``(N, C, H, W)``."""
    _, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    # the square's first row and column; it may hang over the border, where it is cut off (as in the reference code)
    top = _offsets(x, 0, height - size_y % 2, generator) - size_y // 2  # (N,)
    left = _offsets(x, 0, width - size_x % 2, generator) - size_x // 2  # (N,)
    rows = torch.arange(height, device=x.device)[None, :] - top[:, None]  # (N, H): row index relative to the square
    cols = torch.arange(width, device=x.device)[None, :] - left[:, None]  # (N, W)
    inside = ((rows >= 0) & (rows < size_y))[:, :, None] & ((cols >= 0) & (cols < size_x))[:, None, :]  # (N, H, W)
    return x * (~inside)[:, None].to(x.dtype)


def diff_augment(x: Tensor, settings: AugmentSettings, generator: torch.Generator) -> Tensor:
    """Images ``(N, C, H, W)`` through ``settings.policy`` in order; differentiable in ``x``, the same shape back.

    ``generator`` must live on ``x``'s device; each call draws fresh transformations from it.
    """
    if x.dim() != 4:
        raise ValueError(f"diff_augment needs images (N, C, H, W), got shape {tuple(x.shape)}")
    if generator.device.type != x.device.type:
        raise ValueError(f"the generator is on {generator.device} but the images are on {x.device}")
    for name in settings.policy:
        if name == "color":
            x = color(x, generator)
        elif name == "translation":
            x = translation(x, generator, settings.translation_ratio)
        else:
            x = cutout(x, generator, settings.cutout_ratio)
    return x
