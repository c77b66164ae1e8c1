"""Build one assignment notebook per chapter, and the instructor's key that grades them.

Usage: python tools/build_assignments.py [--key KEY.toml] [--out _build/assignments]

Writes ``OUT/student/<chapter>.ipynb`` (hand these out) and
``OUT/instructor/key.toml`` (keep it: ``dgm-grade`` grades with it).

Without ``--key``, the key is seeded from the book: every ``{exercise}`` of
every numbered chapter, with the formula answers of
``dgm.derivations.exercises`` — answers that are public (they ship in the
package and in the book's solutions). With ``--key``, the assignments hold
exactly the questions of that key, in its order: book exercises by label
(their text comes from the page) and the instructor's own questions (their
text in ``question``), whose answers no student has seen. The student
notebooks carry each question's text and symbol names, never an answer.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

from course_map import chapters, read_toc

from dgm.derivations.exercises import EXERCISES
from dgm.grading import ANSWER_CALL, WRITTEN_MARK, KeyEntry, KeyFileError, dump_key, entry_from_exercise, load_key

PUBLIC_NOTE = """\
Instructor's key for the assignments built by tools/build_assignments.py. Keep it from students.
Grade with:  dgm-grade SUBMISSIONS_FOLDER --key THIS_FILE --out grades.csv

This key was seeded from the book. Its answers (public = true) are NOT secret: they
ship in the dgm package (dgm/derivations/exercises.py) and in the book's solutions.
For graded work, edit a copy: change or delete questions, and add your own, e.g.

  ["hw-vi-1"]
  chapter = "vi"                          # the assignment (notebook) it goes into
  title = "A KL with a shifted mean"
  question = '''Give KL(N(mu, 1) || N(0, 1)) in the symbol `mu`.'''
  answer = "mu**2/2"                      # omit answer for a written answer graded by hand
  symbols = { mu = "real" }               # kinds: real, positive, integer, complex
  # optional: wrt = ["mu"], domain = { mu = [-3, 3] }, accept = ["correct", "up to a constant"], points = 2

then rebuild:  python tools/build_assignments.py --key YOUR_KEY.toml"""

FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>.*)$")
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<text>[^`]*)`")


def plain(text: str) -> str:
    """MyST roles written for the site as plain Markdown a notebook shows (eq. {eq}`x` → eq. (x))."""

    def replace(match: re.Match[str]) -> str:
        role, target = match["role"], match["text"]
        shown = re.match(r"(.*?)\s*<(.*)>$", target, re.DOTALL)
        if shown:
            return shown[1]
        if role in ("eq", "numref"):
            return f"({target})"
        if role.startswith("cite"):
            return f"[{target}]"
        return f"*{target.rsplit('/', 1)[-1]}*" if role == "doc" else target

    return ROLE.sub(replace, text)


def page_exercises(path: Path) -> list[tuple[str, str, str]]:
    """(label, title, body) of each ``{exercise}`` directive of a MyST page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        index += 1
        if not opening:
            continue
        fence, title, options, body = opening["fence"], opening["title"].strip(), {}, []
        while index < len(lines) and lines[index].startswith(":") and not lines[index].startswith(fence[0] * 3):
            name, _, value = lines[index][1:].partition(":")
            options[name.strip()] = value.strip()
            index += 1
        while index < len(lines) and lines[index].rstrip() != fence:
            body.append(lines[index])
            index += 1
        index += 1
        if "label" not in options:
            raise ValueError(f"{path}: the exercise {title!r} has no :label:")
        found.append((options["label"], title, "\n".join(body).strip()))
    return found


def chapter_title(path: Path) -> str:
    heading = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# ")), None)
    return heading[2:].strip() if heading else path.stem


@functools.cache
def install_source() -> str | None:
    """The Colab install cell of the book's notebooks (_ext/colab.py), for the student edition's repository."""
    try:
        import colab

        config = yaml.safe_load((ROOT / "_config.yml").read_text())
        try:
            return colab.install_cell(*colab.settings(config, student=True))
        except ValueError:
            return colab.install_cell(*colab.settings(config))
    except (ImportError, AttributeError, ValueError) as error:
        print(f"warning: no Colab install cell in the assignments ({error})", file=sys.stderr)
        return None


