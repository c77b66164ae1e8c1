r"""β-VAE and FactorVAE (chapter "β-VAE and FactorVAE", book/beta_vae.md).

One objective covers both, per data point:

$$\mathcal L_{\beta,\gamma}(x) = \mathbb E_{q(z \mid x)}[\log p(x \mid z)]
  - \beta\, \mathrm{KL}(q(z \mid x) \,\|\, p(z)) - \gamma\, \mathrm{TC}(q(z)),$$

with $\gamma = 0$ the β-VAE (book/beta_vae.md, eq. {eq}`beta-lagrangian`) and $\beta = 1$
FactorVAE (book/beta_vae.md, eq. {eq}`factorvae-objective`); $\beta = 1, \gamma = 0$ is the ELBO.

The total correlation $\mathrm{TC} = \mathrm{KL}(q(z) \,\|\, \prod_j q(z_j))$ is
estimated by the density-ratio trick (book/beta_vae.md, eq. {eq}`tc-density-ratio`): a discriminator
with logit $h(z)$ learns to tell codes $z \sim q(z)$ from codes whose
dimensions were shuffled across the batch (:func:`permute_dims`, samples of
$\prod_j q(z_j)$), and $\mathrm{TC} \approx \mathbb E_{q(z)}[h(z)]$. A second estimate
that needs no discriminator, minibatch-weighted sampling from the encoder's own
densities (book/beta_vae.md, eq. {eq}`mws-unbiased`), is in :mod:`dgm.evaluation.total_correlation`.

:func:`train_factor_vae` writes the two updates out (Kim & Mnih 2018, Alg. 2):
the VAE's backward and step on the first half of a batch; then the
discriminator's, on that half's codes (detached) against the permuted codes
of the second half. Each optimizer steps only after its own backward, and no
backward runs through weights that were stepped after its forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dgm.distributions import bernoulli_log_likelihood, density_ratio_loss
from dgm.latent.vae import VAE
from dgm.networks import mlp
from dgm.training import History, StepRun, StepSettings, adam


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Shuffle each column of ``z`` ``(B, L)`` across the batch on its own: samples of $\prod_j q(z_j)$."""
    columns = [z[torch.randperm(len(z), generator=generator).to(z.device), j] for j in range(z.shape[1])]
    return torch.stack(columns, dim=1)


def tc_discriminator(latent_dim: int, hidden: tuple[int, ...] = (512, 512)) -> nn.Sequential:
    r"""An MLP ``(B, L) → (B, 1)``: the logit $h(z) = \log D(z) / (1 - D(z))$ that $z$ came from $q(z)$."""
    return mlp([latent_dim, *hidden, 1], nn.LeakyReLU)


def objective_loss(model: VAE, discriminator: nn.Module | None, x: Tensor, beta: float, gamma: float) -> dict[str, Tensor]:
    r"""Minus $\mathcal L_{\beta,\gamma}$ averaged over the batch, with its terms and the codes ``z`` (for the discriminator).

    $\mathrm{TC} \approx \frac1B \sum_i h(z_i)$ (book/beta_vae.md, eq. {eq}`tc-density-ratio`); the
    discriminator is only read here — its own loss and step are
    :func:`tc_discriminator_loss`'s.
    """
    elbo = model.elbo(x)
    loss = -elbo.reconstruction.mean() + beta * elbo.kl.mean()
    terms = {"reconstruction": elbo.reconstruction.mean().detach(), "kl": elbo.kl.mean().detach()}
    if discriminator is not None:
        tc = discriminator(elbo.z).mean()
        loss = loss + gamma * tc
        terms["tc"] = tc.detach()
    return {"loss": loss, **terms, "z": elbo.z}


def tc_discriminator_loss(discriminator: nn.Module, z: Tensor, z_other: Tensor) -> dict[str, Tensor]:
    r"""The discriminator's loss: $q(z)$ codes ``z`` are "real", permuted codes of another batch are "fake".

    Both inputs are detached, so this loss's backward reaches only the discriminator.
    """
    real = discriminator(z.detach()).squeeze(1)
    fake = discriminator(permute_dims(z_other.detach())).squeeze(1)
    return density_ratio_loss(real, fake)


