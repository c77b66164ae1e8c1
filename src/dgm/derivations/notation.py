r"""The book's notation as SymPy objects that print as the book writes them and evaluate themselves.

A derivation step is written once, in notation: ``E(log(p_xz) - log(q), q)`` is
$\mathbb E_{q(z)}[\log p(x, z) - \log q(z)]$. The page prints it with
:func:`latex` (one printer, the book's notation table) and the derivation
engine checks the *same* object by :func:`evaluate`, which replaces every
notation object by its value on the tractable instance it was bound to:

* :class:`Density` — a density or probability $p(x \mid z)$ that carries its
  log-value on the instance; $\log p$ evaluates to that log-value exactly.
* :class:`Gaussian` — a density that is $\mathcal N(\text{mean}, \text{variance})$
  in one variable; expectations of polynomials under it are exact.
  :class:`Normal` is one whose mean and variance may hold names.
* :class:`Discrete` — a distribution on finitely many atoms (a table);
  expectations under it are finite sums.
* :class:`Expectation` — $\mathbb E_{q}[f]$, evaluated by the law of ``q``.
* :class:`KL` — $\mathrm{KL}(q \,\|\, p) = \mathbb E_q[\log q - \log p]$.
* :class:`Named` — a name for a longer formula ($\mathrm{ELBO}(q)$), which
  evaluates to its definition; a derivation shows the definition beside it.
* :class:`Grad`, :class:`Trace` — $\nabla_x f$ and $\operatorname{tr} A$.
* :class:`Integrated` — $\int f\, dv$ of a product of Gaussian densities (:func:`integral`), in closed form.
* :class:`Written` — a sum or product printed in the order written (:func:`plus`, :func:`product`).
* :class:`OfTime` — a function of time on a concrete schedule, $\mathrm{SNR}(t)$, and its derivative (:func:`slope`).
* :class:`Definite` — $\int_a^b f\, dv$, evaluated by an antiderivative that SymPy first verifies.

SymPy's own unevaluated objects already print as the book writes them and are
evaluated here too: ``Integral`` ($\int \cdot\, dz$), ``Sum``
($\sum_{i=1}^{N}$), ``Product`` ($\prod_{i=1}^{N}$, multiplied out where its
bounds are numbers), ``Derivative``, ``Subs`` and ``Limit``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

import sympy as sp
from sympy.core.symbol import Str
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from dgm.derivations.instances import gaussian_expectation, normal_logpdf


class Notation(sp.Expr):
    """An abstract object of the book's notation; subclasses say how to print and evaluate it."""

    is_commutative = True

    def value(self) -> sp.Expr:
        """Its value on the instance it was bound to, free of notation objects."""
        raise NotImplementedError


#: What a name may not contain: a name is a label; a formula is written in notation, so that it is checked.
_NOT_IN_A_NAME = ("+", "=", "<", ">", r"\frac", r"\sum", r"\int", r"\log", r"\exp", r"\mathbb", r"\le", r"\ge", r"\cdot", "/")


def _label(name: str) -> str:
    """``name`` if it reads as a label (``\\mathrm{ELBO}(q)``, ``D^*``, ``J_{\\mathrm{alt}}``), else a ``ValueError``."""
    found = [part for part in _NOT_IN_A_NAME if part in name]
    if found or not name.strip():
        raise ValueError(
            f"{name!r} is a formula, not a name (it contains {', '.join(found) or 'nothing'}): "
            "write it in notation so that the engine checks what the page shows"
        )
    return name


def _variables(variables: sp.Symbol | Iterable[sp.Symbol]) -> sp.Tuple:
    if isinstance(variables, sp.Tuple):
        return variables
    return sp.Tuple(variables) if isinstance(variables, sp.Basic) else sp.Tuple(*variables)


