"""Figures shared by the notebooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from dgm.train import History


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
    figure, axes = plt.subplots(len(rows), 1, figsize=(columns * 0.55, len(rows) * 0.75), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        ax.imshow(image_grid(images[:columns], columns, shape).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    figure.tight_layout()
    return figure


def plot_history(histories: Mapping[str, History], terms: Sequence[str], *, ylabels: Mapping[str, str] | None = None) -> Figure:
    """One panel per term, one line per run: e.g. the loss and its reconstruction and KL parts."""
    figure, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for label, history in histories.items():
            values = history.terms[term]
            ax.plot(range(1, len(values) + 1), values, label=label)
        ax.set_xlabel("epoch")
        ax.set_title((ylabels or {}).get(term, term))
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    return figure
