"""Part IV: the derivations of book/scores.md refuse their mutants, and the key steps refuse the usual slips.

The first test is the generic one of :mod:`mutations` (every step's mutants
refused, naming the step; rewrites of form accepted). The others run the page
once and put a wrong version of a key step (a flipped sign, a dropped factor,
the wrong density) in place of the checked one: the engine must refuse each,
as a build of the page would. Last, the exercise keys of the page are
compared with the page's own checked objects, so that a key cannot drift
from the derivation it grades.
"""

from pathlib import Path

import mutations
import pytest
import sympy as sp

from dgm.derivations.derive import StepError
from dgm.derivations.exercises import EXERCISES
from dgm.derivations.notation import E, evaluate, in_order, times

PAGE = Path(__file__).resolve().parents[1] / "book" / "scores.md"


def test_mutants_are_refused_and_rewrites_accepted():
    mutations.check_page("scores")


@pytest.fixture(scope="module")
def page() -> dict:
    _, namespace = mutations.run_page(PAGE)
    return namespace


def refused(derivation, number: int, wrong) -> None:
    """The engine refuses ``wrong`` as step ``number`` of ``derivation``, naming the step."""
    with pytest.raises(StepError, match=rf"step {number} \("):
        derivation.verify_step(number, wrong)


def test_the_page_checks_what_it_shows(page):
    """Sanity: the right steps pass when checked again (so the refusals below are about the slips)."""
    for name in ("hyvarinen", "hyvarinen_1d", "closed_form", "sliced", "kernel_three", "tweedie", "dsm", "target", "stationary", "snr"):
        derivation = page[name]
        for number, step in enumerate(derivation.steps, start=1):
            if step.expr != derivation.left_of(number):
                assert derivation.verify_step(number, step.expr)


def test_score_matching_refuses_a_wrong_integration_by_parts(page):
    p = page
    half, s2, q2, point, score_q2 = p["half"], p["s2"], p["q2"], p["point"], p["score_q2"]
    norm, trace = p["SquaredNorm"], p["JacobianTrace"]
    # the sign of the trace flipped (integration by parts without its minus sign)
    refused(p["hyvarinen"], 2, in_order(E(half * norm(s2, 2), q2), -E(trace(s2, point), q2), E(half * norm(score_q2, 2), q2)))
    # the ½ of ‖s‖² dropped
    refused(p["hyvarinen"], 2, in_order(E(norm(s2, 2), q2), E(trace(s2, point), q2), E(half * norm(score_q2, 2), q2)))
    # in one dimension: the derivative of s replaced by s itself
    s, q, x = p["s_theta"], p["q"], p["x"]
    refused(p["hyvarinen_1d"], 2, in_order(E(half * s**2, q), E(s, q), E(half * p["score_q"] ** 2, q)))
    # dropping a θ-dependent term is not "up to a constant"
    refused(p["hyvarinen"], 3, E(half * norm(s2, 2), q2))
    # the boundary term: with the sign of integration by parts wrong, the two terms no longer cancel
    boundary, score_q, Score = p["boundary"], p["score_q"], p["Score"]
    with pytest.raises(StepError):
        boundary.check("=", in_order(E(times(s, score_q), q), -E(Score(s, x), q)), boundary.steps[0].expr)


def test_closed_forms_refuse_a_dropped_half(page):
    p = page
    M, A, Sigma, offset = p["Matrices"], p["A_sym"], p["Sigma_sym"], p["offset"]
    refused(
        p["closed_form"],
        1,
        in_order(M(sp.Trace(A * Sigma * A.T)), p["half"] * M(sp.MatMul(sp.Transpose(offset), offset, evaluate=False)), M(sp.Trace(A))),
    )
    refused(p["constant"], 1, M(sp.Trace(Sigma.I)))


def test_sliced_score_matching_refuses_a_biased_estimate(page):
    p = page
    M = p["Matrices"]
    refused(p["sliced"], 1, in_order(M(p["s_sym"].T * p["s_sym"]), p["trace_at_x"]))  # ½ dropped
    refused(p["sliced"], 1, in_order(p["half"] * M(p["s_sym"].T * p["s_sym"]), 2 * p["trace_at_x"]))


def test_kernel_score_refuses_wrong_weights_and_direction(page):
    p = page
    derivation, x, sigma, points, i, j = p["kernel_three"], p["x"], p["sigma"], p["points"], p["i"], p["j"]
    N = sp.Integer(3)
    atom = lambda k: p["DataPoint"](points, k)  # noqa: E731
    unnormalised = sp.exp(-((x - atom(i)) ** 2) / (2 * sigma**2))
    normalised = unnormalised / sp.Sum(sp.exp(-((x - atom(j)) ** 2) / (2 * sigma**2)), (j, 1, N))
    refused(derivation, 3, sp.Sum(unnormalised * (atom(i) - x) / sigma**2, (i, 1, N)))  # no softmax
    refused(derivation, 3, sp.Sum(normalised * (x - atom(i)) / sigma**2, (i, 1, N)))  # pushed away from the data
    refused(derivation, 3, sp.Sum(normalised * (atom(i) - x) / sigma, (i, 1, N)))  # σ for σ²


