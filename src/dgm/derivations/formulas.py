r"""Reading a formula a student typed, without running it.

:func:`read_tree` turns answer text into a checked syntax tree and
:func:`build_expression` turns that tree into a SymPy expression; together they
are :func:`parse_answer`. Nothing in the text is ever run:

* Unicode students type is translated (σ → ``sigma``, ² → ``**2``, ½ → ``(1/2)``,
  · × → ``*``, − → ``-``, √x → ``sqrt(x)``; ``^`` → ``**``) and other odd
  characters are refused with what to type instead;
* :func:`ast.parse` builds a syntax tree (it runs nothing), and a walk over it
  admits only number literals up to :data:`MAX_NUMBER`, the question's symbols
  by name, ``pi`` and ``e``, ``+ - * / **``, unary signs and calls of the
  one-argument :data:`FUNCTIONS`, nested at most :data:`MAX_DEPTH` deep, in
  power towers no higher than ``a**b**c``; anything else is refused with a
  message. There is no ``eval``, ``parse_expr`` or ``sympify`` of text;
* building refuses exponents above :data:`MAX_EXPONENT`, powers of numbers
  above :data:`MAX_BITS` bits, and answers that are infinite or undefined.

Messages quote at most :data:`QUOTE_LENGTH` characters of an answer.
:mod:`dgm.derivations.answers` builds and compares in a child process under a time limit.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence

import sympy as sp

MAX_LENGTH = 2_000  #: characters of an answer that are read; a longer one is refused
MAX_DEPTH = 50  #: deepest nesting of brackets, calls and operators
MAX_EXPONENT = 100  #: largest |exponent| of a power with a numeric exponent
MAX_TOWER = 2  #: deepest power tower: a**b**c is read, a**b**c**d is refused
MAX_NUMBER = 10**12  #: largest number literal
MAX_BITS = 10_000  #: largest power of numbers, in bits (about 3,000 digits)
QUOTE_LENGTH = 40  #: characters of an answer quoted in a message

#: The functions an answer may call, each with one argument.
FUNCTIONS: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    **{name: getattr(sp, name) for name in "log exp sqrt sin cos tan sinh cosh tanh atan erf Abs".split()},
    **{"ln": sp.log, "abs": sp.Abs},
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E, "e": sp.E}
_USE = "use numbers, the question's symbols, + - * / ** ( ) and " + ", ".join(list(FUNCTIONS)[:-2])

# Greek letters (after the NFKC normalisation Python applies to names: µ → μ, ϵ → ε, ϑ → θ), spelled out.
_GREEK = dict(zip("αβγδεζηθικλμνξπρστυφχψωΓΔΘΛΞΠΣΦΨΩ", (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon phi chi psi "
    "omega Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi Omega").split()))  # fmt: skip
_TYPED = str.maketrans(
    {"·": "*", "⋅": "*", "×": "*", "∗": "*", "−": "-", "–": "-", "÷": "/", "∕": "/", "^": "**"}
    | {"½": "(1/2)", "⅓": "(1/3)", "⅔": "(2/3)", "¼": "(1/4)", "¾": "(3/4)", "⅛": "(1/8)"}
)
_SUPERSCRIPT = re.compile("[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_ROOT = re.compile(r"√\s*(\(|[^\W\d]\w*|\d+(?:\.\d*)?)")
_CHARACTER_HINTS = {"∞": "infinity is not an answer here", "√": "write sqrt(...)",
                    "≤≥≠": "give the expression only, not an equation or a comparison",
                    "∑∫∏∂": "sums, integrals and derivatives are not read; give a closed form"}  # fmt: skip
_IMPLICIT = re.compile(r"[\d.]\s*[^\W\d]|[\w)]\s+[\w(]|\)\s*\w")  # 2x, 2 mu, mu sigma, (a)b
_BARE_CALL = re.compile(r"\b(" + "|".join(FUNCTIONS) + r")\s+(\w+)")  # log sigma
_REFUSED_NAMES = {"oo": "infinity is not an answer here", "inf": "infinity is not an answer here",
                  "nan": "nan is not an answer", "zoo": "complex infinity is not an answer",
                  "I": "imaginary numbers are not answers here", "factorial": "factorial is not offered"}  # fmt: skip
_SYNTAX = {
    ast.Attribute: "'.' (attribute access)", ast.Subscript: "[ ] (indexing)", ast.Lambda: "lambda",
    ast.List: "a list", ast.Tuple: "a comma (a tuple)", ast.Set: "a set", ast.Dict: "a dict",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator", ast.JoinedStr: "an f-string", ast.NamedExpr: "an assignment (:=)",
    ast.Starred: "* unpacking", ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "if/else",
    ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.LShift: "<<", ast.RShift: ">>", ast.Not: "not", ast.Invert: "~",
}  # fmt: skip
_ADDITIVE, _MULTIPLICATIVE = (ast.Add, ast.Sub), (ast.Mult, ast.Div)


def quoted(text: str) -> str:
    """At most :data:`QUOTE_LENGTH` characters of ``text``, quoted (control characters escaped)."""
    return repr(text[:QUOTE_LENGTH]) + ("…" if len(text) > QUOTE_LENGTH else "")


def shorten(expr: object, length: int = 80) -> str:
    text = str(expr)
    return text if len(text) <= length else text[:length] + "…"


def _unreadable(quote: str, reason: str) -> ValueError:
    return ValueError(f"could not read {quote} as a formula: {reason}.")


def _not_a_formula(quote: str, reason: str) -> ValueError:
    return ValueError(f"{quote} is not a formula: {reason}; {_USE}.")


# -- reading: text to a checked syntax tree, in the calling process --------------------------------


def _translate(text: str, quote: str) -> str:
    """``text`` with the Unicode students type made into Python syntax; raises for any other odd character."""
    text = "".join(" " if char.isspace() else char for char in text).translate(_TYPED)
    text = _SUPERSCRIPT.sub(lambda power: f"**({power[0].translate(_SUPERSCRIPT_DIGITS)})", text)
    text = _ROOT.sub(lambda root: "sqrt(" if root[1] == "(" else f"sqrt({root[1]})", text)
    for char in text:
        if not (char.isprintable() and (char.isascii() or char.isalpha())):  # letters: names, as σ
            hint = next((hint for chars, hint in _CHARACTER_HINTS.items() if char in chars), None)
            hint = hint or f"{_USE}; Greek letters (σ) and ², ½, ·, ×, − are fine"
            raise _unreadable(quote, f"the character {char!r} (U+{ord(char):04X}) is not read; {hint}")
    return text


def _check_brackets(text: str, quote: str) -> None:
    depth = deepest = 0
    for char in text:
        depth += (char in "([{") - (char in ")]}")
        deepest = max(deepest, depth)
        if depth < 0:
            raise _unreadable(quote, f"a '{char}' closes a bracket that was not opened")
    if text.count("(") != text.count(")"):
        raise _unreadable(quote, f"{text.count('(')} '(' but {text.count(')')} ')'")
    if deepest > MAX_DEPTH:
        raise _unreadable(quote, f"brackets are nested more than {MAX_DEPTH} deep")


def _syntax_error(text: str, quote: str, error: SyntaxError) -> ValueError:
    """What to say about text that is not even Python syntax: keywords, ``=``, implicit products."""
    python = sorted(word for word in set(re.findall(r"[A-Za-z_]\w*", text)) if keyword.iskeyword(word))
    if python:
        return _not_a_formula(quote, f"{python[0]!r} is Python, not mathematics")
    if "=" in text:
        return _unreadable(quote, "give the expression only, without '='")
    if bare := _BARE_CALL.search(text):
        return _unreadable(quote, f"write {bare[1]}({bare[2]}), with brackets around the argument")
    if implicit := _IMPLICIT.search(text):
        return _unreadable(quote, f"write * for every product, as in 2*x and mu*sigma (near {implicit[0]!r})")
    return _unreadable(quote, str(error.msg).split(".")[0])


def _name(identifier: str, names: Mapping[str, sp.Symbol]) -> sp.Expr | None:
    """What a name in an answer stands for: a symbol of the question (σ and sigma alike) or a constant."""
    spelled = "".join(_GREEK.get(char, char) for char in identifier)
    return names.get(spelled, CONSTANTS.get(spelled))


def _number(value: object, quote: str) -> sp.Rational:
    """A number literal as an exact rational (0.5 → 1/2); raises for anything but a finite int or float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "an imaginary number" if isinstance(value, complex) else shorten(repr(value), 20)
        raise _not_a_formula(quote, f"it has {what}")
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise _unreadable(quote, f"numbers are read up to {MAX_NUMBER:,} in size")
    return sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(value))


