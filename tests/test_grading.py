"""Assignments and grading: the key, the student's form check, the grader on good, bad and hostile submissions,
the assignment build, per-chapter exercise numbers and the how-to page's table."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import sympy as sp
import tomllib
import yaml

import dgm.grading
from dgm.derivations.answers import read_set
from dgm.derivations.exercises import EXERCISES, SetExercise
from dgm.derivations.formulas import parse_answer
from dgm.grading import (
    AnswerSheet,
    KeyEntry,
    KeyFileError,
    dump_key,
    entry_from_exercise,
    grade_folder,
    load_key,
    main,
    summary,
    write_csv,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

from course_map import chapters, map_lines, read_toc, renumber_exercises

OWN_QUESTION = """
["hw-vi-1"]
chapter = "vi"
title = "A KL with a shifted mean"
question = '''Give KL(N(mu, 1) || N(0, 1)) in the symbol `mu`.'''
answer = "mu**2/2"
symbols = { mu = "real" }
accept = ["correct", "up to a factor"]
points = 2
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The assignments built from the book, with an instructor's key that adds a question of their own."""
    out = tmp_path_factory.mktemp("assignments")
    seeded = out / "seeded"
    run = [sys.executable, str(ROOT / "tools" / "build_assignments.py")]
    subprocess.run([*run, "--out", str(seeded)], check=True, capture_output=True, text=True)
    key = out / "my_key.toml"
    key.write_text((seeded / "instructor" / "key.toml").read_text() + OWN_QUESTION)
    subprocess.run([*run, "--key", str(key), "--out", str(out / "mine")], check=True, capture_output=True, text=True)
    return out


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def fill(notebook: Path, answers: dict[str, str], written: dict[str, str] | None = None) -> dict:
    """The notebook with ``answer(label, "...")`` filled in, as a student would type it."""
    book = json.loads(notebook.read_text())
    for cell in book["cells"]:
        source = "".join(cell["source"])
        for label, text in answers.items():
            if f'answer("{label}", "...")' in source:
                cell["source"] = source.replace(f'answer("{label}", "...")', f"answer({label!r}, {text!r})")
        for label, text in (written or {}).items():
            if cell.get("metadata", {}).get("dgm", {}).get("answer") == label and cell["cell_type"] == "markdown":
                cell["source"] = source.replace("*(write your answer here)*", text)
    return book


