"""Part IV, continuous time: book/vdm.md refuses its mutants, and its key steps refuse the usual slips.

The generic test of :mod:`mutations` changes what each step displays (signs,
factors, dropped terms) but does not look inside a density's parameters, so
the tests below put wrong Gaussians and wrong weights in place of the checked
ones (the transition's variance without a_{t|s}², the posterior with the
forward variance, the KL weight with SNR(t) − SNR(s), a schedule whose ends
differ) and require the engine to refuse each, naming the step, as a build of
the page would.
"""

from pathlib import Path

import mutations
import pytest
import sympy as sp

from dgm.derivations.derive import StepError
from dgm.derivations.notation import evaluate

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_mutants_are_refused_and_rewrites_accepted():
    mutations.check_page("vdm")


@pytest.fixture(scope="module")
def vdm() -> dict:
    return mutations.run_page(BOOK / "vdm.md")[1]


def refused(derivation, number: int, wrong) -> None:
    """The engine refuses ``wrong`` as step ``number`` of ``derivation``, naming the step."""
    with pytest.raises(StepError, match=rf"step {number} \("):
        derivation.verify_step(number, wrong)


def test_the_transition_and_the_posterior_refuse_wrong_gaussians(vdm):
    p = vdm
    normal, product, plus = p["normal"], p["product"], p["plus"]
    x, z_s, z_t, a_s, a_t, a_ts, var_s, var_t, var_ts = (p[n] for n in ("x", "z_s", "z_t", "a_s", "a_t", "a_ts", "var_s", "var_t", "var_ts"))
    # the marginal with a_t² x for a_t x, or with σ_t for σ_t²
    refused(p["process"], 3, sp.log(normal(z_t, product(a_t**2, x), var_t)))
    refused(p["process"], 3, sp.log(normal(z_t, product(a_t, x), sp.sqrt(evaluate(var_t)))))
    # σ_{t|s}² = σ_t² − σ_s² (a_{t|s}² forgotten) is not the step's variance
    refused(p["step_variance"], 1, 1 - a_ts)
    refused(p["snr_falls"], 1, product(a_t**2, plus(1 / p["snr_s"], -1 / p["snr_t"])))  # the SNRs swapped
    # the posterior with the forward step's variance, or with the mean of the prior
    refused(p["posterior"], 2, sp.log(normal(z_s, p["mu_q"], var_ts)))
    refused(p["posterior"], 2, sp.log(normal(z_s, product(a_s, x), p["var_q"])))
    # σ_Q² without σ_s², and μ_Q with the two weights swapped
    refused(p["posterior_variance"], 1, var_ts / var_t)
    refused(p["posterior_mean"], 1, plus(product(a_s * var_ts / var_t, z_t), product(a_ts * var_s / var_t, x)))


def test_the_elbo_split_refuses_a_wrong_pairing(vdm):
    p = vdm
    # pairing q(z_u | z_1, x) with the model's step to z_0 instead of z_u
    terms = [p["prior_term"], p["plus"](sp.log(p["q_back"][0]), -sp.log(p["p_steps"][2])), p["diffusion_terms"][1], -sp.log(p["p_steps"][3])]
    refused(p["split"], 4, sp.Add(*terms, evaluate=False))
    # the prior term with q(z_u | x) in the place of q(z_1 | x)
    refused(p["split"], 3, sp.Add(sp.log(p["q_back"][1]), sp.log(p["q_back"][0]), sp.log(p["q_middle"]), *(-sp.log(d) for d in p["p_steps"]), evaluate=False))


def test_the_kl_term_refuses_a_wrong_weight(vdm):
    p = vdm
    product, plus, half = p["product"], p["plus"], p["half"]
    x, x_hat, snr_s, snr_t = p["x"], p["x_hat"], p["snr_s"], p["snr_t"]
    refused(p["kl"], 4, product(half, plus(snr_t, -snr_s), plus(x, -x_hat) ** 2))  # the SNRs swapped: a negative "KL"
    refused(p["kl"], 4, product(plus(snr_s, -snr_t), plus(x, -x_hat) ** 2))  # the ½ dropped
    refused(p["kl"], 3, product(p["a_s"] * p["var_ts"] / (2 * p["var_t"]), plus(x, -x_hat) ** 2))  # σ_s² dropped


