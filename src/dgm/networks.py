"""Plain networks. They know nothing of objectives or samplers (STYLE.md §2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


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


class NoiseConditionalMLP(nn.Module):
    r"""A noise-conditional score network for points: $s_\theta(x, \sigma) = f_\theta(x, \log\sigma)/\sigma$.

    The MLP sees $x$ and $\log\sigma$; dividing its output by $\sigma$ lets it work
    at one scale for every level, since the true noisy score $-\mathbb E[\varepsilon\mid\tilde x]/\sigma$
    (book/scores.md, eq. {eq}`dsm-target`) has size about $1/\sigma$.

    Shapes: ``x (B, D)``, ``sigma (B,)`` or a float → ``(B, D)``.
    """

    def __init__(self, dim: int = 2, hidden: Sequence[int] = (128, 128, 128)) -> None:
        super().__init__()
        self.dim = dim
        self.net = mlp([dim + 1, *hidden, dim], activation=nn.SiLU)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be (B, {self.dim}), got {tuple(x.shape)}")
        sigma = _sigma_batch(sigma, x)  # (B,)
        features = torch.cat([x, sigma.log()[:, None]], dim=1)  # (B, D + 1)
        return self.net(features) / sigma[:, None]


class NoiseConditionalConvNet(nn.Module):
    r"""A small U-Net for 28×28 images, conditioned on $\sigma$: $s_\theta(x, \sigma) = f_\theta(x, \log\sigma)/\sigma$.

    Two resolutions below the input (28 → 14 → 7) and back, with skip connections;
    $\log\sigma$ enters every block as a learned per-channel shift (the conditioning
    of NCSN's networks, in its simplest form). ``channels`` sets the widths
    ``(c, 2c, 2c)``: 0.1 M parameters at ``c = 32``.

    Shapes: ``x (B, 1, 28, 28)``, ``sigma (B,)`` or a float → ``(B, 1, 28, 28)``.
    """

    def __init__(self, channels: int = 32, embedding: int = 64) -> None:
        super().__init__()
        c = channels
        self.embed = nn.Sequential(nn.Linear(1, embedding), nn.SiLU(), nn.Linear(embedding, embedding), nn.SiLU())
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.down1 = _ConditionedBlock(c, c, embedding)  # 28×28
        self.down2 = _ConditionedBlock(c, 2 * c, embedding, stride=2)  # 14×14
        self.middle = _ConditionedBlock(2 * c, 2 * c, embedding, stride=2)  # 7×7
        self.up2 = _ConditionedBlock(4 * c, 2 * c, embedding)  # 14×14, after the skip from down2
        self.up1 = _ConditionedBlock(3 * c, c, embedding)  # 28×28, after the skip from down1
        self.head = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x must be (B, 1, 28, 28), got {tuple(x.shape)}")
        sigma = _sigma_batch(sigma, x)  # (B,)
        e = self.embed(sigma.log()[:, None])  # (B, E)
        h1 = self.down1(self.stem(x), e)  # (B, c, 28, 28)
        h2 = self.down2(h1, e)  # (B, 2c, 14, 14)
        h = self.middle(h2, e)  # (B, 2c, 7, 7)
        h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")  # (B, 2c, 14, 14)
        h = self.up2(torch.cat([h, h2], dim=1), e)  # (B, 2c, 14, 14)
        h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")  # (B, 2c, 28, 28)
        h = self.up1(torch.cat([h, h1], dim=1), e)  # (B, c, 28, 28)
        return self.head(h) / sigma.view(-1, 1, 1, 1)


class _ConditionedBlock(nn.Module):
    """GroupNorm → SiLU → conv (optionally strided), plus a per-channel shift from the σ embedding, twice."""

    def __init__(self, fan_in: int, fan_out: int, embedding: int, stride: int = 1) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, fan_in)
        self.conv1 = nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1)
        self.shift = nn.Linear(embedding, fan_out)
        self.norm2 = nn.GroupNorm(8, fan_out)
        self.conv2 = nn.Conv2d(fan_out, fan_out, 3, padding=1)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(h)))  # (B, fan_out, H', W')
        h = h + self.shift(e)[:, :, None, None]  # the σ-dependent shift, broadcast over pixels
        return self.conv2(nn.functional.silu(self.norm2(h)))


def _sigma_batch(sigma: Tensor | float, x: Tensor) -> Tensor:
    """``sigma`` as a positive ``(B,)`` tensor on ``x``'s device and dtype."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(len(x))
    if sigma.shape != (len(x),):
        raise ValueError(f"sigma must be a float or a ({len(x)},) tensor, got shape {tuple(sigma.shape)}")
    if bool((sigma <= 0).any()):
        raise ValueError("sigma must be positive")
    return sigma
