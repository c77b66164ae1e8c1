"""The Dirac-GAN library against the chapter's derivation (book/dirac_gan.md)."""

import numpy as np
import pytest

from dgm.adversarial.dirac_gan import DiracGAN, f_prime

GAMES = [
    DiracGAN(),
    DiracGAN(noise_std=0.3),
    DiracGAN(noise_std=1.5),
    DiracGAN(penalty=0.4),
    DiracGAN(noise_std=0.8, penalty=2.5),
    DiracGAN("wasserstein"),
    DiracGAN("wasserstein", noise_std=1.0, penalty=0.3),
]


@pytest.mark.parametrize("game", GAMES, ids=repr)
@pytest.mark.parametrize("lr", [0.1, 0.7, 2.5])
def test_numeric_eigenvalues_match_the_derived_ones(game, lr):
    assert np.allclose(
        np.sort_complex(np.linalg.eigvals(game.jacobian())), np.sort_complex(game.predicted_eigenvalues()), atol=1e-6
    )
    for method in ("simultaneous", "alternating"):
        numeric = np.sort_complex(np.linalg.eigvals(game.step_jacobian(lr, method)))
        assert np.allclose(numeric, np.sort_complex(game.predicted_eigenvalues(lr, method)), atol=1e-6)


def test_instance_noise_expectation_matches_monte_carlo():
    game = DiracGAN(noise_std=0.9)
    rng = np.random.default_rng(0)
    eps1, eps2 = rng.standard_normal((2, 2_000_000))
    theta, psi = 0.7, -1.3
    fake = theta + 0.9 * eps1
    d_theta = np.mean(psi * f_prime(psi * fake, "standard"))
    d_psi = np.mean(fake * f_prime(psi * fake, "standard") - 0.9 * eps2 * f_prime(-psi * 0.9 * eps2, "standard"))
    v_theta, v_psi = game.field(theta, psi)
    assert v_theta == pytest.approx(-d_theta, abs=3e-3)
    assert v_psi == pytest.approx(d_psi, abs=3e-3)


def test_simultaneous_steps_grow_by_the_derived_factor_and_the_flow_conserves_the_radius():
    game = DiracGAN()
    path = game.trajectory((0.4, -1.1), 0.5, 200, "simultaneous")
    squared = (path**2).sum(1)
    slope = f_prime(path[:-1, 0] * path[:-1, 1], "standard")
    assert np.allclose(squared[1:], squared[:-1] * (1 + 0.25 * slope**2))
    flow = game.flow((0.4, -1.1), time=30.0)
    assert np.allclose((flow**2).sum(1), 0.4**2 + 1.1**2, atol=1e-6)


def test_alternating_steps_circle_and_noise_or_a_penalty_converge():
    plain = DiracGAN().trajectory((1.0, 1.0), 0.3, 3000, "alternating")
    assert 0.5 < np.linalg.norm(plain[-1]) < 3.0  # neither escapes nor settles
    for game in (DiracGAN(noise_std=0.7), DiracGAN(penalty=0.5)):
        assert np.linalg.norm(game.trajectory((1.0, 1.0), 0.3, 3000, "simultaneous")[-1]) < 1e-6


def test_bad_settings_fail_early():
    with pytest.raises(ValueError, match="loss"):
        DiracGAN("hinge")
    with pytest.raises(ValueError, match="noise_std"):
        DiracGAN(noise_std=-1)
    with pytest.raises(ValueError, match="method"):
        DiracGAN().step(1.0, 1.0, 0.1, "sideways")


def test_library_eigenvalues_match_sympy_eigenvalues_of_the_derived_jacobian():
    """The closed forms in DiracGAN.predicted_eigenvalues against SymPy's eigenvalues of the Jacobian of the game."""
    import sympy as sp

    from dgm.derivations.instances import gaussian_expectation

    theta, psi, eps, u = sp.symbols("theta psi epsilon u", real=True)
    sigma, gamma, h = sp.symbols("sigma gamma h", nonnegative=True)
    for loss, f in (("standard", -sp.log(1 + sp.exp(-u))), ("wasserstein", u)):
        # the Jacobian at 0 needs f'(0) and f''(0) only: use the Taylor cubic of the real f
        cubic = sum(sp.diff(f, u, k).subs(u, 0) * u**k / sp.factorial(k) for k in range(4))
        F = sp.Lambda(u, cubic)
        value = gaussian_expectation(F(psi * (theta + sigma * eps)), eps, 0, 1) + gaussian_expectation(F(-psi * sigma * eps), eps, 0, 1)
        field = sp.Matrix([-sp.diff(value, theta), sp.diff(value, psi) - gamma * psi])
        J = field.jacobian([theta, psi]).subs({theta: 0, psi: 0})
        alternating = sp.Matrix([theta + h * field[0], psi + h * field[1].subs(theta, theta + h * field[0])])
        J_alt = alternating.jacobian([theta, psi]).subs({theta: 0, psi: 0})
        for noise, penalty, lr in ((0.0, 0.0, 0.3), (0.7, 0.0, 0.5), (0.0, 1.2, 0.2), (1.1, 0.4, 1.3)):
            values = {sigma: noise, gamma: penalty, h: lr}
            game = DiracGAN(loss, noise_std=noise, penalty=penalty)
            symbolic = np.array([complex(e) for e in J.subs(values).eigenvals(multiple=True)])
            assert np.allclose(np.sort_complex(symbolic), np.sort_complex(game.predicted_eigenvalues()), atol=1e-12)
            symbolic_alt = np.array([complex(e) for e in J_alt.subs(values).eigenvals(multiple=True)])
            assert np.allclose(np.sort_complex(symbolic_alt), np.sort_complex(game.predicted_eigenvalues(lr, "alternating")), atol=1e-12)
            symbolic_sim = np.array([complex(e) for e in (sp.eye(2) + h * J).subs(values).eigenvals(multiple=True)])
            assert np.allclose(np.sort_complex(symbolic_sim), np.sort_complex(game.predicted_eigenvalues(lr, "simultaneous")), atol=1e-12)
