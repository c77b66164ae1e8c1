"""Grading a folder of submitted notebooks, without running them: rows for a CSV, and a summary.

Each notebook is read as JSON (at most :data:`MAX_NOTEBOOK_BYTES`); the text of each
``answer(label, "text")`` call is taken from the code cells' syntax trees (cells of at most
:data:`MAX_CELL_CHARS`), a written answer from the Markdown cell that starts with its mark, and each
formula is graded by :func:`dgm.derivations.answers.check` in a forked child under time and memory
limits. A notebook that cannot be read, a missing cell or a hostile answer gets a row with a reason.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dgm.derivations.answers import TIME_LIMIT
from dgm.derivations.formulas import shorten
from dgm.grading.key import ANSWER_CALL, WRITTEN_MARK, KeyEntry, KeyFileError, load_key

MAX_NOTEBOOK_BYTES = 10 * 2**20  #: a larger submission is not read
MAX_CELL_CHARS = 20_000  #: a longer cell is not parsed
COLUMNS = ("student", "exercise", "verdict", "message", "points")


# -- reading a submission, without running it -------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """What a notebook holds for one question: the answer's text, or why there is none to grade."""

    text: str | None
    problem: str | None = None
    cells: int = 1


class Unreadable(Exception):
    """A submission that cannot be read as a notebook at all."""


def _source(cell: Mapping[str, object]) -> str | None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    return source if isinstance(source, str) else None


def _formula_answers(source: str, labels: Sequence[str]) -> dict[str, Found]:
    """``answer(label, "text")`` calls in one code cell, from its syntax tree (nothing is run)."""
    mentioned = [label for label in labels if f'"{label}"' in source or f"'{label}'" in source]
    if not mentioned:
        return {}
    if len(source) > MAX_CELL_CHARS:
        return {label: Found(None, f"its cell is over {MAX_CELL_CHARS:,} characters; not read") for label in mentioned}
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        problem = f"its cell is not valid Python (line {error.lineno}: {error.msg}); put the formula in quotes"
        return {label: Found(None, problem) for label in mentioned}
    except (ValueError, RecursionError, MemoryError):
        return {label: Found(None, "its cell could not be parsed") for label in mentioned}
    found: dict[str, Found] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == ANSWER_CALL):
            continue
        if not node.args or not isinstance(node.args[0], ast.Constant) or node.args[0].value not in labels:
            continue
        label = node.args[0].value
        given = node.args[1] if len(node.args) > 1 else None
        if isinstance(given, ast.Constant) and (isinstance(given.value, str) or given.value is ...):
            found[label] = Found("..." if given.value is ... else given.value)
        else:
            found[label] = Found(None, f'the answer is not one text in quotes: write answer("{label}", "your formula")')
    return found


def _written_answer(cell: Mapping[str, object], source: str, labels: Sequence[str]) -> tuple[str, str] | None:
    """(label, text) of a written-answer cell, known by its metadata or its first line."""
    metadata = cell.get("metadata")
    tagged = metadata.get("dgm", {}) if isinstance(metadata, dict) else {}
    label = tagged.get("answer") if isinstance(tagged, dict) else None
    for candidate in labels:
        mark = WRITTEN_MARK.format(label=candidate)
        if source.lstrip().startswith(mark):
            return candidate, source.lstrip()[len(mark) :].strip()
    return (label, source.strip()) if isinstance(label, str) and label in labels else None