class Density(Notation):
    r"""A density $p(x \mid z)$, bound to its log-value on an instance; build one with :func:`density`.

    Its arguments are ``(name, variables, given, log_value, ...)``: the letters
    printed (``"p"``, ``"q_\\phi"``), what it is a density of, what it is
    conditioned on, and its logarithm on the instance.
    """

    is_positive = True
    is_real = True

    def __new__(cls, name: str | Str, variables: object, given: object, log_value: object, *law: object) -> Density:
        name = name if isinstance(name, Str) else Str(name if not name else _label(name))
        return sp.Expr.__new__(cls, name, _variables(variables), _variables(given), sp.sympify(log_value), *law)

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def variables(self) -> tuple[sp.Symbol, ...]:
        return tuple(self.args[1])

    @property
    def given(self) -> tuple[sp.Symbol, ...]:
        return tuple(self.args[2])

    @property
    def log_value(self) -> sp.Expr:
        return self.args[3]

    def value(self) -> sp.Expr:
        return sp.exp(self.log_value)

    def expect(self, body: sp.Expr) -> sp.Expr:
        """$\\int p(v)\\, f(v)\\, dv$ over the real line, left for numeric integration (one variable)."""
        if len(self.variables) != 1:
            raise NotImplementedError(f"no rule for expectations under {self.name} over {len(self.variables)} variables")
        (variable,) = self.variables
        return sp.Integral(sp.exp(self.log_value) * body, (variable, -sp.oo, sp.oo))

    def _latex(self, printer: LatexPrinter) -> str:
        inside = ", ".join(printer._print(v) for v in self.variables)
        if self.given:
            inside += r" \mid " + ", ".join(printer._print(g) for g in self.given)
        return rf"{self.name}({inside})"


class Gaussian(Density):
    r"""A one-dimensional Gaussian density; build one with :func:`gaussian`. Unnamed, it prints as $\mathcal N(v; \mu, \sigma^2)$."""

    @property
    def mean(self) -> sp.Expr:
        return self.args[4]

    @property
    def variance(self) -> sp.Expr:
        return self.args[5]

    def expect(self, body: sp.Expr) -> sp.Expr:
        """Exact for a polynomial ``body`` (every Gaussian log-density is one); else a numeric integral."""
        (variable,) = self.variables
        try:
            return gaussian_expectation(body, variable, self.mean, self.variance)
        except ValueError:
            return super().expect(body)

    def _latex(self, printer: LatexPrinter) -> str:
        if self.name:
            return super()._latex(printer)
        (variable,) = self.variables
        return rf"\mathcal N\left({printer._print(variable)}; {printer._print(self.mean)}, {printer._print(self.variance)}\right)"


class Discrete(Density):
    r"""A distribution on finitely many atoms; build one with :func:`discrete`. $\log p$ is a ``Piecewise`` over the atoms."""

    @property
    def table(self) -> list[tuple[sp.Tuple, sp.Expr]]:
        return list(zip(self.args[4], self.args[5]))

    def expect(self, body: sp.Expr) -> sp.Expr:
        """$\\sum_k p_k f(a_k)$ over the atoms."""
        return sp.Add(*(p * body.subs(dict(zip(self.variables, atom))) for atom, p in self.table))


def density(name: str, variables: object, log_value: object, given: object = ()) -> Density:
    """A density ``name(variables | given)`` whose logarithm on the instance is ``log_value``."""
    return Density(name, variables, given, log_value)


def gaussian(variable: sp.Symbol, mean: object, variance: object, *, name: str = "", given: object = ()) -> Gaussian:
    r"""$\mathcal N(\text{variable}; \text{mean}, \text{variance})$, printed as ``name(variable | given)`` when named."""
    mean, variance = sp.sympify(mean), sp.sympify(variance)
    return Gaussian(name, variable, given, normal_logpdf(variable, mean, variance), mean, variance)


class Normal(Gaussian):
    r"""A Gaussian whose mean and variance may hold names (:class:`Named`); build one with :func:`normal`.

    It prints its parameters as written ($\mathcal N(z; c^* x, v^*)$) and is
    evaluated by their values: its log-value and its expectations use the
    definitions of the names.
    """

    def expect(self, body: sp.Expr) -> sp.Expr:
        """Exact for a polynomial ``body``, with the names in the mean and variance evaluated; else a numeric integral."""
        (variable,) = self.variables
        try:
            return gaussian_expectation(body, variable, evaluate(self.mean), evaluate(self.variance))
        except ValueError:
            return Density.expect(self, body)


def normal(variable: sp.Symbol, mean: object, variance: object, *, name: str = "", given: object = ()) -> Normal:
    r"""$\mathcal N(\text{variable}; \text{mean}, \text{variance})$ whose mean and variance may hold names, printed as written."""
    mean, variance = sp.sympify(mean), sp.sympify(variance)
    return Normal(name, variable, given, normal_logpdf(variable, evaluate(mean), evaluate(variance)), mean, variance)


