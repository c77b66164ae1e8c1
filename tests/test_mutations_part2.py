"""Part II: every page's derivations refuse their mutants (see test_mutations.py)."""

import mutations
import pytest


@pytest.mark.parametrize("page", ["vae", "beta_vae", "hvae"])
def test_mutants_are_refused_and_rewrites_accepted(page):
    mutations.check_page(page)


# -- the exercise keys of vae and hvae against the pages' own checked objects ------------------------

from pathlib import Path  # noqa: E402

import sympy as sp  # noqa: E402
import torch  # noqa: E402

from dgm.derivations.exercises import EXERCISES  # noqa: E402
from dgm.derivations.notation import evaluate  # noqa: E402

BOOK = Path(__file__).resolve().parents[1] / "book"


def _key(label: str, **values) -> sp.Expr:
    """The key of exercise ``label`` with its symbols, by name, replaced by ``values``."""
    key = EXERCISES[label]
    return key.expected.subs({symbol: values[symbol.name] for symbol in key.symbols})


def test_vae_exercise_keys_agree_with_the_page():
    _, p = mutations.run_page(BOOK / "vae.md")
    # ex-vae-learned-prior: eq. (kl-learned-prior) with the prior's mean at 0, minimised over its variance
    kl = evaluate(p["kl_learned"].result).subs(p["mu_z"], 0)
    (best,) = sp.solve(sp.diff(kl, p["var_z"]), p["var_z"])
    assert sp.simplify(best - (p["mu"] ** 2 + p["sigma2"])) == 0
    assert sp.simplify(kl.subs(p["var_z"], best) - _key("ex-vae-learned-prior", m=p["mu"], v=p["sigma2"])) == 0
    # ex-vae-bernoulli-logit: eq. (bernoulli-bce) for one pixel, at its best logit, for grey levels in (0, 1)
    pixel, logit = p["x_"](1), p["logit"](1)
    one_pixel = evaluate(p["bernoulli"].result).subs(p["D"], 1).doit()
    (best_logit,) = sp.solve(sp.diff(one_pixel, logit), logit)
    for grey in (0.03, 0.3, 0.5, 0.8, 0.99):
        page_value = float(one_pixel.subs(logit, best_logit).subs(pixel, grey))
        assert abs(page_value - float(_key("ex-vae-bernoulli-logit", x=grey))) < 1e-12
    # ex-vae-gaussian-nll (a Laplace decoder): the key is -log of torch's Laplace density
    generator = torch.Generator().manual_seed(0)
    for x, m, c in (torch.randn(3, 20, generator=generator, dtype=torch.float64) * torch.tensor([[2.0], [2.0], [0.5]])).T:
        scale = float(abs(c)) + 0.1
        reference = -torch.distributions.Laplace(m, scale).log_prob(x)
        assert abs(float(_key("ex-vae-gaussian-nll", x=float(x), m=float(m), c=scale)) - float(reference)) < 1e-12


def test_hvae_exercise_keys_agree_with_the_page():
    _, p = mutations.run_page(BOOK / "hvae.md")
    a, s1, v2, d, c, x, v1 = (p[name] for name in ("a", "s1", "v2", "d", "c", "x", "v1"))
    kl1, kl2 = evaluate(p["kl1"].result), evaluate(p["kl2"].result)  # the closed forms the derivations end with
    # ex-hvae-v2: the best v2 when KL2 alone carries the warm-up weight w; at w = 1 the page's v2_best
    w = sp.Symbol("w", positive=True)
    (best,) = sp.solve(sp.diff(-kl1 - w * kl2, v2), v2)
    assert sp.simplify(best - _key("ex-hvae-v2", a=a, s1=s1, w=w)) == 0
    assert sp.simplify(_key("ex-hvae-v2", a=a, s1=s1, w=1) - p["v2_best"]) == 0
    # ex-hvae-cost: what the best d gains over d = 0, from the same closed forms
    objective = -kl1 - kl2
    (d_best,) = sp.solve(sp.diff(objective, d), d)
    gain = objective.subs(d, d_best) - objective.subs(d, 0)
    assert sp.simplify(gain - _key("ex-hvae-cost", a=a, s1=s1, c=c, x=x, v1=v1)) == 0
