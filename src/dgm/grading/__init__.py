r"""Graded assignments: the instructor's key, the student's form check, and the grader.

The book's self-check exercises (:func:`dgm.derivations.exercises.check_answer`) know their answers,
so anyone can read them. Graded work uses a **key** the students do not have: a TOML file that
``make assignments`` (``tools/build_assignments.py``) writes into the instructor's folder, next to
the student notebooks it builds. Each table of the key is one question, under its label::

    ["ex-vi-kl"]
    chapter = "vi"                      # the assignment it belongs to
    title = "The KL divergence between two Gaussians"
    answer = "(v/v_p + (mu - mu_p)**2/v_p - 1 - log(v/v_p))/2"   # omit: a written answer, graded by hand
    symbols = { mu = "real", v = "positive", mu_p = "real", v_p = "positive" }
    wrt = ["mu", "mu_p"]                # optional: the variables that matter for "up to a constant"
    domain = { v = [0.1, 10] }          # optional: where the numeric checks draw a symbol
    accept = ["correct"]                # optional: the verdicts that earn the points
    points = 1                          # optional
    question = '''...'''                # a question of the instructor's own (a book exercise's text comes from its page)

In an assignment notebook each formula question has a cell ``answer("ex-vi-kl", "...")``; there
:class:`AnswerSheet` says only whether the formula can be read, never whether it is right.

The grader (``dgm-grade`` or ``python -m dgm.grading``) reads a folder of submitted notebooks as
JSON — it runs no cell — takes the text of each ``answer(label, "text")`` call from the cells'
syntax trees, and grades it with :func:`dgm.derivations.answers.check` (a forked child under time
and memory limits). Whatever a notebook holds (broken JSON, a deleted cell, a hostile formula, a
huge file), it gets a row with a reason, never a crash.

:mod:`dgm.grading.key` holds the key and the student's check, :mod:`dgm.grading.grade` the grader.
"""

from dgm.grading.grade import (
    COLUMNS,
    MAX_CELL_CHARS,
    MAX_NOTEBOOK_BYTES,
    Row,
    grade_folder,
    main,
    read_answers,
    summary,
    write_csv,
)
from dgm.grading.key import (
    ANSWER_CALL,
    WRITTEN_MARK,
    AnswerSheet,
    FormCheck,
    KeyEntry,
    KeyFileError,
    dump_key,
    entry_from_exercise,
    load_key,
)

__all__ = ["ANSWER_CALL", "COLUMNS", "MAX_CELL_CHARS", "MAX_NOTEBOOK_BYTES", "WRITTEN_MARK", "AnswerSheet", "FormCheck",
           "KeyEntry", "KeyFileError", "Row", "dump_key", "entry_from_exercise", "grade_folder", "load_key", "main",
           "read_answers", "summary", "write_csv"]  # fmt: skip
