r"""Derivations that check themselves.

A derivation is a chain ``e0 R1 e1 R2 e2 ...`` in which every relation ``R`` is
one of ``=``, ``≤``, ``≥``, ``∝`` (proportional in named variables) or ``=_c``
(equal up to an additive constant in named variables). Each step carries a short
justification and is checked the moment it is added:

1. **exactly**, where SymPy can decide the relation symbolically (the
   difference simplifies to zero, the sign of a gap is known, a one-variable
   gap has its minimum at or above zero);
2. otherwise **numerically**, at random points of the stated domain, and the
   rendered step says so.

A step that does not hold raises :class:`StepError`, which names the step and
shows both sides, so a page that builds, or a test that runs, stops there.

Steps about abstract expectations or densities are written in the book's
notation (:mod:`dgm.derivations.notation`): $\mathbb E_q[\cdot]$, $\mathrm{KL}(q \,\|\, p)$,
densities $p(x \mid z)$ bound to a *tractable instance*. The page prints each
step from that object and the engine checks the same object, by evaluating
both sides on the instance; nothing displayed is typed by hand. The
derivation names the instance (``instance="the linear-Gaussian model, all
parameter values"``).

What the checks refuse, beyond a false step:

* a step whose two sides are the same expression (it checks nothing);
* a side that is infinite, complex-infinite or undefined (``log 0``, ``x/0``),
  unless the step is a limit;
* ``∝`` with a ratio that is not a *positive* constant (a sign flip is not
  "proportional");
* numeric checks draw points across scales (positive symbols over six
  decades, reals up to ±10³, values near a domain's edges), evaluate at 50
  significant digits and compare with a relative *and* an absolute tolerance
  of 1e-15 (1e-9 where a numeric integral is involved).

A sum with a symbolic bound $\sum_{i=1}^N$ is checked at the bounds listed in
``at={N: (1, 2, 3)}`` (the label says so), or symbolically where SymPy can sum it.

Example::

    >>> x = sp.Symbol("x", real=True)
    >>> d = Derivation((x + 1) ** 2).eq(x**2 + 2 * x + 1, "expand the square")
    >>> d.steps[-1].check
    'exact'
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import mpmath
import sympy as sp
from sympy.printing.pycode import MpmathPrinter

from dgm.derivations.notation import Named, evaluate, latex, notation_in

Relation = Literal["=", "<=", ">=", "propto", "const"]

RELATION_LATEX: dict[str, str] = {
    "=": "=",
    "<=": r"\le",
    ">=": r"\ge",
    "propto": r"\propto",
    "const": r"\overset{c}{=}",
}

#: Tolerance (relative and absolute) of numeric checks of closed forms, evaluated at ``DIGITS`` digits.
NUMERIC_TOLERANCE = 1e-15
#: Tolerance where a side holds a numeric integral, sum or limit (evaluated by quadrature at 20 digits).
QUADRATURE_TOLERANCE = 1e-9
#: Digits of a numeric integral, sum or limit.
QUADRATURE_DIGITS = 20
DIGITS = 50
#: Points at which a step is tried numerically before SymPy tries to prove it (a false step fails fast).
SCREEN_POINTS = 4
#: Concrete forms a derivation keeps (see :meth:`Derivation.concrete`); past that many it starts again.
_CONCRETE_FORMS = 4096


_RECORDERS: list[list[Derivation]] = []


@contextmanager
def recording() -> Iterator[list[Derivation]]:
    """Collect every :class:`Derivation` made inside the ``with`` block (tests use it to mutate a page's steps)."""
    derivations: list[Derivation] = []
    _RECORDERS.append(derivations)
    try:
        yield derivations
    finally:
        _RECORDERS.remove(derivations)


class StepError(AssertionError):
    """A derivation step that does not hold; ``point``, ``left``, ``right`` say where, when a number showed it."""

    def __init__(self, message: str, *, point: str = "", left: str = "", right: str = "") -> None:
        super().__init__(message)
        self.point, self.left, self.right = point, left, right


class CannotCheck(ValueError):
    """An expression the checker cannot evaluate (an undefined function, say)."""


@dataclass(frozen=True)
class Step:
    """One link ``R expr`` of a chain, with what justified it, how it was checked, and the variables of ``∝``/``=_c``."""

    relation: Relation
    expr: sp.Expr
    why: str
    check: str
    wrt: tuple[sp.Symbol, ...] = ()

    @property
    def latex(self) -> str:
        """The step's right-hand side as the book prints it (from the checked object)."""
        return latex(self.expr)


def _as_expr(value: object) -> sp.Expr:
    try:
        expr = sp.sympify(value)
    except (sp.SympifyError, TypeError) as error:
        raise TypeError(f"expected a SymPy expression or a number, got {value!r}") from error
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"expected a SymPy expression or a number, got {type(expr).__name__}: {value!r}")
    return expr


