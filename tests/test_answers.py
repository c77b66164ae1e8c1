"""The answer checker: right, wrong, up to a constant or a factor, malformed; never a traceback."""

import pytest
import sympy as sp

from dgm.answers import check
from dgm.exercises import EXERCISES, check_answer

mu = sp.Symbol("mu", real=True)
sigma = sp.Symbol("sigma", positive=True)
KL = (mu**2 + sigma**2 - 1) / 2 - sp.log(sigma)


@pytest.mark.parametrize(
    "answer",
    ["(mu**2 + sigma**2 - 1)/2 - log(sigma)", "(mu^2 + sigma^2 - 1 - log(sigma^2))/2", "mu**2/2 + sigma**2/2 - 1/2 - ln(sigma)"],
)
def test_equivalent_forms_are_correct(answer):
    verdict = check(answer, KL)
    assert verdict.status == "correct" and verdict


def test_wrong_answer_says_where():
    verdict = check("(mu**2 - sigma**2 - 1)/2 - log(sigma)", KL)
    assert verdict.status == "wrong" and not verdict
    assert "at mu = " in verdict.message and "your formula gives" in verdict.message


def test_up_to_a_constant_and_a_factor():
    assert check("(mu**2 + sigma**2)/2 - log(sigma)", KL).status == "up to a constant"
    assert check("mu**2 + sigma**2 - 1 - 2*log(sigma)", KL).status == "up to a factor"
    assert "2" in check("mu**2 + sigma**2 - 1 - 2*log(sigma)", KL).message
    # a constant in the variables that matter only: wrt
    assert check("mu**2/2 + sigma**2/2 - log(sigma)", KL, wrt=[mu]).status == "up to a constant"
    assert check("mu**2 + sigma**2", KL, wrt=[mu]).status == "wrong"


@pytest.mark.parametrize(
    "answer, hint",
    [
        ("(mu**2 + sigma**2 - 1/2 - log(sigma)", "'(' but"),
        ("x + mu", "uses x"),
        (r"\frac{\mu^2}{2}", "not LaTeX"),
        ("mu ==", "could not read"),
        ("import os", "not a formula"),
        ("__import__('os').getcwd()", "not a formula"),
        ("[1, 2]", "not a formula"),
        ("1/0", "undefined"),
        ("lambda: 3", "not a formula"),
        ("sigma.foo", "could not read"),
    ],
)
def test_malformed_answers_get_a_message_not_a_traceback(answer, hint):
    verdict = check(answer, KL)
    assert verdict.status == "malformed"
    assert hint in verdict.message


def test_unanswered_placeholder():
    assert check("...", KL).status == "unanswered"
    assert check("  ", KL).status == "unanswered"


def test_verdict_renders_for_jupyter():
    assert check("(mu**2 + sigma**2 - 1)/2 - log(sigma)", KL)._repr_markdown_().startswith("✓ **Correct.**")
    assert check("mu", KL)._repr_markdown_().startswith("✗ **Wrong.**")


@pytest.mark.parametrize("label", sorted(EXERCISES))
def test_every_registered_exercise_accepts_its_answer_and_rejects_a_perturbed_one(label):
    exercise = EXERCISES[label]
    assert check_answer(label, str(exercise.expected)).status == "correct"
    variables = exercise.wrt or exercise.symbols
    perturbation = f"{variables[0]}**3" if variables else "1"  # a number-valued answer is perturbed by adding 1
    assert check_answer(label, f"{exercise.expected} + {perturbation}").status == "wrong"


def test_a_numeric_answer_is_right_or_wrong_never_up_to_a_constant():
    assert check("8/2", sp.Integer(4), symbols=()).status == "correct"
    verdict = check("2", sp.Integer(4), symbols=())
    assert verdict.status == "wrong" and "2" in verdict.message
    assert "the answer is a number" in check("h", sp.Integer(4), symbols=()).message


def test_unknown_exercise_label():
    with pytest.raises(KeyError, match="ex-vi-kl"):
        check_answer("ex-nope", "1")


def test_exercise_labels_exist_on_the_pages():
    from pathlib import Path

    text = "".join(p.read_text() for p in (Path(__file__).parents[1] / "book").glob("*.md"))
    for label in EXERCISES:
        assert f":label: {label}" in text and f'check_answer("{label}"' in text
