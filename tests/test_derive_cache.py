"""The engine builds a side's numeric function once (a mutation test puts many right sides to one left side).

A cache that returned a function built for another expression would let a wrong
step pass; these tests fail if the cache is keyed more loosely than SymPy's own
equality (precision of a Float, a Float for an Integer, a symbol's assumptions,
the order of the arguments), or if a mutated step passes once the cache is warm.
"""

import mpmath
import pytest
import sympy as sp

from dgm.derivations.derive import DIGITS, Derivation, StepError, _lambdified

x = sp.Symbol("x", real=True)
y = sp.Symbol("y", real=True)
s = sp.Symbol("s", positive=True)


def value(function, *arguments):
    with mpmath.workdps(DIGITS):
        return mpmath.mpf(function(*(mpmath.mpf(a) for a in arguments)))


def test_mutants_of_one_step_are_refused_with_the_left_side_built_once():
    derivation = Derivation(sp.log(s**2 * sp.exp(x)), title="logs").eq(2 * sp.log(s) + x, "log of a product")
    _lambdified.cache_clear()
    wrong = [2 * sp.log(s) - x, sp.log(s) + x, 2 * sp.log(s) + x + 1, 2 * sp.log(s) + 2 * x, sp.log(s) + x / 2]
    for mutant in wrong:
        with pytest.raises(StepError, match=r"step 1 \(log of a product\) of logs does not hold"):
            derivation.verify_step(1, mutant)
    assert _lambdified.cache_info().hits >= len(wrong) - 1  # the left side came from the cache
    assert derivation.verify_step(1, x + sp.log(s) * 2) == "exact"  # a right form still passes, the cache warm


def test_the_cache_tells_apart_what_sympy_tells_apart():
    coarse, fine = sp.Float("0.1", 15), sp.Float("0.1", 50)
    assert value(_lambdified(x + coarse, (x,)), 0) != value(_lambdified(x + fine, (x,)), 0)
    assert _lambdified(x * sp.Float(1), (x,)) is not _lambdified(x, (x,))
    plain = sp.Symbol("x")
    assert _lambdified(plain**2, (plain,)) is not _lambdified(x**2, (x,))
    assert value(_lambdified(x - y, (x, y)), 1, 2) == -1
    assert value(_lambdified(x - y, (y, x)), 1, 2) == 1  # the same expression, its arguments in another order

