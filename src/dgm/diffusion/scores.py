r"""Score matching: fitting $s_\theta(x) \approx \nabla_x \log q(x)$ without knowing $q$'s normaliser.

Read beside the chapter book/scores.md. Every loss is a small pure function of a score
model and a batch; it returns its terms as a dict (``"loss"`` is the one to
minimise), takes no optimizer step and logs nothing (STYLE.md §7):

* :func:`explicit_score_matching` — the target score is known (book/scores.md, eq. {eq}`score-matching`, left side);
* :func:`hyvarinen_score_matching` — integration by parts removes the unknown score
  (book/scores.md, eq. {eq}`score-matching`,
  right side); the trace of the Jacobian costs one backward pass per dimension;
* :func:`sliced_score_matching` — the trace replaced by random projections
  (book/scores.md, eq. {eq}`sliced-score-matching`);
* :func:`denoising_score_matching` — regress on the score of the noise
  (book/scores.md, eq. {eq}`denoising-score-matching`, target eq. {eq}`dsm-target`);
* :func:`noise_conditional_dsm` — the same over several noise levels, weighted by
  $\lambda(\sigma) = \sigma^2$ (book/scores.md, eq. {eq}`ncsn-objective`).

Exact scores to check them and the samplers against: :class:`IsotropicMixture`
(a mixture of isotropic Gaussians, also after Gaussian noise is added) and
:func:`kernel_score`, the score of a Gaussian kernel density estimate (book/scores.md, eq. {eq}`kernel-score`).

A score model is any callable ``(B, D) → (B, D)``; a noise-conditional one
takes ``(x, sigma)`` with ``sigma`` of shape ``(B,)``. Images ``(B, C, H, W)``
are fine too: sums run over every axis but the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dgm.distributions import gaussian_log_likelihood, standard_normal_like

ScoreModel = Callable[[Tensor], Tensor]
NoiseConditionalScore = Callable[[Tensor, Tensor], Tensor]


def _check_batch(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.dim() < 2 or len(x) == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a non-empty batch (B, D) or (B, C, H, W), got {shape}")


def _per_example_sum(values: Tensor) -> Tensor:
    """``(B, ...) → (B,)``: sum over every axis but the batch axis."""
    return values.reshape(len(values), -1).sum(1)


def _check_score_shape(score: Tensor, x: Tensor) -> None:
    if score.shape != x.shape:
        raise ValueError(f"the score model must return the shape of its input {tuple(x.shape)}, got {tuple(score.shape)}")


def explicit_score_matching(score_model: ScoreModel, x: Tensor, true_score: ScoreModel) -> dict[str, Tensor]:
    r"""$J_{\mathrm{ESM}} = \mathbb E_q[\tfrac12\lVert s_\theta(x) - \nabla_x \log q(x)\rVert^2]$, with the true score known.

    (book/scores.md, eq. {eq}`score-matching`)

    Args:
        score_model: ``(B, D) → (B, D)``.
        x: samples of $q$, ``(B, D)``.
        true_score: $\nabla_x \log q$, ``(B, D) → (B, D)``.
    Returns:
        ``{"loss"}``: the batch mean of $\tfrac12\lVert s_\theta - \nabla\log q\rVert^2$.
    """
    _check_batch(x)
    score = score_model(x)
    _check_score_shape(score, x)
    # $\frac12 \lVert s_\theta(x) - \nabla_x \log q(x) \rVert^2$
    return {"loss": 0.5 * _per_example_sum((score - true_score(x)) ** 2).mean()}


def jacobian_trace(score: Tensor, x: Tensor, *, create_graph: bool) -> Tensor:
    r"""$\operatorname{tr} \nabla_x s(x)$ per example, exactly: one backward pass per dimension.

    Args:
        score: ``(B, D)``, computed from ``x`` ``(B, D)`` (which requires grad), row ``b`` from ``x[b]`` only.
    Returns:
        ``(B,)``.
    """
    if x.dim() != 2:
        raise ValueError(f"the exact trace is written for flat inputs (B, D), got {tuple(x.shape)}; flatten images first")
    trace = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for i in range(x.shape[1]):  # d backward passes: the cost the sliced loss avoids
        # $\partial s_i / \partial x_i$ for every example at once (rows do not mix)
        (row_gradient,) = torch.autograd.grad(score[:, i].sum(), x, create_graph=create_graph,
                                              retain_graph=create_graph or i < x.shape[1] - 1)
        trace = trace + row_gradient[:, i]
    return trace


def hyvarinen_score_matching(score_model: ScoreModel, x: Tensor) -> dict[str, Tensor]:
    r"""Hyvärinen's objective $\mathbb E_q[\tfrac12\lVert s_\theta(x)\rVert^2 + \operatorname{tr}\nabla_x s_\theta(x)]$.

    Equal to :func:`explicit_score_matching` minus a constant $C$ that does not
    depend on $\theta$, when $q\,s_\theta \to 0$ at infinity (book/scores.md,
    eq. {eq}`score-matching`; {cite}`hyvarinen2005estimation`).

    Args:
        score_model: ``(B, D) → (B, D)``, rows independent.
        x: samples of $q$, ``(B, D)``.
    Returns:
        ``{"loss", "norm", "trace"}``: the objective and the batch means of its two terms.
    """
    _check_batch(x)
    x = x.detach().requires_grad_(True)
    score = score_model(x)
    _check_score_shape(score, x)
    # $\frac12 \lVert s_\theta(x) \rVert^2$
    norm = 0.5 * (score**2).sum(1)
    # $\operatorname{tr} \nabla_x s_\theta(x)$, d backward passes
    trace = jacobian_trace(score, x, create_graph=torch.is_grad_enabled())
    return {"loss": (norm + trace).mean(), "norm": norm.mean(), "trace": trace.mean()}


def sliced_score_matching(
    score_model: ScoreModel,
    x: Tensor,
    *,
    projections: int = 1,
    generator: torch.Generator | None = None,
    variance_reduced: bool = False,
) -> dict[str, Tensor]:
    r"""Sliced score matching: $\mathbb E_{q, v}[\tfrac12 (v^\top s_\theta(x))^2 + v^\top \nabla_x (v^\top s_\theta(x))]$.

    With $v \sim \mathcal N(0, I)$, $\mathbb E[v v^\top] = I$, so each term is unbiased for
    the corresponding term of Hyvärinen's objective, at the price of one backward pass
    per projection instead of one per dimension (book/scores.md, eq. {eq}`sliced-score-matching`;
    {cite}`song2020sliced`). ``variance_reduced`` replaces $\tfrac12 (v^\top s)^2$ by its
    expectation $\tfrac12 \lVert s\rVert^2$.

    Args:
        score_model: ``(B, D) → (B, D)``.
        x: ``(B, D)``.
        projections: directions $v$ drawn per example.
        generator: for the directions (they are drawn on its device, then moved to ``x``'s).
    Returns:
        ``{"loss", "norm", "trace"}``: the objective and the means of its two (estimated) terms.
    """
    _check_batch(x)
    if x.dim() != 2:
        raise ValueError(f"sliced score matching is written for flat inputs (B, D), got {tuple(x.shape)}")
    if projections < 1:
        raise ValueError(f"projections must be at least 1, got {projections}")
    x = x.detach().requires_grad_(True)
    score = score_model(x)
    _check_score_shape(score, x)
    noise_device = generator.device if generator is not None else x.device
    v = torch.randn((projections, *x.shape), generator=generator, dtype=x.dtype, device=noise_device).to(x.device)  # (P, B, D)
    norms, traces = [], []
    for direction in v:
        projected = (direction * score).sum(1)  # (B,): $v^\top s_\theta(x)$
        # $v^\top \nabla_x (v^\top s_\theta(x)) = v^\top (\nabla_x s_\theta) v$, one backward pass
        (gradient,) = torch.autograd.grad(projected.sum(), x, create_graph=torch.is_grad_enabled())
        traces.append((direction * gradient).sum(1))
        # $\frac12 (v^\top s_\theta)^2$, or its mean over $v$, $\frac12 \lVert s_\theta \rVert^2$
        norms.append(0.5 * (score**2).sum(1) if variance_reduced else 0.5 * projected**2)
    norm, trace = torch.stack(norms).mean(0), torch.stack(traces).mean(0)  # (B,)
    return {"loss": (norm + trace).mean(), "norm": norm.mean(), "trace": trace.mean()}


def denoising_score_matching(
    score_model: ScoreModel, x: Tensor, sigma: float, *, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    r"""Denoising score matching at one noise level $\sigma$ {cite}`vincent2011connection`.

    $\tilde x = x + \sigma\varepsilon$, and the target is the score of the noise kernel,
    $\nabla_{\tilde x} \log q(\tilde x \mid x) = (x - \tilde x)/\sigma^2 = -\varepsilon/\sigma$
    (book/scores.md, eq. {eq}`dsm-target`). The objective equals explicit score
    matching against the noisy marginal $q_\sigma$ plus a constant
    (book/scores.md, eq. {eq}`denoising-score-matching`), so its minimiser is $\nabla \log q_\sigma$.

    Args:
        score_model: ``(B, ...) → (B, ...)``.
        x: clean data ``(B, D)`` or ``(B, C, H, W)``.
        sigma: the noise's standard deviation, > 0.
    Returns:
        ``{"loss"}``: the batch mean of $\tfrac12\lVert s_\theta(\tilde x) + \varepsilon/\sigma\rVert^2$.
    """
    _check_batch(x)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    eps = standard_normal_like(x, generator)
    x_noisy = x + sigma * eps
    score = score_model(x_noisy)
    _check_score_shape(score, x)
    # target $\nabla_{\tilde x} \log q(\tilde x \mid x) = (x - \tilde x)/\sigma^2 = -\varepsilon / \sigma$
    target = -eps / sigma
    # $\frac12 \lVert s_\theta(\tilde x) - \nabla_{\tilde x} \log q(\tilde x \mid x) \rVert^2$
    return {"loss": 0.5 * _per_example_sum((score - target) ** 2).mean()}


def geometric_sigmas(largest: float, smallest: float, levels: int) -> Tensor:
    r"""$\sigma_1 > \dots > \sigma_L$ geometric from ``largest`` to ``smallest``: ``(L,)``."""
    if not (largest > smallest > 0) or levels < 2:
        raise ValueError(f"need largest > smallest > 0 and at least 2 levels, got {largest}, {smallest}, {levels}")
    return torch.logspace(math.log10(largest), math.log10(smallest), levels)


def noise_conditional_dsm(
    score_model: NoiseConditionalScore, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    r"""The noise-conditional DSM objective over levels $\sigma_1 > \dots > \sigma_L$ {cite}`song2019generative`.

    Each example draws a level $i$ uniformly; with $\lambda(\sigma) = \sigma^2$ the
    weighted term $\lambda(\sigma_i)\,\tfrac12\lVert s_\theta(\tilde x, \sigma_i) + \varepsilon/\sigma_i\rVert^2
    = \tfrac12\lVert \sigma_i s_\theta(\tilde x, \sigma_i) + \varepsilon\rVert^2$ has the same scale at every level
    (book/scores.md, eq. {eq}`ncsn-objective`).

    Args:
        score_model: ``(x (B, ...), sigma (B,)) → (B, ...)``.
        x: clean data ``(B, D)`` or ``(B, C, H, W)``.
        sigmas: the levels ``(L,)``, positive.
    Returns:
        ``{"loss", "loss_largest", "loss_smallest"}``: the objective, and unbiased estimates of its
        mean at the largest and at the smallest level (the terms of the examples that drew that
        level, summed, times $L/B$: each level is drawn with probability $1/L$; 0 when none did).
    """
    _check_batch(x)
    if sigmas.dim() != 1 or len(sigmas) == 0 or bool((sigmas <= 0).any()):
        raise ValueError(f"sigmas must be a non-empty 1-D tensor of positive levels, got {sigmas}")
    sigmas = sigmas.to(device=x.device, dtype=x.dtype)
    index_device = generator.device if generator is not None else x.device
    level = torch.randint(len(sigmas), (len(x),), generator=generator, device=index_device).to(x.device)  # (B,)
    sigma = sigmas[level]  # (B,)
    sigma_b = sigma.view(-1, *([1] * (x.dim() - 1)))  # (B, 1, ...) to broadcast over x
    eps = standard_normal_like(x, generator)
    x_noisy = x + sigma_b * eps
    score = score_model(x_noisy, sigma)
    _check_score_shape(score, x)
    # $\lambda(\sigma)\,\frac12 \lVert s_\theta(\tilde x, \sigma) + \varepsilon/\sigma \rVert^2 = \frac12 \lVert \sigma s_\theta + \varepsilon \rVert^2$
    per_example = 0.5 * _per_example_sum((sigma_b * score + eps) ** 2)  # (B,)
    per_level = per_example.detach() * len(sigmas) / len(x)  # summed over a level: its mean, unbiasedly
    return {
        "loss": per_example.mean(),
        "loss_largest": per_level[level == 0].sum(),
        "loss_smallest": per_level[level == len(sigmas) - 1].sum(),
    }


def kernel_score(x: Tensor, data: Tensor, sigma: float) -> Tensor:
    r"""The score of the Gaussian kernel density estimate $q(x) = \tfrac1N \sum_i \mathcal N(x; x^{(i)}, \sigma^2 I)$.

    $\nabla_x \log q(x) = \sum_i w_i(x)\,(x^{(i)} - x)/\sigma^2$ with softmax weights
    $w_i(x) \propto \exp(-\lVert x - x^{(i)}\rVert^2 / 2\sigma^2)$ (book/scores.md, eq. {eq}`kernel-score`).
    Cost: ``O(M N D)`` — every query looks at every data point.

    Args:
        x: queries ``(M, D)``; data: the atoms $x^{(i)}$, ``(N, D)``; sigma: the bandwidth.
    Returns:
        ``(M, D)``.
    """
    _check_batch(x)
    _check_batch(data, "data")
    if x.dim() != 2 or data.dim() != 2 or x.shape[1] != data.shape[1]:
        raise ValueError(f"x and data must be (M, D) and (N, D) with the same D, got {tuple(x.shape)}, {tuple(data.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    # $w_i(x) = \operatorname{softmax}_i(-\lVert x - x^{(i)} \rVert^2 / 2\sigma^2)$
    weights = torch.softmax(-torch.cdist(x, data) ** 2 / (2 * sigma**2), dim=1)  # (M, N)
    # $\sum_i w_i(x) (x^{(i)} - x) / \sigma^2 = (\sum_i w_i x^{(i)} - x)/\sigma^2$
    return (weights @ data - x) / sigma**2


def kernel_log_density(x: Tensor, data: Tensor, sigma: float) -> Tensor:
    r"""$\log q(x) = \log \tfrac1N \sum_i \mathcal N(x; x^{(i)}, \sigma^2 I)$ for queries ``(M, D)``: ``(M,)``."""
    log_var = torch.full_like(data, 2 * math.log(sigma))
    # $\log \mathcal N(x; x^{(i)}, \sigma^2 I)$ for every pair: (M, N)
    log_kernels = gaussian_log_likelihood(x[:, None, :], data[None, :, :], log_var[None])
    return torch.logsumexp(log_kernels, dim=1) - math.log(len(data))


@dataclass(frozen=True)
class IsotropicMixture:
    r"""$q(x) = \sum_k \pi_k\,\mathcal N(x; \mu_k, s_k^2 I)$, with its exact score, also after adding noise.

    Adding $\mathcal N(0, \sigma^2 I)$ noise to a sample gives the mixture with the same
    weights and variances $s_k^2 + \sigma^2$, so the score of every noisy marginal
    $q_\sigma$ is known exactly: the target that DSM's minimiser should reach
    (book/scores.md, eq. {eq}`denoising-score-matching`) and the field annealed Langevin follows.

    Attributes:
        means: ``(K, D)``; stds: ``(K,)``; weights: ``(K,)``, positive, summing to one.
    """

    means: Tensor
    stds: Tensor
    weights: Tensor

    def __post_init__(self) -> None:
        if self.means.dim() != 2:
            raise ValueError(f"means must be (K, D), got {tuple(self.means.shape)}")
        count = len(self.means)
        if self.stds.shape != (count,) or self.weights.shape != (count,):
            raise ValueError(f"stds and weights must be ({count},), got {tuple(self.stds.shape)}, {tuple(self.weights.shape)}")
        if bool((self.stds <= 0).any()) or bool((self.weights <= 0).any()):
            raise ValueError("stds and weights must be positive")
        if abs(float(self.weights.sum()) - 1) > 1e-6:
            raise ValueError(f"weights must sum to one, got {float(self.weights.sum())}")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples ``(n, D)``: a component by its weight, then its Gaussian."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        return self.means[component] + self.stds[component, None] * noise

    def _log_components(self, x: Tensor, noise_std: float) -> Tensor:
        """$\\log \\pi_k + \\log \\mathcal N(x; \\mu_k, (s_k^2 + \\sigma^2) I)$: ``(M, K)``."""
        _check_batch(x)
        if x.dim() != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(f"x must be (M, {self.means.shape[1]}), got {tuple(x.shape)}")
        means, stds, weights = (t.to(device=x.device, dtype=x.dtype) for t in (self.means, self.stds, self.weights))
        variance = stds**2 + noise_std**2  # (K,)
        log_var = variance.log()[None, :, None].expand(1, len(means), x.shape[1])
        return weights.log() + gaussian_log_likelihood(x[:, None, :], means[None], log_var)

    def log_prob(self, x: Tensor, noise_std: float = 0.0) -> Tensor:
        """$\\log q_\\sigma(x)$ for ``x`` ``(M, D)``: ``(M,)``; ``noise_std`` = 0 is the data itself."""
        return torch.logsumexp(self._log_components(x, noise_std), dim=1)

    def score(self, x: Tensor, noise_std: float | Tensor = 0.0) -> Tensor:
        r"""$\nabla_x \log q_\sigma(x) = \sum_k r_k(x)\,(\mu_k - x)/(s_k^2 + \sigma^2)$, ``(M, D) → (M, D)``.

        $r_k$ are the components' responsibilities, a softmax as in :func:`kernel_score`
        (which is the equal-weight, equal-width case). ``noise_std`` may be a float or ``(M,)``.
        """
        noise = torch.as_tensor(noise_std, dtype=x.dtype, device=x.device)
        if noise.dim() == 0:
            noise = noise.expand(len(x))
        means, stds = self.means.to(x), self.stds.to(x)
        variance = stds[None, :] ** 2 + noise[:, None] ** 2  # (M, K)
        squared = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # (M, K)
        log_r = self.weights.to(x).log() - 0.5 * squared / variance - 0.5 * x.shape[1] * variance.log()
        responsibilities = torch.softmax(log_r, dim=1)  # (M, K)
        # $\sum_k r_k (\mu_k - x) / (s_k^2 + \sigma^2)$
        return ((responsibilities / variance)[:, :, None] * (means[None] - x[:, None, :])).sum(1)


def two_mode_mixture(weight: float = 0.8, center: float = 5.0, std: float = 1.0) -> IsotropicMixture:
    r"""The notebook's 2-D test bed: $w\,\mathcal N((c, c), s^2 I) + (1 - w)\,\mathcal N((-c, -c), s^2 I)$."""
    if not 0 < weight < 1:
        raise ValueError(f"weight must lie in (0, 1), got {weight}")
    return IsotropicMixture(
        means=torch.tensor([[center, center], [-center, -center]]),
        stds=torch.tensor([std, std]),
        weights=torch.tensor([weight, 1 - weight]),
    )


def mode_fraction(samples: Tensor, mixture: IsotropicMixture, component: int = 0) -> float:
    """The fraction of ``samples`` ``(N, D)`` nearer to ``mixture.means[component]`` than to every other mean."""
    _check_batch(samples, "samples")
    nearest = torch.cdist(samples.float().cpu(), mixture.means.float()).argmin(1)
    return float((nearest == component).float().mean())


def sigmas_for(levels: Sequence[float]) -> Tensor:
    """A 1-D float tensor of decreasing positive noise levels, checked."""
    sigmas = torch.as_tensor(list(levels), dtype=torch.float32)
    if sigmas.dim() != 1 or len(sigmas) == 0 or bool((sigmas <= 0).any()) or bool((sigmas[1:] >= sigmas[:-1]).any()):
        raise ValueError(f"noise levels must be positive and strictly decreasing, got {list(levels)}")
    return sigmas