@lru_cache(maxsize=4096)
def is_zero(expr: sp.Expr) -> bool:
    """True when SymPy can show ``expr == 0`` (never a false positive).

    Cached by the expression (SymPy's structural equality): the answer is a property of the expression alone,
    and a rewrite of a step (its terms reordered, its notation replaced by its value) leaves the same difference
    of the sides as the step itself once SymPy has collected it, so the page's own check already settled it.
    """
    if expr == 0:
        return True
    for simplify in (sp.cancel, sp.expand, sp.simplify, lambda e: sp.simplify(sp.expand_log(sp.expand(e)))):
        try:
            if simplify(expr) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue
    return False


def _non_finite(expr: sp.Expr) -> bool:
    return expr.has(sp.oo, -sp.oo, sp.zoo, sp.nan) and not expr.has(sp.Integral, sp.Sum, sp.Limit, sp.Piecewise)


@dataclass
class Sampler:
    """Random points at which to evaluate expressions numerically, drawn across scales.

    Each free symbol is drawn from its entry in ``domain`` if it has one (half
    the time uniformly, else near one of its edges), else by its assumptions:
    positive integers from 1..6; positive reals half the time from (0.2, 3),
    else log-uniformly from 10⁻³..10³ (small and large values are where a wrong
    step that holds "usually" fails); other reals half the time from (−2, 2),
    else ± log-uniformly from 10⁻³..10³. ``narrow`` keeps to (0.2, 3) and
    (−2, 2) (for numeric integrals, which are costly and lose accuracy far out).
    """

    domain: Mapping[sp.Symbol, tuple[float, float]] = field(default_factory=dict)
    points: int = 24
    seed: int = 0

    def draw(self, symbols: Iterable[sp.Symbol], rng: random.Random, *, narrow: bool = False) -> dict[sp.Symbol, sp.Expr]:
        point: dict[sp.Symbol, sp.Expr] = {}
        for symbol in sorted(symbols, key=str):
            wide = not narrow and rng.random() < 0.5
            if symbol in self.domain:
                low, high = self.domain[symbol]
                if symbol.is_integer:
                    point[symbol] = sp.Integer(rng.randint(int(low), int(high)))
                    continue
                if wide:  # near an edge: within 10⁻⁶..10⁻² of the width
                    offset = (high - low) * 10 ** rng.uniform(-6, -2)
                    value = low + offset if rng.random() < 0.5 else high - offset
                else:
                    value = rng.uniform(low, high)
            elif symbol.is_integer and symbol.is_positive:
                point[symbol] = sp.Integer(rng.randint(1, 6))
                continue
            elif symbol.is_integer:
                point[symbol] = sp.Integer(rng.randint(-3, 3))
                continue
            elif symbol.is_positive or symbol.is_nonnegative:
                value = 10 ** rng.uniform(-3, 3) if wide else rng.uniform(0.2, 3.0)
            else:
                value = rng.choice((-1, 1)) * 10 ** rng.uniform(-3, 3) if wide else rng.uniform(-2.0, 2.0)
            point[symbol] = sp.Float(repr(value), DIGITS)
        return point


def _number(value: complex | mpmath.mpc) -> str:
    value = complex(value)
    return f"{value.real:.6g}" if abs(value.imag) <= 1e-12 * (1 + abs(value)) else f"{value:.6g}"


def describe_point(point: Mapping[sp.Symbol, sp.Expr]) -> str:
    return ", ".join(f"{symbol} = {float(value):.4g}" for symbol, value in point.items())


class _PositionalPrinter(MpmathPrinter):
    """SymPy's mpmath printer as :func:`sympy.lambdify` sets it up, printing the function's arguments by position.

    The book's symbols are often not Python names (``s^2``, ``f'(0)``, ``\\bar\\alpha_t``); given those as arguments,
    lambdify rebuilds the whole expression once for each such symbol, with a dummy in its place, before it
    prints it (a third of the time of building a side's function). Printed under the names ``_a0, _a1, ...`` of
    its arguments, the expression itself is printed, not rebuilt.
    """

    def __init__(self, names: Mapping[sp.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True, "user_functions": {}})
        self._names = dict(names)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._names.get(expr) or super()._print_Symbol(expr)

    def _print_Dummy(self, expr: sp.Dummy) -> str:
        return self._names.get(expr) or super()._print_Dummy(expr)


