"""One reader of set-of-names answers for the checker (`check_set`) and the answer sheet (`AnswerSheet`).

They used to repeat the same preamble (blank? text? readable?) with their own
messages; now both go through `read_set_answer`. These tests fail if the two
drift apart again: an answer unreadable for one must be unreadable for the
other, with the same message, and a readable one must name the same set.
"""

import pytest

from dgm.derivations.answers import check_set, read_set_answer, unanswered
from dgm.grading import AnswerSheet

NAMES = ("D", "I", "G", "S", "L")
ANSWERS = ["{G, S}", "G S", "{}", "{g, s}", "{G, X}", "[G]", "{G", "{{G}}", "G,,S", 3, {"G"}, None, "...", "", "  ", ...]


@pytest.mark.parametrize("answer", ANSWERS, ids=repr)
def test_the_checker_and_the_sheet_read_a_set_alike(answer):
    verdict = check_set(answer, {"G", "S"}, NAMES)
    form = AnswerSheet("pgm", {}, {"ex": " ".join(NAMES)})("ex", answer)
    reading = read_set_answer(answer, NAMES, example="{G}")
    assert {"read": "well-formed"}.get(reading.status, reading.status) == form.status
    assert {"correct": "read", "wrong": "read"}.get(verdict.status, verdict.status) == reading.status
    if reading.status == "malformed" and isinstance(answer, str):  # the same words from both
        assert verdict.message == form.message == reading.message
    if reading.status == "read":
        assert ("{" + ", ".join(sorted(reading.names)) + "}") in form.message
        assert (verdict.status == "correct") == (reading.names == {"G", "S"})


def test_what_counts_as_unanswered():
    assert all(unanswered(blank) for blank in (..., "...", "", " \n", " ... "))
    assert not any(unanswered(given) for given in ("0", "{}", 0, None, "…"))
