r"""Noise schedules: the fixed numbers $\beta_t$ that say how much noise each forward step adds.

Read beside {doc}`book/ddpm`. A schedule holds no weights: it is never trained,
never averaged by the EMA and never saved with a model. It is a frozen set of
tensors, built once by :func:`linear_schedule` (Ho et al., 2020) or
:func:`cosine_schedule` (Nichol & Dhariwal, 2021), and moved with :meth:`Schedule.to`.

**Indexing follows the book.** The forward steps are $t = 1, \dots, T$ and
every tensor has length $T + 1$, so ``schedule.alpha_bar[t]`` *is*
$\bar\alpha_t$. Entry $0$ stands for the data itself: $\beta_0 = 0$,
$\alpha_0 = \bar\alpha_0 = 1$ (the convention of the DDIM paper, which lets its
last step land on $x_0$). diffusers and improved-diffusion count from 0, so their
step ``t`` is the book's $t + 1$.

The tensors are float64, so that $\bar\alpha_t$, a product of up to $T$
factors, keeps its digits; :func:`at` casts the entries it picks to the
dtype of the tensor they multiply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass(frozen=True)
class Schedule:
    r"""The tensors of one noise schedule, each of shape ``(T + 1,)``, indexed by the book's $t$.

    Attributes:
        beta: $\beta_t$, the variance the forward step $t$ adds (book/ddpm.md, eq. {eq}`ddpm-forward`).
        alpha: $\alpha_t = 1 - \beta_t$.
        alpha_bar: $\bar\alpha_t = \prod_{s=1}^t \alpha_s$ (book/ddpm.md, eq. {eq}`ddpm-marginal`).
        alpha_bar_prev: $\bar\alpha_{t-1}$ (and $1$ at $t = 0$).
        posterior_variance: $\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t$
            (book/ddpm.md, eq. {eq}`ddpm-posterior`); $\tilde\beta_1 = 0$, and $0$ at $t = 0$.
        posterior_log_variance_clipped: $\log\tilde\beta_t$ with $\tilde\beta_1$ replaced by
            $\tilde\beta_2$ (improved-diffusion's choice: $\log 0$ would be $-\infty$); entry 0 as entry 1.
    """

    beta: Tensor
    alpha: Tensor
    alpha_bar: Tensor
    alpha_bar_prev: Tensor
    posterior_variance: Tensor
    posterior_log_variance_clipped: Tensor

    @property
    def T(self) -> int:
        """The number of forward steps."""
        return len(self.beta) - 1

    @property
    def device(self) -> torch.device:
        return self.beta.device

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Schedule:
        """The same schedule on ``device`` (and in ``dtype``, e.g. float32 where float64 is missing, as on MPS)."""
        return Schedule(**{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)})


def from_betas(beta: Tensor) -> Schedule:
    r"""Every tensor of the schedule from $\beta_1, \dots, \beta_T$ (``(T,)``, each in $(0, 1]$).

    The returned tensors have length $T + 1$, with the entries for $t = 0$ described in :class:`Schedule`.
    """
    beta = torch.as_tensor(beta, dtype=torch.float64)
    if beta.dim() != 1 or len(beta) < 2:
        raise ValueError(f"beta must be a 1-D tensor of at least 2 steps, got shape {tuple(beta.shape)}")
    if bool(((beta <= 0) | (beta > 1)).any()):
        raise ValueError(f"every beta_t must lie in (0, 1], got values in [{beta.min():.3g}, {beta.max():.3g}]")
    beta = torch.cat([beta.new_zeros(1), beta])  # (T + 1,): beta_0 = 0 stands for the data
    # $\alpha_t = 1 - \beta_t$
    alpha = 1.0 - beta
    # $\bar\alpha_t = \prod_{s=1}^t \alpha_s$ (book/ddpm.md, eq. {eq}`ddpm-marginal`)
    alpha_bar = alpha.cumprod(0)
    alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    # $\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t$ (book/ddpm.md, eq. {eq}`ddpm-posterior`)
    posterior_variance = torch.zeros_like(beta)
    posterior_variance[1:] = (1.0 - alpha_bar_prev[1:]) / (1.0 - alpha_bar[1:]) * beta[1:]
    log_variance = posterior_variance.clone()
    log_variance[:2] = posterior_variance[2]  # beta~_1 = 0: use beta~_2, as improved-diffusion does
    return Schedule(beta, alpha, alpha_bar, alpha_bar_prev, posterior_variance, log_variance.log())


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    r"""Ho et al.'s schedule: $\beta_t$ rises linearly from ``beta_start`` at $t = 1$ to ``beta_end`` at $t = T$.

    The defaults are the DDPM paper's for $T = 1000$; for another $T$ scale both ends by $1000/T$
    (improved-diffusion's rule) to keep $\bar\alpha_T$ near zero.
    """
    if T < 2:
        raise ValueError(f"T must be at least 2, got {T}")
    if not 0 < beta_start <= beta_end <= 1:
        raise ValueError(f"need 0 < beta_start <= beta_end <= 1, got {beta_start}, {beta_end}")
    return from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    r"""Nichol & Dhariwal's schedule: $\bar\alpha_t = f(t)/f(0)$ with $f(t) = \cos^2\big(\frac{t/T + s}{1 + s}\cdot\frac\pi2\big)$.

    $\bar\alpha_t$ falls slowly at both ends, so fewer steps are spent near pure noise.
    The steps are $\beta_t = \min(1 - \bar\alpha_t/\bar\alpha_{t-1},\ \text{max\_beta})$, the cap
    avoiding $\beta_T = 1$ (the schedule's $\bar\alpha_t$ is then recomputed from the capped $\beta_t$).
    """
    if T < 2:
        raise ValueError(f"T must be at least 2, got {T}")
    if s < 0 or not 0 < max_beta <= 1:
        raise ValueError(f"need s >= 0 and 0 < max_beta <= 1, got s={s}, max_beta={max_beta}")
    steps = torch.arange(T + 1, dtype=torch.float64) / T  # (T + 1,): t/T for t = 0..T
    # $f(t) = \cos^2\big(\frac{t/T + s}{1 + s}\cdot\frac\pi2\big)$
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    # $\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1} = 1 - f(t)/f(t-1)$, capped
    beta = (1.0 - f[1:] / f[:-1]).clamp(max=max_beta)
    return from_betas(beta)


def at(values: Tensor, t: int | Tensor, x: Tensor) -> Tensor:
    r"""The schedule's entry at $t$, shaped to multiply ``x`` and in ``x``'s dtype.

    ``t`` is an int (→ a 0-d tensor) or a ``(B,)`` integer tensor (→ ``(B, 1, ..., 1)`` with ``x.dim()`` axes).
    """
    if isinstance(t, int):
        return values[t].to(x.dtype)
    return values[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))  # (B, 1, ..., 1)
