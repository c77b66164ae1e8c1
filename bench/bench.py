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
* GAN: the 2-D mixture GAN of notebooks/gan_mixtures, batch 256, one
  discriminator and one generator step: :func:`dgm.adversarial.gan.train_gan`
  against the same alternating updates written out by hand.
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
from dgm.latent.vae import VAE, VAESettings, vae_loss
from dgm.training import TrainSettings, fit


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
    ours, plain = [], []
    for _ in range(repeats):
        ours.append(timed(lambda: fit(ours_model, vae_loss, data, settings), device) / steps)
        plain.append(timed(lambda: plain_vae_epoch(plain_model, plain_opt, data, batch_size), device) / steps)
    return ours, plain


# ---------------------------------------------------------------- GAN


def plain_gan_steps(gan: GAN, d_opt, g_opt, sample_real: Callable[[int], torch.Tensor], steps: int, n: int) -> None:
    latent = gan.settings.latent_dim
    for _ in range(steps):
        real = sample_real(n)
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


def bench_gan(steps: int, repeats: int, device: torch.device) -> tuple[list[float], list[float]]:
    mixture, n = grid(), 256
    ours_gan = GAN(GANSettings()).to(device)
    plain_gan = GAN(GANSettings()).to(device)
    settings = AdversarialSettings(steps=steps, batch_size=n, log_every=steps, progress=False)
    d_opt = torch.optim.Adam(plain_gan.discriminator.parameters(), lr=settings.lr, betas=settings.betas)
    g_opt = torch.optim.Adam(plain_gan.generator.parameters(), lr=settings.lr, betas=settings.betas)

    def sample_real(count: int) -> torch.Tensor:
        return mixture.sample(count).to(device)

    ours, plain = [], []
    for _ in range(repeats):
        ours.append(timed(lambda: train_gan(ours_gan, sample_real, settings), device) / steps)
        plain.append(timed(lambda: plain_gan_steps(plain_gan, d_opt, g_opt, sample_real, steps, n), device) / steps)
    return ours, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device={device} · torch {torch.__version__} · threads={torch.get_num_threads()} · "
          f"{args.steps} steps × {args.repeats} alternating repeats (median)")
    print(f"{'model':<6} {'ours ms/step':>13} {'plain ms/step':>14} {'ratio':>7}")
    for name, bench in (("VAE", bench_vae), ("GAN", bench_gan)):
        ours, plain = bench(args.steps, args.repeats, device)
        ours_ms, plain_ms = 1000 * statistics.median(ours[1:]), 1000 * statistics.median(plain[1:])  # first is warm-up
        print(f"{name:<6} {ours_ms:>13.3f} {plain_ms:>14.3f} {ours_ms / plain_ms:>7.3f}")


if __name__ == "__main__":
    main()
