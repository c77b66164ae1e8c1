"""The engine builds a side's numeric function once (a mutation test puts many right sides to one left side).

A cache that returned a function built for another expression would let a wrong
step pass; these tests fail if the cache is keyed more loosely than SymPy's own
equality (precision of a Float, a Float for an Integer, a symbol's assumptions,
the order of the arguments), or if a mutated step passes once the cache is warm.
"""

import mpmath
import pytest
import sympy as sp

from dgm.derivations.derive import DIGITS, Derivation, StepError, _lambdified, _value_at
from dgm.derivations.notation import E, Named, Notation, gaussian

x = sp.Symbol("x", real=True)
y = sp.Symbol("y", real=True)
s = sp.Symbol("s", positive=True)


def value(function, *arguments):
    with mpmath.workdps(DIGITS):
        return mpmath.mpf(function(*(mpmath.mpf(a) for a in arguments)))


def test_mutants_of_one_step_are_refused_with_the_left_side_built_once():
    derivation = Derivation(sp.log(s**2 * sp.exp(x)), title="logs").eq(2 * sp.log(s) + x, "log of a product")
    _lambdified.cache_clear()
    _value_at.cache_clear()
    wrong = [2 * sp.log(s) - x, sp.log(s) + x, 2 * sp.log(s) + x + 1, 2 * sp.log(s) + 2 * x, sp.log(s) + x / 2]
    for mutant in wrong:
        with pytest.raises(StepError, match=r"step 1 \(log of a product\) of logs does not hold"):
            derivation.verify_step(1, mutant)
    assert _lambdified.cache_info().misses <= 1 + len(wrong)  # one function per expression: the left side's once
    assert _value_at.cache_info().hits >= len(wrong) - 1  # the left side's values at the points came from the cache
    assert derivation.verify_step(1, x + sp.log(s) * 2) == "exact"  # a right form still passes, the cache warm


def test_the_cache_tells_apart_what_sympy_tells_apart():
    coarse, fine = sp.Float("0.1", 15), sp.Float("0.1", 50)
    assert value(_lambdified(x + coarse, (x,)), 0) != value(_lambdified(x + fine, (x,)), 0)
    assert _lambdified(x * sp.Float(1), (x,)) is not _lambdified(x, (x,))
    plain = sp.Symbol("x")
    assert _lambdified(plain**2, (plain,)) is not _lambdified(x**2, (x,))
    assert value(_lambdified(x - y, (x, y)), 1, 2) == -1
    assert value(_lambdified(x - y, (y, x)), 1, 2) == 1  # the same expression, its arguments in another order



# -- the concrete forms a derivation keeps, and the mutation oracle's cached values -----------------------

z = sp.Symbol("z", real=True)
m = sp.Symbol("m", real=True)
v = sp.Symbol("v", positive=True)


def test_a_changed_expression_gets_its_own_concrete_form():
    """Each of these differs from the first only where SymPy's equality sees it; each must be evaluated afresh."""
    derivation = Derivation(x, title="forms")
    base = Named("A", x + sp.Rational(1, 2))
    changed = [
        Named("A", x + sp.Float("0.5", 15)),  # a Float for the Rational
        Named("A", x + sp.Float("0.5", 50)),  # the same Float at another precision
        Named("A", sp.Symbol("x") + sp.Rational(1, 2)),  # x without its assumptions
        Named("A", x + sp.Rational(1, 3)),  # another definition under the same name
        Named("B", x + sp.Rational(1, 2)),  # another name (the same value: a new key all the same)
    ]
    assert derivation.concrete(base) == x + sp.Rational(1, 2)
    for expr in changed:
        assert derivation.concrete(expr) == expr.definition, expr
    assert len(derivation._concrete_forms) == 1 + len(changed)  # each a key of its own, none answered by another
    # an expectation whose law changes in its variance only
    under = [E(z**2, gaussian(z, m, variance)) for variance in (v, 2 * v, v**2)]
    assert [derivation.concrete(e) for e in under] == [m**2 + v, m**2 + 2 * v, m**2 + v**2]


def test_a_notation_class_made_again_is_a_new_key():
    """A page that runs again defines its notation classes again: same name, same arguments, another value."""

    def make(offset):
        class Shift(Notation):
            def value(self):
                return self.args[0] + offset

        return Shift

    first, second = make(1), make(2)
    derivation = Derivation(x, title="classes")
    assert derivation.concrete(first(x)) == x + 1
    assert derivation.concrete(second(x)) == x + 2  # equal by name and arguments, but another class: not the cached x + 1
    assert first(x) != second(x)


def test_mutants_are_refused_with_the_concrete_forms_warm():
    q = gaussian(z, m, v, name="q")
    derivation = Derivation(E(z**2, q), title="second moment").eq(m**2 + v, "E[z²] = m² + v")
    derivation.verify_step(1, v + m**2)  # a right form: the left side's concrete form is now kept
    assert E(z**2, q) in derivation._concrete_forms
    for wrong in (m**2 - v, m**2 + v**2, m + v, m**2 + 2 * v, m**2 + v + sp.Float("1e-12", 50)):
        with pytest.raises(StepError, match=r"step 1 \(E\[z²\] = m² \+ v\) of second moment does not hold"):
            derivation.verify_step(1, wrong)
    # the left side changed (another variance in the law): not the kept form, so the right side no longer fits
    other = Derivation(E(z**2, gaussian(z, m, 2 * v, name="q")), title="other law")
    other._concrete_forms.update(derivation._concrete_forms)  # even holding the first derivation's forms
    with pytest.raises(StepError, match="the sides differ"):
        other.check("=", other.start, m**2 + v)
    assert other.check("=", other.start, m**2 + 2 * v) == "exact"