@dataclass
class FactorVAESettings(StepSettings):
    r"""The objective's weights and how to train (Kim & Mnih's optimisers; the profile picks ``steps``).

    ``beta`` weighs the KL term and ``gamma`` the total correlation. With a
    discriminator and ``gamma = 0`` the discriminator still trains, and its
    TC estimate is logged without touching the VAE: a β-VAE's TC can be watched too.
    """

    beta: float = 1.0
    gamma: float = 0.0
    steps: int = 3000
    discriminator_lr: float = 1e-4
    discriminator_betas: tuple[float, float] = (0.5, 0.9)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0 or self.gamma < 0:
            raise ValueError(f"beta and gamma must be >= 0, got beta={self.beta}, gamma={self.gamma}")
        if self.discriminator_lr <= 0:
            raise ValueError(f"discriminator_lr must be positive, got {self.discriminator_lr}")


def train_factor_vae(
    model: VAE,
    discriminator: nn.Module | None,
    sample: Callable[[int], Tensor],
    settings: FactorVAESettings,
) -> History:
    """Train ``model`` on batches from ``sample(n) -> (n, ...)`` images, with the TC ``discriminator`` if given.

    Each step draws ``2 · batch_size`` images. Returns a :class:`dgm.training.History`
    with one record per ``log_every`` steps: ``loss``, ``reconstruction``,
    ``kl``, and with a discriminator ``tc`` and ``d_loss``. A run given the
    same checkpoint path resumes at the last saved step with its random state.
    """
    if settings.gamma > 0 and discriminator is None:
        raise ValueError("gamma > 0 needs a discriminator to estimate the total correlation (see tc_discriminator)")
    vae_opt = adam(model, settings.lr, betas=settings.betas)
    d_opt = None if discriminator is None else adam(discriminator, settings.discriminator_lr, betas=settings.discriminator_betas)
    modules = nn.ModuleDict({"vae": model} | ({} if discriminator is None else {"discriminator": discriminator}))
    optimizers = {"vae_opt": vae_opt} | ({} if d_opt is None else {"d_opt": d_opt})
    torch.manual_seed(settings.seed)
    run = StepRun(modules, optimizers, settings, kind="model")
    device, n = next(model.parameters()).device, settings.batch_size
    modules.train()
    for step in range(run.start, settings.steps):
        x = sample(2 * n).to(device)
        x_vae, x_other = x[:n], x[n:]
        if discriminator is not None:
            with torch.no_grad():  # codes of the second half, for the permuted ("fake") side of step 2
                z_other = model.elbo(x_other).z
            # 1. the VAE: its loss reads the discriminator, which is frozen so that this backward leaves it alone
            discriminator.requires_grad_(False)
        terms = objective_loss(model, discriminator, x_vae, settings.beta, settings.gamma)
        vae_opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        vae_opt.step()
        z = terms.pop("z").detach()
        logged = {name: value.detach() for name, value in terms.items()}
        # 2. the discriminator: the first half's codes against the second half's, permuted; both were
        #    computed before the VAE's step and are detached; its own backward and step
        if discriminator is not None and d_opt is not None:
            discriminator.requires_grad_(True)
            d_terms = tc_discriminator_loss(discriminator, z, z_other)
            d_opt.zero_grad(set_to_none=True)
            d_terms["loss"].backward()
            d_opt.step()
            logged["d_loss"] = d_terms["loss"].detach()

        run.log(step + 1, logged, postfix=("loss",))
        if run.stop(step + 1):
            break
    modules.eval()
    return run.finish()


def reconstruction_error(model: VAE, x: Tensor) -> Tensor:
    r"""$-\log p(x \mid \mu_\phi(x))$ per image ``(B,)`` in nats: the Bernoulli cross-entropy of the reconstruction from the code's mean."""
    with torch.no_grad():
        mean, _ = model.encode(x)
        return -bernoulli_log_likelihood(model.flatten(x), model.decode(mean))
