"""The instructor's key (a TOML file of questions and answers) and the student's form check.

See :mod:`dgm.grading` for the key's format. The key is written by ``tools/build_assignments.py`` into the
instructor's folder, never into the package or the student notebooks; :class:`AnswerSheet`, which the
student notebooks use, knows the symbols of each question and nothing of its answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp

from dgm.derivations.answers import TIME_LIMIT, Verdict, check, check_set, read_set, read_set_answer, unanswered
from dgm.derivations.exercises import Exercise, SetExercise
from dgm.derivations.formulas import parse_answer, shorten

ANSWER_CALL = "answer"  #: the function an answer cell calls: answer("ex-vi-kl", "...")
WRITTEN_MARK = "**Your answer to {label}:**"  #: first line of a written-answer cell
KINDS: dict[str, dict[str, bool]] = {"real": {"real": True}, "positive": {"positive": True},
                                     "integer": {"integer": True}, "complex": {}}  # fmt: skip


class KeyFileError(ValueError):
    """A key file that cannot be read; the message names the file, the question and what is wrong."""


# -- the key ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyEntry:
    """One question of the key; ``answer`` is ``None`` for a written answer graded by hand.

    With ``elements`` (the names a set may hold) the answer is a set of names, ``"{G, J, S}"``, graded by
    :func:`dgm.derivations.answers.check_set`; such a question has no symbols, ``wrt`` or ``domain``.
    """

    label: str
    chapter: str
    title: str
    answer: str | None = None
    symbols: dict[str, str] = field(default_factory=dict)  # name → kind (a key of KINDS)
    wrt: tuple[str, ...] | None = None
    domain: dict[str, tuple[float, float]] = field(default_factory=dict)
    accept: tuple[str, ...] = ("correct",)
    points: float = 1.0
    question: str | None = None
    public: bool = False  # the answer is printed in the book and the package
    elements: tuple[str, ...] | None = None  # a set answer: the names it may hold

    def sympy_symbols(self) -> dict[str, sp.Symbol]:
        return {name: sp.Symbol(name, **KINDS[kind]) for name, kind in self.symbols.items()}

    def grade(self, text: str, time_limit: float = TIME_LIMIT) -> Verdict:
        """The checker's verdict on ``text``; the key's own answer is trusted (it was read when loaded)."""
        assert self.answer is not None
        if self.elements is not None:
            return check_set(text, read_set(self.answer, self.elements), self.elements)
        names = self.sympy_symbols()
        expected = parse_answer(self.answer, tuple(names.values()))
        wrt = tuple(names[name] for name in self.wrt) if self.wrt is not None else None
        domain = {names[name]: bounds for name, bounds in self.domain.items()}
        return check(text, expected, symbols=tuple(names.values()), wrt=wrt, domain=domain, time_limit=time_limit)


def _kind(symbol: sp.Symbol) -> str:
    return next((kind for kind in ("integer", "positive", "real") if getattr(symbol, f"is_{kind}")), "complex")


def entry_from_exercise(label: str, exercise: Exercise | None, chapter: str, title: str) -> KeyEntry:
    """A key entry seeded from a book exercise (its answer public), or a written one when it has no formula."""
    if exercise is None:
        return KeyEntry(label, chapter, title, public=True)
    if isinstance(exercise, SetExercise):
        answer = "{" + ", ".join(name for name in exercise.elements if name in exercise.expected) + "}"
        return KeyEntry(label, chapter, title, answer, public=True, elements=exercise.elements)
    symbols = {str(symbol): _kind(symbol) for symbol in exercise.symbols}
    wrt = tuple(map(str, exercise.wrt)) if exercise.wrt is not None else None
    domain = {str(symbol): (float(low), float(high)) for symbol, (low, high) in exercise.domain.items()}
    return KeyEntry(label, chapter, title, sp.sstr(exercise.expected), symbols, wrt, domain, public=True)


def _toml_string(text: str) -> str:
    if "\n" in text and "'''" not in text:
        return "'''\n" + text + "'''"
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def dump_key(entries: Iterable[KeyEntry], note: str = "") -> str:
    """The key as TOML text, each line of ``note`` as a comment at the top."""
    lines = [f"# {line}".rstrip() for line in note.splitlines()]
    for entry in entries:
        lines += ["", f"[{json.dumps(entry.label)}]", f"chapter = {json.dumps(entry.chapter)}"]
        lines += [f"title = {_toml_string(entry.title)}", f"public = {str(entry.public).lower()}"]
        if entry.answer is not None and entry.elements is not None:
            lines += [f"answer = {json.dumps(entry.answer)}", f"elements = {json.dumps(list(entry.elements))}"]
        elif entry.answer is not None:
            symbols = ", ".join(f"{name} = {json.dumps(kind)}" for name, kind in entry.symbols.items())
            lines += [f"answer = {json.dumps(entry.answer)}", f"symbols = {{ {symbols} }}".replace("{  }", "{}")]
        if entry.wrt is not None:
            lines.append(f"wrt = {json.dumps(list(entry.wrt))}")
        if entry.domain:
            bounds = ", ".join(f"{name} = [{low!r}, {high!r}]" for name, (low, high) in entry.domain.items())
            lines.append(f"domain = {{ {bounds} }}")
        if entry.accept != ("correct",):
            lines.append(f"accept = {json.dumps(list(entry.accept))}")
        if entry.points != 1.0:
            lines.append(f"points = {entry.points!r}")
        if entry.question is not None:
            lines.append(f"question = {_toml_string(entry.question)}")
    return "\n".join(lines) + "\n"


def _entry(label: str, table: object, where: str) -> KeyEntry:
    """One table of the key, checked; :class:`KeyFileError` says what is wrong with it."""

    def fail(reason: str) -> KeyFileError:
        return KeyFileError(f"{where}, question [{label}]: {reason}")

    if not isinstance(table, dict):
        raise fail("expected a table of settings (chapter, title, answer, symbols, ...)")
    unknown = set(table) - {"chapter", "title", "answer", "symbols", "wrt", "domain", "accept", "points",
                            "question", "public", "elements"}  # fmt: skip
    if unknown:
        raise fail(f"unknown setting(s) {', '.join(sorted(unknown))}")
    if not isinstance(table.get("chapter"), str) or not table["chapter"]:
        raise fail('needs chapter = "<the assignment it belongs to, e.g. vi>"')
    symbols, accept = table.get("symbols", {}), table.get("accept", ["correct"])
    elements = table.get("elements")
    if elements is not None:
        if not isinstance(elements, list) or not elements or not all(isinstance(n, str) and n.isidentifier() for n in elements):
            raise fail('elements must list the names a set answer may hold, e.g. elements = ["A", "B", "C"]')
        if len(set(elements)) != len(elements):
            raise fail("elements must not repeat a name")
        if {"symbols", "wrt", "domain"} & set(table) or accept != ["correct"]:
            raise fail("a set answer (elements = [...]) takes no symbols, wrt or domain, and only accept = [\"correct\"]")
    if not isinstance(symbols, dict) or not all(isinstance(kind, str) and kind in KINDS for kind in symbols.values()):
        raise fail(f"symbols must be a table name = kind, with kind one of {', '.join(KINDS)}")
    if not all(name.isidentifier() for name in symbols):
        raise fail("a symbol's name must be a Python name (letters, digits and _), e.g. mu_p")
    statuses = ("correct", "up to a constant", "up to a factor")
    if not isinstance(accept, list) or not accept or any(status not in statuses for status in accept):
        raise fail(f"accept must list verdicts among {', '.join(statuses)}")
    if not all(isinstance(table.get(name, ""), str) for name in ("title", "question")):
        raise fail("title and question must be text in quotes")
    try:
        wrt = tuple(map(str, table["wrt"])) if "wrt" in table else None
        domain = {str(name): (float(low), float(high)) for name, (low, high) in table.get("domain", {}).items()}
        entry = KeyEntry(label, table["chapter"], table.get("title", label), table.get("answer"),
                         dict(symbols), wrt, domain, tuple(accept), float(table.get("points", 1.0)),
                         table.get("question"), bool(table.get("public", False)),
                         tuple(elements) if elements is not None else None)  # fmt: skip
    except (TypeError, ValueError, AttributeError) as error:
        raise fail(f"a setting has the wrong form ({error}); see the example at the top of the key") from None
    named = set(wrt or ()) | set(domain)
    if not named <= set(symbols):
        raise fail(f"wrt/domain name symbols not in symbols: {', '.join(sorted(named - set(symbols)))}")
    if entry.answer is not None and entry.elements is not None:
        if not isinstance(entry.answer, str):
            raise fail('answer must be a set of names in quotes, e.g. answer = "{A, B}"')
        try:
            read_set(entry.answer, entry.elements)
        except ValueError as error:
            raise fail(f"its answer cannot be read: {error}") from None
    elif entry.answer is not None:
        if not isinstance(entry.answer, str):
            raise fail('answer must be a formula in quotes, e.g. answer = "mu**2/2"')
        try:
            parse_answer(entry.answer, tuple(entry.sympy_symbols().values()))
        except ValueError as error:
            raise fail(f"its answer cannot be read: {error}") from None
    return entry


def load_key(path: str | Path) -> dict[str, KeyEntry]:
    """The key's questions by label, in the file's order; :class:`KeyFileError` for a file that cannot be used."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise KeyFileError("reading a key needs Python 3.11 or later, or `pip install tomli`") from None
    path = Path(path)
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise KeyFileError(f"cannot read the key {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise KeyFileError(f"{path} is not valid TOML: {error}") from None
    return {label: _entry(label, table, str(path)) for label, table in tables.items()}


# -- the student's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FormCheck:
    """Whether an answer can be read: ``well-formed``, ``malformed`` or ``unanswered`` — never right or wrong."""

    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "well-formed"

    def _repr_markdown_(self) -> str:
        icon = {"well-formed": "✎", "unanswered": "…"}.get(self.status, "⚠")
        return f"{icon} **{self.status.capitalize()}.** {self.message}"

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class AnswerSheet:
    """The answer cells of an assignment notebook: ``answer("ex-vi-kl", "...")`` checks the answer's form only.

    Args:
        assignment: the assignment's name (its chapter), kept in the notebook for the grader.
        symbols: for each formula question, the symbol names its answer may use (``"mu v mu_p v_p"``).
        sets: for each question whose answer is a set of names, the names it may hold (``"A B C"``).
            A question listed in ``symbols`` only, answered with braces or commas, is read as a set of
            any names.
    """

    def __init__(self, assignment: str, symbols: Mapping[str, str], sets: Mapping[str, str] | None = None) -> None:
        self.assignment = assignment
        self.symbols = {label: tuple(sp.Symbol(name) for name in names.split()) for label, names in symbols.items()}
        self.sets = {label: tuple(names.split()) for label, names in (sets or {}).items()}

    def __call__(self, label: str, answer: str) -> FormCheck:
        if label not in self.symbols and label not in self.sets:
            questions = ", ".join([*self.symbols, *(label for label in self.sets if label not in self.symbols)])
            raise KeyError(f"no question {label!r} in this assignment; its questions are {questions}")
        if label in self.sets:
            return self._set(answer, self.sets[label])
        names = ", ".join(map(str, self.symbols[label])) or "no symbols (a number)"
        if unanswered(answer):
            return FormCheck("unanswered", f"Replace ... with your formula, as text in quotes; it may use {names}.")
        if not isinstance(answer, str):
            return FormCheck(
                "malformed", f'write your answer as text in quotes, e.g. "2*mu", not a {type(answer).__name__}.'
            )
        try:
            expr = parse_answer(answer, self.symbols[label])
        except ValueError as error:
            if not any(mark in answer for mark in "{},∅"):
                return FormCheck("malformed", str(error))
            return self._set(answer, None)  # a set of names, "{A, B}": the names are checked when it is graded
        return FormCheck("well-formed", f"It reads as {shorten(sp.sstr(expr), 200)}. Whether it is right is "
                                        "decided when your notebook is graded.")  # fmt: skip

    @staticmethod
    def _set(answer: object, elements: tuple[str, ...] | None) -> FormCheck:
        """The form check of a set of names (of ``elements``, or of any names)."""
        reading = read_set_answer(answer, elements, example="{A, B}")
        if reading.status == "unanswered":
            names = ", ".join(elements) if elements else "the question's names"
            return FormCheck("unanswered", f"Replace ... with a set of names as text in quotes, e.g. \"{{A, B}}\"; it may use {names}.")
        if reading.status == "malformed":
            return FormCheck("malformed", reading.message)
        shown = "{" + ", ".join(sorted(reading.names)) + "}"
        return FormCheck("well-formed", f"It reads as the set {shorten(shown, 200)}. Whether it is right is "
                                        "decided when your notebook is graded.")  # fmt: skip