def test_the_limit_and_the_noise_form_refuse_slips(vdm):
    p = vdm
    product, plus, half, t = p["product"], p["plus"], p["half"], p["t"]
    # the limit without the ½, or with SNR' in place of −SNR'
    Definite, slope, snr_t_e = p["Definite"], p["slope"], (p["SNR"](t), p["e"](t))
    antiderivative = p["continuous"].args[4]
    refused(p["limit"], 1, Definite(-product(slope(snr_t_e[0]), snr_t_e[1]), t, 0, 1, antiderivative))  # the ½ dropped
    refused(p["limit"], 1, Definite(product(half, slope(snr_t_e[0]), snr_t_e[1]), t, 0, 1, antiderivative))  # −SNR′ written SNR′
    # the right integrand with an antiderivative whose derivative is not it (the w_1/Δ term dropped)
    refused(p["limit"], 1, Definite(-product(half, slope(snr_t_e[0]), snr_t_e[1]), t, 0, 1, product(-half, snr_t_e[0], snr_t_e[1])))
    # the T-step sum with the error at the earlier time s = t(i − 1): a different (larger) sum
    i, T = p["i"], p["T"]
    earlier = sp.Sum(product(half, plus(p["SNR"]((i - 1) / T), -p["SNR"](i / T)), p["e"]((i - 1) / T)), (i, 1, T))
    with pytest.raises(StepError, match="the sides differ"):
        p["finite_T"].check("=", earlier, p["closed_T"])
    # the ε-form weight SNR'(t)/SNR(t) without the minus sign of γ = −log SNR
    eps, eps_hat = p["eps"], p["eps_hat"]
    refused(p["eps_form"], 3, product(half, p["snr_prime"] / p["snr_t"], plus(eps, -eps_hat) ** 2))


def test_the_invariance_needs_the_same_ends(vdm):
    p = vdm
    lam_max, lam_min, t, half, product = p["lam_max"], p["lam_min"], p["t"], p["half"], p["product"]
    OfTime, error_at_snr = p["OfTime"], p["error_at_snr"]
    # a cosine schedule that stops at λ_min − 1 instead of λ_min does not give the same loss
    phi_0, phi_1 = sp.atan(sp.exp(-lam_max / 2)), sp.atan(sp.exp(-(lam_min - 1) / 2))
    shifted = sp.Lambda(t, 1 / sp.tan(phi_0 + (phi_1 - phi_0) * t) ** 2)
    snr = OfTime(r"\mathrm{SNR}", shifted, t)
    integrand = -product(half, p["slope"](snr), OfTime(r"\tilde e", error_at_snr, snr))
    other = p["Definite"](integrand, t, 0, 1, -half * sp.log(p["plus"](1, product(p["s2"], snr))))
    derivation = p["invariance"]["cosine"]
    with pytest.raises(StepError, match="the sides differ"):
        derivation.check("=", other, derivation.steps[0].expr)


def test_the_best_denoiser_refuses_the_prior_variance(vdm):
    p = vdm
    refused(p["best_error"], 2, p["s2"] / p["plus"](1, p["snr_t"]))  # s² missing beside the SNR
    refused(p["denoiser"], 2, sp.log(p["normal"](p["x"], p["best_x"], p["s2"])))  # the prior's variance


def test_exercise_keys_agree_with_the_page(vdm):
    from dgm.derivations.exercises import EXERCISES

    v, s2, t, error_at_snr = vdm["v"], vdm["s2"], vdm["t"], vdm["error_at_snr"]
    # ex-vdm-noise-error: the noise prediction's error is SNR times the best denoiser's error ẽ(v) of the page
    key = EXERCISES["ex-vdm-noise-error"]
    s2_key, v_key = key.symbols
    assert sp.simplify(key.expected.subs({s2_key: s2, v_key: v}) - v * error_at_snr(v)) == 0
    # ex-vdm-best-schedule: with the key's SNR(t), the mean of one draw −½ SNR′ ẽ(SNR) does not depend on t
    key = EXERCISES["ex-vdm-best-schedule"]
    t_key, s2_key, max_key, min_key = key.symbols
    snr = key.expected.subs({t_key: t, s2_key: s2})
    weight = -sp.diff(snr, t) * error_at_snr(snr) / 2
    assert sp.simplify(sp.diff(weight, t)) == 0
    assert sp.simplify(snr.subs(t, 0) - max_key) == 0 and sp.simplify(snr.subs(t, 1) - min_key) == 0
