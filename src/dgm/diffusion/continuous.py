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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor

Model = Callable[[Tensor, Tensor], Tensor]


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
    schedule: LogSNRSchedule,
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
