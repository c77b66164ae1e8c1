"""The formula answers of the book's exercises, for :func:`check_answer`.

Each exercise is registered under its label on the page (``ex-vi-kl``). The
checker has to know the answer, so a student who reads this file sees it; the
student edition hides the worked solutions, not this key. An answer is a
formula (:class:`Exercise`) or a set of names (:class:`SetExercise`: a Markov
blanket, the statements that hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy as sp

from dgm.derivations.answers import Verdict, check, check_set


@dataclass(frozen=True)
class Exercise:
    """What an answer is checked against.

    ``expected`` is the formula, ``symbols`` those the answer may use, ``wrt``
    the variables that matter (for "up to a constant"), and ``domain`` the
    ranges ``{symbol: (low, high)}`` the question allows, where the symbol's
    assumptions (real, positive) do not say it: numeric checks draw only
    from there (an integer symbol with ``(0, 1)`` takes the values 0 and 1).
    """

    expected: sp.Expr
    symbols: tuple[sp.Symbol, ...]
    wrt: tuple[sp.Symbol, ...] | None = None
    domain: Mapping[sp.Symbol, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class SetExercise:
    """A question whose answer is a set of names: ``expected``, among the names ``elements`` the answer may use."""

    expected: frozenset[str]
    elements: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.expected <= set(self.elements) or len(set(self.elements)) != len(self.elements):
            raise ValueError(f"{sorted(self.expected)} must be a subset of the distinct names {self.elements}")


_STATEMENTS = tuple("abcdef")  # the letters of statements (a)-(f)
_mu, _mu_p = sp.Symbol("mu", real=True), sp.Symbol("mu_p", real=True)
_v, _v_p = sp.Symbol("v", positive=True), sp.Symbol("v_p", positive=True)
_sigma = sp.Symbol("sigma", positive=True)
_w, _s2 = sp.Symbol("w", positive=True), sp.Symbol("s2", positive=True)
_tau2 = sp.Symbol("tau2", positive=True)
_x, _m = sp.Symbol("x", real=True), sp.Symbol("m", real=True)
_c = sp.Symbol("c", positive=True)
_theta, _psi, _s, _a = sp.symbols("theta psi s a", real=True)
_h = sp.Symbol("h", positive=True)
_t, _s_positive = sp.Symbol("t", positive=True), sp.Symbol("s", positive=True)
_beta, _rho = sp.Symbol("beta", positive=True), sp.Symbol("rho", real=True)
_n = sp.Symbol("n", positive=True)
_s1 = sp.Symbol("s1", positive=True)
_warmup, _v1, _c_real = sp.Symbol("w", positive=True), sp.Symbol("v1", positive=True), sp.Symbol("c", real=True)
_delta = sp.Symbol("delta", positive=True)
_j11, _j12, _j21, _j22 = sp.symbols("j11 j12 j21 j22", real=True)
_b = sp.Symbol("b", real=True)
_l1, _l2 = sp.Symbol("l1", positive=True), sp.Symbol("l2", positive=True)

EXERCISES: dict[str, Exercise | SetExercise] = {
    # book/pgm.md
    "ex-pgm-parameters": Exercise(sp.Integer(34), ()),
    "ex-pgm-mn-separation": SetExercise(frozenset("acd"), _STATEMENTS),
    "ex-pgm-mn-blanket": SetExercise(frozenset("DEG"), tuple("ABCDEFG")),
    "ex-pgm-mn-cliques": Exercise(sp.Integer(28), ()),
    "ex-pgm-student-parameters": Exercise(sp.Integer(18), ()),
    "ex-pgm-student-blanket": SetExercise(frozenset("GJS"), tuple("DIGSLJH")),
    "ex-pgm-student-moral": SetExercise(frozenset("IJL"), tuple("DIGSLJH")),
    "ex-pgm-student-maps": SetExercise(frozenset("acf"), _STATEMENTS),
    "ex-pgm-laplace": Exercise(_s_positive / (_s_positive + _n), (_n, _s_positive), domain={_n: (1, 50)}),
    # book/vi.md
    "ex-vi-kl": Exercise(
        (_v / _v_p + (_mu - _mu_p) ** 2 / _v_p - 1 - sp.log(_v / _v_p)) / 2, (_mu, _v, _mu_p, _v_p)
    ),
    "ex-vi-posterior-variance": Exercise(_tau2 * _s2 / (_w**2 * _tau2 + _s2), (_w, _s2, _tau2)),
    "ex-vi-score-variance": Exercise(_mu**2 / _sigma**2 + 2, (_mu, _sigma)),
    "ex-vi-mean-field": Exercise(-sp.log(1 - _rho**2) / 2, (_rho,), domain={_rho: (-1, 1)}),
    "ex-vi-log-rate": Exercise(-sp.log(2 * sp.pi) / 2 - (1 + _theta**2) / 2, (_theta,)),
    "ex-vi-grad-s2": Exercise(
        -1 / (2 * _s2) + ((_x - _w * _m - _b) ** 2 + _w**2 * _v) / (2 * _s2**2), (_x, _w, _b, _s2, _m, _v)
    ),
    # book/vae.md
    "ex-vae-gaussian-nll": Exercise(sp.Abs(_x - _m) / _c + sp.log(2 * _c), (_x, _m, _c), (_m,)),  # a Laplace decoder
    "ex-vae-bernoulli-logit": Exercise(_x * sp.log(_x) + (1 - _x) * sp.log(1 - _x), (_x,), domain={_x: (0, 1)}),
    "ex-vae-learned-prior": Exercise(sp.log(1 + _m**2 / _v) / 2, (_m, _v)),
    # book/beta_vae.md
    "ex-beta-distortion": Exercise(_beta * (1 + 2 * _beta * _s2) / (2 * (1 + _beta * _s2) ** 2), (_beta, _s2)),
    "ex-beta-tc": Exercise(-sp.log((1 - _rho) ** 2 * (1 + 2 * _rho)) / 2, (_rho,), domain={_rho: (-0.5, 1)}),
    "ex-beta-mi": Exercise(sp.log((1 + _beta * _s2 + _beta**2 * _s2**2) / (_beta * _s2 * (1 + _beta * _s2))) / 2, (_beta, _s2)),
    "ex-beta-tempered-variance": Exercise(_beta * _s2 / (_beta * _s2 + _w**2), (_beta, _s2, _w)),
    "ex-beta-two-atoms": Exercise(
        _l1 ** (1 / _beta) / (_l1 ** (1 / _beta) + _l2 ** (1 / _beta)), (_beta, _l1, _l2), domain={_beta: (0.1, 10)}
    ),
    "ex-beta-optimum-value": Exercise(
        _beta * sp.log((_l1 ** (1 / _beta) + _l2 ** (1 / _beta)) / 2), (_beta, _l1, _l2), domain={_beta: (0.1, 10)}
    ),
    **(lambda own, others, size, batch: {
        "ex-beta-mws-bias": Exercise((1 / batch - 1 / size) * (own - others), (own, others, size, batch)),
    })(*sp.symbols("a b N M", positive=True)),
    # book/hvae.md
    "ex-hvae-v2": Exercise(_warmup * _s1 / (_a**2 + _warmup * _s1), (_a, _s1, _warmup)),
    "ex-hvae-cost": Exercise(
        (_c_real**2 * _x**2 + _v1) * _a**2 / (2 * _s1 * (_a**2 + _s1)), (_a, _s1, _c_real, _x, _v1)
    ),
    # book/gan.md
    "ex-gan-optimal-d": Exercise(2 * _x / (2 * _x + 1), (_x,), domain={_x: (0, 1)}),
    "ex-gan-value": Exercise(-sp.log(4), ()),
    "ex-gan-logistic-f": Exercise(_t * sp.log(_t) - (_t + 1) * sp.log(_t + 1), (_t,)),
    "ex-gan-kl-lines": Exercise(_theta**2 / (2 * _s_positive**2), (_theta, _s_positive)),
    # book/dirac_gan.md
    "ex-dirac-simultaneous": Exercise((1 + _h**2 * _s**2) * (_theta**2 + _psi**2), (_theta, _psi, _h, _s)),
    "ex-dirac-alternating-trace": Exercise(2 - _h**2 * _a**2, (_h, _a)),
    "ex-dirac-noise": Exercise(-(_sigma**2) / 4, (_sigma,), domain={_sigma: (0, 1.41421356)}),  # real part −σ²/4 for σ ≤ √2
    "ex-dirac-max-step": Exercise(sp.Integer(4), ()),
    # book/scores.md
    "ex-scores-linear-minimiser": Exercise((_m - _x) / _v, (_x, _m, _v)),
    "ex-scores-kernel-two": Exercise((sp.tanh(_x / _sigma**2) - _x) / _sigma**2, (_x, _sigma)),
    "ex-scores-hutchinson": Exercise((_j12 + _j21) ** 2, (_j11, _j12, _j21, _j22)),
    "ex-scores-dsm-constant": Exercise((1 / _sigma**2 - 1 / (_v + _sigma**2)) / 2, (_v, _sigma)),
    "ex-scores-langevin-temperature": Exercise(_s_positive**2 / (2 - _delta / _s_positive**2), (_s_positive, _delta)),
    "ex-scores-largest-step": Exercise(2 * _s_positive**2, (_s_positive,)),
    "ex-scores-annealing": Exercise(sp.Integer(400), ()),
    # book/ddpm.md
    **(lambda beta, a_prev, t, s2, a, x, m: {
        "ex-ddpm-constant-schedule": Exercise((1 - beta) ** t, (beta, t), domain={beta: (0, 1), t: (1, 50)}),
        "ex-ddpm-steps": Exercise(sp.Integer(342), ()),
        "ex-ddpm-beta-tilde": Exercise(
            (1 - a_prev) * beta / (1 - (1 - beta) * a_prev), (beta, a_prev), domain={beta: (0, 1), a_prev: (0, 1)}
        ),
        "ex-ddpm-x0-weight": Exercise(
            a_prev * beta / (2 * (1 - a_prev) * (1 - (1 - beta) * a_prev)), (beta, a_prev), domain={beta: (0, 1), a_prev: (0, 1)}
        ),
        "ex-ddpm-reverse-variance": Exercise(
            (a_prev * s2 + 1 - a_prev) * beta / ((1 - beta) * (a_prev * s2 + 1 - a_prev) + beta),
            (s2, beta, a_prev),
            domain={beta: (0, 1), a_prev: (0, 1)},
        ),
        "ex-ddpm-best-noise": Exercise(
            sp.sqrt(1 - a) * (x - sp.sqrt(a) * m) / (a * s2 + 1 - a), (x, m, s2, a), domain={a: (0, 1)}
        ),
    })(*sp.symbols("beta a_prev t s2 a", positive=True), *sp.symbols("x m", real=True)),
    # book/ddim.md
    **(lambda eta, a, a_prev, s2, sbar, x, e: {
        "ex-ddim-sigma": Exercise(
            eta**2 * (1 - a_prev) / (1 - a) * (1 - a / a_prev), (eta, a, a_prev), domain={a: (0.01, 0.4), a_prev: (0.5, 0.99)}
        ),
        "ex-ddim-max-eta": Exercise(sp.sqrt((1 - a) / (1 - a / a_prev)), (a, a_prev), domain={a: (0.01, 0.4), a_prev: (0.5, 0.99)}),
        "ex-ddim-coefficient": Exercise(
            sp.sqrt(1 - a_prev) - sp.sqrt(a_prev) * sp.sqrt(1 - a) / sp.sqrt(a), (a, a_prev), domain={a: (0.01, 0.99), a_prev: (0.01, 0.99)}
        ),
        "ex-ddim-encode": Exercise(
            sp.sqrt(a) * (x - sp.sqrt(1 - a_prev) * e) / sp.sqrt(a_prev) + sp.sqrt(1 - a) * e,
            (x, e, a, a_prev),
            domain={a: (0.01, 0.99), a_prev: (0.01, 0.99)},
        ),
        "ex-ddim-weight": Exercise(a_prev * (1 - a) / (2 * a * (1 - a_prev)), (a, a_prev), domain={a: (0.01, 0.4), a_prev: (0.5, 0.99)}),
        "ex-ddim-gaussian-ode": Exercise(sbar * x / (s2 + sbar**2), (x, sbar, s2)),
    })(*sp.symbols("eta a a_prev s2 sbar", positive=True), *sp.symbols("x e", real=True)),
    # book/vdm.md
    **(lambda vs, vt, t, snr_max, snr_min, snr_s, snr_u, snr_t, e_u, e_t, s2, v, x: {
        "ex-vdm-variance-exploding": Exercise((1 / vs - 1 / vt) / 2, (vs, vt)),
        "ex-vdm-cosine-weight": Exercise(2 * sp.pi / sp.sin(sp.pi * t), (t,), domain={t: (0, 1)}),
        "ex-vdm-zero-denoiser": Exercise((snr_max - snr_min) * x**2 / 2, (x, snr_max, snr_min)),
        "ex-vdm-more-steps": Exercise((snr_s - snr_u) * (e_t - e_u) / 2, (snr_s, snr_u, snr_t, e_u, e_t)),
        "ex-vdm-noise-error": Exercise(s2 * v / (1 + s2 * v), (s2, v)),
        "ex-vdm-best-schedule": Exercise(
            ((1 + s2 * snr_max) ** (1 - t) * (1 + s2 * snr_min) ** t - 1) / s2,
            (t, s2, snr_max, snr_min),
            domain={t: (0, 1), snr_max: (10, 1000), snr_min: (0.001, 1)},
        ),
    })(*sp.symbols("vs vt t snr_max snr_min snr_s snr_u snr_t e_u e_t s2 v", positive=True), sp.Symbol("x", real=True)),
}


def check_answer(label: str, answer: str) -> Verdict:
    """Grade your answer to exercise ``label``: a formula, ``check_answer("ex-vi-kl", "(v/v_p + ...)/2")``, or a set of names, ``check_answer("ex-pgm-student-blanket", "{A, B}")``."""
    if label not in EXERCISES:
        raise KeyError(f"no exercise {label!r}; the exercises with graded answers are {', '.join(sorted(EXERCISES))}")
    exercise = EXERCISES[label]
    if isinstance(exercise, SetExercise):
        return check_set(answer, exercise.expected, exercise.elements)
    return check(answer, exercise.expected, symbols=exercise.symbols, wrt=exercise.wrt, domain=exercise.domain)
