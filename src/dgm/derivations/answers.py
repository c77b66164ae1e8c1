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
   and gets ``time_limit`` seconds of **CPU time** (:data:`TIME_LIMIT`), counted by the kernel for the
   child alone: a CPU-time timer (``setitimer(ITIMER_PROF)``, POSIX) whose signal ends the child, backed by
   ``RLIMIT_CPU``; the verdict is then "too complex". The limit is on the work, not on the clock, so a busy
   machine (other processes on every core) slows a check down but cannot turn a right answer into a refusal,
   while an answer whose comparison would take minutes of computing is stopped after ``time_limit`` seconds
   of it. A wall-clock ceiling, ``wall_limit`` (:data:`WALL_LIMIT`, at least 4 × ``time_limit``), is the
   last resort for a child that makes no progress at all (stopped, swapped out, starved): past it the child
   is killed (SIGKILL) and the verdict says the machine was too busy and to try again. Where no CPU timer
   exists (Windows), ``time_limit`` is a wall-clock limit, as the ceiling is. Where no child can be started
   at all, it runs in-process, untimed.

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
import math
import multiprocessing
import re
import signal
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

__all__ = ["CHILD_MEMORY", "MAX_LENGTH", "QUOTE_LENGTH", "TIME_LIMIT", "WALL_LIMIT", "SetReading", "Verdict", "check",
           "check_set", "parse_answer", "read_set", "read_set_answer", "unanswered"]

Status = Literal["correct", "up to a constant", "up to a factor", "wrong", "malformed", "unanswered", "too complex"]

TIME_LIMIT = 5.0  #: seconds of CPU time a comparison may use before the verdict is "too complex"
WALL_LIMIT = 60.0  #: seconds on the clock after which a comparison is stopped, whatever its CPU time (last resort)
CHILD_MEMORY = 2**30  #: bytes the comparing child may allocate beyond its parent (Linux)
_CPU_TIMER = hasattr(signal, "setitimer") and hasattr(signal, "SIGPROF")  # POSIX; not Windows
# the signals that end a child whose CPU time ran out: the timer's, and RLIMIT_CPU's soft limit
_OUT_OF_CPU_TIME = {int(getattr(signal, name)) for name in ("SIGPROF", "SIGXCPU") if hasattr(signal, name)}


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


# -- grading, in a child process under a CPU-time limit ---------------------------------------------


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
    wall_limit: float | None = None,
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
        time_limit: seconds of CPU time the comparison may use; past them the verdict is "too complex".
        wall_limit: seconds on the clock after which the comparison is stopped however little CPU time it
            had (a starved or stuck child); default ``max(WALL_LIMIT, 4 * time_limit)``, never below ``time_limit``.

    Raises:
        ValueError: ``time_limit`` or ``wall_limit`` is not a positive number of seconds, or ``wall_limit``
            is below ``time_limit`` (bad settings of the caller, not of the answer).
    """
    time_limit, wall_limit = _limits(time_limit, wall_limit)
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
    return _run_in_child(job, time_limit, wall_limit)


def _limits(time_limit: float, wall_limit: float | None) -> tuple[float, float]:
    """``(time_limit, wall_limit)`` checked, the default ceiling filled in."""
    for name, value in (("time_limit", time_limit), ("wall_limit", wall_limit)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number and 0 < value < math.inf):
            raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}")
    if wall_limit is None:
        wall_limit = max(WALL_LIMIT, 4.0 * time_limit)
    if wall_limit < time_limit:
        raise ValueError(f"wall_limit ({wall_limit:g} s) must be at least time_limit ({time_limit:g} s of CPU time)")
    return float(time_limit), float(wall_limit)


def _run_in_child(job: _Job, time_limit: float, wall_limit: float) -> Verdict:
    """``_grade(job)`` in a child process, which ends itself after ``time_limit`` seconds of CPU time and is
    killed after ``wall_limit`` seconds on the clock."""
    fork = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if fork else "spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(job, sender, time_limit), daemon=True)
    try:
        child.start()
    except (OSError, AssertionError):  # no child process here (inside a daemonic process, say)
        return _grade(job)
    sender.close()
    ceiling = wall_limit if _CPU_TIMER else time_limit  # without a CPU timer the clock is the only limit
    verdict: Verdict | None = None
    answered = False  # the child sent something or closed its end: it is not stuck
    try:
        if receiver.poll(ceiling if fork else ceiling + 10.0):  # a spawned child imports SymPy first
            answered = True
            verdict = receiver.recv()
    except (EOFError, OSError):  # the child died without a verdict (its CPU time ran out, or its memory)
        pass
    finally:
        receiver.close()
        child.join(1.0 if answered else 0)  # a child that answered or died is exiting
        if child.is_alive():
            child.kill()  # SIGKILL: a forked child would run any SIGTERM handler of its parent
        child.join()
    if verdict is not None:
        return verdict
    if not answered and _CPU_TIMER:
        why = f"could not be checked within {ceiling:g} s on the clock: the machine is too busy"
        why += " (or the check made no progress); try again in a moment"
    elif not answered or (child.exitcode is not None and -child.exitcode in _OUT_OF_CPU_TIME):
        why = f"was too complex to check in {time_limit:g} s{' of computing' if _CPU_TIMER else ''}; write it simpler"
    else:
        why = "stopped the check without a verdict (out of memory?); write it more simply"
    return Verdict("too complex", f"{job.quote} {why}.")


def _child(job: _Job, sender: Connection, time_limit: float) -> None:
    """The child: cap its memory at :data:`CHILD_MEMORY` beyond what it has and its CPU time at ``time_limit``
    (POSIX), grade, send the verdict."""
    _limit_cpu_time(time_limit)
    try:
        import resource

        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * resource.getpagesize()
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = size + CHILD_MEMORY if hard == resource.RLIM_INFINITY else min(size + CHILD_MEMORY, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ImportError, OSError, ValueError):  # not Linux: the time limit alone
        pass
    verdict = _grade(job)
    if _CPU_TIMER:
        signal.setitimer(signal.ITIMER_PROF, 0)  # graded in time: sending the verdict must not be cut short
    sender.send(verdict)
    sender.close()


def _limit_cpu_time(seconds: float) -> None:
    """End this process once it has used ``seconds`` of CPU time (counted from now; POSIX only).

    ``ITIMER_PROF`` counts this process's user and system time (not the clock, not other processes') and
    sends SIGPROF, whose default action ends the process at once, even inside C code; the disposition is set
    to that default and the signal unblocked, whatever the parent had. ``RLIMIT_CPU`` (whole seconds, counted
    from the fork, which resets a child's CPU time) backs it up: SIGXCPU about a second later, SIGKILL a
    second after that. No core file is written.
    """
    if not _CPU_TIMER:
        return
    try:
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
    except ValueError:  # only a main thread may set it (the child's one thread is); SIG_DFL is the usual anyway
        pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.Signals(number) for number in _OUT_OF_CPU_TIME})
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(used.ru_utime + used.ru_stime + seconds) + 1
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        if hard == resource.RLIM_INFINITY or soft + 1 <= hard:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    except (ImportError, OSError, ValueError):  # the timer alone
        pass


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
