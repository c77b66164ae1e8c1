"""The derivation engine: true steps pass, perturbed steps fail, and the failure names the step."""

import pytest
import sympy as sp

from dgm.derive import CannotCheck, Derivation, StepError
from dgm.instances import LinearGaussian, gaussian_expectation, normal_logpdf

x = sp.Symbol("x", real=True)
t = sp.Symbol("t", positive=True)
z = sp.Symbol("z", real=True)
mu = sp.Symbol("mu", real=True)
sigma2 = sp.Symbol("sigma2", positive=True)


def test_exact_equality_passes_and_says_exact():
    d = Derivation((x + 1) ** 2).eq(x**2 + 2 * x + 1, "expand the square")
    assert d.steps[0].check == "exact"
    assert d.result == x**2 + 2 * x + 1


@pytest.mark.parametrize(
    "wrong, what",
    [
        (x**2 - 2 * x + 1, "a wrong sign"),
        ((x**2 + 2 * x + 1) / 2, "a stray factor 1/2"),
        (x**2 + 2 * x, "a dropped constant"),
    ],
)
def test_perturbed_equality_fails_naming_step_and_sides(wrong, what):
    with pytest.raises(StepError) as error:
        Derivation((x + 1) ** 2, title="the square").eq(x**2 + 2 * x + 1, "expand").eq(wrong, what)
    message = str(error.value)
    assert "step 2" in message and what in message and "the square" in message
    assert str(wrong) in message and "x**2 + 2*x + 1" in message


def test_missing_half_in_gaussian_kl_fails():
    kl = gaussian_expectation(normal_logpdf(z, mu, sigma2) - normal_logpdf(z, 0, 1), z, mu, sigma2)
    right = (mu**2 + sigma2 - 1 - sp.log(sigma2)) / 2
    Derivation(kl).eq(right, "Gaussian moments")
    with pytest.raises(StepError):
        Derivation(kl).eq(2 * right, "forgot the 1/2")


def test_numeric_equality_is_labelled_numeric():
    integral = sp.Integral(sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    d = Derivation(integral, points=6).eq(1, "a density integrates to one")
    assert d.steps[0].check.startswith("numeric")
    with pytest.raises(StepError):
        Derivation(integral, points=6).eq(sp.Rational(1, 2), "wrong normaliser")


def test_inequalities_prove_or_check_and_fail_when_flipped():
    assert Derivation(x**2 + 1).ge(2 * x, "AM-GM").steps[0].check.startswith("exact")
    assert Derivation(t - 1 - sp.log(t)).ge(0, "log t <= t - 1").steps[0].check.startswith("exact")
    assert Derivation(sp.log(t)).le(t - 1, "tangent line").steps[0].check.startswith(("exact", "numeric"))
    with pytest.raises(StepError):
        Derivation(t - 1 - sp.log(t)).le(0, "flipped")
    with pytest.raises(StepError):
        Derivation(sp.log(t)).ge(t - 1, "flipped")
    with pytest.raises(StepError):
        Derivation(x**2).ge(x**2 + 1, "always false")


def test_proportional_and_equal_up_to_a_constant():
    gauss = sp.exp(-((z - mu) ** 2) / 2)
    Derivation(gauss).propto(sp.exp(-(z**2) / 2 + mu * z), "drop exp(-mu^2/2)", wrt=z)
    Derivation(sp.log(gauss)).const(-(z**2) / 2 + mu * z, "drop -mu^2/2", wrt=z)
    with pytest.raises(StepError):
        Derivation(gauss).propto(sp.exp(-(z**2) / 2), "dropped a term that depends on z", wrt=z)
    with pytest.raises(StepError):
        Derivation(sp.log(gauss)).const(-(z**2) / 2 - mu * z, "wrong sign of the cross term", wrt=z)
    # proportional in z does not mean proportional in mu
    with pytest.raises(StepError):
        Derivation(gauss).propto(sp.exp(-(z**2) / 2 + mu * z), "not in mu", wrt=mu)


def test_every_step_needs_a_reason_and_wrt():
    with pytest.raises(ValueError):
        Derivation(x).eq(x, " ")
    with pytest.raises(ValueError):
        Derivation(sp.Integral(sp.exp(-(z**2)), (z, 0, 1)) * x).const(x, "no wrt", wrt=())
    # symbolically decidable sides too: an empty wrt must not pass as "exact"
    with pytest.raises(ValueError, match="wrt"):
        Derivation(x).const(x + 1, "no wrt", wrt=())
    with pytest.raises(ValueError, match="wrt"):
        Derivation(x).propto(2 * x, "no wrt", wrt=[])


def test_undefined_functions_cannot_be_checked_numerically():
    f = sp.Function("f")
    with pytest.raises(CannotCheck, match="tractable instance"):
        Derivation(f(x) + sp.Integral(f(z), (z, 0, 1))).eq(f(x) + 1, "unknown")


def test_rendering_shows_steps_reasons_and_checks():
    d = Derivation((x + 1) ** 2, title="A square", instance="all real x").eq(x**2 + 2 * x + 1, "expand").ge(2 * x, "drop")
    markdown = d._repr_markdown_()
    assert "**A square.**" in markdown and "Checked on all real x." in markdown
    assert r"\begin{align*}" in markdown and r"\tag*{[2]}" in markdown and r"\ge" in markdown
    assert "| [1] | expand | ✓ exact |" in markdown
    assert r"\text{expand}" in d._repr_latex_()


def test_elbo_identity_fails_when_a_sign_is_flipped():
    model = LinearGaussian()
    m, v = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)
    log_q = normal_logpdf(model.z, m, v)
    elbo = model.expect(model.log_joint() - log_q, m, v)
    kl = model.expect(log_q - model.log_posterior(), m, v)
    Derivation(model.log_marginal()).eq(elbo + kl, "ELBO identity")
    with pytest.raises(StepError):
        Derivation(model.log_marginal()).eq(elbo - kl, "wrong sign of the KL")
    Derivation(model.log_marginal()).ge(elbo, "Jensen")
    with pytest.raises(StepError):
        Derivation(model.log_marginal()).le(elbo, "flipped Jensen")
