"""Part IV, diffusion: book/ddpm.md and book/ddim.md refuse their mutants, and their key steps refuse the usual slips.

The generic test of :mod:`mutations` changes what each step displays (signs,
factors, dropped terms) but does not look inside a density's parameters, so
the tests below put wrong Gaussians in place of the checked ones (a wrong
mean, a wrong variance, the DDPM weight with a slip) and require the engine
to refuse each, naming the step, as a build of the page would. Last, some
exercise keys are compared with the page's own checked objects.
"""

from pathlib import Path

import mutations
import pytest
import sympy as sp

from dgm.derivations.derive import StepError
from dgm.derivations.exercises import EXERCISES
from dgm.derivations.notation import evaluate

BOOK = Path(__file__).resolve().parents[1] / "book"


@pytest.mark.parametrize("page", ["ddpm", "ddim"])
def test_mutants_are_refused_and_rewrites_accepted(page):
    mutations.check_page(page)


@pytest.fixture(scope="module")
def ddpm() -> dict:
    return mutations.run_page(BOOK / "ddpm.md")[1]


@pytest.fixture(scope="module")
def ddim() -> dict:
    return mutations.run_page(BOOK / "ddim.md")[1]


def refused(derivation, number: int, wrong) -> None:
    """The engine refuses ``wrong`` as step ``number`` of ``derivation``, naming the step."""
    with pytest.raises(StepError, match=rf"step {number} \("):
        derivation.verify_step(number, wrong)


def test_ddpm_pages_right_steps_pass_again(ddpm):
    for name in ("forward", "marginal", "posterior", "posterior_is_gaussian", "variance", "mean", "mean_in_noise", "kl_term", "simple_loss"):
        derivation = ddpm[name]
        for number, step in enumerate(derivation.steps, start=1):
            assert derivation.verify_step(number, step.expr)


def test_ddpm_refuses_wrong_gaussians(ddpm):
    p = ddpm
    normal, product, plus = p["normal"], p["product"], p["plus"]
    xt, xp, x0, beta, abar, abar_prev, alpha = (p[n] for n in ("xt", "xp", "x0", "beta", "abar", "abar_prev", "alpha"))
    # the forward step with the standard deviation where the variance belongs, or without the √ on 1 − β_t
    refused(p["forward"], 2, sp.log(normal(xt, product(sp.sqrt(1 - beta), xp), sp.sqrt(beta))))
    refused(p["forward"], 2, sp.log(normal(xt, product(1 - beta, xp), beta)))
    # the marginal: variances multiplied instead of added, or the mean with ᾱ_t instead of √ᾱ_t
    refused(p["marginal"], 2, sp.log(normal(xt, product(sp.sqrt(alpha), sp.sqrt(abar_prev), x0), alpha * (1 - abar_prev) * beta)))
    refused(p["marginal"], 3, sp.log(normal(xt, product(abar, x0), 1 - abar)))
    refused(p["marginal"], 3, sp.log(normal(xt, product(sp.sqrt(abar), x0), 1 - abar_prev)))
    # the posterior with the forward variance β_t (the usual slip) or the mean of the prior
    refused(p["posterior_is_gaussian"], 2, sp.log(normal(xp, p["mu_tilde"], beta)))
    refused(p["posterior_is_gaussian"], 2, sp.log(normal(xp, product(sp.sqrt(abar_prev), x0), p["beta_tilde"])))
    # β̃_t with the two 1 − ᾱ swapped
    refused(p["variance"], 2, product((1 - abar) / (1 - abar_prev), beta))
    # the posterior mean in the noise with √β_t for β_t, or without 1/√α_t
    noise = p["noise"]
    refused(p["mean_in_noise"], 3, product(1 / sp.sqrt(alpha), plus(xt, -product(sp.sqrt(beta) / sp.sqrt(1 - abar), noise))))
    refused(p["mean_in_noise"], 3, plus(xt, -product(beta / sp.sqrt(1 - abar), noise)))


def test_ddpm_refuses_a_wrong_weight(ddpm):
    p = ddpm
    product, plus = p["product"], p["plus"]
    beta, sigma2, alpha, abar, eps, eps_theta = (p[n] for n in ("beta", "sigma2", "alpha", "abar", "eps", "eps_theta"))
    refused(p["kl_term"], 3, product(beta / (2 * sigma2 * alpha * (1 - abar)), plus(eps, -eps_theta) ** 2))  # β for β²
    refused(p["kl_term"], 3, product(beta**2 / (2 * sigma2 * (1 - abar)), plus(eps, -eps_theta) ** 2))  # α_t dropped
    refused(p["last_term"], 2, product(p["beta1"] / (2 * p["sigma1"]), plus(p["noise1"], -eps_theta) ** 2))  # 1/α_1 dropped


