"""The FactorVAE metric and MIG on hand-made codes whose scores are known."""

import itertools
import math

import pytest
import torch

from dgm.data.factors import random_factors
from dgm.evaluation.disentanglement import discretize, entropy, factor_vae_metric, mig, mutual_information

SIZES = (3, 6, 40, 32, 32)  # dSprites' grid


def identity(factors: torch.Tensor) -> torch.Tensor:
    """One code dimension per factor: perfectly disentangled."""
    return factors.float()


def test_one_dimension_per_factor_scores_one():
    score = factor_vae_metric(identity, SIZES, train_votes=200, eval_votes=200)
    assert score.accuracy == 1.0
    assert torch.equal(score.votes.argmax(dim=1), torch.arange(5))


def test_collapsed_dimensions_are_pruned_and_do_not_change_the_score():
    generator = torch.Generator().manual_seed(0)

    def with_dead_dimensions(factors):
        noise = 0.01 * torch.randn(len(factors), 1, generator=generator)  # a dimension collapsed to (near) a constant
        return torch.cat([identity(factors), torch.zeros(len(factors), 1), noise], dim=1)

    score = factor_vae_metric(with_dead_dimensions, SIZES, train_votes=200, eval_votes=200)
    assert score.accuracy == 1.0
    assert score.active.tolist() == [True] * 5 + [False, False]


def test_a_code_that_misses_one_factor_scores_four_fifths():
    # the votes for the missing factor land on dimensions that belong to other factors: 1/5 of the votes are wrong
    score = factor_vae_metric(lambda f: identity(f)[:, :4], SIZES, train_votes=1000, eval_votes=2000)
    assert score.accuracy == pytest.approx(0.8, abs=0.03)


def test_mixing_the_factors_lowers_the_score():
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)))
    standardised = lambda f: (f.float() / torch.tensor(SIZES)) @ rotation  # noqa: E731
    assert factor_vae_metric(standardised, SIZES).accuracy < 0.8


def test_a_representation_that_has_collapsed_entirely_scores_zero():
    score = factor_vae_metric(lambda f: torch.zeros(len(f), 3), SIZES, train_votes=10, eval_votes=10)
    assert score.accuracy == 0.0 and not score.active.any()


def full_grid(sizes):
    return torch.tensor(list(itertools.product(*[range(s) for s in sizes])))


def test_entropy_and_mutual_information_of_uniform_labels():
    grid = full_grid((3, 4))
    assert float(entropy(grid[:, 1])) == pytest.approx(math.log(4))
    assert float(mutual_information(grid[:, 0], grid[:, 0])) == pytest.approx(math.log(3))
    assert float(mutual_information(grid[:, 0], grid[:, 1])) == pytest.approx(0.0, abs=1e-12)


def test_discretize_puts_few_distinct_values_in_distinct_bins():
    codes = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    assert discretize(codes, 20).squeeze(1).tolist() == [0, 5, 10, 15, 19]


def test_mig_is_one_for_one_dimension_per_factor():
    factors = full_grid((3, 4, 5))
    score = mig(factors.float(), factors)
    assert score.mig == pytest.approx(1.0)
    assert torch.allclose(score.information.diagonal(), torch.tensor([math.log(3), math.log(4), math.log(5)]).float())


def test_mig_is_zero_for_a_factor_copied_into_two_dimensions():
    factors = full_grid((3, 4, 5))
    codes = torch.cat([factors[:, :1], factors], dim=1).float()  # factor 0 twice
    score = mig(codes, factors)
    assert score.per_factor.tolist() == pytest.approx([0.0, 1.0, 1.0])
    assert score.mig == pytest.approx(2 / 3)


def test_mig_does_not_mind_one_dimension_carrying_two_factors():
    # z_1 = 4 v_0 + v_1 tells both factors exactly; MIG asks only that each factor's best dimension stands out
    factors = full_grid((3, 4, 5))
    codes = torch.stack([4 * factors[:, 0] + factors[:, 1], factors[:, 2]], dim=1).float()
    assert mig(codes, factors).mig == pytest.approx(1.0)


def test_mig_refuses_a_single_dimension():
    factors = full_grid((3, 4))
    with pytest.raises(ValueError, match="L ≥ 2"):
        mig(factors[:, :1].float(), factors)


def test_random_factors_hold_a_fixed_factor_and_refuse_one_out_of_range():
    factors = random_factors(50, SIZES, torch.Generator().manual_seed(0), fixed=(2, 7))
    assert (factors[:, 2] == 7).all() and (factors < torch.tensor(SIZES)).all()
    with pytest.raises(ValueError, match="out of range"):
        random_factors(5, SIZES, fixed=(2, 40))


def test_votes_are_batched_and_equal_to_a_vote_by_vote_loop():
    """The metric calls the representation on a few large batches, and its votes are those of Kim & Mnih's loop."""
    from dgm.evaluation.disentanglement import _votes, codes_of

    sizes = (3, 6, 10, 8)
    weights = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    calls = []

    def represent(factors):
        calls.append(len(factors))
        return factors.float() @ weights + torch.sin(3.0 * factors.float().sum(1, keepdim=True) * torch.arange(6.0))

    scale, active = torch.ones(6), torch.tensor([True, True, False, True, True, True])
    batched = _votes(represent, sizes, 200, 50, scale, active, torch.Generator().manual_seed(5))
    assert len(calls) == 2  # 200 votes × 50 inputs in chunks of 5,000

    generator, loop = torch.Generator().manual_seed(5), torch.zeros(6, 4, dtype=torch.long)
    candidates = active.nonzero().squeeze(1)
    for _ in range(200):
        factor = int(torch.randint(4, (1,), generator=generator))
        value = int(torch.randint(sizes[factor], (1,), generator=generator))
        codes = codes_of(represent, random_factors(50, sizes, generator, fixed=(factor, value)))
        loop[candidates[codes[:, candidates].var(dim=0).argmin()], factor] += 1
    assert torch.equal(batched, loop)
    assert batched[2].sum() == 0 and batched.sum() == 200
