r"""Judging samples of MNIST digits: a small classifier, its features, and the Fréchet distance.

The Fréchet Inception Distance (Heusel et al., 2017) fits a Gaussian to the
features of real and of generated images and reports the squared
2-Wasserstein distance between the two Gaussians,

$$
\mathrm{FD} = \lVert \mu_r - \mu_g \rVert^2 + \operatorname{tr}\big(\Sigma_r + \Sigma_g - 2(\Sigma_r \Sigma_g)^{1/2}\big).
$$

Inception features mean nothing for 28×28 digits, so here the features are
the penultimate layer of :class:`DigitClassifier`, a small network trained on
MNIST in a minute. Its numbers are comparable only with each other (same
classifier, same number of samples); that is why every report also gives the
real-versus-real baseline: two disjoint sets of real digits of the same size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.training import History, TrainSettings, fit


class DigitClassifier(nn.Module):
    """Two strided convolutions and a 128-unit feature layer: ``(N, 1, 28, 28)`` in ``[0, 1]`` → 10 logits."""

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1),  # (N, 32, 14, 14)
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # (N, 64, 7, 7)
            nn.ReLU(),
            nn.Flatten(),  # (N, 64·7·7)
            nn.Linear(64 * 7 * 7, self.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, 10)

    def features(self, images: Tensor) -> Tensor:
        """The penultimate activations ``(N, 128)`` of images ``(N, 1, 28, 28)`` or ``(N, 784)``."""
        return self.body(images.reshape(-1, 1, 28, 28))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))


def classification_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """Cross-entropy of a batch ``(images uint8 (B, 1, 28, 28), labels (B,))``, and its accuracy."""
    images, labels = batch
    logits = model(images.float() / 255.0)
    return {"loss": F.cross_entropy(logits, labels), "accuracy": (logits.argmax(1) == labels).float().mean()}


def train_classifier(images: Tensor, labels: Tensor, settings: TrainSettings) -> tuple[DigitClassifier, History]:
    """Train a :class:`DigitClassifier` on uint8 images ``(N, 1, 28, 28)`` and labels ``(N,)``."""
    torch.manual_seed(settings.seed)
    model = DigitClassifier()
    history = fit(model, classification_loss, (images, labels), settings)
    return model, history


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """The fraction of uint8 images ``(N, 1, 28, 28)`` classified correctly."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size].to(device).float() / 255.0)
        correct += int((logits.argmax(1).cpu() == labels[start : start + batch_size]).sum())
    return correct / len(images)


@torch.no_grad()
def features(model: DigitClassifier, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Features ``(N, 128)``, float64 on the CPU, of float images in ``[0, 1]``: ``(N, 1, 28, 28)`` or ``(N, 784)``."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model.features(images[start : start + batch_size].to(device).float()) for start in range(0, len(images), batch_size)]
    return torch.cat(chunks).double().cpu()


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semidefinite matrix."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    r"""The Fréchet distance between Gaussians fitted to feature sets ``a`` ``(N, D)`` and ``b`` ``(M, D)``.

    $\operatorname{tr}(\Sigma_a\Sigma_b)^{1/2}$ is computed as $\operatorname{tr}(\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2})^{1/2}$,
    a symmetric matrix with the same eigenvalues, so only symmetric eigendecompositions are needed.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least two rows to estimate a covariance")
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))  # (D, D)
    root_a = _sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float(((mean_a - mean_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


@dataclass(frozen=True)
class SampleReport:
    """How a set of samples looks to the classifier: FD to the real test digits, class spread, confidence."""

    frechet: float
    class_entropy: float  # nats; log 10 ≈ 2.303 when the ten digits are equally common
    confidence: float  # mean of the classifier's top probability


@torch.no_grad()
def judge(model: DigitClassifier, samples: Tensor, reference_features: Tensor, batch_size: int = 1000) -> SampleReport:
    """Score float samples in ``[0, 1]`` ``(N, 1, 28, 28)`` or ``(N, 784)`` against the features of real digits."""
    model.eval()
    device = next(model.parameters()).device
    feature_chunks, prob_chunks = [], []
    for start in range(0, len(samples), batch_size):  # one pass: the head reads the features already computed
        chunk_features = model.features(samples[start : start + batch_size].to(device).float())
        feature_chunks.append(chunk_features.double().cpu())
        prob_chunks.append(F.softmax(model.head(chunk_features), dim=1).cpu())
    probs = torch.cat(prob_chunks)
    share = probs.argmax(1).bincount(minlength=10).double() / len(samples)
    entropy = max(0.0, float(-(share[share > 0] * share[share > 0].log()).sum()))  # 0, not -0, for one class
    return SampleReport(
        frechet=frechet_distance(torch.cat(feature_chunks), reference_features),
        class_entropy=entropy,
        confidence=float(probs.max(1).values.mean()),
    )