def expanded_logs(expr: sp.Expr) -> sp.Expr:
    """``expr`` with each log of a product split into a sum of logs (the factors are positive) and their arguments multiplied out."""
    return sp.expand_log(expr, force=True).replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(sp.expand(e.args[0])))


def expanded_normal(variable: sp.Symbol, mean: object, variance: object, *, name: str = "", given: object = ()) -> Normal:
    r""":func:`normal` with its log-value's logs split (:func:`expanded_logs`) and its variance over one denominator.

    The same density, in a form in which two log-densities that are equal
    simplify to the same expression, so that chains of Gaussians (book/ddpm,
    book/vdm) are decided exactly rather than at random points.
    """
    mean, variance = sp.sympify(mean), sp.sympify(variance)
    log_value = normal_logpdf(evaluate(variable), evaluate(mean), sp.together(evaluate(variance)))
    return Normal(name, variable, given, expanded_logs(log_value), mean, variance)


class Integrated(Density):
    r"""$\int f \, dv$ for a product $f$ of Gaussian densities in $v$: a density of the other variables; build one with :func:`integral`.

    Its log-value is the Gaussian integral: for $\log f = a v^2 + b v + c$ with
    $a < 0$, $\log \int f\, dv = c - b^2/(4a) + \tfrac12 \log(\pi/(-a))$.
    """

    def _latex(self, printer: LatexPrinter) -> str:
        body, variable = self.args[4:]
        return rf"\int {printer._print(body)} \, d{printer._print(variable)}"


def integral(body: sp.Expr, variable: sp.Symbol) -> Integrated:
    r"""$\int$ ``body`` $d$ ``variable``, evaluated in closed form (a ``ValueError`` if the integrand is not Gaussian in it)."""
    exponent = sp.expand(sp.expand_log(evaluate(log_value(body)), force=True))
    polynomial = sp.Poly(exponent, variable)
    if polynomial.degree() != 2:
        raise ValueError(f"the integrand is not a Gaussian in {variable}: its log is not quadratic in it")
    a, b, c = (polynomial.coeff_monomial(variable**k) for k in (2, 1, 0))
    if a.is_nonnegative:
        raise ValueError(f"the integrand is not a Gaussian in {variable}: the coefficient of {variable}² is not negative")
    outside = tuple(sorted(evaluate(body).free_symbols - {variable}, key=str))
    # $\log \int f\, dv = c - b^2/(4a) + \tfrac12 \log(\pi/(-a))$
    free, logs = c.as_independent(sp.log)
    log_integral = sp.cancel(free - b**2 / (4 * a)) + logs + expanded_logs(sp.log(sp.pi / sp.together(-a))) / 2
    return Integrated("", outside, (), log_integral, sp.sympify(body), variable)


class Written(Notation):
    r"""A sum or a product printed in the order written ($a_{t|s}\, z_s$, not $z_s a_{t|s}$); build one with :func:`plus` or :func:`product`.

    Its arguments are the operation (``Str("+")`` or ``Str("*")``) and the terms; it evaluates to their sum or product.
    """

    @property
    def precedence(self) -> int:
        return PRECEDENCE["Add" if self.args[0].name == "+" else "Mul"]

    def value(self) -> sp.Expr:
        terms = [evaluate(term) for term in self.args[1:]]
        return sp.Add(*terms) if self.args[0].name == "+" else sp.Mul(*terms)

    def _eval_is_real(self) -> bool | None:
        return all(term.is_real for term in self.args[1:]) or None

    def _latex(self, printer: LatexPrinter) -> str:
        operation, first, *rest = self.args
        if operation.name == "*":
            return " ".join(printer.parenthesize(factor, PRECEDENCE["Mul"], strict=True) for factor in self.args[1:])
        text = printer._print(first)
        for term in rest:
            negative = term.could_extract_minus_sign()
            text += (" - " if negative else " + ") + printer.parenthesize(-term if negative else term, PRECEDENCE["Add"])
        return text


def plus(*terms: object) -> Written:
    """``terms[0] + terms[1] + …`` printed in this order (a minus sign where a term has one); one term is itself."""
    if not terms:
        raise ValueError("a sum needs at least one term, got none")
    return Written(Str("+"), *map(sp.sympify, terms))


