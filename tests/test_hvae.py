"""The two-layer VAE: its ELBO terms against the linear-Gaussian closed forms, the remedies, active units, training."""

import math

import numpy as np
import pytest
import torch

from dgm.data import mnist
from dgm.evaluation.likelihood import active_units, evaluate_likelihood, iwae_bound
from dgm.latent.hvae import HVAE, HVAEObjective, HVAESettings, free_bits, hvae_loss
from dgm.training import TrainSettings, fit

# the linear-Gaussian instance of book/hvae.md
A, C, D, S1, V1, V2, X = 0.8, 0.4, 0.3, 0.6, 0.2, 0.7, 1.2


def linear_instance() -> HVAE:
    """q(z1|x) = N(cx, v1), q(z2|z1) = N(d z1, v2), p(z1|z2) = N(a z2, s1²), written into one-layer MLPs."""
    model = HVAE(HVAESettings(data_dim=1, z1_dim=1, z2_dim=1, hidden=(), top_hidden=()))
    with torch.no_grad():
        for layer, weight, variance in [(model.encoder1[0], C, V1), (model.encoder2[0], D, V2), (model.prior1[0], A, S1)]:
            layer.weight.copy_(torch.tensor([[weight], [0.0]]))
            layer.bias.copy_(torch.tensor([0.0, math.log(variance)]))
    return model


def test_the_kl_terms_match_the_closed_forms_of_the_derivation():
    torch.manual_seed(0)
    with torch.no_grad():
        terms = linear_instance().elbo(torch.full((400_000, 1), X))
    kl1_dims, kl2_dims = terms.kl_dims["z1"], terms.kl_dims["z2"]
    terms_kl1, terms_kl2 = kl1_dims.sum(-1), kl2_dims.sum(-1)
    second_moment = C**2 * X**2 + V1
    kl1 = -math.log(V1) / 2 - 0.5 + math.log(S1) / 2 + ((1 - A * D) ** 2 * second_moment + A**2 * V2) / (2 * S1)
    kl2 = (D**2 * second_moment + V2 - 1 - math.log(V2)) / 2
    assert float(terms_kl1.mean()) == pytest.approx(kl1, abs=0.005)
    assert float(terms_kl2.mean()) == pytest.approx(kl2, abs=0.002)
    assert torch.allclose(terms.elbo, terms.reconstruction - terms_kl1 - terms_kl2)
    assert torch.allclose(terms.kl, terms_kl1 + terms_kl2)
    assert terms.kl_layers.keys() == {"z1", "z2"} and torch.equal(terms.kl_layers["z2"], terms_kl2)


def test_the_importance_weighted_bound_tightens_with_more_samples():
    torch.manual_seed(0)
    model, x = HVAE(HVAESettings(data_dim=16, z1_dim=4, z2_dim=2, hidden=(16,), top_hidden=(8,))), torch.rand(64, 16).round()
    with torch.no_grad():
        elbo = model.elbo(x.repeat(400, 1)).elbo.mean()
        bounds = {k: torch.stack([iwae_bound(model, x, k) for _ in range(40)]).mean() for k in (1, 5, 50)}
    assert float(bounds[1]) == pytest.approx(float(elbo), abs=0.1)  # k = 1 is the ELBO, up to Monte Carlo error
    assert float(elbo) + 0.02 < float(bounds[5]) < float(bounds[50]) - 0.02


def test_free_bits_floor_each_dimension_mean():
    kl_dims = torch.tensor([[0.0, 0.5, 2.0], [0.2, 0.7, 3.0]])
    assert float(free_bits(kl_dims, 0.0)) == pytest.approx(0.1 + 0.6 + 2.5)
    assert float(free_bits(kl_dims, 0.5)) == pytest.approx(0.5 + 0.6 + 2.5)
    assert float(free_bits(kl_dims, 1.0)) == pytest.approx(1.0 + 1.0 + 2.5)


def test_the_loss_weighs_and_floors_the_kl_but_logs_the_true_elbo():
    model, x = HVAE(HVAESettings(data_dim=16, z1_dim=4, z2_dim=2, hidden=(16,), top_hidden=(8,))), torch.rand(8, 16).round()
    results = {}
    for weight, floor in [(1.0, 0.0), (0.25, 0.0), (1.0, 5.0)]:
        torch.manual_seed(3)
        results[weight, floor] = hvae_loss(model, x, kl_weight=weight, floor=floor)
    plain = results[1.0, 0.0]
    kl = plain["kl1"] + plain["kl2"]
    assert torch.allclose(plain["loss"], -plain["elbo"], atol=1e-5)
    assert torch.allclose(results[0.25, 0.0]["loss"], -plain["reconstruction"] + 0.25 * kl, atol=1e-5)
    assert torch.allclose(results[1.0, 5.0]["loss"], -plain["reconstruction"] + 5.0 * 6, atol=1e-4)  # every dimension under 5 nats
    assert all(torch.equal(r["elbo"], plain["elbo"]) for r in results.values())


def test_warm_up_rises_linearly_then_stays_at_one():
    objective = HVAEObjective(warmup_epochs=4)
    weights = []
    for epoch in range(6):
        objective.start_epoch(epoch)
        weights.append(objective.kl_weight)
    assert weights == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    plain = HVAEObjective()
    plain.start_epoch(0)
    assert plain.kl_weight == 1.0


