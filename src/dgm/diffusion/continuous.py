r"""Variational diffusion in continuous time: a variance-preserving process set by its log-SNR, and the loss $\mathcal L_\infty$.

Read beside {doc}`book/vdm` (Kingma et al., 2021). Time $t \in [0, 1]$ runs
from data to noise; the schedule is the log signal-to-noise ratio
$\lambda(t) = \log \mathrm{SNR}(t)$, falling from ``log_snr_max`` at $t = 0$
to ``log_snr_min`` at $t = 1$. The process is variance preserving,
$z_t = a_t x + \sigma_t \varepsilon$ with $a_t^2 = \mathrm{sigmoid}(\lambda)$
and $\sigma_t^2 = \mathrm{sigmoid}(-\lambda)$, so $a_t^2 + \sigma_t^2 = 1$ and
$a_t^2/\sigma_t^2 = e^\lambda$.

The loss is the diffusion part of the negative ELBO as $T \to \infty$, one
Monte Carlo draw per example: $t \sim U(0, 1)$, $\varepsilon \sim \mathcal N(0, I)$,
and $-\tfrac12 \mathrm{SNR}'(t) \lVert x - \hat x_\theta(z_t; \lambda)\rVert^2$
(x-form) or $\tfrac12 \gamma'(t) \lVert \varepsilon - \hat\varepsilon_\theta(z_t; \lambda)\rVert^2$
with $\gamma = -\lambda$ (ε-form). The model is passed in and called as
``model(z_t, log_snr)``: fed the log-SNR rather than $t$, a trained model
serves every schedule with the same ends.

A DDPM network trained at the integer steps $k = 1, \dots, T$ of a
:class:`~dgm.diffusion.schedules.Schedule` is such a model too: its input
$x_k = \sqrt{\bar\alpha_k}\,x_0 + \sqrt{1 - \bar\alpha_k}\,\varepsilon$ *is*
$z_t$ at the log-SNR $\lambda_k = \log(\bar\alpha_k/(1 - \bar\alpha_k))$, so
:func:`step_at_log_snr` turns a log-SNR in the trained range into a fractional
step (interpolating $\lambda_k$ linearly between steps) and
:func:`ddpm_model` feeds the network that step. :meth:`TabulatedLogSNR.from_ddpm` is the
DDPM schedule itself in continuous time, the fractional step $1 + (T - 1)t$, and
:meth:`TabulatedLogSNR.least_variance` the schedule of least variance for a measured error curve.
:func:`estimate` summarises the draws of the loss (mean, standard error,
variance of one draw, bits per dimension).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import torch
from torch import Tensor

from dgm.diffusion.schedules import Schedule

Model = Callable[[Tensor, Tensor], Tensor]


class ContinuousSchedule(Protocol):
    r"""What :func:`continuous_loss` needs of a schedule on $t \in [0, 1]$: $\lambda(t)$, $\mathrm{SNR}'(t)$ and $\gamma'(t)$, each the shape of ``t``."""

    def log_snr(self, t: Tensor) -> Tensor: ...

    def snr_derivative(self, t: Tensor) -> Tensor: ...

    def gamma_derivative(self, t: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class LogSNRSchedule:
    r"""$\lambda(t) = \log\mathrm{SNR}(t)$ from ``log_snr_max`` ($t = 0$) down to ``log_snr_min`` ($t = 1$).

    ``"linear"``: $\lambda(t) = \lambda_{\max} - (\lambda_{\max} - \lambda_{\min})\,t$.
    ``"cosine"``: $\mathrm{SNR}(t) = 1/\tan^2(\phi_0 + (\phi_1 - \phi_0)t)$ with
    $\phi_k = \arctan e^{-\lambda_k/2}$ (Nichol & Dhariwal's schedule, moved to the same ends).
    """

    kind: Literal["linear", "cosine"] = "linear"
    log_snr_max: float = 10.0
    log_snr_min: float = -10.0

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "cosine"):
            raise ValueError(f"kind must be 'linear' or 'cosine', got {self.kind!r}")
        if not self.log_snr_max > self.log_snr_min:
            raise ValueError(f"the SNR must fall: log_snr_max ({self.log_snr_max}) must exceed log_snr_min ({self.log_snr_min})")

    def _angles(self) -> tuple[float, float]:
        return math.atan(math.exp(-self.log_snr_max / 2)), math.atan(math.exp(-self.log_snr_min / 2))

    def log_snr(self, t: Tensor) -> Tensor:
        r"""$\lambda(t)$, the shape of ``t``."""
        if self.kind == "linear":
            # $\lambda(t) = \lambda_{\max} - (\lambda_{\max} - \lambda_{\min})\,t$
            return self.log_snr_max - (self.log_snr_max - self.log_snr_min) * t
        phi_0, phi_1 = self._angles()
        # $\lambda(t) = -2 \log\tan(\phi_0 + (\phi_1 - \phi_0)t)$
        return -2.0 * torch.log(torch.tan(phi_0 + (phi_1 - phi_0) * t))

    def snr_derivative(self, t: Tensor) -> Tensor:
        r"""$\mathrm{SNR}'(t) < 0$, the shape of ``t``."""
        if self.kind == "linear":
            # $\mathrm{SNR}'(t) = -(\lambda_{\max} - \lambda_{\min})\,e^{\lambda(t)}$
            return -(self.log_snr_max - self.log_snr_min) * torch.exp(self.log_snr(t))
        phi_0, phi_1 = self._angles()
        angle = phi_0 + (phi_1 - phi_0) * t
        # $\frac{d}{dt}\tan^{-2}\phi(t) = -2(\phi_1 - \phi_0)\cos\phi/\sin^3\phi$
        return -2.0 * (phi_1 - phi_0) * torch.cos(angle) / torch.sin(angle) ** 3

    def gamma_derivative(self, t: Tensor) -> Tensor:
        r"""$\gamma'(t) = -\mathrm{SNR}'(t)/\mathrm{SNR}(t) > 0$, the weight of the ε-form (book/vdm.md, eq. {eq}`vdm-eps-form`)."""
        return -self.snr_derivative(t) / torch.exp(self.log_snr(t))


def signal_and_noise(log_snr: Tensor) -> tuple[Tensor, Tensor]:
    r"""$(a_t, \sigma_t)$ of the variance-preserving process at log-SNR $\lambda$ (book/vdm.md, eq. {eq}`vdm-vp-by-snr`)."""
    # $a_t^2 = \mathrm{SNR}/(1 + \mathrm{SNR}) = \mathrm{sigmoid}(\lambda)$, $\sigma_t^2 = 1/(1 + \mathrm{SNR}) = \mathrm{sigmoid}(-\lambda)$
    return torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()


def _per_example(t: Tensor, x: Tensor) -> Tensor:
    return t.reshape(-1, *([1] * (x.dim() - 1)))  # (B,) → (B, 1, ...) to broadcast over the data


def q_sample(x: Tensor, log_snr: Tensor, noise: Tensor) -> Tensor:
    r"""$z_t = a_t x + \sigma_t \varepsilon$ for ``x`` and ``noise`` ``(B, ...)`` and ``log_snr`` ``(B,)``."""
    if noise.shape != x.shape or log_snr.shape != (len(x),):
        raise ValueError(f"expected noise {tuple(x.shape)} and log_snr ({len(x)},), got {tuple(noise.shape)} and {tuple(log_snr.shape)}")
    a, sigma = signal_and_noise(_per_example(log_snr, x))
    return a * x + sigma * noise


def continuous_loss(
    model: Model,
    x: Tensor,
    schedule: ContinuousSchedule,
    prediction: Literal["x", "epsilon"] = "epsilon",
    t: Tensor | None = None,
    noise: Tensor | None = None,
) -> dict[str, Tensor]:
    r"""One Monte Carlo draw per example of $\mathcal L_\infty$ (book/vdm.md, eq. {eq}`vdm-limit` and eq. {eq}`vdm-eps-form`).

    ``model(z_t, log_snr)`` predicts $x$ (``prediction="x"``) or $\varepsilon$
    (``"epsilon"``); ``t`` ``(B,)`` is drawn from $U(0, 1)$ and ``noise`` from
    $\mathcal N(0, I)$ unless given.

    Returns:
        ``"loss"``: the mean over the batch of ``"per_example"`` (nats per example, summed over dimensions);
        ``"per_example"`` ``(B,)``; ``"t"`` ``(B,)``.
    """
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (B, D) or (B, C, H, W), got {tuple(x.shape)}")
    if prediction not in ("x", "epsilon"):
        raise ValueError(f"prediction must be 'x' or 'epsilon', got {prediction!r}")
    t = torch.rand(len(x), device=x.device, dtype=x.dtype) if t is None else t
    noise = torch.randn_like(x) if noise is None else noise
    log_snr = schedule.log_snr(t)
    z_t = q_sample(x, log_snr, noise)
    output = model(z_t, log_snr)
    if output.shape != x.shape:
        raise ValueError(f"the model's output has shape {tuple(output.shape)}, expected {tuple(x.shape)}")
    if prediction == "x":
        # $-\tfrac12 \mathrm{SNR}'(t)\,\lVert x - \hat x_\theta(z_t; \lambda)\rVert^2$ (book/vdm.md, eq. {eq}`vdm-limit`)
        per_example = -0.5 * schedule.snr_derivative(t) * (x - output).pow(2).reshape(len(x), -1).sum(1)
    else:
        # $\tfrac12 \gamma'(t)\,\lVert \varepsilon - \hat\varepsilon_\theta(z_t; \lambda)\rVert^2$ (book/vdm.md, eq. {eq}`vdm-eps-form`)
        per_example = 0.5 * schedule.gamma_derivative(t) * (noise - output).pow(2).reshape(len(x), -1).sum(1)
    return {"loss": per_example.mean(), "per_example": per_example, "t": t}


# --- a DDPM network as a model of the log-SNR ----------------------------------------------------------


def ddpm_log_snr(schedule: Schedule) -> Tensor:
    r"""$\lambda_k = \log\frac{\bar\alpha_k}{1 - \bar\alpha_k}$ for the steps $k = 1, \dots, T$: ``(T,)`` float64, falling.

    The DDPM marginal $q(x_k \mid x_0) = \mathcal N(\sqrt{\bar\alpha_k}x_0, (1 - \bar\alpha_k)I)$ is the
    variance-preserving $q(z_t \mid x)$ with $a_t^2 = \bar\alpha_k$ (book/vdm.md, eq. {eq}`vdm-vp-by-snr`).
    """
    alpha_bar = schedule.alpha_bar[1:].to(torch.float64)  # (T,): entry 0 is the data, SNR = ∞
    # $\lambda_k = \log\bar\alpha_k - \log(1 - \bar\alpha_k)$
    table = alpha_bar.log() - torch.log1p(-alpha_bar)
    if not bool((table[1:] < table[:-1]).all()):
        raise ValueError("the schedule's SNR must fall from step to step (every beta_t > 0 and alpha_bar_t < 1)")
    return table


def _in_range(values: Tensor, low: float, high: float, what: str) -> None:
    slack = 1e-6 * max(1.0, abs(low), abs(high))  # float32 rounding at the ends
    if values.device.type == "cpu" and values.numel() and (float(values.min()) < low - slack or float(values.max()) > high + slack):
        raise ValueError(f"{what} must lie in [{low:.6g}, {high:.6g}], got values in [{float(values.min()):.6g}, {float(values.max()):.6g}]")


def step_at_log_snr(log_snr: Tensor, schedule: Schedule) -> Tensor:
    r"""The fractional DDPM step $k \in [1, T]$ at which the schedule's log-SNR is ``log_snr``; the shape of ``log_snr``, float64.

    Between two steps the log-SNR is interpolated linearly, so an integer step's own
    $\lambda_k$ gives back $k$. A log-SNR outside $[\lambda_T, \lambda_1]$, a noise level the
    network never saw, is a ``ValueError``.
    """
    table = ddpm_log_snr(schedule).to(log_snr.device)
    T = len(table)
    _in_range(log_snr, float(table[-1]), float(table[0]), "log_snr (the trained range, lambda_T to lambda_1)")
    rising = table.flip(0)  # (T,) increasing: rising[j] = λ_{T−j}
    value = log_snr.to(torch.float64).clamp(float(rising[0]), float(rising[-1]))
    j = torch.searchsorted(rising, value.contiguous()).clamp(1, T - 1)  # rising[j − 1] <= λ <= rising[j]
    low, high = rising[j - 1], rising[j]
    # λ between λ_{T−j+1} (= low) and λ_{T−j} (= high): the step falls from T − j + 1 to T − j
    return (T - j + 1) - (value - low) / (high - low)


def ddpm_model(eps_model: Callable[[Tensor, Tensor], Tensor], schedule: Schedule) -> Model:
    r"""``model(z_t, log_snr)`` from a DDPM network ``eps_model(x_t, k)`` trained at the steps of ``schedule``.

    The network is fed the fractional step :func:`step_at_log_snr` (in ``z_t``'s dtype), so it
    serves every continuous schedule whose log-SNR stays in the trained range $[\lambda_T, \lambda_1]$.
    """

    def model(z_t: Tensor, log_snr: Tensor) -> Tensor:
        return eps_model(z_t, step_at_log_snr(log_snr, schedule).to(z_t.dtype))

    return model


@dataclass(frozen=True, eq=False)
class TabulatedLogSNR:
    r"""A schedule given by its log-SNR at the evenly spaced times $t_j = j/(n - 1)$, interpolated linearly between them.

    ``table`` ``(n,)`` float64 holds $\lambda(t_0) > \lambda(t_1) > \dots > \lambda(t_{n-1})$, so
    $\lambda'(t) = (n - 1)(\lambda_{j+1} - \lambda_j)$ is constant between grid times. Two ways to build one:

    * :meth:`from_ddpm` — a DDPM schedule in continuous time: $t$ is the fractional step
      $k = 1 + (T - 1)t$ and the table holds the steps' $\lambda_k$ (:func:`ddpm_log_snr`), so with
      :func:`ddpm_model` the network sees exactly the steps it was trained at, $t = (k - 1)/(T - 1)$;
    * :meth:`least_variance` — the schedule whose one-draw mean $\tfrac12\gamma'(t)\, e(\lambda(t))$ is the
      same at every $t$, for a given error curve $e(\lambda)$ (book/vdm.md, exercise {ref}`ex-vdm-best-schedule`).
    """

    table: Tensor  # (n,) float64, falling

    def __post_init__(self) -> None:
        if self.table.dim() != 1 or len(self.table) < 2 or not bool((self.table[1:] < self.table[:-1]).all()):
            raise ValueError(f"table must be a falling 1-D tensor of at least 2 log-SNRs, got shape {tuple(self.table.shape)}")

    @classmethod
    def from_ddpm(cls, schedule: Schedule) -> TabulatedLogSNR:
        """DDPM's schedule in continuous time: the steps $k = 1, \\dots, T$ at $t = (k - 1)/(T - 1)$."""
        return cls(ddpm_log_snr(schedule).cpu())

    @classmethod
    def least_variance(cls, log_snr: Tensor, error: Tensor, points: int = 1001) -> TabulatedLogSNR:
        r"""The schedule along which $\tfrac12\gamma'(t)\, e(\lambda(t))$ is constant, from the error curve $e$ at ``log_snr``.

        ``log_snr`` ``(K,)`` rises from $\lambda_{\min}$ to $\lambda_{\max}$ (the schedule's ends); ``error``
        ``(K,)`` is the mean $\lVert\epsilon - \hat\epsilon_\theta\rVert^2$ at those levels, positive. With
        $\gamma' = -\lambda'$, a constant $\tfrac12\gamma' e$ means $dt \propto e(\lambda)\, d\lambda$: the time spent
        at a noise level is proportional to the error there, $t(\lambda) = \int_\lambda^{\lambda_{\max}} e \big/ \int_{\lambda_{\min}}^{\lambda_{\max}} e$
        (the integrals by the trapezoid rule over ``log_snr``, $e$ linear between its points). Of all schedules with these ends
        it minimises the second moment $\int_0^1 (\tfrac12\gamma' e)^2 dt$ of the mean of one draw (Cauchy–Schwarz).
        Returns the table at ``points`` evenly spaced times.
        """
        log_snr, error = log_snr.detach().to(torch.float64).cpu(), error.detach().to(torch.float64).cpu()
        if log_snr.dim() != 1 or error.shape != log_snr.shape or len(log_snr) < 2:
            raise ValueError(f"log_snr and error must be 1-D of the same length >= 2, got {tuple(log_snr.shape)} and {tuple(error.shape)}")
        if not bool((log_snr[1:] > log_snr[:-1]).all()):
            raise ValueError("log_snr must rise (from the schedule's lambda_min to its lambda_max)")
        if not bool((error > 0).all()):
            raise ValueError("the error curve must be positive at every log-SNR")
        if points < 2:
            raise ValueError(f"points must be at least 2, got {points}")
        # $\int_{\lambda_{\min}}^{\lambda} e$ at each grid point, by the trapezoid rule
        pieces = (error[1:] + error[:-1]) / 2 * (log_snr[1:] - log_snr[:-1])  # (K − 1,)
        below = torch.cat([pieces.new_zeros(1), pieces.cumsum(0)])  # (K,), rising from 0
        share = below / below[-1]  # (K,): $t(\lambda) = 1 - \text{share}(\lambda)$
        # invert at t_j = j/(points − 1): between grid points e is linear, so ∫e is quadratic in λ
        wanted = 1 - torch.linspace(0, 1, points, dtype=torch.float64)  # (points,): the share of ∫e below λ(t_j)
        segment = torch.searchsorted(share, wanted.clamp(0, 1)).clamp(1, len(share) - 1)  # share[s − 1] <= wanted <= share[s]
        lo, width = log_snr[segment - 1], log_snr[segment] - log_snr[segment - 1]
        e_lo, e_hi = error[segment - 1], error[segment]
        # solve ∫_lo^{lo + u·width} e = need for u ∈ [0, 1] with e linear: ½(e_hi − e_lo) width u² + e_lo width u = need
        need = (wanted - share[segment - 1]) * below[-1]
        a, b = 0.5 * (e_hi - e_lo) * width, e_lo * width
        linear = need / b
        u = torch.where(a.abs() > 1e-12 * b, (-b + (b * b + 4 * a * need).clamp(min=0).sqrt()) / (2 * a), linear)
        table = lo + u.clamp(0, 1) * width
        table[0], table[-1] = log_snr[-1], log_snr[0]  # the ends exactly
        return cls(table)

    @property
    def log_snr_max(self) -> float:
        return float(self.table[0])

    @property
    def log_snr_min(self) -> float:
        return float(self.table[-1])

    def _segment(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _in_range(t, 0.0, 1.0, "t")
        table = self.table.to(t.device)
        position = (t.to(torch.float64) * (len(table) - 1)).clamp(0, len(table) - 1)  # k − 1, fractional
        k = position.floor().long().clamp(max=len(table) - 2)  # the segment [k, k + 1] (0-based)
        return position - k, table[k], table[k + 1]

    def log_snr(self, t: Tensor) -> Tensor:
        r"""$\lambda(t)$, the shape and dtype of ``t``."""
        fraction, low, high = self._segment(t)
        # $\lambda(t) = \lambda_k + (\text{position} - k)(\lambda_{k+1} - \lambda_k)$
        return (low + fraction * (high - low)).to(t.dtype)

    def log_snr_derivative(self, t: Tensor) -> Tensor:
        r"""$\lambda'(t) = (T - 1)(\lambda_{k+1} - \lambda_k) < 0$ on the segment holding $t$."""
        _, low, high = self._segment(t)
        return ((len(self.table) - 1) * (high - low)).to(t.dtype)

    def snr_derivative(self, t: Tensor) -> Tensor:
        r"""$\mathrm{SNR}'(t) = \lambda'(t)\, e^{\lambda(t)}$."""
        return self.log_snr_derivative(t) * self.log_snr(t).exp()

    def gamma_derivative(self, t: Tensor) -> Tensor:
        r"""$\gamma'(t) = -\lambda'(t)$ (book/vdm.md, eq. {eq}`vdm-eps-form`)."""
        return -self.log_snr_derivative(t)


class Estimate(NamedTuple):
    r"""A Monte Carlo estimate of $\mathcal L_\infty$ from independent draws, in nats per example.

    ``mean``; ``standard_error`` $= \text{std}/\sqrt n$; ``variance`` of one draw (the sample variance);
    ``bits_per_dim`` the mean in bits per dimension, ``mean / (D log 2)``; ``n`` the number of draws.
    """

    mean: float
    standard_error: float
    variance: float
    bits_per_dim: float
    n: int


def estimate(draws: Tensor, dims: int) -> Estimate:
    """Summarise ``draws`` ``(n,)`` (e.g. :func:`continuous_loss`'s ``"per_example"``) of a loss over ``dims`` dimensions."""
    if draws.dim() != 1 or len(draws) < 2:
        raise ValueError(f"draws must be a 1-D tensor of at least 2 draws, got shape {tuple(draws.shape)}")
    if dims < 1:
        raise ValueError(f"dims must be positive, got {dims}")
    draws = draws.detach().to(torch.float64)
    mean, variance = draws.mean().item(), draws.var().item()
    return Estimate(mean, math.sqrt(variance / len(draws)), variance, mean / (dims * math.log(2)), len(draws))
