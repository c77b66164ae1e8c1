r"""Tractable instances on which abstract identities are checked exactly.

An identity about expectations and densities, such as
$\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$, cannot be
checked by a computer in general. On a *tractable instance* every expectation
has a closed form, so each side becomes an ordinary SymPy expression in the
instance's parameters, and the identity is checked for all of their values.

The instances used across the book:

* one-dimensional Gaussians, whose expectations of polynomials are exact
  (:func:`gaussian_expectation`), which covers every Gaussian log-density;
* the linear-Gaussian model $z \sim \mathcal N(0, 1)$,
  $x \mid z \sim \mathcal N(w z + b, s^2)$ (:class:`LinearGaussian`);
* discrete distributions on a few atoms (:func:`discrete_expectation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp


def normal_logpdf(x: sp.Expr, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    r"""$\log \mathcal N(x; \mu, \sigma^2) = -\tfrac12 \log(2\pi\sigma^2) - (x - \mu)^2 / (2\sigma^2)$."""
    return -sp.log(2 * sp.pi * var) / 2 - (x - mean) ** 2 / (2 * var)


def gaussian_moment(order: int, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    r"""$\mathbb E[z^k]$ for $z \sim \mathcal N(\mu, \sigma^2)$, by $m_k = \mu m_{k-1} + (k-1)\sigma^2 m_{k-2}$."""
    moments: list[sp.Expr] = [sp.Integer(1), mean]
    for k in range(2, order + 1):
        moments.append(sp.expand(mean * moments[k - 1] + (k - 1) * var * moments[k - 2]))
    return moments[order]


def gaussian_expectation(expr: sp.Expr, z: sp.Symbol, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    r"""$\mathbb E_{z \sim \mathcal N(\mu, \sigma^2)}[f(z)]$, exactly, for $f$ a polynomial in $z$.

    Log-densities of Gaussians are quadratic in their argument, so this covers
    every expectation of a Gaussian log-density under a Gaussian.

    Raises:
        ValueError: if ``expr`` is not a polynomial in ``z``.
    """
    expanded = sp.expand(sp.expand_log(sp.sympify(expr), force=False))
    try:
        polynomial = sp.Poly(expanded, z)
    except sp.PolynomialError as error:
        raise ValueError(f"{expr} is not a polynomial in {z}; its Gaussian expectation has no closed form here") from error
    if any(z in coefficient.free_symbols for coefficient in polynomial.coeffs()):
        raise ValueError(f"{expr} is not a polynomial in {z}")
    return sp.expand(
        sum(
            coefficient * gaussian_moment(monomial[0], mean, var)
            for monomial, coefficient in zip(polynomial.monoms(), polynomial.coeffs())
        )
    )


def discrete_expectation(values: Sequence[sp.Expr], probs: Sequence[sp.Expr]) -> sp.Expr:
    r"""$\mathbb E[f] = \sum_k p_k f_k$ for a distribution on finitely many atoms."""
    if len(values) != len(probs):
        raise ValueError(f"{len(values)} values but {len(probs)} probabilities")
    return sum(p * v for p, v in zip(probs, values))


@dataclass(frozen=True)
class LinearGaussian:
    r"""The linear-Gaussian model $z \sim \mathcal N(0,1)$, $x \mid z \sim \mathcal N(wz + b, s^2)$.

    Everything about it has a closed form: the marginal
    $p(x) = \mathcal N(x; b, w^2 + s^2)$ and the posterior
    $p(z \mid x) = \mathcal N\big(w(x - b)/(w^2 + s^2),\; s^2/(w^2 + s^2)\big)$.
    """

    x: sp.Symbol = sp.Symbol("x", real=True)
    z: sp.Symbol = sp.Symbol("z", real=True)
    w: sp.Symbol = sp.Symbol("w", positive=True)
    b: sp.Symbol = sp.Symbol("b", real=True)
    s2: sp.Symbol = sp.Symbol("s^2", positive=True)

    def log_prior(self) -> sp.Expr:
        return normal_logpdf(self.z, 0, 1)

    def log_likelihood(self) -> sp.Expr:
        return normal_logpdf(self.x, self.w * self.z + self.b, self.s2)

    def log_joint(self) -> sp.Expr:
        return self.log_prior() + self.log_likelihood()

    def log_marginal(self) -> sp.Expr:
        return normal_logpdf(self.x, self.b, self.w**2 + self.s2)

    def posterior(self) -> tuple[sp.Expr, sp.Expr]:
        """Mean and variance of $p(z \\mid x)$."""
        precision = 1 + self.w**2 / self.s2
        return self.w * (self.x - self.b) / self.s2 / precision, 1 / precision

    def log_posterior(self) -> sp.Expr:
        mean, var = self.posterior()
        return normal_logpdf(self.z, mean, var)

    def expect(self, expr: sp.Expr, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
        r"""$\mathbb E_{q}[f(z)]$ for $q(z) = \mathcal N(\text{mean}, \text{var})$."""
        return gaussian_expectation(expr, self.z, mean, var)
