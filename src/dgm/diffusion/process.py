r"""The Gaussian diffusion process of DDPM: noising, the posterior, the loss and the ELBO's terms.

Read beside {doc}`book/ddpm`. :class:`GaussianDiffusion` is *not* an
``nn.Module``: it owns a weightless :class:`~dgm.diffusion.schedules.Schedule`
and nothing else, and the network is passed in (``loss(model, x0)``), as in
openai/improved-diffusion. A model is any callable ``model(x_t, t)`` with
``x_t (B, ...)`` and ``t (B,)`` integer steps in $1..T$, returning ``(B, ...)``:
a prediction of the noise $\varepsilon$, of $x_0$ or of $v$, as the process's
``prediction`` says. The samplers are in :mod:`dgm.diffusion.samplers`.

Shapes: ``x0``, ``x_t``, ``noise`` are ``(B, ...)`` (points ``(B, D)`` or images
``(B, C, H, W)``); ``t`` is an int or a ``(B,)`` integer tensor in the book's
indexing (:mod:`~dgm.diffusion.schedules`). Sums "per example" run over every axis but the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from dgm.diffusion.schedules import Schedule, at
from dgm.distributions import gaussian_kl_between

Model = Callable[[Tensor, Tensor], Tensor]
Prediction = Literal["epsilon", "x0", "v"]
Variance = Literal["small", "large"]


def per_example_sum(values: Tensor) -> Tensor:
    """``(B, ...) → (B,)``: the sum over every axis but the first."""
    return values.reshape(len(values), -1).sum(1)


class ElboTerms(NamedTuple):
    r"""The terms of the negative ELBO of each example, in nats (book/ddpm.md).

    ``prior`` $L_T$ ``(B,)``; ``timesteps`` ``(K,)`` the steps evaluated (all $1..T$, or $1$ and a random
    subset); ``terms`` ``(K, B)``, row $k$ holding $L_{t_k - 1}$ (the decoder's $L_0$ for $t_k = 1$, the KL
    of step $t_k$ otherwise); ``total`` ``(B,)`` the bound $L_T + \sum_t L_{t-1}$ (or its unbiased estimate);
    ``bits_per_dim`` ``(B,)`` = total $/(D \log 2)$ — a bound on $-\log_2 P(x_0)/D$ of the 256-level image.
    """

    prior: Tensor
    timesteps: Tensor
    terms: Tensor
    total: Tensor
    bits_per_dim: Tensor


@dataclass(frozen=True)
class GaussianDiffusion:
    """The forward process of a schedule, and everything the training and the samplers derive from it."""

    schedule: Schedule
    prediction: Prediction = "epsilon"

    def __post_init__(self) -> None:
        if self.prediction not in ("epsilon", "x0", "v"):
            raise ValueError(f"prediction must be 'epsilon', 'x0' or 'v', got {self.prediction!r}")

    @property
    def T(self) -> int:
        return self.schedule.T

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> GaussianDiffusion:
        """The same process with its schedule on ``device`` (the data's)."""
        return replace(self, schedule=self.schedule.to(device, dtype))

    def check_t(self, t: int | Tensor, x: Tensor, low: int = 0) -> None:
        """Fail early, with a message, on a step outside ``low..T`` or a ``t`` that does not match the batch ``x``.

        On an accelerator the range of a tensor ``t`` is not read back (that would wait for the device).
        """
        if isinstance(t, bool) or not isinstance(t, int | Tensor):
            raise TypeError(f"t must be an int or a (B,) integer tensor, got {type(t).__name__}")
        if isinstance(t, int):
            if not low <= t <= self.T:
                raise ValueError(f"t must lie in {low}..{self.T} (the book's steps), got {t}")
            return
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.shape != (len(x),):
            raise ValueError(f"t must be a ({len(x)},) integer tensor matching the batch, got {t.dtype} {tuple(t.shape)}")
        if t.device != self.schedule.device:
            raise ValueError(f"t is on {t.device} but the schedule is on {self.schedule.device}; use process.to(device)")
        if t.device.type == "cpu" and len(t) and not (low <= int(t.min()) and int(t.max()) <= self.T):
            raise ValueError(f"t must lie in {low}..{self.T} (the book's steps), got values in {int(t.min())}..{int(t.max())}")

    # --- the forward process -------------------------------------------------------------------------

    def q_mean_variance(self, x0: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean ``(B, ...)`` and variance (broadcastable) of $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}x_0, (1 - \bar\alpha_t)I)$."""
        self.check_t(t, x0)
        alpha_bar = at(self.schedule.alpha_bar, t, x0)
        return alpha_bar.sqrt() * x0, 1.0 - alpha_bar

    def q_sample(self, x0: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        r"""A draw of $x_t \sim q(x_t \mid x_0)$ made from ``noise`` $\varepsilon \sim \mathcal N(0, I)$, ``(B, ...)``."""
        _check_same_shape(noise, x0, "noise", "x0")
        self.check_t(t, x0)
        alpha_bar = at(self.schedule.alpha_bar, t, x0)
        # $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$ (book/ddpm.md, eq. {eq}`ddpm-marginal`)
        return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise

    def posterior_mean_variance(self, x0: Tensor, x_t: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        r"""$q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)$: mean ``(B, ...)`` and variance (broadcastable)."""
        _check_same_shape(x_t, x0, "x_t", "x0")
        self.check_t(t, x0, low=1)
        s = self.schedule
        beta, alpha_bar, alpha_bar_prev = at(s.beta, t, x0), at(s.alpha_bar, t, x0), at(s.alpha_bar_prev, t, x0)
        # $\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1 - \bar\alpha_t}x_0
        #   + \frac{\sqrt{\alpha_t}(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}x_t$ (book/ddpm.md, eq. {eq}`ddpm-posterior`)
        mean = (alpha_bar_prev.sqrt() * beta * x0 + at(s.alpha, t, x0).sqrt() * (1.0 - alpha_bar_prev) * x_t) / (1.0 - alpha_bar)
        return mean, at(s.posterior_variance, t, x0)

    def posterior_mean_from_eps(self, x_t: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        r"""$\tilde\mu_t$ written in the noise: $\frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\varepsilon\big)$, ``(B, ...)``."""
        _check_same_shape(eps, x_t, "eps", "x_t")
        self.check_t(t, x_t, low=1)
        s = self.schedule
        # $\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\varepsilon\Big)$
        # (book/ddpm.md, eq. {eq}`ddpm-posterior-mean-eps`)
        return (x_t - at(s.beta, t, x_t) / (1.0 - at(s.alpha_bar, t, x_t)).sqrt() * eps) / at(s.alpha, t, x_t).sqrt()

    # --- the three parameterisations: epsilon, x0 and v -------------------------------------------------

    def x0_from_eps(self, x_t: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        r"""$x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ (the marginal solved for $x_0$)."""
        alpha_bar = at(self.schedule.alpha_bar, t, x_t)
        # $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ (book/ddpm.md, eq. {eq}`ddpm-marginal`, solved for $x_0$)
        return (x_t - (1.0 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()

    def eps_from_x0(self, x_t: Tensor, t: int | Tensor, x0: Tensor) -> Tensor:
        r"""$\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0)/\sqrt{1 - \bar\alpha_t}$ (the marginal solved for $\varepsilon$)."""
        alpha_bar = at(self.schedule.alpha_bar, t, x_t)
        # $\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0)/\sqrt{1 - \bar\alpha_t}$ (book/ddpm.md, eq. {eq}`ddpm-marginal`, solved for $\varepsilon$)
        return (x_t - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()

    def v_target(self, x0: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        r"""The velocity $v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0$ (Salimans & Ho, 2022)."""
        alpha_bar = at(self.schedule.alpha_bar, t, x0)
        # $v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0$
        return alpha_bar.sqrt() * eps - (1.0 - alpha_bar).sqrt() * x0

    def x0_eps_from_v(self, x_t: Tensor, t: int | Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        r"""$x_0 = \sqrt{\bar\alpha_t}x_t - \sqrt{1 - \bar\alpha_t}v$ and $\varepsilon = \sqrt{1 - \bar\alpha_t}x_t + \sqrt{\bar\alpha_t}v$."""
        alpha_bar = at(self.schedule.alpha_bar, t, x_t)
        # $x_0 = \sqrt{\bar\alpha_t}x_t - \sqrt{1 - \bar\alpha_t}v$, $\varepsilon = \sqrt{1 - \bar\alpha_t}x_t + \sqrt{\bar\alpha_t}v$
        return alpha_bar.sqrt() * x_t - (1.0 - alpha_bar).sqrt() * v, (1.0 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * v

    def predict(self, model_output: Tensor, x_t: Tensor, t: int | Tensor, clip: float | None = None) -> tuple[Tensor, Tensor]:
        r"""The model's $(\hat\varepsilon, \hat x_0)$, whichever of $\varepsilon$, $x_0$, $v$ it predicts, ``(B, ...)`` each.

        With ``clip``, $\hat x_0$ is clamped to $[-\text{clip}, \text{clip}]$ (the data's range) and
        $\hat\varepsilon$ recomputed from the clamped $\hat x_0$, so the pair still satisfies
        $x_t = \sqrt{\bar\alpha_t}\hat x_0 + \sqrt{1 - \bar\alpha_t}\hat\varepsilon$ (improved-diffusion's
        ``clip_denoised``; diffusers' ``clip_sample`` with ``use_clipped_model_output``).
        """
        _check_same_shape(model_output, x_t, "model_output", "x_t")
        if self.prediction == "epsilon":
            eps, x0 = model_output, self.x0_from_eps(x_t, t, model_output)
        elif self.prediction == "x0":
            eps, x0 = self.eps_from_x0(x_t, t, model_output), model_output
        else:
            x0, eps = self.x0_eps_from_v(x_t, t, model_output)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = self.eps_from_x0(x_t, t, x0)
        return eps, x0

    # --- training ------------------------------------------------------------------------------------

    def loss(self, model: Model, x0: Tensor, t: Tensor | None = None, noise: Tensor | None = None) -> dict[str, Tensor]:
        r"""The simple loss $\mathbb E_{t, x_0, \varepsilon}\lVert \varepsilon - \varepsilon_\theta(x_t, t)\rVert^2$, per dimension.

        (book/ddpm.md, eq. {eq}`ddpm-simple-loss`); for an $x_0$- or $v$-model the target is $x_0$ or $v$.
        $t$ is drawn uniformly from $1..T$ and $\varepsilon \sim \mathcal N(0, I)$ on ``x0``'s device
        unless given (give ``t`` to measure the loss at chosen steps, e.g. a curve of loss against $t$).

        Returns:
            ``"loss"``: the scalar to minimise (mean over examples and dimensions);
            ``"mse"`` ``(B,)``: each example's mean squared error; ``"t"`` ``(B,)``: its step.
            (``dgm.training.fit`` logs the scalar and ignores the per-example tensors.)
        """
        if x0.dim() < 2 or len(x0) == 0:
            raise ValueError(f"x0 must be a non-empty batch (B, D) or (B, C, H, W), got {tuple(x0.shape)}")
        if t is None:
            t = torch.randint(1, self.T + 1, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0) if noise is None else noise
        self.check_t(t, x0, low=1)
        x_t = self.q_sample(x0, t, noise)
        output = model(x_t, t)
        _check_same_shape(output, x0, "the model's output", "x0")
        target = {"epsilon": noise, "x0": x0, "v": self.v_target(x0, t, noise)}[self.prediction]
        # $\lVert \varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1 - \bar\alpha_t}\varepsilon, t)\rVert^2$
        # (book/ddpm.md, eq. {eq}`ddpm-simple-loss`), averaged over the D dimensions
        mse = (target - output).pow(2).reshape(len(x0), -1).mean(1)  # (B,)
        return {"loss": mse.mean(), "mse": mse.detach(), "t": t}

    @torch.no_grad()
    def held_out_loss(self, model: Model, x0: Tensor, seed: int = 0) -> float:
        r"""The simple loss of ``model`` on ``x0`` with $t$ and $\varepsilon$ drawn from ``seed``: the same draws for every model.

        For comparing weights on held-out data, e.g. an EMA against the raw weights it averages: in a short run
        the EMA still carries the early weights and can be the worse of the two.
        """
        generator = torch.Generator(x0.device).manual_seed(seed)
        t = torch.randint(1, self.T + 1, (len(x0),), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return self.loss(model, x0, t=t, noise=noise)["loss"].item()

    # --- the reverse process and the ELBO ------------------------------------------------------------

    def sigma_squared(self, t: int | Tensor, x: Tensor, variance: Variance) -> Tensor:
        r"""The reverse step's variance $\sigma_t^2$: $\tilde\beta_t$ (``"small"``) or $\beta_t$ (``"large"``).

        At $t = 1$, where $\tilde\beta_1 = 0$, ``"small"`` gives $\tilde\beta_2$ (improved-diffusion's clipped log).
        """
        if variance == "small":
            return at(self.schedule.posterior_log_variance_clipped, t, x).exp()
        if variance == "large":
            return at(self.schedule.beta, t, x)
        raise ValueError(f"variance must be 'small' (beta~_t) or 'large' (beta_t), got {variance!r}")

    def kl_weight(self, t: int | Tensor, variance: Variance = "small") -> Tensor:
        r"""$\frac{\beta_t^2}{2\sigma_t^2\alpha_t(1 - \bar\alpha_t)}$: the KL of step $t$ is this times $\lVert\varepsilon - \varepsilon_\theta\rVert^2$.

        For ``t`` in $2..T$, a float64 scalar or ``(B,)`` tensor.
        """
        s = self.schedule
        reference = s.beta if isinstance(t, int) else torch.zeros(t.shape, dtype=s.beta.dtype, device=s.device)
        self.check_t(t, reference, low=2)
        beta, alpha, alpha_bar = at(s.beta, t, reference), at(s.alpha, t, reference), at(s.alpha_bar, t, reference)
        sigma_squared = self.sigma_squared(t, reference, variance)
        # $\frac{\beta_t^2}{2\sigma_t^2\alpha_t(1 - \bar\alpha_t)}$ (book/ddpm.md, eq. {eq}`ddpm-kl-weight`)
        return beta**2 / (2 * sigma_squared * alpha * (1.0 - alpha_bar))

    def prior_kl(self, x0: Tensor) -> Tensor:
        r"""$L_T = \mathrm{KL}(q(x_T \mid x_0) \,\|\, \mathcal N(0, I))$ per example, nats ``(B,)``; near 0 when $\bar\alpha_T \approx 0$."""
        mean, var = self.q_mean_variance(x0, self.T)
        flat = mean.reshape(len(x0), -1)  # (B, D)
        return gaussian_kl_between(flat, var.log().expand_as(flat), torch.zeros_like(flat), torch.zeros_like(flat))

    def elbo_term(self, model: Model, x0: Tensor, t: int, noise: Tensor, variance: Variance = "small") -> Tensor:
        r"""The ELBO's term of step $t$ for each example, nats ``(B,)``, at $x_t$ drawn from ``noise``.

        For $t \ge 2$, $L_{t-1} = \mathrm{KL}(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t))$ between
        Gaussians (book/vae.md, eq. {eq}`kl-learned-prior`). For $t = 1$, $L_0 = -\log p_\theta(x_0 \mid x_1)$
        with the discretised decoder: $x_0$ must lie on the grid of 256 levels in $[-1, 1]$, and the decoder gives
        each level the mass of $\mathcal N(\mu_\theta(x_1, 1), \sigma_1^2)$ on its bin (the end bins reach $\pm\infty$).
        """
        self.check_t(t, x0, low=1)
        x_t = self.q_sample(x0, t, noise)
        eps, _ = self.predict(model(x_t, torch.full((len(x0),), t, device=x0.device)), x_t, t)
        model_mean = self.posterior_mean_from_eps(x_t, t, eps)
        log_var = self.sigma_squared(t, x0, variance).log()
        if t == 1:
            return -per_example_sum(discretised_gaussian_log_likelihood(x0, model_mean, log_var))
        true_mean, true_var = self.posterior_mean_variance(x0, x_t, t)
        flat = true_mean.reshape(len(x0), -1)  # (B, D)
        return gaussian_kl_between(flat, true_var.log().expand_as(flat), model_mean.reshape(len(x0), -1), log_var.expand_as(flat))

    @torch.no_grad()
    def elbo(
        self,
        model: Model,
        x0: Tensor,
        variance: Variance = "small",
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> ElboTerms:
        r"""The negative ELBO, $L_T + \sum_{t=2}^T L_{t-1} + L_0$, per example, with its terms (:class:`ElboTerms`).

        With ``steps=None``, all $T$ terms: $T$ model evaluations per batch (one fresh $\varepsilon$ per step), as
        in improved-diffusion's ``calc_bpd_loop``. With ``steps = K``, an unbiased estimate from $K$ evaluations:
        $L_0$ exactly, plus $\frac{T - 1}{K - 1}\sum_k L_{t_k - 1}$ over $K - 1$ steps drawn without replacement
        from $2..T$ (each is drawn with probability $(K - 1)/(T - 1)$) — for a CPU, where $T$ evaluations per
        image are too many.
        """
        if x0.dim() < 2 or bool(x0.abs().max() > 1):
            raise ValueError("x0 must be a batch (B, ...) of images scaled to [-1, 1]")
        if steps is None:
            timesteps, weight = torch.arange(1, self.T + 1), 1.0
        elif 2 <= steps <= self.T:
            drawn = torch.randperm(self.T - 1, generator=generator, device=generator.device if generator else "cpu")[: steps - 1]
            timesteps, weight = torch.cat([torch.ones(1, dtype=torch.long), drawn.cpu() + 2]), (self.T - 1) / (steps - 1)
        else:
            raise ValueError(f"steps must be None (all T) or lie in 2..T={self.T}, got {steps}")
        terms = torch.stack([
            self.elbo_term(model, x0, t, torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype), variance)
            for t in timesteps.tolist()
        ])  # (K, B)
        prior = self.prior_kl(x0)
        # $L_T + L_0 + \sum_{t \ge 2} L_{t-1}$, the last sum estimated from the drawn steps when K < T
        total = prior + terms[0] + weight * terms[1:].sum(0)
        return ElboTerms(prior, timesteps, terms, total, total / (x0[0].numel() * math.log(2)))


def discretised_gaussian_log_likelihood(x0: Tensor, mean: Tensor, log_var: Tensor, levels: int = 256) -> Tensor:
    r"""$\log$ of the mass $\mathcal N(\text{mean}, e^{\text{log\_var}})$ puts on the bin of each value of ``x0``, ``(B, ...)``.

    ``x0`` lies on the grid of ``levels`` values in $[-1, 1]$, bins of width $2/(\text{levels} - 1)$
    around each; the lowest and highest bins reach to $-\infty$ and $+\infty$, so the masses of all levels sum to one.
    """
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    half_bin = 1.0 / (levels - 1)
    std = (0.5 * log_var).exp()
    upper, lower = (x0 - mean + half_bin) / std, (x0 - mean - half_bin) / std  # the bin's ends, standardised
    # $\log(\Phi(b) - \Phi(a))$ for $a < b$, reflected to the left tail ($a, b \to -b, -a$) where it is more precise
    right = lower > 0
    a, b = torch.where(right, -upper, lower), torch.where(right, -lower, upper)
    log_phi_a, log_phi_b = torch.special.log_ndtr(a), torch.special.log_ndtr(b)
    tiny = torch.finfo(x0.dtype).tiny
    log_mass = log_phi_b + torch.log((-torch.expm1(log_phi_a - log_phi_b)).clamp(min=tiny))
    log_mass = torch.where(x0 < -1 + half_bin, torch.special.log_ndtr(upper), log_mass)  # lowest bin: (-inf, x0 + half_bin]
    return torch.where(x0 > 1 - half_bin, torch.special.log_ndtr(-lower), log_mass)  # highest bin: [x0 - half_bin, inf)


def _check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if not isinstance(a, Tensor) or a.shape != b.shape:
        shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
        raise ValueError(f"{name_a} must have the shape of {name_b} {tuple(b.shape)}, got {shape}")
