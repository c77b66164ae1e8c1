"""Plain networks. They know nothing of objectives or samplers (STYLE.md §2)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] → ... → sizes[-1]``, ``activation`` between layers, none after the last.

    >>> mlp([784, 512, 64])  # doctest: +ELLIPSIS
    Sequential(...)
    """
    if len(sizes) < 2 or any(size < 1 for size in sizes):
        raise ValueError(f"an MLP needs at least two positive layer sizes, got {list(sizes)}")
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)
