"""Figures shared by the notebooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from dgm.adversarial.dirac_gan import DiracGAN
from dgm.training import History


def image_grid(images: Tensor, columns: int, shape: tuple[int, int] = (28, 28), pad: int = 1) -> Tensor:
    """Tile ``(N, D)`` or ``(N, 1, H, W)`` images into one ``(rows·(H+pad), columns·(W+pad))`` array."""
    height, width = shape
    images = images.detach().float().cpu().reshape(-1, height, width)  # (N, H, W)
    rows = -(-len(images) // columns)
    grid = torch.ones(rows * (height + pad) - pad, columns * (width + pad) - pad)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * (height + pad) : row * (height + pad) + height, column * (width + pad) : column * (width + pad) + width] = image
    return grid


def show_images(
    images: Tensor, columns: int, *, title: str = "", ax: Axes | None = None, shape: tuple[int, int] = (28, 28)
) -> Axes:
    """Show images as a grid, grey levels in [0, 1]."""
    if ax is None:
        _, ax = plt.subplots(figsize=(columns * 0.5, (-(-len(images) // columns)) * 0.5 + 0.3))
    ax.imshow(image_grid(images, columns, shape).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    return ax


def show_rows(rows: Mapping[str, Tensor], columns: int, shape: tuple[int, int] = (28, 28)) -> Figure:
    """One labelled row of images per entry, e.g. ``{"data": x, "reconstruction": x_hat}``."""
    aspect = shape[1] / shape[0]  # wide images (e.g. CAPTCHAs) get wider rows, square ones the sizes of before
    figure, axes = plt.subplots(len(rows), 1, figsize=(columns * 0.55 * aspect, len(rows) * 0.75), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        ax.imshow(image_grid(images[:columns], columns, shape).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    figure.tight_layout()
    return figure


def plot_history(
    histories: Mapping[str, History],
    terms: Sequence[str],
    *,
    ylabels: Mapping[str, str] | None = None,
    xlabel: str = "epoch",
) -> Figure:
    """One panel per term, one line per run: e.g. the loss and its reconstruction and KL parts."""
    figure, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for label, history in histories.items():
            values = history.terms[term]
            ax.plot(range(1, len(values) + 1), values, label=label)
        ax.set_xlabel(xlabel)
        ax.set_title((ylabels or {}).get(term, term))
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    return figure


def plot_phase(ax: Axes, game: DiracGAN, path: np.ndarray | None = None, *, extent: float = 2.0, title: str = "") -> Axes:
    """The Dirac-GAN's vector field as streamlines over ``[-extent, extent]²``, a ``path`` ``(T, 2)`` of ``(θ, ψ)`` on top."""
    grid = np.linspace(-extent, extent, 25)
    theta, psi = np.meshgrid(grid, grid)
    v_theta, v_psi = game.field(theta, psi)
    ax.streamplot(theta, psi, v_theta, v_psi, color=np.hypot(v_theta, v_psi), cmap="Greys", density=0.8, linewidth=0.7)
    if path is not None:
        ax.plot(path[:, 0], path[:, 1], color="C3", linewidth=1.2)
        ax.plot(*path[0], "o", color="C3", markersize=4)
        ax.plot(*path[-1], "s", color="C3", markersize=4)
    ax.plot(0, 0, "*", color="C2", markersize=10)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel(r"generator $\theta$")
    ax.set_ylabel(r"discriminator $\psi$")
    ax.set_title(title, fontsize=10)
    return ax


def plot_points(ax: Axes, samples: Tensor, centers: Tensor | None = None, *, title: str = "", limit: float | None = None) -> Axes:
    """2-D samples ``(N, 2)`` as a scatter, with the mixture's mode centres ``(K, 2)`` as crosses."""
    points = samples.detach().float().cpu().numpy()
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, color="C0")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", s=30, color="C3")
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return ax