def test_fit_calls_the_epoch_hook_also_after_a_resume(tmp_path):
    model = HVAE(HVAESettings(data_dim=16, z1_dim=4, z2_dim=2, hidden=(16,), top_hidden=(8,)))
    images, seen = torch.rand(64, 16).round(), []
    settings = TrainSettings(epochs=2, batch_size=32, checkpoint=tmp_path / "run.pt", progress=False)
    fit(model, HVAEObjective(), images, settings, on_epoch=seen.append)
    fit(model, HVAEObjective(), images, TrainSettings(epochs=4, batch_size=32, checkpoint=tmp_path / "run.pt", progress=False),
        on_epoch=seen.append)
    assert seen == [0, 1, 2, 3]


def test_active_units_count_only_units_that_follow_the_input():
    torch.manual_seed(0)
    model = HVAE(HVAESettings(data_dim=16, z1_dim=4, z2_dim=3, hidden=(16,), top_hidden=()))
    with torch.no_grad():
        model.encoder2[0].weight[:3].zero_()  # the means of q(z2|z1) ignore z1: the top layer has collapsed
    units = active_units(model, torch.rand(500, 16).round())
    first, second = units.activity["z1"], units.activity["z2"]
    assert second.max() < 1e-10 and (first > 0).all()
    assert units.counts == {"z1": int((first > 0.01).sum()), "z2": 0}


def test_the_skip_connection_lets_z2_reach_the_decoder():
    z1, z2 = torch.zeros(1, 4), torch.randn(2, 1, 2)
    for skip in (False, True):
        model = HVAE(HVAESettings(data_dim=16, z1_dim=4, z2_dim=2, hidden=(16,), top_hidden=(8,), skip=skip))
        changed = not torch.allclose(model.decode(torch.cat([z1, z2[0]], -1)), model.decode(torch.cat([z1, z2[1]], -1)))
        assert changed == skip


def test_seeded_training_on_the_bundled_digits_raises_the_elbo():
    torch.manual_seed(0)
    train, test = mnist.subset("train"), mnist.subset("test")
    binary = mnist.binarize(test.floats()[:200], generator=torch.Generator().manual_seed(0))
    model = HVAE()
    before = evaluate_likelihood(model, binary, samples=5, progress=False)
    fit(model, HVAEObjective(), train.images, TrainSettings(epochs=2, batch_size=64, lr=1e-3, progress=False),
        transform=lambda batch: mnist.binarize(batch.float() / 255.0))
    after = evaluate_likelihood(model, binary, samples=5, progress=False)
    assert before.elbo < -500 and after.elbo > -230
    assert after.iwae >= after.elbo
    assert after.kl == pytest.approx(after.kl_layers["z1"] + after.kl_layers["z2"], rel=1e-6)


def test_inputs_of_the_wrong_size_are_refused():
    with pytest.raises(ValueError, match="784 values"):
        HVAE().elbo(torch.zeros(2, 1, 27, 27))


def test_the_importance_weights_are_the_models_densities():
    """proposal and log_joint against torch.distributions, on a model with hidden layers and the skip connection."""
    from torch.distributions import Bernoulli, Normal

    torch.manual_seed(0)
    model = HVAE(HVAESettings(data_dim=16, z1_dim=4, z2_dim=2, hidden=(16,), top_hidden=(8,), skip=True))
    x = torch.rand(5, 16).round()
    with torch.no_grad():
        z, log_q = model.proposal(x, 3)  # (3, 5, 6), (3, 5)
        log_p = model.log_joint(x, z)
        z1, z2 = z[..., :4], z[..., 4:]
        mean1, log_var1 = model.encoder1(x).chunk(2, dim=-1)
        mean2, log_var2 = model.encoder2(z1).chunk(2, dim=-1)
        prior_mean, prior_log_var = model.prior1(z2).chunk(2, dim=-1)
        expected_q = Normal(mean1, (0.5 * log_var1).exp()).log_prob(z1).sum(-1) + Normal(mean2, (0.5 * log_var2).exp()).log_prob(z2).sum(-1)
        expected_p = (Bernoulli(logits=model.decoder(z)).log_prob(x).sum(-1)
                      + Normal(prior_mean, (0.5 * prior_log_var).exp()).log_prob(z1).sum(-1) + Normal(0.0, 1.0).log_prob(z2).sum(-1))
    torch.testing.assert_close(log_q, expected_q)
    torch.testing.assert_close(log_p, expected_p)


def test_the_bound_approaches_log_evidence_computed_by_quadrature():
    """One data value, linear maps, a Bernoulli decoder: log p(x) = log ∫ Bern(x; σ(b z₁ + e)) N(z₁; 0, a² + s₁²) dz₁."""
    torch.manual_seed(0)
    model, b, e = linear_instance(), 1.5, -0.4
    with torch.no_grad():
        model.decoder[0].weight.fill_(b)
        model.decoder[0].bias.fill_(e)
        model.encoder1[0].bias[1] = math.log(1.3)  # q(z₁ | x) wider than the posterior, so that the weights have light tails
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # ∫ f(t) exp(-t²/2) dt ≈ Σ wᵢ f(tᵢ)
    z1 = math.sqrt(A**2 + S1) * nodes
    for value in (0.0, 1.0):
        p_one = 1 / (1 + np.exp(-(b * z1 + e)))
        evidence = math.log(float((weights * (p_one if value else 1 - p_one)).sum()) / math.sqrt(2 * math.pi))
        x = torch.full((400, 1), value)
        with torch.no_grad():
            elbo = model.elbo(x.repeat(50, 1)).elbo.mean().item()
            bound = iwae_bound(model, x, 1000).mean().item()
        assert elbo < evidence - 0.01  # q is not the posterior here
        assert bound == pytest.approx(evidence, abs=0.01)
