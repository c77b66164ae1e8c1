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

Steps about abstract expectations or densities are checked on a *tractable
instance*: each step shows the abstract formula (``latex=``) and checks a
concrete expression, and the derivation names the instance
(``instance="the linear-Gaussian model, all parameter values"``).

Example::

    >>> x = sp.Symbol("x", real=True)
    >>> d = Derivation((x + 1) ** 2).eq(x**2 + 2 * x + 1, "expand the square")
    >>> d.steps[-1].check
    'exact'
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp

Relation = Literal["=", "<=", ">=", "propto", "const"]

RELATION_LATEX: dict[str, str] = {
    "=": "=",
    "<=": r"\le",
    ">=": r"\ge",
    "propto": r"\propto",
    "const": r"\overset{c}{=}",
}

#: Relative tolerance of numeric checks (evaluations carry 30 significant digits).
NUMERIC_TOLERANCE = 1e-9


class StepError(AssertionError):
    """A derivation step that does not hold; ``point``, ``left``, ``right`` say where, when a number showed it."""

    def __init__(self, message: str, *, point: str = "", left: str = "", right: str = "") -> None:
        super().__init__(message)
        self.point, self.left, self.right = point, left, right


class CannotCheck(ValueError):
    """An expression the checker cannot evaluate (an undefined function, say)."""


@dataclass(frozen=True)
class Step:
    """One link ``R expr`` of a chain, with what justified it and how it was checked."""

    relation: Relation
    expr: sp.Expr
    latex: str
    why: str
    check: str


def _as_expr(value: object) -> sp.Expr:
    try:
        return sp.sympify(value)
    except (sp.SympifyError, TypeError) as error:
        raise TypeError(f"expected a SymPy expression or a number, got {value!r}") from error


def is_zero(expr: sp.Expr) -> bool:
    """True when SymPy can show ``expr == 0`` (never a false positive)."""
    if expr == 0:
        return True
    for simplify in (sp.cancel, sp.expand, sp.simplify, lambda e: sp.simplify(sp.expand_log(sp.expand(e)))):
        try:
            if simplify(expr) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue
    return False


@dataclass
class Sampler:
    """Random points at which to evaluate expressions numerically.

    Each free symbol is drawn from its entry in ``domain`` if it has one, else
    from a range that respects its assumptions: positive integers from 1..6,
    positive reals from (0.2, 3), other reals from (-2, 2).
    """

    domain: Mapping[sp.Symbol, tuple[float, float]] = field(default_factory=dict)
    points: int = 24
    seed: int = 0

    def draw(self, symbols: Iterable[sp.Symbol], rng: random.Random) -> dict[sp.Symbol, sp.Expr]:
        point: dict[sp.Symbol, sp.Expr] = {}
        for symbol in sorted(symbols, key=str):
            if symbol in self.domain:
                low, high = self.domain[symbol]
            elif symbol.is_integer and symbol.is_positive:
                point[symbol] = sp.Integer(rng.randint(1, 6))
                continue
            elif symbol.is_positive or symbol.is_nonnegative:
                low, high = 0.2, 3.0
            else:
                low, high = -2.0, 2.0
            if symbol.is_integer:
                point[symbol] = sp.Integer(rng.randint(int(low), int(high)))
            else:
                point[symbol] = sp.Float(rng.uniform(low, high), 30)
        return point

    def evaluate(self, expr: sp.Expr, point: Mapping[sp.Symbol, sp.Expr]) -> complex | None:
        """``expr`` at ``point`` as a complex number; ``None`` where it is undefined."""
        undefined = expr.atoms(sp.core.function.AppliedUndef)
        if undefined:
            names = ", ".join(sorted(str(f.func) for f in undefined))
            raise CannotCheck(
                f"cannot evaluate the undefined function(s) {names}; "
                "check the step on a tractable instance instead"
            )
        value = sp.N(expr.subs(point), 20 if _unevaluated(expr) else 30)
        if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not value.is_number:
            return None
        try:
            return complex(value)
        except (TypeError, ValueError):
            return None


def _number(value: complex) -> str:
    return f"{value.real:.6g}" if abs(value.imag) <= NUMERIC_TOLERANCE * (1 + abs(value)) else f"{value:.6g}"


def describe_point(point: Mapping[sp.Symbol, sp.Expr]) -> str:
    return ", ".join(f"{symbol} = {float(value):.4g}" for symbol, value in point.items())


