"""The book's notation: each object prints as the book writes it and evaluates to its value on the instance."""

import pytest
import sympy as sp

from dgm.derivations.derive import Derivation, StepError
from dgm.derivations.instances import LinearGaussian
from dgm.derivations.notation import (
    KL,
    E,
    Grad,
    Named,
    Trace,
    density,
    discrete,
    evaluate,
    gaussian,
    in_order,
    latex,
    times,
)

model = LinearGaussian()
x, z, w, b, s2 = model.x, model.z, model.w, model.b, model.s2
m, v = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)
q = gaussian(z, m, v, name="q")
p_z = gaussian(z, 0, 1, name="p")
p_xz = density("p", (x, z), model.log_joint())
post_mean, post_var = model.posterior()
p_z_x = gaussian(z, post_mean, post_var, name="p", given=x)


def test_densities_print_with_conditional_bars_and_normals_print_as_n():
    assert latex(p_xz) == "p(x, z)"
    assert latex(p_z_x) == r"p(z \mid x)"
    assert latex(gaussian(z, m, v)) == r"\mathcal N\left(z; m, v\right)"
    assert latex(sp.log(p_z_x)) == r"\log p(z \mid x)"
    assert latex(sp.log(p_xz / q)) == r"\log \frac{p(x, z)}{q(z)}"


def test_expectation_and_kl_print_in_the_books_notation():
    assert latex(E(sp.log(p_xz), q)) == r"\mathbb E_{q(z)}\left[\log p(x, z)\right]"
    assert latex(KL(q, p_z_x)) == r"\mathrm{KL}\left(q(z) \,\middle\|\, p(z \mid x)\right)"


def test_sums_keep_the_order_written_and_products_stay_as_written():
    elbo = Named(r"\mathrm{ELBO}(q)", E(sp.log(p_xz / q), q))
    assert latex(in_order(elbo, KL(q, p_z_x))).startswith(r"\mathrm{ELBO}(q) + \mathrm{KL}")
    assert latex(in_order(m**2, v, -1, -sp.log(v))) == r"m^{2} + v - 1 - \log v"
    assert latex(times(sp.Rational(1, 2), in_order(m**2, v))) == r"\frac{m^{2} + v}{2}"


def test_gaussian_expectations_of_polynomials_are_exact():
    assert sp.expand(evaluate(E(z**2, q)) - (m**2 + v)) == 0
    assert sp.simplify(evaluate(KL(q, p_z)) - (m**2 + v - 1 - sp.log(v)) / 2) == 0


def test_a_non_polynomial_expectation_is_left_as_an_integral():
    value = evaluate(E(sp.exp(z), q))
    assert value.has(sp.Integral)
    assert abs(float(value.subs({m: 0.3, v: 0.5}).evalf()) - float(sp.exp(0.3 + 0.25))) < 1e-9


def test_discrete_expectations_are_sums_over_atoms_and_conditionals_depend_on_the_given():
    a = sp.Symbol("a", positive=True)
    y = sp.Symbol("y", integer=True)
    p_y = discrete("p", y, {0: a / (1 + a), 1: 1 / (1 + a)})
    assert sp.simplify(evaluate(E(y, p_y)) - 1 / (1 + a)) == 0
    assert sp.simplify(evaluate(E(sp.log(p_y), p_y)) - (a * sp.log(a / (1 + a)) + sp.log(1 / (1 + a))) / (1 + a)) == 0
    u = sp.Symbol("u", integer=True)
    p_u_y = discrete("p", u, {0: sp.Piecewise((sp.Rational(1, 3), sp.Eq(y, 0)), (sp.Rational(3, 4), True)),
                              1: sp.Piecewise((sp.Rational(2, 3), sp.Eq(y, 0)), (sp.Rational(1, 4), True))}, given=y)
    assert latex(p_u_y) == r"p(u \mid y)"
    assert evaluate(E(E(u, p_u_y), p_y)).subs(a, 1) == sp.Rational(2, 3) / 2 + sp.Rational(1, 4) / 2
    with pytest.raises(ValueError):
        discrete("p", (u, y), {0: 1})


