"""Every page's derivations refuse their mutants: a changed displayed formula fails, naming its step.

Each page is executed once (its ``.md`` code cells, in this process); every
step of every derivation on it is then changed as :mod:`mutations` describes.
A change that alters the step's value (by an independent oracle) must be
refused by the engine; a change of form only must pass.
"""

from pathlib import Path

import pytest

import mutations

BOOK = Path(__file__).resolve().parents[1] / "book"
PAGES = sorted(p.stem for p in BOOK.glob("*.md") if "Derivation(" in p.read_text())


@pytest.fixture(scope="module", params=PAGES)
def page(request):
    derivations, _ = mutations.run_page(BOOK / f"{request.param}.md")
    return request.param, derivations


def test_every_page_has_derivations(page):
    name, derivations = page
    assert derivations, f"book/{name}.md made no derivation"


def test_mutants_are_refused_and_rewrites_accepted(page):
    name, derivations = page
    densities = mutations.densities_in(derivations)
    refused = 0
    slipped, false_alarms = [], []
    for derivation in derivations:
        verdicts = mutations.judge(derivation, densities, limit=8)
        refused += verdicts.refused
        slipped += verdicts.slipped
        false_alarms += verdicts.false_alarms
    assert not slipped, f"book/{name}.md: wrong steps the engine accepted: {slipped}"
    assert not false_alarms, f"book/{name}.md: right rewrites the engine refused: {false_alarms}"
    assert refused > 0