def read_answers(
    path: Path, labels: Sequence[str], max_bytes: int = MAX_NOTEBOOK_BYTES
) -> tuple[str | None, dict[str, Found]]:
    """The notebook's assignment (from its metadata) and the answers it holds, by label.

    Raises:
        Unreadable: with the reason, for a file that is not a notebook that can be read.
    """
    if path.is_symlink() or not path.is_file():
        raise Unreadable("not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise Unreadable(f"the file is {size / 2**20:.1f} MiB, over the limit of {max_bytes / 2**20:.1f} MiB")
    try:
        notebook = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise Unreadable("the file is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise Unreadable(f"not valid notebook JSON (line {error.lineno}: {error.msg})") from None
    except RecursionError:
        raise Unreadable("not valid notebook JSON (nested too deeply)") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise Unreadable("the JSON is not a notebook (no list of cells)")
    metadata = notebook.get("metadata")
    assignment = metadata.get("dgm_assignment") if isinstance(metadata, dict) else None
    found: dict[str, Found] = {}
    for cell in notebook["cells"]:
        source = _source(cell) if isinstance(cell, dict) else None
        if source is None:
            continue
        if cell.get("cell_type") == "code":
            answers = _formula_answers(source, labels)
        elif cell.get("cell_type") == "markdown":
            written = _written_answer(cell, source, labels)
            answers = {written[0]: Found(written[1])} if written else {}
        else:
            continue
        for label, answer in answers.items():  # the last cell answering a question counts
            found[label] = Found(answer.text, answer.problem, found[label].cells + 1 if label in found else 1)
    return (assignment if isinstance(assignment, str) else None), found


# -- grading a folder ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the grades: ``points`` is ``None`` for a written answer graded by hand."""

    student: str
    exercise: str
    verdict: str
    message: str
    points: float | None = 0.0


def _grade_one(entry: KeyEntry, found: Found | None, student: str, time_limit: float) -> Row:
    if found is None:
        if entry.answer is not None:
            where = f'answer("{entry.label}", ...) in any code cell'
        else:
            where = f"Markdown cell starting {WRITTEN_MARK.format(label=entry.label)}"
        return Row(student, entry.label, "missing", f"the notebook has no {where} (deleted, or its label changed)")
    if found.problem is not None:
        return Row(student, entry.label, "malformed", found.problem)
    assert found.text is not None
    if entry.answer is None:
        blank = found.text in ("", "...") or found.text.startswith("*(write")
        message = "no answer written" if blank else shorten(" ".join(found.text.split()), 300)
        return Row(student, entry.label, "unanswered" if blank else "by hand", message, 0.0 if blank else None)
    verdict = entry.grade(found.text, time_limit)
    message = verdict.message + (f" (the last of {found.cells} answer cells)" if found.cells > 1 else "")
    return Row(student, entry.label, verdict.status, message, entry.points if verdict.status in entry.accept else 0.0)


def _students(paths: Sequence[Path], folder: Path) -> dict[Path, str]:
    """A student's name: the folder under ``folder`` their notebook sits in, else the notebook's name."""
    names = {path: path.relative_to(folder).parts[0] if len(path.relative_to(folder).parts) > 1 else path.stem
             for path in paths}  # fmt: skip
    taken = Counter(names.values())
    return {path: name if taken[name] == 1 else path.relative_to(folder).with_suffix("").as_posix()
            for path, name in names.items()}  # fmt: skip


def grade_folder(
    folder: str | Path,
    key: Mapping[str, KeyEntry],
    *,
    assignment: str | None = None,
    time_limit: float = TIME_LIMIT,
    max_bytes: int = MAX_NOTEBOOK_BYTES,
) -> list[Row]:
    """A row per student and question of every ``*.ipynb`` under ``folder`` (not hidden ones: .ipynb_checkpoints).

    The assignment is ``assignment`` if given, else the one each notebook's metadata names.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder} of submitted notebooks")
    chapters: dict[str, list[KeyEntry]] = defaultdict(list)
    for entry in key.values():
        chapters[entry.chapter].append(entry)
    if assignment is not None and assignment not in chapters:
        raise ValueError(f"the key has no questions for assignment {assignment!r}; it has {', '.join(chapters)}")
    paths = [
        path
        for path in folder.rglob("*.ipynb")
        if not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    students = sorted(_students(sorted(paths), folder).items(), key=lambda item: (item[1], item[0]))
    read: dict[Path, tuple[str | None, dict[str, Found]] | str] = {}
    for path, _ in students:
        try:
            read[path] = read_answers(path, list(key), max_bytes)
        except (Unreadable, OSError) as error:
            read[path] = str(error) if isinstance(error, Unreadable) else f"cannot be read ({error.strerror or error})"
    named = {result[0] for result in read.values() if isinstance(result, tuple) and result[0] in chapters}
    rows: list[Row] = []
    for path, student in students:
        result = read[path]
        answered = {key[label].chapter for label in result[1]} if isinstance(result, tuple) else set()
        # Which assignment: the one given, else the notebook's metadata, else that of the questions it
        # answers, else its file name, else the folder's only one.
        named_here = result[0] if isinstance(result, tuple) else None
        only = next(iter(named)) if len(named) == 1 else None
        guesses = [assignment, named_here, next(iter(answered)) if len(answered) == 1 else None, path.stem, only]
        chosen = next((guess for guess in guesses if guess in chapters), None)
        if chosen is None:
            reason = result if isinstance(result, str) else "the notebook does not say which assignment it is"
            if named_here is not None:
                reason = f"the notebook names the assignment {named_here!r}, which the key does not have"
            rows.append(Row(student, "*", "unreadable", f"{reason}; pass --assignment"))
        elif isinstance(result, str):
            rows += [Row(student, entry.label, "unreadable", result) for entry in chapters[chosen]]
        else:
            rows += [_grade_one(entry, result[1].get(entry.label), student, time_limit) for entry in chapters[chosen]]
    return rows


def _cell(value: object) -> str:
    """A CSV field a spreadsheet will not run as a formula (a text starting with = + - @ gets a ')."""
    text = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(rows: Iterable[Row], path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(getattr(row, column)) for column in COLUMNS])


def summary(rows: Sequence[Row], key: Mapping[str, KeyEntry]) -> str:
    """A short text: each student's points, then how each question went."""
    if not rows:
        return "no submitted notebooks (*.ipynb) found."
    by_student: dict[str, list[Row]] = defaultdict(list)
    by_exercise: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_student[row.student].append(row)
        by_exercise[row.exercise].append(row)
    lines = [f"{len(by_student)} students, {len(rows)} rows; points per student:"]
    width = max(len(student) for student in by_student)
    for student, own in by_student.items():
        points = sum(row.points or 0.0 for row in own)
        most = sum(key[row.exercise].points for row in own if row.exercise in key and key[row.exercise].answer)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in Counter(row.verdict for row in own).items())
        lines.append(f"  {student:<{width}}  {points:g} / {most:g}  ({counts})")
    lines.append("per question, correct / submissions:")
    for exercise, own in by_exercise.items():
        if exercise in key:
            hand = sum(row.verdict == "by hand" for row in own)
            correct = sum(row.verdict == "correct" for row in own)
            lines.append(f"  {exercise}: {correct} / {len(own)}" + (f" ({hand} to grade by hand)" if hand else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``dgm-grade SUBMISSIONS --key KEY``: grades into a CSV and prints a summary; 2 on unusable input."""
    parser = argparse.ArgumentParser(prog="dgm-grade", description="Grade a folder of submitted assignment "
                                     "notebooks against an instructor's key, without running them.")  # fmt: skip
    parser.add_argument(
        "submissions", type=Path, help="folder of submitted .ipynb (one per student, or one folder each)"
    )
    parser.add_argument("--key", type=Path, required=True, help="the instructor's key (TOML), from make assignments")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write (default grades.csv)")
    parser.add_argument("--assignment", help="grade every notebook as this assignment (default: as each one says)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT, help="CPU seconds per answer (default %(default)s; a busy machine does not count)")
    parser.add_argument("--max-bytes", type=int, default=MAX_NOTEBOOK_BYTES, help="largest notebook read")
    args = parser.parse_args(argv)
    try:
        key = load_key(args.key)
        rows = grade_folder(args.submissions, key, assignment=args.assignment,
                            time_limit=args.time_limit, max_bytes=args.max_bytes)  # fmt: skip
        write_csv(rows, args.out)
    except (KeyFileError, FileNotFoundError, ValueError, OSError) as error:
        print(f"dgm-grade: {error}", file=sys.stderr)
        return 2
    print(summary(rows, key))
    print(f"wrote {len(rows)} rows to {args.out}")
    public = sorted({row.exercise for row in rows if row.exercise in key and key[row.exercise].public})
    if public:
        print(f"note: {len(public)} of these questions are public (the book's own, public = true in the key): "
              "their answers ship with dgm and the book's solutions.", file=sys.stderr)  # fmt: skip
    return 0
