"""Mutation testing of derivations: perturb what a step displays and see the engine refuse it.

Every step of a page is a displayed formula printed from the checked object
(:mod:`dgm.derivations.notation`). :func:`mutants` changes that object the way a typo or
a slip in a derivation would (flip a sign, drop a ½, swap the arguments of a
KL, write σ for σ², drop a term, move the bound of a sum, change a constant),
and :func:`rewrites` changes only its form (reorder a sum, replace notation by
its value on the instance). :func:`judge` runs a step's mutants through the
engine: a mutant whose value differs from the original's (an independent
oracle: both evaluated at random points) must be refused, naming the step;
a rewrite must pass.

:func:`run_page` executes a page's code cells (its ``.md``), once per process, and
returns the derivations it made.
"""

from __future__ import annotations

import cmath
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial
from pathlib import Path

import jupytext
import sympy as sp
from IPython.core.inputtransformer2 import TransformerManager

from dgm.derivations.derive import Derivation, StepError, _concrete, recording
from dgm.derivations.notation import KL, Density, Expectation, Notation, in_order, latex


def _replace_at(expr: sp.Basic, path: tuple[int, ...], new: sp.Basic) -> sp.Basic:
    if not path:
        return new
    args = list(expr.args)
    args[path[0]] = _replace_at(args[path[0]], path[1:], new)
    return expr.func(*args, evaluate=False) if isinstance(expr, (sp.Add, sp.Mul, sp.Pow)) else expr.func(*args)


def _nodes(expr: sp.Basic, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], sp.Basic]]:
    yield path, expr
    if isinstance(expr, Density):  # a density's instance value is not part of what is displayed
        return
    for index, arg in enumerate(expr.args):
        yield from _nodes(arg, (*path, index))


def mutants(expr: sp.Expr, densities: list[Density] = ()) -> Iterator[tuple[str, sp.Expr]]:
    """Wrong variants of ``expr``, each with what was changed (variants SymPy cannot even build are left out)."""
    for what, build in _variants(expr, densities):
        try:
            yield what, build()
        except (TypeError, ValueError, AttributeError):  # e.g. a derivative in σ² after writing σ² for σ
            continue


def _variants(expr: sp.Expr, densities: list[Density]) -> Iterator[tuple[str, Callable[[], sp.Expr]]]:
    yield "flip the sign", lambda: -expr
    yield "double it", lambda: 2 * expr
    for path, node in _nodes(expr):
        if isinstance(node, sp.Add) and len(node.args) > 1:
            for index, term in enumerate(node.args):
                rest = [t for i, t in enumerate(node.args) if i != index]
                yield f"drop the term {latex(term)}", partial(_replace_at, expr, path, sp.Add(*rest, evaluate=False))
                flipped = [(-t if i == index else t) for i, t in enumerate(node.args)]
                yield f"flip the sign of {latex(term)}", partial(_replace_at, expr, path, sp.Add(*flipped, evaluate=False))
        elif isinstance(node, sp.Rational) and not node.is_Integer:
            yield f"write 1 for {node}", partial(_replace_at, expr, path, sp.Integer(1))
        elif isinstance(node, sp.Integer) and abs(node) > 1:
            yield f"write {node + 1} for {node}", partial(_replace_at, expr, path, node + 1)
        elif isinstance(node, sp.Pow) and node.exp == 2 and node.base.is_Symbol:
            yield f"write {node.base} for {node}", partial(_replace_at, expr, path, node.base)
        elif isinstance(node, sp.Symbol) and node.is_positive and path and not isinstance(node, sp.Dummy):
            yield f"write {node}² for {node}", partial(_replace_at, expr, path, node**2)
        elif isinstance(node, KL) and isinstance(node.args[1], Density):
            yield "swap the arguments of the KL", partial(_replace_at, expr, path, KL(node.args[1], node.args[0]))
        elif isinstance(node, sp.Sum):
            (index, low, high), *more = node.limits
            yield "move the upper bound of the sum", partial(_replace_at, expr, path, sp.Sum(node.function, (index, low, high + 1), *more))
        elif isinstance(node, Expectation):
            for other in densities:
                if other != node.law and other.variables == node.law.variables:
                    yield f"take the expectation under {latex(other)}", partial(_replace_at, expr, path, Expectation(node.body, other))
                    break