def test_the_forms_start_again_past_their_bound(monkeypatch):
    from dgm.derivations import derive

    monkeypatch.setattr(derive, "_CONCRETE_FORMS", 3)
    derivation = Derivation(x, title="bounded")
    for k in range(10):
        assert derivation.concrete(x + k) == x + k
        assert len(derivation._concrete_forms) <= 3


def test_the_oracle_reuses_only_the_very_same_evaluation():
    import mutations

    point = ((x, sp.Float("0.1", 15)),)
    finer = ((x, sp.Float("0.1", 50)),)
    mutations._value_at.cache_clear()
    assert mutations._value_at(x, point) == mutations._value_at(x, finer) == 0.1  # equal as doubles, yet
    assert mutations._value_at.cache_info().misses == 2  # 0.1 at 15 digits and at 50 are two keys
    assert mutations._value_at(x, ((x, sp.Float("0.1", 15)),)) == 0.1
    assert mutations._value_at.cache_info().hits == 1  # the very same point: reused
    assert mutations._value_at(x + 1, point) == mutations._value_at(x, point) + 1  # a changed expression, not the cached one
    assert mutations._value_at(sp.Symbol("x") * 3, ((sp.Symbol("x"), sp.Integer(2)),)) == 6
    assert mutations._value_at(x * 3, ((x, sp.Integer(2)),)) == 6
    assert mutations._value_at(x + z, ((x, sp.Integer(1)),)) is mutations._UNDEFINED  # z left free: no number


def test_the_oracle_still_finds_a_wrong_step_after_a_right_one():
    """``differs`` of a right mutant then a wrong one of the same step: the cached left side must not hide the slip."""
    import mutations

    derivation = Derivation(sp.log(s**2 * sp.exp(x)), title="logs").eq(2 * sp.log(s) + x, "log of a product")
    assert not mutations.differs(derivation, 1, x + 2 * sp.log(s))
    assert mutations.differs(derivation, 1, x + 2 * sp.log(s) + sp.Rational(1, 10**6))
    assert mutations.differs(derivation, 1, x + sp.log(s))
    assert not mutations.differs(derivation, 1, sp.log(s**2) + x)


def test_the_side_values_are_reused_only_for_the_same_expression_at_the_same_point():
    from dgm.derivations.derive import _value_at

    _value_at.cache_clear()

    def at(value):
        return ((x, value),)

    near = 10**30 * (x - sp.Rational(1, 10))  # 10³⁰ times how far x is from 1/10
    first = _value_at(near, (x,), at(sp.Float("0.1", 50)))
    second = _value_at(near, (x,), at(sp.Float("0.100000000000000000000000000001", 50)))
    assert abs(first) < 1e-10 and abs(second - 1) < 1e-10  # points 1e-30 apart: two keys, two values
    assert _value_at.cache_info().misses == 2
    _value_at(x, (x,), at(sp.Float("0.1", 15)))
    _value_at(x, (x,), at(sp.Float("0.1", 50)))
    assert _value_at.cache_info().misses == 4  # the same number at other precision is another key
    assert _value_at(near + 1, (x,), at(sp.Float("0.1", 50))) == first + 1  # another expression at the same point
    assert _value_at(x * y, (x, y), ((x, sp.Integer(2)), (y, sp.Integer(3)))) == 6
    assert _value_at(x * y, (x, y), ((x, sp.Integer(3)), (y, sp.Integer(3)))) == 9  # another point
    assert _value_at(sp.log(x), (x,), at(sp.Integer(0))) is None  # log 0: no value, cached as none
    info = _value_at.cache_info()
    assert _value_at(near, (x,), at(sp.Float("0.1", 50))) == first
    assert _value_at.cache_info().hits == info.hits + 1


def test_the_symbolic_answers_are_keyed_by_the_expression_and_the_domain():
    from dgm.derivations.derive import _prove_nonnegative, is_zero

    t = sp.Symbol("s")  # s without "positive": log(s²) = 2 log s does not hold for negative s
    assert is_zero(sp.log(s**2) - 2 * sp.log(s))
    assert not is_zero(sp.log(t**2) - 2 * sp.log(t))
    assert is_zero(sp.log(s**2) - 2 * sp.log(s))  # asked again, the same answer
    assert not is_zero(sp.log(s**2) - 2 * sp.log(s) + sp.Float("1e-30", 50))
    # 1 - y² ≥ 0 on (0, 1) by its minimum; on (0, 2) not shown (it is negative there): the domain is in the key
    u = sp.Symbol("u", positive=True)
    assert _prove_nonnegative(1 - u**2, {u: (0.0, 1.0)}) == "exact (minimum of the gap)"
    assert _prove_nonnegative(1 - u**2, {u: (0.0, 2.0)}) is None
    assert _prove_nonnegative(1 - u**2, {u: [0.0, 1.0]}) == "exact (minimum of the gap)"  # bounds given as a list
    with pytest.raises(StepError, match="negative for every value"):
        _prove_nonnegative(-1 - u**2, {})
    with pytest.raises(StepError, match="negative for every value"):  # a refusal is found again, not cached away
        _prove_nonnegative(-1 - u**2, {})
