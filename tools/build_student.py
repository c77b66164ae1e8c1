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
cells. The execution cache of the main build is reused (a page runs again
only where its code differs, i.e. once for the student install cell).
tests/test_book.py greps every file under OUTPUT for every solution.

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from sync_colab_cell import configured, notebook_sources, set_cell, with_cell  # noqa: E402

sys.path.insert(0, str(ROOT / "_ext"))
from colab import is_placeholder, placeholder_message  # noqa: E402

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


def write_repository(target: Path, keep_solutions: bool) -> tuple[str, str, int]:
    """Copy the book into target with solutions cut and install cells for its repository; (url, ref, solutions cut)."""
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
        text, cut = cut_page(page.read_text(), str(page.relative_to(target)))
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
    url, ref, count = write_repository(repository, args.keep_solutions)
    if is_placeholder(url):
        print("warning: " + placeholder_message(url), file=sys.stderr)
    if not args.keep_solutions:
        print(f"{count} solutions cut; the student repository is {repository}: push it to {url}, branch {ref}")
    # The build's own configuration: the cache and the local extensions of this checkout, by absolute path.
    config = yaml.safe_load((repository / "_config.yml").read_text())
    config["execute"]["cache"] = str(ROOT / config["execute"]["cache"])
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