def test_a_named_quantity_evaluates_to_its_definition_and_is_shown_with_it():
    elbo = Named(r"\mathrm{ELBO}(q)", E(sp.log(p_xz / q), q))
    d = Derivation(sp.log(density("p", x, model.log_marginal()))).ge(elbo, "Jensen's inequality")
    markdown = d.to_markdown()
    assert r"\mathrm{ELBO}(q) &= \mathbb E_{q(z)}" in markdown


@pytest.mark.parametrize("name", [r"\frac{a}{b}", "a + b", r"\log p(x)", r"\mathbb E[x]", "x = 1", " "])
def test_a_name_that_is_a_formula_is_refused(name):
    with pytest.raises(ValueError, match="not a name"):
        Named(name, 1)


def test_gradient_and_trace_of_a_jacobian():
    y1, y2 = sp.symbols("y1 y2", real=True)
    assert sp.simplify(evaluate(Grad(sp.log(q), z)) + (z - m) / v) == 0
    assert latex(Grad(sp.log(q), z)) == r"\nabla_{z} \log q(z)"
    field = (2 * y1 + y2**2, y1 * y2)
    assert evaluate(Trace(field, (y1, y2))) == 2 + y1
    assert latex(Trace(field, (y1, y2))) == r"\operatorname{tr} \nabla_{y_{1}, y_{2}} s"


def test_the_elbo_identity_is_checked_from_what_is_displayed():
    p_x = density("p", x, model.log_marginal())
    elbo = Named(r"\mathrm{ELBO}(q)", E(sp.log(p_xz / q), q))
    d = Derivation(sp.log(p_x)).eq(in_order(elbo, KL(q, p_z_x)), "the ELBO identity")
    assert "exact" in d.steps[0].check
    for wrong in (in_order(elbo, -KL(q, p_z_x)), in_order(elbo, KL(p_z_x, q)), elbo, times(2, elbo)):
        with pytest.raises(StepError, match="step 1"):
            d.verify_step(1, wrong)


def test_a_density_is_positive_and_its_log_is_exact():
    assert p_xz.is_positive
    assert evaluate(sp.log(p_xz)) == model.log_joint()
    assert evaluate(sp.log(p_xz**2 / q)) == 2 * model.log_joint() - q.log_value


def test_a_table_that_does_not_sum_to_one_is_refused():
    r, s = sp.symbols("r s", positive=True)
    y, u = sp.symbols("y u", integer=True)
    discrete("q", (y, u), {(0, 0): r, (0, 1): s, (1, 0): 1 - r - s, (1, 1): 0})
    discrete("q", u, {0: (1 - y) * r + y * s, 1: (1 - y) * (1 - r) + y * (1 - s)}, given=y)
    with pytest.raises(ValueError, match="sum to 1"):
        discrete("q", (y, u), {(0, 0): r, (0, 1): s, (1, 0): 1 - r**2 - s, (1, 1): 0})
    with pytest.raises(ValueError, match="sum to 1"):
        discrete("q", u, {0: (1 - y) * r + y * s, 1: (1 - y) * (1 - r) + y * (1 + s)}, given=y)


def test_a_named_square_raised_to_a_power_is_valid_tex():
    """σ_t² named as one symbol and squared prints {\\sigma_t^2}^{2}, not the double exponent MathJax refuses."""
    import sympy as sp

    from dgm.derivations.notation import Named

    variance = Named(r"\sigma_t^2", sp.Symbol("v", positive=True))
    assert sp.latex(variance**2) == r"{\sigma_t^2}^{2}"
    assert sp.latex(Named(r"\mathrm{ELBO}(q)", sp.Symbol("e"))) == r"\mathrm{ELBO}(q)"  # no superscript: as written
