"""The derivation engine: true steps pass, perturbed steps fail, and the failure names the step.

Also the four ways a wrong step used to pass: a tautology, a "∝" with a
negative ratio, a non-finite side, and a coincidence at the sampled points.
"""

import pytest
import sympy as sp

from dgm.derivations.derive import QUADRATURE_DIGITS, CannotCheck, Derivation, StepError, _by_quadrature
from dgm.derivations.instances import LinearGaussian, normal_logpdf
from dgm.derivations.notation import in_order

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
    assert f"right: {sp.latex(wrong)}" in message and "left:  x^{2} + 2 x + 1" in message


def test_missing_half_in_gaussian_kl_fails():
    from dgm.derivations.notation import KL, gaussian

    kl = KL(gaussian(z, mu, sigma2, name="q"), gaussian(z, 0, 1, name="p"))
    right = (mu**2 + sigma2 - 1 - sp.log(sigma2)) / 2
    Derivation(kl).eq(right, "Gaussian moments")
    with pytest.raises(StepError):
        Derivation(kl).eq(2 * right, "forgot the 1/2")


def test_numeric_equality_is_labelled_numeric():
    integral = sp.Integral(sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    d = Derivation(integral * t, points=6).eq(t, "a density integrates to one")
    assert d.steps[0].check.startswith("numeric")
    with pytest.raises(StepError):
        Derivation(integral * t, points=6).eq(t / 2, "wrong normaliser")


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


# -- what used to slip through ----------------------------------------------------------


def test_a_step_whose_sides_are_the_same_expression_checks_nothing():
    with pytest.raises(StepError, match="same expression"):
        Derivation(sp.log(t)).eq(sp.log(t), "multiply and divide by q(z)")
    with pytest.raises(StepError, match="step 2"):
        Derivation(x + 1).eq(in_order(x, 2, -1), "add and subtract 1").ge(in_order(x, 2, -1), "nothing")


@pytest.mark.parametrize("relation", ["symbolic", "numeric"])
def test_proportional_needs_a_positive_ratio(relation):
    density = sp.exp(-((z - mu) ** 2) / 2)
    if relation == "numeric":  # an integral forces the numeric path
        density = density * sp.Integral(sp.exp(-(x**2)), (x, 0, 1))
    with pytest.raises(StepError, match="positive"):
        Derivation(density).propto(-density, "a sign flip is not proportional", wrt=z)
    Derivation(density).propto(3 * density, "a positive factor is", wrt=z)


@pytest.mark.parametrize(
    "side",
    [sp.log(0) + x, x / 0, sp.oo, -sp.oo, sp.zoo * x, sp.nan, x + sp.oo],
    ids=["log 0", "x/0", "oo", "-oo", "zoo", "nan", "x+oo"],
)
def test_a_non_finite_side_is_an_error(side):
    for relation in ("eq", "ge", "le"):
        with pytest.raises(StepError):
            getattr(Derivation(x), relation)(side, "a non-finite right-hand side")
    with pytest.raises(StepError):
        Derivation(x).const(side, "a non-finite right-hand side", wrt=x)


def test_a_limit_may_be_infinite_when_written_as_one():
    Derivation(sp.Limit(1 / t, t, 0, "+")).eq(sp.oo, "1/t grows without bound as t → 0⁺")
    with pytest.raises(StepError):
        Derivation(sp.Limit(1 / t, t, 0, "+")).eq(-sp.oo, "the wrong infinity")


def test_steps_that_hold_only_on_moderate_values_are_caught():
    # each holds on the old sampling ranges, (0.2, 3) for positive and (-2, 2) for real symbols
    with pytest.raises(StepError):
        Derivation(sp.log(t)).ge(-2, "holds for t ≥ e⁻² ≈ 0.135 only")
    with pytest.raises(StepError):
        Derivation(sp.Abs(x - 5)).eq(5 - x, "holds for x ≤ 5 only")
    with pytest.raises(StepError):
        Derivation(t**2).le(10 * t, "holds for t ≤ 10 only")


def test_a_relative_tolerance_alone_would_accept_e_plus_one_for_large_e():
    e = sp.Symbol("e", positive=True)
    with pytest.raises(StepError):
        Derivation(e * 10**12).eq(e * 10**12 + 1, "off by one at 10¹²")


def test_numeric_checks_say_how_many_points():
    integral = sp.Integral(sp.exp(-((z - mu) ** 2) / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    check = Derivation(integral, points=10).eq(1, "a density integrates to one").steps[0].check
    assert check.startswith("numeric, ") and check.endswith("random points")
    assert int(check.split()[1]) >= 5


def test_domain_edges_are_sampled():
    rho = sp.Symbol("rho", real=True)
    # -log(1 - rho²)/2 ≤ 1 holds away from |rho| = 1 but not near it
    with pytest.raises(StepError):
        Derivation(-sp.log(1 - rho**2) / 2, domain={rho: (-1, 1)}).le(1, "false near the edges")


def test_sums_with_a_symbolic_bound_are_checked_at_the_bounds_named():
    n, i = sp.Symbol("N", integer=True, positive=True), sp.Symbol("i", integer=True, positive=True)
    xs = sp.IndexedBase("x")
    total = sp.Sum(xs[i] ** 2 + 2 * xs[i], (i, 1, n))
    d = Derivation(total, at={n: (1, 2, 3)}).eq(sp.Sum((xs[i] + 1) ** 2, (i, 1, n)) - n, "complete the square")
    assert d.steps[0].check == "exact for N = 1, 2, 3"
    with pytest.raises(StepError):
        Derivation(total, at={n: (1, 2, 3)}).eq(sp.Sum((xs[i] + 1) ** 2, (i, 1, n)) - 1, "a constant for every term")
    with pytest.raises(StepError):
        Derivation(total, at={n: (1, 2, 3)}).eq(sp.Sum((xs[i] + 1) ** 2, (i, 1, n + 1)) - n, "a bound moved")
    # the terms stay indexed until the bound is set: (Σ x_i)² = N Σ x_i² holds for N = 1 only
    with pytest.raises(StepError):
        Derivation(sp.Sum(xs[i], (i, 1, n)) ** 2, at={n: (1, 2, 3)}).eq(n * sp.Sum(xs[i] ** 2, (i, 1, n)), "wrong")


def test_verify_step_names_the_step_it_tries():
    d = Derivation((x + 1) ** 2, title="the square").eq(x**2 + 2 * x + 1, "expand").ge(2 * x, "drop x² + 1 ≥ 0")
    assert d.verify_step(1, 1 + 2 * x + x**2) == "exact"
    with pytest.raises(StepError, match=r"step 2 \(drop"):
        d.verify_step(2, 2 * x + 2)


def test_recording_collects_the_derivations_made():
    from dgm.derivations.derive import recording

    with recording() as made:
        Derivation(x).eq(x + t - t + sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1, "zero terms")
        inner = Derivation(t)
    assert len(made) == 2 and made[1] is inner
    Derivation(x)
    assert len(made) == 2


def test_a_statement_shows_the_checked_endpoints_with_a_label():
    d = Derivation((x + 1) ** 2).eq(x**2 + 2 * x + 1, "expand").ge(2 * x, "drop x² + 1 ≥ 0")
    shown = d.statement("square")._repr_markdown_()
    assert shown == "$$\n\\left(x + 1\\right)^{2} \\ge 2 x\n$$ (square)\n"
    assert d.statement(last=1).to_latex() == r"\left(x + 1\right)^{2} = x^{2} + 2 x + 1"
    both = d.statement("both") + Derivation(t).eq(in_order(t, 1, -1), "add and subtract 1").statement()
    assert r", \qquad t = " in both.to_latex() and both.label == "both"
    with pytest.raises(ValueError, match="mix"):
        Derivation(x).le(x + 1, "add 1").ge(x, "drop 1").statement()


def test_a_side_the_instance_cannot_evaluate_fails_naming_the_step():
    from dgm.derivations.notation import E, density, gaussian

    q = gaussian(z, mu, sigma2, name="q")
    joint = density("p", (x, z), -(x**2) - z**2)  # no expectation rule over two variables
    with pytest.raises(StepError, match=r"step 1 \(no rule\) of the derivation cannot be evaluated"):
        Derivation(E(z, q)).eq(E(z, joint), "no rule")


# --- integrals: the engine's quadrature on a lambdified integrand ---------------------------------------------------


def test_quadrature_of_a_lambdified_integrand_matches_sympys_evalf():
    """`_by_quadrature` replaces a 1-D integral by mpmath's tanh-sinh value on the lambdified integrand: the same
    number as SymPy's evalf of the integral (the slow path it replaces) to far below the quadrature tolerance."""
    u = sp.Symbol("u", real=True)
    for integral in [
        sp.Integral(sp.exp(-(u**2) / 2 - sp.Rational(3, 10) * u) / sp.sqrt(2 * sp.pi), (u, -sp.oo, sp.oo)),
        sp.Integral(sp.exp(-sp.Float("1.9055878051506621528587722723425", 50) * u), (u, 0, sp.oo)),
        sp.Integral(sp.log(1 + u**2), (u, sp.Rational(-1, 2), 2)),
        sp.Integral(u * sp.exp(-u), (u, 0, sp.oo)) + sp.Integral(sp.cos(3 * u) ** 2, (u, 0, sp.pi)),
    ]:
        fast = _by_quadrature(integral)
        assert not fast.has(sp.Integral), f"left to SymPy: {integral}"
        slow, quick = complex(sp.N(integral, QUADRATURE_DIGITS)), complex(sp.N(fast, QUADRATURE_DIGITS))
        assert abs(slow - quick) <= 1e-15 * (1 + abs(slow)), (integral, slow, quick)


def test_quadrature_leaves_to_sympy_what_it_cannot_settle():
    """A divergent integrand (a value beyond 1e100), a singular one (the quadrature fails), an integrand with a free
    symbol, a 2-D integral, a complex bound: the integral stays for SymPy, as before the fast path existed."""
    u, v, a = sp.symbols("u v a", real=True)
    for integral in [
        sp.Integral(sp.exp(u**2), (u, -sp.oo, sp.oo)),
        sp.Integral(1 / u, (u, -1, 1)),
        sp.Integral(sp.exp(-a * u), (u, 0, sp.oo)),
        sp.Integral(sp.exp(-(u**2) - v**2), (u, -sp.oo, sp.oo), (v, -sp.oo, sp.oo)),
        sp.Integral(sp.exp(-u), (u, 0, sp.I)),
    ]:
        assert _by_quadrature(integral) == integral, integral


def test_a_wrong_constant_in_front_of_an_integral_is_refused():
    """Through the fast path: the Gaussian integral is √(2π); √π (the ½ of the exponent dropped), 2√π and √(2π) off by
    one part in a million are refused."""
    integral = sp.Integral(sp.exp(-((z - mu) ** 2) / 2), (z, -sp.oo, sp.oo))
    check = Derivation(integral, points=6).eq(sp.sqrt(2 * sp.pi), "the Gaussian integral").steps[0].check
    assert "numeric" in check  # checked at points, through the quadrature
    for wrong in (sp.sqrt(sp.pi), sp.sqrt(2 * sp.pi) * (1 + sp.Rational(1, 10**6)), 2 * sp.sqrt(sp.pi)):
        with pytest.raises(StepError, match=r"step 1 \("):
            Derivation(integral, points=6).eq(wrong, "a wrong constant")
