"""Tractable instances: exact Gaussian expectations, the linear-Gaussian model against Monte Carlo."""

import math

import pytest
import sympy as sp
import torch

from dgm.derivations.instances import (
    LinearGaussian,
    discrete_expectation,
    gaussian_expectation,
    gaussian_moment,
    normal_logpdf,
)

z = sp.Symbol("z", real=True)
m, v = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)


def test_gaussian_moments():
    assert gaussian_moment(4, 0, v) == 3 * v**2
    assert sp.expand(gaussian_moment(3, m, v) - (m**3 + 3 * m * v)) == 0


def test_gaussian_expectation_of_a_log_density_matches_monte_carlo():
    expr = normal_logpdf(z, 0.5, 2.0)
    exact = float(gaussian_expectation(expr, z, 1.0, 0.25))
    generator = torch.Generator().manual_seed(0)
    samples = 1.0 + 0.5 * torch.randn(400_000, generator=generator, dtype=torch.float64)
    estimate = (-0.5 * math.log(2 * math.pi * 2.0) - (samples - 0.5) ** 2 / 4.0).mean().item()
    assert abs(exact - estimate) < 5e-3


def test_non_polynomial_is_refused():
    with pytest.raises(ValueError, match="not a polynomial"):
        gaussian_expectation(sp.exp(z), z, m, v)


def test_linear_gaussian_bayes_rule_is_exact():
    model = LinearGaussian()
    difference = model.log_joint() - model.log_posterior() - model.log_marginal()
    assert sp.simplify(sp.expand_log(sp.expand(difference))) == 0


def test_linear_gaussian_posterior_matches_monte_carlo():
    model = LinearGaussian()
    values = {model.x: 1.3, model.w: 2.0, model.b: -0.4, model.s2: 0.5}
    mean, var = (float(e.subs(values)) for e in model.posterior())
    generator = torch.Generator().manual_seed(1)
    z_prior = torch.randn(2_000_000, generator=generator, dtype=torch.float64)
    weights = torch.exp(-((1.3 - 2.0 * z_prior + 0.4) ** 2) / (2 * 0.5))  # likelihood, up to a constant
    post_mean = (weights * z_prior).sum() / weights.sum()
    post_var = (weights * (z_prior - post_mean) ** 2).sum() / weights.sum()
    assert abs(post_mean.item() - mean) < 5e-3 and abs(post_var.item() - var) < 5e-3


def test_discrete_expectation():
    assert discrete_expectation([1, 2, 3], [sp.Rational(1, 2), sp.Rational(1, 4), sp.Rational(1, 4)]) == sp.Rational(7, 4)
    with pytest.raises(ValueError):
        discrete_expectation([1, 2], [1])