def rows_of(csv_path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(csv_path, newline="") as stream:
        return {(row["student"], row["exercise"]): row for row in csv.DictReader(stream)}


# -- the key ---------------------------------------------------------------------------------------


def test_the_seeded_key_reads_back_as_the_book_answers(built: Path):
    key = load_key(built / "seeded" / "instructor" / "key.toml")
    formulas = {label for label, entry in key.items() if entry.answer is not None}
    pages = [ROOT / f"{chapter.doc}.md" for chapter in chapters(read_toc(ROOT / "_toc.yml")) if chapter.number]
    on_pages = {
        label for page in pages for label in re.findall(r"^:label: (ex-[\w-]+)$", page.read_text(), re.MULTILINE)
    }
    assert set(key) == on_pages and formulas == on_pages & set(EXERCISES) and len(formulas) >= 20
    assert all(entry.public for entry in key.values())
    for label in formulas:
        entry, exercise = key[label], EXERCISES[label]
        if isinstance(exercise, SetExercise):  # a set of names: the same names and the same set
            assert entry.elements == exercise.elements and read_set(entry.answer, entry.elements) == exercise.expected
            assert not entry.symbols
            continue
        names = entry.sympy_symbols()
        assert tuple(names.values()) == exercise.symbols  # same names and assumptions
        assert sp.simplify(parse_answer(entry.answer, exercise.symbols) - exercise.expected) == 0, label
    text = (built / "seeded" / "instructor" / "key.toml").read_text()
    assert "NOT secret" in text.split("\n\n")[0]


def test_every_book_answer_survives_the_key_and_grades_itself_correct(tmp_path: Path):
    """Each formula of dgm.derivations.exercises, written into a key and read back, is the same answer."""
    key = tmp_path / "key.toml"
    key.write_text(dump_key(entry_from_exercise(label, exercise, "x", "t") for label, exercise in EXERCISES.items()))
    loaded = load_key(key)
    for label, exercise in EXERCISES.items():
        if isinstance(exercise, SetExercise):
            answer = ", ".join(sorted(exercise.expected)) or "{}"
            assert loaded[label].grade(answer).status == "correct", label
            wrong = next(name for name in exercise.elements if name not in exercise.expected)
            assert loaded[label].grade(f"{answer.strip('{}')}, {wrong}".lstrip(", ")).status == "wrong", label
            continue
        assert loaded[label].grade(sp.sstr(exercise.expected)).status == "correct", label


def test_the_key_round_trips_and_its_own_answer_is_correct():
    entry = KeyEntry(
        "q", "vi", "T", "rho**2/(1 - rho**2)", {"rho": "real"}, None, {"rho": (-0.9, 0.9)}, ("correct",), 3.0
    )
    text = dump_key([entry], "a note")
    assert text.startswith("# a note")
    assert tomllib.loads(text)["q"]["domain"] == {"rho": [-0.9, 0.9]}
    assert entry.grade("rho^2/(1 − rho²)").status == "correct"
    assert entry.grade("rho**2").status == "wrong"


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ('chapter = "vi"\nanswer = "mu"\nsymbols = { mu = "real" }\ncolour = "red"', "unknown setting(s) colour"),
        ('answer = "mu"\nsymbols = { mu = "real" }', "needs chapter"),
        ('chapter = "vi"\nanswer = "mu"\nsymbols = { mu = "big" }', "kind one of"),
        ('chapter = "vi"\nanswer = "mu +"\nsymbols = { mu = "real" }', "its answer cannot be read"),
        ('chapter = "vi"\nanswer = "nu"\nsymbols = { mu = "real" }', "its answer cannot be read"),
        ('chapter = "vi"\nanswer = "mu"\nsymbols = { mu = "real" }\nwrt = ["nu"]', "not in symbols"),
        ('chapter = "vi"\nanswer = "mu"\nsymbols = { mu = "real" }\naccept = ["wrong"]', "accept must list"),
        ('chapter = "vi"\nanswer = 3\nsymbols = {}', "answer must be a formula in quotes"),
        ('chapter = "vi"\nanswer = "1"\naccept = 3', "accept must list"),
        ('chapter = "vi"\nanswer = "1"\nsymbols = { mu = ["real"] }', "kind one of"),
        ('chapter = "vi"\nanswer = "1"\ndomain = 5', "wrong form"),
        ('chapter = "vi"\nanswer = "1"\nquestion = 5', "must be text"),
        ('chapter = "vi"\nanswer = "1"\nsymbols = { "mu p" = "real" }', "Python name"),
        ('chapter = "vi"\nanswer = "1"\npoints = "many"', "wrong form"),
        ('chapter = "pgm"\nanswer = "{A, Z}"\nelements = ["A", "B"]', "its answer cannot be read"),
        ('chapter = "pgm"\nanswer = "{A}"\nelements = "A B"', "elements must list"),
        ('chapter = "pgm"\nanswer = "{A}"\nelements = ["A", "A"]', "must not repeat"),
        ('chapter = "pgm"\nanswer = "{A}"\nelements = ["A", "not a name"]', "elements must list"),
        ('chapter = "pgm"\nanswer = "{A}"\nelements = ["A"]\nsymbols = { A = "real" }', "takes no symbols"),
        ('chapter = "pgm"\nanswer = "{A}"\nelements = ["A"]\naccept = ["up to a factor"]', "takes no symbols"),
        ('chapter = "pgm"\nanswer = 3\nelements = ["A"]', "a set of names in quotes"),
    ],
)
def test_a_bad_key_is_refused_naming_the_question(tmp_path: Path, table: str, complaint: str):
    key = tmp_path / "key.toml"
    key.write_text(f'["hw-1"]\n{table}\n')
    with pytest.raises(KeyFileError, match=r"question \[hw-1\]") as error:
        load_key(key)
    assert complaint in str(error.value)


def test_a_key_that_is_not_toml_is_refused(tmp_path: Path):
    key = tmp_path / "key.toml"
    key.write_text("[hw-1\nchapter = ")
    with pytest.raises(KeyFileError, match="not valid TOML"):
        load_key(key)
    with pytest.raises(KeyFileError, match="cannot read the key"):
        load_key(tmp_path / "absent.toml")