def test_denoising_refuses_the_clean_score_and_a_wrong_target(page):
    p = page
    half, xt, x, sigma, eps = p["half"], p["xt"], p["x"], p["sigma"], p["eps"]
    s_noisy, q_noisy, posterior, Score = p["s_noisy"], p["q_noisy"], p["posterior"], p["Score"]
    clean = p["gaussian"](xt, p["m"], p["v"], name="q")  # the data's density at x̃: the usual slip
    refused(p["dsm"], 3, in_order(E(half * (s_noisy - Score(sp.log(clean), xt)) ** 2, q_noisy), E(p["spread"](posterior), q_noisy)))
    refused(p["tweedie"], 5, E((xt - x) / sigma**2, p["posterior_atoms"]))
    refused(p["target"], 2, eps / sigma)
    refused(p["target"], 2, -eps / sigma**2)
    # the weight σ (not σ²) does not turn the level's loss into a regression on ε
    ncsn = p["ncsn"]
    with pytest.raises(StepError):
        ncsn.check("=", times(sigma, p["ell"]), ncsn.steps[0].expr)


def test_langevin_refuses_a_wrong_stationary_variance(page):
    p = page
    s, delta, x, one_minus = p["s"], p["delta"], p["x"], p["minus"]
    refused(p["stationary"], 1, s**2 / in_order(1, one_minus(delta / s**2)))  # the ½ dropped
    refused(p["stationary"], 1, s**2 / in_order(1, delta / (2 * s**2)))  # the sign flipped
    refused(p["one_step"], 1, in_order(times(p["contraction"] ** 2, p["V"]), delta))  # √δ noise instead of √(2δ)
    refused(p["langevin"], 1, in_order(times(in_order(1, delta / s**2), x), p["noise_term"]))  # descent, not ascent


def test_annealing_needs_steps_proportional_to_sigma_squared(page):
    p = page
    eta, sigma, s = p["eta"], p["sigma"], p["s"]
    refused(p["snr"], 1, eta * sigma / times(2, in_order(s**2, sigma**2)))
    # with δ ∝ σ the ratio vanishes at large σ instead of settling at η/2
    with pytest.raises(StepError):
        p["snr_limit"].check("=", sp.Limit(eta * sigma / times(2, in_order(s**2, sigma**2)), sigma, sp.oo), eta / 2)


def test_exercise_keys_agree_with_the_page(page):
    p = page
    # ex-scores-dsm-constant: the spread of eq. (denoising-score-matching) on the Gaussian instance
    spread = evaluate(E(p["spread"](p["posterior"]), p["q_noisy"]))
    key = EXERCISES["ex-scores-dsm-constant"]
    v_key, sigma_key = key.symbols
    assert sp.simplify(spread - key.expected.subs({v_key: p["v"], sigma_key: p["sigma"]})) == 0
    # ex-scores-largest-step: on p ∝ 1/cosh(x/s) the noise-free step x + δ ∇log p(x) stops contracting at the mode
    # where its slope there reaches −1; the same bound as where the Gaussian's stationary variance blows up
    s, delta = p["s"], p["delta"]
    x_ = sp.Symbol("x_", real=True)
    step = x_ + delta * sp.diff(-sp.log(sp.cosh(x_ / s)), x_)
    (edge,) = sp.solve(sp.Eq(sp.diff(step, x_).subs(x_, 0), -1), delta)
    (pole,) = sp.solve(sp.denom(sp.together(evaluate(p["stationary"].result))), delta)
    (s_key,) = EXERCISES["ex-scores-largest-step"].symbols
    assert sp.simplify(edge - EXERCISES["ex-scores-largest-step"].expected.subs(s_key, s)) == 0
    assert sp.simplify(pole - edge) == 0
    # ex-scores-linear-minimiser: the minimiser of Hyvärinen's objective in one dimension is the true score
    a0, a1, a2, x, m, v = (p[name] for name in ("a0", "a1", "a2", "x", "m", "v"))
    objective = evaluate(p["hyvarinen_1d"].result).subs(a2, 0)
    solution = sp.solve([sp.diff(objective, a0), sp.diff(objective, a1)], [a0, a1], dict=True)[0]
    minimiser = solution[a0] + solution[a1] * x
    x_key, m_key, v_key = EXERCISES["ex-scores-linear-minimiser"].symbols
    assert sp.simplify(minimiser - EXERCISES["ex-scores-linear-minimiser"].expected.subs({x_key: x, m_key: m, v_key: v})) == 0
