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

from dgm.derivations.answers import TIME_LIMIT, Verdict, check
from dgm.derivations.exercises import Exercise
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
    """One question of the key; ``answer`` is ``None`` for a written answer graded by hand."""

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

    def sympy_symbols(self) -> dict[str, sp.Symbol]:
        return {name: sp.Symbol(name, **KINDS[kind]) for name, kind in self.symbols.items()}

    def grade(self, text: str, time_limit: float = TIME_LIMIT) -> Verdict:
        """The checker's verdict on ``text``; the key's own answer is trusted (it was read when loaded)."""
        assert self.answer is not None
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
        if entry.answer is not None:
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
                            "question", "public"}  # fmt: skip
    if unknown:
        raise fail(f"unknown setting(s) {', '.join(sorted(unknown))}")
    if not isinstance(table.get("chapter"), str) or not table["chapter"]:
        raise fail('needs chapter = "<the assignment it belongs to, e.g. vi>"')
    symbols, accept = table.get("symbols", {}), table.get("accept", ["correct"])
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
                         table.get("question"), bool(table.get("public", False)))  # fmt: skip
    except (TypeError, ValueError, AttributeError) as error:
        raise fail(f"a setting has the wrong form ({error}); see the example at the top of the key") from None
    named = set(wrt or ()) | set(domain)
    if not named <= set(symbols):
        raise fail(f"wrt/domain name symbols not in symbols: {', '.join(sorted(named - set(symbols)))}")
    if entry.answer is not None:
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
    """The answer cells of an assignment notebook: ``answer("ex-vi-kl", "...")`` checks the formula's form only.

    Args:
        assignment: the assignment's name (its chapter), kept in the notebook for the grader.
        symbols: for each formula question, the symbol names its answer may use (``"mu v mu_p v_p"``).
    """

    def __init__(self, assignment: str, symbols: Mapping[str, str]) -> None:
        self.assignment = assignment
        self.symbols = {label: tuple(sp.Symbol(name) for name in names.split()) for label, names in symbols.items()}

    def __call__(self, label: str, answer: str) -> FormCheck:
        if label not in self.symbols:
            raise KeyError(f"no question {label!r} in this assignment; its questions are {', '.join(self.symbols)}")
        names = ", ".join(map(str, self.symbols[label])) or "no symbols (a number)"
        if answer is ... or (isinstance(answer, str) and answer.strip() in ("", "...")):
            return FormCheck("unanswered", f"Replace ... with your formula, as text in quotes; it may use {names}.")
        if not isinstance(answer, str):
            return FormCheck(
                "malformed", f'write your answer as text in quotes, e.g. "2*mu", not a {type(answer).__name__}.'
            )
        try:
            expr = parse_answer(answer, self.symbols[label])
        except ValueError as error:
            return FormCheck("malformed", str(error))
        return FormCheck("well-formed", f"It reads as {shorten(sp.sstr(expr), 200)}. Whether it is right is "
                                        "decided when your notebook is graded.")  # fmt: skip
