r"""Grading formula answers to exercises.

:func:`check` compares a student's formula, typed as text (``"(mu**2 + sigma**2 - 1)/2 - log(sigma)"``,
``"(μ² + σ² − 1)/2 − log(σ)"``), with the expected one and says: **correct**; **up to a constant** (the
difference does not depend on the variables that matter: a dropped log-normaliser); **up to a factor**
(a positive constant ratio: a missing ½); **wrong**, with a point where they differ; **malformed**, with
what could not be read and what to type instead; or **too complex** (out of time). It never raises.

Safety model: answers are untrusted text; nothing in them is ever run, and no answer keeps the machine busy.

1. *Reading* (:mod:`dgm.derivations.formulas`), in the calling process, uses the standard library only, its cost
   bounded by ``MAX_LENGTH``: Unicode students type is translated, :func:`ast.parse` builds a syntax
   tree (it runs nothing), and a walk over the tree admits only numbers, the question's symbols,
   ``pi`` and ``e``, ``+ - * / **``, unary signs and one-argument calls of a named set of functions,
   within caps on nesting and power towers; anything else is refused with a message. There is no
   ``eval``, ``parse_expr`` or ``sympify`` of text.
2. *Building and comparing* happen in a child process: the SymPy expression is built node by node
   (:func:`dgm.derivations.formulas.build_expression`: capped exponents and sizes of numbers, no infinite or
   undefined answers) and compared by the checks of :mod:`dgm.derivations.derive`, exactly
   where SymPy can decide, else at random points of the exercise's domain. The child is forked (about
   10 ms; spawned where there is no fork), may allocate :data:`CHILD_MEMORY` beyond its parent (Linux),
   and gets ``time_limit`` seconds (:data:`TIME_LIMIT`); then it is killed (SIGKILL) and
   joined, and the verdict is "too complex". Where no child can be started at all, it runs in-process,
   untimed.

Messages quote at most :data:`QUOTE_LENGTH` characters of an answer. The expected expression, the
symbols and the domain come from the exercise key and are trusted.

**Sets of names.** :func:`check_set` grades an answer that is a set of names (the Markov blanket of a
node: ``"{G, J, S}"`` or ``"G, J, S"``; the statements that hold: ``"{a, c}"``; the empty set ``"{}"`` or
``"∅"``) against the expected set, under the same rules: :func:`read_set` reads the text with string
operations only (no ``eval``, no parser of Python), at most :data:`MAX_LENGTH` characters, one pair of
braces at most, names of letters, digits and ``_`` among the question's own (matched regardless of case
where that is unambiguous), separated by commas or spaces; anything else is "malformed", with what to type
instead. Reading is linear in the length of the answer, so no child process is needed.
"""

from __future__ import annotations

import ast
import multiprocessing
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Literal

import sympy as sp

from dgm.derivations.derive import Derivation, StepError
from dgm.derivations.formulas import (
    MAX_LENGTH,
    QUOTE_LENGTH,
    build_expression,
    parse_answer,
    quoted,
    read_tree,
    require_finite,
    shorten,
)

__all__ = ["CHILD_MEMORY", "MAX_LENGTH", "QUOTE_LENGTH", "TIME_LIMIT", "SetReading", "Verdict", "check", "check_set",
           "parse_answer", "read_set", "read_set_answer", "unanswered"]

Status = Literal["correct", "up to a constant", "up to a factor", "wrong", "malformed", "unanswered", "too complex"]

