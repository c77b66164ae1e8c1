"""The Fréchet distance against closed forms, and the digit classifier on the bundled subset."""

import pytest
import torch

from dgm.data import mnist
from dgm.evaluation.quality import DigitClassifier, accuracy, features, frechet_distance, judge, train_classifier
from dgm.training import TrainSettings


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    generator = torch.Generator().manual_seed(0)
    # 1-D: FD(N(m1, s1²), N(m2, s2²)) = (m1 − m2)² + (s1 − s2)²
    a = 1.0 + 2.0 * torch.randn(400_000, 1, generator=generator, dtype=torch.float64)
    b = -0.5 + 0.5 * torch.randn(400_000, 1, generator=generator, dtype=torch.float64)
    assert frechet_distance(a, b) == pytest.approx(1.5**2 + 1.5**2, rel=0.01)
    # diagonal covariances: the sum over coordinates
    scales_a, scales_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.5, 1.0, 0.5])
    a = torch.randn(400_000, 3, generator=generator, dtype=torch.float64) * scales_a
    b = torch.randn(400_000, 3, generator=generator, dtype=torch.float64) * scales_b + 1.0
    expected = 3 * 1.0 + float(((scales_a - scales_b) ** 2).sum())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.01)


def test_frechet_distance_with_correlated_covariances_matches_the_matrix_formula():
    # Σ_a and Σ_b that do not commute: compare with tr(Σa + Σb − 2 (Σa^{1/2} Σb Σa^{1/2})^{1/2}) from exact covariances
    generator = torch.Generator().manual_seed(1)
    mix_a, mix_b = torch.randn(4, 4, generator=generator, dtype=torch.float64), torch.randn(4, 4, generator=generator, dtype=torch.float64)
    a = torch.randn(300_000, 4, generator=generator, dtype=torch.float64) @ mix_a.T
    b = torch.randn(300_000, 4, generator=generator, dtype=torch.float64) @ mix_b.T
    cov_a, cov_b = mix_a @ mix_a.T, mix_b @ mix_b.T
    values, vectors = torch.linalg.eigh(cov_a)
    root = vectors @ torch.diag(values.sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root @ cov_b @ root).sqrt().sum()
    exact = float(cov_a.trace() + cov_b.trace() - 2 * cross)
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.02)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_refuses_mismatched_features():
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))


def test_the_classifier_learns_the_subset_and_judges_real_digits_as_close():
    train, test = mnist.subset("train"), mnist.subset("test")
    model, history = train_classifier(train.images, train.labels, TrainSettings(epochs=3, batch_size=64, progress=False))
    assert history.terms["accuracy"][-1] > 0.85  # the mean over the third epoch
    assert accuracy(model, test.images, test.labels) > 0.85  # 0.93 with this seed (torch 2.14, CPU)
    reference = features(model, test.floats()[:250])
    real = judge(model, test.floats()[250:], reference)
    noise = judge(model, torch.rand(250, 1, 28, 28), reference)
    assert real.frechet < noise.frechet / 5
    assert real.class_entropy > 2.0  # the ten digits are all there
    assert isinstance(model, DigitClassifier)
