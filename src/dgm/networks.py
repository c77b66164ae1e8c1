"""Plain networks. They know nothing of objectives or samplers (STYLE.md §2)."""

from __future__ import annotations

import math
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
    ``(c, 2c, 2c)``.

    Shapes: ``x (B, 1, 28, 28)``, ``sigma (B,)`` or a float → ``(B, 1, 28, 28)``.
    """

    def __init__(self, channels: int = 32, embedding: int = 64) -> None:
        super().__init__()
        c = channels
        self.embed = nn.Sequential(nn.Linear(1, embedding), nn.SiLU(), nn.Linear(embedding, embedding), nn.SiLU())
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.down1 = _ResidualBlock(c, c, embedding)  # 28×28
        self.down2 = _ResidualBlock(c, 2 * c, embedding, stride=2)  # 14×14
        self.middle = _ResidualBlock(2 * c, 2 * c, embedding, stride=2)  # 7×7
        self.up2 = _ResidualBlock(4 * c, 2 * c, embedding)  # 14×14, after the skip from down2
        self.up1 = _ResidualBlock(3 * c, c, embedding)  # 28×28, after the skip from down1
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


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    r"""The Transformer's position code for a step $t$: $[\sin(t\omega_k), \cos(t\omega_k)]_k$, $\omega_k = \text{max\_period}^{-k/(d/2)}$.

    Nearby steps get nearby codes, and the code spans periods from $2\pi$ to $2\pi\cdot$``max_period`` (DDPM's time input).
    Shapes: ``t (B,)`` (integer or real) → ``(B, dim)``; ``dim`` even.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be even and at least 2, got {dim}")
    if t.dim() != 1:
        raise ValueError(f"t must be a (B,) tensor, got shape {tuple(t.shape)}")
    half = dim // 2
    # $\omega_k = \text{max\_period}^{-k/(d/2)}$, $k = 0, \dots, d/2 - 1$
    frequencies = max_period ** (-torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None, :]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


class UNet(nn.Module):
    r"""A small U-Net for diffusion on 28×28 images: $\varepsilon_\theta(x_t, t)$ (or an $x_0$- or $v$-prediction).

    The shape of improved-diffusion's U-Net, cut down: residual blocks at three
    resolutions (28 → 14 → 7 and back, widths ``channels × multipliers``), skip
    connections from every block on the way down to one on the way up, the step $t$
    entering every block through its sinusoidal code (:func:`sinusoidal_embedding`)
    and an MLP, and optional self-attention at the lowest resolution. ``channels``
    sets the size (``multipliers=(1, 2, 2)``, one block per level, no attention):
    0.26 M parameters at 16, 0.59 M at 24, 1.05 M at 32 and 4.2 M at 64.

    Shapes: ``x (B, C, H, W)`` with $H, W$ divisible by $2^{\text{levels} - 1}$, ``t (B,)`` → ``(B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int = 32,
        multipliers: Sequence[int] = (1, 2, 2),
        blocks: int = 1,
        attention: bool = False,
        dropout: float = 0.0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if channels < 8 or channels % 8 or not multipliers or min(multipliers) < 1 or blocks < 1:
            raise ValueError(
                f"need channels a positive multiple of 8 (GroupNorm's 8 groups), multipliers >= 1 and blocks >= 1, "
                f"got channels={channels}, multipliers={tuple(multipliers)}, blocks={blocks}"
            )
        self.channels, self.in_channels, self.levels = channels, in_channels, len(multipliers)
        embedding = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, embedding), nn.SiLU(), nn.Linear(embedding, embedding))
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in multipliers]
        self.down, skips, width = nn.ModuleList(), [channels], channels
        for level, level_width in enumerate(widths):
            for _ in range(blocks):
                self.down.append(_ResidualBlock(width, level_width, embedding, dropout))
                width = level_width
                skips.append(width)
            if level < len(widths) - 1:
                self.down.append(_Downsample(width))
                skips.append(width)
        self.middle = nn.ModuleList([
            _ResidualBlock(width, width, embedding, dropout),
            _SelfAttention(width) if attention else nn.Identity(),
            _ResidualBlock(width, width, embedding, dropout),
        ])
        self.up = nn.ModuleList()
        for level, level_width in reversed(list(enumerate(widths))):
            for _ in range(blocks + 1):
                self.up.append(_ResidualBlock(width + skips.pop(), level_width, embedding, dropout))
                width = level_width
            if level > 0:
                self.up.append(_Upsample(width))
        self.head = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, in_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # start as the zero prediction, as improved-diffusion does
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: Tensor, t: Tensor, condition: Tensor | None = None) -> Tensor:
        """``condition (B, 4·channels)``, optional: an embedding added to the step's (e.g. :class:`TextConditionedUNet`'s text)."""
        factor = 2 ** (self.levels - 1)
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"x must be (B, {self.in_channels}, H, W) with H and W divisible by {factor}, got {tuple(x.shape)}")
        if not isinstance(t, Tensor) or t.shape != (len(x),):
            raise ValueError(f"t must be a ({len(x)},) tensor of steps, got {tuple(t.shape) if isinstance(t, Tensor) else t!r}")
        e = self.time_mlp(sinusoidal_embedding(t, self.channels))  # (B, 4c)
        if condition is not None:
            if condition.shape != e.shape:
                raise ValueError(f"condition must be ({len(x)}, {e.shape[1]}), got {tuple(condition.shape)}")
            e = e + condition
        e = nn.functional.silu(e)  # activated once for every block
        h = self.stem(x)  # (B, c, H, W)
        skips = [h]
        for block in self.down:
            h = block(h, e)  # a residual block keeps H, W; a downsample halves them
            skips.append(h)
        for block in self.middle:
            h = block(h, e) if isinstance(block, _ResidualBlock) else block(h)
        for block in self.up:
            if isinstance(block, _ResidualBlock):
                h = block(torch.cat([h, skips.pop()], dim=1), e)  # (B, width + skip width, H', W') → (B, width', H', W')
            else:
                h = block(h, e)  # upsample: (B, width, 2H', 2W')
        return self.head(h)  # (B, C, H, W)


class TextConditionedUNet(nn.Module):
    r"""$\varepsilon_\theta(x_t, t, c)$ for a text $c$ of fixed length: a :class:`UNet` whose step embedding also carries the text.

    Each position $i$ of the text has a learned embedding of its character plus
    one of the position; the $L$ vectors, concatenated, pass through an MLP to a
    vector that is added to the step's embedding, so every residual block
    shifts its channels by a function of $(t, c)$ — FiLM-style conditioning
    (shift only). Knowing *which* character stands at *which* position is enough
    for a fixed-length text, and it costs one small MLP per call, where
    cross-attention would cost an attention map per block. The token
    ``null_token`` (= ``vocabulary``) stands for "no text": a text made of it
    is the unconditional model $\varepsilon_\theta(x_t, t, \varnothing)$ of
    classifier-free guidance (:mod:`dgm.diffusion.guidance`).

    Shapes: ``x (B, C, H, W)``, ``t (B,)``, ``tokens (B, length)`` integers in $0..\text{vocabulary}$ → ``(B, C, H, W)``.
    """

    def __init__(self, vocabulary: int, length: int, channels: int = 32, token_dim: int = 32, **unet: object) -> None:
        super().__init__()
        if vocabulary < 1 or length < 1 or token_dim < 1:
            raise ValueError(f"need vocabulary, length and token_dim >= 1, got {vocabulary}, {length}, {token_dim}")
        self.vocabulary, self.length = vocabulary, length
        self.unet = UNet(channels, **unet)  # type: ignore[arg-type]
        self.characters = nn.Embedding(vocabulary + 1, token_dim)  # the last row: the null token
        self.positions = nn.Parameter(torch.randn(length, token_dim) * 0.02)
        self.text_mlp = nn.Sequential(nn.Linear(length * token_dim, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, 4 * channels))

    @property
    def null_token(self) -> int:
        return self.vocabulary

    def forward(self, x: Tensor, t: Tensor, tokens: Tensor) -> Tensor:
        if tokens.dtype not in (torch.int32, torch.int64) or tokens.shape != (len(x), self.length):
            raise ValueError(f"tokens must be a ({len(x)}, {self.length}) integer tensor, got {tokens.dtype} {tuple(tokens.shape)}")
        if tokens.device.type == "cpu" and len(tokens) and not (0 <= int(tokens.min()) and int(tokens.max()) <= self.vocabulary):
            raise ValueError(f"tokens must lie in 0..{self.vocabulary} (the last is the null token), got {int(tokens.min())}..{int(tokens.max())}")
        text = self.characters(tokens) + self.positions  # (B, L, token_dim)
        return self.unet(x, t, condition=self.text_mlp(text.flatten(1)))  # (B, C, H, W)


class _ResidualBlock(nn.Module):
    """GroupNorm → SiLU → conv, plus a per-channel shift from the conditioning embedding ``e`` (σ or the step,
    already passed through its activation), → GroupNorm → SiLU → dropout → conv; plus the input (1×1 conv when
    the width or, with ``stride`` 2, the resolution changes)."""

    def __init__(self, fan_in: int, fan_out: int, embedding: int, dropout: float = 0.0, stride: int = 1) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, fan_in)
        self.conv1 = nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1)
        self.shift = nn.Linear(embedding, fan_out)
        self.norm2, self.dropout = nn.GroupNorm(8, fan_out), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(fan_out, fan_out, 3, padding=1)
        same = fan_in == fan_out and stride == 1
        self.skip = nn.Identity() if same else nn.Conv2d(fan_in, fan_out, 1, stride=stride)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))  # (B, fan_out, H', W')
        h = h + self.shift(e)[:, :, None, None]  # the conditioning shift, broadcast over pixels
        h = self.conv2(self.dropout(nn.functional.silu(self.norm2(h))))
        return self.skip(x) + h


class _Downsample(nn.Module):
    """A stride-2 convolution: ``(B, c, H, W) → (B, c, H/2, W/2)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, stride=2, padding=1)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        return self.conv(x)


