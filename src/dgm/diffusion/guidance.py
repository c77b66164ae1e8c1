r"""Classifier-free guidance (Ho & Salimans, 2022): one network, trained with and without its condition.

Training drops the condition at random (:func:`drop_condition`), so the same
network learns the conditional $\varepsilon_\theta(x_t, t, c)$ and the
unconditional $\varepsilon_\theta(x_t, t, \varnothing)$. Sampling mixes the two:

$$\tilde\varepsilon = (1 + w)\,\varepsilon_\theta(x_t, t, c) - w\,\varepsilon_\theta(x_t, t, \varnothing),$$

which, read as scores, is $\nabla \log p(x_t \mid c) + w\,\nabla \log p(c \mid x_t)$:
the conditional score plus $w$ times an implicit classifier's. $w = 0$ is the
plain conditional model; larger $w$ trades variety for fidelity to $c$.
:func:`guided` returns a ``model(x_t, t)`` for any sampler of
:mod:`dgm.diffusion.samplers`. The conditional network is called as
``network(x_t, t, tokens)`` with ``tokens (B, L)`` and a ``null_token``
attribute (:class:`dgm.networks.TextConditionedUNet`).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from dgm.diffusion.process import Model


class ConditionalNetwork(Protocol):
    null_token: int

    def __call__(self, x: Tensor, t: Tensor, tokens: Tensor) -> Tensor: ...


def drop_condition(tokens: Tensor, probability: float, null_token: int, generator: torch.Generator | None = None) -> Tensor:
    """``tokens (B, L)`` with each row replaced, with the given probability, by the null text (all ``null_token``)."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must lie in [0, 1], got {probability}")
    dropped = torch.rand(len(tokens), generator=generator, device=tokens.device) < probability  # (B,)
    return torch.where(dropped[:, None], torch.full_like(tokens, null_token), tokens)


def guided(network: ConditionalNetwork, tokens: Tensor, w: float) -> Model:
    r"""The guided noise prediction $\tilde\varepsilon(x_t, t)$ for the texts ``tokens (B, L)``, as a ``model(x_t, t)``.

    For $w \ne 0$ each call evaluates the network once on a doubled batch (the
    conditional and the unconditional halves), as in the paper's Algorithm 2.
    """
    if w < 0:
        raise ValueError(f"the guidance weight w must be >= 0 (w = 0: the conditional model), got {w}")
    null = torch.full_like(tokens, network.null_token)

    def model(x_t: Tensor, t: Tensor) -> Tensor:
        if len(x_t) != len(tokens):
            raise ValueError(f"x_t has {len(x_t)} examples but {len(tokens)} texts were given")
        if w == 0:
            return network(x_t, t, tokens)
        both = network(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([tokens, null]))
        conditional, unconditional = both.chunk(2)
        # $\tilde\varepsilon = (1 + w)\,\varepsilon_\theta(x_t, t, c) - w\,\varepsilon_\theta(x_t, t, \varnothing)$
        return (1 + w) * conditional - w * unconditional

    return model
