"""book/gan: its derivations refuse their mutants (see test_mutations.py)."""

import mutations


def test_mutants_are_refused_and_rewrites_accepted():
    mutations.check_page("gan")
