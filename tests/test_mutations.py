"""pgm and dirac_gan: every page's derivations refuse their mutants (see :mod:`mutations`); vi and gan are in
test_mutations_vi.py and test_mutations_gan.py, Part II in test_mutations_part2.py, Part IV in part4 … part6.

Each page is executed once (its ``.md`` code cells, in this process); every
step of every derivation on it is then changed as :mod:`mutations` describes.
A change that alters the step's value (by an independent oracle) must be
refused by the engine, naming the step; a change of form only must pass.
The pages are split over files of similar cost (30–40 s of CPU each, the
lighter pages together), because pytest-xdist's ``--dist loadfile`` hands a
worker a whole file at a time: one file with every page kept one worker busy
for minutes while the other waited.
"""

import mutations
import pytest


@pytest.mark.parametrize("page", ["pgm", "dirac_gan"])
def test_mutants_are_refused_and_rewrites_accepted(page):
    mutations.check_page(page)


def test_every_derivation_page_is_mutated():
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "book"
    pages = {p.stem for p in book.glob("*.md") if "Derivation(" in p.read_text()}
    covered = {"pgm", "vi", "gan", "dirac_gan"} | {"vae", "beta_vae", "hvae"} | {"scores"} | {"ddpm", "ddim"} | {"vdm"}
    assert pages == covered, f"add {sorted(pages - covered)} to test_mutations.py or another test_mutations_*.py"

