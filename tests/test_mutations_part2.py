"""Part II: every page's derivations refuse their mutants (see test_mutations.py)."""

import mutations
import pytest


@pytest.mark.parametrize("page", ["vae", "beta_vae", "hvae"])
def test_mutants_are_refused_and_rewrites_accepted(page):
    mutations.check_page(page)
