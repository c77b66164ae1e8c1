"""The minibatch-weighted (MWS) estimate of log q(z) and of the total correlation, against exact answers.

The weights are checked by enumerating every minibatch of a small data set
(the estimate of q(z) must average to the exact mixture), the log-sum-exp
against an explicit loop over the data set, and the TC against the exact TC
of a Gaussian aggregate.
"""

import itertools
import math

import pytest
import torch

from dgm.distributions import diagonal_normal_log_prob
from dgm.evaluation.total_correlation import (
    LogDensities,
    aggregate_log_densities,
    gaussian_total_correlation,
    log_posterior_matrix,
    minibatch_weighted_log_qz,
    minibatch_weights,
    mixture_log_densities,
    total_correlation,
    total_correlation_mws,
)

DOUBLE = torch.float64


def encoder_outputs(n: int, dims: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, dims, generator=generator, dtype=DOUBLE)
    log_var = 0.5 * torch.randn(n, dims, generator=generator, dtype=DOUBLE) - 1.0
    return mean, log_var


def test_weights_sum_to_one_and_are_uniform_when_the_batch_is_the_data_set():
    for m, n in [(2, 2), (3, 10), (16, 1000), (64, 64)]:
        weights = minibatch_weights(m, n)
        assert torch.allclose(weights.sum(dim=1), torch.ones(m, dtype=DOUBLE), atol=1e-14)
        assert torch.allclose(weights.diagonal(), torch.full((m,), 1 / n, dtype=DOUBLE))
    assert torch.allclose(minibatch_weights(5, 5), torch.full((5, 5), 0.2, dtype=DOUBLE))


def test_the_log_sum_exp_is_the_log_of_the_mixture_computed_directly():
    mean, log_var = encoder_outputs(7, 3, seed=0)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=DOUBLE)
    exact = aggregate_log_densities(z, mean, log_var)
    # the mixture (1/N) Σ_n q(z | x_n), one data point at a time, without logs
    joint = torch.stack([diagonal_normal_log_prob(z, mean[n], log_var[n]).exp() for n in range(7)]).mean(dim=0)
    assert torch.allclose(exact.joint, joint.log(), atol=1e-12)
    for d in range(3):
        marginal = torch.stack(
            [diagonal_normal_log_prob(z[:, d : d + 1], mean[n, d : d + 1], log_var[n, d : d + 1]).exp() for n in range(7)]
        ).mean(dim=0)
        assert torch.allclose(exact.marginals[:, d], marginal.log(), atol=1e-12)
    assert torch.allclose(log_posterior_matrix(z, mean, log_var).sum(dim=2)[:, 2], diagonal_normal_log_prob(z, mean[2], log_var[2]))


def test_far_codes_do_not_underflow():
    mean, log_var = encoder_outputs(5, 2, seed=2)
    far = torch.full((1, 2), 60.0, dtype=DOUBLE)  # every q(z | x_n) underflows to 0 in double precision
    densities = aggregate_log_densities(far, mean, log_var)
    assert torch.isfinite(densities.joint).all() and torch.isfinite(densities.marginals).all()


def test_chunked_aggregate_equals_one_pass():
    mean, log_var = encoder_outputs(50, 3, seed=3)
    z = torch.randn(40, 3, generator=torch.Generator().manual_seed(4), dtype=DOUBLE)
    whole, chunked = aggregate_log_densities(z, mean, log_var), aggregate_log_densities(z, mean, log_var, chunk=300)
    assert torch.allclose(whole.joint, chunked.joint) and torch.allclose(whole.marginals, chunked.marginals)


def test_the_estimate_of_q_averages_to_the_exact_mixture_over_every_minibatch():
    """Data set of N = 6 points, minibatches of M = 3 distinct points: for the code z of point 0, average
    the MWS estimate of q(z) (not its log) over the C(5, 2) = 10 choices of the other two points."""
    n, m = 6, 3
    mean, log_var = encoder_outputs(n, 2, seed=5)
    z = mean[:1] + (0.5 * log_var[:1]).exp() * torch.randn(1, 2, generator=torch.Generator().manual_seed(6), dtype=DOUBLE)
    estimates, marginal_estimates = [], []
    for others in itertools.combinations(range(1, n), m - 1):
        batch = [0, *others]
        codes = torch.cat([z, mean[list(others)]])  # only row 0's estimate is used; the other rows are any codes
        densities = minibatch_weighted_log_qz(codes, mean[batch], log_var[batch], n)
        estimates.append(densities.joint[0].exp())
        marginal_estimates.append(densities.marginals[0].exp())
    exact = aggregate_log_densities(z, mean, log_var)
    assert torch.allclose(torch.stack(estimates).mean(), exact.joint[0].exp(), rtol=1e-12)
    assert torch.allclose(torch.stack(marginal_estimates).mean(dim=0), exact.marginals[0].exp(), rtol=1e-12)
    # and the log of the estimate is biased downwards (Jensen): its mean is below log q(z)
    assert torch.stack(estimates).log().mean() < exact.joint[0]


def test_a_batch_that_is_the_whole_data_set_gives_the_exact_densities():
    mean, log_var = encoder_outputs(12, 3, seed=7)
    z = mean + (0.5 * log_var).exp() * torch.randn(12, 3, generator=torch.Generator().manual_seed(8), dtype=DOUBLE)
    mws, exact = minibatch_weighted_log_qz(z, mean, log_var, 12), aggregate_log_densities(z, mean, log_var)
    assert torch.allclose(mws.joint, exact.joint, atol=1e-12) and torch.allclose(mws.marginals, exact.marginals, atol=1e-12)
    assert torch.allclose(total_correlation_mws(z, mean, log_var, 12), total_correlation(exact), atol=1e-12)