def _unknown_names(unknown: list[str], names: Mapping[str, sp.Symbol], quote: str) -> ValueError:
    known = [*names, *CONSTANTS]
    for name in unknown:
        spelled = "".join(_GREEK.get(char, char) for char in name)
        if spelled in _REFUSED_NAMES:
            return ValueError(f"{quote} is not a formula: {_REFUSED_NAMES[spelled]}.")
        if spelled in FUNCTIONS:
            return _unreadable(quote, f"{name} is a function; write {name}(x)")
        pairs = [f"{a}*{spelled[len(a):]}" for a in known if spelled.startswith(a) and spelled[len(a) :] in known]
        if pairs:  # musigma, xl
            return _unreadable(quote, f"{name} is not a symbol; write {pairs[0]} for a product")
    usable = f"use only {', '.join(names)}" if names else "the answer is a number"
    listed = ", ".join(dict.fromkeys(shorten(name, 20) for name in unknown))
    return ValueError(f"your answer uses {listed}, which the question does not; {usable}.")


def _call_argument(call: ast.Call, names: Mapping[str, sp.Symbol], quote: str) -> ast.expr:
    """The one argument of a call of one of :data:`FUNCTIONS`; raises for any other call."""
    known = isinstance(call.func, ast.Call) and isinstance(call.func.func, ast.Name) and call.func.func.id in FUNCTIONS
    if isinstance(call.func, (ast.Constant, ast.BinOp, ast.UnaryOp)) or known:  # 2(x + 1), (a + b)(c + d), log(x)(y)
        raise _unreadable(quote, "write * for every product, as in 2*(x + 1)")
    if isinstance(call.func, ast.Call):
        raise _not_a_formula(quote, "it calls what a call returns")
    if not isinstance(call.func, ast.Name):
        raise _not_a_formula(quote, f"it uses {_SYNTAX.get(type(call.func), type(call.func).__name__)}")
    name = call.func.id
    if name not in FUNCTIONS:
        if _name(name, names) is not None:
            raise _unreadable(quote, f"{name} is not a function; write {name}*(...) for a product")
        raise _not_a_formula(quote, _REFUSED_NAMES.get(name, f"{shorten(name, 20)}(...) is not a function it offers"))
    if call.keywords or len(call.args) != 1 or isinstance(call.args[0], ast.Starred):
        raise _unreadable(quote, f"{name} takes one argument, as in {name}(x)")
    return call.args[0]


