r"""Generative adversarial networks: the losses of chapter "GANs as divergence minimisation", packing, WGAN-GP.

The discriminator outputs a **logit** $h(x)$, and $D(x) = \sigma(h(x))$. Every
loss below is written in terms of $h$ with the softplus function
$\operatorname{softplus}(t) = \log(1 + e^t)$, so that $-\log D = \operatorname{softplus}(-h)$
and $-\log(1 - D) = \operatorname{softplus}(h)$ never take the log of a rounded zero.

* ``"minimax"`` and ``"non_saturating"`` share the discriminator's loss
  (book/gan, eq. gan-value); they differ in the generator's. At the optimal
  discriminator the game's value is $2\,\mathrm{JS}(p_d \,\|\, p_g) - \log 4$,
  which the minimax generator minimises, and the non-saturating loss
  $-\mathbb E_{p_g}[\log D]$ equals $\mathrm{KL}(p_g \,\|\, p_d) + \log 2 - \mathrm{KL}(p_g \,\|\, m)$
  with $m = \tfrac12(p_d + p_g)$ (eq. gan-nonsaturating): the reverse KL plus a
  term between 0 and $\log 2$. It is the log-odds form $\mathbb E_{p_g}[\log((1 - D)/D)]$,
  not implemented here, that equals $\mathrm{KL}(p_g \,\|\, p_d)$ exactly.
* ``"wasserstein"`` reads $h$ as a critic $f$ whose $\mathbb E_{p_d}[f] - \mathbb E_{p_g}[f]$
  estimates $W(p_d, p_g)$ (book/gan, Kantorovich–Rubinstein duality); with
  ``gradient_penalty > 0`` it is WGAN-GP (Gulrajani et al., 2017).
* ``pack = k`` makes the discriminator judge $k$ samples at once, all real
  or all fake (PacGAN (Lin et al., 2018)).
* ``AdversarialSettings.augment`` passes every image the discriminator sees —
  the reals, and the fakes in both players' losses — through the same kind of
  random differentiable transformation (DiffAugment (Zhao et al., 2020),
  :mod:`dgm.adversarial.augment`), the remedy when the training set is small.

The training loop :func:`train_gan` writes the alternating updates out: the
discriminator's steps on detached fakes, each followed by its own optimizer
step, then the generator's backward and step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.adversarial.augment import AugmentSettings, diff_augment
from dgm.distributions import density_ratio_loss
from dgm.networks import mlp
from dgm.training import History, StepRun, StepSettings, adam

Objective = Literal["minimax", "non_saturating", "wasserstein"]
OBJECTIVES: tuple[str, ...] = ("minimax", "non_saturating", "wasserstein")


@dataclass
class GANSettings:
    """The two networks and the game they play.

    ``data_shape`` is the shape of one sample (``(2,)`` for points, ``(1, 28, 28)``
    for MNIST); both networks are MLPs on the flattened sample.
    """

    data_shape: tuple[int, ...] = (2,)
    latent_dim: int = 2
    generator_hidden: tuple[int, ...] = (128, 128)
    discriminator_hidden: tuple[int, ...] = (128, 128)
    objective: Objective = "non_saturating"
    pack: int = 1
    gradient_penalty: float = 0.0  # λ of WGAN-GP; 10 in Gulrajani et al. (0.1 in their toy experiments)
    output: Literal["identity", "sigmoid"] = "identity"  # the generator's last activation
    # The data's spread: both networks work on x / scale (the generator's output is multiplied by it, the
    # discriminator's input divided by it), as Gulrajani et al.'s toy code divides the 25-Gaussian grid by
    # its standard deviation 2.828. 1 leaves the data as it is.
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.pack < 1 or self.latent_dim < 1 or self.gradient_penalty < 0:
            raise ValueError(f"pack and latent_dim must be positive and gradient_penalty >= 0, got {self}")
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)


class GAN(nn.Module):
    """A generator $G: z \\mapsto x$ with $z \\sim \\mathcal N(0, I)$ and a discriminator on packs of samples."""

    def __init__(self, settings: GANSettings) -> None:
        super().__init__()
        self.settings = settings
        layers = [settings.latent_dim, *settings.generator_hidden, settings.data_dim]
        self.generator = mlp(layers, nn.ReLU)
        if settings.output == "sigmoid":
            self.generator.append(nn.Sigmoid())
        self.discriminator = mlp(
            [settings.pack * settings.data_dim, *settings.discriminator_hidden, 1], nn.LeakyReLU
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample(self, n: int, *, z: Tensor | None = None) -> Tensor:
        """``n`` samples ``(n, *data_shape)``; the noise ``z`` ``(n, latent_dim)`` is drawn on the model's device unless given."""
        if z is None:
            z = torch.randn(n, self.settings.latent_dim, device=self.device)
        x = self.generator(z.to(self.device))
        if self.settings.scale != 1:
            x = self.settings.scale * x
        return x.view(len(z), *self.settings.data_shape)

    def logits(self, x: Tensor) -> Tensor:
        """The discriminator's logit $h$ for each pack of ``pack`` consecutive samples: ``(N, ...) -> (N / pack,)``."""
        pack = self.settings.pack
        if len(x) % pack:
            raise ValueError(f"a batch of {len(x)} samples does not split into packs of {pack}")
        packed = x.reshape(len(x) // pack, pack * self.settings.data_dim)  # (N/pack, pack·D)
        if self.settings.scale != 1:
            packed = packed / self.settings.scale
        return self.discriminator(packed).squeeze(1)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, objective: Objective) -> dict[str, Tensor]:
    r"""The discriminator's loss (to minimise) from its logits on real and on fake packs.

    Standard GAN: $-\mathbb E_{p_d}[\log D] - \mathbb E_{p_g}[\log(1 - D)]$ (book/gan, eq. gan-value).
    Wasserstein: $\mathbb E_{p_g}[f] - \mathbb E_{p_d}[f]$, minus the critic's estimate of $W$
    (book/gan, section "Parallel lines").
    """
    if objective == "wasserstein":
        # $-\hat W = \mathbb E_{p_g}[f] - \mathbb E_{p_d}[f]$
        loss = fake_logits.mean() - real_logits.mean()
        return {"loss": loss, "wasserstein": -loss.detach()}
    # the logistic loss of telling p_d from p_g; at its optimum, log 4 - 2 JS(p_d ‖ p_g)
    return density_ratio_loss(real_logits, fake_logits)


