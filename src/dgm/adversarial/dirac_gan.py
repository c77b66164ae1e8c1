r"""The Dirac-GAN: the smallest GAN whose training can fail (Mescheder et al., 2018; book/dirac_gan).

The data are a point mass at 0, the generator a point mass at $\theta$ and the
discriminator linear, $D_\psi(x) = \psi x$. With the convention of the paper,
the game's value is

$$
L(\theta, \psi) = \mathbb E[f(\psi \tilde x_g)] + \mathbb E[f(-\psi \tilde x_d)],
$$

where $\tilde x_g = \theta + \sigma\epsilon_1$ and $\tilde x_d = \sigma\epsilon_2$
(instance noise of standard deviation $\sigma$; without it, $L = f(\psi\theta) + f(0)$).
The generator lowers $L$, the discriminator raises it, minus an optional
zero-centred gradient penalty $\tfrac{\gamma}{2}\mathbb E_{p_d}[(\partial_x D_\psi)^2] = \tfrac{\gamma}{2}\psi^2$.

Everything here is NumPy on two numbers: the gradient vector field, the
update rules (simultaneous and alternating gradient steps, the gradient flow)
and the Jacobian of an update at the equilibrium, whose eigenvalues the
chapter derives with SymPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

Loss = Literal["standard", "wasserstein"]
Method = Literal["simultaneous", "alternating"]

# Gauss–Hermite nodes and weights for E[g(ε)], ε ~ N(0, 1): exact for polynomials up to degree 2·40 − 1.
_NODES, _WEIGHTS = hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def f_prime(t: np.ndarray, loss: Loss) -> np.ndarray:
    r"""$f'(t)$: for the standard GAN $f(t) = -\log(1 + e^{-t})$, so $f'(t) = \sigma(-t)$; for WGAN $f(t) = t$."""
    if loss == "standard":
        return 0.5 * (1.0 - np.tanh(t / 2.0))  # σ(−t), computed without overflow
    if loss == "wasserstein":
        return np.ones_like(t)
    raise ValueError(f"loss must be 'standard' or 'wasserstein', got {loss!r}")


@dataclass(frozen=True)
class DiracGAN:
    """The game: which ``f``, how much instance noise ``noise_std`` (σ), how strong a gradient penalty ``penalty`` (γ)."""

    loss: Loss = "standard"
    noise_std: float = 0.0
    penalty: float = 0.0

    def __post_init__(self) -> None:
        f_prime(np.zeros(1), self.loss)  # fails early on an unknown loss
        if self.noise_std < 0 or self.penalty < 0:
            raise ValueError(f"noise_std and penalty must be >= 0, got {self}")

    def field(self, theta: np.ndarray | float, psi: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        r"""The update direction $v = (-\partial_\theta L,\ \partial_\psi L - \gamma\psi)$, elementwise over arrays."""
        theta, psi = np.asarray(theta, dtype=float), np.asarray(psi, dtype=float)
        if self.noise_std == 0.0:
            slope = f_prime(psi * theta, self.loss)
            # $\partial_\theta L = \psi f'(\psi\theta)$, $\partial_\psi L = \theta f'(\psi\theta)$
            d_theta, d_psi = psi * slope, theta * slope
        else:
            eps = self.noise_std * _NODES.reshape((-1,) + (1,) * theta.ndim)  # (nodes, *shape)
            w = _WEIGHTS.reshape((-1,) + (1,) * theta.ndim)
            fake = theta + eps
            # $\partial_\theta L = \mathbb E[\psi f'(\psi(\theta + \sigma\epsilon_1))]$
            d_theta = (w * psi * f_prime(psi * fake, self.loss)).sum(0)
            # $\partial_\psi L = \mathbb E[(\theta + \sigma\epsilon_1) f'(\psi(\theta+\sigma\epsilon_1))] - \mathbb E[\sigma\epsilon_2 f'(-\psi\sigma\epsilon_2)]$
            d_psi = (w * (fake * f_prime(psi * fake, self.loss) - eps * f_prime(-psi * eps, self.loss))).sum(0)
        return -d_theta, d_psi - self.penalty * psi

    def step(self, theta: float, psi: float, lr: float, method: Method) -> tuple[float, float]:
        """One gradient step of size ``lr``: both players at once (simultaneous) or the generator first (alternating)."""
        if method == "simultaneous":
            v_theta, v_psi = self.field(theta, psi)
            return float(theta + lr * v_theta), float(psi + lr * v_psi)
        if method == "alternating":
            v_theta, _ = self.field(theta, psi)
            theta = float(theta + lr * v_theta)
            _, v_psi = self.field(theta, psi)  # the discriminator sees the generator's new θ
            return theta, float(psi + lr * v_psi)
        raise ValueError(f"method must be 'simultaneous' or 'alternating', got {method!r}")

    def trajectory(self, start: tuple[float, float], lr: float, steps: int, method: Method) -> np.ndarray:
        """The iterates ``(steps + 1, 2)`` of :meth:`step` from ``start``."""
        points = np.empty((steps + 1, 2))
        points[0] = start
        for k in range(steps):
            points[k + 1] = self.step(*points[k], lr, method)
        return points

    def flow(self, start: tuple[float, float], time: float, steps: int = 2000) -> np.ndarray:
        """The gradient flow $\\dot{(\\theta, \\psi)} = v$ by classical Runge–Kutta: ``(steps + 1, 2)``."""
        h = time / steps
        points = np.empty((steps + 1, 2))
        points[0] = start

        def v(p: np.ndarray) -> np.ndarray:
            return np.array(self.field(p[0], p[1]))

        for k in range(steps):
            p = points[k]
            k1 = v(p)
            k2 = v(p + h / 2 * k1)
            k3 = v(p + h / 2 * k2)
            k4 = v(p + h * k3)
            points[k + 1] = p + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return points

    def derivatives_at_zero(self) -> tuple[float, float]:
        """``(f'(0), f''(0))``: 1/2 and −1/4 for the standard GAN, 1 and 0 for WGAN."""
        return (0.5, -0.25) if self.loss == "standard" else (1.0, 0.0)

    def predicted_eigenvalues(self, lr: float | None = None, method: Method | None = None) -> np.ndarray:
        r"""The eigenvalues the chapter derives: of the field's Jacobian, or of one step's when ``lr`` and ``method`` are given.

        The field's Jacobian at (0, 0) is $J = \begin{pmatrix} 0 & -a \\ a & d \end{pmatrix}$
        with $a = f'(0)$ and $d = 2\sigma^2 f''(0) - \gamma$ (book/dirac_gan, eq. dirac-jacobian).
        """
        a, second = self.derivatives_at_zero()
        d = 2 * self.noise_std**2 * second - self.penalty
        if lr is None:
            # $\lambda = d/2 \pm \sqrt{d^2/4 - a^2}$ (eq. dirac-eigenvalues)
            root = np.sqrt(complex(d**2 / 4 - a**2))
            return np.array([d / 2 + root, d / 2 - root])
        if method == "simultaneous":
            # $I + hJ$ has eigenvalues $1 + h\lambda$ (eq. dirac-simultaneous)
            return 1 + lr * self.predicted_eigenvalues()
        if method == "alternating":
            # trace $2 - h^2a^2 + hd$, determinant $1 + hd$ (eq. dirac-alternating)
            trace, det = 2 - (lr * a) ** 2 + lr * d, 1 + lr * d
            root = np.sqrt(complex(trace**2 / 4 - det))
            return np.array([trace / 2 + root, trace / 2 - root])
        raise ValueError("give both lr and method ('simultaneous' or 'alternating'), or neither")

    def jacobian(self, update: Callable[[float, float], tuple[float, float]] | None = None, delta: float = 1e-6) -> np.ndarray:
        """The Jacobian ``(2, 2)`` at the equilibrium (0, 0) of ``update`` (default: the field ``v``), by central differences."""
        update = update or (lambda theta, psi: tuple(float(c) for c in self.field(theta, psi)))
        columns = []
        for direction in (np.array([delta, 0.0]), np.array([0.0, delta])):
            plus, minus = np.array(update(*direction)), np.array(update(*-direction))
            columns.append((plus - minus) / (2 * delta))
        return np.stack(columns, axis=1)

    def step_jacobian(self, lr: float, method: Method) -> np.ndarray:
        """The Jacobian of one gradient step at (0, 0); its eigenvalues decide whether training converges."""
        return self.jacobian(lambda theta, psi: self.step(theta, psi, lr, method))