def test_the_documented_example_keys_load(tmp_path: Path):
    page = (ROOT / "book" / "how_to_use.md").read_text()
    note = (ROOT / "tools" / "build_assignments.py").read_text().split('PUBLIC_NOTE = """')[1].split('"""')[0]
    docstring = dgm.grading.__doc__.split("::\n\n")[1].split("\n\nIn an assignment")[0]
    examples = {
        "how_to_use.md": re.search(r"```toml\n(.*?)```", page, re.DOTALL)[1],
        "the seeded key's note": "\n".join(line[2:] for line in note.splitlines() if line.startswith("  ")),
        "dgm.grading": "\n".join(line[4:] for line in docstring.splitlines()),
    }
    for where, text in examples.items():
        key = tmp_path / "key.toml"
        key.write_text(text.replace("'''...'''", "'''A question.'''"))
        assert len(load_key(key)) == 1, where


# -- the assignment notebooks ------------------------------------------------------------------------


def test_the_student_notebooks_hold_questions_but_no_answers(built: Path):
    key = load_key(built / "mine" / "instructor" / "key.toml")
    notebooks = sorted((built / "mine" / "student").glob("*.ipynb"))
    assert {path.stem for path in notebooks} == {entry.chapter for entry in key.values()}
    text = "\n".join(path.read_text() for path in notebooks)
    for entry in key.values():
        assert entry.label in text and entry.title in text
        if entry.answer is not None and len(entry.answer) > 4:
            assert entry.answer not in text, f"the answer of {entry.label} is in a student notebook"
    assert "mu**2/2" not in text and "{solution}" not in text
    assert "Give KL(N(mu, 1) || N(0, 1))" in (built / "mine" / "student" / "vi.ipynb").read_text()
    book_exercise = next(
        c for c in cells(built / "mine" / "student" / "vae.ipynb") if "Question 1:" in "".join(c["source"])
    )
    assert "(Exercise 3.1 in the book)" in "".join(book_exercise["source"])  # vae is chapter 3
    assert "{eq}" not in text and "{doc}" not in text  # MyST roles written as plain Markdown


def test_an_assignment_notebook_runs_and_checks_form_only(built: Path):
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.reads(json.dumps(fill(built / "mine" / "student" / "vi.ipynb", {"ex-vi-kl": "mu + v"})), 4)
    NotebookClient(book, timeout=120, kernel_name="python3").execute()
    shown = {
        cell.metadata["dgm"]["answer"]: cell.outputs[0]["data"]["text/markdown"]
        for cell in book.cells
        if cell.cell_type == "code" and "dgm" in cell.metadata
    }
    assert shown["ex-vi-kl"].startswith("✎ **Well-formed.** It reads as mu + v.")  # wrong, but not said
    assert shown["ex-vi-mean-field"].startswith("… **Unanswered.**")


def test_reseeding_keeps_an_edited_key(built: Path, tmp_path: Path):
    run = [sys.executable, str(ROOT / "tools" / "build_assignments.py"), "--out", str(tmp_path)]
    shutil.copytree(built / "seeded", tmp_path, dirs_exist_ok=True)
    key = tmp_path / "instructor" / "key.toml"
    seeded = key.read_text()
    key.write_text(seeded + OWN_QUESTION)
    subprocess.run(run, check=True, capture_output=True)
    assert key.read_text() == seeded and (tmp_path / "instructor" / "key.toml.bak").read_text() == seeded + OWN_QUESTION


def test_a_key_question_without_text_is_refused(built: Path, tmp_path: Path):
    key = tmp_path / "key.toml"
    key.write_text('["hw-x"]\nchapter = "vi"\nanswer = "mu"\nsymbols = { mu = "real" }\n')
    run = [sys.executable, str(ROOT / "tools" / "build_assignments.py"), "--key", str(key), "--out", str(tmp_path)]
    result = subprocess.run(run, check=False, capture_output=True, text=True)
    assert result.returncode == 2 and "[hw-x] is no exercise of the book" in result.stderr