def notebook(
    chapter: str, title: str, entries: list[KeyEntry], texts: dict[str, tuple[str, str]]
) -> nbformat.NotebookNode:
    """The student notebook of one assignment: questions, answer cells, and no answers."""
    v4 = nbformat.v4
    intro = (
        f"# Assignment: {title}\n\n"
        "Answer each question in the cell under it, then save this notebook and hand it in.\n\n"
        f'* **A formula**: replace `...` in `{ANSWER_CALL}("label", "...")` with your formula as text in '
        "quotes, in Python syntax (`(mu**2 + v - 1)/2 - log(v)/2`), using the symbols the question names. "
        "Running the cell says whether your formula **can be read**, not whether it is right: it is graded "
        "after you hand it in.\n"
        "* **A set of names**: replace `...` with the names, in braces and separated by commas (`\"{A, B}\"`).\n"
        "* **A written answer**: write it in the Markdown cell under the question, below its first line.\n\n"
        "Keep each question's label (the first text in `answer(...)`, and the first line of a written-answer "
        "cell) as it is: the grader finds your answers by them. It reads the notebook's text and runs none of "
        "your code. On Colab, hand in *File → Download → Download .ipynb*."
    )
    symbols = {entry.label: " ".join(entry.symbols) for entry in entries if entry.answer is not None and entry.elements is None}
    sets = {entry.label: " ".join(entry.elements) for entry in entries if entry.answer is not None and entry.elements is not None}
    sheet = f"AnswerSheet({chapter!r}, {symbols!r}" + (f", sets={sets!r})" if sets else ")")
    setup = f"from dgm.grading import AnswerSheet\n\n{ANSWER_CALL} = {sheet}"
    cells = [v4.new_markdown_cell(intro)]
    install = install_source()
    cells += [v4.new_code_cell(install)] if install else []
    cells.append(v4.new_code_cell(setup))
    for number, entry in enumerate(entries, start=1):
        where, body = texts[entry.label]
        heading = f"## Question {number}: {entry.title}" + (f" ({where})" if where else "")
        cells.append(v4.new_markdown_cell(f"{heading}\n\n{plain(body)}"))
        metadata = {"dgm": {"answer": entry.label}}
        if entry.answer is not None and entry.elements is not None:
            names = ", ".join(entry.elements)
            source = f'# A set of names from {names}, in braces ("{{X, Y}}"; "{{}}" for none).\n{ANSWER_CALL}("{entry.label}", "...")'
            cells.append(v4.new_code_cell(source, metadata=metadata))
        elif entry.answer is not None:
            uses = ", ".join(f"`{name}`" for name in entry.symbols) or "no symbols (a number)"
            source = f'# Your formula may use {uses}.\n{ANSWER_CALL}("{entry.label}", "...")'
            cells.append(v4.new_code_cell(source, metadata=metadata))
        else:
            mark = WRITTEN_MARK.format(label=entry.label)
            cells.append(v4.new_markdown_cell(f"{mark}\n\n*(write your answer here)*", metadata=metadata))
    book = v4.new_notebook(cells=cells)
    book.metadata.update(
        {"dgm_assignment": chapter, "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    return book


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--key", type=Path, help="your key (TOML); default: seed one from the book's exercises")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "assignments")
    args = parser.parse_args()
    texts: dict[str, tuple[str, str]] = {}
    titles: dict[str, str] = {}
    seeded: list[KeyEntry] = []
    for chapter in chapters(read_toc(ROOT / "_toc.yml")):
        page = ROOT / f"{chapter.doc}.md"
        if chapter.number is None or not page.exists():
            continue
        name = page.stem
        titles[name] = f"{chapter.number}. {chapter_title(page)}"
        for rank, (label, title, body) in enumerate(page_exercises(page), start=1):
            texts[label] = (f"Exercise {chapter.number}.{rank} in the book", body)
            seeded.append(entry_from_exercise(label, EXERCISES.get(label), name, title))
    try:
        key = list(load_key(args.key).values()) if args.key else seeded
    except KeyFileError as error:
        print(f"build_assignments: {error}", file=sys.stderr)
        return 2
    for entry in key:
        if entry.question is not None:
            texts[entry.label] = ("", entry.question)
        elif entry.label not in texts:
            print(f"build_assignments: [{entry.label}] is no exercise of the book; give its text as "
                  "question = '''...''' in the key", file=sys.stderr)  # fmt: skip
            return 2
    student, instructor = args.out / "student", args.out / "instructor"
    shutil.rmtree(student, ignore_errors=True)
    student.mkdir(parents=True)
    instructor.mkdir(parents=True, exist_ok=True)
    by_chapter: dict[str, list[KeyEntry]] = {}
    for entry in key:
        by_chapter.setdefault(entry.chapter, []).append(entry)
    for name, entries in by_chapter.items():
        nbformat.write(notebook(name, titles.get(name, name), entries, texts), student / f"{name}.ipynb")
    if args.key and args.key.resolve() != (instructor / "key.toml").resolve():
        shutil.copyfile(args.key, instructor / "key.toml")
    elif not args.key:
        target, text = instructor / "key.toml", dump_key(seeded, PUBLIC_NOTE)
        if target.exists() and target.read_text(encoding="utf-8") != text:  # edited in place? keep it
            target.replace(instructor / "key.toml.bak")
            print(f"the previous {target.name}, which differs from the book's, is now {target.name}.bak")
        target.write_text(text, encoding="utf-8")
    print(f"{len(by_chapter)} assignments ({sum(map(len, by_chapter.values()))} questions) in {student}/")
    print(
        f"the key in {instructor / 'key.toml'}"
        + ("" if args.key else " (seeded from the book: its answers are public)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