def test_ddim_refuses_wrong_gaussians(ddim):
    p = ddim
    normal, product = p["normal"], p["product"]
    xp, x0, abar_prev, sigma2 = (p[n] for n in ("xp", "x0", "abar_prev", "sigma2"))
    # the family's marginal: the variance of the step added on top (as if it were independent noise)
    refused(p["marginals"], 2, sp.log(normal(xp, product(sp.sqrt(abar_prev), x0), 1 - abar_prev + sigma2)))
    refused(p["marginals"], 2, sp.log(normal(xp, product(abar_prev, x0), 1 - abar_prev)))
    # the family without σ_t² under the root does not have the stated density
    wrong_mean = p["Named"](r"\mu_\sigma(x_t, x_0)", p["family_mean"](x0).subs(sigma2, 0))
    refused(p["family"], 1, sp.log(normal(xp, wrong_mean, sigma2)))


def test_ddim_refuses_wrong_noise_levels_and_updates(ddim):
    p = ddim
    product, plus = p["product"], p["plus"]
    abar_prev, abar_ddpm, beta = p["abar_prev"], p["abar_ddpm"], p["beta"]
    refused(p["ddpm_variance"], 2, beta)  # σ_t(1)² is β̃_t, not β_t
    refused(p["ddpm_variance"], 2, product((1 - abar_ddpm) / (1 - abar_prev), beta))
    xt, eps_theta, abar_t = p["xt"], p["eps_theta"], p["abar_t"]
    noise_level, scaled = p["noise_level"], p["scaled"]
    refused(p["ode_step"], 2, plus(scaled["t"], product(plus(noise_level["t"], -noise_level["t-1"]), eps_theta)))  # the step's sign
    refused(p["ode_step"], 1, plus(product(1 / sp.sqrt(abar_t), xt), product(sp.sqrt(1 - abar_prev) - sp.sqrt(1 - abar_t), eps_theta)))
    gamma, eps = p["gamma"], p["eps"]
    refused(p["objective"], 2, product(gamma, plus(eps, eps_theta) ** 2))


def test_exercise_keys_agree_with_the_pages(ddpm, ddim):
    # ex-ddpm-beta-tilde: the page's β̃_t, written with β_t and ᾱ_{t−1}
    key = EXERCISES["ex-ddpm-beta-tilde"]
    beta_key, a_prev_key = key.symbols
    page_value = evaluate(ddpm["variance"].result)
    assert sp.simplify(page_value - key.expected.subs({beta_key: ddpm["beta"], a_prev_key: ddpm["abar_prev"]})) == 0
    # ex-ddim-sigma: the square of the page's σ_t(η)
    key = EXERCISES["ex-ddim-sigma"]
    eta_key, a_key, a_prev_key = key.symbols
    page_value = evaluate(ddim["sigma_eta"].result) ** 2
    assert sp.simplify(page_value - key.expected.subs({eta_key: ddim["eta"], a_key: ddim["abar_t"], a_prev_key: ddim["abar_prev"]})) == 0
    # ex-ddim-weight: the page's γ_t at the largest variance the family allows, σ_t² = 1 − ᾱ_{t−1}
    key = EXERCISES["ex-ddim-weight"]
    a_key, a_prev_key = key.symbols
    page_value = evaluate(ddim["gamma"]).subs(ddim["sigma2"], 1 - ddim["abar_prev"])
    expected = key.expected.subs({a_key: ddim["abar_t"], a_prev_key: ddim["abar_prev"]})
    assert sp.simplify(page_value - expected) == 0


def test_rewritten_exercise_keys_agree_with_the_pages(ddpm, ddim):
    import numpy as np

    # ex-ddpm-best-noise: the page fits one least-squares line per step on 20,000 samples; the key's E[ε | x_t] is
    # a line too, and every fitted line lies within sampling error of it (standard errors ≤ 0.03); a key that forgets
    # the data's mean does not
    key = EXERCISES["ex-ddpm-best-noise"]
    x_key, m_key, s2_key, a_key = key.symbols
    exact = key.expected.subs({m_key: ddpm["m_data"], s2_key: ddpm["s_data"] ** 2})
    forgetful = key.expected.subs({m_key: 0, s2_key: ddpm["s_data"] ** 2})
    slope_of = sp.lambdify(a_key, sp.diff(exact, x_key))
    intercept_of, forgetful_intercept_of = (sp.lambdify(a_key, e.subs(x_key, 0)) for e in (exact, forgetful))
    alpha_bar, line = np.asarray(ddpm["alpha_bar"]), np.asarray(ddpm["line"])
    assert np.abs(line[:, 0] - slope_of(alpha_bar)).max() < 0.1
    assert np.abs(line[:, 1] - intercept_of(alpha_bar)).max() < 0.1
    assert np.abs(line[:, 1] - forgetful_intercept_of(alpha_bar)).max() > 0.3
    # ex-ddim-gaussian-ode: the key's E[ε | x̄], at the page's solution x̄(σ̄), is the derivative the page checked
    key = EXERCISES["ex-ddim-gaussian-ode"]
    x_key, sbar_key, s2_key = key.symbols
    derivative = evaluate(ddim["flow"].start)
    at_solution = key.expected.subs({x_key: evaluate(ddim["solution"]), sbar_key: ddim["sbar"], s2_key: ddim["s2"]})
    assert sp.simplify(derivative - at_solution) == 0
    assert sp.simplify(derivative - 2 * at_solution) != 0