def generator_loss(fake_logits: Tensor, objective: Objective) -> dict[str, Tensor]:
    r"""The generator's loss (to minimise) from the discriminator's logits on fake packs.

    * minimax: $\mathbb E_{p_g}[\log(1 - D)] = -\mathbb E[\mathrm{softplus}(h)]$;
    * non-saturating: $-\mathbb E_{p_g}[\log D] = \mathbb E[\mathrm{softplus}(-h)]$, which at the optimal
      discriminator is $\mathrm{KL}(p_g \,\|\, p_d) + \log 2 - \mathrm{KL}(p_g \,\|\, m)$, not
      $\mathrm{KL}(p_g \,\|\, p_d)$ (book/gan, eq. gan-nonsaturating);
    * Wasserstein: $-\mathbb E_{p_g}[f]$.
    """
    if objective == "minimax":
        return {"loss": -F.softplus(fake_logits).mean()}
    if objective == "non_saturating":
        return {"loss": F.softplus(-fake_logits).mean()}
    return {"loss": -fake_logits.mean()}


def gradient_penalty(gan: GAN, real: Tensor, fake: Tensor) -> Tensor:
    r"""WGAN-GP's $\mathbb E_{\hat x}[(\lVert \nabla_{\hat x} f(\hat x) \rVert - 1)^2]$ on random interpolates of packs.

    $\hat x = \epsilon x + (1 - \epsilon)\tilde x$ with one $\epsilon \sim U(0, 1)$
    per pack; the gradient's norm is taken over the whole pack, the critic's input. With
    ``scale`` $s \ne 1$ the critic is a function of $u = x / s$ and the norm is that of
    $\nabla_u f = s \nabla_x f$, so the penalty (and the critic's Wasserstein estimate) is
    measured in the networks' units, as on data divided by $s$.
    """
    pack = gan.settings.pack
    packs = len(real) // pack
    eps = torch.rand(packs, device=real.device).repeat_interleave(pack)  # (N,): one ε per pack
    eps = eps.view(len(real), *([1] * (real.dim() - 1)))
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(gan.logits(mixed).sum(), mixed, create_graph=True)
    norms = gan.settings.scale * grad.reshape(packs, -1).norm(dim=1)  # (N/pack,): ‖∇_u f‖ with u = x / scale
    return ((norms - 1) ** 2).mean()


@dataclass
class AdversarialSettings(StepSettings):
    """How to train a GAN; the profile picks the numbers (:func:`dgm.profile.pick`).

    Adam with ``betas=(0.5, 0.9)`` and ``critic_steps=5`` are WGAN-GP's choices;
    the standard GAN uses one discriminator step per generator step.
    ``augment`` (default off) turns on DiffAugment for image data ``(C, H, W)``:
    its transformations are drawn from a generator of their own, seeded with ``seed``.
    """

    steps: int = 5000
    batch_size: int = 256
    betas: tuple[float, float] = (0.5, 0.9)
    critic_steps: int = 1
    lr_schedule: Literal["constant", "linear"] = "constant"  # "linear": from lr down to 0 at the last step
    checkpoint_every: int = 1000
    augment: AugmentSettings | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic_steps < 1:
            raise ValueError(f"critic_steps must be positive, got {self.critic_steps}")
        if self.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}")
        if self.augment is not None and not isinstance(self.augment, AugmentSettings):
            raise ValueError(f"augment must be an AugmentSettings or None, got {self.augment!r}")

    def learning_rate(self, step: int) -> float:
        """Both networks' rate at ``step`` (from 0): ``lr``, or with ``"linear"`` ``lr · (1 − step / steps)``.

        A function of the step alone, so a resumed run sets the rate the uninterrupted one had.
        """
        if self.lr_schedule == "linear":
            return self.lr * (1 - step / self.steps)
        return self.lr