@lru_cache(maxsize=4096)
def _lambdified(expr: sp.Expr, symbols: tuple[sp.Symbol, ...]) -> Callable[..., object] | None:
    """``expr`` as an mpmath function of ``symbols``, or ``None`` where lambdify cannot print it (SymPy evaluates it then).

    Cached: a mutation test puts many right-hand sides against one left-hand side, whose function is built once.
    The key is the expression and the symbols themselves, compared as SymPy compares them (structurally: a
    Float of other precision, a Float for an Integer, a symbol with other assumptions are other keys), so the
    cache returns a function only for the very expression it was built from. The arguments are named by
    position (:class:`_PositionalPrinter`), and the docstring, which lambdify would print the expression into
    once more, is left out.
    """
    names = {symbol: f"_a{index}" for index, symbol in enumerate(symbols)}
    arguments = [sp.Symbol(name) for name in names.values()]
    try:
        return sp.lambdify(arguments, expr, modules="mpmath", printer=_PositionalPrinter(names), docstring_limit=0)
    except Exception:  # anything lambdify cannot print is evaluated by SymPy instead
        return None


class _Side:
    """One side of a step, ready for numeric evaluation: fast (mpmath at 50 digits) where it is a closed form."""

    def __init__(self, expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> None:
        undefined = expr.atoms(sp.core.function.AppliedUndef)
        if undefined:
            names = ", ".join(sorted(str(f.func) for f in undefined))
            raise CannotCheck(
                f"cannot evaluate the undefined function(s) {names}; check the step on a tractable instance instead"
            )
        self.expr, self.symbols = expr, tuple(symbols)
        self.quadrature = _unevaluated(expr)  # compared at QUADRATURE_TOLERANCE; its values come from _value_at

    def at(self, point: Mapping[sp.Symbol, sp.Expr]) -> mpmath.mpc | None:
        """The side at ``point`` (an mpmath number, to be compared at ``DIGITS`` digits); ``None`` where undefined or infinite."""
        return _value_at(self.expr, self.symbols, tuple(point.items()))


@lru_cache(maxsize=65536)
def _value_at(expr: sp.Expr, symbols: tuple[sp.Symbol, ...], point: tuple[tuple[sp.Symbol, sp.Expr], ...]) -> mpmath.mpc | None:
    """:meth:`_Side.at`, cached: the mutants of a step meet its left side at the same points (the same seed).

    The key is the expression, the symbols of its function and the point's (symbol, value) pairs, each compared
    as SymPy compares them (a Float's precision, a symbol's assumptions count): a value is reused only for the
    very same expression at the very same point. (An integral's quadrature is the costly case.)
    """
    values = dict(point)
    quadrature = _unevaluated(expr)
    function = None if quadrature else _lambdified(expr, symbols)
    try:
        if function is not None:
            with mpmath.workdps(DIGITS):
                arguments = (mpmath.mpf(str(values[s])) if values[s].is_Float else int(values[s]) for s in symbols)
                result = mpmath.mpc(function(*arguments))
        else:
            substituted = expr.subs(values)
            if quadrature:
                value = sp.N(_by_quadrature(substituted), QUADRATURE_DIGITS)
            else:  # a closed form that lambdify cannot print
                value = sp.N(substituted, DIGITS)
            if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not value.is_number:
                return None
            result = mpmath.mpc(complex(value))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, ArithmeticError):
        return None
    if not (mpmath.isfinite(result.real) and mpmath.isfinite(result.imag)):
        return None
    return result