def test_a_set_question_round_trips_through_the_key_and_grades_as_a_set():
    entry = KeyEntry("hw-pgm-1", "pgm", "A blanket", "{G, J, S}", elements=tuple("DIGSLJH"))
    text = dump_key([entry])
    assert tomllib.loads(text)["hw-pgm-1"]["elements"] == list("DIGSLJH")
    (loaded,) = load_key_text(text).values()
    assert loaded == entry
    assert loaded.grade("S, J, G").status == "correct"
    assert loaded.grade("{S, J}").status == "wrong"
    assert loaded.grade("{S, X}").status == "malformed"
    assert loaded.grade("__import__('os').system('true')").status == "malformed"


def load_key_text(text: str) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "key.toml"
        path.write_text(text)
        return load_key(path)


def test_the_form_check_of_a_set_says_readable_never_right():
    sheet = AnswerSheet("pgm", {"ex-pgm-parameters": ""}, {"ex-pgm-student-blanket": "D I G S L J H"})
    assert sheet("ex-pgm-student-blanket", "{G, J}").status == "well-formed"  # wrong, but readable
    assert "the set {G, J}" in sheet("ex-pgm-student-blanket", "{G, J}").message
    assert sheet("ex-pgm-student-blanket", "{G, X}").status == "malformed"
    assert sheet("ex-pgm-student-blanket", "...").status == "unanswered"
    assert sheet("ex-pgm-student-blanket", "[G]").status == "malformed"
    # a notebook built without `sets` still reads a set with braces or commas (any names)
    plain = AnswerSheet("pgm", {"ex-pgm-student-blanket": ""})
    assert plain("ex-pgm-student-blanket", "{G, J, S}").status == "well-formed"
    assert plain("ex-pgm-student-blanket", "{G, os.system}").status == "malformed"


def test_the_form_check_says_readable_never_right():
    sheet = AnswerSheet("vi", {"ex-vi-kl": "mu v mu_p v_p", "ex-pgm-parameters": ""})
    right = sheet("ex-vi-kl", "(v/v_p + (mu - mu_p)**2/v_p - 1 - log(v/v_p))/2")
    wrong = sheet("ex-vi-kl", "mu + v")
    assert right.status == wrong.status == "well-formed"
    assert "correct" not in right.message.lower() and "It reads as mu + v." in wrong.message
    assert sheet("ex-vi-kl", "...").status == "unanswered"
    assert sheet("ex-vi-kl", "sigma + 1").status == "malformed"
    assert sheet("ex-vi-kl", "__import__('os').system('true')").status == "malformed"
    assert sheet("ex-pgm-parameters", "34").status == "well-formed"
    with pytest.raises(KeyError, match="no question 'ex-nope'"):
        sheet("ex-nope", "1")


