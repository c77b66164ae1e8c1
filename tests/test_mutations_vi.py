"""book/vi: its derivations refuse their mutants (see test_mutations.py), and its exercise keys agree with the page."""

import mutations


def test_mutants_are_refused_and_rewrites_accepted():
    mutations.check_page("vi")


def test_vi_exercise_keys_agree_with_the_page():
    """ex-vi-posterior-variance and ex-vi-mean-field against the objects book/vi.md checks."""
    from pathlib import Path

    import sympy as sp

    from dgm.derivations.exercises import EXERCISES
    from dgm.derivations.instances import normal_logpdf
    from dgm.derivations.notation import evaluate

    _, p = mutations.run_page(Path(__file__).resolve().parents[1] / "book" / "vi.md")
    key = EXERCISES["ex-vi-posterior-variance"]
    w, s2, tau2 = key.symbols
    page_w, page_s2, z = p["w"], p["s2"], p["z"]
    # the posterior precision is minus the curvature in z of the log-joint, here with the prior N(0, tau^2)
    log_joint = p["model"].log_likelihood() + normal_logpdf(z, 0, tau2)
    variance = 1 / sp.simplify(-sp.diff(log_joint, z, 2))
    assert sp.simplify(variance - key.expected.subs({w: page_w, s2: page_s2})) == 0
    assert sp.simplify(key.expected.subs({w: page_w, s2: page_s2, tau2: 1}) - evaluate(p["var_star"])) == 0  # eq. (lg-posterior)
    # ex-vi-mean-field: KL(q || p) between the converged q = N(mu, diag(1/L11, 1/L22)) and the posterior N(mu, inverse of L)
    L11, L22, rho = p["L11"], p["L22"], p["rho"]
    precision = sp.Matrix([[L11, evaluate(p["L12_rho"])], [evaluate(p["L12_rho"]), L22]])
    q_covariance = sp.diag(1 / L11, 1 / L22)
    assert sp.simplify(evaluate(p["inverse_11"]) - precision.inv()[0, 0]) == 0  # the page's own inverse
    kl = ((precision * q_covariance).trace() - 2 - sp.log((precision * q_covariance).det())) / 2
    (rho_key,) = EXERCISES["ex-vi-mean-field"].symbols
    assert sp.simplify(kl - EXERCISES["ex-vi-mean-field"].expected.subs(rho_key, rho)) == 0