def rewrites(expr: sp.Expr) -> Iterator[tuple[str, sp.Expr]]:
    """Right variants of ``expr``: the same value in another form."""
    if isinstance(expr, sp.Add):
        yield "reorder the terms", in_order(*reversed(expr.args))
    if expr.has(Notation):
        yield "replace the notation by its value on the instance", _concrete(expr)


@dataclass
class Verdicts:
    """What :func:`judge` found: mutants refused, mutants that slipped through, rewrites refused."""

    refused: int = 0
    equivalent: int = 0
    slipped: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)


def _holds(relation: str, left: complex, right: complex) -> bool:
    if relation == "=":
        return abs(left - right) <= 1e-7 * (1 + max(abs(left), abs(right)))
    if relation == "<=":
        return left.real <= right.real + 1e-7 * (1 + abs(right))
    if relation == ">=":
        return left.real >= right.real - 1e-7 * (1 + abs(right))
    return True


_UNDEFINED = object()


@lru_cache(maxsize=65536)
def _value_at(expr: sp.Expr, point: tuple[tuple[sp.Symbol, sp.Expr], ...]) -> complex | object:
    """``expr`` at ``point`` at 20 digits by SymPy's ``evalf`` (not the engine's lambdified functions), or ``_UNDEFINED``.

    ``evalf(subs=...)`` evaluates the tree numerically without rebuilding it (``N(expr.subs(point))`` rebuilt and
    re-simplified the expression at every point: 4.3 times slower on book/dirac_gan's mutants, same values to
    1e-25 relative at all 1,164 points tried). Where ``evalf`` gives no finite number, ``N(subs)`` decides as before,
    so no point the oracle could use before is lost.

    Cached: every mutant of a step is compared with the same left side at the same points (the oracle's seed is
    fixed). The key is the concrete expression and the point's (symbol, value) pairs, compared as SymPy compares
    them (a Float's precision, a symbol's assumptions count), so only the very same evaluation is reused.
    """
    values = dict(point)
    try:
        value = complex(expr.evalf(20, subs=values))
        if cmath.isfinite(value):
            return value
    except (TypeError, ValueError):
        pass
    try:
        return complex(sp.N(expr.subs(values), 20))
    except (TypeError, ValueError):
        return _UNDEFINED


def differs(derivation: Derivation, number: int, mutant: sp.Expr, points: int = 12) -> bool:
    """The oracle: whether the mutated step is false at some random point (moderate ranges, its own seed).

    It evaluates the sides with SymPy's ``evalf``, independently of the engine's numeric functions; the
    sides' concrete forms are the derivation's (:meth:`Derivation.concrete`, made once each).
    """
    step = derivation.steps[number - 1]
    left, original, changed = (derivation.concrete(e) for e in (derivation.left_of(number), step.expr, mutant))
    symbols = sorted(left.free_symbols | original.free_symbols | changed.free_symbols, key=str)
    rng = random.Random(12345)
    wrt = set(step.wrt)
    reference: dict[str, complex] = {}
    for _ in range(points):
        point = derivation.sampler.draw(symbols, rng, narrow=True)
        at = tuple(point.items())
        values = []
        for e in (left, original, changed):
            values.append(_value_at(e, at))
            if values[-1] is _UNDEFINED:
                break
        if values[-1] is _UNDEFINED:
            continue
        a, _, c = values
        if step.relation in ("=", "<=", ">="):
            if not _holds(step.relation, a, c):
                return True
            continue
        # ∝ and =_c: the ratio or difference must not change with wrt (compare points that share the other symbols)
        if c == 0:
            return True
        value = a / c if step.relation == "propto" else a - c
        if step.relation == "propto" and value.real <= 0:
            return True
        key = ",".join(f"{s}={point[s]}" for s in symbols if s not in wrt)
        reference.setdefault(key, value)
        if abs(value - reference[key]) > 1e-7 * (1 + abs(value)):
            return True
        # vary wrt only, keeping the rest
        moved = {**point, **derivation.sampler.draw(wrt, rng, narrow=True)}
        a2 = _value_at(left, tuple(moved.items()))
        c2 = _UNDEFINED if a2 is _UNDEFINED else _value_at(changed, tuple(moved.items()))
        if c2 is _UNDEFINED:
            continue
        if c2 == 0:
            return True
        other = a2 / c2 if step.relation == "propto" else a2 - c2
        if abs(other - value) > 1e-7 * (1 + abs(value)):
            return True
    return False