def read_tree(text: str, names: Mapping[str, sp.Symbol]) -> ast.Expression:
    """The syntax tree of ``text``, checked to hold only what a formula may (see the module docstring).

    Raises:
        ValueError: with a message for a student, if the text is not a formula in ``names``.
    """
    quote = quoted(text)
    if len(text) > MAX_LENGTH:
        raise _unreadable(quote, f"it is too long ({len(text):,} characters; at most {MAX_LENGTH:,})")
    if "\\" in text or "$" in text:
        raise _unreadable(quote, "write it in Python syntax, e.g. (mu**2 + sigma**2 - 1)/2, not LaTeX")
    text = _translate(text, quote)
    _check_brackets(text, quote)
    try:
        with warnings.catch_warnings():  # "'int' object is not callable" for 2(x + 1): said below, better
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise _syntax_error(text, quote, error) from None
    except (ValueError, RecursionError, MemoryError):
        raise _unreadable(quote, "it is nested too deeply") from None
    unknown: list[str] = []
    stack: list[tuple[ast.expr, int, int]] = [(tree.body, 1, 0)]  # node, depth, height in a power tower
    while stack:
        node, depth, tower = stack.pop()
        if depth > MAX_DEPTH:
            raise _unreadable(quote, f"it is nested more than {MAX_DEPTH} deep")
        if isinstance(node, ast.Constant):
            _number(node.value, quote)
        elif isinstance(node, ast.Name):
            unknown += [node.id] if _name(node.id, names) is None else []
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            stack.append((node.operand, depth + 1, tower))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            if tower >= MAX_TOWER:
                raise _unreadable(quote, "a power tower like a**b**c**d is too large to check")
            stack += [(node.left, depth + 1, tower), (node.right, depth + 1, tower + 1)]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (*_ADDITIVE, *_MULTIPLICATIVE)):
            group = _ADDITIVE if isinstance(node.op, _ADDITIVE) else _MULTIPLICATIVE
            chained = isinstance(node.left, ast.BinOp) and isinstance(node.left.op, group)  # a + b + c is no nesting
            stack += [(node.left, depth if chained else depth + 1, tower), (node.right, depth + 1, tower)]
        elif isinstance(node, ast.Call):
            stack.append((_call_argument(node, names, quote), depth + 1, tower))
        elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
            raise _not_a_formula(quote, f"the operator {_SYNTAX.get(type(node.op), '?')} is not read")
        else:
            raise _not_a_formula(quote, f"it uses {_SYNTAX.get(type(node), type(node).__name__)}")
    if unknown:
        raise _unknown_names(unknown, names, quote)
    return tree


