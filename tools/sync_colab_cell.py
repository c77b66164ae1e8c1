"""Write the Colab install cell of every notebook from the one place the repository is named, and pair it.

Usage: python tools/sync_colab_cell.py [--check]

The repository URL lives in _config.yml (``repository.url``); the version in
pyproject.toml. The first code cell of each notebook (notebooks/*.md, and the
executable pages book/*.md) installs ``dgm`` from that repository at the tag
``v<version>`` when it runs on Colab, and does nothing elsewhere; a notebook
without one gets it before its first code cell. With --check, it changes
nothing and exits 1 when a cell is stale or missing (tests/test_notebooks.py
runs this check). Without --check it then updates each notebook's paired
.ipynb (``jupytext --sync``), keeping the recorded outputs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CELL = re.compile(r"```\{code-cell\} ipython3\n:tags: \[remove-cell\]\n\n# On Colab, install.*?\n```", re.S)


def colab_cell() -> str:
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return (
        "```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
        "# On Colab, install the course library `dgm` at the version this notebook was written for; elsewhere do nothing.\n"
        "import sys\n\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "dgm @ git+{url}@v{version}"\n'
        "```"
    )


def notebook_sources() -> list[Path]:
    """The MyST notebooks: notebooks/*.md and the book/*.md pages that name a kernel."""
    pages = sorted((ROOT / "book").glob("*.md")) + sorted((ROOT / "notebooks").glob("*.md"))
    return [page for page in pages if "\nkernelspec:" in page.read_text()[:800]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale cells, change nothing")
    args = parser.parse_args()
    expected = colab_cell()
    stale = []
    for path in notebook_sources():
        text = path.read_text()
        match = CELL.search(text)
        if match is None:
            stale.append(f"{path.name}: no Colab install cell")
            first = text.find("```{code-cell}")
            if not args.check and first >= 0:
                path.write_text(text[:first] + expected + "\n\n" + text[first:])
            continue
        if match.group(0) != expected:
            stale.append(f"{path.name}: the Colab install cell is stale")
            if not args.check:
                path.write_text(text[: match.start()] + expected + text[match.end() :])
    for line in stale:
        print(line)
    if args.check:
        sys.exit(1 if stale else 0)
    jupytext = Path(sys.executable).parent / "jupytext"
    subprocess.run([str(jupytext), "--sync", *map(str, notebook_sources())], check=True)


if __name__ == "__main__":
    main()