class Derivation:
    r"""A chain of expressions, each step checked as it is added.

    Args:
        start: the first expression of the chain (what the checks evaluate).
        latex: how to show it, if not ``sympy.latex(start)``.
        title: a name for the derivation, shown above it and in errors.
        instance: the tractable instance the checks run on, shown on the page.
        domain: ranges ``{symbol: (low, high)}`` for numeric checks.
        points: how many random points a numeric check uses.
        seed: seed of the random points, so a build is reproducible.

    Chain the steps: ``Derivation(e0).eq(e1, "why").le(e2, "why")``.
    """

    def __init__(
        self,
        start: object,
        *,
        latex: str | None = None,
        title: str = "",
        instance: str | None = None,
        domain: Mapping[sp.Symbol, tuple[float, float]] | None = None,
        points: int = 24,
        seed: int = 0,
    ) -> None:
        self.start = _as_expr(start)
        self.start_latex = latex if latex is not None else sp.latex(self.start)
        self.title = title
        self.instance = instance
        self.sampler = Sampler(dict(domain or {}), points, seed)
        self.steps: list[Step] = []

    # -- the five relations ---------------------------------------------------------

    def eq(self, expr: object, why: str, *, latex: str | None = None) -> Derivation:
        """Add ``= expr``, checked for equality."""
        return self._add("=", expr, why, latex, ())

    def le(self, expr: object, why: str, *, latex: str | None = None) -> Derivation:
        """Add ``≤ expr``: the previous expression is at most ``expr``."""
        return self._add("<=", expr, why, latex, ())

    def ge(self, expr: object, why: str, *, latex: str | None = None) -> Derivation:
        """Add ``≥ expr``: the previous expression is at least ``expr``."""
        return self._add(">=", expr, why, latex, ())

    def propto(
        self, expr: object, why: str, *, wrt: sp.Symbol | Sequence[sp.Symbol], latex: str | None = None
    ) -> Derivation:
        """Add ``∝ expr``: the ratio of the two sides does not depend on ``wrt``."""
        return self._add("propto", expr, why, latex, _wrt(wrt))

    def const(
        self, expr: object, why: str, *, wrt: sp.Symbol | Sequence[sp.Symbol], latex: str | None = None
    ) -> Derivation:
        """Add ``=_c expr``: the two sides differ by a term that does not depend on ``wrt``."""
        return self._add("const", expr, why, latex, _wrt(wrt))

    @property
    def result(self) -> sp.Expr:
        """The last expression of the chain."""
        return self.steps[-1].expr if self.steps else self.start

    # -- checking -----------------------------------------------------------------------

    def _add(
        self, relation: Relation, expr: object, why: str, latex: str | None, wrt: tuple[sp.Symbol, ...]
    ) -> Derivation:
        if not why.strip():
            raise ValueError("every step needs a justification (why)")
        rhs = _as_expr(expr)
        lhs = self.result
        number = len(self.steps) + 1
        try:
            check = self._check(relation, lhs, rhs, wrt)
        except StepError as error:
            raise StepError(
                f"step {number} ({why}) of {self.title or 'the derivation'} does not hold:\n"
                f"  left:  {lhs}\n  {relation}\n  right: {rhs}\n  {error}",
                point=error.point,
                left=error.left,
                right=error.right,
            ) from None
        self.steps.append(Step(relation, rhs, latex if latex is not None else sp.latex(rhs), why, check))
        return self

    def _check(self, relation: Relation, lhs: sp.Expr, rhs: sp.Expr, wrt: tuple[sp.Symbol, ...]) -> str:
        symbolic = not (_unevaluated(lhs) or _unevaluated(rhs))
        if relation == "=":
            if symbolic and is_zero(lhs - rhs):
                return "exact"
            return self._numeric(lhs, rhs, _equal, "the sides differ")
        if relation in ("<=", ">="):
            small, large = (lhs, rhs) if relation == "<=" else (rhs, lhs)
            if symbolic:
                proof = _prove_nonnegative(large - small, self.sampler.domain)
                if proof:
                    return proof
            return self._numeric(small, large, _ordered, "the inequality fails")
        if relation == "propto" and rhs == 0:
            raise StepError("a proportionality needs a nonzero right-hand side")
        quantity = lhs - rhs if relation == "const" else lhs / rhs
        if symbolic and all(is_zero(sp.diff(quantity, v)) for v in wrt):
            return "exact"
        return self._numeric_free_of(lhs, rhs, wrt, relation)

    def _sides(self, lhs: sp.Expr, rhs: sp.Expr, point: Mapping[sp.Symbol, sp.Expr]) -> tuple[complex, complex] | None:
        """Both sides at ``point``, each evaluated on its own (a difference near zero would cost precision)."""
        left, right = self.sampler.evaluate(lhs, point), self.sampler.evaluate(rhs, point)
        return None if left is None or right is None else (left, right)

    def _numeric(self, lhs: sp.Expr, rhs: sp.Expr, holds: Callable[[complex, complex], bool], failure: str) -> str:
        symbols = lhs.free_symbols | rhs.free_symbols
        rng = random.Random(self.sampler.seed)
        evaluated = 0
        for _ in range(self.sampler.points):
            point = self.sampler.draw(symbols, rng)
            sides = self._sides(lhs, rhs, point)
            if sides is None:
                continue
            if not holds(*sides):
                where, left, right = describe_point(point), _number(sides[0]), _number(sides[1])
                raise StepError(f"{failure} at {where}: left {left}, right {right}", point=where, left=left, right=right)
            evaluated += 1
        return self._numeric_label(evaluated)

    def _numeric_free_of(self, lhs: sp.Expr, rhs: sp.Expr, wrt: tuple[sp.Symbol, ...], relation: Relation) -> str:
        combine = (lambda a, b: a - b) if relation == "const" else (lambda a, b: a / b)
        name = "difference" if relation == "const" else "ratio"
        others = (lhs.free_symbols | rhs.free_symbols) - set(wrt)
        rng = random.Random(self.sampler.seed)
        evaluated = 0
        for _ in range(max(3, self.sampler.points // 4)):
            base = self.sampler.draw(others, rng)
            values = []
            for _ in range(4):
                point = {**base, **self.sampler.draw(wrt, rng)}
                sides = self._sides(lhs, rhs, point)
                if sides is not None and sides[1] != 0:
                    values.append((combine(*sides), point))
            for value, point in values[1:]:
                if not _equal(value, values[0][0]):
                    raise StepError(
                        f"the {name} of the sides changes with {', '.join(map(str, wrt))}: "
                        f"{_number(values[0][0])} at {describe_point(values[0][1])}, "
                        f"{_number(value)} at {describe_point(point)}"
                    )
            evaluated += len(values)
        return self._numeric_label(evaluated)

    def _numeric_label(self, evaluated: int) -> str:
        if evaluated < max(3, self.sampler.points // 2):
            raise StepError(f"only {evaluated} of {self.sampler.points} random points were in the domain")
        return f"numeric, {evaluated} random points"

    # -- rendering ------------------------------------------------------------------

    def to_latex(self) -> str:
        r"""The chain as an ``aligned`` environment, justification and check beside each line."""
        rows = []
        for step in self.steps:
            mark = r"\color{green}{\checkmark}" if step.check.startswith("exact") else r"\color{#b58900}{\checkmark}"
            rows.append(
                rf"&{RELATION_LATEX[step.relation]} {step.latex} && \text{{{_escape_text(step.why)}}}"
                rf" \;\; {{\scriptsize {mark}\,\text{{{step.check}}}}}"
            )
        first = self.start_latex + (" " + rows[0] if rows else " &")
        return "\\begin{aligned}\n" + " \\\\\n".join([first, *rows[1:]]) + "\n\\end{aligned}"

    def _caption(self) -> str:
        parts = []
        if self.title:
            parts.append(f"**{self.title}.**")
        if self.instance:
            parts.append(f"Checked on {self.instance}.")
        return " ".join(parts)

    def to_markdown(self) -> str:
        """Caption, the chain with numbered steps, and a table of reasons and checks (for Jupyter and the website)."""
        rows = [
            rf"&{RELATION_LATEX[step.relation]} {step.latex} \tag*{{[{number}]}}"
            for number, step in enumerate(self.steps, start=1)
        ]
        first = self.start_latex + (" " + rows[0] if rows else " &")
        math = "\\begin{align*}\n" + " \\\\\n".join([first, *rows[1:]]) + "\n\\end{align*}"
        table = ["| step | because | checked |", "|:--|:--|:--|"]
        for number, step in enumerate(self.steps, start=1):
            badge = ("✓ " if step.check.startswith("exact") else "≈ ") + step.check
            table.append(f"| [{number}] | {step.why.replace('|', '∣')} | {badge} |")
        return self._caption() + "\n\n$$\n" + math + "\n$$\n\n" + "\n".join(table) + "\n"

    def _repr_latex_(self) -> str:
        return "$$\n" + self.to_latex() + "\n$$"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        lines = [f"Derivation: {self.title}" if self.title else "Derivation:", f"      {self.start}"]
        for step in self.steps:
            lines.append(f"  {step.relation:>6} {step.expr}    [{step.why}; {step.check}]")
        return "\n".join(lines)


def _unevaluated(expr: sp.Expr) -> bool:
    """Whether ``expr`` holds an integral, sum or limit that only numbers can settle here."""
    return expr.has(sp.Integral, sp.Sum, sp.Limit)


def _equal(left: complex, right: complex) -> bool:
    return abs(left - right) <= NUMERIC_TOLERANCE * (1 + abs(left) + abs(right))


def _ordered(small: complex, large: complex) -> bool:
    scale = NUMERIC_TOLERANCE * (1 + abs(small) + abs(large))
    return abs(small.imag) <= scale and abs(large.imag) <= scale and large.real - small.real >= -scale


def _prove_nonnegative(gap: sp.Expr, domain: Mapping[sp.Symbol, tuple[float, float]]) -> str | None:
    """How SymPy shows ``gap >= 0`` for all values, or ``None``; raises if it shows ``gap < 0`` everywhere."""
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
