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


# --- the pieces of book/vdm (and book/ddpm, book/ddim): Gaussians with named parameters, the Gaussian integral,
# --- sums and products in the order written, functions of time, and definite integrals by an antiderivative


def test_expanded_logs_split_products_and_expanded_normal_is_the_same_density():
    from dgm.derivations.notation import expanded_logs, expanded_normal, product

    assert expanded_logs(sp.log(2 * sp.pi * v * (1 + v) ** 2)) == sp.log(2) + sp.log(sp.pi) + sp.log(v) + 2 * sp.log(1 + v)
    scale = Named("c", 1 / (1 + v))
    q = expanded_normal(z, product(scale, x), 1 - scale, name="q", given=x)
    plain = gaussian(z, x / (1 + v), v / (1 + v))
    assert latex(q) == r"q(z \mid x)"
    assert latex(expanded_normal(z, product(scale, x), v)) == r"\mathcal N\left(z; c x, v\right)"
    assert sp.simplify(evaluate(sp.log(q)) - evaluate(sp.log(plain))) == 0
    assert not any(isinstance(node, sp.log) and node.args[0].is_Mul for node in sp.preorder_traversal(q.log_value))
    assert sp.simplify(evaluate(E(z**2, q)) - ((x / (1 + v)) ** 2 + v / (1 + v))) == 0


def test_the_gaussian_integral_chains_a_step_and_a_marginal():
    from dgm.derivations.notation import expanded_normal, integral

    c, v1, v2 = sp.Symbol("c", positive=True), sp.Symbol("v_1", positive=True), sp.Symbol("v_2", positive=True)
    step = expanded_normal(w, c * z, v1, name="q", given=z)
    marginal = expanded_normal(z, m, v2, name="q")
    chained = integral(step * marginal, z)
    assert latex(chained) == r"\int q(w \mid z) q(z) \, dz"
    assert chained.variables == (c, m, v1, v2, w)  # what is left after integrating z out, in name order
    expected = gaussian(w, c * m, c**2 * v2 + v1).log_value
    assert sp.simplify(sp.expand_log(chained.log_value - expected, force=True)) == 0
    with pytest.raises(ValueError, match="not a Gaussian"):
        integral(density("f", z, -(z**4)), z)
    with pytest.raises(ValueError, match="not negative"):
        integral(density("f", z, z**2), z)


def test_plus_and_product_print_in_the_order_written_and_evaluate_to_the_sum_and_product():
    from dgm.derivations.notation import plus, product

    a = Named("a_{t|s}", sp.Symbol("a_t", positive=True) / sp.Symbol("a_s", positive=True))
    assert latex(product(a, z)) == r"a_{t|s} z"  # SymPy alone prints z a_{t|s}
    assert latex(plus(z, -product(a, x))) == r"z - a_{t|s} x"
    assert latex(product(plus(1, v), x)) == r"\left(1 + v\right) x"  # SymPy alone prints v + 1
    assert evaluate(product(a, z)) == z * a.definition
    assert evaluate(plus(z, -product(a, x))) == z - x * a.definition
    assert latex(product(x)) == "x" and evaluate(product(x)) == x  # one factor: the last term of a sum of products
    assert latex(plus(x)) == "x" and evaluate(plus(x)) == x
    with pytest.raises(ValueError, match="at least one"):
        product()
    with pytest.raises(ValueError, match="at least one"):
        plus()


def test_a_function_of_time_prints_by_name_and_evaluates_by_its_formula():
    from dgm.derivations.notation import OfTime, slope

    t, lam, delta = sp.Symbol("t", positive=True), sp.Symbol("lambda", real=True), sp.Symbol("Delta", positive=True)
    rule = sp.Lambda(t, sp.exp(lam - delta * t))
    snr = OfTime(r"\mathrm{SNR}", rule, t)
    assert latex(snr) == r"\mathrm{SNR}\left(t\right)"
    assert latex(slope(snr)) == r"\mathrm{SNR}'\left(t\right)"
    assert evaluate(snr) == sp.exp(lam - delta * t)
    assert evaluate(slope(snr)) == -delta * sp.exp(lam - delta * t)
    later = OfTime(r"\mathrm{SNR}", rule, (t + 1) / 2)  # applied to an expression, and nested
    assert sp.simplify(evaluate(OfTime("e", sp.Lambda(t, t**2), later)) - sp.exp(2 * lam - delta * (t + 1))) == 0
    with pytest.raises(TypeError, match="Lambda"):
        OfTime("e", sp.exp(t), t)
    with pytest.raises(TypeError, match="function of time"):
        slope(sp.exp(t))


def test_a_definite_integral_needs_a_true_antiderivative():
    from dgm.derivations.notation import Definite

    t, a = sp.Symbol("t", positive=True), sp.Symbol("a", positive=True)
    area = Definite(a * t**2, t, 0, 1, antiderivative=a * t**3 / 3)
    assert latex(area) == r"\int_{0}^{1} a t^{2} \, dt"
    assert evaluate(area) == a / 3 == sp.integrate(a * t**2, (t, 0, 1))
    with pytest.raises(ValueError, match="not the integrand"):
        evaluate(Definite(a * t**2, t, 0, 1, antiderivative=a * t**3))
    # in a derivation, a step whose integrand is changed is refused
    chain = Derivation(Named("A", a / 3), title="an area").eq(area, "the fundamental theorem of calculus")
    assert chain.steps[-1].check == "exact"
    with pytest.raises(StepError):
        chain.verify_step(1, Definite(a * t**3, t, 0, 1, antiderivative=a * t**3 / 3))


def test_a_log_prints_as_written_and_evaluates_to_split_logs():
    from dgm.derivations.notation import Log

    a, b = sp.symbols("a b", positive=True)
    ratio = Named(r"\rho", a * b / (a + b))
    assert latex(Log(ratio)) == r"\log \left(\rho\right)"
    assert evaluate(Log(ratio)) == sp.log(a) + sp.log(b) - sp.log(a + b)  # split, so equal logs compare as equal
    assert sp.simplify(evaluate(Log(ratio)) - sp.log(a * b / (a + b))) == 0
