r"""Samplers for a trained diffusion model: DDPM's ancestral sampler, DDIM with its encoder, and DPM-Solver++(2M).

Read beside {doc}`book/ddpm` and {doc}`book/ddim`. Each sampler is a frozen
dataclass, like a diffusers scheduler: it holds no weights, its ``step`` takes
the model's output at one step and returns the next state, and its ``sample``
is the short loop a reader can step through. The model is passed in; it is
called as ``model(x_t, t)`` with ``t`` a ``(B,)`` tensor of the book's steps
$1..T$, and predicts what the process's ``prediction`` says ($\varepsilon$, $x_0$ or $v$).

Everything stays on the device of ``x_T``: the noise is drawn there, the
schedule must already be there (``process.to(device)``), and the loops read
nothing back to the host. Sample from the EMA weights (``dgm.training.EMA.model``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from dgm.diffusion.process import GaussianDiffusion, Model, Variance, _check_same_shape
from dgm.diffusion.schedules import at

Spacing = Literal["trailing", "leading"]


def _steps_tensor(t: int, x: Tensor) -> Tensor:
    """The step ``t`` for every example, ``(B,)`` on ``x``'s device: what the model is called with."""
    return torch.full((len(x),), t, device=x.device, dtype=torch.long)


def _check_start(process: GaussianDiffusion, x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.dim() < 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty batch (B, D) or (B, C, H, W)")
    if x.device != process.schedule.device:
        raise ValueError(f"{name} is on {x.device} but the schedule on {process.schedule.device}; use process.to(device)")


def _check_jump(process: GaussianDiffusion, t: int, t_prev: int, x_t: Tensor, sampler: str) -> None:
    r"""Fail early, with a message, on a jump $t \to t_{\text{prev}}$ that leaves $0..T$ or does not go down."""
    process.check_t(t, x_t, low=1)
    process.check_t(t_prev, x_t)
    if t_prev >= t:
        raise ValueError(f"a {sampler} step goes down: need t_prev < t, got t={t}, t_prev={t_prev}")


def _chain_result(x: Tensor, chain: list[Tensor] | None) -> Tensor | tuple[Tensor, Tensor]:
    return x if chain is None else (x, torch.stack(chain))  # chain: (K, B, ...)


@dataclass(frozen=True)
class DDPMSampler:
    r"""Ancestral sampling, $x_T \to x_{T-1} \to \dots \to x_0$, one model call per step (Ho et al., Algorithm 2).

    ``variance`` picks $\sigma_t^2 = \tilde\beta_t$ (``"small"``) or $\beta_t$ (``"large"``); ``clip`` clamps
    the predicted $x_0$ to $[-\text{clip}, \text{clip}]$ at each step (``None``: no clamping).
    """

    process: GaussianDiffusion
    variance: Variance = "small"
    clip: float | None = None

    def __post_init__(self) -> None:
        if self.variance not in ("small", "large"):
            raise ValueError(f"variance must be 'small' (beta~_t) or 'large' (beta_t), got {self.variance!r}")

    def step(self, model_output: Tensor, t: int, x_t: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        r"""One reverse step: $x_{t-1}$ and the predicted $\hat x_0$, each ``(B, ...)``.

        ``noise`` $z \sim \mathcal N(0, I)$ of ``x_t``'s shape; unused (may be ``None``) at $t = 1$, which returns the mean.
        """
        process = self.process
        process.check_t(t, x_t, low=1)
        eps, x0 = process.predict(model_output, x_t, t, self.clip)
        # $\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\varepsilon_\theta(x_t, t)\Big)$
        # (book/ddpm.md, eq. {eq}`ddpm-posterior-mean-eps`)
        mean = process.posterior_mean_from_eps(x_t, t, eps)
        if t == 1:
            return mean, x0
        if noise is None:
            raise ValueError(f"step t={t} > 1 needs noise of shape {tuple(x_t.shape)}")
        _check_same_shape(noise, x_t, "noise", "x_t")
        # $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$ (book/ddpm.md, eq. {eq}`ddpm-sampling-step`)
        return mean + process.sigma_squared(t, x_t, self.variance).sqrt() * noise, x0

    @torch.no_grad()
    def sample(
        self, model: Model, x_T: Tensor, *, generator: torch.Generator | None = None, chain_every: int | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""$x_0$ ``(B, ...)`` from the noise ``x_T`` (draw it as ``torch.randn(...)`` on the model's device).

        With ``chain_every = k`` also returns the chain ``(K, B, ...)``: $x_T$ and every $x_t$ with $t$ a multiple of $k$, down to $x_0$.
        """
        _check_start(self.process, x_T, "x_T")
        x = x_T
        chain = [x] if chain_every else None
        for t in range(self.process.T, 0, -1):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if t > 1 else None
            x, _ = self.step(model(x, _steps_tensor(t, x)), t, x, noise)
            if chain is not None and (t - 1) % chain_every == 0:
                chain.append(x)
        return _chain_result(x, chain)


def ddim_timesteps(T: int, steps: int, spacing: Spacing = "trailing") -> list[int]:
    r"""The sub-sequence $\tau_S > \dots > \tau_1$ of $1..T$ that DDIM visits, then $0$ (the data): ``steps + 1`` ints.

    ``"trailing"`` starts at $T$: $\tau_i = \mathrm{round}(iT/S)$ (Lin et al., 2024; diffusers' ``trailing``).
    ``"leading"`` is the DDIM paper's $\tau_i = 1 + (i - 1)\lfloor T/S \rfloor$, which stops short of $T$.
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must lie in 1..T={T}, got {steps}")
    if spacing == "trailing":
        taus = [round(T - i * T / steps) for i in range(steps)]
    elif spacing == "leading":
        taus = [1 + i * (T // steps) for i in reversed(range(steps))]
    else:
        raise ValueError(f"spacing must be 'trailing' or 'leading', got {spacing!r}")
    return [*taus, 0]


@dataclass(frozen=True)
class DDIMSampler:
    r"""DDIM (Song et al., 2021): ``steps`` jumps along a sub-sequence of $1..T$, with $\sigma_t = \eta\,\cdot$ DDPM's.

    Each jump draws from the non-Markovian family $q_\sigma(x_{t-1} \mid x_t, x_0)$ (book/ddim.md, eq. {eq}`ddim-family`)
    with the model's $\hat x_0$ for $x_0$; the family keeps DDPM's marginals $q(x_t \mid x_0)$ for every $\sigma$ and
    every sub-sequence (eq. {eq}`ddim-marginals`), so the same trained model serves them all.
    $\eta = 0$ is deterministic (an ODE solver, and :meth:`encode` inverts it); $\eta = 1$ with all $T$ steps
    is DDPM's ancestral sampler with $\sigma_t^2 = \tilde\beta_t$.
    """

    process: GaussianDiffusion
    steps: int = 50
    eta: float = 0.0
    spacing: Spacing = "trailing"
    clip: float | None = None

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        ddim_timesteps(self.process.T, self.steps, self.spacing)  # fails early on bad steps or spacing

    @property
    def timesteps(self) -> list[int]:
        """The steps visited, from $\\tau_S$ down to $0$ (:func:`ddim_timesteps`)."""
        return ddim_timesteps(self.process.T, self.steps, self.spacing)

    def sigma(self, t: int, t_prev: int, x: Tensor) -> Tensor:
        r"""$\sigma_t(\eta)$ for the jump $t \to t_{\text{prev}}$ (a 0-d tensor in ``x``'s dtype)."""
        alpha_bar, alpha_bar_prev = at(self.process.schedule.alpha_bar, t, x), at(self.process.schedule.alpha_bar, t_prev, x)
        # $\sigma_t(\eta) = \eta\sqrt{\frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}}$
        # (book/ddim.md, eq. {eq}`ddim-sigma`)
        return self.eta * ((1 - alpha_bar_prev) / (1 - alpha_bar)).sqrt() * (1 - alpha_bar / alpha_bar_prev).sqrt()

    def step(self, model_output: Tensor, t: int, t_prev: int, x_t: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""One jump $x_t \to x_{t_{\text{prev}}}$ ($0 \le t_{\text{prev}} < t$): the new state and $\hat x_0$, each ``(B, ...)``.

        ``noise`` $z \sim \mathcal N(0, I)$ is needed when $\eta > 0$.
        """
        process = self.process
        _check_jump(process, t, t_prev, x_t, "DDIM")
        eps, x0 = process.predict(model_output, x_t, t, self.clip)
        alpha_bar_prev = at(process.schedule.alpha_bar, t_prev, x_t)
        sigma = self.sigma(t, t_prev, x_t)
        # $x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}\,\hat\varepsilon + \sigma_t z$
        # (book/ddim.md, eq. {eq}`ddim-update`)
        x_prev = alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev - sigma**2).sqrt() * eps
        if self.eta > 0:
            if noise is None:
                raise ValueError(f"eta={self.eta} > 0 needs noise of shape {tuple(x_t.shape)}")
            _check_same_shape(noise, x_t, "noise", "x_t")
            x_prev = x_prev + sigma * noise
        return x_prev, x0

    @torch.no_grad()
    def sample(
        self, model: Model, x_T: Tensor, *, generator: torch.Generator | None = None, chain_every: int | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""$x_0$ ``(B, ...)`` from ``x_T`` in ``steps`` model calls; with ``chain_every = k``, also every $k$-th state ``(K, B, ...)``."""
        _check_start(self.process, x_T, "x_T")
        x = x_T
        chain = [x] if chain_every else None
        timesteps = self.timesteps
        for index, (t, t_prev) in enumerate(itertools.pairwise(timesteps), start=1):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if self.eta > 0 else None
            x, _ = self.step(model(x, _steps_tensor(t, x)), t, t_prev, x, noise)
            if chain is not None and (index % chain_every == 0 or t_prev == 0):
                chain.append(x)
        return _chain_result(x, chain)

    @torch.no_grad()
    def encode(self, model: Model, x0: Tensor) -> Tensor:
        r"""DDIM inversion: the $x_T$ ``(B, ...)`` that the $\eta = 0$ sampler maps back to (nearly) ``x0``.

        The same update as :meth:`step` with $\sigma = 0$, run upwards $0 \to \tau_1 \to \dots \to \tau_S$:
        an Euler step of the ODE (book/ddim.md, eq. {eq}`ddim-ode`) from each state, with the model asked at the
        state's own step (at $t = 1$ for the data, the nearest step it was trained on). The error of
        encode → decode shrinks as ``steps`` grows.
        """
        if self.eta != 0:
            raise ValueError(f"encoding inverts the deterministic sampler: use eta=0, got eta={self.eta}")
        _check_start(self.process, x0, "x0")
        alpha_bar = self.process.schedule.alpha_bar
        x = x0
        upwards = self.timesteps[::-1]  # 0, tau_1, ..., tau_S
        for t, t_next in itertools.pairwise(upwards):
            eps, x0_hat = self.process.predict(model(x, _steps_tensor(max(t, 1), x)), x, max(t, 1), self.clip)
            if t == 0:
                x0_hat = x  # at t = 0 the state is the data itself
            # $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'}}\,\hat\varepsilon$: the $\eta = 0$ update run upwards,
            # an Euler step of the ODE (book/ddim.md, eq. {eq}`ddim-ode`)
            x = at(alpha_bar, t_next, x).sqrt() * x0_hat + (1 - at(alpha_bar, t_next, x)).sqrt() * eps
        return x


@dataclass(frozen=True)
class DPMSolverSampler:
    r"""DPM-Solver++(2M) (Lu et al., 2022, "DPM-Solver++", Algorithm 2): a second-order multistep solver of DDIM's ODE.

    The deterministic sampler follows the probability-flow ODE (book/ddim.md, eq. {eq}`ddim-ode`); DDIM takes
    Euler steps of it. DPM-Solver++ writes the ODE in the half log-SNR
    $\lambda_t = \log\big(\sqrt{\bar\alpha_t}/\sqrt{1 - \bar\alpha_t}\big)$ and in the model's prediction of the
    data $\hat x_0$, solves the linear part exactly, and approximates $\hat x_0$ along a step by a line through
    the current prediction and the previous step's (a multistep method: still one model call per step).
    Its first step has no previous prediction and is first-order, which is exactly DDIM's $\eta = 0$ step; so is its
    last, to $t = 0$, where $\lambda = \infty$ and the state becomes the prediction $\hat x_0$ (diffusers'
    ``DPMSolverMultistepScheduler`` with ``algorithm_type="dpmsolver++"``, ``solver_order=2``,
    ``final_sigmas_type="zero"`` does the same). ``steps`` and ``spacing`` pick the sub-sequence as for DDIM.
    """

    process: GaussianDiffusion
    steps: int = 20
    spacing: Spacing = "trailing"
    clip: float | None = None

    def __post_init__(self) -> None:
        ddim_timesteps(self.process.T, self.steps, self.spacing)  # fails early on bad steps or spacing

    @property
    def timesteps(self) -> list[int]:
        r"""The steps visited, from $\tau_S$ down to $0$ (:func:`ddim_timesteps`)."""
        return ddim_timesteps(self.process.T, self.steps, self.spacing)

    def log_snr(self, t: int, x: Tensor) -> Tensor:
        r"""$\lambda_t = \log\sqrt{\bar\alpha_t} - \log\sqrt{1 - \bar\alpha_t}$, a 0-d tensor in ``x``'s dtype ($+\infty$ at $t = 0$)."""
        alpha_bar = at(self.process.schedule.alpha_bar, t, x)
        # $\lambda_t = \tfrac12\log\bar\alpha_t - \tfrac12\log(1 - \bar\alpha_t)$ (half the log signal-to-noise ratio)
        return 0.5 * (alpha_bar.log() - (1 - alpha_bar).log())

    def step(
        self, model_output: Tensor, t: int, t_prev: int, x_t: Tensor, last: tuple[Tensor, int] | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""One step $x_t \to x_{t_{\text{prev}}}$: the new state and this step's $\hat x_0$, each ``(B, ...)``.

        ``last`` is the previous step's ``(x0_hat, t_last)`` with $t_{\text{last}} > t$ (``None`` at the first
        step): with it the step is second-order, without it (and always into $t_{\text{prev}} = 0$) first-order.
        """
        process = self.process
        _check_jump(process, t, t_prev, x_t, "DPM-Solver")
        _, x0 = process.predict(model_output, x_t, t, self.clip)
        alpha_bar, alpha_bar_prev = at(process.schedule.alpha_bar, t, x_t), at(process.schedule.alpha_bar, t_prev, x_t)
        # $h = \lambda_{t_{\text{prev}}} - \lambda_t > 0$, the step in half log-SNR
        h = self.log_snr(t_prev, x_t) - self.log_snr(t, x_t)
        data_term = x0  # first order: $D = \hat x_0(x_t, t)$
        if last is not None and t_prev > 0:
            x0_last, t_last = last
            _check_same_shape(x0_last, x_t, "last's x0_hat", "x_t")
            if not t < t_last <= process.T:
                raise ValueError(
                    f"last must be the previous step's (x0_hat, t_last) with t={t} < t_last <= {process.T}, got t_last={t_last}"
                )
            # $r = h_{\text{last}}/h$, the ratio of the previous step to this one
            r = (self.log_snr(t, x_t) - self.log_snr(t_last, x_t)) / h
            # $D = \big(1 + \tfrac{1}{2r}\big)\hat x_0(x_t, t) - \tfrac{1}{2r}\hat x_0(x_{t_{\text{last}}}, t_{\text{last}})$
            # (DPM-Solver++, Algorithm 2: the line through the last two predictions, at the step's midpoint)
            data_term = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_last
        # $x_{t_{\text{prev}}} = \frac{\sqrt{1 - \bar\alpha_{t_{\text{prev}}}}}{\sqrt{1 - \bar\alpha_t}}x_t
        #   - \sqrt{\bar\alpha_{t_{\text{prev}}}}\,(e^{-h} - 1)\,D$ (DPM-Solver++: the linear part solved exactly, $\hat x_0$ held at $D$ over the step)
        x_prev = ((1 - alpha_bar_prev) / (1 - alpha_bar)).sqrt() * x_t - alpha_bar_prev.sqrt() * torch.expm1(-h) * data_term
        return x_prev, x0

    @torch.no_grad()
    def sample(self, model: Model, x_T: Tensor, *, chain_every: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        r"""$x_0$ ``(B, ...)`` from ``x_T`` in ``steps`` model calls; with ``chain_every = k``, also every $k$-th state ``(K, B, ...)``.

        Deterministic: the same ``x_T`` gives the same samples.
        """
        _check_start(self.process, x_T, "x_T")
        x, last = x_T, None
        chain = [x] if chain_every else None
        for index, (t, t_prev) in enumerate(itertools.pairwise(self.timesteps), start=1):
            x, x0 = self.step(model(x, _steps_tensor(t, x)), t, t_prev, x, last)
            last = (x0, t)  # the multistep memory: this step's prediction of the data
            if chain is not None and (index % chain_every == 0 or t_prev == 0):
                chain.append(x)
        return _chain_result(x, chain)