def judge(derivation: Derivation, densities: list[Density] = (), limit: int = 12) -> Verdicts:
    """Run each step's mutants (at most ``limit`` a step) and rewrites through the engine."""
    verdicts = Verdicts()
    for number, step in enumerate(derivation.steps, start=1):
        name = f"{derivation.title or 'untitled'} [{number}]"
        for count, (what, mutant) in enumerate(mutants(step.expr, list(densities))):
            if count >= limit:
                break
            try:
                derivation.verify_step(number, mutant)
            except StepError as error:
                assert f"step {number} (" in str(error), f"the failure does not name the step: {error}"
                verdicts.refused += 1
                continue
            except Exception:  # a mutant the engine cannot evaluate (e.g. KL of a product swapped) is not a pass
                verdicts.refused += 1
                continue
            if differs(derivation, number, mutant):
                verdicts.slipped.append(f"{name}: {what}")
            else:
                verdicts.equivalent += 1
        for what, rewrite in rewrites(step.expr):
            if rewrite == derivation.left_of(number):
                continue
            try:
                derivation.verify_step(number, rewrite)
            except StepError as error:
                verdicts.false_alarms.append(f"{name}: {what}: {str(error).splitlines()[-1]}")
    return verdicts


def run_page(page: Path) -> tuple[list[Derivation], dict]:
    """Execute the code cells of a MyST page and return the derivations it made, and its namespace.

    A page runs once per test process: :func:`check_page` and a test file's fixture that asks for the same page
    share the run (its derivations, every step checked as it was made, and its namespace), which the mutation tests
    only read (:meth:`Derivation.verify_step` checks a changed step without keeping it). Each mutant is still put to
    the engine.
    """
    return _run_page(Path(page).resolve())


@cache
def _run_page(page: Path) -> tuple[list[Derivation], dict]:
    notebook = jupytext.read(page)
    namespace: dict = {"__name__": "__page__", "display": lambda *args, **kwargs: None}
    transformer = TransformerManager()
    with recording() as derivations:
        for cell in notebook.cells:
            if cell.cell_type != "code" or "google.colab" in cell.source:
                continue
            exec(compile(transformer.transform_cell(cell.source), str(page), "exec"), namespace)
    return derivations, namespace


def densities_in(derivations: list[Derivation]) -> list[Density]:
    """Every density the derivations mention (for swapping the law of an expectation)."""
    found: list[Density] = []
    for derivation in derivations:
        for expr in (derivation.start, *(s.expr for s in derivation.steps)):
            for node in sp.preorder_traversal(expr):
                if isinstance(node, Density) and node not in found:
                    found.append(node)
    return found


BOOK = Path(__file__).resolve().parents[1] / "book"


def check_page(name: str, limit: int = 8) -> None:
    """Run book/NAME.md and judge every step of every derivation on it; fail with what slipped or was refused."""
    derivations, _ = run_page(BOOK / f"{name}.md")
    assert derivations, f"book/{name}.md made no derivation"
    densities = densities_in(derivations)
    refused = 0
    slipped: list[str] = []
    false_alarms: list[str] = []
    for derivation in derivations:
        verdicts = judge(derivation, densities, limit=limit)
        refused += verdicts.refused
        slipped += verdicts.slipped
        false_alarms += verdicts.false_alarms
    assert not slipped, f"book/{name}.md: wrong steps the engine accepted: {slipped}"
    assert not false_alarms, f"book/{name}.md: right rewrites the engine refused: {false_alarms}"
    assert refused > 0
