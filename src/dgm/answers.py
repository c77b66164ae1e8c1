r"""Grading formula answers to exercises.

:func:`check` compares a student's formula, typed as text in Python/SymPy
syntax (``"(mu**2 + sigma**2 - 1)/2 - log(sigma)"``), with the expected
expression and says one of:

* **correct**;
* **equal up to a constant** (the difference does not depend on the
  variables that matter, e.g. a log-normaliser was dropped);
* **equal up to a factor** (the ratio is a constant, e.g. a missing ½);
* **wrong**, with a point where the two differ;
* **malformed**, saying what could not be read; it never raises.

The text is read with SymPy's ``parse_expr``, which evaluates Python; text
that reaches for anything but a formula (``__``, ``import``, ``;``) is
refused before that, but do not grade untrusted text outside a sandbox.

It uses the checks of :mod:`dgm.derive`: exact where SymPy can decide, else
numeric at random points.
"""

from __future__ import annotations

import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import sympy as sp
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from dgm.derive import Derivation, StepError

Status = Literal["correct", "up to a constant", "up to a factor", "wrong", "malformed", "unanswered"]

_TRANSFORMATIONS = (*standard_transformations, implicit_multiplication_application, convert_xor)
_FUNCTIONS = {
    name: getattr(sp, name)
    for name in ("log", "exp", "sqrt", "pi", "sin", "cos", "tanh", "Abs", "Rational", "E", "oo", "gamma", "erf")
}
_FUNCTIONS["ln"] = sp.log
_FUNCTIONS["e"] = sp.E


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check`; true only when the answer is correct."""

    status: Status
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def _repr_markdown_(self) -> str:
        icon = {"correct": "✓", "unanswered": "✎", "malformed": "⚠"}.get(self.status, "✗")
        return f"{icon} **{self.status.capitalize()}.** {self.message}"

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def parse_answer(text: str, symbols: Iterable[sp.Symbol]) -> sp.Expr:
    """Read ``text`` as a formula in ``symbols``.

    Raises:
        ValueError: with a message for a student, if the text is not a formula in those symbols.
    """
    if "\\" in text:
        raise ValueError("write the formula in Python syntax, e.g. (mu**2 + sigma**2 - 1)/2, not LaTeX")
    if "__" in text or ";" in text or re.search(r"\b(import|lambda|exec|eval|open)\b", text):
        raise ValueError(f"{text!r} is not a formula: use numbers, the question's symbols and functions like log, exp, sqrt")
    allowed = {str(symbol): symbol for symbol in symbols}
    names = {**_FUNCTIONS, **allowed}
    try:
        expr = parse_expr(text, local_dict=names, transformations=_TRANSFORMATIONS, evaluate=True)
    except (SyntaxError, tokenize.TokenError) as error:
        opened, closed = text.count("("), text.count(")")
        hint = f"{opened} '(' but {closed} ')'" if opened != closed else f"{error.args[0]}"
        raise ValueError(f"could not read {text!r} as a formula: {hint}") from None
    except Exception as error:  # parse_expr evaluates the text, so anything can come out of it
        raise ValueError(f"could not read {text!r} as a formula ({type(error).__name__}: {error})") from None
    if not isinstance(expr, sp.Expr) or expr.has(sp.Lambda):
        raise ValueError(f"{text!r} is not a formula (it reads as {type(expr).__name__})")
    if expr.has(sp.zoo, sp.nan):
        raise ValueError(f"{text!r} is undefined (a division by zero?)")
    unknown = sorted(str(s) for s in expr.free_symbols if str(s) not in allowed)
    if unknown:
        usable = f"use only {', '.join(sorted(allowed))}" if allowed else "the answer is a number"
        raise ValueError(f"your answer uses {', '.join(unknown)}, which the question does not; {usable}")
    return expr


def check(
    answer: str | sp.Expr,
    expected: sp.Expr,
    *,
    symbols: Sequence[sp.Symbol] | None = None,
    wrt: Sequence[sp.Symbol] | None = None,
    points: int = 16,
    seed: int = 0,
) -> Verdict:
    """Grade ``answer`` against ``expected``.

    Args:
        answer: the student's formula, as text or a SymPy expression.
        expected: the right answer.
        symbols: the symbols the answer may use (default: those of ``expected``).
        wrt: the variables that matter; a difference or ratio free of them is
            "up to a constant" / "up to a factor" (default: all of ``symbols``).
    """
    allowed = list(symbols) if symbols is not None else sorted(expected.free_symbols, key=str)
    if answer is ... or (isinstance(answer, str) and answer.strip() in ("", "...")):
        wanted = f"a formula in the symbols {', '.join(map(str, allowed))}" if allowed else "a number"
        return Verdict("unanswered", f"write your answer as text: {wanted}.")
    try:
        given = parse_answer(answer, allowed) if isinstance(answer, str) else sp.sympify(answer)
    except ValueError as error:
        return Verdict("malformed", str(error))
    except Exception as error:  # a verdict, never a traceback, whatever the answer was
        return Verdict("malformed", f"not a formula: {error}")
    variables = tuple(wrt) if wrt is not None else tuple(allowed)
    try:
        return _compare(given, sp.sympify(expected), variables, points, seed)
    except Exception as error:  # a verdict, never a traceback, whatever the answer was
        return Verdict("malformed", f"could not compare your answer with the expected one ({error})")


def _compare(given: sp.Expr, expected: sp.Expr, variables: Sequence[sp.Symbol], points: int, seed: int) -> Verdict:
    """The verdict, from the derivation engine's checks: ``=``, then ``=_c`` and ``∝`` in ``variables``."""

    def chain() -> Derivation:
        return Derivation(given, points=points, seed=seed)

    try:
        how = chain().eq(expected, "your answer").steps[0].check
        where = "for all values (checked symbolically)" if how == "exact" else f"at {how.removeprefix('numeric, ')}"
        return Verdict("correct", f"your formula equals the expected one {where}.")
    except StepError as error:
        mismatch = error
    if not variables:  # a number: no variable for "up to a constant" or "up to a factor" to speak of
        return Verdict("wrong", f"your answer is {mismatch.left or given}, which is not the expected value.")
    names = ", ".join(map(str, variables))
    try:
        chain().const(expected, "up to a constant", wrt=variables)
        return Verdict(
            "up to a constant",
            f"your formula differs from the expected one by a term that does not depend on {names}: "
            f"{sp.simplify(given - expected)}.",
        )
    except StepError:
        pass
    if expected != 0:
        try:
            chain().propto(expected, "up to a factor", wrt=variables)
            return Verdict("up to a factor", f"your formula is the expected one times {sp.simplify(given / expected)}.")
        except StepError:
            pass
    if mismatch.point:
        return Verdict("wrong", f"at {mismatch.point} your formula gives {mismatch.left}, but the answer is {mismatch.right}.")
    return Verdict("wrong", str(mismatch).splitlines()[-1].strip())
