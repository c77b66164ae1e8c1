"""Time the library's training steps against a plain hand-written PyTorch loop, side by side in one run.

Usage: python bench/bench.py [--steps N] [--repeats R] [--device cpu|cuda]   (or `make bench`)

For each model the two loops train the same architecture on the same
in-memory data with the same batch size and optimizer; they run alternately
(ours, plain, ours, plain, ...) so that both see the same machine load, and
the table reports the median seconds per step of each and their ratio
(ours / plain: 1.00 means no overhead; the target is ≤ 1.05 on a CPU).

* VAE: 784-400-20 with a Bernoulli decoder, batch 128 (pytorch/examples' VAE):
  :func:`dgm.training.fit` with :func:`dgm.latent.vae.vae_loss` against the
  examples' loop (BCE summed + KL, Adam 1e-3).
* GAN 2-D and GAN MNIST: the 2-D mixture GAN of notebooks/gan_mixtures (batch
  256) and the MLP GAN of notebooks/gan_vs_vae_mnist (batch 128), one
  discriminator and one generator step: :func:`dgm.adversarial.gan.train_gan`
  against the same alternating updates written out by hand.
* DDPM U-Net: ``UNet(16)`` (0.26 M parameters), batch 64, the simple loss:
  :func:`dgm.training.fit` with :meth:`GaussianDiffusion.loss` against Ho et
  al.'s Algorithm 1 written out (a tenth of ``--steps``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dgm.adversarial.gan import GAN, AdversarialSettings, GANSettings, train_gan
from dgm.data.mixtures import grid
from dgm.diffusion.process import GaussianDiffusion
from dgm.diffusion.schedules import linear_schedule
from dgm.latent.vae import VAE, VAESettings, vae_loss
from dgm.networks import UNet
from dgm.training import TrainSettings, adam, fit


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------- VAE


class ExamplesVAE(nn.Module):
    """pytorch/examples' VAE (vae/main.py): 784-400-20, ReLU, sigmoid output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def plain_vae_epoch(model: ExamplesVAE, optimizer: torch.optim.Optimizer, data: torch.Tensor, batch_size: int) -> None:
    model.train()
    for rows in torch.randperm(len(data), device=data.device).split(batch_size):
        x = data[rows]
        logits, mu, logvar = model(x)
        bce = F.binary_cross_entropy_with_logits(logits, x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (bce + kld) / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def bench_vae(steps: int, repeats: int, device: torch.device) -> tuple[list[float], list[float]]:
    batch_size = 128
    data = torch.rand(steps * batch_size, 784, device=device).round()  # binary images, in memory
    ours_model = VAE(VAESettings(data_dim=784, latent_dim=20, hidden=(400,))).to(device)
    plain_model = ExamplesVAE().to(device)
    plain_opt = torch.optim.Adam(plain_model.parameters(), lr=1e-3)
    settings = TrainSettings(epochs=1, batch_size=batch_size, lr=1e-3, progress=False)
    # one optimizer for the whole run on both sides, as in training (a fresh Adam each epoch restarts its moments)
    ours_opt = adam(ours_model, settings.lr)
    ours, plain = [], []
    for _ in range(repeats):
        ours.append(timed(lambda: fit(ours_model, vae_loss, data, settings, optimizer=ours_opt), device) / steps)
        plain.append(timed(lambda: plain_vae_epoch(plain_model, plain_opt, data, batch_size), device) / steps)
    return ours, plain


# ---------------------------------------------------------------- GAN


def plain_gan_steps(gan: GAN, settings: AdversarialSettings, sample_real: Callable[[int], torch.Tensor]) -> None:
    """The non-saturating GAN's alternating updates, written out (fresh optimizers each call, as ``train_gan``'s)."""
    latent, n = gan.settings.latent_dim, settings.batch_size
    d_opt = torch.optim.Adam(gan.discriminator.parameters(), lr=settings.lr, betas=settings.betas)
    g_opt = torch.optim.Adam(gan.generator.parameters(), lr=settings.lr, betas=settings.betas)
    for _ in range(settings.steps):
        real = sample_real(n).reshape(n, -1)  # (n, D)
        with torch.no_grad():
            fake = gan.generator(torch.randn(n, latent, device=real.device))
        d_loss = F.softplus(-gan.discriminator(real)).mean() + F.softplus(gan.discriminator(fake)).mean()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        gan.discriminator.requires_grad_(False)
        g_loss = F.softplus(-gan.discriminator(gan.generator(torch.randn(n, latent, device=real.device)))).mean()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        gan.discriminator.requires_grad_(True)


def bench_gan(steps: int, repeats: int, device: torch.device, gan_settings: GANSettings,
              sample_real: Callable[[int], torch.Tensor], batch_size: int) -> tuple[list[float], list[float]]:
    ours_gan = GAN(gan_settings).to(device)
    plain_gan = GAN(gan_settings).to(device)
    settings = AdversarialSettings(steps=steps, batch_size=batch_size, log_every=steps, progress=False)
    ours, plain = [], []
    for _ in range(repeats):
        ours.append(timed(lambda: train_gan(ours_gan, sample_real, settings), device) / steps)
        plain.append(timed(lambda: plain_gan_steps(plain_gan, settings, sample_real), device) / steps)
    return ours, plain


def bench_gan_2d(steps: int, repeats: int, device: torch.device) -> tuple[list[float], list[float]]:
    mixture = grid()
    return bench_gan(steps, repeats, device, GANSettings(), lambda n: mixture.sample(n, device=device), 256)


def bench_gan_mnist(steps: int, repeats: int, device: torch.device) -> tuple[list[float], list[float]]:
    images = torch.rand(4096, 1, 28, 28, device=device)  # in memory, as train_set.floats()
    settings = GANSettings(data_shape=(1, 28, 28), latent_dim=32, generator_hidden=(256, 512), discriminator_hidden=(512, 256))
    return bench_gan(steps, repeats, device, settings, lambda n: images[torch.randint(len(images), (n,), device=device)], 128)


# ---------------------------------------------------------------- DDPM U-Net


def plain_ddpm_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: torch.Tensor, alpha_bar: torch.Tensor,
                     batch_size: int) -> None:
    """Ho et al.'s Algorithm 1, written out: t uniform, x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, ‖ε − ε_θ(x_t, t)‖²."""
    for rows in torch.randperm(len(data), device=data.device).split(batch_size):
        x0 = data[rows]
        t = torch.randint(1, len(alpha_bar), (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        a = alpha_bar[t].view(-1, 1, 1, 1)
        loss = (noise - model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def bench_unet(steps: int, repeats: int, device: torch.device) -> tuple[list[float], list[float]]:
    batch_size = 64
    data = torch.rand(steps * batch_size, 1, 28, 28, device=device) * 2 - 1
    process = GaussianDiffusion(linear_schedule(1000)).to(device, torch.float32)
    ours_model, plain_model = UNet(16).to(device), UNet(16).to(device)
    settings = TrainSettings(epochs=1, batch_size=batch_size, lr=2e-4, progress=False)
    ours_opt = adam(ours_model, settings.lr)
    plain_opt = torch.optim.Adam(plain_model.parameters(), lr=settings.lr)
    alpha_bar = process.schedule.alpha_bar

    def loss(model: nn.Module, x0: torch.Tensor) -> dict[str, torch.Tensor]:
        return process.loss(model, x0)

    ours, plain = [], []
    for _ in range(repeats):
        ours.append(timed(lambda: fit(ours_model, loss, data, settings, optimizer=ours_opt), device) / steps)
        plain.append(timed(lambda: plain_ddpm_epoch(plain_model, plain_opt, data, alpha_bar, batch_size), device) / steps)
    return ours, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", nargs="*", help="run only these rows (e.g. --only VAE 'GAN 2-D')")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device={device} · torch {torch.__version__} · threads={torch.get_num_threads()} · "
          f"{args.steps} steps × {args.repeats} alternating repeats (median)")
    print(f"{'model':<11} {'ours ms/step':>13} {'plain ms/step':>14} {'ratio':>7}")
    benches = (("VAE", bench_vae, args.steps), ("GAN 2-D", bench_gan_2d, args.steps),
               ("GAN MNIST", bench_gan_mnist, args.steps), ("DDPM U-Net", bench_unet, max(args.steps // 10, 5)))
    for name, bench, steps in benches:
        if args.only and name not in args.only:
            continue
        ours, plain = bench(steps, args.repeats, device)
        ours_ms, plain_ms = 1000 * statistics.median(ours[1:]), 1000 * statistics.median(plain[1:])  # first is warm-up
        print(f"{name:<11} {ours_ms:>13.3f} {plain_ms:>14.3f} {ours_ms / plain_ms:>7.3f}")


if __name__ == "__main__":
    main()