TIME_LIMIT = 5.0  #: seconds a comparison may take before the verdict is "too complex"
CHILD_MEMORY = 2**30  #: bytes the comparing child may allocate beyond its parent (Linux)


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check`; true only when the answer is correct."""

    status: Status
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def _repr_markdown_(self) -> str:
        icon = {"correct": "✓", "unanswered": "✎", "malformed": "⚠", "too complex": "⧗"}.get(self.status, "✗")
        return f"{icon} **{self.status.capitalize()}.** {self.message}"

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


# -- grading, in a child process under a time limit ------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What the child needs: the answer's checked tree (or a trusted expression) and the question."""

    answer: ast.Expression | sp.Expr
    quote: str
    expected: sp.Expr
    names: dict[str, sp.Symbol]
    variables: tuple[sp.Symbol, ...]
    domain: dict[sp.Symbol, tuple[float, float]]
    points: int
    seed: int


def check(
    answer: str | sp.Expr,
    expected: sp.Expr,
    *,
    symbols: Sequence[sp.Symbol] | None = None,
    wrt: Sequence[sp.Symbol] | None = None,
    domain: Mapping[sp.Symbol, tuple[float, float]] | None = None,
    points: int = 16,
    seed: int = 0,
    time_limit: float = TIME_LIMIT,
) -> Verdict:
    """Grade ``answer`` against ``expected``, safely (see the module docstring).

    Args:
        answer: the student's formula, as text (or a trusted SymPy expression).
        expected: the right answer.
        symbols: the symbols the answer may use (default: those of ``expected``).
        wrt: the variables that matter; a difference or ratio free of them is
            "up to a constant" / "up to a factor" (default: all of ``symbols``).
        domain: ranges ``{symbol: (low, high)}`` the numeric checks draw from;
            an integer symbol with ``(0, 1)`` takes the values 0 and 1.
        time_limit: seconds the comparison may take; past it the verdict is "too complex".
    """
    expected = sp.sympify(expected, strict=True)
    allowed = tuple(symbols) if symbols is not None else tuple(sorted(expected.free_symbols, key=str))
    names = {str(symbol): symbol for symbol in allowed}
    if unanswered(answer):
        wanted = f"a formula in the symbols {', '.join(names)}" if names else "a number"
        return Verdict("unanswered", f"write your answer as text: {wanted}.")
    if isinstance(answer, str):
        try:
            given: ast.Expression | sp.Expr = read_tree(answer, names)
        except ValueError as error:
            return Verdict("malformed", str(error))
    elif isinstance(answer, (sp.Expr, int, float)) and not isinstance(answer, bool):
        given = sp.sympify(answer, strict=True)
    else:
        return Verdict("malformed", f'write your answer as text in quotes, e.g. "2*mu", not a {type(answer).__name__}.')
    variables = tuple(wrt) if wrt is not None else allowed
    job = _Job(given, quoted(str(answer)), expected, names, variables, dict(domain or {}), points, seed)
    return _run_in_child(job, time_limit)


def _run_in_child(job: _Job, time_limit: float) -> Verdict:
    """``_grade(job)`` in a child process, which is stopped after ``time_limit`` seconds."""
    fork = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if fork else "spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(job, sender), daemon=True)
    try:
        child.start()
    except (OSError, AssertionError):  # no child process here (inside a daemonic process, say)
        return _grade(job)
    sender.close()
    verdict: Verdict | None = None
    try:
        if receiver.poll(time_limit if fork else time_limit + 10.0):  # a spawned child imports SymPy first
            verdict = receiver.recv()
    except (EOFError, OSError):  # the child died without a verdict (out of memory)
        pass
    finally:
        receiver.close()
        child.join(1.0 if verdict is not None else 0)  # a child that answered is exiting
        if child.is_alive():
            child.kill()  # SIGKILL: a forked child would run any SIGTERM handler of its parent
        child.join()
    if verdict is None:
        return Verdict("too complex", f"{job.quote} was too complex to check in {time_limit:g} s; write it simpler.")
    return verdict


def _child(job: _Job, sender: Connection) -> None:
    """The child: cap its memory at :data:`CHILD_MEMORY` beyond what it has (Linux), grade, send the verdict."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * resource.getpagesize()
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = size + CHILD_MEMORY if hard == resource.RLIM_INFINITY else min(size + CHILD_MEMORY, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ImportError, OSError, ValueError):  # not Linux: the time limit alone
        pass
    sender.send(_grade(job))
    sender.close()


def _grade(job: _Job) -> Verdict:
    """Build the answer and compare it with the expected one; a verdict, whatever happens."""
    try:
        if isinstance(job.answer, ast.Expression):
            return _compare(require_finite(build_expression(job.answer.body, job.names, job.quote), job.quote), job)
        return _compare(job.answer, job)
    except ValueError as error:
        return Verdict("malformed", shorten(error, 400))
    except (MemoryError, RecursionError):
        return Verdict("too complex", f"{job.quote} was too large to check; write it more simply.")
    except Exception as error:  # a verdict, never a traceback, whatever the answer was
        return Verdict("malformed", f"could not compare your answer with the expected one ({shorten(error, 200)}).")


def _compare(given: sp.Expr, job: _Job) -> Verdict:
    """The verdict, from the derivation engine's checks: ``=``, then ``=_c`` and ``∝`` in the variables."""
    expected, variables = job.expected, job.variables
    everywhere = "your formula equals the expected one for all values (checked symbolically)."
    differs = "your formula differs from the expected one by a term that does not depend on "
    differs += ", ".join(map(str, variables))

    def chain() -> Derivation:
        return Derivation(given, domain=job.domain, points=job.points, seed=job.seed)

    if given == expected:  # the same expression: the engine refuses a step that checks nothing
        return Verdict("correct", everywhere)
    try:
        how = chain().eq(expected, "your answer").steps[0].check
        where = "for all values (checked symbolically)" if how == "exact" else f"at {how.removeprefix('numeric, ')}"
        return Verdict("correct", f"your formula equals the expected one {where}.")
    except StepError as error:
        mismatch = error
    if not variables:  # a number: no variable for "up to a constant" or "up to a factor" to speak of
        return Verdict("wrong", f"your answer is {shorten(mismatch.left or given)}, which is not the expected value.")
    try:
        chain().const(expected, "up to a constant", wrt=variables)
        difference = sp.simplify(given - expected)
        if difference == 0:  # huge terms that cancel cost the numbers the equality; SymPy shows it
            return Verdict("correct", everywhere)
        return Verdict("up to a constant", f"{differs}: {shorten(difference)}.")
    except StepError:
        pass
    if expected != 0:
        try:
            chain().propto(expected, "up to a factor", wrt=variables)
            factor = shorten(sp.simplify(given / expected))
            return Verdict("up to a factor", f"your formula is the expected one times {factor}.")
        except StepError:
            pass
    if mismatch.point:
        left, right = shorten(mismatch.left), shorten(mismatch.right)
        return Verdict("wrong", f"at {mismatch.point} your formula gives {left}, but the answer is {right}.")
    return Verdict("wrong", shorten(str(mismatch).splitlines()[-1].strip(), 200))


# -- sets of names ----------------------------------------------------------------------------------

_EMPTY_SET = ("{}", "∅", "{ }")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SET_EXAMPLE = "write the names separated by commas, e.g. {A, B} or A, B (the empty set: {})"


def _set_error(quote: str, reason: str) -> ValueError:
    return ValueError(f"could not read {quote} as a set of names: {reason}; {_SET_EXAMPLE}.")


def read_set(text: str, elements: Sequence[str] | None = None) -> frozenset[str]:
    """The set of names that ``text`` lists (``"{A, B}"``, ``"A, B"``, ``"A B"``, ``"{}"``), read without running anything.

    Args:
        text: the answer.
        elements: the names the question allows; a name outside them is refused, and a name that differs
            from one of them in case only is read as that one (where no two of them differ in case only).
            ``None``: any name of letters, digits and ``_``.

    Raises:
        ValueError: a message that says what could not be read and what to type instead.
    """
    quote = quoted(text)
    if len(text) > MAX_LENGTH:
        raise _set_error(quote, f"it is too long ({len(text):,} characters; at most {MAX_LENGTH:,})")
    text = "".join(" " if char.isspace() else char for char in text).strip()
    if text in _EMPTY_SET:
        return frozenset()
    for char in text:
        if not (char.isascii() and (char.isalnum() or char in "_, {}")):
            raise _set_error(quote, f"the character {char!r} (U+{ord(char):04X}) is not read")
    if text.startswith("{") != text.endswith("}") or text == "}{":
        raise _set_error(quote, "a '{' needs a '}' to close it, and a '}' a '{' to open it")
    inner = text[1:-1] if text.startswith("{") else text
    if "{" in inner or "}" in inner:
        raise _set_error(quote, "braces inside a set (a set of sets) are not read")
    parts = [part.strip() for part in inner.split(",")]
    if parts and not parts[-1]:
        parts.pop()  # a trailing comma
    if any(not part for part in parts):
        raise _set_error(quote, "a name is missing between two commas")
    names = [name for part in parts for name in part.split()]
    if not names:
        raise _set_error(quote, "it names nothing")
    by_case = {element.lower(): element for element in elements or ()}
    unambiguous = elements is not None and len(by_case) == len(elements)
    found = set()
    for name in names:
        if not _NAME.match(name):
            raise _set_error(quote, f"{quoted(name)} is not a name (letters, digits and _, starting with a letter)")
        if elements is None or name in elements:
            found.add(name)
        elif unambiguous and name.lower() in by_case:
            found.add(by_case[name.lower()])
        else:
            raise ValueError(f"{quoted(name)} is not one of this question's names, which are {', '.join(elements)}; {_SET_EXAMPLE}.")
    return frozenset(found)


def unanswered(answer: object) -> bool:
    """Whether ``answer`` is still the blank a notebook hands out: ``...``, ``"..."`` or empty text."""
    return answer is ... or (isinstance(answer, str) and answer.strip() in ("", "..."))


@dataclass(frozen=True)
class SetReading:
    """What :func:`read_set_answer` made of an answer: ``read`` (with the ``names``), ``unanswered`` or
    ``malformed`` (with a ``message`` that says what to type instead)."""

    status: Literal["read", "unanswered", "malformed"]
    names: frozenset[str] = frozenset()
    message: str = ""


def read_set_answer(answer: object, elements: Sequence[str] | None, example: str) -> SetReading:
    """Read a set-of-names answer as the checker (:func:`check_set`) and the answer sheet (``dgm.grading``) both do.

    Args:
        answer: what the student wrote (any object: a notebook cell may hold a number or a Python set).
        elements: the names the question allows, or ``None`` for any names (see :func:`read_set`).
        example: a set to show in the message for an answer that is not text (``"{A, B}"``).
    """
    if unanswered(answer):
        return SetReading("unanswered")
    if not isinstance(answer, str):
        return SetReading("malformed", message=f'write your answer as text in quotes, e.g. "{example}", not a {type(answer).__name__}.')
    try:
        return SetReading("read", read_set(answer, elements))
    except ValueError as error:
        return SetReading("malformed", message=str(error))


def _shown(names: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(names)) + "}"


def check_set(answer: str, expected: Iterable[str], elements: Sequence[str]) -> Verdict:
    """Grade a set of names: correct, or wrong with how many names are too many and how many are missing.

    Args:
        answer: the student's set, as text (see :func:`read_set`).
        expected: the right set; every name in it is one of ``elements``.
        elements: the names the question allows.
    """
    expected, elements = frozenset(expected), tuple(elements)
    if not expected <= set(elements):
        raise ValueError(f"the expected set names {_shown(expected - set(elements))}, which are not among the elements")
    reading = read_set_answer(answer, elements, example=f"{{{elements[0]}}}")
    if reading.status == "unanswered":
        return Verdict("unanswered", f"write your answer as text: a set of the names {', '.join(elements)}, e.g. {{{elements[0]}}}.")
    if reading.status == "malformed":
        return Verdict("malformed", reading.message)
    given = reading.names
    if given == expected:
        return Verdict("correct", f"your set {_shown(given)} is the expected one.")
    extra, missing = len(given - expected), len(expected - given)
    parts = [f"{extra} of your names {'does' if extra == 1 else 'do'} not belong"] if extra else []
    parts += [f"{missing} {'name is' if missing == 1 else 'names are'} missing"] if missing else []
    return Verdict("wrong", f"your set {_shown(given)} is not the expected one: {' and '.join(parts)}.")