class _Upsample(nn.Module):
    """Nearest-neighbour doubling, then a convolution: ``(B, c, H, W) → (B, c, 2H, 2W)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


class _SelfAttention(nn.Module):
    """One head of self-attention over the pixels, with a residual connection: ``(B, c, H, W) → (B, c, H, W)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, width)
        self.qkv, self.out = nn.Conv2d(width, 3 * width, 1), nn.Conv2d(width, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(2, 3).unbind(1)  # each (B, HW, C)
        h = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.out(h.transpose(1, 2).reshape(B, C, H, W))


def _check_image_shape(image_shape: Sequence[int], channels: Sequence[int], who: str) -> tuple[int, int, int]:
    """``(C, H, W)`` with positive sizes, ``H`` and ``W`` divisible by ``2^len(channels)``; else a ``ValueError``."""
    shape = tuple(int(size) for size in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{who}: image_shape must be (channels, height, width) with positive sizes, got {tuple(image_shape)}")
    if not channels or min(channels) < 1:
        raise ValueError(f"{who}: channels must be a non-empty list of positive widths, got {tuple(channels)}")
    factor = 2 ** len(channels)
    _, height, width = shape
    if height % factor or width % factor:
        raise ValueError(
            f"{who}: {len(channels)} stride-2 layers halve the image {len(channels)} times, so height and width must be "
            f"divisible by {factor}; got {height}×{width}. Use fewer channels entries (28×28 takes 2, 64×64 up to 6)"
        )
    return shape  # type: ignore[return-value]


class ConvEncoder(nn.Module):
    r"""A DCGAN-style convolutional encoder: images → a vector, e.g. the $(\mu, \log\sigma^2)$ of $q_\phi(z \mid x)$.

    Each entry of ``channels`` is one 4×4 convolution with stride 2 and padding 1
    (it halves height and width) followed by a ReLU; the last feature map is
    flattened and goes through a ReLU layer of ``hidden`` units to ``out_features``
    outputs (no activation). Defaults: 28×28 → 14×14 → 7×7 with ``channels=(32, 64)``;
    for 64×64 dSprites, Higgins et al.'s β-VAE stack is ``channels=(32, 32, 64, 64)``
    (64 → 32 → 16 → 8 → 4).

    It takes images ``(B, C, H, W)`` or the same images flattened, ``(B, C·H·W)``,
    as :class:`dgm.latent.vae.VAE` passes them. Shapes: → ``(B, out_features)``.
    """

    def __init__(
        self, image_shape: Sequence[int], out_features: int, channels: Sequence[int] = (32, 64), hidden: int = 256
    ) -> None:
        super().__init__()
        self.image_shape = _check_image_shape(image_shape, channels, "ConvEncoder")
        if out_features < 1 or hidden < 1:
            raise ValueError(f"ConvEncoder: out_features and hidden must be positive, got {out_features}, {hidden}")
        in_channels, height, width = self.image_shape
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip([in_channels, *channels[:-1]], channels):
            layers += [nn.Conv2d(fan_in, fan_out, 4, stride=2, padding=1), nn.ReLU()]  # (B, fan_out, H/2, W/2)
        self.convs = nn.Sequential(*layers)
        factor = 2 ** len(channels)
        self.head = mlp([channels[-1] * (height // factor) * (width // factor), hidden, out_features])

    def forward(self, x: Tensor) -> Tensor:
        C, H, W = self.image_shape
        if x.dim() == 2 and x.shape[1] == C * H * W:
            x = x.view(-1, C, H, W)  # (B, C·H·W) → (B, C, H, W)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"ConvEncoder expects images (B, {C}, {H}, {W}) or (B, {C * H * W}), got {tuple(x.shape)}")
        h = self.convs(x)  # (B, channels[-1], H/2^n, W/2^n)
        return self.head(h.flatten(1))  # (B, out_features)


class ConvDecoder(nn.Module):
    r"""The mirror of :class:`ConvEncoder`: a vector, e.g. a code $z$, → the parameters of $p_\theta(x \mid z)$ per pixel.

    A ReLU layer of ``hidden`` units, then a linear map to a ``channels[0]`` ×
    (H/2ⁿ) × (W/2ⁿ) feature map (n = ``len(channels)``); each entry of ``channels``
    is then one 4×4 transposed convolution with stride 2 and padding 1 (it doubles
    height and width), from that width to the next (the last one to the image's
    channels, with no activation: logits or means). Defaults: 7×7×64 → 14×14×32 →
    28×28; for 64×64, ``channels=(64, 64, 32, 32)`` mirrors the encoder.

    Shapes: ``(..., in_features)`` → ``(..., C·H·W)``, flattened as
    :class:`dgm.latent.vae.VAE` expects (any leading dimensions, e.g. ``(k, B, L)``
    for the importance-weighted bound); :meth:`images` gives ``(..., C, H, W)``.
    """

    def __init__(
        self, in_features: int, image_shape: Sequence[int], channels: Sequence[int] = (64, 32), hidden: int = 256
    ) -> None:
        super().__init__()
        self.image_shape = _check_image_shape(image_shape, channels, "ConvDecoder")
        if in_features < 1 or hidden < 1:
            raise ValueError(f"ConvDecoder: in_features and hidden must be positive, got {in_features}, {hidden}")
        self.in_features = in_features
        out_channels, height, width = self.image_shape
        factor = 2 ** len(channels)
        self.start = (channels[0], height // factor, width // factor)  # the first feature map's shape
        self.head = nn.Sequential(mlp([in_features, hidden, math.prod(self.start)]), nn.ReLU())
        layers: list[nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(zip(channels, [*channels[1:], out_channels])):
            layers.append(nn.ConvTranspose2d(fan_in, fan_out, 4, stride=2, padding=1))  # (B, fan_out, 2H', 2W')
            if index < len(channels) - 1:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)

    def images(self, z: Tensor) -> Tensor:
        """``(..., in_features) → (..., C, H, W)``."""
        if z.dim() < 1 or z.shape[-1] != self.in_features:
            raise ValueError(f"ConvDecoder expects codes (..., {self.in_features}), got {tuple(z.shape)}")
        leading = z.shape[:-1]
        h = self.head(z.reshape(-1, self.in_features))  # (N, c·h·w), N = prod(leading)
        h = self.deconvs(h.view(-1, *self.start))  # (N, C, H, W)
        return h.view(*leading, *self.image_shape)

    def forward(self, z: Tensor) -> Tensor:
        return self.images(z).flatten(-3)  # (..., C·H·W)
