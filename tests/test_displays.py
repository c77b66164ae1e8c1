"""No displayed formula in a page's prose is typed by hand: every display comes from a checked object.

A page states a result by showing a derivation's statement
(``Derivation.statement(label)``), which prints the checked chain's own
endpoints; a hand-typed ``$$ … $$`` block in the Markdown would be a formula
the engine never touched.
"""

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
PAGES = sorted(p for p in BOOK.glob("*.md") if "Derivation(" in p.read_text())
CODE_CELL = re.compile(r"```\{code-cell\}.*?\n```", re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_no_hand_typed_display_math(page: Path):
    prose = CODE_CELL.sub("", page.read_text())
    displays = [line for line in prose.splitlines() if line.strip().startswith("$$") or r"\begin{align" in line]
    assert not displays, f"book/{page.name} types {len(displays) // 2 or 1} display formula(s) by hand: show a checked statement instead"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_no_latex_argument_in_derivations(page: Path):
    assert "latex=" not in page.read_text(), f"book/{page.name} passes latex= to a derivation"
