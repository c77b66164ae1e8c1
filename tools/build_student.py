"""Build the student edition: the book and its notebooks with every exercise solution removed at the source.

Usage: python tools/build_student.py [--output _build/student] [--keep-solutions]

It writes two things into OUTPUT:

- ``OUTPUT/repo/``: the student repository, to be pushed to
  ``student_edition.url`` at ``student_edition.branch`` (_config.yml): the
  book's files with the solutions cut out of every page and notebook (.md and
  .ipynb, recorded outputs kept), and every install cell and Colab button
  naming that repository and branch. Instructor tooling (tests/, tools/,
  templates/, bench/, .ci/, Makefile, CONTRIBUTING.md) stays out; the library
  (src/, pyproject.toml) goes in, so a student's Colab installs ``dgm`` from
  the same commit as the notebook it opened.
- ``OUTPUT/_build/html``: the student website, built by Jupyter Book from that
  repository, so no page, download (``_sources``), search index or executed
  notebook can carry a solution: none is in the sources it reads.

Solutions are ``{solution}`` directives (``` or ::: fences, any length) or
gated ``{solution-start}`` … ``{solution-end}`` spans, which may hold code
cells. The execution cache of the main build is shared: a student page whose
code cells are the full edition's but for the install cell (which names
another ref, and outside Colab only sets ``DGM_SOURCE``) takes the outputs the
full edition's page got, when the cache holds them (``make book`` or
``--keep-solutions`` ran first); a page whose code differs otherwise (a
solution with code cells) runs again. tests/test_book.py greps every file
under OUTPUT for every solution.

With --keep-solutions it builds the full edition the same way (for tests).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from myst_nb.core.read import read_myst_markdown_notebook
from myst_parser.config.main import MdParserConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from sync_colab_cell import configured, notebook_sources, set_cell, with_cell  # noqa: E402

sys.path.insert(0, str(ROOT / "_ext"))
from colab import install_cell, is_placeholder, placeholder_message  # noqa: E402

# Instructor and maintainer files that the student repository does not carry.
LEFT_OUT = ("tests/", "tools/", "templates/", "bench/", ".ci/", ".github/", "Makefile", "CONTRIBUTING.md", "conftest.py")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|:{3,})\{(?P<name>solution|solution-start|solution-end)\}")


class SolutionCutter:
    """Cuts solutions out of MyST text fed in order (a whole page, or a notebook's cells one by one).

    It keeps its state between calls, so a gated solution that spans cells is cut whole; ``cut``
    collects the text of each solution removed.
    """

    def __init__(self) -> None:
        self.closing: re.Pattern | None = None  # the fence that ends the directive being cut
        self.gated = False  # inside solution-start … solution-end
        self.end_after_block = False  # the block being cut is the solution-end directive
        self.cut: list[str] = []

    @property
    def inside(self) -> bool:
        return self.gated or self.closing is not None

    def feed(self, text: str) -> str:
        kept = []
        for line in text.splitlines(keepends=True):
            if self.closing is not None:  # inside a directive block being cut
                self.cut[-1] += line
                if self.closing.fullmatch(line.rstrip("\n")):
                    self.closing = None
                    if self.end_after_block:
                        self.gated = self.end_after_block = False
                continue
            opening = FENCE.match(line)
            if opening and (not self.gated or opening["name"] == "solution-end"):
                fence = opening["fence"]
                self.closing = re.compile(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*")
                if opening["name"] == "solution-start":
                    self.gated = True
                    self.cut.append(line)
                elif opening["name"] == "solution-end":
                    self.end_after_block = True
                    self.cut[-1] += line
                else:
                    self.cut.append(line)
                continue
            if self.gated:
                self.cut[-1] += line
                continue
            kept.append(line)
        return "".join(kept)

    def finish(self, where: str) -> None:
        if self.inside:
            raise ValueError(f"{where}: a solution is not closed (its fence or its solution-end is missing)")


def cut_page(text: str, where: str) -> tuple[str, list[str]]:
    cutter = SolutionCutter()
    kept = cutter.feed(text)
    cutter.finish(where)
    return kept, cutter.cut


def cut_notebook(notebook: nbformat.NotebookNode, where: str) -> list[str]:
    """Cut the solutions out of a notebook's cells in place (a cell left empty goes); returns what was cut."""
    cutter, cells = SolutionCutter(), []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            source = cutter.feed(cell.source).strip("\n")
            if source.strip() or not cell.source.strip():  # a cell that held only solutions goes
                cell.source = source
                cells.append(cell)
        elif cutter.inside:
            cutter.cut[-1] += cell.source
        else:
            cells.append(cell)
    cutter.finish(where)
    notebook.cells = cells
    return cutter.cut


def source_files() -> list[Path]:
    """The repository's files as they stand in the working tree: tracked, and new ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    return sorted({ROOT / name for name in listed if name and not name.startswith(LEFT_OUT) and (ROOT / name).is_file()})


def student_config(config: dict, url: str, ref: str) -> dict:
    config = dict(config, title=f"{config['title']} (student edition)")
    config["repository"] = dict(config.get("repository") or {}, url=url, branch=ref)
    config.pop("student_edition", None)
    config["sphinx"]["config"]["hide_solutions"] = True
    return config


def write_repository(target: Path, keep_solutions: bool, originals: dict[Path, str] | None = None) -> tuple[str, str, int]:
    """Copy the book into target with solutions cut and install cells for its repository; (url, ref, solutions cut).

    ``originals``, when given, receives each MyST page's text as it was copied (before the cut)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url, ref = configured(student=not keep_solutions)
    if target.exists():
        shutil.rmtree(target)
    for path in source_files():
        destination = target / path.relative_to(ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    if keep_solutions:
        return url, ref, 0
    (target / "_config.yml").write_text(yaml.safe_dump(student_config(config, url, ref), sort_keys=False, allow_unicode=True))
    readme = STUDENT_README.format(title=config["title"], url=url, ref=ref, repository=url.removeprefix("https://github.com/"))
    (target / "README.md").write_text(readme)
    count, pages = 0, notebook_sources(target)
    for page in pages:
        original = page.read_text()
        if originals is not None:
            originals[page] = original
        text, cut = cut_page(original, str(page.relative_to(target)))
        page.write_text(with_cell(text, url, ref))
        count += len(cut)
        paired = page.with_suffix(".ipynb")
        if not paired.exists():  # the Colab button opens the .ipynb: every page gets one
            jupytext.write(jupytext.read(page), paired)
    for path in sorted(target.rglob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cut = cut_notebook(notebook, str(path.relative_to(target)))
        if path.with_suffix(".md") not in pages:
            count += len(cut)
        set_cell(notebook, url, ref)
        nbformat.write(notebook, path)
    return url, ref, count


def toc_files(toc: object) -> set[str]:
    """The pages a _toc.yml names (its root and every ``file``), without suffix: the pages a build reads and runs."""
    if isinstance(toc, dict):
        named = {str(toc[key]).removesuffix(".md") for key in ("root", "file") if key in toc}
        return named.union(*(toc_files(value) for value in toc.values()))
    if isinstance(toc, list):
        return set().union(*(toc_files(item) for item in toc))
    return set()


def page_notebook(text: str, page: Path, config: dict) -> nbformat.NotebookNode:
    """A MyST page's text as myst-nb reads it for execution (the notebook whose code cells the execution cache hashes)."""
    extensions = set(config.get("parse", {}).get("myst_enable_extensions", []))
    return read_myst_markdown_notebook(text, MdParserConfig(enable_extensions=extensions), add_source_map=True, path=str(page))


def _code(notebook: nbformat.NotebookNode) -> list[tuple[str, dict]]:
    return [(cell.source, dict(cell.metadata)) for cell in notebook.cells if cell.cell_type == "code"]


def share_executions(pages: list[tuple[Path, str]], cache_path: Path, config: dict, student: tuple[str, str]) -> int:
    """Give each student page the full edition's cached run where their code differs only in the install cell.

    ``pages`` pairs each student page with the full edition's text of it. The two install cells differ only in the string
    ``DGM_SOURCE`` (url@ref) and, outside Colab, do nothing else, so a page whose other code cells are the same
    (solutions cut from the prose only), that never reads ``DGM_SOURCE`` and whose install cell printed nothing
    computes the same outputs in both editions: the full page's cached run is stored under the student page's code
    (the key jupyter-cache matches on). A page that differs otherwise, or that the cache does not hold, runs in the
    build as before. Returns how many pages were given a run.
    """
    if not cache_path.is_dir():
        return 0
    cache = get_cache(str(cache_path))
    full_cell, student_cell = install_cell(*configured()), install_cell(*student)
    shared = 0
    for page, original in pages:
        mine, theirs = page_notebook(page.read_text(), page, config), page_notebook(original, page, config)
        code, full = _code(mine), _code(theirs)
        differ = [i for i, (a, b) in enumerate(zip(code, full)) if a != b]
        if (
            len(code) != len(full) or mine.metadata.get("kernelspec") != theirs.metadata.get("kernelspec") or len(differ) != 1
            or (code[differ[0]][0], full[differ[0]][0]) != (student_cell, full_cell) or code[differ[0]][1] != full[differ[0]][1]
            or any("DGM_SOURCE" in source for i, (source, _) in enumerate(code) if i != differ[0])
        ):
            continue
        try:
            record = cache.match_cache_notebook(theirs)
        except KeyError:
            continue
        executed = cache.get_cache_bundle(record.pk).nb
        cells = [cell for cell in executed.cells if cell.cell_type == "code"]
        if len(cells) != len(code) or cells[differ[0]].source != full_cell or cells[differ[0]].get("outputs"):
            continue
        cells[differ[0]].source = student_cell
        given = cache.cache_notebook_bundle(CacheBundleIn(executed, str(page), data=dict(record.data)), check_validity=False, overwrite=True)
        if cache.match_cache_notebook(mine).pk != given.pk:  # (KeyError if the student page's key is not the one cached)
            raise RuntimeError(f"{page}: the run given to the student page is not the one its build will look up")
        shared += 1
    return shared


STUDENT_README = """# {title}: student edition

The notebooks of the course, without the exercise solutions, and the course
library `dgm` they use. Open a notebook on Colab from the book's website (the
rocket button), or from this repository:
`https://colab.research.google.com/github/{repository}/blob/{ref}/book/vi.ipynb`.
Its first cell installs `dgm` from `git+{url}@{ref}`, the commit the notebook
comes from; outside Colab, install it yourself with `pip install -e .`.

This repository is generated by `make student` from the instructor's repository;
do not edit it here.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "_build" / "student")
    parser.add_argument("--keep-solutions", action="store_true", help="build the full edition the same way (for tests)")
    args = parser.parse_args()
    output = args.output.resolve()
    if output == ROOT or output in ROOT.parents:
        parser.error(f"--output {args.output}: give the student edition a folder of its own (it is emptied)")
    repository = output / "repo"
    originals: dict[Path, str] = {}
    url, ref, count = write_repository(repository, args.keep_solutions, originals)
    if is_placeholder(url):
        print("warning: " + placeholder_message(url), file=sys.stderr)
    if not args.keep_solutions:
        print(f"{count} solutions cut; the student repository is {repository}: push it to {url}, branch {ref}")
    # The build's own configuration: the cache and the local extensions of this checkout, by absolute path.
    config = yaml.safe_load((repository / "_config.yml").read_text())
    config["execute"]["cache"] = str(ROOT / config["execute"]["cache"])
    if not args.keep_solutions:  # (the pages that run: book/, not notebooks/, which show their recorded runs)
        built = toc_files(yaml.safe_load((repository / "_toc.yml").read_text()))
        pages = [(page, text) for page, text in originals.items() if page.parent.name == "book" and f"book/{page.stem}" in built]
        shared = share_executions(pages, Path(config["execute"]["cache"]), config, (url, ref))
        print(f"execution cache: {shared} of {len(pages)} pages take the full edition's cached run (same code but the install cell)", flush=True)
    extensions = config["sphinx"].get("local_extensions", {})
    config["sphinx"]["local_extensions"] = {name: str(repository / path) for name, path in extensions.items()}
    config_path = output / "_config.yml"
    # A fresh site: nothing of an earlier build (an older edition's pages or downloads) stays in it. The
    # repository was copied afresh, so Sphinx would read every page again anyway; execution stays cached.
    shutil.rmtree(output / "_build", ignore_errors=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    command = [
        str(Path(sys.executable).parent / "jupyter-book"), "build", str(repository), "--config", str(config_path),
        "--path-output", str(output), "-W", "-n", "--keep-going",
    ]
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