def product(*factors: object) -> Written:
    """``factors[0] · factors[1] · …`` printed in this order, side by side; one factor is itself (the last term of a
    sum of products, as in book/ddpm's variance of x_T)."""
    if not factors:
        raise ValueError("a product needs at least one factor, got none")
    return Written(Str("*"), *map(sp.sympify, factors))


class Log(Notation):
    r"""$\log$ of a positive quantity, printed as written and evaluated as a sum of the logs of its factors.

    Splitting the logs (:func:`expanded_logs`) makes two equal logs compare as
    equal symbolically, so chains through them are decided exactly.
    """

    is_real = True

    def __new__(cls, argument: object) -> "Log":
        return sp.Expr.__new__(cls, sp.sympify(argument))

    def value(self) -> sp.Expr:
        return expanded_logs(sp.log(sp.together(evaluate(self.args[0]))))

    def _latex(self, printer: LatexPrinter) -> str:
        return rf"\log \left({printer._print(self.args[0])}\right)"


class OfTime(Notation):
    r"""A function of time on a concrete schedule, e.g. $\mathrm{SNR}(t)$: printed by name, evaluated by its formula.

    ``OfTime(name, rule, argument)``: ``rule`` is a one-variable ``sp.Lambda`` (the
    schedule's formula), ``argument`` what it is applied to (``t``, ``i/T``, or
    another :class:`OfTime`, as in $\tilde e(\mathrm{SNR}(t))$).
    """

    is_real = True

    def __new__(cls, name: str | Str, rule: sp.Lambda, argument: object) -> OfTime:
        if not isinstance(rule, sp.Lambda) or len(rule.variables) != 1:
            raise TypeError(f"the rule of {name} must be a one-variable sympy Lambda, got {rule!r}")
        return sp.Expr.__new__(cls, name if isinstance(name, Str) else Str(_label(name)), rule, sp.sympify(argument))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def rule(self) -> sp.Lambda:
        return self.args[1]

    def value(self) -> sp.Expr:
        return self.rule(evaluate(self.args[2]))

    def _latex(self, printer: LatexPrinter) -> str:
        return rf"{self.name}\left({printer._print(self.args[2])}\right)"


def slope(function: OfTime) -> OfTime:
    """The derivative $f'$ of a function of time $f$, printed $f'(t)$ and evaluated as the derivative of its formula."""
    if not isinstance(function, OfTime):
        raise TypeError(f"slope takes a function of time (OfTime), not {type(function).__name__}")
    name, rule, argument = function.args
    (variable,) = rule.variables
    return OfTime(Str(name.name + "'"), sp.Lambda(variable, sp.diff(rule.expr, variable)), argument)


@functools.cache
def _is_antiderivative(antiderivative: sp.Expr, integrand: sp.Expr, variable: sp.Symbol) -> bool:
    from dgm.derivations.derive import is_zero  # the engine's exact zero test (derive imports this module)

    return is_zero(sp.diff(antiderivative, variable) - integrand)


class Definite(Notation):
    r"""$\int_a^b f \, dv$, evaluated as $F(b) - F(a)$ with an antiderivative $F$ (the fundamental theorem of calculus).

    ``Definite(body, variable, lower, upper, antiderivative)``. SymPy must show
    $F' = f$ exactly on the instance; otherwise evaluating the integral raises a
    ``ValueError`` (so a step with a changed integrand, or a wrong $F$, fails).
    """

    is_real = True

    def __new__(cls, body: object, variable: sp.Symbol, lower: object, upper: object, antiderivative: object) -> Definite:
        return sp.Expr.__new__(cls, *map(sp.sympify, (body, variable, lower, upper, antiderivative)))

    def value(self) -> sp.Expr:
        body, variable, lower, upper, antiderivative = self.args
        integrand, primitive = evaluate(body), evaluate(antiderivative)
        if not _is_antiderivative(primitive, integrand, variable):
            raise ValueError(f"the derivative of {primitive} in {variable} is not the integrand {integrand}")
        return primitive.subs(variable, evaluate(upper)) - primitive.subs(variable, evaluate(lower))

    def _latex(self, printer: LatexPrinter) -> str:
        body, variable, lower, upper, _ = self.args
        return rf"\int_{{{printer._print(lower)}}}^{{{printer._print(upper)}}} {printer._print(body)} \, d{printer._print(variable)}"