# -- building: a checked tree to a SymPy expression, in the child ----------------------------------


def build_expression(node: ast.expr, names: Mapping[str, sp.Symbol], quote: str) -> sp.Expr:
    """The SymPy expression of a tree :func:`_read` admitted; a chain a + b + c is built in a loop, not by recursion."""
    if isinstance(node, ast.Constant):
        return _number(node.value, quote)
    if isinstance(node, ast.Name):
        return _name(node.id, names)  # type: ignore[return-value]  # _read admitted known names only
    if isinstance(node, ast.UnaryOp):
        operand = build_expression(node.operand, names, quote)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](build_expression(node.args[0], names, quote))  # type: ignore[attr-defined]
    assert isinstance(node, ast.BinOp)
    if isinstance(node.op, ast.Pow):
        return _power(build_expression(node.left, names, quote), build_expression(node.right, names, quote), quote)
    group = _ADDITIVE if isinstance(node.op, _ADDITIVE) else _MULTIPLICATIVE
    operands: list[sp.Expr] = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, group):
        right = build_expression(node.right, names, quote)
        if isinstance(node.op, (ast.Sub, ast.Div)):
            right = -right if isinstance(node.op, ast.Sub) else sp.Pow(right, -1)
        operands.append(right)
        node = node.left
    operands.append(build_expression(node, names, quote))
    return sp.Add(*reversed(operands)) if group is _ADDITIVE else sp.Mul(*reversed(operands))


def _power(base: sp.Expr, exponent: sp.Expr, quote: str) -> sp.Expr:
    """``base**exponent``, refused before it is computed if the exponent or the number would be huge."""
    if exponent.is_Rational and abs(exponent) > MAX_EXPONENT:
        raise _unreadable(quote, f"the exponent {shorten(exponent, 20)} is larger than {MAX_EXPONENT}")
    if base.is_Rational and exponent.is_Rational:
        if abs(exponent) * max(base.p.bit_length(), base.q.bit_length()) > MAX_BITS:  # type: ignore[attr-defined]
            raise _unreadable(quote, f"a power of numbers above 2**{MAX_BITS} is too large to check")
    return sp.Pow(base, exponent)


def require_finite(expr: sp.Expr, quote: str) -> sp.Expr:
    """``expr``, unless it is infinite or undefined or holds a power above :data:`MAX_EXPONENT`."""
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ValueError(f"{quote} is undefined or infinite (a division by zero, or log(0)?): an answer is finite.")
    if any(power.exp.is_Rational and abs(power.exp) > MAX_EXPONENT for power in expr.atoms(sp.Pow)):
        raise _unreadable(quote, f"it makes a power above {MAX_EXPONENT}")
    return expr


def parse_answer(text: str, symbols: Sequence[sp.Symbol]) -> sp.Expr:
    """Read ``text`` as a formula in ``symbols`` in this process, without the time limit :func:`check` has.

    Raises:
        ValueError: with a message for a student, if the text is not a finite formula in those symbols.
    """
    names = {str(symbol): symbol for symbol in symbols}
    return require_finite(build_expression(read_tree(text, names).body, names, quoted(text)), quoted(text))