def test_a_factorised_aggregate_has_total_correlation_zero():
    densities = LogDensities(torch.tensor([-1.0, -3.0]), torch.tensor([[-0.5, -0.5], [-1.0, -2.0]]))
    assert float(total_correlation(densities)) == 0.0


def test_gaussian_total_correlation_against_entropies():
    # TC = Σ_d H(z_d) − H(z) for a Gaussian, from torch's entropies: an independent route
    generator = torch.Generator().manual_seed(9)
    root = torch.randn(4, 4, generator=generator, dtype=DOUBLE)
    covariance = root @ root.T + 0.5 * torch.eye(4, dtype=DOUBLE)
    marginals = sum(torch.distributions.Normal(0.0, covariance[d, d].sqrt()).entropy() for d in range(4))
    joint = torch.distributions.MultivariateNormal(torch.zeros(4, dtype=DOUBLE), covariance).entropy()
    assert torch.allclose(gaussian_total_correlation(covariance), marginals - joint, atol=1e-12)
    rho = 0.8
    pair = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=DOUBLE)
    assert math.isclose(float(gaussian_total_correlation(pair)), -0.5 * math.log(1 - rho**2), rel_tol=1e-12)
    assert float(gaussian_total_correlation(torch.diag(torch.tensor([0.5, 2.0, 3.0], dtype=DOUBLE)))) == pytest.approx(0.0, abs=1e-14)


def test_mws_total_correlation_of_a_gaussian_aggregate():
    """Data x ~ N(0, I), encoder q(z | x) = N(Ax, 0.1 I): the aggregate of a large data set is N(0, AAᵀ + 0.1 I)
    with TC 0.5108 (ρ = 0.8). Over 40 minibatches of 512 from a data set of 10⁶, the MWS estimate's mean is within
    0.03 of it; the spread of one estimate at M = 512 was 0.035 in book/beta_vae.md's study (D = 2), so the mean
    of 40 has a standard error near 0.006 and 0.03 allows its bias there plus 4 standard errors."""
    covariance = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=DOUBLE)
    variance = 0.1
    encoder_map = torch.linalg.cholesky(covariance - variance * torch.eye(2, dtype=DOUBLE))
    generator = torch.Generator().manual_seed(10)
    estimates = []
    for _ in range(40):
        mean = torch.randn(512, 2, generator=generator, dtype=DOUBLE) @ encoder_map.T  # a uniform minibatch of a fresh data set
        log_var = torch.full_like(mean, math.log(variance))
        z = mean + math.sqrt(variance) * torch.randn(mean.shape, generator=generator, dtype=DOUBLE)
        estimates.append(total_correlation_mws(z, mean, log_var, 10**6))
    estimates = torch.stack(estimates)
    exact = gaussian_total_correlation(covariance)
    assert abs(float(estimates.mean() - exact)) < 0.03, (float(estimates.mean()), float(exact), float(estimates.std()))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: minibatch_weights(1, 10), "2 <= batch_size <= dataset_size"),
        (lambda: minibatch_weights(8, 4), "2 <= batch_size <= dataset_size"),
        (lambda: minibatch_weights(4, 10.0), "2 <= batch_size <= dataset_size"),
        (lambda: aggregate_log_densities(torch.zeros(3, 2), torch.zeros(5, 3), torch.zeros(5, 3)), "same L"),
        (lambda: minibatch_weighted_log_qz(torch.zeros(3, 2), torch.zeros(4, 2), torch.zeros(4, 2), 10), "as many codes"),
        (lambda: mixture_log_densities(torch.zeros(3, 2), torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4, 3)), "log_weights"),
        (lambda: gaussian_total_correlation(torch.zeros(2, 3)), "square"),
        (lambda: gaussian_total_correlation(torch.tensor([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
    ],
)
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_exercise_keys_agree_with_the_library():
    """ex-beta-tc (three equicorrelated dimensions) against gaussian_total_correlation, and ex-beta-mws-bias
    (weights 1/M that ignore N) against the mean of such an estimate over every minibatch of a small data set."""
    from dgm.derivations.exercises import EXERCISES

    def key(label: str, **values: float) -> float:
        exercise = EXERCISES[label]
        return float(exercise.expected.subs({symbol: values[symbol.name] for symbol in exercise.symbols}))

    for rho in (-0.4, 0.1, 0.6, 0.95):
        covariance = (1 - rho) * torch.eye(3, dtype=DOUBLE) + rho * torch.ones(3, 3, dtype=DOUBLE)
        assert math.isclose(key("ex-beta-tc", rho=rho), float(gaussian_total_correlation(covariance)), rel_tol=1e-12)
    n, m = 6, 3
    mean, log_var = encoder_outputs(n, 2, seed=11)
    z = mean[:1] + 0.1 * torch.randn(1, 2, generator=torch.Generator().manual_seed(12), dtype=DOUBLE)
    densities = diagonal_normal_log_prob(z, mean, log_var).exp()  # q(z | x_n), n = 0..5
    uniform = torch.full((1, m), -math.log(m), dtype=DOUBLE)
    estimates = [
        mixture_log_densities(z, mean[[0, *others]], log_var[[0, *others]], uniform).joint[0].exp()
        for others in itertools.combinations(range(1, n), m - 1)
    ]
    bias = float(torch.stack(estimates).mean() - densities.mean())
    own, others = float(densities[0]), float(densities[1:].mean())
    assert math.isclose(bias, key("ex-beta-mws-bias", a=own, b=others, N=n, M=m), rel_tol=1e-10)