def discrete(name: str, variables: object, table: Mapping[object, object], given: object = ()) -> Discrete:
    """A distribution on atoms: ``table`` maps each atom (a value, or a tuple of values of ``variables``) to its probability.

    Probabilities may depend on ``given`` (a conditional table) and on free
    parameters; they must sum to 1 for all of their values (a ``ValueError``
    otherwise: a mistyped table is not an instance of anything).
    """
    names = _variables(variables)
    atoms = [sp.Tuple(*(atom if isinstance(atom, tuple) else (atom,))) for atom in table]
    if any(len(atom) != len(names) for atom in atoms):
        raise ValueError(f"every atom needs one value for each of {tuple(names)}")
    probs = [sp.sympify(p) for p in table.values()]
    total = sp.Add(*probs)
    if total != 1 and sp.simplify(sp.together(total - 1)) != 0:
        raise ValueError(f"the probabilities of {name} do not sum to 1 (they sum to {total})")
    log_value = sp.Piecewise(
        *((sp.log(p), sp.And(*(sp.Eq(v, a) for v, a in zip(names, atom)))) for atom, p in zip(atoms, probs)),
        (sp.nan, True),
    )
    return Discrete(name, names, given, log_value, sp.Tuple(*atoms), sp.Tuple(*probs))


class Expectation(Notation):
    r"""$\mathbb E_{q}[f]$: the expectation of ``body`` under the density ``law``."""

    def __new__(cls, body: object, law: Density) -> Expectation:
        if not isinstance(law, Density):
            raise TypeError(f"an expectation is taken under a Density, not {type(law).__name__}")
        return sp.Expr.__new__(cls, sp.sympify(body), law)

    @property
    def body(self) -> sp.Expr:
        return self.args[0]

    @property
    def law(self) -> Density:
        return self.args[1]

    def value(self) -> sp.Expr:
        return self.law.expect(evaluate(self.body))

    def _latex(self, printer: LatexPrinter) -> str:
        return rf"\mathbb E_{{{printer._print(self.law)}}}\left[{printer._print(self.body)}\right]"


E = Expectation


class KL(Notation):
    r"""$\mathrm{KL}(q \,\|\, p) = \mathbb E_q[\log q - \log p]$, for densities over the same variables."""

    is_real = True

    def __new__(cls, first: Density, second: sp.Expr) -> KL:
        if not isinstance(first, Density):
            raise TypeError(f"the first argument of a KL divergence is a Density, not {type(first).__name__}")
        return sp.Expr.__new__(cls, first, sp.sympify(second))

    def value(self) -> sp.Expr:
        first, second = self.args
        return first.expect(first.log_value - log_value(second))

    def _latex(self, printer: LatexPrinter) -> str:
        first, second = self.args
        return rf"\mathrm{{KL}}\left({printer._print(first)} \,\middle\|\, {printer._print(second)}\right)"


class Named(Notation):
    r"""A name for a formula, e.g. ``Named(r"\mathrm{ELBO}(q)", E(...))``; it evaluates to its definition.

    The name is a label, not a formula: a :class:`~dgm.derivations.derive.Derivation`
    prints the definition of every name it uses beside the chain.
    """

    def __new__(cls, name: str | Str, definition: object) -> Named:
        name = name if isinstance(name, Str) else Str(_label(name))
        return sp.Expr.__new__(cls, name, sp.sympify(definition))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def definition(self) -> sp.Expr:
        return self.args[1]

    def value(self) -> sp.Expr:
        return evaluate(self.definition)

    def _eval_is_real(self) -> bool | None:
        return self.definition.is_real

    def _latex(self, printer: LatexPrinter) -> str:
        # a name with its own superscript (\sigma_t^2) goes in braces, so that a power of it is valid TeX
        return "{" + self.name + "}" if "^" in self.name and not self.name.startswith("{") else self.name


class Grad(Notation):
    r"""$\nabla_x f$ for a scalar ``body`` and one variable (a vector of variables gives a column)."""

    def __new__(cls, body: object, variable: sp.Symbol) -> Grad:
        return sp.Expr.__new__(cls, sp.sympify(body), variable)

    def value(self) -> sp.Expr:
        body, variable = self.args
        return sp.diff(evaluate(body), variable)

    def _latex(self, printer: LatexPrinter) -> str:
        body, variable = self.args
        return rf"\nabla_{{{printer._print(variable)}}} {printer.parenthesize(body, sp.printing.precedence.PRECEDENCE['Mul'])}"


