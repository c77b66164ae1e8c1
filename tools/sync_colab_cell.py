"""Write the Colab install cell of every notebook from the one setting that names repository and ref, and pair it.

Usage: python tools/sync_colab_cell.py [--check] [NOTEBOOK.md ...]

``repository.url`` and ``repository.branch`` in _config.yml name the
repository and the ref (branch, tag or commit) that the Colab buttons open;
the first code cell of each notebook (notebooks/*.md, and the executable
pages book/*.md) installs ``dgm`` from ``git+<url>@<ref>`` when it runs on
Colab, so the notebook and the library come from the same commit; elsewhere
the cell does nothing (_ext/colab.py writes it). A notebook without the cell
gets it before its first code cell. With --check, it changes nothing and
exits 1 when a cell is stale or missing (tests/test_notebooks.py runs this
check). Without --check it then updates each notebook's paired .ipynb
(``jupytext --sync``, paired by jupytext.toml; a new page gets its .ipynb, the
file its Colab button opens), keeping the recorded outputs. It warns while the URL
is the placeholder the repository ships with.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
from colab import install_cell, is_placeholder, placeholder_message, settings  # noqa: E402

CELL = re.compile(r"```\{code-cell\} ipython3\n:tags: \[remove-cell\]\n\n# On Colab, install.*?\n```", re.S)


def configured(student: bool = False, root: Path = ROOT) -> tuple[str, str]:
    """(repository URL, ref) from _config.yml: the main edition's, or the student edition's."""
    return settings(yaml.safe_load((root / "_config.yml").read_text()), student=student)


def colab_cell(url: str | None = None, ref: str | None = None) -> str:
    """The install cell as it stands in a MyST notebook (default: the configured repository and ref)."""
    if url is None or ref is None:
        url, ref = configured()
    return "```{code-cell} ipython3\n:tags: [remove-cell]\n\n" + install_cell(url, ref) + "\n```"


def with_cell(text: str, url: str, ref: str) -> str:
    """A MyST notebook's text with its install cell written for url@ref (added before the first code cell, if any)."""
    expected = colab_cell(url, ref)
    match = CELL.search(text)
    if match is not None:
        return text[: match.start()] + expected + text[match.end() :]
    first = text.find("```{code-cell}")
    if first < 0:  # no code yet: the cell goes at the end
        return text.rstrip("\n") + "\n\n" + expected + "\n"
    return text[:first] + expected + "\n\n" + text[first:]


def set_cell(notebook: nbformat.NotebookNode, url: str, ref: str) -> None:
    """Write the install cell of a .ipynb notebook for url@ref (added as its first code cell if missing)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.startswith("# On Colab, install"):
            cell.source = install_cell(url, ref)
            return
    cell = nbformat.v4.new_code_cell(install_cell(url, ref), metadata={"tags": ["remove-cell"]})
    first = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code"), len(notebook.cells))
    notebook.cells.insert(first, cell)


def notebook_sources(root: Path = ROOT) -> list[Path]:
    """The MyST notebooks: notebooks/*.md and the book/*.md pages that name a kernel."""
    pages = sorted((root / "book").glob("*.md")) + sorted((root / "notebooks").glob("*.md"))
    return [page for page in pages if "\nkernelspec:" in page.read_text()[:800]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale cells, change nothing")
    parser.add_argument("notebooks", nargs="*", type=Path, help="only these MyST notebooks (default: all)")
    args = parser.parse_args()
    sources = [path.resolve() for path in args.notebooks] or notebook_sources()
    url, ref = configured()
    if is_placeholder(url):
        print("warning: " + placeholder_message(url), file=sys.stderr)
    expected = colab_cell(url, ref)
    stale = []
    for path in sources:
        text = path.read_text()
        match = CELL.search(text)
        if match is None or match.group(0) != expected:
            stale.append(f"{path.relative_to(ROOT)}: " + ("no Colab install cell" if match is None else f"the Colab install cell does not install from {url}@{ref}"))
            if not args.check:
                path.write_text(with_cell(text, url, ref))
    for line in stale:
        print(line)
    if args.check:
        sys.exit(1 if stale else 0)
    jupytext = Path(sys.executable).parent / "jupytext"
    subprocess.run([str(jupytext), "--sync", *map(str, sources)], check=True)


if __name__ == "__main__":
    main()