class Derivation:
    r"""A chain of expressions, each step checked as it is added.

    Args:
        start: the first expression of the chain, in the book's notation (:mod:`dgm.derivations.notation`).
        title: a name for the derivation, shown above it and in errors.
        instance: the tractable instance the checks run on, shown on the page.
        domain: ranges ``{symbol: (low, high)}`` for numeric checks.
        points: how many random points a numeric check uses.
        seed: seed of the random points, so a build is reproducible.
        at: values at which to check symbolic bounds of sums, ``{N: (1, 2, 3)}``.

    Chain the steps: ``Derivation(e0).eq(e1, "why").le(e2, "why")``. What the
    page shows is printed from the same objects that are checked.
    """

    def __init__(
        self,
        start: object,
        *,
        title: str = "",
        instance: str | None = None,
        domain: Mapping[sp.Symbol, tuple[float, float]] | None = None,
        points: int = 24,
        seed: int = 0,
        at: Mapping[sp.Symbol, Sequence[int]] | None = None,
    ) -> None:
        self.start = _as_expr(start)
        self.title = title
        self.instance = instance
        self.sampler = Sampler(dict(domain or {}), points, seed)
        self.at = {symbol: tuple(values) for symbol, values in (at or {}).items()}
        self.steps: list[Step] = []
        self._concrete_forms: dict[sp.Expr, sp.Expr] = {}
        for recorder in _RECORDERS:
            recorder.append(self)

    # -- the five relations ---------------------------------------------------------

    def eq(self, expr: object, why: str) -> Derivation:
        """Add ``= expr``, checked for equality."""
        return self._add("=", expr, why, ())

    def le(self, expr: object, why: str) -> Derivation:
        """Add ``≤ expr``: the previous expression is at most ``expr``."""
        return self._add("<=", expr, why, ())

    def ge(self, expr: object, why: str) -> Derivation:
        """Add ``≥ expr``: the previous expression is at least ``expr``."""
        return self._add(">=", expr, why, ())

    def propto(self, expr: object, why: str, *, wrt: sp.Symbol | Sequence[sp.Symbol]) -> Derivation:
        """Add ``∝ expr``: the ratio of the two sides is a positive constant in ``wrt``."""
        return self._add("propto", expr, why, _wrt(wrt))

    def const(self, expr: object, why: str, *, wrt: sp.Symbol | Sequence[sp.Symbol]) -> Derivation:
        """Add ``=_c expr``: the two sides differ by a term that does not depend on ``wrt``."""
        return self._add("const", expr, why, _wrt(wrt))

    @property
    def result(self) -> sp.Expr:
        """The last expression of the chain."""
        return self.steps[-1].expr if self.steps else self.start

    def left_of(self, number: int) -> sp.Expr:
        """The left-hand side of step ``number`` (counted from 1)."""
        return self.start if number == 1 else self.steps[number - 2].expr

    def check(self, relation: Relation, lhs: object, rhs: object, wrt: Sequence[sp.Symbol] = ()) -> str:
        """Check ``lhs R rhs`` with this derivation's settings; how it passed, or :class:`StepError`.

        The chain uses it for every step; tests use it to try a changed step
        (a mutation) against the same left-hand side.
        """
        lhs, rhs = _as_expr(lhs), _as_expr(rhs)
        if lhs == rhs:
            raise StepError("the two sides are the same expression: the step checks nothing")
        if relation == "propto" and rhs == 0:
            raise StepError("a proportionality needs a nonzero right-hand side")
        left, right = self.concrete(lhs), self.concrete(rhs)
        if not self.at or not (left.free_symbols | right.free_symbols) & set(self.at):
            return self._check_concrete(relation, left, right, tuple(wrt))
        names = sorted(self.at, key=str)
        checks = []
        for values in itertools.product(*(self.at[name] for name in names)):
            bound = dict(zip(names, values))
            checks.append(self._check_concrete(relation, self.concrete(left.subs(bound)), self.concrete(right.subs(bound)), tuple(wrt)))
        where = "; ".join(f"{name} = {', '.join(map(str, self.at[name]))}" for name in names)
        kind = "exact" if all(c.startswith("exact") for c in checks) else "numeric"
        return f"{kind} for {where}"

    def concrete(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` on the instance (notation evaluated, sums with numeric bounds unrolled), each form made once per derivation.

        Every step's right side is the next step's left side, and a mutation test puts many right sides against
        one left side: both were evaluated again at each check. The forms are kept in a dict keyed by the
        expression itself, which SymPy hashes and compares structurally (the class of every node, a Float's
        precision, a symbol's assumptions, a notation's definition are all part of the key), so a changed
        expression is a new key and is evaluated afresh. The dict belongs to this derivation (one run of its
        page): a page that runs again makes new notation classes, new keys. A notation's value must be a
        function of its arguments (and its class), as what the page prints is; one that reads a variable the
        page later rebinds would be stale here (none does).
        """
        forms = self._concrete_forms
        try:
            return forms[expr]
        except KeyError:
            pass
        if len(forms) >= _CONCRETE_FORMS:
            forms.clear()
        form = forms[expr] = _concrete(expr)
        return form

    def verify_step(self, number: int, expr: object) -> str:
        """Check step ``number`` again with ``expr`` in place of its right-hand side (a mutation test's probe).

        Raises :class:`StepError` naming the step, as a build would, when the changed step does not hold.
        """
        step = self.steps[number - 1]
        return self._verify(number, step.relation, self.left_of(number), _as_expr(expr), step.why, step.wrt)

    # -- checking -----------------------------------------------------------------------

    def _add(self, relation: Relation, expr: object, why: str, wrt: tuple[sp.Symbol, ...]) -> Derivation:
        if not why.strip():
            raise ValueError("every step needs a justification (why)")
        rhs = _as_expr(expr)
        check = self._verify(len(self.steps) + 1, relation, self.result, rhs, why, wrt)
        self.steps.append(Step(relation, rhs, why, check, wrt))
        return self

    def _verify(self, number: int, relation: Relation, lhs: sp.Expr, rhs: sp.Expr, why: str, wrt: tuple[sp.Symbol, ...]) -> str:
        try:
            return self.check(relation, lhs, rhs, wrt)
        except CannotCheck:
            raise
        except (ValueError, TypeError, NotImplementedError) as error:  # a side the instance cannot evaluate
            raise StepError(
                f"step {number} ({why}) of {self.title or 'the derivation'} cannot be evaluated on the instance:\n"
                f"  left:  {latex(lhs)}\n  {relation}\n  right: {latex(rhs)}\n  {type(error).__name__}: {error}"
            ) from error
        except StepError as error:
            raise StepError(
                f"step {number} ({why}) of {self.title or 'the derivation'} does not hold:\n"
                f"  left:  {latex(lhs)}\n  {relation}\n  right: {latex(rhs)}\n  {error}",
                point=error.point,
                left=error.left,
                right=error.right,
            ) from None

    def _check_concrete(self, relation: Relation, lhs: sp.Expr, rhs: sp.Expr, wrt: tuple[sp.Symbol, ...]) -> str:
        limit = lhs.has(sp.Limit) or rhs.has(sp.Limit)
        if limit:
            lhs, rhs = lhs.doit(), rhs.doit()
            if lhs.is_infinite or rhs.is_infinite:
                if relation in ("=", "<=", ">=") and lhs == rhs:
                    return "exact (limit)"
                raise StepError(f"the limit is {lhs}, the other side {rhs}")
        for name, side in (("left", lhs), ("right", rhs)):
            if _non_finite(side):
                raise StepError(f"the {name}-hand side is not finite on the instance ({side}); a limit must be written as one")
        symbolic = not (_unevaluated(lhs) or _unevaluated(rhs))
        screen = SCREEN_POINTS if symbolic else 0  # a false step is refused by numbers before SymPy tries to simplify it
        if relation == "=":
            if screen:
                self._numeric(lhs, rhs, _equal, "the sides differ", points=screen)
            if symbolic and is_zero(lhs - rhs):
                return "exact"
            return self._numeric(lhs, rhs, _equal, "the sides differ")
        if relation in ("<=", ">="):
            small, large = (lhs, rhs) if relation == "<=" else (rhs, lhs)
            if screen:
                self._numeric(small, large, _ordered, "the inequality fails", points=screen)
            if symbolic:
                proof = _prove_nonnegative(large - small, self.sampler.domain)
                if proof:
                    return proof
            return self._numeric(small, large, _ordered, "the inequality fails")
        if screen:
            self._numeric_free_of(lhs, rhs, wrt, relation, rounds=1)
        if relation == "propto":
            ratio = lhs / rhs
            if symbolic and all(is_zero(sp.diff(ratio, v)) for v in wrt):
                constant = sp.simplify(ratio)
                if constant.is_positive:
                    return "exact"
                if constant.is_nonpositive:
                    raise StepError(f"the ratio of the sides is {constant}, not a positive constant")
            return self._numeric_free_of(lhs, rhs, wrt, relation)
        if symbolic and all(is_zero(sp.diff(lhs - rhs, v)) for v in wrt):
            return "exact"
        return self._numeric_free_of(lhs, rhs, wrt, relation)

    def _sides(self, lhs: sp.Expr, rhs: sp.Expr) -> tuple[_Side, _Side, list[sp.Symbol]]:
        symbols = sorted(lhs.free_symbols | rhs.free_symbols, key=str)
        return _Side(lhs, symbols), _Side(rhs, symbols), symbols

    def _numeric(
        self, lhs: sp.Expr, rhs: sp.Expr, holds: Callable[[complex, complex, float], bool], failure: str, points: int = 0
    ) -> str:
        left, right, symbols = self._sides(lhs, rhs)
        narrow = left.quadrature or right.quadrature
        tolerance = QUADRATURE_TOLERANCE if narrow else NUMERIC_TOLERANCE
        rng = random.Random(self.sampler.seed + points)
        evaluated = 0
        with mpmath.workdps(DIGITS):  # the sides are compared at full precision
            for _ in range(points or self.sampler.points):
                point = self.sampler.draw(symbols, rng, narrow=narrow)
                a, b = left.at(point), right.at(point)
                if a is None or b is None:
                    continue
                if not holds(a, b, tolerance):
                    where, a_text, b_text = describe_point(point), _number(a), _number(b)
                    raise StepError(f"{failure} at {where}: left {a_text}, right {b_text}", point=where, left=a_text, right=b_text)
                evaluated += 1
        return "" if points else self._numeric_label(evaluated)

    def _numeric_free_of(
        self, lhs: sp.Expr, rhs: sp.Expr, wrt: tuple[sp.Symbol, ...], relation: Relation, rounds: int = 0
    ) -> str:
        left, right, symbols = self._sides(lhs, rhs)
        narrow = left.quadrature or right.quadrature
        tolerance = QUADRATURE_TOLERANCE if narrow else NUMERIC_TOLERANCE
        name = "difference" if relation == "const" else "ratio"
        others = [s for s in symbols if s not in wrt]
        rng = random.Random(self.sampler.seed + rounds)
        evaluated = 0
        with mpmath.workdps(DIGITS):  # differences and ratios of the sides at full precision
            for _ in range(rounds or max(3, self.sampler.points // 4)):
                base = self.sampler.draw(others, rng, narrow=narrow)
                values = []
                for _ in range(4):
                    point = {**base, **self.sampler.draw(wrt, rng, narrow=narrow)}
                    a, b = left.at(point), right.at(point)
                    if a is None or b is None or b == 0:
                        continue
                    value = a - b if relation == "const" else a / b
                    if relation == "propto" and not (value.real > 0 and abs(value.imag) <= tolerance * abs(value)):
                        raise StepError(f"the ratio of the sides is {_number(value)} at {describe_point(point)}, not positive")
                    values.append((value, point))
                for value, point in values[1:]:
                    if not _equal(value, values[0][0], tolerance):
                        raise StepError(
                            f"the {name} of the sides changes with {', '.join(map(str, wrt))}: "
                            f"{_number(values[0][0])} at {describe_point(values[0][1])}, "
                            f"{_number(value)} at {describe_point(point)}"
                        )
                evaluated += len(values)
        return "" if rounds else self._numeric_label(evaluated)

    def _numeric_label(self, evaluated: int) -> str:
        if evaluated < max(3, self.sampler.points // 2):
            raise StepError(f"only {evaluated} of {self.sampler.points} random points gave finite values on both sides")
        return f"numeric, {evaluated} random points"

    # -- rendering ------------------------------------------------------------------

    def names(self) -> list[Named]:
        """The named quantities the chain uses, in order of appearance, each to be shown with its definition."""
        seen: list[Named] = []
        for expr in (self.start, *(step.expr for step in self.steps)):
            for node in sp.preorder_traversal(expr):
                if isinstance(node, Named) and node not in seen:
                    seen.append(node)
        return seen

    def summary(self) -> str:
        """Which steps were checked exactly and which numerically, generated from the steps."""
        exact = [n for n, step in enumerate(self.steps, start=1) if step.check.startswith("exact")]
        numeric = [n for n, step in enumerate(self.steps, start=1) if not step.check.startswith("exact")]
        parts = []
        if exact:
            parts.append(f"{_plural('Step', exact)} {_numbers(exact)} exact")
        if numeric:
            parts.append(f"{_plural('step' if exact else 'Step', numeric)} {_numbers(numeric)} numeric (a spot check)")
        return "; ".join(parts) + "." if parts else ""

    def to_latex(self) -> str:
        r"""The chain as an ``aligned`` environment, justification and check beside each line."""
        rows = []
        for step in self.steps:
            mark = r"\color{green}{\checkmark}" if step.check.startswith("exact") else r"\color{#b58900}{\checkmark}"
            rows.append(
                rf"&{RELATION_LATEX[step.relation]} {step.latex} && \text{{{_escape_text(step.why)}}}"
                rf" \;\; {{\scriptsize {mark}\,\text{{{step.check}}}}}"
            )
        first = latex(self.start) + (" " + rows[0] if rows else " &")
        return "\\begin{aligned}\n" + " \\\\\n".join([first, *rows[1:]]) + "\n\\end{aligned}"

    def _caption(self) -> str:
        parts = []
        if self.title:
            parts.append(f"**{self.title}.**")
        if self.instance:
            parts.append(f"Checked on {self.instance}.")
        parts.append(self.summary())
        return " ".join(p for p in parts if p)

    def _definitions(self) -> str:
        named = self.names()
        if not named:
            return ""
        rows = " \\\\\n".join(rf"{latex(n)} &= {latex(n.definition)}" for n in named)
        return "where\n\n$$\n\\begin{aligned}\n" + rows + "\n\\end{aligned}\n$$\n\n"

    def to_markdown(self) -> str:
        """Caption, the chain with numbered steps, the names it uses, and a table of reasons and checks."""
        rows = [
            rf"&{RELATION_LATEX[step.relation]} {step.latex} \tag*{{[{number}]}}"
            for number, step in enumerate(self.steps, start=1)
        ]
        first = latex(self.start) + (" " + rows[0] if rows else " &")
        math_block = "\\begin{align*}\n" + " \\\\\n".join([first, *rows[1:]]) + "\n\\end{align*}"
        table = ["| step | because | checked |", "|:--|:--|:--|"]
        for number, step in enumerate(self.steps, start=1):
            badge = ("✓ " if step.check.startswith("exact") else "≈ ") + step.check
            table.append(f"| [{number}] | {step.why.replace('|', '∣')} | {badge} |")
        return self._caption() + "\n\n$$\n" + math_block + "\n$$\n\n" + self._definitions() + "\n".join(table) + "\n"

    def relation(self, first: int = 1, last: int | None = None) -> Relation:
        """The relation between the left side of step ``first`` and the right side of step ``last``, composed along the chain."""
        steps = self.steps[first - 1 : last]
        kinds = {step.relation for step in steps} - {"="}
        if not steps:
            raise ValueError("the chain has no steps to state")
        if not kinds:
            return "="
        if len(kinds) > 1:
            raise ValueError(f"steps {first}..{last or len(self.steps)} mix {' and '.join(sorted(kinds))}: state a shorter stretch")
        return kinds.pop()

    def statement(self, label: str | None = None, *, first: int = 1, last: int | None = None) -> Statement:
        """The chain's result as one displayed equation, ``start R result``, with an equation label for ``{eq}`` references.

        What it shows is the checked chain's own endpoints (or those of steps
        ``first``..``last``), so a result stated in the prose is a result the
        engine checked.
        """
        return Statement([(self.left_of(first), self.relation(first, last), self.steps[(last or len(self.steps)) - 1].expr)], label)

    def _repr_latex_(self) -> str:
        return "$$\n" + self.to_latex() + "\n$$"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        lines = [f"Derivation: {self.title}" if self.title else "Derivation:", f"      {self.start}"]
        for step in self.steps:
            lines.append(f"  {step.relation:>6} {step.expr}    [{step.why}; {step.check}]")
        return "\n".join(lines)


@dataclass
class Statement:
    """Checked results shown as one displayed equation (side by side), optionally labelled; see :meth:`Derivation.statement`."""

    parts: list[tuple[sp.Expr, Relation, sp.Expr]]
    label: str | None = None

    def __add__(self, other: Statement) -> Statement:
        """Two statements side by side in one display; the label is the first one's."""
        return Statement(self.parts + other.parts, self.label or other.label)

    def to_latex(self) -> str:
        return r", \qquad ".join(f"{latex(left)} {RELATION_LATEX[relation]} {latex(right)}" for left, relation, right in self.parts)

    def _repr_markdown_(self) -> str:
        return "$$\n" + self.to_latex() + "\n$$" + (f" ({self.label})" if self.label else "") + "\n"


def _concrete(expr: sp.Expr) -> sp.Expr:
    """``expr`` on the instance: notation evaluated, sums with numeric bounds unrolled, indexed terms made symbols."""
    value = evaluate(expr)
    value = value.replace(
        lambda e: isinstance(e, sp.Sum) and all(bound.is_Integer for _, *bounds in e.limits for bound in bounds),
        lambda e: e.doit(),
    )
    indexed = {item for item in value.atoms(sp.Indexed) if all(index.is_Integer for index in item.indices)}
    if indexed:  # x[2] of an unrolled sum is a number to draw; x[i] inside a sum still to unroll stays
        value = value.xreplace({item: sp.Symbol(str(item).replace("[", "_").replace("]", ""), real=True) for item in indexed})
    if notation_in(value):
        raise CannotCheck(f"notation left unevaluated in {value}")
    return value


def _bound(value: sp.Expr) -> mpmath.mpf | None:
    """A real bound of an integral as an mpmath number (±∞ included); ``None`` where it is not a real number."""
    if value in (sp.oo, -sp.oo):
        return mpmath.inf if value == sp.oo else -mpmath.inf
    number = sp.N(value, QUADRATURE_DIGITS + 5)
    return mpmath.mpf(str(number)) if number.is_Number and number.is_real else None


def _by_quadrature(expr: sp.Expr) -> sp.Expr:
    """``expr`` with each one-dimensional integral of a closed-form integrand between numeric bounds replaced by its value.

    The value is mpmath's tanh-sinh quadrature at ``QUADRATURE_DIGITS`` digits, the rule SymPy's ``evalf`` uses on
    such an integral, applied to the integrand lambdified to mpmath instead of evaluated by SymPy at every node
    (which is what made an integral cost about a third of a second). An integral whose quadrature reports an error
    above ``QUADRATURE_TOLERANCE / 1000`` of its value or a value beyond 1e100 (a divergent integrand: tanh-sinh then
    returns a huge number with a small error estimate), or that cannot be lambdified or evaluated, is left to SymPy
    as before.
    """
    replacements = {}
    for integral in expr.atoms(sp.Integral):
        if len(integral.limits) != 1 or len(integral.limits[0]) != 3:
            continue
        variable, low, high = integral.limits[0]
        integrand = integral.function
        if integrand.free_symbols - {variable} or integrand.has(sp.Integral, sp.Sum, sp.Limit, sp.core.function.AppliedUndef):
            continue
        bounds = (_bound(low), _bound(high))
        if None in bounds:
            continue
        try:
            # not the cached _lambdified: the point's values are already in the integrand, so each one is new and
            # would only push the sides' functions out of that cache
            function = sp.lambdify(variable, integrand, modules="mpmath", docstring_limit=0)
            with mpmath.workdps(QUADRATURE_DIGITS):
                value, error = mpmath.quad(function, list(bounds), error=True)
        except Exception:  # anything mpmath cannot evaluate is left to SymPy
            continue
        value = mpmath.mpc(value)
        finite = mpmath.isfinite(value.real) and mpmath.isfinite(value.imag) and abs(value) < 1e100
        if not finite or error > QUADRATURE_TOLERANCE / 1000 * (1 + abs(value)):
            continue
        replacements[integral] = sp.Float(value.real, QUADRATURE_DIGITS) + sp.I * sp.Float(value.imag, QUADRATURE_DIGITS)
    return expr.xreplace(replacements) if replacements else expr


def _unevaluated(expr: sp.Expr) -> bool:
    """Whether ``expr`` holds an integral, sum or limit that only numbers can settle here."""
    return expr.has(sp.Integral, sp.Sum, sp.Limit)


def _equal(left: complex, right: complex, tolerance: float = NUMERIC_TOLERANCE) -> bool:
    return abs(left - right) <= tolerance * (1 + max(abs(left), abs(right)))


def _ordered(small: complex, large: complex, tolerance: float = NUMERIC_TOLERANCE) -> bool:
    scale = tolerance * (1 + max(abs(small), abs(large)))
    return abs(small.imag) <= scale and abs(large.imag) <= scale and large.real - small.real >= -scale


def _plural(word: str, numbers: list[int]) -> str:
    return word + ("s" if len(numbers) > 1 else "")


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:-1])) + (" and " if len(numbers) > 1 else "") + str(numbers[-1])


def _prove_nonnegative(gap: sp.Expr, domain: Mapping[sp.Symbol, tuple[float, float]]) -> str | None:
    """How SymPy shows ``gap >= 0`` for all values, or ``None``; raises if it shows ``gap < 0`` everywhere.

    Cached by the gap and the domain (see :func:`is_zero`); a refusal (an exception) is not cached but found again.
    """
    return _proved_nonnegative(gap, tuple(sorted(((s, tuple(b)) for s, b in domain.items()), key=lambda item: str(item[0]))))


@lru_cache(maxsize=4096)
def _proved_nonnegative(gap: sp.Expr, domain_items: tuple[tuple[sp.Symbol, tuple[float, float]], ...]) -> str | None:
    domain = dict(domain_items)
    simplified = sp.simplify(gap)
    if simplified.is_nonnegative or is_zero(simplified):
        return "exact"
    if simplified.is_negative:
        raise StepError(f"the gap {simplified} is negative for every value")
    symbols = tuple(simplified.free_symbols)
    if len(symbols) == 1 and _minimum_is_nonnegative(simplified, symbols[0], domain.get(symbols[0])):
        return "exact (minimum of the gap)"
    return None


def _wrt(wrt: sp.Symbol | Sequence[sp.Symbol]) -> tuple[sp.Symbol, ...]:
    """The variables a ``∝`` or ``=_c`` step holds in; at least one, or the relation says nothing."""
    variables = (wrt,) if isinstance(wrt, sp.Symbol) else tuple(wrt)
    if not variables:
        raise ValueError("name the variables (wrt=) in which the relation holds")
    return variables


def _escape_text(text: str) -> str:
    return text.replace("\\", r"\backslash ").replace("{", r"\{").replace("}", r"\}").replace("&", r"\&")


def _minimum_is_nonnegative(gap: sp.Expr, symbol: sp.Symbol, domain: tuple[float, float] | None) -> bool:
    """Whether calculus shows ``gap >= 0`` on the symbol's domain (one variable only)."""
    if domain is not None:
        interval = sp.Interval(*domain)
    elif symbol.is_positive:
        interval = sp.Interval.open(0, sp.oo)
    else:
        interval = sp.Reals
    try:
        minimum = sp.calculus.util.minimum(gap, symbol, interval)
    except (NotImplementedError, ValueError, TypeError):
        return False
    return bool(minimum.is_nonnegative)