class Trace(Notation):
    r"""$\operatorname{tr} \nabla_x s(x)$: the trace of the Jacobian of the field ``components`` in ``variables``."""

    def __new__(cls, components: Sequence[object], variables: Sequence[sp.Symbol], name: str | Str = "s") -> Trace:
        if len(components) != len(variables):
            raise ValueError("a Jacobian trace needs as many components as variables")
        name = name if isinstance(name, Str) else Str(name)
        return sp.Expr.__new__(cls, sp.Tuple(*components), sp.Tuple(*variables), name)

    def value(self) -> sp.Expr:
        components, variables, _ = self.args
        return sp.Add(*(sp.diff(evaluate(c), v) for c, v in zip(components, variables)))

    def _latex(self, printer: LatexPrinter) -> str:
        _, variables, name = self.args
        wrt = ", ".join(printer._print(v) for v in variables) if len(variables) > 1 else printer._print(variables[0])
        return rf"\operatorname{{tr}} \nabla_{{{wrt}}} {name.name}"


def in_order(*terms: object) -> sp.Expr:
    """A sum printed in the order written (SymPy sorts the terms of an ordinary sum)."""
    return sp.Add(*terms, evaluate=False)


def times(factor: object, expr: object) -> sp.Expr:
    """``factor · expr`` printed as written (SymPy would multiply ½ into every term of a sum)."""
    return sp.Mul(sp.sympify(factor), sp.sympify(expr), evaluate=False)


def log_value(expr: sp.Expr) -> sp.Expr:
    r"""$\log$ of ``expr`` on the instance; a product or quotient of densities becomes a sum of their log-values."""
    if isinstance(expr, Density):
        return expr.log_value
    if isinstance(expr, sp.Mul):
        return sp.Add(*(log_value(factor) for factor in expr.args))
    if isinstance(expr, sp.Pow) and expr.base.has(Density):
        return evaluate(expr.exp) * log_value(expr.base)
    return sp.log(evaluate(expr))


_UNEVALUATED = (sp.Derivative, sp.Subs)


def evaluate(expr: object) -> sp.Expr:
    """``expr`` with every notation object replaced by its value on the instance, derivatives and substitutions done."""
    expr = sp.sympify(expr)
    if isinstance(expr, Notation):
        return expr.value()
    if isinstance(expr, sp.log) and expr.args[0].has(Density):
        return log_value(expr.args[0])
    if not expr.args or not expr.has(Notation, *_UNEVALUATED):
        return expr
    rebuilt = expr.func(*(evaluate(arg) for arg in expr.args))
    if isinstance(rebuilt, sp.Product) and all(bound.is_Integer for _, *bounds in rebuilt.limits for bound in bounds):
        return rebuilt.doit()  # a product of densities over data points, multiplied out where its bounds are numbers
    return rebuilt.doit(deep=False) if isinstance(rebuilt, _UNEVALUATED) else rebuilt


def notation_in(expr: sp.Expr) -> set[Notation]:
    """The notation objects in ``expr`` (outermost first is not guaranteed)."""
    return {node for node in sp.preorder_traversal(expr) if isinstance(node, Notation)}


class BookPrinter(LatexPrinter):
    r"""SymPy's LaTeX printer with the book's conventions: $\log p(x)$ without parentheses, sums in the order written."""

    def _print_log(self, expr: sp.log, exp: str | None = None) -> str:
        (argument,) = expr.args
        bare = isinstance(argument, (Density, Named)) or (argument.is_Atom and not argument.is_Rational)
        fraction = isinstance(argument, sp.Mul) and any(f.is_Pow and f.exp.is_negative for f in argument.args)
        body = self._print(argument) if bare or fraction else rf"\left({self._print(argument)}\right)"
        return rf"\log^{{{exp}}} {body}" if exp else rf"\log {body}"

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        if not expr.has(Notation):
            written = expr.args != sp.Add(*expr.args).args  # built by ``in_order``: keep the author's order
            return super()._print_Add(expr, "none" if written else order)
        # an abstract formula: the author's order (``in_order``), positive terms first
        terms = sorted(expr.args, key=lambda term: term.could_extract_minus_sign())
        return super()._print_Add(sp.Add(*terms, evaluate=False), order="none")


def latex(expr: object) -> str:
    """``expr`` as the book prints it."""
    return BookPrinter().doprint(sp.sympify(expr))
