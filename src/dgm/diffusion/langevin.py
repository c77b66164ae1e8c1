r"""Langevin samplers that take the score as an argument (book/scores.md).

One step of Langevin dynamics (book/scores.md, eq. {eq}`langevin`; {cite}`welling2011bayesian`) is

$$x \leftarrow x + \delta\,\nabla_x \log p(x) + \sqrt{2\delta}\,\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I).$$

Without the noise it is gradient ascent on $\log p$ and ends at a mode; with
it, and $\delta \to 0$, the chain's stationary law is $p$. For a finite step the
law is biased: on $\mathcal N(0, s^2)$ the chain's stationary variance is
$s^2 / (1 - \delta / 2s^2)$ (book/scores.md, eq. {eq}`langevin-stationary-variance`).

Annealed Langevin {cite}`song2019generative` runs the chain on the noisy
marginals $q_{\sigma_1}, \dots, q_{\sigma_L}$ from the largest $\sigma$ to the
smallest, with steps $\delta_i = \delta\,(\sigma_i/\sigma_L)^2$ (book/scores.md, eq. {eq}`annealed-langevin`).

Both loops are short on purpose: a reader can step through them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dgm.diffusion.scores import sigmas_for
from dgm.distributions import standard_normal_like

ScoreFn = Callable[[Tensor], Tensor]
NoiseConditionalScoreFn = Callable[[Tensor, Tensor], Tensor]


def langevin_step(score: ScoreFn, x: Tensor, step_size: float, *, generator: torch.Generator | None = None,
                  add_noise: bool = True) -> Tensor:
    r"""One step $x + \delta\,\nabla_x \log p(x) + \sqrt{2\delta}\,\varepsilon$ for a batch ``(B, ...)``."""
    # (book/scores.md, eq. {eq}`langevin`): $x + \delta \nabla_x \log p(x) + \sqrt{2\delta}\,\varepsilon$
    drift = x + step_size * score(x)
    return drift + math.sqrt(2 * step_size) * standard_normal_like(x, generator) if add_noise else drift


@torch.no_grad()
def langevin(
    score: ScoreFn,
    x: Tensor,
    step_size: float,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    add_noise: bool = True,
) -> Tensor:
    r"""Run ``steps`` Langevin steps from ``x``.

    Args:
        score: $\nabla_x \log p$, ``(B, ...) → (B, ...)``.
        x: the starting points ``(B, ...)`` (the chain runs on their device).
        step_size: $\delta > 0$.
        steps: how many steps.
        generator: for the noise (reproducible chains).
        add_noise: ``False`` turns the chain into gradient ascent on $\log p$ (it ends at a mode, not a sample).
    Returns:
        the last state, ``(B, ...)``.
    """
    _check(x, step_size, steps)
    for _ in range(steps):
        x = langevin_step(score, x, step_size, generator=generator, add_noise=add_noise)
    return x


@torch.no_grad()
def annealed_langevin(
    score: NoiseConditionalScoreFn,
    x: Tensor,
    sigmas: Sequence[float] | Tensor,
    steps_per_level: int,
    step_size: float,
    *,
    generator: torch.Generator | None = None,
    return_levels: bool = False,
    denoise: bool = False,
) -> Tensor | tuple[Tensor, list[Tensor]]:
    r"""Annealed Langevin dynamics over $\sigma_1 > \dots > \sigma_L$.

    At level $i$: ``steps_per_level`` Langevin steps on $\log q_{\sigma_i}$ with
    $\delta_i = \delta\,(\sigma_i/\sigma_L)^2$, so that $\delta_i/\sigma_i^2$, the step
    measured in units of the level's noise, is the same at every level
    (book/scores.md, eq. {eq}`annealed-langevin`).

    Args:
        score: the noise-conditional score $s(x, \sigma)$: ``(x (B, ...), sigma (B,)) → (B, ...)``;
            for an exact score, e.g. ``lambda x, sigma: mixture.score(x, sigma)``.
        x: the starting points ``(B, ...)``, on the device the chain runs on.
        sigmas: the levels, strictly decreasing.
        steps_per_level: Langevin steps at each level.
        step_size: $\delta$, the step at the last (smallest) level.
        generator: for the noise.
        return_levels: also return the state at the end of each level (``L`` tensors ``(B, ...)`` on the CPU).
        denoise: after the last level, one noise-free step $x + \sigma_L^2 s(x, \sigma_L)$ — the posterior mean
            $\mathbb E[x_0 \mid x]$ by Tweedie's formula, which removes the last level's noise
            (book/scores.md, eq. {eq}`dsm-target`: the score is $-\mathbb E[\varepsilon \mid \tilde x]/\sigma$).
    Returns:
        the final state ``(B, ...)``, and with ``return_levels`` the list of per-level states.
    """
    levels = sigmas_for([float(s) for s in sigmas])
    _check(x, step_size, steps_per_level)
    smallest = float(levels[-1])
    states = []
    for sigma in levels.tolist():
        sigma_batch = torch.full((len(x),), sigma, dtype=x.dtype, device=x.device)  # (B,)
        # (book/scores.md, eq. {eq}`annealed-langevin`): $\delta_i = \delta\,(\sigma_i / \sigma_L)^2$
        level_step = step_size * (sigma / smallest) ** 2
        for _ in range(steps_per_level):
            x = langevin_step(lambda y: score(y, sigma_batch), x, level_step, generator=generator)  # noqa: B023
        if return_levels:
            states.append(x.detach().cpu())
    if denoise:
        sigma_batch = torch.full((len(x),), smallest, dtype=x.dtype, device=x.device)
        # Tweedie: $\mathbb E[x_0 \mid x] = x + \sigma_L^2\, s(x, \sigma_L)$
        x = x + smallest**2 * score(x, sigma_batch)
    return (x, states) if return_levels else x


def _check(x: Tensor, step_size: float, steps: int) -> None:
    if not isinstance(x, Tensor) or x.dim() < 2 or len(x) == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a non-empty batch of starting points (B, ...), got {shape}")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"the number of steps must be a non-negative integer, got {steps!r}")


def stationary_variance(variance: float, step_size: float) -> float:
    r"""The stationary variance of Langevin on $\mathcal N(0, s^2)$ with step $\delta$: $s^2/(1 - \delta/2s^2)$.

    (book/scores.md, eq. {eq}`langevin-stationary-variance`.) The chain
    $x' = (1 - \delta/s^2)\,x + \sqrt{2\delta}\,\varepsilon$ is linear; its fixed point
    $v = (1 - \delta/s^2)^2 v + 2\delta$ gives the formula. It is finite only for
    $0 < \delta < 2 s^2$.
    """
    if not 0 < step_size < 2 * variance:
        raise ValueError(f"the chain is stable only for 0 < step_size < 2·variance = {2 * variance}, got {step_size}")
    # $s^2 / (1 - \delta / (2 s^2))$
    return variance / (1 - step_size / (2 * variance))
