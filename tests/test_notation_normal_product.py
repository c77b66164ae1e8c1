"""Notation added for the tempered posterior (book/beta_vae.md) and the log-likelihood (book/vi.md).

:func:`dgm.derivations.notation.normal` is a Gaussian whose mean and variance may
hold names; a ``Product`` over data points is multiplied out where its bounds are
numbers, so that $\\log \\prod_i p(x_i) = \\sum_i \\log p(x_i)$ can be checked.
"""

import pytest
import sympy as sp

from dgm.derivations.derive import Derivation, StepError
from dgm.derivations.notation import E, Named, evaluate, gaussian, latex, normal

z, x = sp.symbols("z x", real=True)
beta, s2 = sp.symbols("beta s^2", positive=True)
c_star = Named(r"{c^*}", 1 / (1 + beta * s2))
v_star = Named(r"{v^*}", beta * s2 / (1 + beta * s2))


def test_a_normal_prints_its_named_parameters_and_evaluates_by_their_values():
    q = normal(z, c_star * x, v_star)
    assert latex(q) == r"\mathcal N\left(z; x {c^*}, {v^*}\right)"
    plain = gaussian(z, x / (1 + beta * s2), beta * s2 / (1 + beta * s2))
    assert sp.simplify(evaluate(q) - evaluate(plain)) == 0
    assert sp.simplify(evaluate(E(z**2, q)) - (x**2 / (1 + beta * s2) ** 2 + beta * s2 / (1 + beta * s2))) == 0


def test_a_named_normal_shows_the_definitions_of_its_names_in_a_derivation():
    q = normal(z, c_star * x, v_star, name="q^*", given=x)
    assert latex(q) == r"q^*(z \mid x)"
    p_x_z, p_z = gaussian(x, z, s2, name="p", given=z), gaussian(z, 0, 1, name="p")
    chain = Derivation(normal(z, c_star * x, v_star)).propto(p_x_z ** (1 / beta) * p_z, "complete the square", wrt=z)
    assert chain.steps[0].check == "exact"
    assert {n.name for n in chain.names()} == {"{c^*}", "{v^*}"}


def test_a_wrong_tempered_posterior_is_refused():
    p_x_z, p_z = gaussian(x, z, s2, name="p", given=z), gaussian(z, 0, 1, name="p")
    wrong = normal(z, c_star * x, Named(r"{v^*}", s2 / (1 + beta * s2)))  # the variance without β
    with pytest.raises(StepError):
        Derivation(wrong).propto(p_x_z ** (1 / beta) * p_z, "complete the square", wrt=z)


def test_an_expectation_under_a_normal_of_a_non_polynomial_is_left_as_an_integral():
    assert evaluate(E(sp.exp(z), normal(z, c_star * x, v_star))).has(sp.Integral)


def test_the_log_of_a_product_over_data_is_the_sum_of_the_logs():
    data, i = sp.IndexedBase("x"), sp.Symbol("i", integer=True, positive=True)
    mean = sp.Symbol("b", real=True)
    point = gaussian(data[i], mean, 1, name="p")
    likelihood = sp.Product(point, (i, 1, Named("N", 3)))
    assert latex(likelihood) == r"\prod_{i=1}^{N} p({x}_{i})"
    assert not evaluate(likelihood).has(sp.Product)  # multiplied out: three factors
    Derivation(sp.log(likelihood)).eq(sp.Sum(sp.log(point), (i, 1, Named("N", 3))), "the log of a product")
    with pytest.raises(StepError):
        Derivation(sp.log(likelihood)).eq(sp.Sum(sp.log(point), (i, 1, Named("N", 2))), "one term short")


def test_a_product_with_a_symbolic_bound_is_left_alone():
    data, i, n = sp.IndexedBase("x"), sp.Symbol("i", integer=True, positive=True), sp.Symbol("n", integer=True, positive=True)
    assert evaluate(sp.Product(gaussian(data[i], 0, 1, name="p"), (i, 1, n))).has(sp.Product)