DataSource = Tensor | Callable[[int], Tensor]


def _draw(data: DataSource, n: int, device: torch.device) -> Tensor:
    """``n`` real samples on ``device``: from a sampler, or a random minibatch of a tensor (with replacement across steps).

    A sampler should draw on ``device`` itself (e.g. ``mixture.sample`` of a
    mixture moved there with :meth:`dgm.data.mixtures.Mixture.to`); a tensor
    is on ``device`` already (:func:`train_gan` moves it there once), so no step copies it.
    """
    if callable(data):
        return data(n).to(device)
    return data[torch.randint(len(data), (n,), device=data.device)].to(device)


Callback = Callable[[int, GAN], "dict[str, float] | None"]


def train_gan(gan: GAN, data: DataSource, settings: AdversarialSettings, *, callback: Callback | None = None) -> History:
    """Train ``gan`` on ``data``: a tensor ``(N, *data_shape)`` or a function ``n -> (n, *data_shape)``.

    Returns a :class:`dgm.training.History` with one record per ``log_every``
    generator steps (the means of ``d_loss``, ``g_loss`` and, where they apply,
    ``js``, ``wasserstein`` and ``penalty``). ``callback(step, gan)``, if
    given, runs after each logged interval with the generator in eval mode (to
    score it along the way; it should not draw from torch's global random
    generator, or the run will differ from one without it). The numbers it
    returns, if any (a dict of floats, the same names each time), join that
    interval's record in the history, so they are checkpointed with it: a
    resumed run keeps the entries from before the interruption, and a finished
    run read back from its checkpoint returns them all. A run given the same
    checkpoint path resumes at the last saved step, with the random state it
    had there.
    """
    if settings.batch_size % gan.settings.pack:
        raise ValueError(f"batch_size {settings.batch_size} must be a multiple of pack {gan.settings.pack}")
    if settings.augment is not None and len(gan.settings.data_shape) != 3:
        raise ValueError(f"augment needs image data (C, H, W), but the GAN's data_shape is {gan.settings.data_shape}")
    objective, penalty_weight = gan.settings.objective, gan.settings.gradient_penalty
    d_opt = adam(gan.discriminator, settings.lr, betas=settings.betas)
    g_opt = adam(gan.generator, settings.lr, betas=settings.betas)
    torch.manual_seed(settings.seed)
    run = StepRun(gan, {"d_opt": d_opt, "g_opt": g_opt}, settings, kind="GAN")
    device, n = gan.device, settings.batch_size
    if not callable(data):
        data = data.to(device)  # once, as fit does: minibatches are then drawn where the model is
    augment_rng = None
    if settings.augment is not None:  # its own generator, so the global random stream is the one of a run without it
        augment_rng = torch.Generator(device=device).manual_seed(settings.seed)
        if "augment_rng" in run.extra:  # resumed: where the interrupted run's augmentations had got to
            augment_rng.set_state(run.extra["augment_rng"])

    def augment(x: Tensor) -> Tensor:
        """$T(x)$: the same kind of random transformation for every batch the discriminator sees (or none)."""
        return x if settings.augment is None else diff_augment(x, settings.augment, augment_rng)

    gan.train()
    for step in range(run.start, settings.steps):
        for group in (*d_opt.param_groups, *g_opt.param_groups):
            group["lr"] = settings.learning_rate(step)
        # 1. the discriminator (critic): fakes are detached, so its backward never reaches the generator
        gan.discriminator.requires_grad_(True)
        for _ in range(settings.critic_steps):
            real = _draw(data, n, device)
            with torch.no_grad():
                fake = gan.sample(n)
            real, fake = augment(real), augment(fake)  # DiffAugment: T on the reals *and* on the fakes
            terms = discriminator_loss(gan.logits(real), gan.logits(fake), objective)
            d_loss = terms["loss"]
            if penalty_weight > 0:
                penalty = gradient_penalty(gan, real, fake)  # at interpolates of what the critic sees
                d_loss = d_loss + penalty_weight * penalty
                terms["penalty"] = penalty.detach()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        # 2. the generator: a fresh batch of fakes through T (differentiable) and the (frozen) discriminator,
        #    its own backward and step
        gan.discriminator.requires_grad_(False)
        g_loss = generator_loss(gan.logits(augment(gan.sample(n))), objective)["loss"]
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()

        logged = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), **{k: v for k, v in terms.items() if k != "loss"}}
        done = step + 1
        if run.log(done, logged, postfix=("d_loss", "g_loss")) and callback is not None:
            gan.eval()
            run.history.annotate(callback(done, gan) or {})
            gan.train()
        if augment_rng is not None and settings.checkpoint is not None:
            run.extra["augment_rng"] = augment_rng.get_state()  # saved with the checkpoint, for an exact resume
        if run.stop(done):
            break
    gan.discriminator.requires_grad_(True)
    gan.eval()
    return run.finish()
