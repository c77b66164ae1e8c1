"""The book's chapters, numbered, from _toc.yml: exercise numbers per chapter and the list of every notebook.

* **Chapter numbers.** The chapters of the parts whose caption starts with
  "Part" are numbered 1, 2, … in the order of _toc.yml; other pages (the
  how-to page, the reference pages) get no number. ``tools/build_assignments.py``
  numbers the assignments' questions with the same function, :func:`chapters`.
* **Exercise numbers per chapter.** Sphinx numbers exercises (sphinx-exercise
  registers them as numbered figures) across the whole book: Exercise 1 … 28.
  After Sphinx has assigned them, this extension renumbers each chapter's
  exercises as "Exercise 3.1, 3.2, …" (chapter 3), in page order; a page without
  a chapter number numbers its own from 1. Titles, solution titles and
  references all read these numbers.
* **The ``{course-map}`` directive** writes a table of every chapter, its
  derivation page and its training notebooks, read from _toc.yml when the page
  is built, so the list cannot go stale (book/how_to_use.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Chapter:
    """A chapter of _toc.yml: its page (``book/vae``), number (``None``: unnumbered), part and sub-pages."""

    doc: str
    number: int | None
    part: str
    sections: tuple[str, ...]


def chapters(toc: dict) -> list[Chapter]:
    """The chapters of a jb-book _toc.yml (a parsed dict), in order, numbered as the module says."""
    found: list[Chapter] = []
    number = 0
    for part in toc.get("parts", []):
        caption = str(part.get("caption", ""))
        for entry in part.get("chapters", []):
            if "file" not in entry:
                continue
            numbered = caption.startswith("Part")
            number += numbered
            sections = tuple(section["file"] for section in entry.get("sections", []) if "file" in section)
            found.append(Chapter(entry["file"], number if numbered else None, caption, sections))
    return found


def read_toc(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def map_lines(toc: dict) -> list[str]:
    """The MyST table of the ``{course-map}`` directive: one row per numbered chapter, its notebooks linked."""
    lines = ["| # | Chapter | Training notebooks |", "|---|---|---|"]
    for chapter in chapters(toc):
        if chapter.number is None:
            continue
        notebooks = [f"{{doc}}`/{doc}`" for doc in chapter.sections if doc.startswith("notebooks/")]
        lines.append(f"| {chapter.number} | {{doc}}`/{chapter.doc}` | {', '.join(notebooks) or '—'} |")
    return lines


def _toc_path(app) -> Path:
    return Path(app.srcdir) / getattr(app.config, "external_toc_path", "_toc.yml")


def renumber_exercises(app, env) -> list[str]:
    """Exercise numbers per chapter, after Sphinx has numbered them across the book (env-get-updated)."""
    numbers = {chapter.doc: chapter.number for chapter in chapters(read_toc(_toc_path(app)))}
    changed = []
    for docname, figures in env.toc_fignumbers.items():
        exercises = figures.get("exercise")
        if not exercises:
            continue
        order = sorted(exercises, key=lambda ident: exercises[ident])
        chapter = numbers.get(docname)
        figures["exercise"] = {
            ident: (chapter, rank) if chapter is not None else (rank,) for rank, ident in enumerate(order, start=1)
        }
        changed.append(docname)
    return changed


def setup(app) -> dict:
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class CourseMap(SphinxDirective):
        """``{course-map}``: the table of chapters and notebooks, from _toc.yml."""

        def run(self) -> list[nodes.Node]:
            path = _toc_path(self.env.app)
            self.env.note_dependency(str(path))  # re-read this page when _toc.yml changes
            container = nodes.container()
            self.state.nested_parse(StringList(map_lines(read_toc(path)), str(path)), self.content_offset, container)
            return container.children

    app.add_directive("course-map", CourseMap)
    app.connect("env-get-updated", renumber_exercises, priority=800)  # after Sphinx numbers them (priority 500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
