r"""dSprites, rendered on the fly (chapter "β-VAE and FactorVAE", book/beta_vae.md).

dSprites {cite}`matthey2017dsprites` is a set of 64×64 binary images of one
white shape on black, made from five independent factors of variation:

=============  ======  ============================================
factor         values  here
=============  ======  ============================================
shape          3       square, ellipse, heart
scale          6       0.5, 0.6, …, 1.0
orientation    40      0, 2π/40, …, 2π·39/40
position x     32      centre moves 36 px, left to right
position y     32      centre moves 36 px, top to bottom
=============  ======  ============================================

Every one of the 3·6·40·32·32 = 737,280 combinations is an image, and every
image is addressable by its factors (:func:`render`) or by its index in the
grid (:func:`factors_of`, :func:`index_of`; the last factor varies fastest,
as in the original file).

**This is a re-rendering, not the original file.** The shapes are drawn here
from implicit equations (a square, an ellipse with axes 1 : ½, the heart
curve $(x^2 + y^2 - 1)^3 \le x^2 y^3$), a pixel is on when its centre lies
inside the shape, and the sizes and ranges are our own choices; the images
are *not* pixel-identical to DeepMind's ``dsprites_ndarray_*.npz``. The
factor grid is the same, so the disentanglement metrics read the same way,
but numbers on this set are not numbers on the original. Nothing is
downloaded or stored: a batch of 64 images renders in a few milliseconds on a CPU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.data.factors import random_factors

FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SIZE = 64
COUNT = math.prod(FACTOR_SIZES)  # 737,280

# A shape at scale 1 spans about ±RADIUS of the image width; centres range over
# [MARGIN, 1 − MARGIN], so a rotated square at scale 1 still fits in the frame.
RADIUS = 0.15
MARGIN = 0.22


def _check(factors: Tensor) -> Tensor:
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES) or factors.dtype.is_floating_point:
        raise ValueError(f"factors must be an integer tensor of shape (B, 5) {FACTOR_NAMES}, got {tuple(factors.shape)} {factors.dtype}")
    sizes = torch.tensor(FACTOR_SIZES, device=factors.device)
    if bool(((factors < 0) | (factors >= sizes)).any()):
        raise ValueError(f"factor values out of range: each column must lie in 0..size−1 for sizes {FACTOR_SIZES}")
    return factors


def factors_of(index: Tensor) -> Tensor:
    """Grid indices ``(B,)`` in ``0..737279`` → factor values ``(B, 5)`` (the last factor varies fastest)."""
    if index.dtype.is_floating_point or bool(((index < 0) | (index >= COUNT)).any()):
        raise ValueError(f"indices must be integers in 0..{COUNT - 1}")
    columns = []
    for size in reversed(FACTOR_SIZES):
        columns.append(index % size)
        index = torch.div(index, size, rounding_mode="floor")
    return torch.stack(columns[::-1], dim=-1)


def index_of(factors: Tensor) -> Tensor:
    """Factor values ``(B, 5)`` → grid indices ``(B,)``; the inverse of :func:`factors_of`."""
    index = torch.zeros(len(_check(factors)), dtype=torch.long, device=factors.device)
    for column, size in enumerate(FACTOR_SIZES):
        index = index * size + factors[:, column]
    return index


def _inside(shape: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Whether the point ``(u, v)`` of the sprite's own frame (unit radius) lies inside its shape."""
    square = torch.maximum(u.abs(), v.abs()) <= 0.75
    ellipse = u.pow(2) + (v / 0.5).pow(2) <= 1.0
    # the heart curve $(x^2 + y^2 - 1)^3 \le x^2 y^3$, scaled to unit radius and centred
    hu, hv = 1.15 * u, 1.15 * v + 0.1
    heart = (hu.pow(2) + hv.pow(2) - 1).pow(3) <= hu.pow(2) * hv.pow(3)
    shape = shape.view(-1, 1, 1)
    return torch.where(shape == 0, square, torch.where(shape == 1, ellipse, heart))


def render(factors: Tensor) -> Tensor:
    """Factor values ``(B, 5)`` → images ``(B, 1, 64, 64)``, float32 in {0, 1}, on the factors' device."""
    factors = _check(factors)
    shape, scale_index, orientation, x_index, y_index = factors.unbind(-1)
    scale = 0.5 + 0.1 * scale_index.float()  # (B,)
    angle = 2 * math.pi * orientation.float() / FACTOR_SIZES[2]
    centre_x = MARGIN + (1 - 2 * MARGIN) * x_index.float() / (FACTOR_SIZES[3] - 1)
    centre_y = MARGIN + (1 - 2 * MARGIN) * y_index.float() / (FACTOR_SIZES[4] - 1)
    pixels = (torch.arange(SIZE, device=factors.device, dtype=torch.float32) + 0.5) / SIZE  # pixel centres in (0, 1)
    dx = pixels.view(1, 1, SIZE) - centre_x.view(-1, 1, 1)  # (B, 1, W): columns
    dy = centre_y.view(-1, 1, 1) - pixels.view(1, SIZE, 1)  # (B, H, 1): rows, pointing up
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    radius = (RADIUS * scale).view(-1, 1, 1)
    # rotate the image frame by −angle into the sprite's frame and divide by its radius
    u = (cos * dx + sin * dy) / radius  # (B, H, W)
    v = (-sin * dx + cos * dy) / radius
    return _inside(shape, u, v).float().unsqueeze(1)  # (B, 1, H, W)


def render_indices(index: Tensor) -> Tensor:
    """Grid indices ``(B,)`` → images ``(B, 1, 64, 64)``: a ``transform`` for :func:`dgm.training.fit` over indices."""
    return render(factors_of(index))


def random_images(
    count: int, generator: torch.Generator | None = None, *, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """``count`` images drawn uniformly from the grid, with their factors: ``(count, 1, 64, 64)`` and ``(count, 5)``.

    The factors are drawn on the CPU (so a seed gives the same images anywhere) and
    the images are rendered on ``device``: a training loop on a GPU copies 5 numbers an image, not 4,096.
    """
    factors = random_factors(count, FACTOR_SIZES, generator).to(device)
    return render(factors), factors