# -- grading a folder of submissions ---------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(built: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A folder of good, wrong, malformed, incomplete, hostile and huge submissions, graded."""
    folder = tmp_path_factory.mktemp("submissions")
    blank = built / "mine" / "student" / "vi.ipynb"
    good = {
        "ex-vi-kl": "(v/v_p + (μ − mu_p)²/v_p − 1 − log(v/v_p))/2",
        "ex-vi-posterior-variance": "tau2*s2/(w^2*tau2 + s2)",
        "ex-vi-score-variance": "mu**2/sigma**2 + 2",
        "ex-vi-mean-field": "-log(1 - rho**2)/2",
        "hw-vi-1": "mu**2",  # twice the answer: accepted "up to a factor" by this question's key
        "ex-vi-log-rate": "-log(2*pi)/2 - (1 + theta**2)/2",
        "ex-vi-grad-s2": "-1/(2*s2) + ((x - w*m - b)**2 + w**2*v)/(2*s2**2)",
    }
    (folder / "good.ipynb").write_text(json.dumps(fill(blank, good, {"ex-vi-tight": "The gap is a KL."})))
    wrong = dict(good, **{"ex-vi-kl": "(mu - mu_p)**2/v_p", "ex-vi-mean-field": "-log(1 - rho**2)"})
    (folder / "wrong.ipynb").write_text(json.dumps(fill(blank, wrong)))
    (folder / "broken.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "answer(')
    incomplete = fill(blank, good)
    incomplete["cells"] = [c for c in incomplete["cells"] if "ex-vi-posterior-variance" not in "".join(c["source"])]
    incomplete["cells"][-1]["source"] = 17  # a cell of the wrong shape is skipped
    (folder / "incomplete.ipynb").write_text(json.dumps(incomplete))
    witness = folder.parent / "hostile-ran"
    hostile = fill(blank, {
        "ex-vi-kl": f"__import__('os').system('touch {witness}')",
        "ex-vi-posterior-variance": "9**9**9**9",
        "ex-vi-score-variance": "x" * 100_000,
        "ex-vi-mean-field": "1/0",
    })  # fmt: skip
    hostile["cells"].insert(0, {"cell_type": "code", "metadata": {}, "source": f"open({str(witness)!r}, 'w')"})
    for cell in hostile["cells"]:
        if 'answer("hw-vi-1"' in "".join(cell["source"]):
            cell["source"] = 'answer("hw-vi-1", "mu" + "**2/2")\nanswer("hw-vi-1", '  # not one literal; broken
    (folder / "hostile.ipynb").write_text(json.dumps(hostile))
    (folder / "huge.ipynb").write_text(json.dumps(fill(blank, good)) + " " * (2 * 2**20))
    (folder / "notebook-list.ipynb").write_text("[1, 2, 3]")
    (folder / "deep.ipynb").write_text('{"cells": ' + "[" * 100_000)
    (folder / "latin1.ipynb").write_bytes('{"cells": "é"}'.encode("latin-1"))
    (folder / "carol").mkdir()
    (folder / "carol" / "vi.ipynb").write_text(json.dumps(fill(blank, {"ex-vi-kl": good["ex-vi-kl"]})))
    (folder / "link.ipynb").symlink_to(folder / "good.ipynb")
    (folder / ".ipynb_checkpoints").mkdir()  # Jupyter's copies are no submissions
    (folder / ".ipynb_checkpoints" / "good-checkpoint.ipynb").write_text("{")
    key = load_key(built / "mine" / "instructor" / "key.toml")
    rows = grade_folder(folder, key, max_bytes=2**20, time_limit=5.0)
    out = folder.parent / "grades.csv"
    write_csv(rows, out)
    assert not witness.exists(), "a submitted cell or answer was run"
    return out, {"rows": rows, "key": key}


def test_good_and_wrong_answers_are_graded(graded: tuple[Path, dict]):
    rows = rows_of(graded[0])
    for label in ("ex-vi-kl", "ex-vi-posterior-variance", "ex-vi-score-variance", "ex-vi-mean-field"):
        assert rows["good", label]["verdict"] == "correct" and rows["good", label]["points"] == "1"
    assert rows["good", "hw-vi-1"]["verdict"] == "up to a factor" and rows["good", "hw-vi-1"]["points"] == "2"
    assert (
        rows["good", "ex-vi-tight"]["verdict"] == "by hand"
        and rows["good", "ex-vi-tight"]["message"] == "The gap is a KL."
    )
    assert rows["good", "ex-vi-tight"]["points"] == ""
    assert rows["good", "ex-vi-replacement"]["verdict"] == "unanswered"
    assert rows["wrong", "ex-vi-kl"]["verdict"] == "wrong" and rows["wrong", "ex-vi-kl"]["points"] == "0"
    assert rows["wrong", "ex-vi-mean-field"]["verdict"] == "up to a factor"
    assert rows["wrong", "ex-vi-mean-field"]["points"] == "0"  # a factor is not accepted for this one
    assert rows["carol", "ex-vi-kl"]["verdict"] == "correct"  # a folder per student
    assert rows["carol", "ex-vi-mean-field"]["verdict"] == "unanswered"


def test_bad_submissions_get_a_row_with_a_reason(graded: tuple[Path, dict]):
    rows = rows_of(graded[0])
    labels = [label for label, entry in graded[1]["key"].items() if entry.chapter == "vi"]
    for student, reason in [
        ("broken", "not valid notebook JSON"),  # graded as the folder's one assignment
        ("huge", "over the limit of 1.0 MiB"),
        ("notebook-list", "not a notebook"),
        ("deep", "nested too deeply"),
        ("latin1", "not UTF-8"),
        ("link", "not a regular file"),
    ]:
        for label in labels:
            assert rows[student, label]["verdict"] == "unreadable" and reason in rows[student, label]["message"]
    missing = rows["incomplete", "ex-vi-posterior-variance"]
    assert missing["verdict"] == "missing" and 'answer("ex-vi-posterior-variance", ...)' in missing["message"]
    assert rows["incomplete", "ex-vi-kl"]["verdict"] == "correct"
    hostile = {label: rows["hostile", label] for label in labels}
    assert hostile["ex-vi-kl"]["verdict"] == "malformed" and "attribute access" in hostile["ex-vi-kl"]["message"]
    assert hostile["ex-vi-posterior-variance"]["verdict"] == "malformed"
    assert hostile["ex-vi-score-variance"]["verdict"] == "malformed"
    assert "over 20,000 characters; not read" in hostile["ex-vi-score-variance"]["message"]
    assert (
        hostile["ex-vi-mean-field"]["verdict"] == "malformed" and "infinite" in hostile["ex-vi-mean-field"]["message"]
    )
    assert hostile["hw-vi-1"]["verdict"] == "malformed" and "not valid Python" in hostile["hw-vi-1"]["message"]
    counts = {student for student, _ in rows}
    assert ".ipynb_checkpoints" not in counts and "good-checkpoint" not in counts
    assert len(rows) == len(counts) * len(labels)  # every notebook, every question: one row each


def test_the_summary_and_the_command(graded: tuple[Path, dict], built: Path, tmp_path: Path, capsys):
    text = summary(graded[1]["rows"], graded[1]["key"])
    assert (
        "good" in text
        and "8 / 8" in text.splitlines()[[l.strip().startswith("good") for l in text.splitlines()].index(True)]
    )
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "eve.ipynb").write_text('{"cells": [], "metadata": {"dgm_assignment": "vi"}}')
    (folder / "mallory.ipynb").write_text(
        json.dumps(fill(built / "mine" / "student" / "vi.ipynb", {}, {"ex-vi-tight": "=SUM(A1)"}))
    )
    out = tmp_path / "grades.csv"
    assert main([str(folder), "--key", str(built / "mine" / "instructor" / "key.toml"), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    vi = [entry for entry in load_key(built / "mine" / "instructor" / "key.toml").values() if entry.chapter == "vi"]
    public = sum(entry.public for entry in vi)  # the book's vi exercises; hw-vi-1 is the instructor's own
    assert public >= 6 and len(vi) == public + 1
    assert f"wrote {2 * len(vi)} rows" in printed.out and f"note: {public} of these questions are public" in printed.err
    rows = rows_of(out)
    assert rows["eve", "ex-vi-kl"]["verdict"] == "missing"
    assert rows["mallory", "ex-vi-tight"]["message"] == "'=SUM(A1)"  # a spreadsheet will not run it
    assert main([str(folder), "--key", str(tmp_path / "none.toml")]) == 2
    assert main([str(folder), "--key", str(built / "mine" / "instructor" / "key.toml"), "--assignment", "nope"]) == 2
    assert "no questions for assignment 'nope'" in capsys.readouterr().err
    command = [sys.executable, "-m", "dgm.grading", str(folder), "--key", str(built / "mine" / "instructor" / "key.toml"),
               "--out", str(tmp_path / "again.csv")]  # fmt: skip
    assert subprocess.run(command, check=False, capture_output=True, text=True).returncode == 0
    assert rows_of(tmp_path / "again.csv") == rows


def test_which_assignment_a_notebook_is(built: Path, tmp_path: Path):
    key = load_key(built / "mine" / "instructor" / "key.toml")
    no_metadata = fill(built / "mine" / "student" / "vi.ipynb", {"ex-vi-mean-field": "-log(1 - rho**2)/2"})
    del no_metadata["metadata"]["dgm_assignment"]  # lost on the way: the questions it answers say vi
    (tmp_path / "ann.ipynb").write_text(json.dumps(no_metadata))
    (tmp_path / "ben").mkdir()
    (tmp_path / "ben" / "vae.ipynb").write_text("{")  # broken, but its name says vae
    (tmp_path / "cat.ipynb").write_text('{"cells": [], "metadata": {"dgm_assignment": "exam"}}')
    rows = grade_folder(tmp_path, key)
    chapters_of = {(row.student, key[row.exercise].chapter if row.exercise in key else "*") for row in rows}
    assert chapters_of == {("ann", "vi"), ("ben", "vae"), ("cat", "*")}
    assert next(row for row in rows if row.exercise == "ex-vi-mean-field").verdict == "correct"
    cat = next(row for row in rows if row.student == "cat")
    assert "names the assignment 'exam', which the key does not have" in cat.message
    assert {row.verdict for row in rows if row.student == "ben"} == {"unreadable"}


# -- exercise numbers per chapter, and the how-to page ---------------------------------------------


def test_chapters_are_numbered_in_the_order_of_the_parts():
    toc = read_toc(ROOT / "_toc.yml")
    numbered = [chapter for chapter in chapters(toc) if chapter.number is not None]
    assert [chapter.number for chapter in numbered] == list(range(1, len(numbered) + 1))
    assert numbered[0].doc == "book/pgm" and all(chapter.part.startswith("Part") for chapter in numbered)
    assert {"book/how_to_use", "book/notation", "book/bibliography"}.isdisjoint(c.doc for c in numbered)


def test_exercises_are_renumbered_per_chapter():
    class App:
        srcdir, config = ROOT, type("Config", (), {"external_toc_path": "_toc.yml"})()

    class Env:
        toc_fignumbers: ClassVar[dict] = {
            "book/pgm": {"exercise": {"b": (2,), "a": (1,)}, "figure": {"f": (1,)}},
            "book/vi": {"exercise": {"c": (3,), "d": (4,)}},
            "book/notation": {"exercise": {"e": (5,)}},
        }

    assert sorted(renumber_exercises(App, Env)) == ["book/notation", "book/pgm", "book/vi"]
    assert Env.toc_fignumbers["book/pgm"] == {"exercise": {"a": (1, 1), "b": (1, 2)}, "figure": {"f": (1,)}}
    assert Env.toc_fignumbers["book/vi"]["exercise"] == {"c": (2, 1), "d": (2, 2)}
    assert Env.toc_fignumbers["book/notation"]["exercise"] == {"e": (1,)}


def test_the_how_to_page_lists_every_notebook_from_the_toc():
    toc = read_toc(ROOT / "_toc.yml")
    assert toc["parts"][0]["chapters"] == [{"file": "book/how_to_use"}]  # right after the home page
    page = (ROOT / "book" / "how_to_use.md").read_text()
    assert "```{course-map}\n```" in page
    assert "{doc}`how_to_use`" in (ROOT / "book" / "intro.md").read_text()
    table = "\n".join(map_lines(toc))
    listed = [section for chapter in chapters(toc) for section in chapter.sections if section.startswith("notebooks/")]
    assert listed and all(f"{{doc}}`/{notebook}`" in table for notebook in listed)
    on_disk = {f"notebooks/{path.stem}" for path in (ROOT / "notebooks").glob("*.ipynb")}
    assert set(listed) <= on_disk


def test_sphinx_numbers_exercises_per_chapter(tmp_path: Path):
    """A small book built by Sphinx with this extension: Exercise 1.1, 1.2, 2.1; a reference reads the same."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / '_ext')!r})\n"
        'extensions = ["myst_parser", "sphinx_external_toc", "sphinx_exercise", "course_map"]\n'
        'external_toc_path = "_toc.yml"\n'
    )
    toc = {"format": "jb-book", "root": "intro", "parts": [
        {"chapters": [{"file": "how"}]},
        {"caption": "Part I — One", "chapters": [{"file": "a"}, {"file": "b", "sections": [{"file": "notebooks/n"}]}]},
    ]}  # fmt: skip
    (source / "_toc.yml").write_text(yaml.safe_dump(toc))
    exercise = "```{{exercise}} {0}\n:label: ex-{0}\n\nWhat is {0}?\n```\n"
    (source / "intro.md").write_text("# Intro\n")
    (source / "how.md").write_text("# How\n\n```{course-map}\n```\n")
    (source / "a.md").write_text("# A\n\n" + exercise.format("one") + "\n" + exercise.format("two"))
    (source / "b.md").write_text("# B\n\n" + exercise.format("three") + "\nSee {numref}`ex-two`.\n")
    (source / "notebooks").mkdir()
    (source / "notebooks" / "n.md").write_text("# N\n")
    build = [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(source), str(tmp_path / "out")]
    result = subprocess.run(build, check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    a, b, how = ((tmp_path / "out" / f"{name}.html").read_text() for name in ("a", "b", "how"))
    assert "Exercise 1.1" in a and "Exercise 1.2" in a and "Exercise 2.1" in b and "Exercise 1.2" in b
    assert "Exercise 3" not in a + b
    assert 'href="notebooks/n.html"' in how and 'href="b.html"' in how
